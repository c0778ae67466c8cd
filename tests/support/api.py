"""Calling the enqueue API as a service would: its path, the bearer header, a mail body."""

MESSAGES = "/api/v1/messages"


def auth(token: str, **headers) -> dict:
    return {"Authorization": f"Bearer {token}", **headers}


def mail_body(**fields) -> dict:
    return {"to": ["customer@example.org"], "subject": "Invoice", "text": "Attached.", **fields}
