"""What a cached XOAUTH2 access token costs a delivery batch, against resolve() in the same run.

Every batch resolves its company's settings; an OAuth2 batch also asks `tokens.access_token()`,
which reads the grant row (committing, so no transaction stays open across a refresh) and
decrypts the token. This times both, in rounds, on a fresh database.

    .venv/bin/python bench/oauth_tokens.py [--calls 2000] [--rounds 5] [--database-url URL]
"""

import argparse
import os
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from cryptography.fernet import Fernet


def timed(fn, calls: int) -> float:
    """Microseconds per call."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="portal-bench-oauth-"))
    os.environ.update(
        {
            "DATABASE_URL": args.database_url or f"sqlite:///{work / 'bench.db'}",
            "PORTAL_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "PORTAL_INSTANCE_PATH": str(work / "instance"),
            "SECRET_KEY": uuid.uuid4().hex,
            # Production mode (a PostgreSQL DATABASE_URL) needs the base URL too.
            "PORTAL_BASE_URL": "http://127.0.0.1:5000",
        }
    )
    from flask_migrate import upgrade

    from portal import crypto
    from portal.app import create_app
    from portal.extensions import db
    from portal.keys import tokens
    from portal.models import MailConfig, OAuthGrant, utcnow
    from portal.settings.resolution import resolve

    app = create_app()
    with app.app_context():
        upgrade()
        config = MailConfig(
            company_id=None,
            host="smtp.example.com",
            auth_enabled=True,
            auth_method="oauth2",
            username="mailbox@example.com",
        )
        db.session.add(config)
        db.session.flush()
        db.session.add(
            OAuthGrant(
                mail_config_id=config.id,
                refresh_token_encrypted=crypto.encrypt("rt-" + uuid.uuid4().hex),
                access_token_encrypted=crypto.encrypt("at-" + uuid.uuid4().hex),
                access_expires_at=utcnow() + timedelta(hours=1),
                connected_as="mailbox@example.com",
            )
        )
        db.session.commit()
        baseline, cached = [], []
        for _ in range(args.rounds):
            baseline.append(timed(lambda: (resolve(None), db.session.commit()), args.calls))
            cached.append(timed(lambda: tokens.access_token(config.id), args.calls))
        db.session.remove()
        db.engine.dispose()
    base, token = statistics.median(baseline), statistics.median(cached)
    kind = os.environ["DATABASE_URL"].split("://")[0]
    print(f"database: {kind}, {args.calls} calls x {args.rounds}")
    print(f"resolve(None) + commit (baseline): {base:8.1f} us/call (rounds: {_fmt(baseline)})")
    print(f"tokens.access_token(), cached:      {token:8.1f} us/call (rounds: {_fmt(cached)})")
    print(f"ratio cached token / baseline:      {token / base:8.2f}")


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


if __name__ == "__main__":
    main()
