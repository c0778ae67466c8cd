"""The error types the parts share; the SMTP client's own live in portal/wire/errors.py."""


class PortalError(Exception):
    """Base class of the portal's own errors."""


class SecretError(PortalError):
    """A secret cannot be encrypted or decrypted with the configured keys."""


class ConfigError(PortalError, RuntimeError):
    """The configuration cannot run: the message names every variable to set or fix."""


class LoginThrottledError(PortalError):
    """Too many failed log-ins: no password is checked for `retry_after` more seconds."""

    def __init__(self, retry_after: float):
        super().__init__(f"log-ins paused for {retry_after:.0f} s")
        self.retry_after = retry_after


class MailValidationError(PortalError):
    """A mail cannot be queued; `errors` maps each bad field to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class BatchValidationError(MailValidationError):
    """Mails of a batch cannot be queued; `items` maps each bad mail's index to its errors.

    `errors` holds them all, as "mails[3].to", with errors of the batch itself ("mails").
    """

    def __init__(self, items: dict[int, dict[str, str]], errors: dict[str, str] | None = None):
        flat = {
            f"mails[{index}].{name}": message
            for index, fields in items.items()
            for name, message in fields.items()
        }
        super().__init__({**(errors or {}), **flat})
        self.items = items


class OAuthTokenError(PortalError):
    """No access token: `admin_action` when only an admin can fix it (mail waits, never fails)."""

    def __init__(self, message: str, error: str | None = None, admin_action: bool = False):
        super().__init__(message)
        self.message, self.error, self.admin_action = message, error, admin_action


class ReauthorizationNeededError(OAuthTokenError):
    """The provider refused the refresh token, or none was ever granted: authorize again."""

    def __init__(self, message: str, error: str | None = "invalid_grant"):
        super().__init__(message, error, admin_action=True)


class DkimKeyError(PortalError):
    """A DKIM key cannot be made or changed; `field` names the form field the message is for."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message
