"""`sentinel.decide.reconfigure`: cluster.yaml edits become migrations, refused while they
would redirect one, and migrations end (`finished`), on plain data."""

from __future__ import annotations

from sentinel.decide import reconfigure
from slotwarden.cluster.config import ClusterConfig, parse
from slotwarden.cluster.topology import Address, Migration, Shard, SlotMap

A, B, C, D = (Address("127.0.0.1", p) for p in (7001, 7002, 7003, 7004))
NODES = {"a": A, "b": B, "c": C, "d": D}


def config(**slots: str) -> ClusterConfig:
    shards = [{"name": n, "slots": s, "master": str(NODES[n])} for n, s in slots.items()]
    return parse({"name": "t", "router": {"listen": "127.0.0.1:7777"}, "shards": shards})


THREE = {"a": "0-5460", "b": "5461-10922", "c": "10923-16383"}


def start() -> SlotMap:
    return config(**THREE).slotmap(3)


def test_moving_slots_makes_one_migration_per_pair_owned_by_the_target():
    edit = config(a="100-5460", b="0-49,5461-10922", c="50-99,10923-16383")
    merged = reconfigure.merge(edit, start(), 4)
    assert merged.migrations == (
        Migration(((0, 49),), "a", "b"),
        Migration(((50, 99),), "a", "c"),
    )
    assert merged.ranges_of(merged.shard_index("b")) == "0-49,5461-10922"
    assert merged.source_of(0) == merged.shard_index("a")
    assert merged.source_of(100) is None
    # the same file over the published map changes nothing: the migrations are kept
    again = reconfigure.merge(edit, merged, 5)
    assert reconfigure.same_layout(again, merged)
    assert reconfigure.plan_problems(edit, merged) == []


def test_a_new_shard_is_a_migration_into_it():
    edit = config(a="0-4095", b="5461-10922", c="10923-16383", d="4096-5460")
    merged = reconfigure.merge(edit, start(), 4)
    assert [s.name for s in merged.shards] == ["a", "b", "c", "d"]
    assert merged.migrations == (Migration(((4096, 5460),), "a", "d"),)
    what = reconfigure.describe(start(), merged, edit)
    assert what == [
        f"shard d added (master {D}, replicas none)",
        "1365 slot(s) 4096-5460 start moving from shard a to shard d (keys follow)",
    ]


def test_a_removed_shard_drains_with_its_current_nodes_and_no_slots():
    current = start()
    failed_over = current.derive(shards=(current.shards[0], current.shards[1], Shard("c", D)))
    edit = config(a="0-5460", b="5461-16383")
    merged = reconfigure.merge(edit, failed_over, 4)
    assert [s.name for s in merged.shards] == ["a", "b", "c"]
    assert merged.shards[2] == Shard("c", D)  # its current master, not the file's (gone)
    assert merged.slots_of(2) == [] and merged.to_dict()["shards"][2]["slots"] == ""
    assert merged.migrations == (Migration(((10923, 16383),), "c", "b"),)
    # published and re-read: the same map
    assert SlotMap.from_dict(merged.to_dict()) == merged


def test_a_kept_shard_with_no_slots_drains_and_stays():
    edit = config(a="0-5460", b="5461-16383", c="")
    merged = reconfigure.merge(edit, start(), 4)
    assert [s.name for s in merged.shards] == ["a", "b", "c"]
    assert merged.migrations == (Migration(((10923, 16383),), "c", "b"),)
    done = reconfigure.finished(merged, merged.migrations[0], edit, 5)
    assert [s.name for s in done.shards] == ["a", "b", "c"]  # the file still lists it
    assert done.migrations == () and done.epoch == 5


def test_a_removed_shard_that_owns_nothing_and_moves_nothing_goes_at_once():
    current = config(a="0-5460", b="5461-16383", c="").slotmap(3)
    merged = reconfigure.merge(config(a="0-5460", b="5461-16383"), current, 4)
    assert [s.name for s in merged.shards] == ["a", "b"]
    assert merged.migrations == ()


def test_a_running_migration_is_kept_when_the_file_agrees():
    moving = reconfigure.merge(config(a="100-5460", b="0-99,5461-10922", c=THREE["c"]), start(), 4)
    # a second edit moves other slots: the first migration stays as it is, a new one joins
    edit = config(a="200-5460", b="0-199,5461-10922", c=THREE["c"])
    assert reconfigure.plan_problems(edit, moving) == []
    merged = reconfigure.merge(edit, moving, 5)
    assert merged.migrations == (
        Migration(((0, 99),), "a", "b"),
        Migration(((100, 199),), "a", "b"),
    )


def test_an_edit_redirecting_a_migrating_slot_is_refused_with_what_to_do():
    moving = reconfigure.merge(config(a="100-5460", b="0-99,5461-10922", c=THREE["c"]), start(), 4)
    back = config(a="0-5460", b="5461-10922", c=THREE["c"])
    assert reconfigure.plan_problems(back, moving) == [
        "slots 0-99 are still moving from shard a to shard b (slots 0-99) and the edit gives "
        "them to shard a (its source): wait until slots 0-99 finish moving a -> b "
        "(slotwarden status), then edit"
    ]
    third = config(a="100-5460", b="50-99,5461-10922", c="0-49,10923-16383")
    problems = reconfigure.plan_problems(third, moving)
    assert problems == [
        "slots 0-49 are still moving from shard a to shard b (slots 0-99) and the edit gives "
        "them to shard c (a third shard): wait until slots 0-99 finish moving a -> b "
        "(slotwarden status), then edit"
    ]
    # merge stays total: the migrating slots are left as they are
    merged = reconfigure.merge(third, moving, 5)
    assert merged.migrations == moving.migrations
    assert merged.ranges_of(merged.shard_index("b")) == "0-99,5461-10922"


def test_removing_a_migrations_target_is_refused():
    moving = reconfigure.merge(
        config(a="0-4095", b=THREE["b"], c=THREE["c"], d="4096-5460"), start(), 4
    )
    edit = config(**THREE)  # d is gone: its migrating slots go back to a
    assert len(reconfigure.plan_problems(edit, moving)) == 1
    merged = reconfigure.merge(edit, moving, 5)  # total anyway: d is kept as the target
    assert merged.migrations == moving.migrations
    assert "d" in [s.name for s in merged.shards]


def test_finished_ends_one_migration_and_drops_the_drained_shard():
    edit = config(a="0-5460", b="5461-16000", d="16001-16383")
    merged = reconfigure.merge(edit, start(), 4)
    assert [m.source for m in merged.migrations] == ["c", "c"]
    to_b, to_d = merged.migrations
    half = reconfigure.finished(merged, to_b, edit, 5)
    assert half.migrations == (to_d,) and "c" in [s.name for s in half.shards]
    done = reconfigure.finished(half, to_d, edit, 6)
    assert [s.name for s in done.shards] == ["a", "b", "d"]  # indices changed: rebuilt
    assert done.migrations == () and done.epoch == 6
    assert done.ranges_of(done.shard_index("d")) == "16001-16383"
    assert done.ranges_of(done.shard_index("b")) == "5461-16000"
    what = reconfigure.describe(half, done)
    assert what == ["shard c removed", "slots 16001-16383 finished moving from shard c to d"]
    # ending a migration the map does not have changes nothing but the epoch
    assert reconfigure.same_layout(reconfigure.finished(done, to_d, edit, 7), done)
