"""Refusals (one failover-refused event per outage, not per cycle) and the per-shard backoff."""

from __future__ import annotations

from sentinel.run.events import EventLog
from sentinel.run.refusals import Backoff, Refusals
from sentinel.run.stats import SentinelStats
from slotwarden.cluster.topology import Address, Shard, SlotMap

M = Address("127.0.0.1", 7001)
R = Address("127.0.0.1", 7101)


def kinds(events: EventLog) -> list[str]:
    return [e.kind for _, e in events.backlog]


def test_one_event_per_refusal_not_per_cycle():
    events, stats = EventLog(), SentinelStats()
    r = Refusals(events, stats)
    for i in range(50):  # every run cycle sees it again, with a changing reason
        r.refuse("a", M, f"no replica of shard a can be promoted (down for {i} s)", 0)
    assert kinds(events) == ["failover-refused"]
    assert stats.refusals["a"] == 1
    assert r.current["a"].endswith("(down for 49 s)")  # the latest reason, for status
    r.clear("a", "its master answers again", 0)
    r.clear("a", "its master answers again", 0)
    assert kinds(events) == ["failover-refused", "failover-refused-cleared"]
    r.refuse("a", M, "again", 0)
    assert stats.refusals["a"] == 2 and r.current == {"a": "again"}


def test_a_topology_with_a_new_master_clears_the_refusal():
    events = EventLog()
    r = Refusals(events, SentinelStats())
    r.refuse("a", M, "no replica", 0)
    r.on_topology(SlotMap.build(1, [Shard("a", M, (R,))], [[(0, 16383)]]))
    assert "a" in r.current  # same master: still refused
    r.on_topology(SlotMap.build(2, [Shard("a", R, (M,))], [[(0, 16383)]]))
    assert r.current == {}
    assert kinds(events)[-1] == "failover-refused-cleared"


def test_backoff_counts_failures_in_a_row_per_shard():
    b = Backoff()
    assert b.failed(["a"]) == 1
    assert b.failed(["a", "b"]) == 2
    assert b.failed([]) == 0
    b.reset("a")
    assert b.failed(["a"]) == 1 and b.failed(["b"]) == 2
