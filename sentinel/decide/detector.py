"""Failure detection: subjectively down (SDOWN) per node, objectively down (ODOWN) per master.

Pure: takes a `Snapshot` and the previous `Flags`, returns the new flags and
one `Event` per change. A node is SDOWN once ``down_after`` has passed since
its last valid reply (a hung node with an open socket counts the same as a
refused connection); anything shorter - a stall, a slow reply - triggers
nothing. A topology master that has reported the replica role for
``down_after`` counts as down too (`is_demoted`), counting only what was
read after this sentinel adopted that topology (`Snapshot.topology_at`), and
so does one that restarted without its data while a replica still holds more
(`restarted_empty`). A shard's master is ODOWN
when at least ``quorum`` sentinels, this one included, hold it down,
counting only peer answers received within `Timing.opinion_max_age`. No
asyncio, aiohttp or socket here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sentinel.decide.eligible import holds_more
from sentinel.decide.model import Event, NodeObs, NodeRole, PeerOpinion, Snapshot, Timing
from slotwarden.cluster.topology import Address, Shard


@dataclass(frozen=True, slots=True)
class Flags:
    sdown: frozenset[Address] = frozenset()
    odown: frozenset[str] = frozenset()  # shard names whose master is ODOWN
    demoted: frozenset[Address] = frozenset()  # topology masters reporting the replica role
    restarted: frozenset[Address] = frozenset()  # topology masters that came back with less

    @property
    def down(self) -> frozenset[Address]:
        """What we tell peers we hold down: silent nodes, demoted and emptied masters."""
        return self.sdown | self.demoted | self.restarted


def is_sdown(obs: NodeObs, now: float, timing: Timing) -> bool:
    return now - obs.last_ok >= timing.down_after


def is_demoted(obs: NodeObs, now: float, timing: Timing, since: float = float("-inf")) -> bool:
    """A topology master that has reported the replica role for ``down_after``.

    It takes no writes, so for the shard it is as good as down. (This is what
    a planned switchover leaves behind if its leader dies between demoting
    the old master and publishing: a new failover repairs it.) ``since``: when
    the topology naming it master was adopted - only what was read after it
    counts, and the ``down_after`` runs from it (a just-promoted replica's last
    pre-promotion INFO says "replica" and must not flag it down).
    """
    return (
        obs.role is NodeRole.REPLICA
        and obs.info_at is not None
        and obs.info_at > since
        and now - obs.info_at <= timing.info_max_age
        and obs.role_since is not None
        and now - max(obs.role_since, since) >= timing.down_after
    )


def restarted_empty(
    shard: Shard, nodes: Mapping[Address, NodeObs], now: float, timing: Timing
) -> Address | None:
    """A replica holding more than ``shard``'s master has now, when that master restarted
    without its data (`NodeObs.restart`), else None: the master answers, but for the
    shard it is as good as failed - serving it, or letting the replica resynchronise
    from it, loses what the replica still holds, so it counts as down and the replica
    is promoted. Once every replica resynchronised from it (nothing left to save), or
    it has more again, it no longer counts."""
    master = nodes.get(shard.master)
    if master is None or master.restart is None or master.role is not NodeRole.MASTER:
        return None
    if is_sdown(master, now, timing):
        return None  # down anyway
    for addr in shard.replicas:
        obs = nodes.get(addr)
        if (
            obs is not None
            and obs.role is NodeRole.REPLICA
            and not is_sdown(obs, now, timing)
            and obs.info_at is not None
            and now - obs.info_at <= timing.info_max_age
            and holds_more(obs, master)
        ):
            return addr
    return None


def sdown_nodes(nodes: Iterable[NodeObs], now: float, timing: Timing) -> frozenset[Address]:
    return frozenset(o.addr for o in nodes if is_sdown(o, now, timing))


def down_voters(
    master: Address,
    self_id: str,
    self_down: bool,
    opinions: Iterable[PeerOpinion],
    now: float,
    timing: Timing,
) -> list[str]:
    """The sentinels (ids) that currently hold ``master`` down, fresh answers only."""
    voters = [self_id] if self_down else []
    for op in opinions:
        if op.peer != self_id and now - op.at <= timing.opinion_max_age and master in op.down:
            voters.append(op.peer)
    return voters


def detect(prev: Flags, snap: Snapshot, timing: Timing, quorum: int) -> tuple[Flags, list[Event]]:
    """New flags for ``snap`` and an event for each node/shard whose state changed."""
    now = snap.now
    sdown = sdown_nodes(snap.nodes.values(), now, timing)
    events: list[Event] = []
    epoch = snap.topology.epoch
    for addr in sorted(sdown - prev.sdown):
        since = now - snap.nodes[addr].last_ok
        events.append(
            Event(
                "sdown",
                f"node {addr} is subjectively down (no valid reply for {since * 1000:.0f} ms)",
                addr=str(addr),
                epoch=epoch,
            )
        )
    for addr in sorted(prev.sdown - sdown):
        if addr in snap.nodes:
            events.append(
                Event("sdown-cleared", f"node {addr} answers again", addr=str(addr), epoch=epoch)
            )
    demoted = frozenset(
        s.master
        for s in snap.topology.shards
        if s.master in snap.nodes
        and is_demoted(snap.nodes[s.master], now, timing, snap.topology_at)
    )
    for addr in sorted(demoted - prev.demoted):
        obs = snap.nodes[addr]
        events.append(
            Event(
                "demoted",
                f"master {addr} reports the replica role (of {obs.master}) for "
                f"{(now - max(obs.role_since or now, snap.topology_at)) * 1000:.0f} ms "
                "since the topology named it master: treated as down",
                addr=str(addr),
                epoch=epoch,
            )
        )
    restarted = set()
    for shard in snap.topology.shards:
        keeper = restarted_empty(shard, snap.nodes, now, timing)
        if keeper is None:
            continue
        restarted.add(shard.master)
        if shard.master not in prev.restarted:
            obs = snap.nodes[shard.master]
            assert obs.restart is not None
            events.append(
                Event(
                    "restarted-empty",
                    f"master {shard.master} came back with less (offset {obs.offset}, "
                    f"was {obs.restart.offset}): it restarted without its data while "
                    f"replica {keeper} holds {snap.nodes[keeper].offset}; treated as down",
                    shard=shard.name,
                    addr=str(shard.master),
                    epoch=epoch,
                )
            )
    down = sdown | demoted | restarted
    odown: set[str] = set()
    for shard in snap.topology.shards:
        voters = down_voters(
            shard.master, snap.me, shard.master in down, snap.opinions.values(), now, timing
        )
        if shard.master in down and len(voters) >= quorum:
            odown.add(shard.name)
            if shard.name not in prev.odown:
                events.append(
                    Event(
                        "odown",
                        f"shard {shard.name} master {shard.master} is objectively down "
                        f"({len(voters)}/{quorum} sentinels agree: {', '.join(sorted(voters))}) "
                        f"at epoch {epoch}",
                        shard=shard.name,
                        addr=str(shard.master),
                        epoch=epoch,
                    )
                )
        elif shard.name in prev.odown:
            events.append(
                Event(
                    "odown-cleared",
                    f"shard {shard.name} is no longer objectively down (master {shard.master} "
                    f"at epoch {epoch})",
                    shard=shard.name,
                    addr=str(shard.master),
                    epoch=epoch,
                )
            )
    return Flags(sdown, frozenset(odown), demoted, frozenset(restarted)), events
