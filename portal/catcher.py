"""The demo's local mail catcher: an SMTP server on loopback that keeps what it receives."""

import argparse
import json
import os
import re
import signal
import sys
import time
from datetime import UTC, datetime
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path

from aiosmtpd.controller import Controller

from portal.config import DEFAULT_INSTANCE_PATH

DEFAULT_PORT = 1025
DEFAULT_HOST = "127.0.0.1"
KEEP = 200  # newest mails kept on disk
NAME = re.compile(r"^\d+-\d+\.eml$")  # what Keeper writes: nothing else is ever read
LISTENING = "listening.json"  # where a running catcher says its address


def caught_dir(instance_path: str | os.PathLike) -> Path:
    return Path(instance_path) / "caught"


def caught_file(instance_path: str | os.PathLike, name: str) -> Path | None:
    """The caught mail of this name, or None for any other name or file."""
    path = caught_dir(instance_path) / name
    return path if NAME.match(name) and path.is_file() else None


class Keeper:
    """aiosmtpd handler writing each mail to <dir>/<time>-<n>.eml."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.count = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.count += 1
        name = f"{time.time_ns()}-{self.count}.eml"
        envelope_lines = f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n".encode()
        (self.directory / name).write_bytes(envelope_lines + envelope.original_content)
        for old in sorted(self.directory.glob("*.eml"))[:-KEEP]:
            old.unlink(missing_ok=True)
        return "250 2.0.0 Ok: caught"


def received(name: str) -> datetime:
    """When the catcher received the mail of this name (Keeper's names start with it)."""
    return datetime.fromtimestamp(int(name.partition("-")[0]) / 1e9, UTC)


def recent(instance_path: str | os.PathLike, limit: int = 50) -> list[dict]:
    """The newest caught mails' headers, newest first."""
    parser = BytesHeaderParser(policy=policy.default)
    found = []
    for path in sorted(caught_dir(instance_path).glob("*.eml"), reverse=True)[:limit]:
        headers = parser.parsebytes(path.read_bytes())
        found.append(
            {
                "name": path.name,
                "from": str(headers["From"] or ""),
                "to": str(headers["X-Envelope-To"] or headers["To"] or ""),
                "subject": str(headers["Subject"] or ""),
                "date": str(headers["Date"] or ""),
                "received": received(path.name),
            }
        )
    return found


def start(instance_path: str | os.PathLike, port: int, host: str = DEFAULT_HOST) -> Controller:
    """Listen on host:port and say so in the catch's folder, for the viewer to show."""
    directory = caught_dir(instance_path)
    controller = Controller(Keeper(directory), hostname=host, port=port)
    controller.start()
    address = {"host": host, "port": port, "pid": os.getpid()}
    (directory / LISTENING).write_text(json.dumps(address))
    return controller


def stop(instance_path: str | os.PathLike, controller: Controller) -> None:
    controller.stop()
    (caught_dir(instance_path) / LISTENING).unlink(missing_ok=True)


def listening(instance_path: str | os.PathLike) -> str | None:
    """'host:port' of the running catcher; None when none runs (or its process is gone)."""
    try:
        address = json.loads((caught_dir(instance_path) / LISTENING).read_text())
        shown, pid = f"{address['host']}:{int(address['port'])}", int(address["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process lives
    except ProcessLookupError:  # killed without tidying up
        return None
    except PermissionError:  # alive, another user's
        pass
    return shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("CATCHER_PORT", DEFAULT_PORT))
    )
    args = parser.parse_args()
    instance = os.environ.get("PORTAL_INSTANCE_PATH") or DEFAULT_INSTANCE_PATH
    controller = start(instance, args.port)
    # honcho stops its processes with SIGTERM: leave through `finally`, which tidies up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"mail catcher listening on {DEFAULT_HOST}:{args.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stop(instance, controller)


if __name__ == "__main__":
    main()
