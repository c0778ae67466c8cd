"""The `portal` console's own commands: users, companies, the demo, test mail, metrics, keys."""

import secrets
from wsgiref.simple_server import make_server

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from portal import accounts, demo, metrics
from portal.delivery import sweeper
from portal.exceptions import MailValidationError
from portal.extensions import db
from portal.keys import rotation
from portal.models import Company, User
from portal.outbox import intake


@click.command("create-superuser")
@click.option("--email", required=True)
@click.option("--name", default="")
@click.password_option()
@with_appcontext
def create_superuser(email: str, name: str, password: str) -> None:
    """Create a superuser, or give an existing user superuser rights and a new password."""
    user = accounts.find_by_email(email) or User(email=email.strip().lower(), name=name)
    user.is_superuser = True
    user.company_id = None
    accounts.set_password(user, password)
    db.session.add(user)
    db.session.commit()
    click.echo(f"superuser {user.email} ready")


@click.command("create-company")
@click.argument("name")
@with_appcontext
def create_company(name: str) -> None:
    """Create a company."""
    company = Company(name=name.strip())
    db.session.add(company)
    db.session.commit()
    click.echo(f"company {company.id}: {company.name}")


@click.command("demo")
@with_appcontext
def demo_command() -> None:
    """Seed a superuser, two companies with an admin each, and global mail settings."""
    for email, password in demo.seed(lambda: secrets.token_urlsafe(12)):
        click.echo(f"created {email} with password {password}")
    db.session.commit()


@click.command("send-mail")
@click.option("--company", "company_name", default=None, help="Company name; none: global")
@click.option("--to", "to", multiple=True, required=True)
@click.option("--subject", default="Hello from the mail portal")
@click.option("--text", default="This mail went through the outbox and the worker.")
@with_appcontext
def send_mail(company_name: str | None, to: tuple[str, ...], subject: str, text: str) -> None:
    """Queue a system mail through the outbox, as the portal itself would."""
    company = None
    if company_name:
        company = db.session.scalar(select(Company).where(Company.name == company_name))
        if company is None:
            raise click.ClickException(f"no company named {company_name!r}")
    try:
        message = intake.send(company, to=list(to), subject=subject, text=text)
    except MailValidationError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"queued mail {message.id} {message.message_id}")


@click.command("metrics-server")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9101, show_default=True, type=int)
@with_appcontext
def metrics_server(host: str, port: int) -> None:
    """Serve this host's worker metrics (PROMETHEUS_MULTIPROC_DIR) to Prometheus until stopped."""
    config = current_app.config
    if not config["PROMETHEUS_MULTIPROC_DIR"]:
        raise click.ClickException("PROMETHEUS_MULTIPROC_DIR is not set: there is nothing to serve")
    app = metrics.wsgi_app(config["PROMETHEUS_MULTIPROC_DIR"], config["METRICS_TOKEN"])
    with make_server(host, port, app) as server:
        click.echo(f"serving metrics on http://{host}:{server.server_port}/metrics", err=True)
        server.serve_forever()


@click.command("rotate-secrets")
@click.option(
    "--batch-size",
    default=rotation.DEFAULT_BATCH_SIZE,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows re-encrypted per commit.",
)
@with_appcontext
def rotate_secrets(batch_size: int) -> None:
    """Re-encrypt every stored secret with the first key of PORTAL_ENCRYPTION_KEYS."""
    unreadable = 0
    for kind, counts in rotation.rotate_all(batch_size):
        line = f"{kind.name}: {counts.rotated} rotated, {counts.current} already current"
        if counts.changed:
            line += f", {counts.changed} changed meanwhile (left to their writer)"
        if counts.unreadable:
            line += f", {counts.unreadable} not readable with any configured key"
        click.echo(line)
        unreadable += counts.unreadable
    if unreadable:
        # Left as they were: dropping the key that made them would lose them for good.
        raise click.ClickException(
            f"{unreadable} stored secrets could not be decrypted and were left as they were: "
            "add the key that encrypted them to PORTAL_ENCRYPTION_KEYS and run this again"
        )


def init_app(app: Flask) -> None:
    commands = (create_superuser, create_company, demo_command, send_mail)
    for command in (*commands, metrics_server, rotate_secrets):
        app.cli.add_command(command)
    app.cli.add_command(sweeper_command)


@click.command("sweeper")
@with_appcontext
def sweeper_command() -> None:
    """Run the elected sweep and retention purge in the foreground until SIGTERM."""
    sweeper.run_foreground(current_app._get_current_object())
