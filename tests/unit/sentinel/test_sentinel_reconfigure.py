"""`sentinel.decide.reconfigure`: a cluster.yaml edit merged with the failover state,
on plain data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sentinel.decide import failover, reconfigure
from sentinel.decide.failover import Failover, Step
from sentinel.decide.model import Abort, Publish
from slotwarden.cluster.config import ClusterConfig, parse
from slotwarden.cluster.topology import Address, Shard, SlotMap

ROOT = Path(__file__).resolve().parents[3]
M1, R1, M2, R2, X = (Address("127.0.0.1", p) for p in (7001, 7101, 7002, 7102, 7200))


def config(shards: list[dict]) -> ClusterConfig:
    return parse({"name": "t", "router": {"listen": "127.0.0.1:7777"}, "shards": shards})


def two(a_slots="0-8191", b_slots="8192-16383", a_nodes=(M1, R1), b_nodes=(M2, R2), extra=()):
    shards = [
        {"name": "a", "slots": a_slots, "master": str(a_nodes[0]),
         "replicas": [str(r) for r in a_nodes[1:]]},
        {"name": "b", "slots": b_slots, "master": str(b_nodes[0]),
         "replicas": [str(r) for r in b_nodes[1:]]},
    ]  # fmt: skip
    return config(shards + list(extra))


def failed_over(topology: SlotMap, epoch: int) -> SlotMap:
    """Shard a switched from M1 to R1, as `Failover.apply` does it."""
    shards = list(topology.shards)
    shards[0] = Shard("a", R1, (M1,))
    return SlotMap(epoch, tuple(shards), topology.owner)


def test_an_unchanged_file_merges_to_the_same_layout():
    cfg = two()
    current = cfg.slotmap(0)
    merged = reconfigure.merge(cfg, current, 1)
    assert merged.epoch == 1
    assert reconfigure.same_layout(merged, current)
    assert reconfigure.describe(current, merged) == []


def test_after_a_failover_the_same_file_changes_nothing():
    cfg = two()
    current = failed_over(cfg.slotmap(0), 3)
    merged = reconfigure.merge(cfg, current, 4)
    assert reconfigure.same_layout(merged, current)
    assert merged.shards[0] == Shard("a", R1, (M1,))


def test_a_slot_move_keeps_the_promoted_master():
    current = failed_over(two().slotmap(0), 3)
    edit = two(a_slots="0-999", b_slots="1000-16383")  # still names M1 as a's master
    merged = reconfigure.merge(edit, current, 4)
    assert merged.shards[0] == Shard("a", R1, (M1,))
    assert merged.ranges_of(0) == "0-999" and merged.ranges_of(1) == "1000-16383"
    what = reconfigure.describe(current, merged, edit)
    assert what == [
        "7192 slot(s) 1000-8191 start moving from shard a to shard b (keys follow)",
        f"shard a keeps master {R1} from the failover state (the file names {M1})",
    ]


def test_a_master_removed_from_the_file_is_replaced_by_the_files_master():
    current = failed_over(two().slotmap(0), 3)
    edit = two(a_nodes=(M1, X))  # R1, the current master, is gone from shard a
    merged = reconfigure.merge(edit, current, 4)
    assert merged.shards[0] == Shard("a", M1, (X,))
    assert f"shard a master {R1} -> {M1}" in reconfigure.describe(current, merged)


def test_replicas_keep_their_order_and_new_ones_follow():
    current = two(a_nodes=(M1, R1, R2), b_nodes=(M2,)).slotmap(0)
    edit = config(
        [
            {"name": "a", "slots": "0-8191", "master": str(M1), "replicas": [str(X), str(R1)]},
            {"name": "b", "slots": "8192-16383", "master": str(M2)},
        ]
    )
    merged = reconfigure.merge(edit, current, 1)
    assert merged.shards[0] == Shard("a", M1, (R1, X))
    assert merged.shards[1] == Shard("b", M2, ())
    what = reconfigure.describe(current, merged)
    assert f"shard a replica(s) {X} added" in what
    assert f"shard a node(s) {R2} removed" in what


def test_a_shard_added_and_one_removed():
    current = two().slotmap(5)
    edit = config(
        [
            {"name": "a", "slots": "0-8191", "master": str(M1), "replicas": [str(R1)]},
            {"name": "c", "slots": "8192-16383", "master": str(X)},
        ]
    )
    merged = reconfigure.merge(edit, current, 6)
    # b drains into c: it stays, without slots, until its keys have moved
    assert [s.name for s in merged.shards] == ["a", "c", "b"]
    assert merged.shards[1] == Shard("c", X, ())
    assert merged.shards[2] == current.shards[1] and merged.slots_of(2) == []
    what = reconfigure.describe(current, merged)
    assert what[:3] == [
        f"shard c added (master {X}, replicas none)",
        "8192 slot(s) 8192-16383 start moving from shard b to shard c (keys follow)",
        "shard b drains (it keeps no slots)",
    ]


def _ready(shard: str, old: Address, candidate: Address, epoch: int) -> Failover:
    return Failover(shard, epoch, old, candidate, (), Step.PUBLISH, 0.0, 10.0, 10.0)


def test_a_failover_publishes_on_top_of_an_edit_published_meanwhile():
    edited = two(a_slots="0-999", b_slots="1000-16383").slotmap(4)
    published = failover.publish_round(edited, [_ready("b", M2, R2, 5)])
    assert isinstance(published, Publish)
    assert published.topology.ranges_of(0) == "0-999"  # the edit is kept
    assert published.topology.shards[1] == Shard("b", R2, (M2,))


def test_a_failover_aborts_if_an_edit_removed_its_shard_or_candidate():
    no_b = config([{"name": "a", "slots": "0-16383", "master": str(M1)}]).slotmap(4)
    out = failover.publish_round(no_b, [_ready("b", M2, R2, 5)])
    assert isinstance(out, Abort) and "removed" in out.reason
    no_r2 = two(b_nodes=(M2, X)).slotmap(4)
    out = failover.publish_round(no_r2, [_ready("b", M2, R2, 5)])
    assert isinstance(out, Abort) and "no longer a replica" in out.reason


def test_reconfigure_does_no_io():
    code = (
        "import sys, json; import sentinel.decide.reconfigure; "
        "print(json.dumps(sorted(m for m in ('asyncio', 'aiohttp', 'socket') if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []
