"""planner.plan for every routing shape, over real SlotMaps (3 uneven shards, and 1 shard).

Pure: no server. Expected request pieces are built by a tiny encoder local to
this file (not `slotwarden.resp.encode_command`), so an encoding bug in the
planner cannot hide behind the same bug in the helper. Error texts that mirror
Redis were checked against redis-server 7.0.15.
"""

from __future__ import annotations

import hiredis
import pytest

from router.commands.acl import INFO_SENT
from router.commands.spec import Shape, lookup
from router.decide import merge
from router.decide import plan as planner
from router.decide.info import RouterFacts
from router.decide.plan import SCAN_SHARD_BITS, Fanout, plan_queued
from slotwarden.cluster.slots import key_hash_slot
from slotwarden.cluster.topology import Address, Shard, SlotMap

# Shard 0 owns two disjoint ranges at both ends, shard 1 a small middle range,
# shard 2 the bulk: keys are placed by the map, not by an even split.
RANGES = [[(0, 99), (15000, 16383)], [(100, 4000)], [(4001, 14999)]]
MAP3 = SlotMap.build(
    7,
    [Shard(name, Address("127.0.0.1", 7000 + i)) for i, name in enumerate("abc")],
    RANGES,
)
MAP1 = SlotMap.build(1, [Shard("solo", Address("127.0.0.1", 7100))], [[(0, 16383)]])


def owner_by_ranges(key: bytes) -> int:
    """The shard owning ``key`` according to RANGES (independent of SlotMap.owner)."""
    slot = key_hash_slot(key)
    return next(i for i, rs in enumerate(RANGES) if any(lo <= slot <= hi for lo, hi in rs))


def keys_on(shard: int, count: int, prefix: str = "k") -> list[bytes]:
    out: list[bytes] = []
    i = 0
    while len(out) < count:
        key = f"{prefix}{i}".encode()
        if owner_by_ranges(key) == shard:
            out.append(key)
        i += 1
    return out


A0, A1, A2 = keys_on(0, 3)
B0, B1, B2 = keys_on(1, 3)
C0, C1, C2 = keys_on(2, 3)


def req(*args: bytes | str) -> list[bytes]:
    return [a.encode() if isinstance(a, str) else a for a in args]


def resp_cmd(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def plan(args: list[bytes], slotmap: SlotMap = MAP3, info_head: str = "", resp3: bool = False):
    spec = lookup(args)
    assert spec is not None, args
    return planner.plan(spec, args, slotmap, info_head, resp3)


def decode(raw: bytes) -> object:
    r = hiredis.Reader()
    r.feed(raw)
    return r.gets()


def test_the_test_keys_are_where_the_map_says():
    for key, shard in [(A0, 0), (A1, 0), (B0, 1), (B2, 1), (C0, 2), (C1, 2)]:
        assert MAP3.owner[key_hash_slot(key)] == shard
        assert plan(req("GET", key)) == shard


# ---------------------------------------------------------------- SINGLE


@pytest.mark.parametrize("key", [A0, B0, C0, b"", b"{user1000}.following", b"\x00\xff\r\n"])
def test_single_key_goes_to_the_owner_of_its_slot(key):
    got = plan(req("GET", key))
    assert type(got) is int
    assert got == MAP3.owner[key_hash_slot(key)] == owner_by_ranges(key)


def test_slot_boundaries_of_an_uneven_map():
    # keys whose slot is exactly at each range edge
    by_slot: dict[int, bytes] = {}
    i = 0
    edges = {0, 99, 100, 4000, 4001, 14999, 15000, 16383}
    while not edges <= by_slot.keys():
        key = b"edge%d" % i
        slot = key_hash_slot(key)
        if slot in edges:
            by_slot.setdefault(slot, key)
        i += 1
    want = {0: 0, 99: 0, 100: 1, 4000: 1, 4001: 2, 14999: 2, 15000: 0, 16383: 0}
    assert {slot: plan(req("INCR", key)) for slot, key in by_slot.items()} == want


def test_single_key_on_a_one_shard_map_is_shard_zero():
    for key in (A0, B0, C0):
        assert plan(req("GET", key), MAP1) == 0


@pytest.mark.parametrize(
    "args",
    [
        req("RENAME", A0, A1),
        req("SUNIONSTORE", B0, B1, B2),
        req("MSETNX", C0, "1", C1, "2"),
        req("LMOVE", "{t}src", "{t}dst", "LEFT", "RIGHT"),
        req("ZUNIONSTORE", A2, "2", A0, A1),
        req("LMPOP", "2", B0, B1, "LEFT"),
        req("XREAD", "COUNT", "2", "STREAMS", C0, C1, "0", "0"),
    ],
)
def test_multi_key_on_one_shard_forwards_to_it(args):
    keys = [a for a in args if a in (A0, A1, A2, B0, B1, B2, C0, C1, C2, b"{t}src", b"{t}dst")]
    shards = {owner_by_ranges(k) for k in keys}
    assert len(shards) == 1
    assert plan(args) == shards.pop()


CROSSSLOT = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"


@pytest.mark.parametrize(
    "args",
    [
        req("RENAME", A0, B0),
        req("SUNIONSTORE", B0, B1, C0),
        req("MSETNX", A0, "1", C0, "2"),  # MSETNX stays atomic: never split
        req("ZUNIONSTORE", A0, "2", A1, B0),  # destination and sources differ
        req("LMPOP", "2", C0, A0, "LEFT"),
        req("XREAD", "STREAMS", A0, B0, "0", "0"),
        req("SORT", A0, "STORE", C0),
    ],
)
def test_keys_spanning_shards_are_crossslot(args):
    assert plan(args) == CROSSSLOT


def test_spanning_keys_are_fine_on_a_one_shard_map():
    assert plan(req("RENAME", A0, B0), MAP1) == 0
    assert plan(req("SUNIONSTORE", A0, B0, C0), MAP1) == 0


def test_xread_is_routed_with_or_without_block():
    # with BLOCK the client takes a dedicated connection (router.wire.client_state); the
    # shard is the planner's either way
    assert plan(req("XREAD", "STREAMS", B0, "0")) == 1
    assert plan(req("xread", "block", "0", "STREAMS", B0, "0")) == 1
    assert plan(req("XREADGROUP", "GROUP", "g", "c", "BLOCK", "10", "STREAMS", C0, ">")) == 2


@pytest.mark.parametrize(
    ("args", "error"),
    [
        # texts as redis-server 7.0.15 answers the same request
        (req("ZUNIONSTORE", "d", "5", "a"), b"-ERR syntax error\r\n"),
        (req("ZUNIONSTORE", "d", "x", "a"), b"-ERR value is not an integer or out of range\r\n"),
        (req("ZINTER", "0", "a"), b"-ERR at least 1 input key is needed for 'zinter' command\r\n"),
        (req("LMPOP", "0", "a", "LEFT"), b"-ERR numkeys should be greater than 0\r\n"),
        (
            req("XREAD", "STREAMS", "a", "b", "c"),
            b"-ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be"
            b" specified.\r\n",
        ),
    ],
)
def test_key_spec_errors_become_error_replies(args, error):
    assert lookup(args).shape is Shape.SINGLE
    assert plan(args) == error


# ---------------------------------------------------------------- FANOUT_*


def test_mget_is_split_by_shard_in_first_seen_order_with_duplicates_kept():
    args = req("MGET", C0, A0, B0, C1, A0, B1)
    got = plan(args)
    assert type(got) is Fanout
    assert got.parts == [
        (2, resp_cmd(b"MGET", C0, C1)),
        (0, resp_cmd(b"MGET", A0, A0)),
        (1, resp_cmd(b"MGET", B0, B1)),
    ]
    # the merge puts every shard's values back at their keys' positions
    replies = [
        b"*2\r\n$2\r\nc0\r\n$-1\r\n",
        b"*2\r\n$2\r\na0\r\n$2\r\na0\r\n",
        b"*2\r\n$2\r\nb0\r\n$3\r\nb\r\n\r\n",
    ]
    assert got.merge(replies) == (
        b"*6\r\n$2\r\nc0\r\n$2\r\na0\r\n$2\r\nb0\r\n$-1\r\n$2\r\na0\r\n$3\r\nb\r\n\r\n"
    )


def test_mget_command_name_is_kept_as_sent():
    got = plan(req("mget", A0, B0))
    assert [piece for _, piece in got.parts] == [resp_cmd(b"mget", A0), resp_cmd(b"mget", B0)]


def test_mset_splits_key_value_pairs():
    args = req("MSET", A0, "1", B0, "x\r\ny", A1, "", C0, "4")
    got = plan(args)
    assert type(got) is Fanout
    assert got.parts == [
        (0, resp_cmd(b"MSET", A0, b"1", A1, b"")),
        (1, resp_cmd(b"MSET", B0, b"x\r\ny")),
        (2, resp_cmd(b"MSET", C0, b"4")),
    ]
    assert got.merge is merge.merge_all_ok


def test_mset_with_an_odd_number_of_arguments_is_an_arity_error():
    # redis-server 7.0.15 answers the same text
    want = b"-ERR wrong number of arguments for 'mset' command\r\n"
    assert plan(req("MSET", A0, "1", B0)) == want
    assert plan(req("MSET", A0, "1", A1), MAP1) == want


@pytest.mark.parametrize("name", ["DEL", "EXISTS", "TOUCH", "UNLINK"])
def test_sum_commands_split_and_sum(name):
    got = plan(req(name, B0, A0, B1, A0))
    assert type(got) is Fanout
    assert got.parts == [
        (1, resp_cmd(name.encode(), B0, B1)),
        (0, resp_cmd(name.encode(), A0, A0)),
    ]
    assert got.merge is merge.merge_sum
    assert got.merge([b":2\r\n", b":1\r\n"]) == b":3\r\n"


@pytest.mark.parametrize(
    "args",
    [
        req("MGET", C0, C1, C2),
        req("MSET", C0, "1", C1, "2"),
        req("DEL", C0),
        req("EXISTS", C0, C0, C2),
        req("TOUCH", C1, C2),
        req("UNLINK", C2),
    ],
)
def test_fanout_on_one_shard_is_a_plain_forward(args):
    assert plan(args) == 2
    assert plan(args, MAP1) == 0


def test_mget_merge_uses_resp3_placeholders_only_for_resp3_clients():
    # a placeholder is what the merge uses if a slot were left unfilled; with
    # well-formed parts every slot is filled by a raw element, so the nils
    # the backends sent (here RESP3 ``_``) are what the client gets
    got = plan(req("MGET", A0, B0), resp3=True)
    assert got.merge([b"*1\r\n_\r\n", b"*1\r\n$1\r\nb\r\n"]) == b"*2\r\n_\r\n$1\r\nb\r\n"


# ---------------------------------------------------------------- ALL_MASTERS


@pytest.mark.parametrize(
    ("args", "merger"),
    [
        (req("DBSIZE"), merge.merge_sum),
        (req("KEYS", "user:*"), merge.merge_concat),
        (req("FLUSHALL"), merge.merge_all_ok),
        (req("FLUSHALL", "ASYNC"), merge.merge_all_ok),
        (req("flushdb", "SYNC"), merge.merge_all_ok),
        (req("RANDOMKEY"), merge.merge_random),
    ],
)
@pytest.mark.parametrize("slotmap", [MAP3, MAP1], ids=["3 shards", "1 shard"])
def test_all_masters_sends_the_request_to_every_shard(args, merger, slotmap):
    got = plan(args, slotmap)
    assert type(got) is Fanout
    assert got.parts == [(i, resp_cmd(*args)) for i in range(len(slotmap.shards))]
    assert got.merge is merger


def test_memory_purge_goes_to_every_master():
    # command_table declares MEMORY PURGE ALL_MASTERS ("purging one arbitrary
    # shard would be a surprising answer to 'purge'"); each shard answers +OK
    got = plan(req("MEMORY", "PURGE"))
    assert type(got) is Fanout, got
    assert got.parts == [(i, resp_cmd(b"MEMORY", b"PURGE")) for i in range(3)]
    assert got.merge([b"+OK\r\n"] * 3) == b"+OK\r\n"


FACTS = RouterFacts(
    server={"redis_version": "7.0.0", "tcp_port": 6379},
    clients={"connected_clients": 1},
    stats={"total_commands_processed": 5},
    replication={"role": "master"},
    cpu={"used_cpu_sys": "0.1"},
)


@pytest.mark.parametrize("section", [[], ["keyspace"], ["server"], ["all"], ["memory", "cpu"]])
def test_info_asks_every_master_for_its_data_sections_and_merges_them(section):
    got = plan(req("INFO", *section), info_head=FACTS)
    assert type(got) is Fanout
    assert got.parts == [(i, resp_cmd(b"INFO", *INFO_SENT)) for i in range(3)]
    part = b"# Server\r\nredis_version:7.0.15\r\n# Keyspace\r\ndb0:keys=2,expires=0,avg_ttl=0\r\n"
    raw = b"$%d\r\n%s\r\n" % (len(part), part)
    text = decode(got.merge([raw, raw, raw]))
    if section in ([], ["keyspace"], ["all"]):
        assert b"db0:keys=6,expires=0,avg_ttl=0\r\n" in text
    if section in ([], ["server"], ["all"]):
        assert b"redis_version:7.0.15\r\n" in text and b"tcp_port:6379\r\n" in text


@pytest.mark.parametrize("section", [["replication"], ["clients", "CPU"], ["nosuch"]])
def test_info_of_the_routers_own_sections_is_answered_at_once(section):
    got = plan(req("INFO", *section), info_head=FACTS)
    assert isinstance(got, bytes)
    text = decode(got)
    assert (b"role:master" in text) == (section == ["replication"])
    assert (text == b"") == (section == ["nosuch"])


# ---------------------------------------------------------------- SCAN


def test_scan_cursor_zero_starts_at_shard_zero_with_options_passed_through():
    got = plan(req("SCAN", "0", "MATCH", "user:*", "COUNT", "100", "TYPE", "string"))
    assert type(got) is Fanout
    assert got.parts == [
        (0, resp_cmd(b"SCAN", b"0", b"MATCH", b"user:*", b"COUNT", b"100", b"TYPE", b"string"))
    ]


@pytest.mark.parametrize(("shard", "inner"), [(0, 7), (1, 0), (2, 1), (2, 123456789)])
def test_scan_cursor_carries_the_shard_in_its_low_bits(shard, inner):
    cursor = (inner << SCAN_SHARD_BITS) | shard
    got = plan(req("SCAN", str(cursor), "COUNT", "5"))
    assert got.parts == [(shard, resp_cmd(b"SCAN", str(inner).encode(), b"COUNT", b"5"))]


def scan_reply(cursor: int, keys: list[bytes]) -> bytes:
    body = b"".join(b"$%d\r\n%s\r\n" % (len(k), k) for k in keys)
    return b"*2\r\n$%d\r\n%d\r\n*%d\r\n" % (len(str(cursor)), cursor, len(keys)) + body


@pytest.mark.parametrize("slotmap", [MAP3, MAP1], ids=["3 shards", "1 shard"])
def test_scan_walks_every_shard_in_order_and_ends_with_cursor_zero(slotmap):
    # each shard iterates in two steps: cursor 0 -> 42 -> 0
    script = {(i, 0): (42, [b"s%d-first" % i]) for i in range(len(slotmap.shards))}
    script |= {(i, 42): (0, [b"s%d-second" % i]) for i in range(len(slotmap.shards))}
    cursor = b"0"
    visited: list[tuple[int, int]] = []
    seen: list[bytes] = []
    for _ in range(20):
        got = plan(req("SCAN", cursor), slotmap)
        [(shard, piece)] = got.parts
        inner = int(decode(piece)[1])
        visited.append((shard, inner))
        next_inner, keys = script[(shard, inner)]
        cursor_b, keys_b = decode(got.merge([scan_reply(next_inner, keys)]))
        seen += keys_b
        cursor = cursor_b
        if cursor == b"0":
            break
    n = len(slotmap.shards)
    assert visited == [(i, c) for i in range(n) for c in (0, 42)]
    assert seen == [k for i in range(n) for k in (b"s%d-first" % i, b"s%d-second" % i)]
    assert cursor == b"0"


@pytest.mark.parametrize("cursor", ["abc", "-1", "1.5", "", " 1", "0x10"])
def test_scan_with_a_malformed_cursor_is_invalid(cursor):
    assert plan(req("SCAN", cursor)) == b"-ERR invalid cursor\r\n"


@pytest.mark.parametrize(
    ("cursor", "slotmap"),
    [
        (3, MAP3),  # shard 3 of a 3-shard map
        ((9 << SCAN_SHARD_BITS) | 5, MAP3),
        (255, MAP3),
        (1, MAP1),
        ((1 << SCAN_SHARD_BITS) | 1, MAP1),
    ],
)
def test_scan_cursor_for_a_shard_beyond_the_map_is_invalid(cursor, slotmap):
    assert plan(req("SCAN", str(cursor)), slotmap) == b"-ERR invalid cursor\r\n"


# ---------------------------------------------------------------- ANY, PINNED, REJECTED


@pytest.mark.parametrize(
    "args",
    [req("COMMAND"), req("COMMAND", "COUNT"), req("LASTSAVE"), req("CONFIG", "HELP")],
)
@pytest.mark.parametrize("slotmap", [MAP3, MAP1], ids=["3 shards", "1 shard"])
def test_any_goes_to_shard_zero(args, slotmap):
    assert lookup(args).shape is Shape.ANY
    assert plan(args, slotmap) == 0


@pytest.mark.parametrize("slotmap", [MAP3, MAP1], ids=["3 shards", "1 shard"])
def test_config_get_goes_to_shard_zero_through_its_filter(slotmap):
    args = req("CONFIG", "GET", "maxmemory")
    assert lookup(args).shape is Shape.ANY
    got = plan(args, slotmap)
    assert isinstance(got, Fanout) and [shard for shard, _ in got.parts] == [0]
    assert got.parts[0][1] == b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$9\r\nmaxmemory\r\n"
    secret = b"*4\r\n$10\r\nmasterauth\r\n$1\r\nx\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"
    assert got.merge([secret]) == b"*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"


def test_scripts_route_by_their_keys_and_keyless_ones_go_to_shard_zero():
    assert plan(req("EVAL", "return 1", "0")) == 0
    assert plan(req("EVALSHA", "abc", "1", B0)) == 1
    assert plan(req("FCALL_RO", "f", "2", C0, C0, "arg")) == 2
    assert plan(req("EVAL", "return 1", "2", A0, B0)) == CROSSSLOT
    assert plan(req("EVAL", "return 1", "5", A0)) == (
        b"-ERR Number of keys can't be greater than number of args\r\n"
    )


@pytest.mark.parametrize(
    ("args", "merger"),
    [
        (req("SCRIPT", "LOAD", "return 1"), merge.merge_same),
        (req("SCRIPT", "EXISTS", "a", "b"), merge.merge_and),
        (req("SCRIPT", "FLUSH"), merge.merge_all_ok),
        (req("SCRIPT", "KILL"), merge.merge_any_ok),
        (req("FUNCTION", "LOAD", "#!lua name=x"), merge.merge_same),
        (req("FUNCTION", "DELETE", "x"), merge.merge_all_ok),
        (req("FUNCTION", "FLUSH"), merge.merge_all_ok),
        (req("FUNCTION", "LIST"), merge.merge_first),
        (req("PUBSUB", "NUMPAT"), merge.merge_max),
        (req("PUBSUB", "CHANNELS"), merge.merge_union),
        (req("PUBSUB", "NUMSUB", "a"), merge.merge_numsub),
    ],
)
def test_script_function_and_pubsub_management_go_to_every_master(args, merger):
    got = plan(args)
    assert type(got) is Fanout
    assert [shard for shard, _ in got.parts] == [0, 1, 2]
    assert got.merge is merger


def test_publish_goes_to_the_channels_shard():
    assert plan(req("PUBLISH", B0, "m")) == 1
    assert plan(req("SPUBLISH", C0, "m")) == 2


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (req("CLIENT", "TRACKING", "on"), "client tracking"),
        (req("CLIENT", "CACHING", "yes"), "client caching"),
        (req("SCRIPT", "DEBUG", "yes"), "script debug"),
    ],
)
def test_what_the_router_cannot_honour_is_a_clear_error(args, shown):
    assert lookup(args).shape is Shape.PINNED
    assert plan(args) == f"-ERR '{shown}' is not supported by the router\r\n".encode()


@pytest.mark.parametrize(
    ("args", "want"),
    [
        (req("GET", B0), 1),
        (req("PING"), None),
        (req("BLPOP", C0, "0"), 2),  # does not block inside MULTI
        (req("PUBLISH", A0, "m"), 0),
        (req("MGET", A0, B0), CROSSSLOT),
        (
            req("DBSIZE"),
            b"-ERR 'dbsize' cannot be queued in MULTI through the router: "
            b"it runs on every shard\r\n",
        ),
        (
            req("SUBSCRIBE", "ch"),
            b"-ERR 'subscribe' inside MULTI is not supported by the router\r\n",
        ),
        (req("SHUTDOWN"), b"-ERR command not allowed through the router\r\n"),
    ],
)
def test_queued_commands_need_one_shard(args, want):
    assert plan_queued(lookup(args), args, MAP3) == want


@pytest.mark.parametrize(
    "args",
    [
        req("SHUTDOWN"),
        req("CONFIG", "SET", "maxmemory", "1"),
        req("FAILOVER"),  # (CLIENT KILL acts on the router's own clients now)
        req("CLUSTER", "FAILOVER"),
        req("MOVE", A0, "1"),
        req("REPLICAOF", "NO", "ONE"),
        req("MIGRATE", "h", "1", A0, "0", "10"),
    ],
)
def test_rejected_is_not_allowed_through_the_router(args):
    assert lookup(args).shape is Shape.REJECTED
    assert plan(args) == b"-ERR command not allowed through the router\r\n"


def test_local_commands_are_not_planned():
    # LOCAL is answered by the frontend; planning one is a clear error, not a route
    got = plan(req("PING"))
    assert got == b"-ERR router cannot plan 'ping'\r\n"
