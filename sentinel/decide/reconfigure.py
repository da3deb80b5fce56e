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
  in file order (so an unchanged file merges to the same layout);
- moving slots moves their keys (README *Resharding*): a slot whose owner
  changes from X (topology) to Y (file) becomes part of a `Migration` X -> Y
  (one per pair, Y owns the slots at once); a slot already migrating keeps its
  migration while the file gives it to the migration's target; a shard the
  file no longer lists stays in the map, with its current nodes and no slots,
  while it is the source of a migration (it drains), and goes once it is not.

An edit that gives a slot still migrating to any shard but the migration's
target is refused whole: `plan_problems` says why, one sentence per problem
(`merge` itself leaves such a slot as it is, so it stays total).
`finished` is the topology with one migration ended (a leader publishes it
when the mover has emptied the source). `same_layout` compares layouts
without the epoch; `describe` says what a merged layout changes, one phrase
per change, for the log. No asyncio, aiohttp or socket here.
"""

from __future__ import annotations

from slotwarden.cluster.config import ClusterConfig
from slotwarden.cluster.slots import SLOT_COUNT, format_ranges
from slotwarden.cluster.topology import Address, Migration, Shard, SlotMap


def merge(config: ClusterConfig, current: SlotMap, epoch: int) -> SlotMap:
    """The layout of ``config`` at ``epoch``, keeping ``current``'s masters where possible,
    its migrations the file agrees with, and the shards they drain."""
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
    owner = _file_owner(config)
    migrations: list[Migration] = []
    moving: dict[tuple[str, str], list[int]] = {}
    for m in current.migrations:
        # kept whole: a slot the file gives elsewhere is a plan problem, left as it is
        migrations.append(m)
        for slot in m.slot_set():
            owner[slot] = m.target
    migrating = {slot for m in current.migrations for slot in m.slot_set()}
    for slot in range(SLOT_COUNT):
        was = current.shards[current.owner[slot]].name
        if slot not in migrating and owner[slot] != was:
            moving.setdefault((was, owner[slot]), []).append(slot)
    migrations += [Migration.of(slots, a, b) for (a, b), slots in sorted(moving.items())]
    listed = {s.name for s in shards}
    needed = {m.source for m in migrations} | set(owner)  # a draining source; a kept target
    shards += [s for s in current.shards if s.name not in listed and s.name in needed]
    index = {s.name: i for i, s in enumerate(shards)}
    ranges: list[list[tuple[int, int]]] = [[] for _ in shards]
    for slot, name in enumerate(owner):
        ranges[index[name]].append((slot, slot))
    return SlotMap.build(epoch, shards, ranges, migrations)


def plan_problems(config: ClusterConfig, current: SlotMap) -> list[str]:
    """Why ``config`` may not be published over ``current`` (empty: it may): one sentence
    per migration the file would redirect, naming the slots and what to do."""
    owner = _file_owner(config)
    out: list[str] = []
    for m in current.migrations:
        elsewhere: dict[str, list[int]] = {}
        for slot in sorted(m.slot_set()):
            if owner[slot] != m.target:
                elsewhere.setdefault(owner[slot], []).append(slot)
        for name, slots in sorted(elsewhere.items()):
            where = "its source" if name == m.source else "a third shard"
            out.append(
                f"slots {format_ranges(slots)} are still moving from shard {m.source} to "
                f"shard {m.target} (slots {m.ranges()}) and the edit gives them to shard "
                f"{name} ({where}): wait until slots {m.ranges()} finish moving "
                f"{m.source} -> {m.target} (slotwarden status), then edit"
            )
    return out


def finished(current: SlotMap, done: Migration, config: ClusterConfig, epoch: int) -> SlotMap:
    """``current`` at ``epoch`` without migration ``done``; a shard it drained that now owns
    no slots, is no other migration's source and is not in ``config`` is dropped."""
    migrations = tuple(m for m in current.migrations if m != done)
    listed = {sc.name for sc in config.shards}
    sources = {m.source for m in migrations}
    keep = [
        i
        for i, s in enumerate(current.shards)
        if s.name in listed or s.name in sources or current.slots_of(i)
    ]
    if len(keep) == len(current.shards):
        return current.derive(epoch=epoch, migrations=migrations)
    ranges: list[list[tuple[int, int]]] = [[] for _ in keep]
    position = {old: new for new, old in enumerate(keep)}
    for slot, index in enumerate(current.owner):
        ranges[position[index]].append((slot, slot))
    return SlotMap.build(epoch, [current.shards[i] for i in keep], ranges, migrations)


def _file_owner(config: ClusterConfig) -> list[str]:
    """Slot -> the name of the shard cluster.yaml gives it to."""
    owner = [""] * SLOT_COUNT
    for sc in config.shards:
        for lo, hi in sc.slots:
            for slot in range(lo, hi + 1):
                owner[slot] = sc.name
    return owner


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
    started = [m for m in new.migrations if m not in old.migrations]
    migrating = {slot for m in started for slot in m.slot_set()}
    moved: dict[tuple[str, str], int] = {}
    for slot in range(len(new.owner)):
        a = old.shards[old.owner[slot]].name
        b = new.shards[new.owner[slot]].name
        if a != b and slot not in migrating:
            moved[(a, b)] = moved.get((a, b), 0) + 1
    for (a, b), count in sorted(moved.items()):
        out.append(f"{count} slot(s) moved from shard {a} to shard {b}")
    for m in started:
        out.append(
            f"{m.count()} slot(s) {m.ranges()} start moving from shard {m.source} to shard "
            f"{m.target} (keys follow)"
        )
    for m in old.migrations:
        if m not in new.migrations:
            out.append(f"slots {m.ranges()} finished moving from shard {m.source} to {m.target}")
    sources = {m.source for m in started}
    for i, s in enumerate(new.shards):
        if s.name in sources and not new.slots_of(i) and s.name in old_by:
            if old.slots_of(old.shard_index(s.name)):
                out.append(f"shard {s.name} drains (it keeps no slots)")
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
