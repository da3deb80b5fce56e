"""Dead, hung and restarted shards; backpressure; both RESP versions. Real processes."""

from __future__ import annotations

import signal
import threading
import time

import pytest
import redis
from conftest import own_cluster
from test_router import keys_on_every_shard


@pytest.fixture
def small_cluster():
    extra = {
        "command_timeout_ms": 500,
        "connect_timeout_ms": 300,
        "reconnect_max_ms": 200,
        "max_pending_per_client": 64,
    }
    with own_cluster(check_exit=True, extra_router=extra) as c:
        yield c


def by_shard(cluster, keys: list[str]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for k in keys:
        out.setdefault(cluster.owner(k), []).append(k)
    return out


def test_killed_shard_fails_only_its_keys_fast_and_recovers(small_cluster) -> None:
    c = small_cluster
    r = c.client()
    keys = by_shard(c, keys_on_every_shard(c, per_shard=5))
    for ks in keys.values():
        for k in ks:
            r.set(k, "v")
    dead = c.masters[1]
    dead.kill(signal.SIGKILL)
    for shard, ks in keys.items():
        for k in ks:
            t0 = time.monotonic()
            if shard == 1:
                with pytest.raises(redis.ResponseError, match="shard b"):
                    r.get(k)
            else:
                assert r.get(k) == b"v"
            assert time.monotonic() - t0 < 1.5
    # a cross-shard MGET touching the dead shard is an error, not a partial answer
    with pytest.raises(redis.ResponseError, match="shard b"):
        r.mget([k for ks in keys.values() for k in ks])
    # the shard comes back on the same port: the router reconnects by itself
    dead.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            assert r.set(keys[1][0], "again") is True
            break
        except redis.ResponseError:
            assert time.monotonic() < deadline, "router did not reconnect"
            time.sleep(0.1)
    assert r.get(keys[1][0]) == b"again"


def test_shard_killed_under_load_others_keep_serving(small_cluster) -> None:
    c = small_cluster
    keys = by_shard(c, keys_on_every_shard(c, per_shard=20))
    stop = threading.Event()
    results: dict[int, list[tuple[bool, float]]] = {0: [], 1: [], 2: []}

    def load(shard: int) -> None:
        cl = c.client()
        i = 0
        while not stop.is_set():
            k = keys[shard][i % len(keys[shard])]
            t0 = time.monotonic()
            try:
                cl.incr(k)
                ok = True
            except redis.ResponseError:
                ok = False
            results[shard].append((ok, time.monotonic() - t0))
            i += 1

    def wait_until(check, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    threads = [threading.Thread(target=load, args=(s,)) for s in range(3) for _ in range(3)]
    for t in threads:
        t.start()
    # load on every shard (was: a 0.5 s sleep), then kill shard 2 and keep the load on
    # until the dead shard has failed requests and the others served more since the kill
    # (was: a 1.5 s sleep, which a loaded machine may spend before any request ran)
    try:
        wait_until(lambda: all(len(results[s]) >= 20 for s in range(3)), "load on every shard")
        c.masters[2].kill(signal.SIGKILL)
        served = {s: len(results[s]) for s in (0, 1)}
        wait_until(
            lambda: (
                sum(not ok for ok, _ in results[2]) >= 20
                and all(len(results[s]) >= served[s] + 100 for s in (0, 1))
            ),
            "failed requests to the dead shard and served ones to the others",
        )
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    for shard in (0, 1):
        assert results[shard] and all(ok for ok, _ in results[shard]), f"shard {shard} failed"
    failed = [dt for ok, dt in results[2] if not ok]
    assert failed, "requests to the dead shard should fail"
    assert max(failed) < 1.5, "errors must be timely"


def test_hung_shard_times_out_with_clusterdown(small_cluster) -> None:
    c = small_cluster
    r = c.client()
    keys = by_shard(c, keys_on_every_shard(c, per_shard=2))
    hung = c.masters[0]
    hung.kill(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        with pytest.raises(redis.ResponseError, match=r"CLUSTERDOWN|timed out") as info:
            r.get(keys[0][0])
        elapsed = time.monotonic() - t0
        # not before command_timeout_ms (500); the upper bound is generous for a loaded
        # machine, and still far below the client's own 10 s socket timeout
        assert 0.4 < elapsed < 5.0, elapsed
        assert "shard a" in str(info.value)
        assert r.get(keys[1][0]) is None  # others unaffected meanwhile
    finally:
        hung.kill(signal.SIGCONT)
    deadline = time.monotonic() + 10
    while True:
        try:
            r.set(keys[0][0], 1)
            break
        except redis.ResponseError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_backpressure_large_pipeline_is_complete_and_ordered(small_cluster) -> None:
    """max_pending_per_client is 64: a 20,000-command pipeline pauses and resumes
    reading many times and every reply still comes back in order."""
    r = small_cluster.client()
    with r.pipeline(transaction=False) as p:
        for i in range(20000):
            p.echo(str(i)) if i % 3 == 0 else p.set(f"bp{i}", i)
        out = p.execute()
    assert out == [str(i).encode() if i % 3 == 0 else True for i in range(20000)]


@pytest.mark.parametrize("protocol", [2, 3])
def test_both_resp_versions(small_cluster, protocol: int) -> None:
    c = small_cluster
    r = redis.Redis(port=c.port, protocol=protocol)
    keys = keys_on_every_shard(c, per_shard=1)
    r.hset(keys[0], mapping={"f": "v"})
    assert r.hgetall(keys[0]) == {b"f": b"v"}
    r.set(keys[1], "x")
    assert r.mget([keys[1], "missing", keys[2]]) == [b"x", None, None]
    r.zadd(keys[2], {"m": 1.5})
    assert r.zscore(keys[2], "m") == 1.5
    assert r.client_getname() is None
    hello = r.execute_command("HELLO", protocol)
    proto = hello.get(b"proto", hello.get("proto")) if isinstance(hello, dict) else hello[5]
    assert proto == protocol
    assert r.info()["shards"] == 3


def test_client_not_reading_its_replies_is_closed_past_the_output_limit() -> None:
    import socket

    with own_cluster(extra_router={"client_output_limit_bytes": 2_000_000}) as c:
        r = c.client()
        r.set("big", b"x" * 100_000)
        s = socket.create_connection(("127.0.0.1", c.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n" * 500)  # ~50 MB of replies, never read
        deadline = time.monotonic() + 10
        while "client_output_limit_bytes" not in c.router.log():
            assert time.monotonic() < deadline, c.router.log()
            time.sleep(0.05)
        assert r.get("big") == b"x" * 100_000  # everyone else is fine
        s.close()
