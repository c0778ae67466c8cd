"""The record of every mail: intake, compose, the outbox table's states, hand-off, log, retention.

`portal.outbox.send(company, to=…, subject=…)` is the one way in for outgoing mail;
`portal.outbox.send_many(company, [{…}, …])` queues up to 500 at once, all or none.
"""

from portal.outbox.compose import Attachment
from portal.outbox.intake import send, send_many

__all__ = ["Attachment", "send", "send_many"]
