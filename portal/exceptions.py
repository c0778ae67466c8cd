"""Errors raised by the portal's services."""


class PortalError(Exception):
    """Base class of the portal's own errors."""


class SecretError(PortalError):
    """A secret cannot be encrypted or decrypted with the configured keys."""


class AccessError(PortalError):
    """The current user may not touch the requested object."""
