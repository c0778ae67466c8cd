"""The enqueue API for other services: POST and GET /api/v1/messages, with API keys."""

import base64
import binascii
import hashlib
import time

from flask import Blueprint, current_app, g, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from portal import outbox, tenancy
from portal.exceptions import MailValidationError
from portal.extensions import db, limiter
from portal.keys import api_keys
from portal.models import IdempotencyRecord, OutboxMessage, as_utc
from portal.web import openapi

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_IDEMPOTENCY_KEY_CHARS = 255
# A retry racing the first request with its Idempotency-Key waits this long for its answer.
REPLAY_WAIT_SECONDS = 2.0
REPLAY_POLL_SECONDS = 0.05
ADDRESS_LISTS = ("to", "cc", "bcc")
OPTIONAL_STRINGS = ("subject", "text", "html", "reply_to")
FIELDS = frozenset((*ADDRESS_LISTS, *OPTIONAL_STRINGS, "attachments"))
PARTS = frozenset(("filename", "content_type", "content_base64"))  # of an attachment
ERROR_CODES = (400, 401, 403, 404, 405, 409, 413, 415, 429, 500)
MSG_UNAUTHORIZED = "Send a valid API key: Authorization: Bearer <key>."
MSG_NOT_FOUND = "No such message."
MSG_KEY_PENDING = (
    "The first request with this Idempotency-Key has not finished, or its mail no longer exists."
)


def _error(status: int, message: str, **headers):
    response = jsonify(error=message)
    response.status_code = status
    response.headers.update(headers)
    return response


def _invalid(errors: dict[str, str]):
    return jsonify(errors=errors), 422


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return _error(exc.code or 500, exc.description or exc.name)


# Handlers by code: an app-wide handler by code (the HTML 429 page) would beat one by class.
for _code in ERROR_CODES:
    bp.register_error_handler(_code, _http_error)


def _rate_limit() -> str:
    return current_app.config["API_RATE_LIMIT"]


def _rate_key() -> str:
    key = g.get("api_key")
    if key is not None:
        return f"apikey:{key.id}"
    header = request.headers.get("Authorization", "")
    return "apiauth:" + hashlib.sha256(header.encode()).hexdigest()


api_limit = limiter.shared_limit(_rate_limit, scope="api", key_func=_rate_key)


@bp.before_request
def _authenticate():
    if request.endpoint == "api.openapi":
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    key = api_keys.authenticate(token.strip()) if scheme.lower() == "bearer" else None
    if key is None:
        return _error(401, MSG_UNAUTHORIZED, **{"WWW-Authenticate": "Bearer"})
    db.session.commit()  # last_used_at
    g.api_key = key
    limit = current_app.config["API_MAX_REQUEST_BYTES"]
    # One byte over the limit tells a too large body without Content-Length from one at it.
    request.max_content_length = limit + 1
    if (request.content_length or 0) > limit or len(request.get_data(cache=True)) > limit:
        return _error(413, f"The request body is larger than {limit} bytes.")
    return None


@bp.after_request
def _no_store(response):
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _string_list(body: dict, name: str, errors: dict[str, str]) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        errors[name] = "Give a list of email addresses (strings)."
        return []
    return value


def _attachments(value, errors: dict[str, str]) -> list[outbox.Attachment]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        errors["attachments"] = "Give a list of objects {filename, content_type, content_base64}."
        return []
    found = []
    for index, item in enumerate(value):
        where = f"attachments[{index}]"
        errors.update({f"{where}.{name}": "Unknown field." for name in item if name not in PARTS})
        filename = item.get("filename")
        content_type = item.get("content_type", "application/octet-stream")
        content = item.get("content_base64")
        if not isinstance(filename, str) or not filename.strip():
            errors[f"{where}.filename"] = "Give the file name."
        if not isinstance(content_type, str) or "/" not in content_type:
            errors[f"{where}.content_type"] = "Give a MIME type such as application/pdf."
        if not isinstance(content, str):
            errors[f"{where}.content_base64"] = "Give the content, base64-encoded."
            continue
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            errors[f"{where}.content_base64"] = "Not valid base64."
            continue
        if not any(key.startswith(where + ".") for key in errors):
            found.append(outbox.Attachment(filename.strip(), content_type, data))
    return found


def parse_message(body) -> tuple[dict, dict[str, str]]:
    """The keyword arguments for outbox.send from a request body, and the errors per field."""
    if not isinstance(body, dict):
        return {}, {"body": "Send a JSON object."}
    errors = {name: "Unknown field." for name in body if name not in FIELDS}
    fields = {name: _string_list(body, name, errors) for name in ADDRESS_LISTS}
    for name in OPTIONAL_STRINGS:
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            errors[name] = "Give a string."
        fields[name] = value if isinstance(value, str) else None
    fields["subject"] = fields["subject"] or ""
    fields["attachments"] = _attachments(body.get("attachments"), errors)
    return fields, errors


def _accepted(message: OutboxMessage):
    return jsonify(id=message.id, message_id=message.message_id, status=message.status), 202


def _stored_message(key: str) -> OutboxMessage | None:
    query = select(OutboxMessage).join(
        IdempotencyRecord, IdempotencyRecord.message_id == OutboxMessage.id
    )
    query = query.where(IdempotencyRecord.api_key_id == g.api_key.id, IdempotencyRecord.key == key)
    return db.session.scalar(query)


def _replay(key: str):
    """The first request's answer; waits a moment while that request is still running."""
    deadline = time.monotonic() + REPLAY_WAIT_SECONDS
    while (message := _stored_message(key)) is None and time.monotonic() < deadline:
        db.session.rollback()  # a fresh snapshot for the next look
        time.sleep(REPLAY_POLL_SECONDS)
    if message is None:
        # Still running, or its mail has been deleted since (mail retention).
        return _error(409, MSG_KEY_PENDING)
    return _accepted(message)


def _key_used(key: str) -> bool:
    query = select(IdempotencyRecord.id).where(
        IdempotencyRecord.api_key_id == g.api_key.id, IdempotencyRecord.key == key
    )
    return db.session.scalar(query) is not None


@bp.post("/messages")
@api_limit
def create_message():
    """Queue a mail for the key's company."""
    idempotency_key = request.headers.get("Idempotency-Key")
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        return _invalid({"Idempotency-Key": f"Use 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters."})
    body = request.get_json(silent=True)
    if body is None:
        return _invalid({"body": "Send a JSON object with Content-Type: application/json."})
    fields, errors = parse_message(body)
    if errors:
        return _invalid(errors)
    record = None
    if idempotency_key is not None:
        if _key_used(idempotency_key):
            return _replay(idempotency_key)
        # The reserved key (a unique row) makes a concurrent retry wait, then fail to insert.
        record = IdempotencyRecord(api_key_id=g.api_key.id, key=idempotency_key)
        db.session.add(record)
        try:
            db.session.flush()
        except IntegrityError:
            db.session.rollback()
            return _replay(idempotency_key)
    try:
        message = outbox.send(g.api_key.company, user=None, **fields)
    except MailValidationError as exc:
        db.session.rollback()  # frees the reserved Idempotency-Key for a corrected retry
        return _invalid(exc.errors)
    if record is not None:
        record.message_id = message.id
        db.session.commit()
    return _accepted(message)


def message_status(message: OutboxMessage) -> dict:
    """A mail's delivery state as the API shows it."""
    results = message.recipient_results or {}
    return {
        "id": message.id,
        "message_id": message.message_id,
        "status": message.status,
        "attempts": message.attempts,
        "last_reply": message.last_reply,
        "created_at": as_utc(message.created_at).isoformat(),
        "sent_at": as_utc(message.sent_at).isoformat() if message.sent_at else None,
        "recipients": {
            rcpt: results.get(rcpt, {}).get("status", "queued") for rcpt in message.recipients
        },
    }


@bp.get("/messages/<int:message_id>")
@api_limit
def show_message(message_id: int):
    """A mail of the key's company; others' mails answer 404 like unknown ones."""
    message = tenancy.find(OutboxMessage, message_id, g.api_key.company_id)
    if message is None:
        return _error(404, MSG_NOT_FOUND)
    return jsonify(message_status(message))


@bp.get("/openapi.json", endpoint="openapi")
def openapi_document():
    """The OpenAPI 3.1 description of this API."""
    return jsonify(openapi.DOCUMENT)
