"""Production mode: every host must share the secrets, so a missing one stops the start."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from portal.app import create_app
from portal.config import PRODUCTION_REQUIRED
from portal.exceptions import ConfigError

ROOT = Path(__file__).resolve().parent.parent
# Never reached: production mode is checked before anything connects.
PG_URL = "postgresql://portal@127.0.0.1:9/portal"
BASE_URL = "https://portal.example.com"
PORTAL = "from portal.app import main; main(prog_name='portal')"
COMMANDS = {
    "portal db upgrade": [sys.executable, "-c", PORTAL, "db", "upgrade"],
    "flask db upgrade": [sys.executable, "-m", "flask", "--app", "portal.app", "db", "upgrade"],
    "worker.py": [sys.executable, str(ROOT / "worker.py")],
}


@pytest.fixture
def instance(tmp_path) -> Path:
    return tmp_path / "instance"


@pytest.fixture
def production(app_config, instance) -> dict:
    """A complete production configuration: PostgreSQL named, every shared value set."""
    return {
        **app_config,
        "INSTANCE_PATH": str(instance),
        "DATABASE_URL": PG_URL,
        "PORTAL_BASE_URL": BASE_URL,
        "SERVER_NAME": None,
    }


def run(command: list[str], instance: Path, **env: str) -> subprocess.CompletedProcess:
    """Run a command in a fresh interpreter with only these variables (and none of the tests')."""
    clean = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "PORTAL_INSTANCE_PATH": str(instance),
        **env,
    }
    return subprocess.run(
        command, cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("missing", PRODUCTION_REQUIRED)
def test_a_postgresql_database_url_refuses_to_start_without_each_shared_value(
    production, instance, missing
):
    with pytest.raises(ConfigError) as refused:
        create_app({**production, missing: None})
    assert str(refused.value).startswith(
        f"production mode (DATABASE_URL is PostgreSQL) needs {missing}: set them"
    )
    assert not instance.exists()  # no key, no database file, no Redis made up on this host


def test_one_message_names_every_missing_value(app_config, instance):
    nothing = dict.fromkeys(PRODUCTION_REQUIRED)
    with pytest.raises(ConfigError) as refused:
        create_app({**app_config, **nothing, "PORTAL_ENV": "production", "SERVER_NAME": None})
    assert str(refused.value).startswith(
        "production mode (PORTAL_ENV is production) needs "
        "SECRET_KEY, PORTAL_ENCRYPTION_KEYS, REDIS_URL, PORTAL_BASE_URL: "
    )


def test_sentinels_stand_in_for_redis_url_in_production_mode(production, instance):
    served = create_app({**production, "REDIS_URL": None, "REDIS_SENTINELS": "127.0.0.1:26379"})
    assert served.config["REDIS_SENTINELS"] == "127.0.0.1:26379"
    assert list(instance.iterdir()) == []


def test_a_complete_production_configuration_serves_and_makes_up_nothing(production, instance):
    served = create_app(production)
    page = served.test_client().get("/login", base_url=BASE_URL)
    assert page.status_code == 200 and "Log in" in page.text
    assert served.config["SECRET_KEY"] == production["SECRET_KEY"]
    assert list(instance.iterdir()) == []


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_the_console_and_the_worker_refuse_too(command, instance):
    refused = run(command, instance, DATABASE_URL=PG_URL, REDIS_URL="redis://127.0.0.1:9/0")
    assert refused.returncode != 0
    message = (
        "production mode (DATABASE_URL is PostgreSQL) needs "
        "SECRET_KEY, PORTAL_ENCRYPTION_KEYS, PORTAL_BASE_URL: "
    )
    assert message in refused.stderr
    assert not instance.exists()


def test_the_portal_console_refuses_in_one_line_without_a_traceback(instance):
    refused = run(COMMANDS["portal db upgrade"], instance, PORTAL_ENV="production")
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error: production mode (PORTAL_ENV is production) needs ")
    assert len(refused.stderr.strip().splitlines()) == 1 and refused.stdout == ""


def test_with_nothing_set_the_embedded_defaults_still_work(instance):
    migrated = run(COMMANDS["portal db upgrade"], instance)
    assert migrated.returncode == 0, migrated.stderr
    created = run([sys.executable, "-c", PORTAL, "create-company", "Initech"], instance)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "company 1: Initech"
    made = {path.name for path in instance.iterdir()}
    assert {"portal.db", "secret_key", "encryption.keys"} <= made


def test_a_malformed_encryption_key_is_named_by_its_place_never_shown(production):
    keys = f"{Fernet.generate_key().decode()},not-a-fernet-key"
    with pytest.raises(ConfigError) as refused:
        create_app({**production, "PORTAL_ENCRYPTION_KEYS": keys})
    assert "encryption key 2 of 2 (PORTAL_ENCRYPTION_KEYS) is not a Fernet key" in str(
        refused.value
    )
    assert "not-a-fernet-key" not in str(refused.value)
