"""PostgreSQL query plans of the mail log's list queries at 1,000,000 mails.

Creates a scratch database beside --admin-url, migrates it, inserts the mails with
generate_series (two companies, 1% global mails and a small company whose 1,000 mails are
all among the oldest; mixed statuses; a small raw),
runs ANALYZE, then EXPLAIN (ANALYZE, BUFFERS) of the queries the pages run, each as the
first page and as a later page reached through a cursor. Drops the database at the end.

    .venv/bin/python bench/maillog_plan.py [--rows 1000000] [--admin-url URL]
"""

import argparse
import tempfile
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
from flask_migrate import upgrade
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from portal.app import create_app
from portal.extensions import db
from portal.outbox import queries
from portal.outbox.queries import LogFilter
from portal.tenancy import ALL, GLOBAL

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
LATER_ROW = 5_000  # the cursor of a "later page" points this many rows deep

SEED = """
INSERT INTO outbox_messages (company_id, message_id, status, envelope_from, recipients, subject,
                             raw, size, attempts, last_reply, recipient_results, created_at)
SELECT CASE WHEN g > :rows - 10000 AND g % 10 = 0 THEN :initech
            WHEN g % 100 = 0 THEN NULL WHEN g % 3 = 0 THEN :globex ELSE :acme END,
       '<plan' || g || '@example.com>',
       (ARRAY['sent','sent','sent','sent','sent','sent','failed','deferred','queued','unknown'])
           [1 + (g * 7) % 10],
       'noreply@example.com',
       json_build_array('user' || g || '@example.org'),
       'Subject number ' || g,
       convert_to('Subject: Subject number ' || g || E'\\r\\n\\r\\nHello\\r\\n', 'UTF8'),
       40, 1, '250 2.0.0 Ok: queued as Q' || g, '{}'::json,
       now() - g * interval '3 seconds' - (g % 7) * interval '1 microsecond'
FROM generate_series(1, :rows) AS g
"""


def explain(label: str, statement) -> None:
    compiled = statement.compile(
        dialect=postgresql.dialect(), compile_kwargs={"render_postcompile": True}
    )
    connection = db.session.connection().connection.dbapi_connection
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + str(compiled), compiled.params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    print(f"\n=== {label}\n{plan}")


def later_cursor(filters: LogFilter) -> str:
    """The cursor a reader holds after paging LATER_ROW rows deep (found here with OFFSET)."""
    for depth in (LATER_ROW, LATER_ROW // 10):  # small tenants have fewer rows
        query = queries.page_query(filters).limit(1).offset(depth)
        row = db.session.execute(query).first()
        if row is not None:
            return queries.encode_cursor(row.created_at, row.id)
    raise SystemExit(f"fewer than {LATER_ROW // 10} rows for {filters}")


def plans(acme: int, globex: int, initech: int) -> None:
    cases = [
        ("company page (Acme, 66% of mails)", LogFilter(acme)),
        ("company page (Globex, 33% of mails)", LogFilter(globex)),
        ("company page (Initech, 1,000 mails, all among the oldest)", LogFilter(initech)),
        ("company page, status=failed", LogFilter(acme, status="failed")),
        ("superuser, all companies", LogFilter(ALL)),
        ("superuser, global mails only", LogFilter(GLOBAL)),
        ("superuser, status=deferred", LogFilter(ALL, status="deferred")),
    ]
    for label, filters in cases:
        explain(f"{label} — first page", queries.page_query(filters))
        explain(
            f"{label} — later page (cursor)", queries.page_query(filters, later_cursor(filters))
        )
    explain(
        "company page, search 'user4242' (no trigram index)",
        queries.page_query(LogFilter(acme, search="user4242")),
    )
    explain("live rows poll (50 ids)", queries.rows_query(range(1, 51), acme))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--admin-url", default=PG_ADMIN_URL)
    args = parser.parse_args()
    name = f"maillog_plan_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(args.admin_url)._replace(path="/" + name))
    try:
        with tempfile.TemporaryDirectory() as instance:
            app = create_app(
                {
                    "SQLALCHEMY_DATABASE_URI": url.replace(
                        "postgresql://", "postgresql+psycopg://"
                    ),
                    "SECRET_KEY": "plan",
                    "INSTANCE_PATH": instance,
                    "REDIS_URL": "redis://127.0.0.1:6379/15",
                }
            )
            with app.app_context():
                upgrade()
                acme = (
                    db.session.execute(
                        text(
                            "INSERT INTO companies (name, use_own_mail_settings, created_at) "
                            "SELECT name, false, now() "
                            "FROM unnest(ARRAY['Acme', 'Globex', 'Initech'])"
                            " AS name RETURNING id"
                        )
                    )
                    .scalars()
                    .all()
                )
                started = time.monotonic()
                db.session.execute(
                    text(SEED),
                    {"acme": acme[0], "globex": acme[1], "initech": acme[2], "rows": args.rows},
                )
                db.session.commit()
                print(f"inserted {args.rows} mails in {time.monotonic() - started:.1f}s")
                db.session.connection().exec_driver_sql("ANALYZE outbox_messages")
                db.session.commit()
                size = db.session.execute(
                    text("SELECT pg_size_pretty(pg_total_relation_size('outbox_messages'))")
                ).scalar()
                print(f"outbox_messages with indexes: {size}")
                plans(*acme)
                db.session.rollback()
                db.session.remove()
                db.engine.dispose()
    finally:
        with psycopg.connect(args.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print(f"\ndropped {name}")


if __name__ == "__main__":
    main()
