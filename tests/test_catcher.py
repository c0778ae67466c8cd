"""The demo's mail catcher: a real SMTP server whose catch the superuser can read."""

import smtplib
import socket
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from portal import catcher


@pytest.fixture
def running_catcher(app):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    keeper = catcher.Keeper(catcher.caught_dir(app.instance_path))
    controller = Controller(keeper, hostname="127.0.0.1", port=port)
    controller.start()
    yield port
    controller.stop()
    for path in catcher.caught_dir(app.instance_path).glob("*.eml"):
        path.unlink()


def test_caught_mail_is_listed_and_readable(as_superuser, app, running_catcher):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.org", "Caught"
    message.set_content("Hello catcher")
    with smtplib.SMTP("127.0.0.1", running_catcher) as client:
        client.send_message(message)
    page = as_superuser.get("/settings/mail/caught").text
    assert "Caught" in page and "b@example.org" in page
    (mail,) = catcher.recent(app.instance_path)
    shown = as_superuser.get(f"/settings/mail/caught/{mail['name']}").text
    assert "Hello catcher" in shown


@pytest.mark.parametrize("name", ["../secret_key", "..%2Fsecret_key", "x.eml"])
def test_only_caught_files_can_be_read(as_superuser, name):
    assert as_superuser.get(f"/settings/mail/caught/{name}").status_code == 404
