"""From a claimed outbox row (or a connection test) to the wire.

Queued RQ jobs name `portal.delivery.deliver`, `deliver_group` and `sweep`: they resolve here.
"""

from portal.delivery.jobs import deliver, deliver_group, sweep

__all__ = ["deliver", "deliver_group", "sweep"]
