"""Fixtures shared by the web tests: global settings with a sender, enough to queue mail."""

import pytest
from support.factories import mail_config


@pytest.fixture
def mail_settings(app):
    """Global settings with a sender: enough to queue mail (no worker runs in these tests)."""
    return mail_config(
        host="smtp.example.com",
        port=587,
        security="starttls",
        default_sender_enabled=True,
        sender_address="noreply@example.com",
        sender_name="Example Portal",
    )
