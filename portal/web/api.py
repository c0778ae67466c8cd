"""The enqueue API for other services: POST and GET /api/v1/messages (and a batch), API keys."""

import hashlib
import json
import logging
import math
import time

from flask import Blueprint, current_app, g, jsonify, request
from flask_limiter.util import get_remote_address
from limits import parse
from pydantic import BaseModel, TypeAdapter, ValidationError
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from portal import logs, outbox, tenancy
from portal.exceptions import MailValidationError
from portal.extensions import db, limiter
from portal.keys import api_keys
from portal.models import IdempotencyRecord, OutboxMessage, as_utc
from portal.settings.resolution import internal_domains
from portal.web import api_batch, api_schema, openapi

bp = Blueprint("api", __name__, url_prefix="/api/v1")
log = logging.getLogger(__name__)

# A retry racing the first request with its Idempotency-Key waits this long for its answer.
REPLAY_WAIT_SECONDS = 2.0
REPLAY_POLL_SECONDS = 0.05
ERROR_CODES = (400, 401, 403, 404, 405, 409, 413, 415, 429, 500)
AUTH_FAILURES = "api-auth-failures"  # the limiter's scope for failed authentications
IDEMPOTENCY_KEY = TypeAdapter(api_schema.IdempotencyKey)
MESSAGE_ID = TypeAdapter(api_schema.MessageId)
MSG_UNAUTHORIZED = "Send a valid API key: Authorization: Bearer <key>."
MSG_AUTH_FAILURES = "Too many failed authentications from this address; retry in {} seconds."
MSG_NOT_FOUND = "No such message."
MSG_KEY_PENDING = (
    "The first request with this Idempotency-Key has not finished, or its mail no longer exists."
)
MSG_IDEMPOTENCY_KEY = "Use 1 to 255 characters, no control characters."
MSG_NOT_JSON = "Send a JSON object with Content-Type: application/json."
MSG_TOO_DEEP = "The JSON is nested too deeply."


def _answer(model: BaseModel, status: int = 200, **headers):
    response = jsonify(model.model_dump(mode="json"))
    response.status_code = status
    response.headers.update(headers)
    return response


def _error(status: int, message: str, **headers):
    return _answer(api_schema.Error(error=message), status, **headers)


def _invalid(errors: dict[str, str]):
    return _answer(api_schema.ValidationErrors(errors=errors), 422)


def http_error(exc: HTTPException):
    """An HTTP error as the API answers it: JSON, with the error's own headers (Allow, ...)."""
    response = _error(exc.code or 500, exc.description or exc.name)
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def owns(path: str) -> bool:
    """Whether a path is the API's, found or not: its errors are JSON too."""
    prefix = bp.url_prefix or ""
    return path == prefix or path.startswith(prefix + "/")


# Handlers by code: an app-wide handler by code (the HTML 429 page) would beat one by class.
for _code in ERROR_CODES:
    bp.register_error_handler(_code, http_error)


def _rate_limit() -> str:
    return current_app.config["API_RATE_LIMIT"]


def _rate_key() -> str:
    key = g.get("api_key")
    if key is not None:
        return f"apikey:{key.id}"
    header = request.headers.get("Authorization", "")
    return "apiauth:" + hashlib.sha256(header.encode()).hexdigest()


api_limit = limiter.shared_limit(_rate_limit, scope="api", key_func=_rate_key)


def _refused():
    """401, or 429 once this client has failed too often; only failures count."""
    # A key holds 256 random bits: guessing is hopeless, the limit only slows floods. So it is
    # counted after the key's lookup, and a client over it still gets in with a valid key: a
    # broken service cannot lock out a working one behind the same address.
    limit = parse(current_app.config["API_AUTH_FAILURE_LIMIT"])
    client = get_remote_address()
    try:
        allowed = limiter.limiter.hit(limit, AUTH_FAILURES, client)
        reset_at = (
            0.0 if allowed else limiter.limiter.get_window_stats(limit, AUTH_FAILURES, client)[0]
        )
    except RedisError as exc:
        log.warning("failed authentications not counted (%s)", exc)
        allowed = True
    if not allowed:
        seconds = max(1, math.ceil(reset_at - time.time()))
        return _error(429, MSG_AUTH_FAILURES.format(seconds), **{"Retry-After": str(seconds)})
    return _error(401, MSG_UNAUTHORIZED, **{"WWW-Authenticate": "Bearer"})


@bp.before_request
def _authenticate():
    if request.endpoint == "api.openapi":
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    key = api_keys.authenticate(token.strip()) if scheme.lower() == "bearer" else None
    if key is None:
        return _refused()
    db.session.commit()  # last_used_at
    g.api_key = key
    logs.bind(company_id=key.company_id)
    # A batch has its own cap: many small mails, never many large ones in one request.
    cap = (
        "API_MAX_BATCH_BYTES" if request.endpoint == "api.create_batch" else "API_MAX_REQUEST_BYTES"
    )
    limit = current_app.config[cap]
    # One byte over the limit tells a too large body without Content-Length from one at it.
    request.max_content_length = limit + 1
    if (request.content_length or 0) > limit or len(request.get_data(cache=True)) > limit:
        return _error(413, f"The request body is larger than {limit} bytes.")
    return None


@bp.after_request
def _no_store(response):
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _json_body() -> tuple[object, str | None]:
    """The request's JSON, or what is wrong with it."""
    if not request.is_json:
        return None, MSG_NOT_JSON
    try:
        return json.loads(request.get_data(cache=True)), None
    except RecursionError:
        return None, MSG_TOO_DEEP
    except ValueError:
        return None, MSG_NOT_JSON


def _accepted(message: OutboxMessage):
    accepted = api_schema.Accepted(
        id=message.id, message_id=message.message_id, status=message.status
    )
    return _answer(accepted, 202)


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
    if idempotency_key is not None:
        try:
            IDEMPOTENCY_KEY.validate_python(idempotency_key)
        except ValidationError:
            return _invalid({"Idempotency-Key": MSG_IDEMPOTENCY_KEY})
    body, problem = _json_body()
    if problem is not None:
        return _invalid({"body": problem})
    message, errors = api_schema.parse_message(body, internal_domains=internal_domains())
    if message is None:
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
    committed = {}

    def keep(row: OutboxMessage) -> None:
        # Linked in the mail's own transaction, and the answer taken before the commit: no
        # error after it can hide a stored mail from a retry, or answer 500 for it.
        if record is not None:
            record.message_id = row.id
        committed.update(id=row.id, message_id=row.message_id, status=row.status)

    try:
        outbox.send(g.api_key.company, user=None, before_commit=keep, **message.send_arguments())
    except MailValidationError as exc:
        db.session.rollback()  # frees the reserved Idempotency-Key for a corrected retry
        return _invalid(exc.errors)
    return _answer(api_schema.Accepted(**committed), 202)


@bp.post("/messages/batch")
@api_limit
def create_batch():
    """Queue up to 500 mails for the key's company: all of them, or none."""
    if request.headers.get("Idempotency-Key") is not None:
        return _invalid({"Idempotency-Key": api_batch.MSG_HEADER})
    body, problem = _json_body()
    if problem is not None:
        return _invalid({"body": problem})
    items, refusal, errors = api_batch.parse(body, internal_domains())
    if errors:
        return _invalid(errors)
    if refusal is not None:
        return _answer(refusal, 422)
    answer = api_batch.queue(g.api_key, items)
    if answer is None:
        return _error(409, api_batch.MSG_KEY_PENDING)
    return _answer(answer, 202 if isinstance(answer, api_batch.BatchAccepted) else 422)


def message_status(message: OutboxMessage) -> api_schema.MessageState:
    """A mail's delivery state as the API shows it."""
    results = message.recipient_results or {}
    return api_schema.MessageState(
        id=message.id,
        message_id=message.message_id,
        status=message.status,
        attempts=message.attempts,
        last_reply=message.last_reply,
        created_at=as_utc(message.created_at).isoformat(),
        sent_at=as_utc(message.sent_at).isoformat() if message.sent_at else None,
        recipients={
            rcpt: results.get(rcpt, {}).get("status", "queued") for rcpt in message.recipients
        },
    )


@bp.get("/messages/<int:message_id>")
@api_limit
def show_message(message_id: int):
    """A mail of the key's company; others' mails answer 404 like unknown ones."""
    try:
        MESSAGE_ID.validate_python(message_id)
    except ValidationError:
        return _error(404, MSG_NOT_FOUND)  # past the database's ids: no mail either
    message = tenancy.find(OutboxMessage, message_id, g.api_key.company_id)
    if message is None:
        return _error(404, MSG_NOT_FOUND)
    return _answer(message_status(message))


@bp.get("/openapi.json", endpoint="openapi")
def openapi_document():
    """The OpenAPI 3.1 description of this API."""
    return jsonify(openapi.DOCUMENT)
