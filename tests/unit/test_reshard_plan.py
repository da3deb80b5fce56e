"""The reshard/rebalance planner (slotwarden.reshard_plan): pure, no Redis."""

from __future__ import annotations

import pytest

from slotwarden.cluster.slots import SLOT_COUNT, parse_ranges
from slotwarden.reshard_plan import (
    Move,
    PlanError,
    assign,
    drain,
    moves,
    rebalance,
    shares,
)


def own(**ranges: str) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for name, text in ranges.items():
        out[name] = (
            {s for lo, hi in parse_ranges(text) for s in range(lo, hi + 1)} if text else set()
        )
    return out


def runs(slots: set[int]) -> int:
    """How many contiguous ranges ``slots`` make."""
    ordered = sorted(slots)
    return sum(1 for i, s in enumerate(ordered) if i == 0 or ordered[i - 1] != s - 1)


def covers_once(owners: dict[str, set[int]]) -> bool:
    seen: list[int] = [s for slots in owners.values() for s in slots]
    return len(seen) == SLOT_COUNT and set(seen) == set(range(SLOT_COUNT))


DEMO = own(a="0-5460", b="5461-10922", c="10923-16383")


def test_assign_takes_from_every_owner():
    new = assign(DEMO, "c", range(5000, 6001))
    assert covers_once(new)
    assert moves(DEMO, new) == [
        Move("a", "c", frozenset(range(5000, 5461))),
        Move("b", "c", frozenset(range(5461, 6001))),
    ]
    assert assign(DEMO, "a", range(11)) == DEMO  # already a's: nothing moves
    with pytest.raises(PlanError, match="unknown shard 'z'"):
        assign(DEMO, "z", [0, 1])


def test_shares_largest_remainder_and_weights():
    assert shares(["a", "b", "c"], {}) == {"a": 5462, "b": 5461, "c": 5461}
    assert sum(shares(["a", "b", "c"], {}).values()) == SLOT_COUNT
    assert shares(["a", "b"], {"a": 1, "b": 3}) == {"a": 4096, "b": 12288}
    assert shares(["a", "b"], {"a": 0}) == {"a": 0, "b": SLOT_COUNT}
    with pytest.raises(PlanError):
        shares(["a"], {"a": 0})
    with pytest.raises(PlanError, match="unknown shard 'q'"):
        shares(["a"], {"q": 1})


def test_rebalance_of_a_balanced_cluster_moves_nothing():
    # 5461/5462/5461: the odd slot stays where it is
    assert moves(DEMO, rebalance(DEMO)) == []
    even = own(a="0-4095", b="4096-8191", c="8192-12287", d="12288-16383")
    assert moves(even, rebalance(even)) == []


def test_new_empty_shard_gets_its_share_with_minimal_moves():
    start = {**DEMO, "d": set()}
    new = rebalance(start)
    assert covers_once(new)
    assert [len(new[n]) for n in "abcd"] == [4096] * 4
    plan = moves(start, new)
    # the fewest possible: exactly d's share moves, and only into d
    assert sum(len(m.slots) for m in plan) == 4096
    assert {m.target for m in plan} == {"d"}
    # every donor keeps one contiguous range (it gives from the top)
    for name in "abc":
        assert runs(new[name]) == 1, name
    assert min(new["a"]) == 0 and min(new["b"]) == 5461 and min(new["c"]) == 10923


def test_rebalance_minimal_moves_when_uneven():
    start = own(a="0-9999", b="10000-16383")
    new = rebalance(start)
    assert [len(new["a"]), len(new["b"])] == [8192, 8192]
    plan = moves(start, new)
    assert plan == [Move("a", "b", frozenset(range(8192, 10000)))]  # one contiguous run
    assert runs(new["a"]) == 1 and runs(new["b"]) == 1


def test_rebalance_by_weight():
    new = rebalance(DEMO, {"a": 2, "b": 1, "c": 1})
    assert [len(new[n]) for n in "abc"] == [8192, 4096, 4096]
    assert covers_once(new)
    # a grows only by what b and c give up
    plan = moves(DEMO, new)
    assert {m.target for m in plan} == {"a"}
    assert sum(len(m.slots) for m in plan) == 8192 - 5461


def test_rebalance_leaves_fixed_slots_alone():
    start = own(a="0-9999", b="10000-16383")
    fixed = set(range(9000, 10000))  # a's top slots are still migrating
    new = rebalance(start, fixed=fixed)
    assert fixed <= new["a"]
    assert [len(new["a"]), len(new["b"])] == [8192, 8192]
    assert covers_once(new)


def test_drain_moves_only_the_drained_shards_slots_evenly():
    new = drain(DEMO, "b")
    assert new["b"] == set()
    assert covers_once(new)
    assert [len(new["a"]), len(new["c"])] == [8192, 8192]
    plan = moves(DEMO, new)
    assert {m.source for m in plan} == {"b"}
    assert sum(len(m.slots) for m in plan) == 5462
    # each receiver gets one contiguous run
    assert [runs(set(m.slots)) for m in plan] == [1, 1]


def test_drain_fills_the_emptiest_first():
    start = own(a="0-1999", b="2000-9999", c="10000-16383")
    new = drain(start, "c")
    # 6384 slots: a first catches up with b (6000), then both grow together
    assert [len(new["a"]), len(new["b"])] == [8192, 8192]
    with pytest.raises(PlanError, match="only shard"):
        drain(own(a="0-16383"), "a")
    with pytest.raises(PlanError, match="unknown shard"):
        drain(DEMO, "x")


def test_drain_of_an_empty_shard_moves_nothing():
    start = {**DEMO, "d": set()}
    assert moves(start, drain(start, "d")) == []
