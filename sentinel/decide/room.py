"""Does a migration's target have room for the keys coming to it? (README *Resharding*)

Pure. Before a leader publishes new migrations it reads ``INFO memory`` of
the masters involved (`sentinel.act.room`) and asks `room_problems`: for each
target whose ``maxmemory`` is set, the keys coming in are estimated as, per
source, ``(used_memory - used_memory_startup) x slots moving / slots the
source holds`` (keys are assumed spread evenly over slots), summed over every
new migration into that target; if ``used_memory + incoming > maxmemory`` the
edit is refused with one sentence per such target. A target without
``maxmemory`` (0) always has room. A target whose memory could not be read,
or one with ``maxmemory`` whose sources' could not, is refused too: the check
cannot vouch for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from slotwarden.cluster.topology import Migration

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Memory:
    """What ``INFO memory`` of one master says (bytes)."""

    used: int
    startup: int = 0
    maxmemory: int = 0

    @classmethod
    def parse(cls, info: Mapping[str, object]) -> Memory:
        """From redis-py's parsed ``INFO memory``; raises ``ValueError``/``TypeError``."""

        def num(key: str) -> int:
            value = info.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise TypeError(f"INFO memory field {key} is {value!r}")
            return int(value)

        return cls(num("used_memory"), num("used_memory_startup"), num("maxmemory"))

    def data(self) -> int:
        """Memory the data set takes (what a move of all its slots would carry)."""
        return max(self.used - self.startup, 0)


def incoming(migration: Migration, source: Memory, source_slots: int) -> int:
    """Bytes ``migration`` is expected to bring to its target."""
    if source_slots <= 0:
        return source.data()
    return source.data() * min(migration.count(), source_slots) // source_slots


def room_problems(
    migrations: Sequence[Migration],
    memory: Mapping[str, Memory | None],
    source_slots: Mapping[str, int],
) -> list[str]:
    """One sentence per target of ``migrations`` that has no room for them (empty: all
    have). ``memory``: shard name -> its master's `Memory` (None: unreadable);
    ``source_slots``: shard name -> slots it holds keys of now (owned or leaving it)."""
    out: list[str] = []
    for target in sorted({m.target for m in migrations}):
        into = [m for m in migrations if m.target == target]
        have = memory.get(target)
        if have is None:
            out.append(
                f"cannot read INFO memory of shard {target}'s master to check it has room "
                f"for slots {_slots(into)}; edit again once it answers"
            )
            continue
        if have.maxmemory <= 0:
            continue
        total = 0
        unknown = []
        for m in into:
            src = memory.get(m.source)
            if src is None:
                unknown.append(m.source)
                continue
            total += incoming(m, src, source_slots.get(m.source, 0))
        if unknown:
            out.append(
                f"cannot read INFO memory of shard(s) {', '.join(sorted(set(unknown)))} to "
                f"check shard {target} has room for slots {_slots(into)}; edit again once "
                "they answer"
            )
            continue
        if have.used + total > have.maxmemory:
            room = max(have.maxmemory - have.used, 0)
            out.append(
                f"target {target} has room for {room / MIB:.1f} MiB, the slots hold about "
                f"{total / MIB:.1f} MiB (slots {_slots(into)}; maxmemory "
                f"{have.maxmemory / MIB:.1f} MiB, used {have.used / MIB:.1f} MiB): raise "
                f"shard {target}'s maxmemory or move fewer slots, then edit again"
            )
    return out


def _slots(migrations: Sequence[Migration]) -> str:
    return ", ".join(f"{m.ranges()} from {m.source}" for m in migrations)
