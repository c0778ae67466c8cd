"""Back-off after failed log-ins, per account and per client address, counted in Redis.

Every try counts as a failure from the moment it starts and is given back when it succeeds:
the check and the count are one atomic step, so tries sent at once cannot all be checked
before the first failure is counted. The try that reaches a subject's limit sets its wait;
tries refused while it waits are not counted, so the wait always ends.
"""

import hashlib
import logging
import math
from contextlib import suppress
from dataclasses import dataclass

from flask import current_app
from redis.exceptions import RedisError

from portal import redis_client
from portal.exceptions import LoginThrottledError

log = logging.getLogger(__name__)
PREFIX = "portal:login:"
# KEYS: each subject's failure count and its wait, in pairs. ARGV: how long failures are
# remembered, the first and the longest wait (ms), then the failures each subject may have.
# Answers {ms to wait} while a subject waits; else {0, then the wait this try set (ms) if
# it fails, per subject}.
BEGIN = """
local window, first, longest = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local waiting = 0
for i = 2, #KEYS, 2 do
  waiting = math.max(waiting, redis.call('PTTL', KEYS[i]))
end
if waiting > 0 then
  return {waiting}
end
local answer = {0}
for i = 1, #KEYS, 2 do
  local failures = redis.call('INCR', KEYS[i])
  redis.call('PEXPIRE', KEYS[i], window)
  local beyond = failures - tonumber(ARGV[3 + (i + 1) / 2])
  local wait = 0
  if beyond >= 0 then
    wait = math.floor(math.min(first * 2 ^ beyond, longest))
    redis.call('SET', KEYS[i + 1], 1, 'PX', wait)
  end
  answer[#answer + 1] = wait
end
return answer
"""
# KEYS as above; ARGV: per subject, 1 when this try set its wait.
GIVE_BACK = """
for i = 1, #KEYS, 2 do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then
    redis.call('DECR', KEYS[i])
  end
  if ARGV[(i + 1) / 2] == '1' then
    redis.call('DEL', KEYS[i + 1])
  end
end
return 0
"""


@dataclass(frozen=True)
class Attempt:
    """A log-in try in progress, counted as failed until `succeeded`."""

    keys: tuple[str, ...]
    waits: tuple[float, ...]  # seconds each subject waits because this try failed; 0: none

    @property
    def wait(self) -> float:
        """How long log-ins pause because this try failed (seconds), 0 if they do not."""
        return max(self.waits)


def _keys(email: str, client: str) -> list[str]:
    # Unknown addresses count the same, so a wait tells nothing about which accounts exist.
    account = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    counts = [f"{PREFIX}account:{account}", f"{PREFIX}client:{client}"]
    return [key for count in counts for key in (count, f"{count}:wait")]


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def begin(email: str, client: str) -> Attempt:
    """Count a log-in try for this email from this client; LoginThrottledError while one waits."""
    config = current_app.config
    keys = _keys(email, client)
    args = [
        _ms(config["LOGIN_FAILURE_WINDOW_SECONDS"]),
        _ms(config["LOGIN_BACKOFF_SECONDS"]),
        _ms(config["LOGIN_BACKOFF_MAX_SECONDS"]),
        config["LOGIN_ACCOUNT_FAILURES"],
        config["LOGIN_CLIENT_FAILURES"],
    ]
    try:
        answer = redis_client.connection().register_script(BEGIN)(keys=keys, args=args)
    except RedisError as exc:
        # Locking everyone out while Redis is down would stop all mail settings work; the
        # failed log-ins are still audited.
        log.warning("log-in tries not counted: Redis is unreachable (%s)", exc)
        return Attempt((), (0.0,))
    if answer[0]:
        raise LoginThrottledError(answer[0] / 1000)
    return Attempt(tuple(keys), tuple(ms / 1000 for ms in answer[1:]))


def succeeded(attempt: Attempt) -> None:
    """Give a successful try back: only failures count."""
    if not attempt.keys:
        return  # not counted (Redis was unreachable)
    set_waits = [1 if wait else 0 for wait in attempt.waits]
    with suppress(RedisError):  # a failure left counted expires with the window
        redis_client.connection().register_script(GIVE_BACK)(keys=attempt.keys, args=set_waits)
