"""Shards whose failover is refused, and how long a shard waits after failed attempts.

Owns `Refusals`: the shards that are objectively down while no replica is
eligible for promotion (`sentinel.decide.failover.refusal`), each with its
reason. A shard entering that state is one ``failover-refused`` event (and
one count in `SentinelStats.refusals`), not one per run cycle; the reason
is shown by ``GET /status`` (``refused``) and ``slotwarden status`` while it
lasts; leaving it (the master is back, a replica became eligible, a
topology changed the shard's master) is one ``failover-refused-cleared``
event. An operator may still force a promotion (``slotwarden failover SHARD
--to ADDR --force``).

Also owns `Backoff`: consecutive failed failover attempts per shard (lost
elections are not counted, aborts are), so the time before the next attempt
grows (`sentinel.decide.election.abort_backoff`) instead of burning an epoch
every few hundred milliseconds during a shard-wide outage.
"""

from __future__ import annotations

import collections

from sentinel.decide import failover
from sentinel.decide.model import Event, Snapshot, Timing
from sentinel.run.events import EventLog
from sentinel.run.stats import SentinelStats
from slotwarden.cluster.topology import Address, SlotMap


class Refusals:
    def __init__(self, events: EventLog, stats: SentinelStats) -> None:
        self.events = events
        self.stats = stats
        self.current: dict[str, str] = {}  # shard -> why no replica may be promoted
        self.masters: dict[str, Address] = {}  # shard -> the master that was down

    def review(
        self,
        odown: frozenset[str],
        busy: frozenset[str] | set[str],
        snap: Snapshot | None,
        timing: Timing,
    ) -> frozenset[str]:
        """Once per run cycle: the ODOWN shards (not in ``busy``) whose failover is refused
        now. A shard no longer ODOWN, or with an eligible replica again, is cleared."""
        epoch = snap.topology.epoch if snap is not None else 0
        for name in list(self.current):
            if name not in odown:
                self.clear(name, "its master is no longer objectively down", epoch)
        if snap is None:
            return frozenset()
        refused = set()
        for name in sorted(odown - set(busy)):
            reason = failover.refusal(name, snap, timing)
            if reason:
                master = snap.topology.shards[snap.topology.shard_index(name)].master
                self.refuse(name, master, reason, epoch)
                refused.add(name)
            else:
                self.clear(name, "a replica is eligible again", epoch)
        return frozenset(refused)

    def refuse(self, shard: str, master: Address, reason: str, epoch: int) -> None:
        """No replica of ``shard`` may be promoted: say so once, keep the latest reason."""
        first = shard not in self.current or self.masters.get(shard) != master
        self.current[shard] = reason
        self.masters[shard] = master
        if first:
            self.stats.refusals[shard] += 1
            self.events.emit(
                Event(
                    "failover-refused",
                    f"shard {shard} stays down: {reason}; an operator may force one with "
                    f"'slotwarden failover {shard} --to HOST:PORT --force'",
                    shard=shard,
                    epoch=epoch,
                )
            )

    def on_topology(self, topology: SlotMap) -> None:
        """A shard whose master changed (a forced or another leader's failover) is cleared."""
        masters = {s.name: s.master for s in topology.shards}
        for shard in list(self.current):
            if masters.get(shard) != self.masters.get(shard):
                why = f"topology epoch {topology.epoch} has a new master"
                self.clear(shard, why, topology.epoch)

    def clear(self, shard: str, why: str, epoch: int) -> None:
        self.masters.pop(shard, None)
        if self.current.pop(shard, None) is not None:
            self.events.emit(
                Event(
                    "failover-refused-cleared",
                    f"shard {shard}: failover no longer refused ({why})",
                    shard=shard,
                    epoch=epoch,
                )
            )


class Backoff:
    """Failed failover attempts in a row, per shard (reset by a success or a recovery)."""

    def __init__(self) -> None:
        self.failures: collections.Counter[str] = collections.Counter()

    def failed(self, shards: list[str]) -> int:
        """Count one more failure for each of ``shards``; the highest count."""
        for shard in shards:
            self.failures[shard] += 1
        return max((self.failures[s] for s in shards), default=0)

    def reset(self, shard: str) -> None:
        self.failures.pop(shard, None)

    def keep_only(self, shards: frozenset[str]) -> None:
        """Forget the shards not in ``shards`` (recovered: the next outage starts afresh)."""
        for shard in list(self.failures):
            if shard not in shards:
                del self.failures[shard]
