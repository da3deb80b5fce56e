"""Blocking commands through the router: dedicated connections, the command's own timeout,
timeout 0, a client that leaves while blocked, a shard that dies while a client waits."""

from __future__ import annotations

import threading
import time

import pytest
import redis
import redis.asyncio
from compat import Raw, both, keys_on_every_shard, plain_server, router_conns, wait_for
from conftest import Cluster

# The router's command timeout is short here, so that anything it wrongly applied
# to a blocking command would cut it short.
TIMEOUT_MS = 300


class Shards:
    """What `router_conns` needs of a cluster (``masters``), for a plain redis-server."""

    def __init__(self, masters: list) -> None:
        self.masters = masters


def blocked_at(cluster, shard: int, command: str) -> list[dict[str, str]]:
    """The connections (without a client library name) running ``command`` on a shard."""
    return [x for x in router_conns(cluster, shard) if x["cmd"] == command]


@pytest.fixture(scope="module")
def plain(session_farm):
    yield from plain_server(session_farm)


@pytest.fixture(scope="module")
def blocking_cluster(session_farm):
    c = Cluster(session_farm, extra_router={"command_timeout_ms": TIMEOUT_MS})
    try:
        yield c
    finally:
        c.router.stop()
        for m in c.masters:
            m.stop()


@pytest.fixture
def bc(blocking_cluster):
    blocking_cluster.flush()
    return blocking_cluster


def test_blpop_with_a_timeout_longer_than_the_router_command_timeout(bc) -> None:
    r = bc.client()
    start = time.monotonic()
    assert r.blpop(["nothing-here"], timeout=1) is None
    took = time.monotonic() - start
    # not cut at the router's 0.3 s command timeout; the upper bound is generous for a
    # loaded machine, and still below the client's own 10 s socket timeout
    assert 0.9 < took < 6, took
    r.rpush("q", "a")
    assert r.blpop(["q"], timeout=1) == (b"q", b"a")


def test_timeout_zero_waits_until_another_client_pushes(bc) -> None:
    a, b = keys_on_every_shard(bc, prefix="bq")[1][0], keys_on_every_shard(bc, prefix="bq")[2][0]
    got: list[object] = []

    def waiter() -> None:
        got.append(bc.client().brpop([a], timeout=0))

    t = threading.Thread(target=waiter)
    t.start()
    # the BRPOP waits on its shard (so the time below runs while it is in flight) ...
    wait_for(lambda: blocked_at(bc, bc.owner(a), "brpop"), "the BRPOP to reach the shard")
    time.sleep(3 * TIMEOUT_MS / 1000)  # ... far beyond the router's command timeout
    assert not got
    bc.client().lpush(a, "late")
    t.join(10)
    assert got == [(a.encode(), b"late")]
    # BLMOVE between keys of one shard; XREAD BLOCK; BZPOPMIN
    r = bc.client()
    assert r.blmove(b, "{" + b + "}dst", timeout=0.2) is None
    r.xadd("{s}stream", {"f": "v"})
    assert r.xread({"{s}stream": "$"}, block=400) == []
    assert r.bzpopmin(["{z}a"], timeout=0.2) is None


def test_pipelined_commands_after_a_blocking_one_wait_for_it_as_in_redis(bc, plain) -> None:
    # Redis does not read more from a blocked client: the GET runs after BLPOP's
    # reply, so it sees the value LPUSH'd by another client only afterwards.
    for port in (bc.port, plain.port):
        with Raw(port) as c, Raw(port) as other:
            c.send(("BLPOP", "{b}l", "0"), ("GET", "{b}k"))
            # the BLPOP is blocked (was: a 0.3 s sleep) before the other client writes
            if port == bc.port:
                wait_for(lambda: blocked_at(bc, bc.owner("{b}l"), "blpop"), "BLPOP blocked")
            else:
                wait_for(lambda: blocked_at(Shards([plain]), 0, "blpop"), "BLPOP blocked")
            assert c.quiet(0.1)
            assert other.talk(("SET", "{b}k", "v"), ("LPUSH", "{b}l", "x")) == [
                b"+OK\r\n",
                b":1\r\n",
            ]
            assert c.read(2) == [b"*2\r\n$4\r\n{b}l\r\n$1\r\nx\r\n", b"$1\r\nv\r\n"], port
            other.call("DEL", "{b}k")


def test_errors_and_non_blocking_answers_match_redis(bc, plain) -> None:
    script = [
        ("BLPOP", "{e}l", "notanumber"),
        ("BLPOP", "{e}l", "-1"),
        ("RPUSH", "{e}l", "1", "2"),
        ("BLPOP", "{e}l", "0"),
        ("BLMPOP", "0.1", "1", "{e}l", "LEFT", "COUNT", "5"),
        ("BLMPOP", "0.1", "0", "{e}l", "LEFT"),
        ("MULTI",),
        ("BLPOP", "{e}empty", "0"),  # inside MULTI it does not block
        ("EXEC",),
    ]
    ours, theirs = both(bc.port, plain.port, *script)
    assert ours == theirs
    assert b"*1\r\n*-1\r\n" in ours


def test_client_leaving_while_blocked_frees_its_backend_connection_at_once(bc) -> None:
    key = keys_on_every_shard(bc, prefix="gone")[0][0]
    c = Raw(bc.port)
    c.send(("BLPOP", key, "0"))

    def blocked() -> list[dict[str, str]]:
        return [x for x in router_conns(bc, 0) if x["cmd"] == "blpop"]

    wait_for(lambda: len(blocked()) == 1, "the BLPOP to reach the shard")
    c.close()
    wait_for(lambda: not blocked(), "the shard to drop the blocked connection", timeout=2)
    # and the value pushed afterwards is not swallowed by a forgotten BLPOP
    r = bc.client()
    r.lpush(key, "kept")
    assert r.lrange(key, 0, -1) == [b"kept"]


async def test_asyncio_blocking_pops_many_clients(bc) -> None:
    import asyncio

    r = redis.asyncio.Redis(port=bc.port, protocol=3)
    waiters = [asyncio.create_task(r.blpop([f"aq{i}"], timeout=0)) for i in range(5)]
    # all 5 wait on their shards (was: a bare 0.5 s sleep, which a loaded machine could
    # spend before they were sent), then longer than the router's command timeout
    deadline = time.monotonic() + 10
    while sum(len(blocked_at(bc, i, "blpop")) for i in range(len(bc.masters))) < 5:
        assert time.monotonic() < deadline, "timed out waiting for 5 BLPOPs on the shards"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    assert not any(w.done() for w in waiters)
    for i in range(5):
        await r.rpush(f"aq{i}", f"v{i}")
    got = await asyncio.wait_for(asyncio.gather(*waiters), 10)
    assert got == [[f"aq{i}".encode(), f"v{i}".encode()] for i in range(5)]
    await r.aclose()


def test_wait_reports_replicas_of_every_shard(bc, plain) -> None:
    # no replicas anywhere: 0 at once, as a single Redis without replicas says
    ours, theirs = both(bc.port, plain.port, ("SET", "w", "1"), ("WAIT", "0", "100"))
    assert ours == theirs == [b"+OK\r\n", b":0\r\n"]


def test_a_shard_dying_under_a_blocked_client_is_an_error_not_a_hang(farm) -> None:
    c = Cluster(farm, extra_router={"command_timeout_ms": TIMEOUT_MS})
    try:
        key = keys_on_every_shard(c, prefix="dead")[1][0]
        with Raw(c.port) as client:
            client.send(("BLPOP", key, "0"))
            wait_for(
                lambda: any(x["cmd"] == "blpop" for x in router_conns(c, 1)), "BLPOP on the shard"
            )
            c.masters[1].kill()
            got = client.read(1, timeout=5)[0]
            assert got.startswith(b"-CLUSTERDOWN shard b is unavailable"), got
            assert client.call("PING") == b"+PONG\r\n"  # the client is usable again
    finally:
        c.router.stop()
