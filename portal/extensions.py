"""Flask extensions, created unbound; `create_app` binds them.

`db` is made at import. The web's own (`migrate`, `login_manager`, `csrf`, `limiter`) are made
on first use, the same object ever after: the worker needs the database alone, and starts
sooner without loading Alembic and Flask-Limiter.
"""

import sqlite3
import threading

from flask_login import current_user
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

# Named constraints keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)


def _user_key() -> str:
    # The id alone: a new session generation must not bring a fresh allowance.
    return f"user:{current_user.id}" if current_user.is_authenticated else "anonymous"


def _migrate():
    from flask_migrate import Migrate

    return Migrate(render_as_batch=True, compare_type=True)


def _login_manager():
    from flask_login import LoginManager

    return LoginManager()


def _csrf():
    from flask_wtf.csrf import CSRFProtect

    return CSRFProtect()


def _limiter():
    from flask_limiter import Limiter

    # Storage is Redis, set from REDIS_URL (or the embedded Redis) when the app is created.
    return Limiter(key_func=_user_key)


_WEB = {"migrate": _migrate, "login_manager": _login_manager, "csrf": _csrf, "limiter": _limiter}
_made = threading.Lock()


def __getattr__(name: str):
    """A web extension, made on first use (`from portal.extensions import limiter` included)."""
    if name not in _WEB:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _made:  # two threads at once must still get one limiter
        if name not in globals():
            globals()[name] = _WEB[name]()
    return globals()[name]


@event.listens_for(Engine, "connect")
def _tune_sqlite(dbapi_connection, _record) -> None:
    # The web process and the workers write at once: WAL lets readers on, and writers wait.
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
