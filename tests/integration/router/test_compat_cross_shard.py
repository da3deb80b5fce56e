"""Multi-key commands whose keys span shards answer what one redis-server answers (issue 12, 8).

The same keys are loaded into a plain redis-server and, through the router, into three
shards (each key name chosen so the command's keys land on several shards); then the
same commands, with many argument combinations, go to both in RESP2 and in RESP3 and
the replies must be equal byte for byte (set replies, whose order Redis does not
define, as sorted elements). The ``*STORE`` forms are compared by their reply and by
what the destination then holds. Then: ``router.cross_shard: strict`` keeps CROSSSLOT,
``router.max_cross_shard_bytes`` bounds what is copied, a shard down is an error with
nothing written, and the temporary copies never outlive the command.
"""

from __future__ import annotations

import pytest
from compat import Raw, cmd, plain_server

from slotwarden.resp.replies import split_array_py


@pytest.fixture(scope="module")
def plain(session_farm):
    yield from plain_server(session_farm)


@pytest.fixture(scope="module")
def xcluster():
    from conftest import own_cluster

    with own_cluster() as c:
        yield c


def spread(c, prefix: str, count: int) -> list[str]:
    """``count`` key names ``prefix<n>`` on shards 0, 1, 2, 0, 1 ... in turn."""
    names: list[str] = []
    n = 0
    while len(names) < count:
        name = f"{prefix}{n}"
        if c.owner(name) == len(names) % 3:
            names.append(name)
        n += 1
    return names


def load_commands(c) -> tuple[list[tuple], dict[str, list[str]]]:
    s = spread(c, "set", 5)
    z = spread(c, "zs", 5)
    t = spread(c, "str", 4)
    h = spread(c, "hll", 4)
    b = spread(c, "bits", 4)
    other = spread(c, "other", 3)  # a list, a hash, and a missing key
    big = spread(c, "bigset", 3)  # hashtable-encoded sets
    g = spread(c, "geo", 2)
    out: list[tuple] = [
        ("SADD", s[0], "a", "b", "c", "d", "1", "2"),
        ("SADD", s[1], "b", "c", "x", "2", "3"),
        ("SADD", s[2], "c", "d", "y", "a"),
        ("SADD", s[3], "1", "2", "3", "4", "100"),  # intset
        ("SADD", big[0], *[f"m{i}" for i in range(300)]),
        ("SADD", big[1], *[f"m{i}" for i in range(0, 600, 2)]),
        ("SADD", big[2], *[f"m{i}" for i in range(0, 900, 3)]),
        ("ZADD", z[0], "1", "a", "2", "b", "3", "c", "0.1", "d", "inf", "e"),
        ("ZADD", z[1], "10", "b", "0.2", "c", "-inf", "x", "1e300", "y", "2", "a"),
        ("ZADD", z[2], "5", "a", "5", "c", "5", "q", "-3.5", "e"),
        ("ZADD", z[3], *[x for i in range(200) for x in (str(i * 0.7), f"m{i}")]),
        ("SET", t[0], "ohmytext"),
        ("SET", t[1], "mynewtext"),
        ("SET", t[2], "x" * 50 + "ohmy" + "y" * 30 + "text"),
        ("PFADD", h[0], *[f"e{i}" for i in range(100)]),
        ("PFADD", h[1], *[f"e{i}" for i in range(50, 300)]),
        ("PFADD", h[2], "solo"),
        ("SET", h[3], "not an hll"),
        ("SET", b[0], "foobar"),
        ("SET", b[1], "abcdef"),
        ("SET", b[2], "\xff\x00\x0f"),
        ("RPUSH", other[0], "3", "1", "2", "10"),
        ("HSET", other[1], "f", "v"),
        ("GEOADD", g[0], "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"),
        ("GEOADD", g[1], "2.35", "48.85", "Paris"),
    ]
    dsts = spread(c, "dst", 3)
    names = {"s": s, "z": z, "t": t, "h": h, "b": b, "o": other, "big": big, "d": dsts, "g": g}
    return out, names


def read_commands(n: dict[str, list[str]]) -> list[tuple]:
    s, z, t, h, o, big = n["s"], n["z"], n["t"], n["h"], n["o"], n["big"]
    missing = o[2]
    out: list[tuple] = []
    for op in ("SUNION", "SINTER", "SDIFF"):
        out += [
            (op, s[0], s[1]),
            (op, s[0], s[1], s[2]),
            (op, s[3], s[0], s[1]),
            (op, s[0], missing),
            (op, missing, s[1]),
            (op, s[0], s[0], s[1]),
            (op, big[0], big[1], big[2]),
            (op, s[1], o[0]),  # WRONGTYPE
            (op, o[1], s[0]),
        ]
    out += [
        ("SINTERCARD", 2, s[0], s[1]),
        ("SINTERCARD", 3, s[0], s[1], s[2]),
        ("SINTERCARD", 2, big[0], big[1], "LIMIT", 10),
        ("SINTERCARD", 2, big[0], big[1], "LIMIT", 0),
        ("SINTERCARD", 2, s[0], missing),
        ("SINTERCARD", 2, s[1], o[0]),
        ("SINTERCARD", 2, s[0], s[1], "LIMIT", -1),
        ("SINTERCARD", 2, s[0], s[1], "LIMIT"),
    ]
    zkeys = [(z[0], z[1]), (z[0], z[1], z[2]), (z[2], z[0]), (z[3], z[0], z[1]), (s[0], z[1])]
    for op in ("ZUNION", "ZINTER"):
        for keys in zkeys:
            k = len(keys)
            out += [
                (op, k, *keys),
                (op, k, *keys, "WITHSCORES"),
                (op, k, *keys, "AGGREGATE", "MIN", "WITHSCORES"),
                (op, k, *keys, "AGGREGATE", "MAX", "WITHSCORES"),
                (op, k, *keys, "WEIGHTS", *["2.5"] * k, "WITHSCORES"),
                (op, k, *keys, "WEIGHTS", *["0"] * k, "AGGREGATE", "SUM", "WITHSCORES"),
                (op, k, *keys, "WEIGHTS", *["-1"] * k, "WITHSCORES"),
            ]
        out += [
            (op, 2, z[0], z[1], "WEIGHTS", "x", "1"),  # weight value is not a float
            (op, 2, z[0], z[1], "WEIGHTS", "1"),  # syntax error
            (op, 2, z[0], z[1], "AGGREGATE", "AVG"),
            (op, 2, z[1], o[0]),  # WRONGTYPE
            (op, 2, z[0], missing, "WITHSCORES"),
        ]
    out += [
        # inf * 0 and inf + -inf: "resulting score is not a number (NaN)" or 0
        ("ZUNION", 2, z[0], z[1], "WEIGHTS", "0", "1", "WITHSCORES"),
        ("ZUNION", 2, z[0], z[1], "WITHSCORES"),
        ("ZINTER", 2, z[0], z[1], "WEIGHTS", "inf", "-inf", "WITHSCORES"),
        ("ZDIFF", 2, z[0], z[1]),
        ("ZDIFF", 2, z[0], z[1], "WITHSCORES"),
        ("ZDIFF", 3, z[3], z[0], z[1], "WITHSCORES"),
        ("ZDIFF", 2, z[0], missing, "WITHSCORES"),
        ("ZDIFF", 2, z[1], o[0]),
        ("ZINTERCARD", 2, z[0], z[1]),
        ("ZINTERCARD", 3, z[0], z[1], z[2], "LIMIT", 1),
        ("ZINTERCARD", 2, z[1], s[0]),  # a set counts as a zset of scores 1
        ("ZINTERCARD", 2, z[0], o[1]),
        ("PFCOUNT", h[0], h[1]),
        ("PFCOUNT", h[0], h[1], h[2]),
        ("PFCOUNT", h[1], missing),
        ("PFCOUNT", h[1], h[3]),  # not a valid HyperLogLog
        ("PFCOUNT", h[1], o[0]),  # WRONGTYPE
        ("LCS", t[0], t[1]),
        ("LCS", t[0], t[1], "LEN"),
        ("LCS", t[0], t[1], "IDX"),
        ("LCS", t[0], t[1], "IDX", "WITHMATCHLEN"),
        ("LCS", t[0], t[1], "IDX", "MINMATCHLEN", 4, "WITHMATCHLEN"),
        ("LCS", t[2], t[0], "IDX", "MINMATCHLEN", 2),
        ("LCS", t[0], missing),
        ("LCS", t[1], o[0]),
        ("LCS", t[0], t[1], "LEN", "IDX"),
    ]
    return out


def store_commands(n: dict[str, list[str]]) -> list[tuple[tuple, tuple]]:
    """(the command, how to read its destination)"""
    s, z, h, b, o, big, g = n["s"], n["z"], n["h"], n["b"], n["o"], n["big"], n["g"]
    d = n["d"]  # a destination on each shard
    box = ("BYBOX", 400, 400, "km", "ASC", "COUNT", 1)
    out: list[tuple[tuple, tuple]] = []
    for dst in d:
        sread = ("SMEMBERS", dst)
        zread = ("ZRANGE", dst, 0, -1, "WITHSCORES")
        out += [
            (("SUNIONSTORE", dst, s[0], s[1], s[2]), sread),
            (("SINTERSTORE", dst, s[0], s[1]), sread),
            (("SDIFFSTORE", dst, s[0], s[1], s[2]), sread),
            (("SINTERSTORE", dst, s[0], o[2]), ("EXISTS", dst)),  # empty: dst deleted
            (("SUNIONSTORE", dst, big[0], big[2]), ("SCARD", dst)),
            (("SUNIONSTORE", dst, s[0], o[0]), sread),  # WRONGTYPE, dst untouched
            (("ZUNIONSTORE", dst, 3, z[0], z[1], z[2], "WEIGHTS", 1, 2, 3), zread),
            (("ZINTERSTORE", dst, 2, z[0], z[1], "AGGREGATE", "MAX"), zread),
            (("ZDIFFSTORE", dst, 2, z[0], z[1]), zread),
            (("ZDIFFSTORE", dst, 2, z[0], z[0]), ("EXISTS", dst)),
            (("ZRANGESTORE", dst, z[3], 10, 20), zread),
            (("ZRANGESTORE", dst, z[0], "(1", "+inf", "BYSCORE"), zread),
            (("ZRANGESTORE", dst, z[0], "[b", "[d", "BYLEX", "REV"), zread),
            (("PFMERGE", dst, h[0], h[1]), ("PFCOUNT", dst)),
            (("PFMERGE", dst, h[0], h[3]), ("PFCOUNT", dst)),
            (("BITOP", "AND", dst, b[0], b[1]), ("GET", dst)),
            (("BITOP", "OR", dst, b[0], b[1], b[2]), ("GET", dst)),
            (("BITOP", "XOR", dst, b[0], o[2]), ("GET", dst)),
            (("BITOP", "NOT", dst, b[2]), ("GET", dst)),
            (("BITOP", "AND", dst, o[2], o[2]), ("EXISTS", dst)),
            (("GEOSEARCHSTORE", dst, g[0], "FROMLONLAT", 15, 37, "BYRADIUS", 200, "km"), zread),
            (("GEOSEARCHSTORE", dst, g[0], "FROMMEMBER", "Palermo", *box, "STOREDIST"), zread),
            (("GEOSEARCHSTORE", dst, g[1], "FROMMEMBER", "Rome", "BYRADIUS", 1, "m"), zread),
            (("GEOSEARCHSTORE", dst, s[0], "FROMLONLAT", 0, 0, "BYRADIUS", 1, "m"), zread),
            (("SORT", o[0], "STORE", dst), ("LRANGE", dst, 0, -1)),
            (("SORT", o[0], "DESC", "LIMIT", 1, 2, "STORE", dst), ("LRANGE", dst, 0, -1)),
            (("SORT", s[1], "ALPHA", "STORE", dst), ("LRANGE", dst, 0, -1)),
            (("SORT", o[0], "BY", "nosort", "GET", "#", "STORE", dst), ("LRANGE", dst, 0, -1)),
            (("SORT", s[0], "STORE", dst), ("LRANGE", dst, 0, -1)),  # not numbers: an error
        ]
    return out


SET_REPLIES = (b"sunion", b"sinter", b"sdiff", b"smembers")


def normalized(request: tuple, raw: bytes) -> object:
    """``raw``, or for a set reply (order undefined) its type and sorted elements."""
    if str(request[0]).lower().encode() in SET_REPLIES and raw[:1] in (b"*", b"~"):
        items = split_array_py(b"*" + raw[1:])
        assert items is not None, raw
        return raw[:1], sorted(items)
    return raw


def talk(conn: Raw, *commands: tuple) -> list[bytes]:
    conn.sock.sendall(b"".join(cmd(*c) for c in commands))
    return conn.read(len(commands))


@pytest.fixture(scope="module")
def loaded(xcluster, plain):
    load, names = load_commands(xcluster)
    with Raw(xcluster.port) as r, Raw(plain.port) as p:
        assert talk(p, ("FLUSHALL",)) == [b"+OK\r\n"]
        assert talk(r, ("FLUSHALL",)) == [b"+OK\r\n"]
        got, want = talk(r, *load), talk(p, *load)
        assert got == want
    return names


@pytest.mark.parametrize("proto", [2, 3])
def test_read_commands_across_shards_answer_as_one_redis(xcluster, plain, loaded, proto) -> None:
    commands = read_commands(loaded)
    names = {name for group in loaded.values() for name in group}
    for request in commands:  # each spans shards (else it would test nothing new)
        shards = {xcluster.owner(a) for a in request[1:] if a in names}
        assert len(shards) > 1, request
    with Raw(xcluster.port) as r, Raw(plain.port) as p:
        if proto == 3:
            talk(r, ("HELLO", 3))
            talk(p, ("HELLO", 3))
        got = talk(r, *commands)  # one pipeline: the replies keep their order
        want = talk(p, *commands)
    assert len(got) == len(want)
    for request, g, w in zip(commands, got, want, strict=True):
        assert normalized(request, g) == normalized(request, w), (request, g, w)


@pytest.mark.parametrize("proto", [2, 3])
def test_store_commands_across_shards_write_as_one_redis(xcluster, plain, loaded, proto) -> None:
    pairs = store_commands(loaded)
    with Raw(xcluster.port) as r, Raw(plain.port) as p:
        if proto == 3:
            talk(r, ("HELLO", 3))
            talk(p, ("HELLO", 3))
        for dst in loaded["d"]:  # a destination of the wrong type is replaced or refused
            talk(r, ("SET", dst, "old"))
            talk(p, ("SET", dst, "old"))
        flat = [c for pair in pairs for c in pair]
        got = talk(r, *flat)  # pipelined: each read comes after its write
        want = talk(p, *flat)
    for i, request in enumerate(flat):
        g, w = got[i], want[i]
        assert normalized(request, g) == normalized(request, w), (request, g, w)


def test_pipeline_order_is_kept_around_a_cross_shard_command(xcluster, plain, loaded) -> None:
    s = loaded["s"]
    dst = loaded["d"][1]
    commands = [
        ("SADD", s[1], "late"),
        ("SINTERCARD", 2, s[0], s[1]),
        ("SUNIONSTORE", dst, s[0], s[1]),
        ("SCARD", dst),
        ("SADD", s[0], "late"),
        ("SINTERCARD", 2, s[0], s[1]),
        ("SREM", s[0], "late"),
        ("SREM", s[1], "late"),
        ("SINTERCARD", 2, s[0], s[1]),
    ]
    with Raw(xcluster.port) as r, Raw(plain.port) as p:
        got = talk(r, *commands)
        want = talk(p, *commands)
    assert got == want


def test_no_temporary_copy_is_left_behind(xcluster, loaded) -> None:
    for i in range(3):
        left = xcluster.shard_client(i).keys("__slotwarden*")
        assert left == []


def test_over_the_byte_bound_is_crossslot_and_writes_nothing() -> None:
    from conftest import own_cluster

    with own_cluster(extra_router={"max_cross_shard_bytes": 65536}) as c:
        r = c.client()
        big = spread(c, "huge", 3)
        r.sadd(big[0], *[f"{i:08d}" * 8 for i in range(2000)])  # ~150 kB on shard 0
        r.sadd(big[1], "x")
        r.sadd(big[2], *[f"{i:08d}" for i in range(1000)])  # ~10 kB on shard 2
        dst = spread(c, "dst", 2)[1]  # on shard 1
        with Raw(c.port) as conn:
            reply = conn.call("SUNIONSTORE", dst, big[1], big[0])
            small = conn.call("SUNIONSTORE", dst, big[1], big[2])
        assert reply.startswith(b"-CROSSSLOT Keys in request don't hash to the same slot (")
        assert b"router.max_cross_shard_bytes 65536" in reply
        assert small == b":1001\r\n"
        assert r.scard(dst) == 1001
        with Raw(c.port) as conn:
            assert conn.call("SUNIONSTORE", dst, big[0], big[1]).startswith(b"-CROSSSLOT")
        assert r.scard(dst) == 1001  # not written


def test_moves_between_shards_stay_crossslot(xcluster, loaded) -> None:
    s, o = loaded["s"], loaded["o"]
    with Raw(xcluster.port) as conn:
        for request in [
            ("RENAME", s[0], s[1]),
            ("SMOVE", s[0], s[1], "a"),
            ("COPY", s[0], o[2]),
            ("LMOVE", o[0], o[2] + "x" * 0, "LEFT", "RIGHT"),
            ("MSETNX", s[0] + "n", "1", s[1] + "n", "2"),
            ("SORT", o[0], "BY", "w_*", "STORE", loaded["d"][1]),
        ]:
            keys = {xcluster.owner(str(a)) for a in request[1:3]}
            if len(keys) < 2 and request[0] != "SORT":
                continue
            assert conn.call(*request).startswith(b"-CROSSSLOT"), request


def test_strict_mode_keeps_crossslot() -> None:
    from conftest import own_cluster

    with own_cluster(extra_router={"cross_shard": "strict"}) as c:
        s = spread(c, "set", 2)
        with Raw(c.port) as conn:
            conn.call("SADD", s[0], "a")
            conn.call("SADD", s[1], "b")
            assert conn.call("SUNION", s[0], s[1]).startswith(b"-CROSSSLOT")
            assert conn.call("SUNIONSTORE", s[0], s[0], s[1]).startswith(b"-CROSSSLOT")


def test_a_shard_down_is_an_error_and_nothing_is_written() -> None:
    from conftest import own_cluster

    with own_cluster() as c:
        s = spread(c, "set", 3)
        r = c.client()
        r.sadd(s[0], "a")
        r.sadd(s[1], "b")
        r.sadd(s[2], "c")
        c.masters[1].kill()
        dst = spread(c, "dst", 1)[0]  # on shard 0, which stays up
        with Raw(c.port) as conn:
            replies = conn.talk(
                ("SUNIONSTORE", dst, s[0], s[1], s[2]),
                ("SUNION", s[0], s[2]),
                ("EXISTS", dst),
            )
        assert replies[0].startswith(b"-"), replies
        assert sorted(r.smembers(s[0]) | r.smembers(s[2])) == [b"a", b"c"]
        assert replies[2] == b":0\r\n"
        assert split_array_py(replies[1]) is not None


def test_a_watching_client_gets_crossslot(xcluster, loaded) -> None:
    # the router's MULTI must not go down the client's WATCH connection
    s = loaded["s"]
    with Raw(xcluster.port) as conn:
        assert conn.call("WATCH", s[0]) == b"+OK\r\n"
        assert conn.call("SUNION", s[0], s[1]).startswith(b"-CROSSSLOT")
        assert conn.call("UNWATCH") == b"+OK\r\n"
        assert conn.call("SUNION", s[0], s[1]).startswith(b"*")


@pytest.mark.parametrize("proto", [2, 3])
def test_georadius_store_across_shards_writes_as_one_redis(xcluster, plain, loaded, proto) -> None:
    """GEORADIUS/GEORADIUSBYMEMBER ... STORE|STOREDIST with the destination on another
    shard are computed like GEOSEARCHSTORE (redis-py's test_georadius_store*); with both
    options the later one is the destination Redis writes."""
    g, d = loaded["g"], loaded["d"]
    pairs: list[tuple[tuple, tuple]] = []
    for dst in d:
        zread = ("ZRANGE", dst, 0, -1, "WITHSCORES")
        pairs += [
            (("GEORADIUS", g[0], 15, 37, 200, "km", "STORE", dst), zread),
            (("GEORADIUS", g[0], 15, 37, 200, "km", "STOREDIST", dst), zread),
            (("GEORADIUS", g[1], 12, 42, 5000, "km", "ASC", "COUNT", 1, "STORE", dst), zread),
            (("GEORADIUSBYMEMBER", g[0], "Palermo", 300, "km", "STOREDIST", dst), zread),
            (("GEORADIUSBYMEMBER", g[1], "Rome", 1, "m", "STORE", dst), zread),
            (("GEORADIUS", g[0], 15, 37, 200, "km", "STORE", d[0], "STOREDIST", dst), zread),
            (
                ("GEORADIUS", g[0], 15, 37, 200, "km", "STORE", dst, "STOREDIST", d[2]),
                ("ZRANGE", d[2], 0, -1, "WITHSCORES"),
            ),
            (("GEORADIUS", g[0], 15, 37, 200, "km", "WITHDIST", "STORE", dst), zread),  # error
        ]
    with Raw(xcluster.port) as r, Raw(plain.port) as p:
        if proto == 3:
            talk(r, ("HELLO", 3))
            talk(p, ("HELLO", 3))
        flat = [c for pair in pairs for c in pair]
        got = talk(r, *flat)
        want = talk(p, *flat)
    assert not any(g.startswith(b"-CROSSSLOT") for g in got), got
    for i, request in enumerate(flat):
        assert got[i] == want[i], (request, got[i], want[i])
