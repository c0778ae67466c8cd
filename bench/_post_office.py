"""django-post_office in a throwaway Django project, run in subprocesses: queue, bulk, drain."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from _common import RECIPIENT, SENDER, STALL_SECONDS, stop_group

SENT_COUNT = "SELECT count(*) FROM post_office_email WHERE status = 0"  # 0: STATUS.sent
WARM_UP_CALLS = 20

# Written to the temp dir at run time: the only Django code there is.
SETTINGS = """
import json, os
SECRET_KEY = "bench"
DEBUG = os.environ.get("BENCH_DEBUG") == "1"
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["post_office"]
DATABASES = {"default": json.loads(os.environ["BENCH_DJANGO_DATABASE"])}
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = int(os.environ["BENCH_SMTP_PORT"])
DEFAULT_FROM_EMAIL = "noreply@example.com"
POST_OFFICE = {}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler", "level": "WARNING"}},
    "loggers": {"post_office": {"handlers": ["console"], "level": "WARNING"}},
}
"""

MANAGE = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""

# `python po_run.py ACTION N`: times (or counts the SQL of) N calls; prints one JSON line.
RUNNER = """
import json, os, sys, time
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_settings")
import django
django.setup()
from collections import Counter
from django.db import connection
from post_office import mail
from post_office.models import Email

action, n = sys.argv[1], int(sys.argv[2])
body = open(os.environ["BENCH_BODY_FILE"]).read()
sender, recipient = os.environ["BENCH_SENDER"], os.environ["BENCH_RECIPIENT"]

def kwargs(i):
    return dict(recipients=[recipient], sender=sender, subject=f"bench {i:05d}", message=body)

warm = [mail.send(**kwargs(90000 + i)).id for i in range(int(os.environ["BENCH_WARM_UP"]))]
sample = Email.objects.get(id=warm[0]).prepare_email_message().message()
out = {"size": len(sample.as_bytes(linesep="\\r\\n"))}  # as it goes on the wire
Email.objects.filter(id__in=warm).delete()
if action == "queue":
    start = time.perf_counter()
    for i in range(n):
        mail.send(**kwargs(i))
    out["seconds"] = time.perf_counter() - start
elif action == "bulk":
    batch = [kwargs(i) for i in range(n)]
    start = time.perf_counter()
    mail.send_many(batch)
    out["seconds"] = time.perf_counter() - start
elif action == "count":
    verbs, implicit = Counter(), 0
    commits = []
    real_commit = connection.commit
    def counted_commit():
        commits.append(1)
        return real_commit()
    connection.commit = counted_commit
    def count(execute, sql, params, many, context):
        global implicit
        verbs[sql.split(None, 1)[0].upper()] += 1
        if connection.get_autocommit() and not connection.in_atomic_block:
            implicit += 1  # autocommit: the statement is a transaction of its own
        return execute(sql, params, many, context)
    with connection.execute_wrapper(count):
        for i in range(n):
            mail.send(**kwargs(i))
    out.update(statements=dict(verbs), autocommitted=implicit, commits=len(commits))
print(json.dumps(out))
"""


def django_database(url: str) -> dict:
    """Django's DATABASES entry for a sqlite:/// or postgresql:// URL.

    SQLite gets the journal mode the portal sets for itself (WAL) and the same busy timeout,
    so both write to the same kind of file.
    """
    if url.startswith("sqlite:///"):
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": url[len("sqlite:///") :],
            "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;", "timeout": 30},
        }
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": parts.username or "",
        "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


class PostOffice:
    """A Django project using post_office, in its own dir and database; Django never loads here."""

    def __init__(self, work: Path, database_url: str, smtp_port: int, body: str):
        self.dir = work / f"django-{database_url.rsplit('/', 1)[-1].replace('.', '-')}"
        self.dir.mkdir()
        self.url = database_url
        (self.dir / "bench_settings.py").write_text(SETTINGS)
        (self.dir / "manage.py").write_text(MANAGE)
        (self.dir / "po_run.py").write_text(RUNNER)
        (self.dir / "body.txt").write_text(body)
        self.env = {
            **os.environ,
            "BENCH_DJANGO_DATABASE": json.dumps(django_database(database_url)),
            "BENCH_SMTP_PORT": str(smtp_port),
            "BENCH_BODY_FILE": str(self.dir / "body.txt"),
            "BENCH_SENDER": SENDER,
            "BENCH_RECIPIENT": RECIPIENT,
            "BENCH_WARM_UP": str(WARM_UP_CALLS),
            "PYTHONPATH": str(self.dir),
        }
        self.env.pop("DJANGO_SETTINGS_MODULE", None)
        self.size = 0
        self._conn = None

    def _run(self, *argv: str, timeout: float = 600, debug: bool = False) -> str:
        env = {**self.env, "BENCH_DEBUG": "1"} if debug else self.env
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, *argv],
            cwd=self.dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = process.communicate(timeout=timeout)
        finally:
            stop_group(process, 1)  # a no-op once it has exited
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {process.returncode}:\n{err[-2000:]}")
        return out

    def migrate(self) -> None:
        """Create post_office's tables with Django's own `migrate`."""
        self._run("manage.py", "migrate", "--verbosity", "0")

    def _timed(self, action: str, n: int) -> float:
        result = json.loads(self._run("po_run.py", action, str(n)).splitlines()[-1])
        self.size = result["size"]
        return result["seconds"]

    def queue(self, n: int) -> float:
        """Seconds for n `mail.send()` calls (priority medium: queued, not sent)."""
        return self._timed("queue", n)

    def bulk(self, n: int) -> float:
        """Seconds for one `mail.send_many()` of n mails."""
        return self._timed("bulk", n)

    def count_statements(self, n: int) -> dict:
        """SQL statements and commits of n `mail.send()` calls."""
        return json.loads(self._run("po_run.py", "count", str(n), debug=True).splitlines()[-1])

    def drain(self, n: int, log_level: int = 1) -> float:
        """Seconds from starting `send_queued_mail` to n mails marked sent in the database.

        `log_level` is the command's own: 0 nothing, 1 failures only, 2 a Log row per mail.
        """
        log = open(self.dir / "send_queued_mail.log", "ab")  # noqa: SIM115 - handed to the child
        start = time.monotonic()
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "manage.py", "send_queued_mail", "--log-level", str(log_level)]
            + ["--lockfile", str(self.dir / "send_queued_mail")],
            cwd=self.dir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            last_progress, seen = time.monotonic(), -1
            while (done := self.sent()) < n:
                if done != seen:
                    seen, last_progress = done, time.monotonic()
                elif time.monotonic() - last_progress > STALL_SECONDS:
                    raise RuntimeError(f"post_office stalled at {done}/{n} sent")
                if process.poll() is not None and self.sent() < n:
                    raise RuntimeError(f"send_queued_mail exited with {done}/{n} sent")
                time.sleep(0.02)
            return time.monotonic() - start
        finally:
            stop_group(process, 30)

    def _sql(self, *statements: str) -> list:
        """Run statements on one kept connection; each sees what is committed by then."""
        if self._conn is None:
            if self.url.startswith("sqlite:///"):
                import sqlite3

                self._conn = sqlite3.connect(self.url[len("sqlite:///") :], 30)
            else:
                import psycopg

                self._conn = psycopg.connect(self.url, autocommit=True)
        rows = []
        for statement in statements:
            cursor = self._conn.execute(statement)
            rows.append(cursor.fetchall() if statement.startswith("SELECT") else [])
        self._conn.commit()
        return rows

    def close(self) -> None:
        """Close the connection this process keeps to post_office's database."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def sent(self) -> int:
        """How many mails post_office has marked sent."""
        return self._sql(SENT_COUNT)[0][0][0]

    def reset(self) -> None:
        """Empty post_office's mail and log tables."""
        self._sql("DELETE FROM post_office_log", "DELETE FROM post_office_email")
