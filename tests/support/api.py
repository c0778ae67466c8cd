"""Calling the enqueue API as a service would: its paths, the bearer header, a mail body."""

from portal.extensions import db
from portal.keys import api_keys

MESSAGES = "/api/v1/messages"
BATCH = "/api/v1/messages/batch"


def auth(token: str, **headers) -> dict:
    return {"Authorization": f"Bearer {token}", **headers}


def mail_body(**fields) -> dict:
    return {"to": ["customer@example.org"], "subject": "Invoice", "text": "Attached.", **fields}


def new_key(company, user=None, name="Service") -> str:
    """Create an API key for a company (commits); its token, as the admin copies it."""
    _, token = api_keys.create(company, name, user)
    db.session.commit()
    return token


def batch_body(*items: dict) -> dict:
    return {"messages": list(items)}
