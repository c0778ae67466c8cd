"""The application's core, the same for the web and the worker: config, instance/, database, keys.

`portal.app.create_app` adds the web's extensions, blueprints and CLI on top; the worker runs
on the core alone, so it loads no view, form or migration code before its first mail.
"""

import os
import secrets
from pathlib import Path

from flask import Flask

from portal import config, crypto, i18n, logs
from portal.config import DEFAULT_INSTANCE_PATH, ROOT, Config, database_url
from portal.extensions import db


def create_core_app(test_config: dict | None = None) -> Flask:
    """Build the core: config, logging, instance/, the database, the keys, the languages."""
    test_config = test_config or {}
    instance = test_config.get("INSTANCE_PATH") or os.environ.get("PORTAL_INSTANCE_PATH")
    app = Flask(
        "portal.app",  # the name (and logger) the app has always had, the worker's included
        root_path=str(Path(__file__).resolve().parent),
        instance_path=str(instance or DEFAULT_INSTANCE_PATH),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    app.config.from_object(Config)
    app.config.from_mapping(test_config)
    config.finish(app.config)
    logs.configure(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])
    _private_instance(Path(app.instance_path))
    app.config.setdefault("SQLALCHEMY_DATABASE_URI", None)
    if not app.config["SQLALCHEMY_DATABASE_URI"]:
        app.config["SQLALCHEMY_DATABASE_URI"] = database_url(
            app.config["DATABASE_URL"], Path(app.instance_path)
        )
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _instance_secret(Path(app.instance_path))
    db.init_app(app)
    crypto.init_app(app)
    i18n.init_app(app)  # system mails are written in their recipient's language
    return app


def _private_instance(instance: Path) -> None:
    """instance/ holds the database, keys and Redis: readable by the portal's user alone."""
    # Process-wide, so the SQLite files, the key files and the embedded Redis (a child
    # process) are all created 0600 whoever creates them first.
    os.umask(0o077)
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    if instance.stat().st_uid == os.getuid():
        instance.chmod(0o700)  # one made world-readable before this release


def _instance_secret(instance: Path) -> str:
    """A session signing key kept under instance/, made on first start."""
    path = instance / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()
