"""kopf peering for several replicas (`run --peering`): how fast a standby takes over.

Every replica writes a keep-alive into the peering object's status, `{priority, lifetime, lastseen}`
under its own id (POD_ID, else user@host/time/random), and watches everyone else's. The live replica
with the highest priority works; the others pause (equal priorities freeze everyone). A replica's
record is live until `lastseen + lifetime`, where `lifetime` is the one *that replica* wrote: its own
CLOUDEYE_PEERING_LIFETIME. kopf (kopf/_core/engines/peering.py) rewrites the record every
`max(1, lifetime - randint(5, 10))` seconds, so:

- Killed (SIGKILL, OOM, node lost): its record is at most one keep-alive interval old, and the standby
  with the next priority resumes when it expires: between `lifetime - interval` and `lifetime` seconds
  after the death, i.e. 5 to `lifetime` s (about 5 to 60 s with kopf's default 60), then lists and
  watches the rollouts and starts their daemons (a second or two).
- Stopped (SIGTERM: rolling update, drain): kopf deletes its record on the way out, and a standby
  resumes at once, without waiting for the lifetime.
- A live replica is taken for dead when a keep-alive lands more than `lifetime - interval` seconds late
  (5 to 10 s for any lifetime from 11 s, 5 to 9 s at 10 s): an event loop stalled that long, an API
  server that slow, or node clocks that far apart (`lastseen` is the writer's clock, the deadline is
  checked on the reader's). Until its next keep-alive lands, two replicas work. So lowering the lifetime
  from 60 to 15 s keeps that margin and quarters the worst takeover; it costs a keep-alive every 5-10 s
  per replica instead of every 50-55 s. Under PEERING_LIFETIME_MIN (10 s) keep-alives go out every
  second, for at most 4 s less worst case: the best case stays about 5 s.

`stealth` (kopf's setting) only silences the keep-alive debug lines; it changes no timing.
"""

from __future__ import annotations

import kopf

from cloudeye_operator.config import OperatorSettings


def apply_peering(settings: kopf.OperatorSettings, config: OperatorSettings) -> None:
    """Put the operator's peering settings into kopf's, before kopf starts peering."""
    settings.peering.lifetime = config.peering_lifetime


def takeover_window(lifetime: int) -> tuple[int, int]:
    """Fewest and most seconds from a replica's death (no goodbye) until its record expires."""
    longest_interval = min(lifetime, max(1, lifetime - 5))
    return lifetime - longest_interval, lifetime
