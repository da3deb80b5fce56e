"""`slotwarden.cacheclient` against a real redis-server (7.0.15 tracks natively): the client
the tracking tests and bench drive is itself checked against Redis first.

Every mode (RESP3 pushes, RESP2 REDIRECT) caches reads, drops a key another client changes
(a write, an expiry, FLUSHALL = drop everything), and clears everything when a connection is
lost or a call times out; BCAST PREFIX caches only its prefixes; OPTIN tracks only what it
asked for; NOLOOP writes drop the writer's own copy.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from slotwarden.cacheclient import CacheClient, ReplyError
from slotwarden.procs import RedisFarm, RedisProc

WAIT_S = 5.0  # a correctness bound with slack for a loaded CI box; the real figure is ~0.1 ms


@pytest.fixture(scope="module")
def server() -> Iterator[RedisProc]:
    farm = RedisFarm()
    try:
        yield farm.start()
    finally:
        farm.close()


@pytest.fixture
def other(server: RedisProc) -> Iterator[redis.Redis]:
    r = redis.Redis(port=server.port, socket_timeout=10)
    r.flushall()
    yield r
    r.close()


def wait_invalidated(c: CacheClient, key: bytes) -> float:
    """Poll until ``key``'s invalidation arrived; the time it took."""
    t0 = time.monotonic()
    deadline = t0 + WAIT_S
    while key in c.cache or key not in c.invalidated_at or c.invalidated_at[key] < t0:
        if time.monotonic() > deadline:
            raise AssertionError(f"no invalidation of {key!r} within {WAIT_S} s")
        c.poll(0.1)
    return c.invalidated_at[key] - t0


@pytest.mark.parametrize("mode", ["resp3", "redirect"])
def test_reads_are_cached_and_changes_by_others_invalidate(
    server: RedisProc, other: redis.Redis, mode: str
) -> None:
    other.set("k", "1")
    with CacheClient(port=server.port, mode=mode) as c:  # type: ignore[arg-type]
        assert c.get("k") == b"1"
        assert c.get("k") == b"1"
        assert (c.hits, c.misses) == (1, 1)
        other.set("k", "2")
        wait_invalidated(c, b"k")
        assert c.get("k") == b"2"
        assert c.misses == 2
        # expiry on the server invalidates too
        other.set("e", "x", px=100)
        assert c.get("e") == b"x"
        wait_invalidated(c, b"e")
        assert c.get("e") is None
        # FLUSHALL: a null invalidation drops everything
        assert c.get("k") == b"2" and b"k" in c.cache
        other.flushall()
        deadline = time.monotonic() + WAIT_S
        while c.flushes == 0 and time.monotonic() < deadline:
            c.poll(0.1)
        assert c.flushes == 1 and c.cache == {}
        assert c.get("k") is None


def test_off_mode_never_caches(server: RedisProc, other: redis.Redis) -> None:
    other.set("k", "1")
    with CacheClient(port=server.port, mode="off") as c:
        assert c.get("k") == b"1"
        other.set("k", "2")
        assert c.get("k") == b"2"
        assert (c.hits, c.misses, c.cache) == (0, 2, {})


def test_bcast_prefix_caches_only_its_prefixes(server: RedisProc, other: redis.Redis) -> None:
    other.mset({"p:1": "a", "q:1": "b"})
    with CacheClient(port=server.port, bcast=True, prefixes=["p:"]) as c:
        assert c.get("p:1") == b"a" and c.get("q:1") == b"b"
        assert set(c.cache) == {b"p:1"}  # q:1 would never be invalidated
        other.set("p:2", "never read")  # BCAST: every change under the prefix is reported
        wait_invalidated(c, b"p:2")
        other.set("p:1", "a2")
        wait_invalidated(c, b"p:1")
        assert c.get("p:1") == b"a2"


def test_optin_tracks_only_what_it_asked_for(server: RedisProc, other: redis.Redis) -> None:
    other.mset({"o": "1", "u": "1"})
    with CacheClient(port=server.port, optin=True) as c:
        assert c.get("o") == b"1"  # CLIENT CACHING YES + GET
        assert c.execute("GET", "u") == b"1"  # untracked
        other.set("u", "2")
        other.set("o", "2")
        wait_invalidated(c, b"o")
        assert b"u" not in c.invalidated_at
        with pytest.raises(ReplyError, match="OPTOUT"):
            c.execute("CLIENT", "CACHING", "NO")


def test_noloop_writer_drops_its_own_copy(server: RedisProc, other: redis.Redis) -> None:
    other.set("k", "1")
    with CacheClient(port=server.port, noloop=True) as c:
        assert c.get("k") == b"1"
        c.set("k", "2")  # no invalidation comes back (NOLOOP): dropped locally
        assert c.poll(0.2) == 0
        assert c.get("k") == b"2"


@pytest.mark.parametrize("victim", ["data", "subscriber"])
def test_a_lost_connection_clears_the_cache(
    server: RedisProc, other: redis.Redis, victim: str
) -> None:
    other.set("k", "1")
    with CacheClient(port=server.port, mode="redirect") as c:
        assert c.get("k") == b"1"
        conns = {"data": c._data, "subscriber": c._inval}
        port = conns[victim].sock.getsockname()[1]  # type: ignore[union-attr]
        other.client_kill(f"127.0.0.1:{port}")
        with pytest.raises(ConnectionError):
            for _ in range(50):
                c.get("k")
                time.sleep(0.05)
        assert c.cache == {} and c.losses == 1 and c.flushes == 0
        other.set("k", "2")
        assert c.get("k") == b"2"  # reconnected, tracking anew
        other.set("k", "3")
        wait_invalidated(c, b"k")


def test_a_call_never_hangs_on_a_stopped_server(farm: RedisFarm) -> None:
    node = farm.start()
    with CacheClient(port=node.port, timeout=0.5) as c:
        assert c.get("k") is None and b"k" in c.cache
        node.kill(signal.SIGSTOP)
        try:
            c.cache.clear()  # force a read-through
            c.cache[b"x"] = b"kept?"
            t0 = time.monotonic()
            with pytest.raises(ConnectionError):
                c.get("k")
            assert time.monotonic() - t0 < 5
            assert c.cache == {} and c.losses == 1
        finally:
            node.kill(signal.SIGCONT)


def test_auth_and_error_replies(farm: RedisFarm) -> None:
    node = farm.start(["--requirepass", "s3cret"])
    with pytest.raises(ReplyError, match="WRONGPASS"):
        CacheClient(port=node.port, password="wrong").get("k")
    for mode in ("resp3", "redirect"):
        with CacheClient(port=node.port, password="s3cret", mode=mode) as c:  # type: ignore[arg-type]
            assert c.get("k") is None
            with pytest.raises(ReplyError, match="wrong number of arguments"):
                c.execute("GET")


def test_fuzz_against_redis_every_cached_value_is_the_servers(server: RedisProc) -> None:
    """Clients of every mode read (90 %) and write (10 %) a few keys at random from threads;
    once quiet, every cached value is the server's. (A push read in the same recv as a
    reply, behind it, must apply after the value is stored: before that fix, RESP3 clients
    kept stale values here.)"""
    keys = [f"fz:{i}".encode() for i in range(8)]
    clients = [
        CacheClient(port=server.port, mode=m, noloop=n)  # type: ignore[arg-type]
        for m, n in [("resp3", False), ("resp3", False), ("redirect", False), ("resp3", True)]
    ]
    stop = threading.Event()

    def run(c: CacheClient, seed: int) -> None:
        rng = random.Random(seed)
        n = 0
        while not stop.is_set():
            k = rng.choice(keys)
            if rng.random() < 0.9:
                c.get(k)
            else:
                n += 1
                c.set(k, f"{seed}:{n}")

    threads = [
        threading.Thread(target=run, args=(c, i), daemon=True) for i, c in enumerate(clients)
    ]
    for t in threads:
        t.start()
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    truth = redis.Redis(port=server.port)
    values = dict(zip(keys, truth.mget(keys), strict=True))
    for c in clients:
        quiet = time.monotonic()
        while time.monotonic() - quiet < 0.3:
            if c.poll(0.05):
                quiet = time.monotonic()
    stale = [(i, k, v, values[k]) for i, c in enumerate(clients) for k, v in c.cache.items()
             if v != values[k]]  # fmt: skip
    assert not stale, stale
    assert all(c.hits > 100 and c.invalidations > 10 for c in clients)
    for c in clients:
        c.close()
