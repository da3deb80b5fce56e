"""The topology model: addresses, shards and the immutable, epoch-numbered slot map.

Pure data, no I/O. A `SlotMap` never changes after construction; the router
swaps its reference to a new one atomically, and accepts a new map only if
its epoch is higher than the current one (`SlotMap.supersedes`). The sentinel
publishes maps in the JSON shape of `SlotMap.to_dict` / `SlotMap.from_dict`.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class SlotMap:
    """16384 shard indices + the shard table + an epoch. Immutable."""

    epoch: int
    shards: tuple[Shard, ...]
    owner: bytes  # owner[slot] -> index into shards (so at most 255 shards)

    def __post_init__(self) -> None:
        if len(self.owner) != SLOT_COUNT:
            raise ValueError("a slot map must assign all 16384 slots")
        if self.shards and max(self.owner) >= len(self.shards):
            raise ValueError("slot map refers to a shard that does not exist")

    @classmethod
    def build(
        cls, epoch: int, shards: Sequence[Shard], ranges: Sequence[Iterable[tuple[int, int]]]
    ) -> SlotMap:
        """Build from one list of inclusive slot ranges per shard (same order)."""
        owner = array("B", [255]) * SLOT_COUNT
        for index, shard_ranges in enumerate(ranges):
            for lo, hi in shard_ranges:
                for slot in range(lo, hi + 1):
                    owner[slot] = index
        if 255 in owner:
            raise ValueError("slot map leaves slots unassigned")
        return cls(epoch, tuple(shards), owner.tobytes())

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
        return {
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
            ranges.append(parse_ranges(item["slots"]))
        epoch = data["epoch"]
        if not isinstance(epoch, int):
            raise TypeError("epoch must be an integer")
        return cls.build(epoch, shards, ranges)
