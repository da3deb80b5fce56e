"""What a leader publishes for a cluster.yaml edit and for migrations that ended.

Owns `plan_publication`, the step between a won "reconfigure" epoch and its
publication (`sentinel.run.leader.Leader._publish_edit`), on top of the
newest topology the peers have:

1. each migration the mover asked to end (`Leader.request_finish`, from
   `Sentinel.finish_migration`) that is still in that topology is removed
   (`sentinel.decide.reconfigure.finished`: a draining shard that no longer
   moves anything and is not in cluster.yaml leaves the map); one that is
   gone already is dropped;
2. if an edit waits, the file is merged on top (`reconfigure.merge`) -
   unless it redirects a slot still migrating there (`plan_problems`: a
   migration this sentinel had not seen when it validated the edit) or a
   new migration's target has no room for the keys (`sentinel.act.room` +
   `sentinel.decide.room`): then the edit is dropped whole, one event per
   problem (``reconfigure-refused`` / ``migration-refused``), and only the
   ended migrations are published. The operator edits again.

Before any of it, a leader that holds an older topology than a peer reports
(`peers_ahead`: one it refused, e.g. naming a draining shard its
cluster.yaml lacks and its map never had) publishes nothing: a map built on
the older one would drop the newer one's migrations.

Every read it makes (``INFO memory``) is bounded by ``timeout``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sentinel.act import room
from sentinel.decide import reconfigure
from sentinel.decide.model import Event, PeerOpinion
from sentinel.decide.room import room_problems
from slotwarden.cluster.config import ClusterConfig
from slotwarden.cluster.topology import Address, Migration, SlotMap


@dataclass
class Publication:
    layout: SlotMap  # what to publish (same layout as the latest: nothing to publish)
    ended: list[Migration] = field(default_factory=list)  # migrations it ends
    refused: list[Event] = field(default_factory=list)  # the edit's refusals (then dropped)


async def plan_publication(
    latest: SlotMap,
    config: ClusterConfig,
    finishing: list[Migration],
    edit: bool,
    epoch: int,
    *,
    timeout: float,
    name: str,
    routes: Mapping[Address, Address] | None = None,
) -> Publication:
    """The layout to publish at ``epoch`` over ``latest``: ``finishing`` ended, then the
    file (when ``edit``) merged on top if it may be."""
    base = latest.derive(epoch=epoch)
    ended = [m for m in finishing if m in latest.migrations]
    for m in ended:
        base = reconfigure.finished(base, m, config, epoch)
    out = Publication(base, ended)
    if not edit:
        return out
    problems = reconfigure.plan_problems(config, base)
    for text in problems:
        out.refused.append(
            Event("reconfigure-refused", f"epoch {epoch}: cluster.yaml edit refused: {text}")
        )
    if problems:
        return out
    merged = reconfigure.merge(config, base, epoch)
    new = [m for m in merged.migrations if m not in base.migrations]
    if new:
        shards = {m.target for m in new} | {m.source for m in new}
        memory = await room.memory_of(merged, shards, config, timeout, name, routes)
        held = {m.source: _held(base, m.source) for m in new}
        for text in room_problems(new, memory, held):
            out.refused.append(
                Event("migration-refused", f"epoch {epoch}: cluster.yaml edit refused: {text}")
            )
        if out.refused:
            return out
    out.layout = merged
    return out


def peers_ahead(latest: SlotMap, opinions: Mapping[str, PeerOpinion]) -> str:
    """Which peers hold a newer topology than ``latest`` after the leader's refresh (one
    this sentinel refused, e.g. a draining shard its cluster.yaml lacks and its map never
    had), as a phrase; empty if none. Publishing over ``latest`` then would drop what
    theirs has (a running migration): the leader does not."""
    ahead = sorted(
        (pid, op.topology_epoch) for pid, op in opinions.items() if op.topology_epoch > latest.epoch
    )
    if not ahead:
        return ""
    return (
        "peer(s) "
        + ", ".join(f"{pid} (topology epoch {e})" for pid, e in ahead)
        + (f" hold a topology newer than this sentinel's (epoch {latest.epoch})")
    )


def _held(topology: SlotMap, name: str) -> int:
    """Slots whose keys ``name`` may hold in ``topology``: owned, or migrating away."""
    index = topology.shard_index(name)
    leaving = sum(m.count() for m in topology.migrations if m.source == name)
    return len(topology.slots_of(index)) + leaving
