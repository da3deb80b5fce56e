"""Other clients and tools: valkey-glide's default standalone client, valkey-py,
python-redis-lock (with the ``{name}`` hash-tag recipe) and ``redis-cli --stat``."""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import subprocess
import time

import pytest

from .conftest import Target

KEYS = [f"k:{i}" for i in range(12)]


async def test_valkey_glide_standalone_client(target: Target) -> None:
    pytest.importorskip("glide")
    from glide import GlideClient, GlideClientConfiguration, NodeAddress

    config = GlideClientConfiguration([NodeAddress("127.0.0.1", target.port)], request_timeout=3000)
    client = await GlideClient.create(config)
    try:
        assert await client.set("glide:a", "1") == "OK"
        assert await client.get("glide:a") == b"1"
        assert await client.mset({k: f"v{i}" for i, k in enumerate(KEYS)}) == "OK"
        assert target.shards_holding(KEYS) == len(target.shard_ports)
        assert await client.mget(KEYS) == [f"v{i}".encode() for i in range(12)]
        assert await client.delete(KEYS) == 12
    finally:
        await client.close()


def test_valkey_py_client(target: Target) -> None:
    valkey = pytest.importorskip("valkey")
    v = valkey.Valkey(port=target.port, socket_timeout=5)
    v.mset({k: i for i, k in enumerate(KEYS)})
    assert v.mget(KEYS) == [str(i).encode() for i in range(12)]
    pipe = v.pipeline(transaction=False)
    for k in KEYS:
        pipe.incr(k)
    assert pipe.execute() == list(range(1, 13))
    assert v.delete(*KEYS) == 12


def test_python_redis_lock_with_hash_tag(target: Target) -> None:
    redis_lock = pytest.importorskip("redis_lock")
    conn = target.client()
    for name in ("{orders}", "{invoice:7}", "{a}"):  # lock:{x} and lock-signal:{x}: one slot
        lock = redis_lock.Lock(conn, name, expire=30)
        assert lock.acquire(blocking=False) is True
        other = redis_lock.Lock(conn, name, expire=30)
        assert other.acquire(blocking=False) is False
        assert 25 <= conn.ttl(f"lock:{name}") <= 30
        lock.extend(60)
        assert 55 <= conn.ttl(f"lock:{name}") <= 60
        lock.release()
        assert other.acquire(blocking=False) is True
        other.release()
    assert target.all_keys() == set() or all(
        k.startswith(b"lock-signal:") for k in target.all_keys()
    )


def test_redis_cli_stat(target: Target) -> None:
    cli = shutil.which("redis-cli")
    assert cli, "redis-cli is needed"
    c = target.client()
    c.mset({k: "x" * 100 for k in KEYS})
    # a terminal for its stdout: redis-cli --stat buffers everything on a pipe
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [cli, "-p", str(target.port), "--stat", "-i", "0.2"],
        stdout=follower,
        stderr=follower,
        stdin=subprocess.DEVNULL,
    )
    os.close(follower)
    out = b""
    deadline = time.monotonic() + 10
    while out.count(b"\n") < 4 and time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                out += os.read(leader, 65536)
            except OSError:
                break
    proc.terminate()
    proc.wait(timeout=5)
    os.close(leader)
    text = out.decode(errors="replace")
    assert "-9223372036854775808" not in text, text
    rows = [line.split() for line in text.splitlines() if re.match(r"^\d+\s", line)]
    assert rows, text
    keys, mem, clients, blocked, requests = rows[0][:5]
    assert int(keys) == len(KEYS)
    assert re.fullmatch(r"[\d.]+[BKMG]", mem), mem
    assert int(clients) >= 2  # redis-cli and our client
    assert int(blocked) == 0
    assert int(requests) > 0
