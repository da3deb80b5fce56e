"""The router end to end: real redis-servers, a real router process, real clients."""

from __future__ import annotations

import random
import socket
import subprocess
import threading
import time

import pytest
import redis

from slotwarden.cluster.slots import key_hash_slot


def keys_on_every_shard(cluster, per_shard: int = 3, prefix: str = "k") -> list[str]:
    """Keys such that every shard owns ``per_shard`` of them."""
    found: dict[int, list[str]] = {i: [] for i in range(len(cluster.masters))}
    i = 0
    while any(len(v) < per_shard for v in found.values()):
        k = f"{prefix}{i}"
        owner = cluster.owner(k)
        if len(found[owner]) < per_shard:
            found[owner].append(k)
        i += 1
    return [k for v in found.values() for k in v]


def raw_exchange(port: int, data: bytes, expect_close: bool = False, timeout: float = 5) -> bytes:
    """Send raw bytes, read until the peer closes (or goes quiet)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        s.settimeout(0.5 if not expect_close else timeout)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except TimeoutError:
            assert not expect_close, f"connection not closed; got {out!r}"
        return out


# ---------------------------------------------------------------- single-shard routing


def test_single_key_commands_land_on_owner(fresh) -> None:
    r = fresh.client()
    keys = keys_on_every_shard(fresh)
    for k in keys:
        assert r.set(k, f"v-{k}") is True
    for k in keys:
        assert r.get(k) == f"v-{k}".encode()
        owner = fresh.owner(k)
        for i in range(len(fresh.masters)):
            assert fresh.shard_client(i).exists(k) == (1 if i == owner else 0)
    # data types
    r.hset("h", mapping={"a": 1, "b": 2})
    assert r.hgetall("h") == {b"a": b"1", b"b": b"2"}
    r.rpush("l", 1, 2, 3)
    assert r.lrange("l", 0, -1) == [b"1", b"2", b"3"]
    r.zadd("z", {"x": 1, "y": 2})
    assert r.zrange("z", 0, -1, withscores=True) == [(b"x", 1.0), (b"y", 2.0)]
    assert r.incr("counter") == 1
    assert r.get("missing") is None


def test_hash_tags_keep_multi_key_commands_together(fresh) -> None:
    r = fresh.client()
    r.sadd("{user1}:a", "x", "y")
    r.sadd("{user1}:b", "y", "z")
    assert r.sinter("{user1}:a", "{user1}:b") == {b"y"}
    assert r.rename("{user1}:a", "{user1}:c") is True
    assert r.msetnx({"{t}1": "a", "{t}2": "b"}) is True
    # same shard but different slots is allowed (the router routes by shard)
    a, b = keys_on_every_shard(fresh, per_shard=2)[:2]
    assert fresh.owner(a) == fresh.owner(b) and key_hash_slot(a.encode()) != key_hash_slot(
        b.encode()
    )
    r.set(a, 1)
    assert r.rename(a, b) is True


def test_crossslot_for_multi_key_commands_spanning_shards(fresh) -> None:
    r = fresh.client()
    keys = keys_on_every_shard(fresh, per_shard=1)
    a, b = keys[0], keys[1]
    # the moves between shards (SINTER, ZUNIONSTORE & co. are computed: test_compat_cross_shard)
    r.set(a, 1)
    for call in (
        lambda: r.rename(a, b),
        lambda: r.renamenx(a, b),
        lambda: r.copy(a, b),
        lambda: r.msetnx({a: 1, b: 2}),
        lambda: r.smove(a, b, "x"),
        lambda: r.lmove(a, b),
        lambda: r.rpoplpush(a, b),
    ):
        with pytest.raises(
            redis.ResponseError, match="Keys in request don't hash to the same slot"
        ):
            call()
    assert r.ping() is True  # connection still usable
    # on the wire it is Redis Cluster's exact error line
    raw = raw_exchange(fresh.port, b"RENAME %s %s\r\n" % (a.encode(), b.encode()))
    assert raw == b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"


# ---------------------------------------------------------------- fan-out


def test_cross_shard_multikey_equals_single_redis(fresh, redis_plain) -> None:
    ref = redis.Redis(port=redis_plain.port)
    ref.flushall()
    r = fresh.client()
    keys = keys_on_every_shard(fresh, per_shard=4)
    random.Random(7).shuffle(keys)
    for c in (r, ref):
        assert c.mset({k: f"v{i}" for i, k in enumerate(keys[:8])}) is True
        c.set(keys[9], "solo")
    probe = [*keys, "nope", keys[0], keys[0]]
    assert r.mget(probe) == ref.mget(probe)
    assert r.exists(*probe) == ref.exists(*probe)
    assert r.touch(*probe) == ref.touch(*probe)
    assert r.execute_command("DBSIZE") == ref.dbsize()
    assert r.delete(*keys[:5], "nope") == ref.delete(*keys[:5], "nope")
    assert r.unlink(*keys[5:], keys[0]) == ref.unlink(*keys[5:], keys[0])
    assert r.mget(probe) == ref.mget(probe)
    assert r.dbsize() == ref.dbsize() == 0
    # the parts really went to every shard
    r.mset({k: "x" for k in keys})
    assert all(fresh.shard_client(i).dbsize() == 4 for i in range(3))


def test_mset_odd_arguments_is_arity_error(fresh) -> None:
    r = fresh.client()
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'mset'"):
        r.execute_command("MSET", "a", "1", "b")


def test_fanout_error_part_gives_error(fresh) -> None:
    r = fresh.client()
    keys = keys_on_every_shard(fresh, per_shard=1)
    r.rpush(keys[1], "list")  # DEL of a list is fine; MGET of a list is nil
    assert r.mget(keys) == [None, None, None]


# ---------------------------------------------------------------- keyless


def test_keyless_commands(fresh) -> None:
    r = fresh.client()
    assert r.ping() is True
    assert r.echo("hi") == b"hi"
    assert raw_exchange(fresh.port, b"PING msg\r\nPING\r\n") == b"$3\r\nmsg\r\n+PONG\r\n"
    secs, usecs = r.time()
    assert abs(secs - time.time()) < 5 and 0 <= usecs < 1_000_000
    assert r.execute_command("SELECT", 0) is True
    with pytest.raises(redis.ResponseError, match="only database 0"):
        r.execute_command("SELECT", 1)
    keys = keys_on_every_shard(fresh, per_shard=2)
    for k in keys:
        r.set(k, 1)
    assert r.dbsize() == len(keys)
    assert sorted(r.keys("*")) == sorted(k.encode() for k in keys)
    assert r.randomkey() in {k.encode() for k in keys}
    info = r.info()
    assert info["db0"]["keys"] == len(keys)
    assert "router_version" in info and info["shards"] == 3
    assert r.flushall() is True
    assert r.dbsize() == 0 and r.randomkey() is None
    assert r.command_count() > 200
    assert r.client_setname("app1") is True
    assert r.client_getname() == "app1"
    assert isinstance(r.client_id(), int)
    assert "name=app1" in r.execute_command("CLIENT", "INFO").decode()
    assert r.execute_command("CLIENT", "SETINFO", "LIB-NAME", "x") == b"OK"
    hello = r.execute_command("HELLO")
    assert b"proto" in hello
    out = raw_exchange(fresh.port, b"HELLO 4\r\nHELLO 2\r\n")
    assert out.startswith(b"-NOPROTO unsupported protocol version\r\n*14\r\n")  # as Redis


def test_scan_walks_every_shard_exactly(fresh) -> None:
    r = fresh.client()
    keys = {f"scan:{i}" for i in range(2000)}
    with r.pipeline(transaction=False) as p:
        for k in keys:
            p.set(k, 1)
        for i in range(50):
            p.rpush(f"scanlist:{i}", 1)
        p.execute()
    seen: list[bytes] = []
    cursor = 0
    calls = 0
    while True:
        cursor, batch = r.scan(cursor, match="scan:*", count=100)
        seen += batch
        calls += 1
        if cursor == 0:
            break
    assert calls > 3
    assert {k.decode() for k in seen} == keys
    # TYPE is honoured
    lists = {k.decode() for k in r.scan_iter(_type="list", count=50)}
    assert lists == {f"scanlist:{i}" for i in range(50)}
    with pytest.raises(redis.ResponseError, match="invalid cursor"):
        r.execute_command("SCAN", "notanumber")


def test_rejected_and_unsupported_commands(fresh) -> None:
    r = fresh.client()
    rejected = [
        ("SHUTDOWN",),
        ("DEBUG", "SLEEP", "0"),
        ("CONFIG", "SET", "maxmemory", "1"),
        ("REPLICAOF", "NO", "ONE"),
        ("CLUSTER", "FAILOVER"),
        ("MONITOR",),
        ("SWAPDB", "0", "1"),
    ]
    for cmd in rejected:
        with pytest.raises(redis.ResponseError, match="not allowed through the router"):
            r.execute_command(*cmd)
    for cmd in (("SCRIPT", "DEBUG", "NO"),):  # CLIENT TRACKING works since issue 14
        with pytest.raises(redis.ResponseError, match="is not supported by the router"):
            r.execute_command(*cmd)
    with pytest.raises(redis.ResponseError, match="unknown command 'NOSUCH'"):
        r.execute_command("NOSUCH", "a")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'get'"):
        r.execute_command("GET")
    with pytest.raises(redis.ResponseError, match="unknown subcommand 'nope'"):
        r.execute_command("CONFIG", "nope")
    # all of that left the connection and the shards fine
    assert r.set("after", 1) and r.get("after") == b"1"
    assert all(fresh.shard_client(i).ping() for i in range(3))


# ---------------------------------------------------------------- pipelining


def test_pipeline_order_across_shards(fresh) -> None:
    r = fresh.client()
    keys = [f"p{i}" for i in range(500)]
    with r.pipeline(transaction=False) as p:
        for i, k in enumerate(keys):
            p.set(k, i)
            p.get(k)
            p.incr(k)
            if i % 50 == 0:
                p.mget(keys[: i + 1])
        out = p.execute()
    j = 0
    for i, _k in enumerate(keys):
        assert out[j : j + 3] == [True, str(i).encode(), i + 1]
        j += 3
        if i % 50 == 0:
            assert out[j] == [str(n + 1).encode() for n in range(i + 1)]
            j += 1


def test_client_list_names_each_clients_last_command(fresh) -> None:
    """CLIENT LIST's cmd= follows the fast paths (single-key and fan-out) too."""
    a, b = fresh.client(), fresh.client()
    a.client_setname("watched")

    def last_cmd() -> str:
        rows = [r for r in b.client_list() if r["name"] == "watched"]
        assert len(rows) == 1, rows
        return rows[0]["cmd"]

    a.get("k1")
    assert last_cmd() == "get"
    a.mget("k1", "k2", "k3", "k4", "k5", "k6")
    assert last_cmd() == "mget"
    a.set("k1", "v")
    assert last_cmd() == "set"
    a.delete("k1", "k2", "k3", "k4")
    assert last_cmd() == "del"
    a.ping()
    assert last_cmd() == "ping"


def test_fifty_clients_thousand_pipelined_mixed_commands(fresh) -> None:
    errors: list[str] = []

    def worker(n: int) -> None:
        try:
            rnd = random.Random(n)
            c = fresh.client()
            with c.pipeline(transaction=False) as p:
                expect: list[object] = []
                counter = 0
                for i in range(1000):
                    k = f"c{n}:{rnd.randrange(40)}"
                    op = rnd.randrange(5)
                    if op == 0:
                        p.set(k, f"{n}:{i}")
                        expect.append(("set", k, f"{n}:{i}"))
                    elif op == 1:
                        p.echo(f"e{i}")
                        expect.append(("echo", f"e{i}".encode()))
                    elif op == 2:
                        p.incr(f"c{n}:ctr")
                        counter += 1
                        expect.append(("ctr", counter))
                    elif op == 3:
                        ks = [f"c{n}:{rnd.randrange(40)}" for _ in range(3)]
                        p.mget(ks)
                        expect.append(("mget", ks))
                    else:
                        p.get(k)
                        expect.append(("get", k))
                got = p.execute(raise_on_error=False)
            # replay the model to check every reply against its request
            state: dict[str, bytes] = {}
            for e, g in zip(expect, got, strict=True):
                kind = e[0]
                if kind == "set":
                    assert g is True
                    state[e[1]] = e[2].encode()
                elif kind == "echo" or kind == "ctr":
                    assert g == e[1], (e, g)
                elif kind == "mget":
                    assert g == [state.get(k) for k in e[1]], (e, g)
                else:
                    assert g == state.get(e[1]), (e, g)
        except Exception as exc:  # collected and asserted below
            errors.append(f"client {n}: {exc!r}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]


# ---------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"*2\r\n$3\r\nGET\r\nfoo\r\n", b"-ERR Protocol error: expected '$', got 'f'"),
        (b"*x\r\n", b"-ERR Protocol error: invalid multibulk length"),
        (b"*1\r\n$abc\r\n", b"-ERR Protocol error: invalid bulk length"),
        (b'SET "unterminated\r\n', b"-ERR Protocol error: unbalanced quotes in request"),
    ],
)
def test_malformed_input_closes_only_that_client(cluster, data: bytes, error: bytes) -> None:
    other = cluster.client()
    assert other.ping()
    out = raw_exchange(cluster.port, data, expect_close=True)
    assert out.startswith(error), out
    assert other.ping() and other.set("still", "ok")


def test_malformed_after_good_requests_answers_them_first(cluster) -> None:
    out = raw_exchange(cluster.port, b"PING\r\n*1\r\n$4\r\nPING\r\n*1\r\nX\r\n", expect_close=True)
    assert out.startswith(b"+PONG\r\n+PONG\r\n-ERR Protocol error: expected '$'")


def test_protocol_errors_match_real_redis(cluster, redis_plain) -> None:
    for data in (b"*x\r\n", b"*1\r\nfoo\r\n", b"*1\r\n$-5\r\n", b'GET "a\r\n'):
        ours = raw_exchange(cluster.port, data, expect_close=True)
        theirs = raw_exchange(redis_plain.port, data, expect_close=True)
        assert ours == theirs, (data, ours, theirs)


def test_inline_commands_and_redis_cli(cluster) -> None:
    out = raw_exchange(cluster.port, b"SET inl 'a b'\r\nGET inl\r\nQUIT\r\n", expect_close=True)
    assert out == b"+OK\r\n$3\r\na b\r\n+OK\r\n"
    cli = ["redis-cli", "-p", str(cluster.port)]
    assert (
        subprocess.run([*cli, "SET", "cli", "v"], capture_output=True, text=True).stdout == "OK\n"
    )
    assert subprocess.run([*cli, "GET", "cli"], capture_output=True, text=True).stdout == "v\n"
    res = subprocess.run([*cli, "MGET", "cli", "zz", "cli"], capture_output=True, text=True)
    assert res.stdout == "v\n\nv\n"
    res = subprocess.run(
        cli, input="SET x 1\nINCR x\nDEBUG SLEEP 0\n", capture_output=True, text=True
    )
    lines = [line for line in res.stdout.splitlines() if line]
    assert lines == ["OK", "2", "ERR command not allowed through the router"]


def test_client_disconnect_mid_pipeline_leaks_nothing(cluster) -> None:
    r = cluster.client()
    info = r.info()
    before, accepted = info["connected_clients"], info["total_connections_received"]
    payload = b"".join(b"*2\r\n$3\r\nGET\r\n$%d\r\n%b\r\n" % (len(k), k) for k in
                       (f"dc{i}".encode() for i in range(5000)))  # fmt: skip
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", cluster.port))
        s.sendall(payload[: len(payload) // 2])
        s.close()
    # done once the router has accepted all 20 (a check before that could pass too early,
    # and did) and every one of them is gone again; the deadline is generous for a loaded
    # machine (a leak never ends, whatever the deadline)

    def settled() -> bool:
        now = r.info()
        return (
            now["total_connections_received"] >= accepted + 20
            and now["connected_clients"] == before
        )

    deadline = time.time() + 30
    while not settled() and time.time() < deadline:
        time.sleep(0.05)
    now = r.info()
    assert now["total_connections_received"] >= accepted + 20, now
    assert now["connected_clients"] == before
    assert r.set("after-dc", 1) and r.get("after-dc") == b"1"
