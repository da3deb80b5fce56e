"""Operator edits of cluster.yaml merged with the sentinels' failover state.

Pure. The file says which shards exist, which slots each owns and which
nodes belong to each; the topology (the latest epoch) says which of a
shard's nodes is its master *now*, after any failovers. `merge` combines the
two into the layout a reconfigure leader publishes:

- slot ownership, the list of shards and each shard's set of nodes come
  from the file;
- a shard's current master (from the latest epoch) stays master if it is
  still one of that shard's nodes in the file, whatever the file names as
  master - a failover is never undone by an edit; otherwise (a new shard,
  or its current master removed from the file) the file's master is used;
- replicas keep their order in the topology, nodes new to the shard follow
  in file order (so an unchanged file merges to the same layout).

`same_layout` compares layouts without the epoch; `describe` says what a
merged layout changes, one phrase per change, for the log. No asyncio,
aiohttp or socket here.
"""

from __future__ import annotations

from slotwarden.cluster.config import ClusterConfig
from slotwarden.cluster.topology import Address, Shard, SlotMap


def merge(config: ClusterConfig, current: SlotMap, epoch: int) -> SlotMap:
    """The layout of ``config`` at ``epoch``, keeping ``current``'s masters where possible."""
    by_name = {s.name: s for s in current.shards}
    shards = []
    for sc in config.shards:
        nodes = (sc.master, *sc.replicas)
        now = by_name.get(sc.name)
        if now is not None and now.master in nodes:
            master = now.master
            kept = [r for r in now.replicas if r in nodes and r != master]
        else:
            master = sc.master
            kept = [r for r in (now.replicas if now else ()) if r in nodes and r != master]
        new = [n for n in nodes if n != master and n not in kept]
        shards.append(Shard(sc.name, master, tuple(kept + new)))
    return SlotMap.build(epoch, shards, [sc.slots for sc in config.shards])


def same_layout(a: SlotMap, b: SlotMap) -> bool:
    """True if ``a`` and ``b`` differ at most in their epoch."""
    return a.shards == b.shards and a.owner == b.owner and a.migrations == b.migrations


def describe(old: SlotMap, new: SlotMap, config: ClusterConfig | None = None) -> list[str]:
    """One phrase per difference from ``old`` to ``new`` (empty if the layouts are equal).

    With ``config``, also names the masters kept against the file's word.
    """
    out: list[str] = []
    old_names = [s.name for s in old.shards]
    new_names = [s.name for s in new.shards]
    old_by = {s.name: s for s in old.shards}
    for name in new_names:
        if name not in old_by:
            s = new.shards[new.shard_index(name)]
            out.append(f"shard {name} added (master {s.master}, replicas {_list(s.replicas)})")
    for name in old_names:
        if name not in new_names:
            out.append(f"shard {name} removed")
    moved: dict[tuple[str, str], int] = {}
    for slot in range(len(new.owner)):
        a = old.shards[old.owner[slot]].name
        b = new.shards[new.owner[slot]].name
        if a != b:
            moved[(a, b)] = moved.get((a, b), 0) + 1
    for (a, b), count in sorted(moved.items()):
        out.append(f"{count} slot(s) moved from shard {a} to shard {b}")
    for s in new.shards:
        o = old_by.get(s.name)
        if o is None:
            continue
        if o.master != s.master:
            out.append(f"shard {s.name} master {o.master} -> {s.master}")
        added = [r for r in s.replicas if r not in (o.master, *o.replicas)]
        removed = [r for r in (o.master, *o.replicas) if r not in (s.master, *s.replicas)]
        if added:
            out.append(f"shard {s.name} replica(s) {_list(added)} added")
        if removed:
            out.append(f"shard {s.name} node(s) {_list(removed)} removed")
    if config is not None:
        for sc in config.shards:
            s = new.shards[new.shard_index(sc.name)]
            if s.master != sc.master:
                out.append(
                    f"shard {sc.name} keeps master {s.master} from the failover state "
                    f"(the file names {sc.master})"
                )
    return out


def nodes(topology: SlotMap) -> set[Address]:
    return {a for s in topology.shards for a in (s.master, *s.replicas)}


def _list(addrs: tuple[Address, ...] | list[Address]) -> str:
    return ", ".join(str(a) for a in addrs) or "none"
