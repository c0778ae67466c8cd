"""The walls between the parts that a user of the code relies on, checked from outside."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rq.utils import import_attribute

from portal.outbox import handoff

ROOT = Path(__file__).resolve().parent.parent


def loaded_after(code: str, env: dict | None = None) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize(
    "module",
    [
        "portal",
        "portal.wire.session",
        "portal.wire.probe",
        "portal.wire.diagnosis",
        "portal.wire.dnscheck",
        "portal.wire",
    ],
)
def test_the_smtp_client_and_the_probe_load_no_flask_and_no_database(module):
    loaded = loaded_after(f"import {module}")
    assert module in loaded
    assert {"flask", "sqlalchemy", "flask_sqlalchemy", "redis", "rq"}.isdisjoint(loaded)


def test_importing_the_worker_touches_no_database_and_no_redis(tmp_path):
    database = tmp_path / "never-opened.db"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "PORTAL_INSTANCE_PATH": str(tmp_path / "instance"),
        "REDIS_URL": "redis://127.0.0.1:1/0",  # nothing listens there: a connection would fail
    }
    loaded = loaded_after("import portal.worker", env)
    assert "portal.worker" in loaded
    assert not database.exists()
    assert not (tmp_path / "instance").exists()


# What only the web and the console use: pages, forms, migrations, rate limits, the console.
WEB_ONLY = {"portal.app", "portal.cli", "flask_migrate", "alembic", "flask_limiter", "flask_wtf"}


def test_the_worker_and_its_app_load_no_page_form_migration_or_rate_limit_code(tmp_path):
    env = {**os.environ, "PORTAL_INSTANCE_PATH": str(tmp_path / "instance")}
    code = "from portal.worker import create_core_app\nassert not create_core_app().blueprints"
    loaded = loaded_after(code, env)
    assert WEB_ONLY.isdisjoint(loaded)
    assert not [name for name in loaded if name == "portal.web" or name.startswith("portal.web.")]


def test_loading_the_web_app_hashes_no_password():
    refuse = "def refuse(*args):\n    raise AssertionError('a password hashed at import')\n"
    code = f"import argon2\n{refuse}argon2.PasswordHasher.hash = refuse\nimport portal.app"
    assert "portal.accounts" in loaded_after(code)


@pytest.mark.parametrize("name", [handoff.DELIVER, handoff.DELIVER_GROUP, "portal.delivery.sweep"])
def test_job_names_already_queued_in_redis_still_resolve(name):
    assert name.startswith("portal.delivery.")
    job = import_attribute(name)
    assert callable(job) and job.__name__ == name.rsplit(".", 1)[1]
