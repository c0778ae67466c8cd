"""The election of one process across all hosts: a lock that dies with the process holding it.

On PostgreSQL a session-level advisory lock on a connection of its own; on SQLite a file
lock beside the database file. Either way the operating system or the database server
frees it when the holder's process (or its connection) dies, so a crashed holder never
needs to be cleared by hand: the next try by another process takes it.
"""

import fcntl
import logging
import os
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)
# pg_advisory_lock's key for the sweeper ("portal" in ASCII). Advisory locks are per
# database, so portals on other databases of the same server elect their own.
SWEEPER_LOCK_ID = 0x706F7274616C


class Election(Protocol):
    """One lock: `hold()` takes it if free (or confirms it is still ours), `resign()` frees it."""

    def hold(self) -> bool: ...

    def resign(self) -> None: ...


class AdvisoryLock:
    """A PostgreSQL session advisory lock, held on a dedicated connection while the holder lives."""

    def __init__(self, engine: Engine, key: int = SWEEPER_LOCK_ID):
        self.engine = engine
        self.key = key
        self.connection: Connection | None = None

    def hold(self) -> bool:
        if self.connection is not None:
            try:
                # A live session still holds its lock; a broken one lost it with the session.
                self.connection.execute(text("SELECT 1"))
                self.connection.commit()
                return True
            except SQLAlchemyError as exc:
                log.warning("lost the lock connection (%s); trying again", exc)
                self.resign()
        connection = self.engine.connect()
        try:
            took = connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key})
            connection.commit()
        except BaseException:
            connection.invalidate()
            connection.close()
            raise
        if not took:
            connection.close()  # back to the pool: it holds no lock
            return False
        self.connection = connection
        return True

    def resign(self) -> None:
        connection, self.connection = self.connection, None
        if connection is None:
            return
        # Closing the DB-API connection ends the session, which frees its lock; a pooled
        # connection would keep the lock for whoever checks it out next.
        connection.invalidate()
        connection.close()


class FileLock:
    """An exclusive flock on a file: free when the holding process dies, whatever way it dies."""

    def __init__(self, path: Path):
        self.path = path
        self.file: IO[str] | None = None

    def hold(self) -> bool:
        if self.file is not None:
            return True
        # flock belongs to the open file, not the process: two openers in one process exclude
        # each other too, and a pool's forked child never inherits its parent's lock.
        file = open(self.path, "a")  # noqa: SIM115 - held open as long as the lock
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            return False
        self.file = file
        return True

    def resign(self) -> None:
        file, self.file = self.file, None
        if file is not None:
            file.close()  # closing the file frees its lock


def election_for(engine: Engine, instance_path: str, name: str) -> Election:
    """The lock named `name` for this database: advisory on PostgreSQL, a file lock otherwise."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine)
    database = engine.url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        path = Path(database).with_name(f"{Path(database).name}.{name}.lock")
    else:
        path = Path(instance_path) / f"{name}.lock"
    os.makedirs(path.parent, exist_ok=True)
    return FileLock(path)
