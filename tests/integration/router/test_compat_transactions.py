"""MULTI/EXEC/DISCARD/WATCH through the router, each compared with one real redis-server.

Real clients (redis-py pipelines and WATCH retry loops, sync and asyncio, RESP2
and RESP3) and raw RESP for the exact bytes of errors and replies.
"""

from __future__ import annotations

import threading

import pytest
import redis
import redis.asyncio
from compat import (
    Raw,
    both,
    keys_on_every_shard,
    plain_server,
    router_conns,
    wait_for,
)

CROSSSLOT = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
EXECABORT = b"-EXECABORT Transaction discarded because of previous errors.\r\n"


@pytest.fixture(scope="module")
def plain(session_farm):
    yield from plain_server(session_farm)


@pytest.fixture
def keys(fresh, plain) -> list[list[str]]:
    redis.Redis(port=plain.port).flushall()
    return keys_on_every_shard(fresh, per_shard=2, prefix="tx")


def test_multi_exec_replies_match_redis(fresh, plain, keys) -> None:
    a, b = keys[1]
    script = [
        ("MULTI",), ("SET", a, "1"), ("INCR", a), ("PING",), ("ECHO", "hi"), ("GET", b),
        ("LPUSH", b, "x"), ("CLIENT", "SETNAME", "txn"), ("EXEC",), ("CLIENT", "GETNAME"),
    ]  # fmt: skip
    ours, theirs = both(fresh.port, plain.port, *script)
    assert ours == theirs
    assert ours[-2].startswith(b"*7\r\n+OK\r\n:2\r\n+PONG\r\n")
    assert fresh.shard_client(1).get(a) == b"2"


def test_errors_match_redis_and_the_connection_stays_usable(fresh, plain, keys) -> None:
    a = keys[0][0]
    script = [
        ("EXEC",), ("DISCARD",), ("UNWATCH",), ("EXEC", "x"), ("DISCARD", "x"),
        ("MULTI",), ("MULTI",), ("SET", a, "1"), ("WATCH", a), ("EXEC",),  # not aborted
        ("MULTI",), ("GET",), ("SET", a, "2"), ("EXEC",),  # wrong arity: aborted
        ("MULTI",), ("NOSUCH", "x"), ("EXEC",),
        ("MULTI",), ("SET", a, "3"), ("DISCARD",), ("GET", a),
        ("MULTI",), ("EXEC", "x"), ("EXEC",),  # EXEC itself wrong: discarded, with the reason
        ("MULTI",), ("RESET",), ("EXEC",),
        ("GET", a),
    ]  # fmt: skip
    ours, theirs = both(fresh.port, plain.port, *script)
    assert ours == theirs
    assert b"-ERR MULTI calls can not be nested\r\n" in ours
    assert b"-ERR WATCH inside MULTI is not allowed\r\n" in ours
    assert ours.count(EXECABORT) == 2


def test_commands_no_shard_can_run_abort_at_queue_time(fresh, keys) -> None:
    # (keys on several shards: tests/integration/router/test_split_transactions.py)
    with Raw(fresh.port) as c:
        # keyless commands go with the keyed ones; a keyless-only one runs on shard 0
        assert c.talk(("MULTI",), ("PING",), ("DBSIZE",), ("EXEC",))[2:] == [
            b"-ERR 'dbsize' cannot be queued in MULTI through the router: it runs on every "
            b"shard\r\n",
            EXECABORT,
        ]
        assert c.talk(("MULTI",), ("LASTSAVE",), ("EXEC",))[2].startswith(b"*1\r\n:")
        # SUBSCRIBE inside MULTI: Redis queues it; the router refuses it at queue time
        assert c.talk(("MULTI",), ("SUBSCRIBE", "ch"), ("EXEC",))[1:] == [
            b"-ERR 'subscribe' inside MULTI is not supported by the router\r\n",
            EXECABORT,
        ]


@pytest.mark.parametrize("protocol", [2, 3])
def test_watch_conflict_aborts_exec_with_nil(fresh, plain, keys, protocol) -> None:
    a = keys[2][0]
    for port in (fresh.port, plain.port):
        r = redis.Redis(port=port, protocol=protocol)
        other = redis.Redis(port=port, protocol=protocol)
        r.set(a, "1")
        with Raw(port) as c:
            if protocol == 3:
                c.call("HELLO", "3")
            assert c.talk(("WATCH", a), ("GET", a)) == [b"+OK\r\n", b"$1\r\n1\r\n"]
            other.set(a, "changed")
            got = c.talk(("MULTI",), ("SET", a, "mine"), ("EXEC",))
            assert got[2] == (b"_\r\n" if protocol == 3 else b"*-1\r\n"), port
            assert r.get(a) == b"changed"
            # without a conflict the next one goes through
            got = c.talk(("WATCH", a), ("MULTI",), ("SET", a, "mine"), ("EXEC",))
            assert got[3] == b"*1\r\n+OK\r\n"


def test_watch_of_keys_on_two_shards_is_crossslot(fresh, keys) -> None:
    with Raw(fresh.port) as c:
        assert c.call("WATCH", keys[0][0], keys[1][0]) == CROSSSLOT
        assert c.call("WATCH", keys[0][0]) == b"+OK\r\n"
        assert c.call("WATCH", keys[1][0]) == CROSSSLOT  # pinned to shard 0 now


def test_watch_retry_loop_under_contention_loses_no_increment(fresh, keys) -> None:
    key = keys[1][0]
    r = fresh.client()
    r.set(key, 0)
    workers, rounds = 4, 25

    def work() -> None:
        client = fresh.client()

        def incr(pipe: redis.client.Pipeline) -> None:
            value = int(pipe.get(key))
            pipe.multi()
            pipe.set(key, value + 1)

        for _ in range(rounds):
            client.transaction(incr, key)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert int(r.get(key)) == workers * rounds


async def test_asyncio_pipelines_and_watch_resp3(fresh, keys) -> None:
    a, b = keys[0]
    r = redis.asyncio.Redis(port=fresh.port, protocol=3)
    async with r.pipeline(transaction=True) as pipe:
        got = await pipe.set(a, 5).incrby(a, 2).get(a).hset(b, "f", "v").execute()
    assert got == [True, 7, b"7", 1]
    async with r.pipeline(transaction=True) as pipe:
        await pipe.watch(a)
        value = int(await pipe.get(a))
        pipe.multi()
        pipe.set(a, value * 10)
        assert await pipe.execute() == [True]
    assert await r.get(a) == b"70"
    await r.aclose()


def test_watch_connection_is_given_back_clean_and_reused(fresh, keys) -> None:
    a = keys[0][0]
    before = len(router_conns(fresh, 0))
    for n in range(1, 6):
        with Raw(fresh.port) as c:
            got = c.talk(("WATCH", a), ("MULTI",), ("INCR", a), ("EXEC",))
            assert got[3] == b"*1\r\n:%d\r\n" % n
    # five transactions, one after the other: the idle pool reused one connection
    assert len(router_conns(fresh, 0)) - before <= 1
    # a client that goes away mid-MULTI: its WATCH connection is closed, not reused
    c = Raw(fresh.port)
    assert c.talk(("WATCH", a), ("MULTI",), ("INCR", a)) == [b"+OK\r\n"] * 2 + [b"+QUEUED\r\n"]
    watching = [x for x in router_conns(fresh, 0) if x["cmd"] == "watch"]
    assert len(watching) == 1
    c.close()
    wait_for(
        lambda: all(x["id"] != watching[0]["id"] for x in router_conns(fresh, 0)),
        "the WATCH connection to be closed",
    )
    assert fresh.shard_client(0).get(a) == b"5"


def test_commands_after_watch_stay_in_order_with_it(fresh, plain, keys) -> None:
    # WATCH, then the client's own write to the key, in one pipeline: Redis runs them in
    # order, so the write dirties the watch and EXEC answers nil. The router sends the
    # client's commands for the watched shard on the WATCH connection to keep that order.
    a = keys[1][1]
    script = [("WATCH", a), ("SET", a, "mine"), ("MULTI",), ("SET", a, "tx"), ("EXEC",), ("GET", a)]
    ours, theirs = both(fresh.port, plain.port, *script)
    assert ours == theirs
    assert ours[4:] == [b"*-1\r\n", b"$4\r\nmine\r\n"]
