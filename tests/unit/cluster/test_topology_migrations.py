"""Slot maps with migrations: validation, the moving[] index, JSON round trip, derive."""

from __future__ import annotations

import json

import pytest

from slotwarden.cluster.topology import NOT_MOVING, Address, Migration, Shard, SlotMap
from slotwarden.cluster.trust import TopologyRefused, parse_topology

A = Shard("a", Address("127.0.0.1", 7001))
B = Shard("b", Address("127.0.0.1", 7002))
D = Shard("d", Address("127.0.0.1", 7004))


def _map(migrations: tuple[Migration, ...] = ()) -> SlotMap:
    # d owns 0-99 (moving from a), a owns 100-8191, b the rest
    return SlotMap.build(7, [A, B, D], [[(100, 8191)], [(8192, 16383)], [(0, 99)]], migrations)


def test_migrating_slots_have_source_and_target() -> None:
    m = Migration.of(range(0, 100), "a", "d")
    slotmap = _map((m,))
    assert m.slots == ((0, 99),) and m.ranges() == "0-99" and m.count() == 100
    assert slotmap.source_of(0) == 0 and slotmap.source_of(99) == 0
    assert slotmap.source_of(100) is None
    assert slotmap.owner[5] == 2  # the target owns the slot
    assert slotmap.moving[100] == NOT_MOVING
    assert slotmap.migration_of(50) == m and slotmap.migration_of(500) is None


def test_no_migrations_costs_nothing() -> None:
    slotmap = _map()
    assert slotmap.moving == b"" and slotmap.source_of(0) is None


@pytest.mark.parametrize(
    "migration, reason",
    [
        (Migration.of([(0, 99)], "a", "b"), "owned by d"),
        (Migration.of([(0, 9)], "zz", "d"), "does not exist"),
        (Migration.of([(0, 9)], "d", "d"), "onto itself"),
    ],
)
def test_inconsistent_migrations_are_refused(migration: Migration, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        _map((migration,))


def test_a_slot_in_two_migrations_is_refused() -> None:
    with pytest.raises(ValueError, match="two migrations"):
        _map((Migration.of([(0, 9)], "a", "d"), Migration.of([(5, 20)], "b", "d")))


def test_json_round_trip_keeps_migrations_and_draining_shards() -> None:
    # b is draining: it owns nothing, and is the source of 8192-16383
    slotmap = SlotMap.build(
        9, [A, B, D], [[(0, 8191)], [], [(8192, 16383)]], [Migration.of([(8192, 16383)], "b", "d")]
    )
    data = json.loads(json.dumps(slotmap.to_dict()))
    assert data["migrations"] == [
        {"slots": "8192-16383", "from": "b", "to": "d", "state": "moving"}
    ]
    assert data["shards"][1]["slots"] == ""
    again = parse_topology(data)
    assert again == slotmap and again.moving == slotmap.moving


def test_maps_without_migrations_keep_their_old_json_shape() -> None:
    assert "migrations" not in _map().to_dict()


def test_malformed_migrations_are_refused_by_the_parser() -> None:
    data = _map((Migration.of([(0, 99)], "a", "d"),)).to_dict()
    data["migrations"] = [{"slots": "0-99", "from": "a", "to": "b"}]
    with pytest.raises(TopologyRefused, match="owned by d"):
        parse_topology(data)
    data["migrations"] = "nope"
    with pytest.raises(TopologyRefused):
        parse_topology(data)


def test_derive_keeps_migrations() -> None:
    slotmap = _map((Migration.of([(0, 99)], "a", "d"),))
    moved = slotmap.derive(epoch=8, shards=(Shard("a", Address("127.0.0.1", 7101)), B, D))
    assert moved.migrations == slotmap.migrations and moved.epoch == 8
    assert moved.source_of(3) == 0
    assert slotmap.derive(migrations=()).source_of(3) is None


def test_a_preparing_migration_holds_its_slots_and_round_trips() -> None:
    m = Migration.of([(0, 99)], "a", "d", "preparing")
    slotmap = _map((m,))
    assert m.preparing and slotmap.is_preparing(5) and not slotmap.is_preparing(100)
    assert slotmap.source_of(5) == 0  # still a migrating slot: its keys may be on a
    again = parse_topology(json.loads(json.dumps(slotmap.to_dict())))
    assert again.migrations[0].state == "preparing" and again == slotmap
    moving = slotmap.derive(migrations=(m.with_state("moving"),))
    assert not moving.is_preparing(5) and moving.migrations[0].same_move(m)
    assert moving != slotmap  # a state change is a layout change (a new epoch)


def test_an_unknown_migration_state_is_refused() -> None:
    data = _map((Migration.of([(0, 99)], "a", "d"),)).to_dict()
    data["migrations"][0]["state"] = "half-done"
    with pytest.raises(TopologyRefused, match="not one of preparing, moving"):
        parse_topology(data)


def test_json_without_a_state_means_moving() -> None:
    data = _map((Migration.of([(0, 99)], "a", "d"),)).to_dict()
    del data["migrations"][0]["state"]
    assert parse_topology(data).migrations[0].state == "moving"
