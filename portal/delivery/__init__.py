"""From a claimed outbox row (or a connection test) to the wire.

RQ jobs handed over before lanes name `portal.delivery.deliver` and `deliver_group`: they
resolve here. The worker's engine (`portal.delivery.engine`) schedules everything else.
"""

from portal.delivery.jobs import deliver, deliver_group, deliver_lane, drain, sweep

__all__ = ["deliver", "deliver_group", "deliver_lane", "drain", "sweep"]
