"""The demo's local mail catcher: an SMTP server on loopback that keeps what it receives."""

import argparse
import os
import time
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path

from aiosmtpd.controller import Controller

from portal.config import DEFAULT_INSTANCE_PATH

DEFAULT_PORT = 1025
KEEP = 200  # newest mails kept on disk


def caught_dir(instance_path: str | os.PathLike) -> Path:
    return Path(instance_path) / "caught"


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
            }
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("CATCHER_PORT", DEFAULT_PORT))
    )
    args = parser.parse_args()
    instance = os.environ.get("PORTAL_INSTANCE_PATH") or DEFAULT_INSTANCE_PATH
    controller = Controller(Keeper(caught_dir(instance)), hostname="127.0.0.1", port=args.port)
    controller.start()
    print(f"mail catcher listening on 127.0.0.1:{args.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
