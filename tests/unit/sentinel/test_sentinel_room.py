"""`sentinel.decide.room`: does a migration's target have room for the keys coming?"""

from __future__ import annotations

import pytest

from sentinel.decide.room import MIB, Memory, incoming, room_problems
from slotwarden.cluster.topology import Migration

TO_D = Migration(((0, 4095),), "a", "d")  # a quarter of a's 16384 slots


def test_incoming_is_the_sources_data_times_the_share_of_its_slots():
    a = Memory(used=101 * MIB, startup=1 * MIB)
    assert incoming(TO_D, a, 16384) == 25 * MIB
    assert incoming(TO_D, a, 4096) == 100 * MIB  # a drains completely
    assert incoming(TO_D, Memory(used=MIB, startup=2 * MIB), 16384) == 0


def test_a_target_without_maxmemory_always_has_room():
    memory = {"a": Memory(used=10_000 * MIB), "d": Memory(used=MIB, maxmemory=0)}
    assert room_problems([TO_D], memory, {"a": 16384}) == []


def test_a_target_with_room_passes_and_one_without_is_refused_with_numbers():
    a = Memory(used=401 * MIB, startup=1 * MIB)  # 100 MiB coming to d
    assert room_problems([TO_D], {"a": a, "d": Memory(50 * MIB, 0, 200 * MIB)}, {"a": 16384}) == []
    problems = room_problems([TO_D], {"a": a, "d": Memory(50 * MIB, 0, 120 * MIB)}, {"a": 16384})
    assert problems == [
        "target d has room for 70.0 MiB, the slots hold about 100.0 MiB (slots 0-4095 from a; "
        "maxmemory 120.0 MiB, used 50.0 MiB): raise shard d's maxmemory or move fewer slots, "
        "then edit again"
    ]


def test_migrations_into_one_target_add_up():
    b_to_d = Migration(((8192, 12287),), "b", "d")
    src = Memory(used=41 * MIB, startup=1 * MIB)  # 10 MiB each
    memory = {"a": src, "b": src, "d": Memory(0, 0, 15 * MIB)}
    held = {"a": 16384, "b": 16384}
    assert len(room_problems([TO_D, b_to_d], memory, held)) == 1
    assert room_problems([TO_D], memory, held) == []


@pytest.mark.parametrize("unreadable", ["a", "d"])
def test_unreadable_memory_is_refused(unreadable: str):
    memory = {"a": Memory(MIB), "d": Memory(0, 0, 100 * MIB), unreadable: None}
    (problem,) = room_problems([TO_D], memory, {"a": 16384})
    assert problem.startswith("cannot read INFO memory") and unreadable in problem


def test_memory_parses_info_memory():
    info = {"used_memory": 1000, "used_memory_startup": 10, "maxmemory": 0, "x": "y"}
    assert Memory.parse(info) == Memory(1000, 10, 0)
    with pytest.raises(TypeError):
        Memory.parse({"used_memory": None})
