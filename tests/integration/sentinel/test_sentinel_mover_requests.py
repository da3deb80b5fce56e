"""A big key a client waits for is moved next, not when the mover's SCAN pass gets there.

Two shards (a master and a replica each), three sentinels, one router; shard ``a``
holds many big keys (above ``big_key_bytes``) in the slots of a migration a -> b, and
``keys_per_second`` is 1: the pass would take minutes to reach the last of them. A
client touching the LAST big key in SCAN order through the router is answered (no
``-TRYAGAIN``) within ``router.command_timeout_ms`` (1500 ms), with the right value,
the key on the target only: the router added it to the migration's request set on the
source and the mover's second loop moved it at once (`sentinel.act.prio`). Keys put in
the set by hand: a small key of the migration is moved too (MIGRATE), a key of a slot
that does not move stays on the source. A big key whose copy the pass is in the middle
of (its lock held, one chunk per second) is copied at full speed once a client asks for it
(`MigrationMover.hurry`). The target's replica hung (SIGSTOP: every WAIT for it
times out, 1 s): after the first key a client waits for, the mover asks the target's
WAIT for the replicas that answered, so a client asking for several big keys at once
is not made to wait one WAIT timeout per key (`MigrationMover.wait_counts`).
"""

from __future__ import annotations

import contextlib
import json
import signal
import urllib.request
from collections.abc import Iterator

import pytest
import redis
import yaml
from test_sentinel_harness import SECRET, SentinelCluster, sentinel_cluster
from test_sentinel_mover import MOVING, migration_status, moving_keys, start_migration, tag_in

from slotwarden.cluster.ownkeys import wanted_key
from slotwarden.cluster.slots import key_hash_slot
from slotwarden.cluster.topology import Migration
from slotwarden.procs import RouterProc, wait_for_port

BIG = 8192  # big_key_bytes
N_BIG = 60  # big hashes (~20 KB each) and as many big strings (80 KB)


@pytest.fixture
def slow_mover(request) -> Iterator[SentinelCluster]:
    """``request.param``: router.command_timeout_ms (default 1500)."""
    with sentinel_cluster(shards=2, replicas=1) as sc:
        with open(sc.config) as f:
            data = yaml.safe_load(f)
        data["router"]["command_timeout_ms"] = getattr(request, "param", 1500)
        data["sentinel"]["migration"] = {
            "big_key_bytes": BIG,
            "chunk_items": 20,  # 15 chunks per big hash: 15 s at 1 key/s
            "batch_keys": 1,  # the rate limit's burst
            "keys_per_second": 1,
        }
        with open(sc.config, "w") as f:
            yaml.safe_dump(data, f, sort_keys=False)
        sc.start_all()
        sc.wait_in_sync(0)
        sc.wait_in_sync(1)
        router_port = int(data["router"]["listen"].rsplit(":", 1)[1])
        router = RouterProc(
            sc.config,
            router_port,
            str(sc.root / "router.log"),
            env={"SLOTWARDEN_SECRET": SECRET},
        )
        router.start()
        try:
            host, port = sc.router_admin.rsplit(":", 1)
            wait_for_port(host, int(port))
            sc.router_port = router_port  # type: ignore[attr-defined]
            yield sc
        finally:
            router.stop()


def node(sc: SentinelCluster, shard: int) -> redis.Redis:
    return redis.Redis(port=sc.masters[shard].port, socket_timeout=10)


def router_epoch(sc: SentinelCluster) -> int:
    with urllib.request.urlopen(f"http://{sc.router_admin}/topology", timeout=5) as resp:
        return int(json.load(resp)["epoch"])


def fill_big(src: redis.Redis) -> tuple[dict[bytes, dict[bytes, bytes]], dict[bytes, bytes]]:
    """N_BIG big hashes and N_BIG big strings in the moving slots: key -> value of each."""
    tags = tag_in(*MOVING)
    hashes: dict[bytes, dict[bytes, bytes]] = {}
    strings: dict[bytes, bytes] = {}
    for i in range(N_BIG):
        fields = {f"f{j}".encode(): b"v" * 60 + str(j).encode() for j in range(300)}
        hkey = f"{{{next(tags)}}}:bighash{i}".encode()
        src.hset(hkey, mapping=fields)
        hashes[hkey] = fields
        skey = f"{{{next(tags)}}}:bigstring{i}".encode()
        strings[skey] = (b"%d:" % i).ljust(8, b".") * (10 * BIG // 8)  # 10 chunks to copy
        src.set(skey, strings[skey])
    for key in [*hashes, *strings]:
        assert src.memory_usage(key, samples=0) > 2 * BIG
    return hashes, strings


def last_in_scan_order(src: redis.Redis, suffix: bytes) -> bytes:
    keys = [
        k
        for k in src.scan_iter(count=1000)
        if MOVING[0] <= key_hash_slot(k) <= MOVING[1] and suffix in k
    ]
    return keys[-1]


def test_a_big_key_a_client_waits_for_is_moved_next(slow_mover):
    sc = slow_mover
    src, dst = node(sc, 0), node(sc, 1)
    hashes, strings = fill_big(src)
    last_hash = last_in_scan_order(src, b":bighash")
    last_string = last_in_scan_order(src, b":bigstring")
    epoch = start_migration(sc)
    sc.wait_for(lambda: router_epoch(sc) >= epoch, 20, "the router runs the migration's epoch")
    sc.wait_for(lambda: migration_status(sc, "s1")["state"] == "moving", 30, "the mover is moving")
    r = redis.Redis(port=sc.router_port, socket_timeout=10)  # type: ignore[attr-defined]
    # the pass (1 key/s) could not reach these within command_timeout_ms: asked for, moved
    assert r.hset(last_hash, "added", "1") == 1
    assert r.hgetall(last_hash) == {**hashes[last_hash], b"added": b"1"}
    assert r.get(last_string) == strings[last_string]
    for key in (last_hash, last_string):
        assert src.exists(key) == 0 and dst.exists(key) == 1, key
    assert src.exists(f"__slotwarden:lock:{last_hash.decode()}") == 0
    # the pass is far from done: the keys moved were the ones asked for, not its own
    assert len(moving_keys(src)) >= 2 * N_BIG - 20
    # keys in the set by hand: a small one of the migration moves (MIGRATE), one of a
    # slot that does not move stays where it is
    small = f"{{{next(tag_in(*MOVING, start=90_000))}}}:small".encode()
    stay = f"{{{next(tag_in(MOVING[1] + 1, 8191))}}}:stay".encode()
    src.set(small, "s")
    src.set(stay, "here")
    name = wanted_key(Migration.of([MOVING], "a", "b"))
    src.sadd(name, small, stay)
    sc.wait_for(lambda: dst.get(small) == b"s", 20, "the requested small key on the target")
    assert src.exists(small) == 0
    assert src.get(stay) == b"here" and dst.exists(stay) == 0
    assert len(moving_keys(src)) >= 2 * N_BIG - 20
    assert migration_status(sc, "s1")["errors"] == 0


def test_a_big_key_the_pass_is_copying_is_hurried_once_a_client_asks_for_it(slow_mover):
    """The pass holds the lock of a big string and copies it a chunk per second (10
    chunks): a client asking for it is answered within command_timeout_ms (1500 ms): the
    rest of the copy is no longer paced."""
    sc = slow_mover
    src, dst = node(sc, 0), node(sc, 1)
    _, strings = fill_big(src)
    epoch = start_migration(sc)
    sc.wait_for(lambda: router_epoch(sc) >= epoch, 20, "the router runs the migration's epoch")

    def locked_string() -> bytes | None:
        for lock in src.scan_iter(match="__slotwarden:lock:*", count=1000):
            key = lock[len(b"__slotwarden:lock:") :]
            if b":bigstring" not in key:
                continue
            copied = sum(dst.strlen(t) for t in dst.scan_iter(match=b"__slotwarden:tmp:*" + key))
            if copied <= 2 * BIG:  # most of its copy still to do
                return key
        return None

    key = sc.wait_for(locked_string, 60, "the pass copying a big string")
    assert isinstance(key, bytes)
    r = redis.Redis(port=sc.router_port, socket_timeout=10)  # type: ignore[attr-defined]
    assert r.get(key) == strings[key]
    assert src.exists(key) == 0 and dst.get(key) == strings[key]
    assert len(moving_keys(src)) >= 2 * N_BIG - 20
    assert migration_status(sc, "s1")["errors"] == 0


@pytest.mark.parametrize("slow_mover", [700], indirect=True)
def test_a_hung_target_replica_costs_waiting_clients_one_wait_timeout_not_one_each(
    slow_mover,
):
    """Target b's replica SIGSTOPped, command_timeout_ms 700: the first big key a client
    asks for costs the mover's fence its WAIT timeout (1 s: the client may get
    ``-TRYAGAIN``); from then on the mover WAITs on b for the replicas that answered, so
    each next big key asked for, one request at a time, is answered. Before: every
    request's key cost another 1 s WAIT: ``-TRYAGAIN … is being moved``."""
    sc = slow_mover
    src, dst = node(sc, 0), node(sc, 1)
    _, strings = fill_big(src)
    epoch = start_migration(sc)
    sc.wait_for(lambda: router_epoch(sc) >= epoch, 20, "the router runs the migration's epoch")
    sc.wait_for(lambda: migration_status(sc, "s1")["state"] == "moving", 30, "the mover is moving")
    replica = sc.replicas[1][0]
    replica.kill(signal.SIGSTOP)
    try:
        r = redis.Redis(port=sc.router_port, socket_timeout=10)  # type: ignore[attr-defined]
        first, *more = [k for k in strings if src.exists(k)][:5]
        with contextlib.suppress(redis.exceptions.TryAgainError):
            r.get(first)
        sc.wait_for(lambda: dst.exists(first) == 1, 10, "the first key on the target")
        for key in more:
            assert r.get(key) == strings[key], key
            assert src.exists(key) == 0 and dst.get(key) == strings[key], key
    finally:
        replica.kill(signal.SIGCONT)
