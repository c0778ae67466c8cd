"""Assembly: create_app() wires config, extensions, blueprints and CLI; `main` is the console."""

from pathlib import Path

import click
from flask import Flask, render_template, request
from flask.cli import FlaskGroup
from werkzeug.exceptions import HTTPException

from portal import cli, redis_client
from portal.config import ROOT
from portal.core import create_core_app
from portal.exceptions import ConfigError
from portal.extensions import csrf, db, limiter, login_manager, migrate
from portal.web import (
    account,
    api,
    api_keys,
    auth,
    companies,
    dashboard,
    dkim,
    headers,
    health,
    history,
    hosts,
    mail_settings,
    maillog,
    oauth_connect,
    page_token,
    request_log,
    test_mail,
)
from portal.web.labels import ACTION_LABELS, AUTH_METHOD_NAMES, FIELD_LABELS, SECURITY_NAMES


def create_app(test_config: dict | None = None) -> Flask:
    """Build the application: config, extensions, blueprints, CLI."""
    app = create_core_app(test_config)
    hosts.init_app(app)  # first: an untrusted Host is refused before anything else runs
    request_log.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    csrf.init_app(app)
    _init_limiter(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None

    app.register_blueprint(auth.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(companies.bp)
    app.register_blueprint(mail_settings.bp)
    app.register_blueprint(oauth_connect.bp)
    app.register_blueprint(maillog.bp)
    app.register_blueprint(api_keys.bp)
    app.register_blueprint(dkim.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(history.bp)
    app.register_blueprint(test_mail.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)  # bearer-token API: no cookies, no CSRF
    app.register_blueprint(health.bp)
    app.register_blueprint(page_token.bp)
    cli.init_app(app)
    app.jinja_env.globals.update(
        FIELD_LABELS=FIELD_LABELS,
        SECURITY_NAMES=SECURITY_NAMES,
        AUTH_METHOD_NAMES=AUTH_METHOD_NAMES,
        ACTION_LABELS=ACTION_LABELS,
    )
    _register_error_pages(app)
    page_token.init_app(app)
    headers.init_app(app)
    health.init_app(app)
    return app


def _init_limiter(app: Flask) -> None:
    """Flask-Limiter on the same Redis as the queue (the embedded one when REDIS_URL is unset).

    RATELIMIT_STORAGE_URI, when set, wins; with REDIS_SENTINELS it is the sentinels' master.
    """
    url = app.config.get("REDIS_URL")
    if app.config.get("RATELIMIT_STORAGE_URI"):
        storage = app.config["RATELIMIT_STORAGE_URI"]
    elif app.config.get("REDIS_SENTINELS"):
        storage, options = redis_client.limiter_storage(app.config)
        app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", options)
    elif url:
        storage = url.replace("unix://", "redis+unix://", 1) if url.startswith("unix:") else url
    else:
        storage = "redis+unix://" + str(Path(app.instance_path) / redis_client.SOCKET_NAME)

        @app.before_request
        def _start_embedded_redis() -> None:
            # The limiter's storage must be up before any limit is checked; cached after once.
            redis_client.connection()

    app.config["RATELIMIT_STORAGE_URI"] = storage
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    # The limiter is one object for every app of the process (the tests make many): init_app
    # adds to the last app's storage options and keeps its storage's "dead" mark, so both
    # start afresh here (Flask-Limiter 4.1 attributes; pinned).
    limiter._storage_options.clear()
    limiter._storage_dead = False
    limiter.init_app(app)


ERROR_PAGES = (400, 403, 404, 429)


def _error_page(exc: HTTPException):
    # A path no route matched has no blueprint, so the API's own handlers never see it.
    if api.owns(request.path):
        return api.http_error(exc)
    if exc.code not in ERROR_PAGES:
        return exc
    return render_template(f"errors/{exc.code}.html", error=exc), exc.code


def _register_error_pages(app: Flask) -> None:
    for code in (*ERROR_PAGES, 405):
        app.register_error_handler(code, _error_page)


def _console_app() -> Flask:
    """The app of the `portal` console: a configuration it cannot run on is one clear line."""
    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(cls=FlaskGroup, create_app=_console_app, add_default_commands=True)
def main() -> None:
    """Manage the mail settings portal."""
