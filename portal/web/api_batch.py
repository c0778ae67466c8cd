"""A batch of mails for the enqueue API: up to 500 in one request, stored all or none."""

import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal import outbox
from portal.exceptions import BatchValidationError
from portal.extensions import db
from portal.models import ApiKey, IdempotencyRecord, OutboxMessage
from portal.outbox.intake import MAX_BATCH
from portal.web import api_schema

# A batch racing an earlier request with one of its keys waits this long for that answer.
REPLAY_WAIT_SECONDS = 2.0
REPLAY_POLL_SECONDS = 0.05
MSG_BATCH = f"Give a list of 1 to {MAX_BATCH} mails."
MSG_NOT_STORED = "Not stored because other items are invalid."
MSG_SAME_KEY = "Another item of this batch has this idempotency_key."
MSG_HEADER = "Give each item its own idempotency_key instead."
MSG_KEY_PENDING = (
    "An earlier request with one of these idempotency keys has not finished, "
    "or its mail no longer exists."
)


class BatchItem(api_schema.NewMessage):
    """A mail of a batch; its idempotency_key works as a single mail's Idempotency-Key."""

    idempotency_key: api_schema.IdempotencyKey | None = Field(
        default=None,
        description=(
            "Any unique string per mail (up to 255 characters), shared with the "
            "Idempotency-Key header: an item whose key was used before answers that mail "
            "and is not stored again."
        ),
    )


class NewBatch(BaseModel):
    """Up to 500 mails for the key's company, stored all or none."""

    model_config = ConfigDict(extra="forbid", strict=True)  # as parse() checks

    messages: Annotated[list[BatchItem], Field(min_length=1, max_length=MAX_BATCH)]


class Queued(BaseModel):
    """A mail of the batch, queued now or (replayed) by an earlier request with its key."""

    index: int = Field(ge=0, description="The item's place in messages.")
    status: api_schema.Status
    id: int = Field(description="Use it to ask for the delivery state.")
    message_id: str = Field(description="The mail's Message-ID header.")
    replayed: bool = Field(description="Stored by an earlier request with this key.")


class BatchAccepted(BaseModel):
    """Every mail of the batch, in the order given."""

    results: list[Queued]


class Invalid(BaseModel):
    """An item that is not a valid mail: a message per bad field."""

    index: int = Field(ge=0)
    status: Literal["invalid"]
    errors: dict[str, str]


class NotStored(BaseModel):
    """A valid item, not stored because others are invalid."""

    index: int = Field(ge=0)
    status: Literal["not_stored"]
    error: str


class BatchRefused(BaseModel):
    """Nothing of the batch was stored: each item, invalid or not stored."""

    results: list[Invalid | NotStored]


def parse(
    body: object, internal_domains: tuple[str, ...] = ()
) -> tuple[list[BatchItem], BatchRefused | None, dict[str, str]]:
    """The batch's items; or the answer naming its bad items; or the batch's own errors."""
    if not isinstance(body, dict):
        return [], None, {"body": api_schema.MSG_OBJECT}
    errors = {name: api_schema.MSG_UNKNOWN for name in body if name != "messages"}
    given = body.get("messages")
    if not isinstance(given, list) or not 1 <= len(given) <= MAX_BATCH:
        errors["messages"] = MSG_BATCH
    if errors:
        return [], None, errors
    items: list[BatchItem] = []
    bad: dict[int, dict[str, str]] = {}
    first: dict[str, int] = {}
    for index, raw in enumerate(given):
        item, item_errors = api_schema.parse_message(raw, BatchItem, internal_domains)
        if item is None:
            bad[index] = item_errors
            continue
        items.append(item)
        key = item.idempotency_key
        if key is not None and first.setdefault(key, index) != index:
            bad[index] = {"idempotency_key": MSG_SAME_KEY}
    return items, refused(len(given), bad) if bad else None, {}


def refused(count: int, bad: dict[int, dict[str, str]]) -> BatchRefused:
    """The answer when some items are invalid: nothing of the batch is stored."""
    return BatchRefused(
        results=[
            Invalid(index=i, status="invalid", errors=bad[i])
            if i in bad
            else NotStored(index=i, status="not_stored", error=MSG_NOT_STORED)
            for i in range(count)
        ]
    )


def _used(api_key: ApiKey, keys: list[str]) -> dict[str, OutboxMessage | None]:
    """Each of these keys used before, with its mail (None: still running, or deleted since)."""
    if not keys:
        return {}
    query = (
        select(IdempotencyRecord.key, OutboxMessage)
        .outerjoin(OutboxMessage, OutboxMessage.id == IdempotencyRecord.message_id)
        .where(IdempotencyRecord.api_key_id == api_key.id, IdempotencyRecord.key.in_(keys))
    )
    return {key: message for key, message in db.session.execute(query)}


Reserved = tuple[dict[str, OutboxMessage], dict[str, IdempotencyRecord]]


def _reserve(api_key: ApiKey, items: list[BatchItem]) -> Reserved | None:
    """Earlier mails by key, and this batch's new keys reserved (flushed); None: still running.

    A reserved key (a unique row) makes a concurrent request with it wait, then fail to
    insert it and look again, finding the mail stored by the request that got it first.
    """
    keys = [item.idempotency_key for item in items if item.idempotency_key is not None]
    deadline = time.monotonic() + REPLAY_WAIT_SECONDS
    while True:
        used = _used(api_key, keys)
        if all(message is not None for message in used.values()):
            reserved = {
                key: IdempotencyRecord(api_key_id=api_key.id, key=key)
                for key in keys
                if key not in used
            }
            db.session.add_all(reserved.values())
            try:
                db.session.flush()
            except IntegrityError:
                db.session.rollback()
            else:
                return used, reserved  # type: ignore[return-value]
        else:
            db.session.rollback()  # a fresh snapshot for the next look
        if time.monotonic() >= deadline:
            return None
        time.sleep(REPLAY_POLL_SECONDS)


def queue(api_key: ApiKey, items: list[BatchItem]) -> BatchAccepted | BatchRefused | None:
    """Store the batch's new mails in one transaction (commits), with their keys.

    BatchRefused when a mail cannot be composed (nothing stored); None while an earlier
    request with one of the keys is still running (nothing stored).
    """
    found = _reserve(api_key, items)
    if found is None:
        return None
    used, reserved = found
    results: dict[int, Queued] = {}
    new: list[int] = []
    for index, item in enumerate(items):
        message = used.get(item.idempotency_key) if item.idempotency_key else None
        if message is None:
            new.append(index)
            continue
        results[index] = Queued(
            index=index,
            status=message.status,
            id=message.id,
            message_id=message.message_id,
            replayed=True,
        )

    def keep(rows: list[OutboxMessage]) -> None:
        # Linked in the mails' own transaction, and the answer taken before the commit: no
        # error after it can hide a stored mail from a retry.
        for index, row in zip(new, rows, strict=True):
            key = items[index].idempotency_key
            if key is not None:
                reserved[key].message_id = row.id
            results[index] = Queued(
                index=index, status="queued", id=row.id, message_id=row.message_id, replayed=False
            )

    try:
        outbox.send_many(
            api_key.company, [items[i].send_arguments() for i in new], before_commit=keep
        )
    except BatchValidationError as exc:
        db.session.rollback()  # frees the reserved keys for a corrected batch
        return refused(len(items), {new[i]: errors for i, errors in exc.items.items()})
    return BatchAccepted(results=[results[i] for i in range(len(items))])
