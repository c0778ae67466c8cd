"""Errors raised by the portal's services."""


class PortalError(Exception):
    """Base class of the portal's own errors."""


class SecretError(PortalError):
    """A secret cannot be encrypted or decrypted with the configured keys."""


class AccessError(PortalError):
    """The current user may not touch the requested object."""


class MailValidationError(PortalError):
    """A mail cannot be queued; `errors` maps each bad field to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors
