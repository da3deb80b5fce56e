"""Plans for `slotwarden reshard` and `slotwarden rebalance`: which slots change shard.

Pure, no I/O. An *ownership* is an ordered mapping shard name -> set of slots
(cluster.yaml's order; together the shards own each of the 16384 slots once).
Every planner returns a new ownership; `moves` lists what changed as
`Move(source, target, slots)`, the migrations the sentinels will publish.

- `assign`: the given slots go to one shard (``reshard --to``).
- `rebalance`: slots spread evenly (or by weight) over the shards, moving as
  few slots as possible: a shard above its share gives away exactly its
  surplus, taken from the top of its highest ranges so what it keeps stays
  contiguous; a shard below its share receives exactly its deficit, in one
  contiguous run when the released slots allow it. Shares are the
  largest-remainder split of 16384 by weight (ties to the earlier shard), so
  the moves are the fewest any plan reaching those shares can make.
- `drain`: only one shard's slots move, to the others, filling the emptiest
  first (by weight), so the others end as even as that allows.

``fixed`` slots (still migrating) are never moved by `rebalance` or `drain`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from slotwarden.cluster.slots import SLOT_COUNT, format_ranges

Ownership = dict[str, set[int]]


class PlanError(ValueError):
    """A plan that cannot be made (unknown shard, bad weight, nothing to give to)."""


@dataclass(frozen=True, slots=True)
class Move:
    source: str
    target: str
    slots: frozenset[int]

    def ranges(self) -> str:
        return format_ranges(self.slots)

    def describe(self) -> str:
        return f"slots {self.ranges()} ({len(self.slots)}): {self.source} -> {self.target}"


def copy(owners: Mapping[str, Iterable[int]]) -> Ownership:
    return {name: set(slots) for name, slots in owners.items()}


def moves(old: Mapping[str, Iterable[int]], new: Mapping[str, Iterable[int]]) -> list[Move]:
    """What changed between two ownerships, one `Move` per (source, target) pair,
    in slot order of each pair's first slot."""
    before = {slot: name for name, slots in old.items() for slot in slots}
    pairs: dict[tuple[str, str], set[int]] = {}
    for name, slots in new.items():
        for slot in slots:
            source = before.get(slot)
            if source is not None and source != name:
                pairs.setdefault((source, name), set()).add(slot)
    out = [Move(s, t, frozenset(slots)) for (s, t), slots in pairs.items()]
    out.sort(key=lambda m: min(m.slots))
    return out


def assign(owners: Mapping[str, Iterable[int]], target: str, slots: Iterable[int]) -> Ownership:
    """``slots`` belong to ``target`` afterwards, taken from whichever shards own them."""
    if target not in owners:
        raise PlanError(f"unknown shard {target!r} (shards: {', '.join(owners)})")
    wanted = set(slots)
    out = copy(owners)
    for name, owned in out.items():
        if name != target:
            owned -= wanted
    out[target] |= wanted
    return out


def shares(
    names: list[str],
    weights: Mapping[str, float],
    total: int = SLOT_COUNT,
    current: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """``total`` split by weight, largest remainder first; ties go to the shard that
    has more slots now (``current``: no slot moves only to even out a remainder),
    then to the earlier name."""
    for name, weight in weights.items():
        if name not in names:
            raise PlanError(f"weight for unknown shard {name!r} (shards: {', '.join(names)})")
        if weight < 0:
            raise PlanError(f"weight of shard {name} must not be negative")
    w = {name: float(weights.get(name, 1.0)) for name in names}
    whole = sum(w.values())
    if whole <= 0:
        raise PlanError("at least one shard needs a positive weight")
    exact = {name: total * w[name] / whole for name in names}
    out = {name: int(exact[name]) for name in names}
    left = total - sum(out.values())
    now = current or {}
    order = sorted(
        names, key=lambda n: (-round(exact[n] - out[n], 9), -now.get(n, 0), names.index(n))
    )
    for name in order[:left]:
        out[name] += 1
    return out


def _give_up(owned: set[int], count: int, fixed: set[int]) -> list[int]:
    """``count`` of ``owned`` (never ``fixed`` ones), the highest first."""
    out: list[int] = []
    for slot in sorted(owned, reverse=True):
        if len(out) == count:
            break
        if slot not in fixed:
            out.append(slot)
    return out


def _hand_out(pool: list[int], counts: list[tuple[str, int]], out: Ownership) -> None:
    """Give each (name, n) the next n slots of ``pool`` (sorted): contiguous runs."""
    pool = sorted(pool)
    at = 0
    for name, n in counts:
        out[name].update(pool[at : at + n])
        at += n


def rebalance(
    owners: Mapping[str, Iterable[int]],
    weights: Mapping[str, float] | None = None,
    fixed: Iterable[int] = (),
) -> Ownership:
    """Even (or weighted) slots over the shards, moving as few as possible."""
    out = copy(owners)
    names = list(out)
    quota = shares(names, weights or {}, current={n: len(out[n]) for n in names})
    pinned = set(fixed)
    pool: list[int] = []
    for name in names:
        surplus = len(out[name]) - quota[name]
        if surplus > 0:
            given = _give_up(out[name], surplus, pinned)
            out[name] -= set(given)
            pool.extend(given)
    deficits = [(name, quota[name] - len(out[name])) for name in names]
    wanting = [(name, n) for name, n in deficits if n > 0]
    # fixed slots can leave a shard above its share: what could not be released is
    # simply not handed out (the smallest deficits are served last)
    available = len(pool)
    served: list[tuple[str, int]] = []
    for name, n in wanting:
        take = min(n, available)
        served.append((name, take))
        available -= take
    if available:  # cannot happen: deficits sum to the released surplus or more
        raise PlanError("internal: slots released but nobody to take them")
    _hand_out(pool, served, out)
    return out


def drain(
    owners: Mapping[str, Iterable[int]],
    shard: str,
    weights: Mapping[str, float] | None = None,
    fixed: Iterable[int] = (),
) -> Ownership:
    """``shard``'s slots go to the others, the emptiest (by weight) first."""
    if shard not in owners:
        raise PlanError(f"unknown shard {shard!r} (shards: {', '.join(owners)})")
    out = copy(owners)
    others = [name for name in out if name != shard]
    if not others:
        raise PlanError(f"shard {shard} is the only shard: there is nowhere to move its slots")
    w = {name: float((weights or {}).get(name, 1.0)) for name in others}
    if any(v < 0 for v in w.values()) or sum(w.values()) <= 0:
        raise PlanError("the shards that take the slots need positive weights")
    pinned = set(fixed)
    given = sorted(s for s in out[shard] if s not in pinned)
    out[shard] -= set(given)
    counts = {name: len(out[name]) for name in others}
    extra = {name: 0 for name in others}
    receivers = [name for name in others if w[name] > 0]
    for _ in given:  # water-filling, one slot at a time (at most 16384 steps)
        name = min(receivers, key=lambda n: ((counts[n] + extra[n]) / w[n], others.index(n)))
        extra[name] += 1
    _hand_out(given, [(name, extra[name]) for name in others], out)
    return out


def describe(plan: list[Move]) -> list[str]:
    if not plan:
        return ["nothing to move"]
    total = sum(len(m.slots) for m in plan)
    return [m.describe() for m in plan] + [f"{total} slot(s) move in {len(plan)} migration(s)"]
