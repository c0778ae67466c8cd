"""The demo's mail catcher run by a test: its port, what it caught, a mail sent to it."""

import smtplib
import socket
from email.message import EmailMessage

from portal import catcher


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Catcher:
    def __init__(self, instance_path: str, port: int):
        self.instance_path, self.port = instance_path, port

    def deliver(self, message: EmailMessage) -> str:
        """Send the mail to the catcher over SMTP; the name it was caught under."""
        with smtplib.SMTP("127.0.0.1", self.port) as client:
            client.send_message(message)
        return self.newest()

    def newest(self) -> str:
        return catcher.recent(self.instance_path)[0]["name"]

    def source(self, name: str) -> bytes:
        return (catcher.caught_dir(self.instance_path) / name).read_bytes()


def mail(subject: str = "Caught", text: str = "Hello catcher", **parts) -> EmailMessage:
    """A mail as another program would send it: text, and html or attachments when given."""
    message = EmailMessage()
    message["From"] = parts.pop("sender", "a@example.com")
    message["To"], message["Subject"] = "b@example.org", subject
    message.set_content(text, cte=parts.pop("cte", None))
    if "html" in parts:
        message.add_alternative(parts.pop("html"), subtype="html")
    for name, content_type, data in parts.pop("attachments", ()):
        maintype, _, subtype = content_type.partition("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message
