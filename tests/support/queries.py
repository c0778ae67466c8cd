"""The SQL statements the app sends, as the database receives them."""

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from portal.extensions import db


@contextmanager
def statements() -> Iterator[list[str]]:
    """Record each statement sent on the app's engine inside the with block, in order."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


@contextmanager
def commits() -> Iterator[list[int]]:
    """Count the transactions committed on the app's engine inside the with block."""
    seen: list[int] = []

    def record(conn) -> None:
        seen.append(1)

    event.listen(db.engine, "commit", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "commit", record)
