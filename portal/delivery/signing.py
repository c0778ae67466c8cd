"""DKIM on the way out: the stored mail is signed right before it goes on the wire, never stored.

Signing on send means a resend, or a retry after a key rotation, signs with the key in force.
"""

from dataclasses import dataclass

from portal.keys import dkim
from portal.settings.resolution import EffectiveSettings
from portal.wire import dkim_sign
from portal.wire.dkim_sign import SigningKey
from portal.wire.texts import N_


@dataclass(frozen=True)
class Signed:
    raw: bytes
    domain: str | None  # the From domain, None when the mail has no single From address
    selector: str | None  # None: not signed

    @property
    def summary(self) -> str:
        """What the connection test says about the signature (English: the panel translates it)."""
        if self.selector:
            text = N_("Signed with DKIM selector %(selector)s for domain %(domain)s.")
            return text % {"selector": self.selector, "domain": self.domain}
        if self.domain:
            return N_("Not signed: no active DKIM key for %(domain)s.") % {"domain": self.domain}
        return N_("Not signed: no active DKIM key for the From address.")


def signing_scope(settings: EffectiveSettings) -> int | None:
    """Whose keys sign: the company's when its own sender is in force, else the global ones.

    So a company's mail is signed with the global key only when it goes out as the global sender.
    """
    if settings.company_id is not None and settings.source("sender_address") == "company":
        return settings.company_id
    return None


class Signer:
    """Signs mails with their scope's key, looking each scope's From domain up once."""

    def __init__(self):
        self.keys: dict[tuple[int | None, str], SigningKey | None] = {}
        self.scopes: dict[int | None, bool] = {}

    def sign(self, raw: bytes, scope: int | None, need_domain: bool = False) -> Signed:
        """The mail signed with the scope's active key for its From domain, if there is one.

        A scope without any active key skips reading the From header, unless `need_domain`.
        """
        if scope not in self.scopes:
            self.scopes[scope] = dkim.signs_any(scope)
        if not self.scopes[scope] and not need_domain:
            return Signed(raw, None, None)
        domain = dkim_sign.from_domain(raw)
        if domain is None:
            return Signed(raw, None, None)
        if (scope, domain) not in self.keys:
            self.keys[scope, domain] = dkim.signing_key(scope, domain)
        key = self.keys[scope, domain]
        if key is None:
            return Signed(raw, domain, None)
        return Signed(dkim_sign.sign(raw, key), domain, key.selector)
