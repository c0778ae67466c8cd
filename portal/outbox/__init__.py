"""The record of every mail: intake, compose, the outbox table's states, hand-off, log, retention.

`portal.outbox.send(company, to=…, subject=…)` is the one way in for outgoing mail.
"""

from portal.outbox.compose import Attachment
from portal.outbox.intake import send

__all__ = ["Attachment", "send"]
