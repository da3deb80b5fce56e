"""SORT / SORT_RO BY and GET patterns (router.decide.sort_patterns, through planner.plan).

Pure: real SlotMaps, no server. The error texts are Redis Cluster 7.0's (sort.c).
"""

from __future__ import annotations

from router.commands.spec import lookup
from router.decide import plan as planner
from router.decide.plan import plan_queued
from router.decide.sort_patterns import BY_DENIED, GET_DENIED, pattern_slot
from slotwarden.cluster.slots import key_hash_slot
from slotwarden.cluster.topology import Address, Shard, SlotMap

MAP3 = SlotMap.build(
    3,
    [Shard(name, Address("127.0.0.1", 7000 + i)) for i, name in enumerate("abc")],
    [[(0, 5460)], [(5461, 10922)], [(10923, 16383)]],
)


def plan(*words: str) -> object:
    args = [w.encode() for w in words]
    return planner.plan(lookup(args), args, MAP3)


def other_tag(key: str) -> str:
    """A hash tag whose slot is on another shard than ``key``'s."""
    mine = MAP3.owner[key_hash_slot(key.encode())]
    i = 0
    while MAP3.owner[key_hash_slot(f"t{i}".encode())] == mine:
        i += 1
    return f"t{i}"


def test_pattern_slot_follows_redis_pattern_hash_slot() -> None:
    assert pattern_slot(b"{u1}w_*") == key_hash_slot(b"u1")
    assert pattern_slot(b"{u1}w_*->field") == key_hash_slot(b"u1")
    assert pattern_slot(b"w_*") is None  # a glob before any tag
    assert pattern_slot(b"w_*{u1}") is None
    assert pattern_slot(b"{}w_*") is None  # an empty tag: the whole key is hashed
    assert pattern_slot(b"w?{u1}") is None
    assert pattern_slot(b"\\{u1}*") is None  # escapes are not computed, as in Redis
    assert pattern_slot(b"{a{b}*") == key_hash_slot(b"{a{b}")
    assert pattern_slot(b"plain") == key_hash_slot(b"plain")


def test_patterns_without_a_tag_are_refused_with_redis_cluster_text() -> None:
    assert plan("SORT", "ids", "BY", "w_*") == BY_DENIED
    assert plan("SORT", "ids", "GET", "user:*") == GET_DENIED
    assert plan("SORT_RO", "ids", "GET", "#", "GET", "user:*->name") == GET_DENIED
    assert BY_DENIED == (
        b"-ERR BY option of SORT denied in Cluster mode when keys formed by the pattern "
        b"may be in different slots.\r\n"
    )
    assert GET_DENIED.startswith(b"-ERR GET option of SORT denied in Cluster mode")


def test_the_first_refused_option_is_reported() -> None:
    assert plan("SORT", "ids", "GET", "u:*", "BY", "w_*") == GET_DENIED
    assert plan("SORT", "ids", "BY", "w_*", "GET", "u:*") == BY_DENIED
    # an unknown word first: the server's syntax error, so the request goes to the shard
    assert isinstance(plan("SORT", "ids", "BOGUS", "BY", "w_*"), int)


def test_patterns_forming_no_key_are_allowed() -> None:
    shard = MAP3.owner[key_hash_slot(b"ids")]
    assert plan("SORT", "ids", "BY", "nosort", "GET", "#") == shard
    assert plan("SORT", "ids", "GET", "constant") == shard
    assert plan("SORT", "ids", "LIMIT", "0", "2", "DESC", "ALPHA") == shard


def test_a_tag_on_the_sorted_keys_shard_is_allowed_another_shard_refused() -> None:
    shard = MAP3.owner[key_hash_slot(b"{u}ids")]
    assert plan("SORT", "{u}ids", "BY", "{u}w_*", "GET", "{u}n_*", "GET", "#") == shard
    assert plan("SORT_RO", "{u}ids", "BY", "{u}w_*->f") == shard
    far = other_tag("{u}ids")
    assert plan("SORT", "{u}ids", "BY", f"{{{far}}}w_*") == BY_DENIED
    assert plan("SORT_RO", "{u}ids", "GET", f"{{{far}}}n_*") == GET_DENIED


def test_store_on_another_shard_stays_crossslot_and_queued_sort_is_checked() -> None:
    assert plan("SORT", "{u}ids", "STORE", f"{{{other_tag('{u}ids')}}}dst").startswith(
        b"-CROSSSLOT"
    )
    args = [b"SORT", b"ids", b"GET", b"user:*"]
    assert plan_queued(lookup(args), args, MAP3) == GET_DENIED


def test_sort_ro_is_planned_not_fast_pathed() -> None:
    spec = lookup([b"SORT_RO", b"ids"])
    assert spec is not None and spec.fast_key == 0
