"""The topology model: addresses, shards and the immutable, epoch-numbered slot map.

Pure data, no I/O. A `SlotMap` never changes after construction; the router
swaps its reference to a new one atomically, and accepts a new map only if
its epoch is higher than the current one (`SlotMap.supersedes`). The sentinel
publishes maps in the JSON shape of `SlotMap.to_dict` / `SlotMap.from_dict`.

A map may carry **migrations** (online resharding, see README *Resharding*):
a `Migration` names slot ranges whose keys are moving from a ``source``
shard to a ``target`` shard. For a migrating slot ``owner[slot]`` is the
*target* (where every request for the slot goes) and ``moving[slot]`` is the
index of the *source* (255 for a slot that is not migrating): a key of that
slot may still live on the source until it is moved, so a router moves a
request's keys from the source first (`router.wire.migrate`) and the
sentinels' mover (`sentinel.act.mover`) moves the rest in the background.

A migration has two states. It is first published ``preparing``: every
router HOLDS requests for its slots (neither source nor target is written);
once every router the sentinels know runs that epoch, the sentinels publish
it ``moving`` and keys start to move. So no router can write a key on the
source (old layout) while another router moves keys to the target: the
Codis "pre-migrate" step, without which a router still on the old epoch
could write a key on the source after another moved it, and lose that write
when the key is moved again (BUSYKEY: the target's copy wins). A
shard that is only a migration's source (removed from cluster.yaml, still
draining) stays in ``shards`` with no slots until its migration ends.
Every map derived from another (a failover, a restriction) must keep its
migrations: use `SlotMap.derive`, never the bare constructor.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from slotwarden.cluster.slots import SLOT_COUNT, format_ranges, parse_ranges


@dataclass(frozen=True, slots=True, order=True)
class Address:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse ``host:port`` (``[v6]:port`` too); raises ``ValueError``."""
        text = str(text).strip()
        host, sep, port_s = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"malformed address {text!r} (want host:port)")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not port_s.isdigit() or not 0 < int(port_s) < 65536:
            raise ValueError(f"malformed address {text!r} (port must be 1-65535)")
        if any(c.isspace() for c in host):
            raise ValueError(f"malformed address {text!r} (host has spaces)")
        return cls(host, int(port_s))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Shard:
    name: str
    master: Address
    replicas: tuple[Address, ...] = ()


NOT_MOVING = 255  # moving[slot] of a slot that is not migrating
PREPARING = "preparing"
MOVING = "moving"
MIGRATION_STATES = (PREPARING, MOVING)


@dataclass(frozen=True, slots=True)
class Migration:
    """Slots whose keys move from shard ``source`` to shard ``target`` (names).

    ``slots`` are inclusive ranges, sorted and merged (`format_ranges`' order).
    The target already owns them in the map (``owner``); the source may still
    hold some of their keys.
    """

    slots: tuple[tuple[int, int], ...]
    source: str
    target: str
    state: str = "moving"  # "preparing" (routers hold its requests) or "moving"

    def __post_init__(self) -> None:
        if self.state not in MIGRATION_STATES:
            raise ValueError(
                f"migration state {self.state!r} is not one of {', '.join(MIGRATION_STATES)}"
            )

    @property
    def preparing(self) -> bool:
        return self.state == PREPARING

    def same_move(self, other: Migration) -> bool:
        """The same slots, source and target, whatever the state."""
        return (self.slots, self.source, self.target) == (other.slots, other.source, other.target)

    def with_state(self, state: str) -> Migration:
        return Migration(self.slots, self.source, self.target, state)

    def slot_set(self) -> set[int]:
        return {slot for lo, hi in self.slots for slot in range(lo, hi + 1)}

    def ranges(self) -> str:
        return format_ranges(self.slot_set())

    def count(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.slots)

    def to_dict(self) -> dict[str, str]:
        return {"slots": self.ranges(), "from": self.source, "to": self.target, "state": self.state}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Migration:
        slots = parse_ranges(str(data["slots"]))
        return cls.of(slots, str(data["from"]), str(data["to"]), str(data.get("state", MOVING)))

    @classmethod
    def of(
        cls,
        slots: Iterable[int] | Iterable[tuple[int, int]],
        source: str,
        target: str,
        state: str = MOVING,
    ) -> Migration:
        """From slot numbers or inclusive ranges, normalised (sorted, merged)."""
        flat: set[int] = set()
        for item in slots:
            if isinstance(item, tuple):
                flat.update(range(item[0], item[1] + 1))
            else:
                flat.add(int(item))
        return cls(tuple(_runs(sorted(flat))), source, target, state)


def _runs(ordered: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for slot in ordered:
        if out and out[-1][1] == slot - 1:
            out[-1] = (out[-1][0], slot)
        else:
            out.append((slot, slot))
    return out


@dataclass(frozen=True, slots=True)
class SlotMap:
    """16384 shard indices + the shard table + an epoch (+ migrations). Immutable."""

    epoch: int
    shards: tuple[Shard, ...]
    owner: bytes  # owner[slot] -> index into shards (so at most 255 shards)
    migrations: tuple[Migration, ...] = ()
    # moving[slot] -> index of the shard the slot's keys are leaving, NOT_MOVING if none;
    # derived from ``migrations`` (b"" when there are none: test ``migrations`` first)
    moving: bytes = field(default=b"", compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.owner) != SLOT_COUNT:
            raise ValueError("a slot map must assign all 16384 slots")
        if self.shards and max(self.owner) >= len(self.shards):
            raise ValueError("slot map refers to a shard that does not exist")
        if not self.migrations:
            object.__setattr__(self, "moving", b"")
            return
        names = {s.name: i for i, s in enumerate(self.shards)}
        moving = array("B", [NOT_MOVING]) * SLOT_COUNT
        for m in self.migrations:
            if m.source not in names or m.target not in names:
                raise ValueError(f"migration {m.ranges()} names a shard that does not exist")
            if m.source == m.target:
                raise ValueError(f"migration {m.ranges()} moves shard {m.source} onto itself")
            src, dst = names[m.source], names[m.target]
            for lo, hi in m.slots:
                if not 0 <= lo <= hi < SLOT_COUNT:
                    raise ValueError(f"migration slot range {lo}-{hi} is outside 0-16383")
                for slot in range(lo, hi + 1):
                    if moving[slot] != NOT_MOVING:
                        raise ValueError(f"slot {slot} is in two migrations")
                    if self.owner[slot] != dst:
                        raise ValueError(
                            f"slot {slot} migrates to {m.target} but is owned by "
                            f"{self.shards[self.owner[slot]].name}"
                        )
                    moving[slot] = src
        object.__setattr__(self, "moving", moving.tobytes())

    @classmethod
    def build(
        cls,
        epoch: int,
        shards: Sequence[Shard],
        ranges: Sequence[Iterable[tuple[int, int]]],
        migrations: Sequence[Migration] = (),
    ) -> SlotMap:
        """Build from one list of inclusive slot ranges per shard (same order)."""
        owner = array("B", [255]) * SLOT_COUNT
        for index, shard_ranges in enumerate(ranges):
            for lo, hi in shard_ranges:
                for slot in range(lo, hi + 1):
                    owner[slot] = index
        if 255 in owner:
            raise ValueError("slot map leaves slots unassigned")
        return cls(epoch, tuple(shards), owner.tobytes(), tuple(migrations))

    def derive(
        self,
        epoch: int | None = None,
        shards: tuple[Shard, ...] | None = None,
        migrations: tuple[Migration, ...] | None = None,
    ) -> SlotMap:
        """This map with a new epoch / shard table / migrations, the rest kept (slot
        ownership always; migrations unless given). Shards keep their indices."""
        return SlotMap(
            self.epoch if epoch is None else epoch,
            self.shards if shards is None else shards,
            self.owner,
            self.migrations if migrations is None else migrations,
        )

    def source_of(self, slot: int) -> int | None:
        """Index of the shard ``slot``'s keys are leaving, or None if it is not migrating."""
        if not self.migrations:
            return None
        index = self.moving[slot]
        return None if index == NOT_MOVING else index

    def is_preparing(self, slot: int) -> bool:
        """True if ``slot`` is in a migration still ``preparing`` (routers hold its requests)."""
        m = self.migration_of(slot) if self.migrations else None
        return m is not None and m.preparing

    def migration_of(self, slot: int) -> Migration | None:
        for m in self.migrations:
            for lo, hi in m.slots:
                if lo <= slot <= hi:
                    return m
        return None

    def shard_index(self, name: str) -> int:
        for index, shard in enumerate(self.shards):
            if shard.name == name:
                return index
        raise KeyError(name)

    def slots_of(self, index: int) -> list[int]:
        return [slot for slot, owner in enumerate(self.owner) if owner == index]

    def ranges_of(self, index: int) -> str:
        return format_ranges(self.slots_of(index))

    def supersedes(self, other: SlotMap | None) -> bool:
        """True if this map may replace ``other`` (a strictly higher epoch)."""
        return other is None or self.epoch > other.epoch

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "epoch": self.epoch,
            "shards": [
                {
                    "name": s.name,
                    "slots": self.ranges_of(i),
                    "master": str(s.master),
                    "replicas": [str(r) for r in s.replicas],
                }
                for i, s in enumerate(self.shards)
            ],
        }
        if self.migrations:
            out["migrations"] = [m.to_dict() for m in self.migrations]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> SlotMap:
        """Inverse of `to_dict`; raises ``ValueError``/``KeyError``/``TypeError``."""
        raw_shards = data["shards"]
        if not isinstance(raw_shards, list):
            raise TypeError("shards must be a list")
        shards = []
        ranges = []
        for item in raw_shards:
            shards.append(
                Shard(
                    name=str(item["name"]),
                    master=Address.parse(item["master"]),
                    replicas=tuple(Address.parse(r) for r in item.get("replicas", [])),
                )
            )
            text = str(item["slots"])
            # a draining shard (only a migration's source) owns no slots: ""
            ranges.append(parse_ranges(text) if text.strip() else [])
        epoch = data["epoch"]
        if not isinstance(epoch, int):
            raise TypeError("epoch must be an integer")
        raw_migrations = data.get("migrations", [])
        if not isinstance(raw_migrations, list):
            raise TypeError("migrations must be a list")
        migrations = [Migration.from_dict(m) for m in raw_migrations]
        return cls.build(epoch, shards, ranges, migrations)
