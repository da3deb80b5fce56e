"""router.decide.algebra: how a multi-key command spanning shards is run on one shard.

Pure: no server (test_compat_cross_shard compares the results with a real redis-server).
"""

from __future__ import annotations

import hiredis
import pytest

from router.commands.spec import CommandSpec, lookup
from router.decide import algebra
from router.errors import CROSSSLOT
from slotwarden.cluster.slots import key_hash_slot
from slotwarden.resp.encode import encode_command

# three even shards, as the integration fixtures split the slots
BOUNDS = [0, 5461, 10923, 16384]
OWNER = bytes(next(i for i in range(3) if BOUNDS[i] <= s < BOUNDS[i + 1]) for s in range(16384))
TOKEN = b"t1"


def on(shard: int, count: int, prefix: str = "k") -> list[bytes]:
    out: list[bytes] = []
    i = 0
    while len(out) < count:
        key = f"{prefix}{i}".encode()
        if OWNER[key_hash_slot(key)] == shard:
            out.append(key)
        i += 1
    return out


def spec(args: list[bytes]) -> CommandSpec:
    found = lookup(args)
    assert found is not None
    return found


def plan(*args: bytes | str | int) -> algebra.CrossShard | bytes:
    argv = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    return algebra.plan_cross(spec(argv), argv, OWNER, TOKEN)


A0, B0 = on(0, 2)
A1, B1 = on(1, 2)
A2 = on(2, 1)[0]


def test_the_table_marks_exactly_the_computed_commands() -> None:
    computed = {
        name
        for name in (
            "sunion sinter sdiff sintercard zunion zinter zdiff zintercard pfcount lcs "
            "sunionstore sinterstore sdiffstore zunionstore zinterstore zdiffstore "
            "zrangestore geosearchstore pfmerge bitop sort georadius georadiusbymember"
        ).split()
    }
    from router.commands.spec import TABLE

    marked = {s.name for s in TABLE.values() if s.merger in algebra.COMPUTED}
    assert marked == computed
    for move in (b"RENAME", b"RENAMENX", b"COPY", b"SMOVE", b"LMOVE", b"RPOPLPUSH", b"MSETNX"):
        assert TABLE[move].merger is None  # moves between shards stay CROSSSLOT


def test_a_read_runs_on_the_shard_holding_most_keys() -> None:
    cross = plan("SUNION", A0, A1, B1)
    assert isinstance(cross, algebra.CrossShard)
    assert cross.anchor == 1
    assert cross.fetch == [(0, A0)]
    assert cross.args[0] == b"SUNION" and cross.args[2:] == [A1, B1]
    assert cross.args[1] == cross.temps[0]


def test_ties_go_to_the_first_keys_shard_and_a_repeated_key_is_copied_once() -> None:
    cross = plan("ZUNION", 4, A2, A0, A2, A1, "WITHSCORES")
    assert isinstance(cross, algebra.CrossShard)
    assert cross.anchor == 2
    assert [key for _, key in cross.fetch] == [A0, A1]
    assert cross.args[2] == cross.args[4] == A2
    assert cross.args[3] == cross.temps[0] and cross.args[5] == cross.temps[1]
    assert cross.args[6] == b"WITHSCORES"


def test_a_store_runs_on_the_destinations_shard() -> None:
    cross = plan("SUNIONSTORE", A2, A0, B0, A1)
    assert isinstance(cross, algebra.CrossShard)
    assert cross.anchor == 2
    assert cross.args[1] == A2  # the destination itself, never a copy
    assert cross.fetch == [(0, A0), (0, B0), (1, A1)]
    bitop = plan("BITOP", "AND", A1, A0, A1)
    assert isinstance(bitop, algebra.CrossShard) and bitop.anchor == 1
    assert bitop.args[2:] == [A1, bitop.temps[0], A1]


def test_sort_store_runs_on_the_destinations_shard_unless_a_pattern_reads_keys() -> None:
    cross = plan("SORT", A0, "LIMIT", 0, 5, "ALPHA", "STORE", A1)
    assert isinstance(cross, algebra.CrossShard)
    assert cross.anchor == 1 and cross.fetch == [(0, A0)]
    nosort = plan("SORT", A0, "BY", "nosort", "GET", "#", "STORE", A1)
    assert isinstance(nosort, algebra.CrossShard)
    assert plan("SORT", A0, "BY", "w_*", "STORE", A1) == CROSSSLOT
    assert plan("SORT", A0, "GET", "#", "GET", "h_*->f", "STORE", A1) == CROSSSLOT


def test_copies_are_named_in_the_anchor_keys_slot() -> None:
    cross = plan("SINTER", A0, B0, A2)
    assert isinstance(cross, algebra.CrossShard)
    for temp in cross.temps:
        assert temp.startswith(algebra.TEMP_PREFIX + b"{")
        assert key_hash_slot(temp) == key_hash_slot(A0)
        assert TOKEN in temp
    assert len(set(cross.temps)) == len(cross.temps)


@pytest.mark.parametrize("slot", [0, 1, 5460, 5461, 12182, 16383])
def test_slot_tags_hash_to_their_slot(slot: int) -> None:
    assert key_hash_slot(algebra.slot_tag(slot)) == slot


def decode_all(requests: list[bytes]) -> list[list[bytes]]:
    reader = hiredis.Reader()
    reader.feed(b"".join(requests))
    out = []
    while (item := reader.gets()) is not False:
        out.append(item)
    return out


def test_the_transaction_restores_each_existing_copy_then_deletes_them() -> None:
    cross = plan("SUNIONSTORE", A2, A0, A1, B1)
    assert isinstance(cross, algebra.CrossShard)
    payload = b"\x02\x00binary\r\npayload"
    dumps = [encode_command([payload]).split(b"\r\n", 1)[1], b"$-1\r\n", b"_\r\n"]
    requests, restored = algebra.transaction(cross, dumps)
    assert restored == 1
    assert decode_all(requests) == [
        [b"MULTI"],
        [b"RESTORE", cross.temps[0], str(algebra.TEMP_TTL_MS).encode(), payload],
        [b"SUNIONSTORE", A2, *cross.temps],
        [b"DEL", cross.temps[0]],
        [b"EXEC"],
    ]
    nothing, none = algebra.transaction(cross, [b"$-1\r\n"] * 3)
    assert none == 0
    assert decode_all(nothing) == [[b"MULTI"], [b"SUNIONSTORE", A2, *cross.temps], [b"EXEC"]]


def test_the_reply_is_the_commands_own_inside_exec() -> None:
    queued = [b"+OK\r\n", b"+QUEUED\r\n", b"+QUEUED\r\n", b"+QUEUED\r\n"]
    mapped = b"%1\r\n$7\r\nmatches\r\n*0\r\n"
    exec_reply = b"*3\r\n+OK\r\n" + mapped + b":1\r\n"
    assert algebra.result([*queued, exec_reply], 1) == mapped
    wrongtype = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    assert algebra.result([*queued[:2], b"*1\r\n" + wrongtype], 0) == wrongtype


def test_an_error_anywhere_is_the_reply() -> None:
    oom = b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"
    abort = b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    assert algebra.result([b"+OK\r\n", oom, b"+QUEUED\r\n", abort], 1) == oom
    down = b"-ERR shard down\r\n"
    assert algebra.result([down, down, down], 1) == down
    busy = b"-BUSYKEY Target key name already exists.\r\n"
    replies = [b"+OK\r\n", b"+QUEUED\r\n", b"+QUEUED\r\n", b"+QUEUED\r\n"]
    assert algebra.result([*replies, b"*3\r\n" + busy + b":2\r\n:0\r\n"], 1) == busy
    assert algebra.result([*replies, b"*-1\r\n"], 1).startswith(b"-ERR router expected")


def test_the_byte_bound() -> None:
    assert algebra.measured([b":100\r\n", b"$-1\r\n", b"_\r\n", b":5\r\n"]) == 105
    assert algebra.measured([b":1\r\n", b"-ERR down\r\n"]) == b"-ERR down\r\n"
    assert algebra.dumped_bytes([b"$3\r\nabc\r\n", b"$-1\r\n"]) == 9
    reply = algebra.too_large(70000, 65536)
    assert reply.startswith(b"-CROSSSLOT Keys in request don't hash to the same slot (")
    assert b"70000" in reply and b"router.max_cross_shard_bytes 65536" in reply
