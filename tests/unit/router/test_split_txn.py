"""router.decide.split_txn: what a queued command becomes, the per-shard plan, the merged reply.

Pure: real SlotMaps (3 uneven shards), the command table's real rows and mergers,
raw RESP replies as the shards would send them.
"""

from __future__ import annotations

import pytest

from router.commands.spec import lookup
from router.decide import split_txn, txn
from router.decide.merge import merge_all_ok, merge_sum
from router.decide.split_txn import BLOCKING_CROSSSLOT, Place, SplitPlan, assemble, plan_split
from router.decide.txn import Fan, LocalItem, Routed
from slotwarden.cluster.slots import key_hash_slot
from slotwarden.cluster.topology import Address, Shard, SlotMap
from slotwarden.resp.encode import encode_command

RANGES = [[(0, 99), (15000, 16383)], [(100, 4000)], [(4001, 14999)]]
MAP3 = SlotMap.build(
    7, [Shard(n, Address("127.0.0.1", 7000 + i)) for i, n in enumerate("abc")], RANGES
)
NAMES = ["a", "b", "c"]
CROSSSLOT = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"


def keys_on(shard: int, count: int) -> list[bytes]:
    out: list[bytes] = []
    i = 0
    while len(out) < count:
        key = f"k{i}".encode()
        slot = key_hash_slot(key)
        if any(lo <= slot <= hi for lo, hi in RANGES[shard]):
            out.append(key)
        i += 1
    return out


A0, A1 = keys_on(0, 2)
B0, B1 = keys_on(1, 2)
C0, C1 = keys_on(2, 2)


def entry(*args: bytes | str, resp3: bool = False) -> Routed | Fan | bytes:
    argv = [a.encode() if isinstance(a, str) else a for a in args]
    spec = lookup(argv)
    assert spec is not None
    return split_txn.queue_entry(spec, argv, encode_command(argv), MAP3, resp3)


# ---------------------------------------------------------------- queue_entry


def test_fanout_commands_over_several_shards_become_fans_with_their_row_merger() -> None:
    fan = entry("MSET", A0, "1", B0, "2", A1, "3")
    assert type(fan) is Fan
    assert fan.parts == [
        (0, encode_command([b"MSET", A0, b"1", A1, b"3"])),
        (1, encode_command([b"MSET", B0, b"2"])),
    ]
    assert fan.merge is merge_all_ok
    for name in ("DEL", "UNLINK", "EXISTS", "TOUCH"):
        fan = entry(name, A0, C0, B0)
        assert type(fan) is Fan and fan.merge is merge_sum
        assert [shard for shard, _ in fan.parts] == [0, 2, 1]
    mget = entry("MGET", C0, A0, C1)
    assert type(mget) is Fan
    assert mget.merge([b"*2\r\n$1\r\nx\r\n$-1\r\n", b"*1\r\n$1\r\ny\r\n"]) == (
        b"*3\r\n$1\r\nx\r\n$1\r\ny\r\n$-1\r\n"
    )


def test_one_shard_or_keyless_commands_are_routed_as_they_are() -> None:
    assert entry("MSET", A0, "1", A1, "2") == Routed(
        0, encode_command([b"MSET", A0, b"1", A1, b"2"])
    )
    assert entry("GET", B0) == Routed(1, encode_command([b"GET", B0]))
    assert entry("LASTSAVE") == Routed(None, encode_command([b"LASTSAVE"]))
    assert entry("BLPOP", C0, C1, "0") == Routed(2, encode_command([b"BLPOP", C0, C1, b"0"]))


def test_queue_time_errors() -> None:
    assert entry("SINTER", A0, B0) == CROSSSLOT  # cannot be split: keys on two shards
    assert entry("MSET", A0, "1", B0) == b"-ERR wrong number of arguments for 'mset' command\r\n"
    assert entry("DBSIZE").startswith(b"-ERR 'dbsize' cannot be queued in MULTI")  # type: ignore[union-attr]
    for blocking in (
        ("BLPOP", A0, B0, "0"), ("BRPOPLPUSH", A0, B0, "0"),
        ("BLMOVE", A0, B0, "LEFT", "RIGHT", "0"), ("BZMPOP", "0", "2", A0, B0, "MIN"),
    ):  # fmt: skip
        got = entry(*blocking)
        assert got == BLOCKING_CROSSSLOT, blocking
    assert BLOCKING_CROSSSLOT.startswith(CROSSSLOT[:-2] + b" (")
    assert b"hash tag" in BLOCKING_CROSSSLOT


# ---------------------------------------------------------------- plan_split


def local(name: str) -> LocalItem:
    return LocalItem(name, [name.encode()])


def test_plan_groups_by_shard_in_first_use_order_with_keyless_on_the_first_shard() -> None:
    answered: list[str] = []

    def answer(item: LocalItem) -> bytes:
        answered.append(item.name)
        return b"+" + item.name.encode() + b"\r\n"

    fan = Fan([(1, b"m1"), (2, b"m2")], merge_all_ok)
    items: list[bytes | LocalItem | Routed | Fan] = [
        local("ping"), Routed(None, b"t"), Routed(2, b"x"), fan, local("echo"), Routed(1, b"y"),
    ]  # fmt: skip
    plan = plan_split(items, None, answer)
    assert answered == ["ping", "echo"]
    assert plan.order == [2, 1]
    assert plan.requests == {2: [b"t", b"x", b"m2"], 1: [b"m1", b"y"]}
    assert plan.split
    assert [p.local for p in plan.places] == [b"+ping\r\n", None, None, None, b"+echo\r\n", None]
    assert plan.places[3].parts == [(1, 0), (2, 2)]
    assert plan.places[1].parts == [(2, 0)]


def test_the_watched_shard_runs_first_even_with_nothing_queued_for_it() -> None:
    plan = plan_split([Routed(2, b"x"), Routed(None, b"t")], 1, lambda i: b"")
    assert plan.order == [1, 2]
    assert plan.requests == {1: [b"t"], 2: [b"x"]}
    plan = plan_split([Routed(2, b"x")], 1, lambda i: b"")
    assert plan.requests == {1: [], 2: [b"x"]}
    plan = plan_split([local("ping")], None, lambda i: b"+PONG\r\n")
    assert plan.order == [] and not plan.split
    assert plan_split([Routed(None, b"t")], None, lambda i: b"").order == [0]


# ---------------------------------------------------------------- assemble


def two_shard_plan() -> SplitPlan:
    return SplitPlan(
        order=[0, 2],
        requests={0: [b"SET a", b"MSET a"], 2: [b"MSET c", b"GET c"]},
        places=[
            Place(parts=[(0, 0)]),
            Place(parts=[(0, 1), (2, 0)], merge=merge_all_ok),
            Place(local=b"+PONG\r\n"),
            Place(parts=[(2, 1)]),
        ],
    )


def test_assemble_puts_every_reply_in_the_clients_order() -> None:
    got = assemble(two_shard_plan(), [b"*2\r\n+OK\r\n+OK\r\n", b"*2\r\n+OK\r\n$1\r\n3\r\n"], NAMES)
    assert got == b"*4\r\n+OK\r\n+OK\r\n+PONG\r\n$1\r\n3\r\n"
    # RESP3 elements pass through as they are
    got = assemble(two_shard_plan(), [b"*2\r\n+OK\r\n+OK\r\n", b"*2\r\n+OK\r\n_\r\n"], NAMES)
    assert got == b"*4\r\n+OK\r\n+OK\r\n+PONG\r\n_\r\n"


def test_a_runtime_error_stays_at_its_place() -> None:
    wrongtype = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    got = assemble(two_shard_plan(), [b"*2\r\n+OK\r\n+OK\r\n", b"*2\r\n+OK\r\n" + wrongtype], NAMES)
    assert got == b"*4\r\n+OK\r\n+OK\r\n+PONG\r\n" + wrongtype


@pytest.mark.parametrize(
    "failed, shown",
    [
        (
            b"-EXECABORT Transaction discarded because of previous errors.\r\n",
            b"-EXECABORT Transaction discarded because of previous errors. "
            b"(shard c's part of the split transaction)\r\n",
        ),
        (
            b"-CLUSTERDOWN shard c timed out (no reply within 2000 ms)\r\n",
            b"-CLUSTERDOWN shard c timed out (no reply within 2000 ms) "
            b"(shard c's part of the split transaction)\r\n",
        ),
        (
            b"*-1\r\n",
            b"-ERR unexpected EXEC reply b'*-1\\r\\n' "
            b"(shard c's part of the split transaction)\r\n",
        ),
        (
            b"*1\r\n+OK\r\n",  # not as many replies as commands sent
            b"-ERR unexpected EXEC reply b'*1\\r\\n+OK\\r\\n' "
            b"(shard c's part of the split transaction)\r\n",
        ),
    ],
)
def test_a_failed_shard_yields_its_error_at_its_places_only(failed: bytes, shown: bytes) -> None:
    got = assemble(two_shard_plan(), [b"*2\r\n+OK\r\n+OK\r\n", failed], NAMES)
    # the fan-out's merger takes the first error of its parts
    assert got == b"*4\r\n+OK\r\n" + shown + b"+PONG\r\n" + shown


def test_nil_is_recognised_in_both_protocols() -> None:
    assert split_txn.is_nil(b"*-1\r\n") and split_txn.is_nil(b"_\r\n")
    assert not split_txn.is_nil(b"*0\r\n")


def test_splice_passes_a_nil_through_even_with_only_local_items() -> None:
    # WATCH k; MULTI; PING; EXEC with a conflict: nil, not [PONG]
    for nil in (b"*-1\r\n", b"_\r\n"):
        assert txn.splice(nil, [b"+PONG\r\n"]) == nil
    assert txn.splice(b"*0\r\n", [b"+PONG\r\n"]) == b"*1\r\n+PONG\r\n"
