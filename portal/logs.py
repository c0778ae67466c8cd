"""Each process's log: one line per record (JSON or text) carrying the ids of what is being handled.

The ids live in context variables, set where the request, job or mail is known and read by a
filter on the one handler, so no call site passes them. Web requests and RQ jobs run one at a
time per thread and the engine's threads start with an empty context, so an id never leaks
from one piece of work to the next as long as each setter resets what it set (`bound`).
"""

import contextlib
import contextvars
import logging
import re
import sys
from collections.abc import Iterator

from pythonjsonlogger.json import JsonFormatter

DEFAULT_LEVEL = "INFO"
DEFAULT_FORMAT = "json"
FORMATS = ("json", "text")
HANDLER_NAME = "portal"
FIELDS = ("request_id", "company_id", "mail_id", "job_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s%(context)s"
# Loggers that set up their own handlers; theirs go through ours instead.
LIBRARY_LOGGERS = ("rq.worker", "rq.job", "rq.scheduler", "rq.worker_pool", "flask_limiter")

_context = {name: contextvars.ContextVar(f"portal_log_{name}", default=None) for name in FIELDS}

# A last line of defence beside the redaction where secrets are handled (the SMTP errors and
# transcripts): the password in a URL's userinfo, and credentials in an Authorization header.
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+(?P<tail>@)", re.I)
_AUTHORIZATION = re.compile(r"(?P<head>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]{8,}", re.I)
REDACTED = "[redacted]"


def scrub(text: str) -> str:
    """The text with URL passwords and bearer/basic credentials replaced."""
    text = _URL_PASSWORD.sub(rf"\g<head>{REDACTED}\g<tail>", text)
    return _AUTHORIZATION.sub(rf"\g<head>{REDACTED}", text)


@contextlib.contextmanager
def bound(**ids) -> Iterator[None]:
    """Log lines inside the block carry these ids (request_id, company_id, mail_id, job_id)."""
    tokens = [_context[name].set(value) for name, value in ids.items()]
    try:
        yield
    finally:
        for name, token in zip(ids, tokens, strict=True):
            _context[name].reset(token)


def bind(**ids) -> None:
    """Set ids for the rest of the current piece of work; its owner calls `clear` when done."""
    for name, value in ids.items():
        _context[name].set(value)


def clear() -> None:
    """Forget every id (the end of a web request: its thread serves the next one)."""
    for var in _context.values():
        var.set(None)


def current(name: str):
    """The id in force for `name`, or None."""
    return _context[name].get()


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _context.items():
            if getattr(record, name, None) is None:  # an explicit `extra` wins
                setattr(record, name, var.get())
        return True


class _JsonFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{n}={getattr(record, n)}" for n in FIELDS if getattr(record, n, None))
        record.context = f" [{ids}]" if ids else ""
        return scrub(super().format(record))


class _Stderr(logging.StreamHandler):
    # sys.stderr looked up at each line, not once: the test runner swaps it per test.
    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def formatter(fmt: str) -> logging.Formatter:
    """The formatter for LOG_FORMAT `json` or `text`."""
    if fmt == "text":
        return _TextFormatter(TEXT_FORMAT)
    return _JsonFormatter(
        ["asctime", "levelname", "name", "message", *FIELDS],
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


def configure(level: str = DEFAULT_LEVEL, fmt: str = DEFAULT_FORMAT) -> None:
    """Give the root logger this process's one handler (replacing an earlier one) on stderr."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(handler)
    handler = _Stderr()
    handler.set_name(HANDLER_NAME)
    handler.addFilter(_ContextFilter())
    handler.setFormatter(formatter(fmt))
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        for own in list(library.handlers):
            library.removeHandler(own)
        library.propagate = True
