"""Cross-shard MULTI/EXEC (router.transactions: split) through a real router over 3 shards.

What libraries send (Django's set_many, rq, kombu, arq) with redis-py, raw RESP for
the exact bytes (compared with one real redis-server where they must match), each
shard checked directly for what was written; WATCH's ordering rule, a failing shard,
the single-shard mode, blocking pops over several shards, and the metric.
"""

from __future__ import annotations

import signal
import urllib.request

import pytest
import redis
import redis.asyncio
from compat import Raw, both, keys_on_every_shard, plain_server, wait_for
from conftest import own_cluster

EXECABORT = b"-EXECABORT Transaction discarded because of previous errors.\r\n"
CROSSSLOT = b"-CROSSSLOT Keys in request don't hash to the same slot"
BLOCKING_HINT = b"(a blocking command through the router needs its keys on one shard"


@pytest.fixture(scope="module")
def plain(session_farm):
    yield from plain_server(session_farm)


@pytest.fixture
def keys(fresh, plain) -> list[list[str]]:
    redis.Redis(port=plain.port).flushall()
    return keys_on_every_shard(fresh, per_shard=3, prefix="sx")


def on_shards(cluster, key: str) -> list[bytes | None]:
    """The key's value read on every shard directly (None where it is absent)."""
    return [cluster.shard_client(i).get(key) for i in range(len(cluster.masters))]


def test_django_set_many_mset_and_expire_over_three_shards(fresh, keys) -> None:
    # Django RedisCache.set_many: MULTI; MSET k1 v1 k2 v2 ...; EXPIRE k1 t; ...; EXEC
    r = fresh.client()
    wanted = {k: f"v-{k}" for shard in keys for k in shard}
    with r.pipeline(transaction=True) as pipe:
        pipe.mset(wanted)
        for k in wanted:
            pipe.expire(k, 300)
        got = pipe.execute()
    assert got == [True] + [True] * len(wanted)
    for k, v in wanted.items():
        owner = fresh.owner(k)
        assert fresh.shard_client(owner).get(k) == v.encode()
        assert 0 < fresh.shard_client(owner).ttl(k) <= 300
    assert r.mget(list(wanted)) == [v.encode() for v in wanted.values()]


def test_pipeline_with_a_runtime_error_keeps_the_other_commands_and_the_order(fresh, keys) -> None:
    a, b, c = keys[0][0], keys[1][0], keys[2][0]
    r = fresh.client()
    r.lpush(b, "x")
    with r.pipeline(transaction=True) as pipe:
        pipe.set(a, "1").incr(b).lpush(b, "y").set(c, "3").get(a).llen(b)
        got = pipe.execute(raise_on_error=False)
    assert got[0] is True
    assert isinstance(got[1], redis.ResponseError) and "WRONGTYPE" in str(got[1])
    assert got[2:] == [2, True, b"1", 2]
    assert fresh.shard_client(0).get(a) == b"1"
    assert fresh.shard_client(2).get(c) == b"3"
    assert fresh.shard_client(1).lrange(b, 0, -1) == [b"y", b"x"]


@pytest.mark.parametrize("protocol", [2, 3])
def test_replies_match_one_redis_server_byte_for_byte(fresh, plain, keys, protocol) -> None:
    # fan-outs split by shard (MSET, MGET, DEL, UNLINK, EXISTS, TOUCH), local items
    # (PING, ECHO, CLIENT SETNAME), keyless and single-key commands, in one MULTI
    a, b, c = keys[0][0], keys[1][0], keys[2][0]
    a2, b2, c2 = keys[0][1], keys[1][1], keys[2][1]
    hello = [("HELLO", "3")] if protocol == 3 else []
    script = [
        *hello, ("MULTI",), ("MSET", a, "1", b, "2", c, "3"), ("PING",), ("INCR", b),
        ("MGET", c, a2, b, a, c2), ("ECHO", "hi"), ("EXISTS", a, b, c, a2, b2),
        ("CLIENT", "SETNAME", "split"), ("TOUCH", a, b, c), ("DEL", a, c2, b),
        ("UNLINK", c, b2), ("RPUSH", a2, "x", "y"), ("HSET", b2, "f", "v"),
        ("HGETALL", b2), ("MGET", a, b, c), ("EXEC",), ("CLIENT", "GETNAME"),
        ("MGET", a2, c),
    ]  # fmt: skip
    ours, theirs = both(fresh.port, plain.port, *script)
    if protocol == 3:
        ours, theirs = ours[1:], theirs[1:]  # HELLO's server fields differ
    assert ours == theirs
    assert ours[-3].startswith(b"*14\r\n+OK\r\n+PONG\r\n:3\r\n")
    assert fresh.shard_client(0).lrange(a2, 0, -1) == [b"x", b"y"]
    assert fresh.shard_client(1).hgetall(b2) == {b"f": b"v"}


async def test_asyncio_resp3_pipeline_over_three_shards(fresh, keys) -> None:
    a, b, c = keys[0][0], keys[1][0], keys[2][0]
    r = redis.asyncio.Redis(port=fresh.port, protocol=3)
    async with r.pipeline(transaction=True) as pipe:
        got = await (
            pipe.mset({a: 1, b: 2, c: 3}).mget(a, b, c, "nokey-sx").hset(c, "f", "v")
            .delete(a, b).ping().execute(raise_on_error=False)
        )  # fmt: skip
    assert got[:2] == [True, [b"1", b"2", b"3", None]]
    assert isinstance(got[2], redis.ResponseError)  # HSET on a string
    assert got[3:] == [2, True]
    assert await r.exists(a, b, c) == 1
    await r.aclose()


def test_queue_time_error_aborts_every_shard_and_writes_nothing(fresh, keys) -> None:
    a, b, c = keys[0][0], keys[1][0], keys[2][0]
    with Raw(fresh.port) as conn:
        got = conn.talk(
            ("MULTI",), ("SET", a, "1"), ("MSET", b, "2", c, "3"), ("NOSUCH", "x"),
            ("SET", c, "4"), ("EXEC",),
        )  # fmt: skip
    assert got[:3] == [b"+OK\r\n", b"+QUEUED\r\n", b"+QUEUED\r\n"]
    assert got[3].startswith(b"-ERR unknown command 'NOSUCH'")
    assert got[4:] == [b"+QUEUED\r\n", EXECABORT]
    for k in (a, b, c):
        assert on_shards(fresh, k) == [None, None, None]
    # a single command whose keys span shards and cannot be split: CROSSSLOT, EXECABORT
    with Raw(fresh.port) as conn:
        got = conn.talk(("MULTI",), ("SET", a, "1"), ("SINTER", a, b), ("EXEC",))
    assert got[2].startswith(CROSSSLOT) and got[3] == EXECABORT
    assert on_shards(fresh, a) == [None, None, None]


def test_single_shard_mode_keeps_crossslot() -> None:
    with own_cluster(extra_router={"transactions": "single-shard"}) as c:
        keys = keys_on_every_shard(c, per_shard=1, prefix="ss")
        a, b = keys[0][0], keys[2][0]
        with Raw(c.port) as conn:
            got = conn.talk(("MULTI",), ("SET", a, "1"), ("SET", b, "1"), ("MGET", a, b), ("EXEC",))
            assert got == [b"+OK\r\n", b"+QUEUED\r\n"] + [CROSSSLOT + b"\r\n"] * 2 + [EXECABORT]
            assert conn.call("GET", a) == b"$-1\r\n"  # nothing ran
            # one shard: as before
            got = conn.talk(("MULTI",), ("SET", a, "1"), ("PING",), ("GET", a), ("EXEC",))
            assert got[-1] == b"*3\r\n+OK\r\n+PONG\r\n$1\r\n1\r\n"
        r = c.client()
        with pytest.raises(redis.ResponseError, match="hash to the same slot"):
            with r.pipeline(transaction=True) as pipe:
                pipe.set(a, "2").set(b, "2").execute()


def test_watch_then_commands_on_other_shards_commit_everywhere(fresh, keys) -> None:
    # arq's enqueue_job: WATCH job_key; MULTI; PSETEX job_key ...; ZADD queue ...; EXEC
    job, queue, other = keys[0][0], keys[1][0], keys[2][0]
    r = fresh.client()
    with r.pipeline(transaction=True) as pipe:
        pipe.watch(job)
        assert pipe.exists(job) == 0
        pipe.multi()
        pipe.psetex(job, 60000, "payload").zadd(queue, {"job": 1}).set(other, "x")
        assert pipe.execute() == [True, 1, True]
    assert fresh.shard_client(0).get(job) == b"payload"
    assert fresh.shard_client(1).zrange(queue, 0, -1) == [b"job"]
    assert fresh.shard_client(2).get(other) == b"x"
    # pipelined right after EXEC: the client's next commands see the transaction's writes
    with Raw(fresh.port) as conn:
        got = conn.talk(
            ("WATCH", job), ("MULTI",), ("SET", queue, "q"), ("SET", other, "o"), ("EXEC",),
            ("GET", queue), ("GET", other), ("GET", job),
        )  # fmt: skip
    assert got[4:] == [
        b"*2\r\n+OK\r\n+OK\r\n",
        b"$1\r\nq\r\n",
        b"$1\r\no\r\n",
        b"$7\r\npayload\r\n",
    ]


def test_a_client_leaving_right_after_a_watched_exec_gets_it_run_on_every_shard(fresh, keys):
    job, queue, other = keys[0][0], keys[1][0], keys[2][0]
    for n in range(5):
        conn = Raw(fresh.port)
        conn.send(
            ("WATCH", job), ("MULTI",), ("SET", job, n), ("SET", queue, n), ("SET", other, n),
            ("EXEC",),
        )  # fmt: skip
        conn.close()  # at once: the router reads EXEC, then the close
        want = [str(n).encode()] * 3

        def all_written(want: list[bytes] = want) -> bool:
            return [on_shards(fresh, k)[i] for i, k in enumerate((job, queue, other))] == want

        wait_for(all_written, "every shard's part to run")


@pytest.mark.parametrize("protocol", [2, 3])
def test_watch_conflict_writes_nothing_on_any_shard(fresh, keys, protocol) -> None:
    job, queue, other = keys[0][0], keys[1][0], keys[2][0]
    r = fresh.client()
    r.set(job, "old")
    with Raw(fresh.port) as conn:
        if protocol == 3:
            conn.call("HELLO", "3")
        assert conn.talk(("WATCH", job), ("GET", job)) == [b"+OK\r\n", b"$3\r\nold\r\n"]
        r.set(job, "changed")  # another client: the watch fails
        got = conn.talk(
            ("MULTI",), ("SET", job, "mine"), ("SET", queue, "q"), ("MSET", other, "o", queue, "p"),
            ("EXEC",), ("GET", queue),
        )  # fmt: skip
        assert got[4] == (b"_\r\n" if protocol == 3 else b"*-1\r\n")
        assert got[5] == (b"_\r\n" if protocol == 3 else b"$-1\r\n")
        # nothing queued for the watched shard itself: its empty MULTI/EXEC checks the watch
        assert conn.talk(("WATCH", job), ("GET", job))[0] == b"+OK\r\n"
        r.set(job, "again")
        got = conn.talk(("MULTI",), ("SET", queue, "q"), ("EXEC",))
        assert got[2] == (b"_\r\n" if protocol == 3 else b"*-1\r\n")
        # only commands the router answers itself, and a conflict: nil too, not [PONG]
        assert conn.talk(("WATCH", job), ("GET", job))[0] == b"+OK\r\n"
        r.set(job, "again")
        got = conn.talk(("MULTI",), ("PING",), ("EXEC",))
        assert got[2] == (b"_\r\n" if protocol == 3 else b"*-1\r\n")
    assert r.get(job) == b"again"
    assert on_shards(fresh, queue) == [None, None, None]
    assert on_shards(fresh, other) == [None, None, None]
    # redis-py's retry loop (WatchError) then succeeds
    with r.pipeline(transaction=True) as pipe:
        pipe.watch(job)
        pipe.multi()
        pipe.set(queue, "q").set(other, "o")
        assert pipe.execute() == [True, True]
    assert fresh.shard_client(1).get(queue) == b"q"


def test_watch_of_keys_on_several_shards_stays_crossslot(fresh, keys) -> None:
    r = fresh.client()
    with r.pipeline(transaction=True) as pipe:
        with pytest.raises(redis.ResponseError, match="hash to the same slot"):
            pipe.watch(keys[0][0], keys[1][0])


@pytest.fixture
def failing():
    extra = {"command_timeout_ms": 500, "connect_timeout_ms": 300, "reconnect_max_ms": 200}
    with own_cluster(extra_router=extra) as c:
        yield c


def test_a_failing_shard_gives_its_error_at_its_places_only(failing) -> None:
    c = failing
    keys = keys_on_every_shard(c, per_shard=2, prefix="fx")
    a, b, d = keys[0][0], keys[1][0], keys[2][0]
    r = c.client()
    # shard b refuses writes at its own queue time (OOM): its EXEC is -EXECABORT
    c.shard_client(1).config_set("maxmemory", "1")
    try:
        with r.pipeline(transaction=True) as pipe:
            pipe.set(a, "1").set(b, "2").get(a).set(d, "3")
            got = pipe.execute(raise_on_error=False)
    finally:
        c.shard_client(1).config_set("maxmemory", "0")
    assert got[0] is True and got[2] == b"1" and got[3] is True
    assert isinstance(got[1], redis.exceptions.ExecAbortError)  # its code: EXECABORT
    assert "Transaction discarded" in str(
        got[1]
    ) and "shard b's part of the split transaction" in str(got[1])
    assert c.shard_client(0).get(a) == b"1" and c.shard_client(2).get(d) == b"3"
    assert c.shard_client(1).get(b) is None
    # shard c hung: its part times out (it may still commit later); the others committed
    c.masters[2].kill(signal.SIGSTOP)
    try:
        with Raw(c.port) as conn:
            got = conn.talk(("MULTI",), ("SET", keys[2][1], "late"), ("SET", a, "2"), ("EXEC",))
    finally:
        c.masters[2].kill(signal.SIGCONT)
    assert got[-1] == (
        b"*2\r\n-CLUSTERDOWN shard c timed out (no reply within 500 ms) "
        b"(shard c's part of the split transaction)\r\n+OK\r\n"
    )
    assert c.shard_client(0).get(a) == b"2"

    def c_is_back() -> bool:  # the router's RESP2 connection to c (Raw speaks RESP2)
        with Raw(c.port) as conn:
            return conn.call("SET", keys[2][1], "back") == b"+OK\r\n"

    wait_for(c_is_back, "the router to reconnect to shard c")
    # shard b down: -CLUSTERDOWN at its places, the others committed
    c.masters[1].kill(signal.SIGKILL)
    with Raw(c.port) as conn:
        got = conn.talk(
            ("MULTI",), ("SET", a, "x"), ("MSET", b, "y", d, "y"), ("PING",), ("GET", b),
            ("EXEC",),
        )  # fmt: skip
    reply = got[-1]
    assert reply.startswith(b"*4\r\n+OK\r\n-CLUSTERDOWN shard b ")
    assert reply.count(b"(shard b's part of the split transaction)") == 2
    assert b"+PONG\r\n" in reply
    assert c.shard_client(0).get(a) == b"x" and c.shard_client(2).get(d) == b"y"


def test_blocking_pops_over_several_shards_are_refused_with_the_recipe(fresh, keys) -> None:
    a, b = keys[0][0], keys[1][0]
    r = fresh.client()
    r.rpush(a, "1")
    r.rpush(b, "2")
    with Raw(fresh.port) as conn:
        for command in (
            ("BLPOP", a, b, "0.1"), ("BRPOP", a, b, "0"), ("BZPOPMIN", a, b, "0"),
            ("BZPOPMAX", a, b, "0"), ("BLMPOP", "0", "2", a, b, "LEFT"),
            ("BZMPOP", "0", "2", a, b, "MIN"), ("BLMOVE", a, b, "LEFT", "RIGHT", "0"),
            ("BRPOPLPUSH", a, b, "0"),
        ):  # fmt: skip
            got = conn.call(*command)
            assert got.startswith(CROSSSLOT) and BLOCKING_HINT in got, command
        # inside MULTI (Redis runs them without blocking): refused at queue time too ...
        got = conn.talk(("MULTI",), ("SET", keys[2][0], "1"), ("BLPOP", a, b, "0"), ("EXEC",))
        assert got[2].startswith(CROSSSLOT) and BLOCKING_HINT in got[2]
        assert got[3] == EXECABORT
        # ... while one over one shard's keys is a command like any other
        got = conn.talk(("MULTI",), ("BLPOP", a, "0"), ("LMOVE", b, b, "LEFT", "RIGHT"),
                        ("SET", keys[2][0], "1"), ("EXEC",))  # fmt: skip
        assert got[-1] == b"*3\r\n*2\r\n$%d\r\n%s\r\n$1\r\n1\r\n$1\r\n2\r\n+OK\r\n" % (
            len(a),
            a.encode(),
        )
    assert r.llen(a) == 0 and r.lrange(b, 0, -1) == [b"2"]  # nothing lost, nothing doubled


def split_count(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    for line in text.splitlines():
        if line.startswith("slotwarden_router_split_transactions_total "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("slotwarden_router_split_transactions_total is not on /metrics")


def test_split_transactions_are_counted_on_metrics(fresh, keys) -> None:
    before = split_count(fresh.admin_port)
    r = fresh.client()
    for _ in range(3):
        with r.pipeline(transaction=True) as pipe:
            pipe.set(keys[0][0], "1").set(keys[2][0], "2").execute()
    with r.pipeline(transaction=True) as pipe:  # one shard: not split
        pipe.set(keys[1][0], "1").set(keys[1][1], "2").execute()
    assert split_count(fresh.admin_port) - before == 3
