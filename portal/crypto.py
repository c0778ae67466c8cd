"""Encryption of stored secrets with MultiFernet; keys never live in the database."""

from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import Flask, current_app

from portal.exceptions import ConfigError, SecretError

KEY_FILE_NAME = "encryption.keys"


def load_keys(app: Flask) -> list[bytes]:
    """Keys from PORTAL_ENCRYPTION_KEYS (comma-separated, newest first) or the instance file."""
    configured = app.config.get("PORTAL_ENCRYPTION_KEYS")
    if not configured:
        key_file = Path(app.instance_path) / KEY_FILE_NAME
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_bytes(Fernet.generate_key() + b"\n")
            key_file.chmod(0o600)
            app.logger.warning("generated an encryption key in %s", key_file)
        configured = key_file.read_text()
    keys = [k.strip().encode() for k in configured.replace("\n", ",").split(",") if k.strip()]
    if not keys:
        raise SecretError("no encryption key configured")
    return keys


def _fernets(keys: list[bytes]) -> list[Fernet]:
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except ValueError:
            # The position only: the message ends up in logs, and the key must not.
            raise ConfigError(
                f"encryption key {position} of {len(keys)} (PORTAL_ENCRYPTION_KEYS) is not a "
                "Fernet key: 32 url-safe base64-encoded bytes, as Fernet.generate_key() makes"
            ) from None
    return fernets


def init_app(app: Flask) -> None:
    fernets = _fernets(load_keys(app))
    app.extensions["portal.fernet"] = MultiFernet(fernets)
    app.extensions["portal.fernet.newest"] = fernets[0]


def _fernet() -> MultiFernet:
    return current_app.extensions["portal.fernet"]


def encrypt(plaintext: str) -> str:
    """Encrypt a secret with the newest key."""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """Decrypt a secret with any configured key."""
    return decrypt_bytes(token.encode()).decode()


def encrypt_bytes(plaintext: bytes) -> bytes:
    """Encrypt binary data (a whole mail) with the newest key."""
    return _fernet().encrypt(plaintext)


def decrypt_bytes(token: bytes) -> bytes:
    """Decrypt binary data with any configured key."""
    try:
        return _fernet().decrypt(token)
    except InvalidToken as exc:
        raise SecretError("a stored secret cannot be decrypted with the configured keys") from exc


def rotated(token: bytes) -> bytes | None:
    """The token re-encrypted with the newest key (`MultiFernet.rotate`, its timestamp kept).

    None when the newest key made it already, so rotating twice changes nothing.
    """
    try:
        current_app.extensions["portal.fernet.newest"].decrypt(token)
        return None
    except InvalidToken:
        pass
    try:
        return _fernet().rotate(token)
    except InvalidToken as exc:
        raise SecretError("a stored secret cannot be decrypted with the configured keys") from exc
