"""The `portal` console's own commands: users, companies, the demo and a test mail."""

import secrets

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from portal import accounts, demo
from portal.delivery import sweeper
from portal.exceptions import MailValidationError
from portal.extensions import db
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


def init_app(app: Flask) -> None:
    for command in (create_superuser, create_company, demo_command, send_mail):
        app.cli.add_command(command)
    app.cli.add_command(sweeper_command)


@click.command("sweeper")
@with_appcontext
def sweeper_command() -> None:
    """Run the elected sweep and retention purge in the foreground until SIGTERM."""
    sweeper.run_foreground(current_app._get_current_object())
