"""SCAN and LMPOP/ZMPOP over keys of several shards, asked one shard after another.

SCAN: a call goes on to the next shard while the one it scanned finished and fewer
than COUNT keys were gathered, so a small keyspace is one call that ends with cursor 0
(as one redis-server answers it) and a full iteration still returns every key once.
LMPOP/ZMPOP (non-blocking) over keys of several shards: popped from the first
non-empty key in the client's order, one key only, as Redis does (was CROSSSLOT).
"""

from __future__ import annotations

import pytest
import redis
from compat import keys_on_every_shard


def by_shard(c, prefix: str) -> tuple[str, str, str]:
    """One key name on each of shards 0, 1, 2."""
    k = keys_on_every_shard(c, 1, prefix)
    return k[0][0], k[1][0], k[2][0]


# ---------------------------------------------------------------- SCAN


def test_scan_of_a_small_keyspace_is_one_call_ending_at_cursor_0(fresh) -> None:
    r = fresh.client()
    names = [n for shard in keys_on_every_shard(fresh, 2, "s") for n in shard]  # 6 keys
    for n in names:
        r.set(n, 1)
    cursor, keys = r.scan(0)
    assert cursor == 0
    assert sorted(k.decode() for k in keys) == sorted(names)
    # as redis-py's test_scan_type: a TYPE filter that leaves shards empty goes on too
    r.rpush("{s}list", 1)
    cursor, keys = r.scan(0, _type="list")
    assert (cursor, keys) == (0, [b"{s}list"])
    cursor, keys = r.scan(0, match="nomatch*")
    assert (cursor, keys) == (0, [])


def test_scan_stops_at_count_and_a_full_iteration_returns_every_key_once(fresh) -> None:
    r = fresh.client()
    names = {f"walk:{i}" for i in range(300)}
    with r.pipeline(transaction=False) as p:
        for n in names:
            p.set(n, 1)
        p.execute()
    for count in (1, 7, 40, 1000):
        seen: list[bytes] = []
        cursor, calls = 0, 0
        while True:
            cursor, batch = r.scan(cursor, count=count)
            seen += batch
            calls += 1
            if cursor == 0:
                break
        assert sorted(k.decode() for k in seen) == sorted(names), count
        if count == 1000:  # every shard's keys fit in COUNT: one call
            assert calls == 1
        else:
            assert calls > 3


def test_scan_in_a_pipeline_keeps_reply_order(fresh) -> None:
    r = fresh.client()
    a, b, c = by_shard(fresh, "p")
    r.mset({a: "1", b: "2", c: "3"})
    with r.pipeline(transaction=False) as p:
        p.get(a)
        p.scan(0)
        p.get(c)
        p.scan(0, match=b)
        p.get(b)
        got = p.execute()
    assert got[0] == b"1" and got[2] == b"3" and got[4] == b"2"
    assert got[1][0] == 0 and sorted(got[1][1]) == sorted(x.encode() for x in (a, b, c))
    assert got[3] == (0, [b.encode()])


def test_scan_resp3(fresh) -> None:
    r = redis.Redis(port=fresh.port, protocol=3)
    names = [n for shard in keys_on_every_shard(fresh, 1, "r3") for n in shard]
    for n in names:
        r.set(n, 1)
    cursor, keys = r.scan(0)
    assert cursor == 0 and sorted(k.decode() for k in keys) == sorted(names)
    r.close()


# ---------------------------------------------------------------- LMPOP / ZMPOP


def test_lmpop_over_several_shards_pops_the_first_non_empty_key_only(fresh) -> None:
    r = fresh.client()
    a, b, c = by_shard(fresh, "l")
    r.rpush(b, "b1", "b2", "b3")
    r.rpush(c, "c1", "c2")
    assert r.lmpop(3, a, b, c, direction="LEFT") == [b.encode(), [b"b1"]]
    assert r.lmpop(3, c, b, a, direction="RIGHT", count=5) == [c.encode(), [b"c2", b"c1"]]
    assert r.lrange(b, 0, -1) == [b"b2", b"b3"]  # untouched by the second pop
    assert r.exists(c) == 0
    assert r.lmpop(2, a, c, direction="LEFT") is None  # every key empty
    assert r.lmpop(3, a, c, b, direction="LEFT", count=10) == [b.encode(), [b"b2", b"b3"]]
    assert r.lmpop(3, a, b, c, direction="LEFT") is None


def test_zmpop_over_several_shards_pops_the_first_non_empty_key_only(fresh) -> None:
    r = fresh.client()
    a, b, c = by_shard(fresh, "z")
    r.zadd(b, {"x": 1, "y": 2})
    r.zadd(c, {"u": 5})
    assert r.zmpop(3, [a, b, c], min=True) == [b.encode(), [[b"x", b"1"]]]
    assert r.zmpop(3, [a, c, b], max=True, count=2) == [c.encode(), [[b"u", b"5"]]]
    assert r.zrange(b, 0, -1) == [b"y"]
    assert r.zmpop(2, [a, c], min=True) is None


def test_mpop_errors_stop_the_walk_as_redis_does(fresh) -> None:
    r = fresh.client()
    a, b, c = by_shard(fresh, "e")
    r.set(b, "string")
    r.rpush(c, "c1")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.lmpop(3, a, b, c, direction="LEFT")
    assert r.lrange(c, 0, -1) == [b"c1"]  # nothing popped after the error
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("LMPOP", 3, a, b, c, "SIDEWAYS")
    with pytest.raises(redis.ResponseError, match="count"):
        r.execute_command("LMPOP", 3, a, c, b, "LEFT", "COUNT", 0)
    assert r.lrange(c, 0, -1) == [b"c1"]


def test_mpop_resp3_and_pipeline_order(fresh) -> None:
    r = redis.Redis(port=fresh.port, protocol=3)
    a, b, c = by_shard(fresh, "m3")
    r.rpush(c, "c1")
    with r.pipeline(transaction=False) as p:
        p.lmpop(3, a, b, c, direction="LEFT")
        p.get(a)
        p.lmpop(2, a, b, direction="LEFT")
        p.ping()
        got = p.execute()
    assert got == [[c.encode(), [b"c1"]], None, None, True]
    r.close()


def test_blocking_mpop_over_several_shards_stays_crossslot(fresh) -> None:
    r = fresh.client()
    a, b, _ = by_shard(fresh, "bl")
    # -CROSSSLOT (redis-py drops the prefix: ClusterCrossSlotError)
    with pytest.raises(redis.exceptions.ClusterCrossSlotError):
        r.blmpop(0.1, 2, a, b, direction="LEFT")
    with pytest.raises(redis.exceptions.ClusterCrossSlotError):
        r.bzmpop(0.1, 2, [a, b], min=True)


def test_mpop_over_several_shards_inside_multi_keeps_the_queue_time_rule(fresh) -> None:
    r = fresh.client()
    a, b, c = by_shard(fresh, "tx")
    r.rpush(c, "c1")
    with r.pipeline(transaction=True) as p:
        p.lmpop(3, a, b, c, direction="LEFT")
        with pytest.raises(redis.exceptions.ClusterCrossSlotError):
            p.execute()
    assert r.lrange(c, 0, -1) == [b"c1"]
