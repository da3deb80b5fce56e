"""The sentinels' background mover on real redis-servers, sentinels and a router.

Two shards (a master and a replica each), three sentinels, one router (its epoch is
what the mover waits for). The source shard ``a`` holds keys of every type, with and
without TTLs, some of them above ``sentinel.migration.big_key_bytes`` (moved in chunks
under their lock), in the slots of a migration a -> b POSTed to the sentinels as a
topology epoch; keys of slots that do not move stay. After the move: every key is on
the target with its value and TTL, none is on the source, no lock or temp key is left.
The same with a kill -9 of the mover sentinel (another resumes) and of the source
master (the mover resumes on the promoted replica). BUSYKEY: a key on both sides
(the target's newer) keeps the target's value and leaves the source.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
import time
import urllib.request
from collections.abc import Iterator

import pytest
import redis
import yaml
from test_sentinel_harness import SECRET, SentinelCluster, scrape, sentinel_cluster

from slotwarden.cluster.slots import key_hash_slot
from slotwarden.procs import RouterProc, wait_for_port

MOVING = (0, 999)  # slots a -> b
BIG = 10000  # big_key_bytes in these tests


def tag_in(lo: int, hi: int, start: int = 0) -> Iterator[str]:
    """Hash tags whose slot is in lo..hi."""
    i = start
    while True:
        if lo <= key_hash_slot(f"t{i}".encode()) <= hi:
            yield f"t{i}"
        i += 1


def migration_topology(sc: SentinelCluster, epoch: int) -> dict:
    topo = sc.topology("s1")
    a, b = topo["shards"]
    lo, hi = MOVING
    a["slots"] = f"{hi + 1}-8191"
    b["slots"] = f"{lo}-{hi},8192-16383"
    return {
        "epoch": epoch,
        "shards": [a, b],
        "migrations": [{"slots": f"{lo}-{hi}", "from": "a", "to": "b"}],
    }


@pytest.fixture
def moving(request) -> Iterator[SentinelCluster]:
    kw = getattr(request, "param", {})
    with sentinel_cluster(shards=2, replicas=1, **kw.get("cluster", {})) as sc:
        with open(sc.config) as f:
            data = yaml.safe_load(f)
        data.update(kw.get("top", {}))
        data["sentinel"]["migration"] = {
            "big_key_bytes": BIG,
            "chunk_items": 50,
            "batch_keys": 20,
            **kw.get("migration", {}),
        }
        with open(sc.config, "w") as f:
            yaml.safe_dump(data, f, sort_keys=False)
        sc.env.update(kw.get("env", {}))
        sc.start_all()
        sc.wait_in_sync(0)
        sc.wait_in_sync(1)
        router_port = int(data["router"]["listen"].rsplit(":", 1)[1])
        router = RouterProc(
            sc.config,
            router_port,
            str(sc.root / "router.log"),
            env={"SLOTWARDEN_SECRET": SECRET, **kw.get("env", {})},
        )
        router.start()
        try:
            host, port = sc.router_admin.rsplit(":", 1)
            wait_for_port(host, int(port))
            sc.router = router  # type: ignore[attr-defined]
            yield sc
        finally:
            router.stop()


def client(node) -> redis.Redis:
    return redis.Redis(port=node.port, socket_timeout=10)


def fill(r: redis.Redis, n_small: int) -> dict[str, tuple]:
    """Keys of every type in the moving slots (and a few outside), with and without TTLs;
    returns key -> (type, value, ttl_ms or None) for the moving ones."""
    tags = tag_in(*MOVING)
    want: dict[str, tuple] = {}
    pipe = r.pipeline(transaction=False)
    for i in range(n_small):
        k = f"{{{next(tags)}}}:s{i}"
        pipe.set(k, f"v{i}")
        if i % 3 == 0:
            pipe.pexpire(k, 600_000)
        want[k] = ("string", f"v{i}".encode(), 600_000 if i % 3 == 0 else None)
    pipe.execute()
    t = next(tags)
    small = {
        f"{{{t}}}:h": ("hash", {b"f1": b"1", b"f2": b"2"}),
        f"{{{t}}}:l": ("list", [b"x", b"y", b"x"]),
        f"{{{t}}}:set": ("set", {b"m1", b"m2"}),
        f"{{{t}}}:z": ("zset", [(b"a", 1.5), (b"b", 2.0)]),
    }
    r.hset(f"{{{t}}}:h", mapping={"f1": "1", "f2": "2"})
    r.rpush(f"{{{t}}}:l", "x", "y", "x")
    r.sadd(f"{{{t}}}:set", "m1", "m2")
    r.zadd(f"{{{t}}}:z", {"a": 1.5, "b": 2.0})
    r.xadd(f"{{{t}}}:x", {"f": "v"}, id="5-1")
    small[f"{{{t}}}:x"] = ("stream", [(b"5-1", {b"f": b"v"})])
    r.pexpire(f"{{{t}}}:h", 500_000)
    for k, (kind, value) in small.items():
        want[k] = (kind, value, 500_000 if k.endswith(":h") else None)
    # big keys: above BIG bytes each, moved in chunks
    t = next(tags)
    fields = {f"field{i}".encode(): (b"v" * 60 + str(i).encode()) for i in range(400)}
    r.hset(f"{{{t}}}:bighash", mapping=fields)
    r.pexpire(f"{{{t}}}:bighash", 900_000)
    want[f"{{{t}}}:bighash"] = ("hash", fields, 900_000)
    items = [b"i" * 50 + str(i).encode() for i in range(400)]
    r.rpush(f"{{{t}}}:biglist", *items)
    want[f"{{{t}}}:biglist"] = ("list", items, None)
    r.sadd(f"{{{t}}}:bigset", *items)
    want[f"{{{t}}}:bigset"] = ("set", set(items), None)
    scored = [(m, float(i) / 3) for i, m in enumerate(items)]
    r.zadd(f"{{{t}}}:bigzset", dict(scored))
    want[f"{{{t}}}:bigzset"] = ("zset", scored, None)
    entries = []
    for i in range(300):
        eid = f"{i + 1}-0".encode()
        r.xadd(f"{{{t}}}:bigstream", {"n": str(i), "pad": "p" * 40}, id=eid)
        entries.append((eid, {b"n": str(i).encode(), b"pad": b"p" * 40}))
    r.xdel(f"{{{t}}}:bigstream", "300-0")
    entries.pop()
    want[f"{{{t}}}:bigstream"] = ("stream", entries, None)
    for i in range(300):
        r.xadd(f"{{{t}}}:grouped", {"n": str(i), "pad": "p" * 40}, id=f"{i + 1}-0")
    r.xgroup_create(f"{{{t}}}:grouped", "g", id="0")
    r.xreadgroup("g", "c1", {f"{{{t}}}:grouped": ">"}, count=5)
    want[f"{{{t}}}:grouped"] = ("stream-groups", None, None)
    blob = b"s" * (3 * BIG + 7)
    r.set(f"{{{t}}}:bigstring", blob, px=800_000)
    want[f"{{{t}}}:bigstring"] = ("string", blob, 800_000)
    # keys of slots that do not move stay on a
    stay = tag_in(MOVING[1] + 1, 8191)
    for i in range(20):
        r.set(f"{{{next(stay)}}}:stay{i}", "here")
    return want


def read(r: redis.Redis, key: str, kind: str) -> object:
    if kind == "string":
        return r.get(key)
    if kind == "hash":
        return r.hgetall(key)
    if kind == "list":
        return r.lrange(key, 0, -1)
    if kind == "set":
        return r.smembers(key)
    if kind == "zset":
        return r.zrange(key, 0, -1, withscores=True)
    if kind == "stream":
        return r.xrange(key)
    info = r.xinfo_stream(key, full=True)
    return (info["length"], [(g["name"], g["pel-count"]) for g in info["groups"]])


def moving_keys(r: redis.Redis) -> list[bytes]:
    return [
        k
        for k in r.scan_iter(count=1000)
        if MOVING[0] <= key_hash_slot(k) <= MOVING[1] and not k.startswith(b"__slotwarden:")
    ]


def own_keys(r: redis.Redis) -> list[bytes]:
    return list(r.scan_iter(match="__slotwarden:*", count=1000))


def migration_status(sc: SentinelCluster, sid: str) -> dict:
    [entry] = sc.status(sid)["migrations"]
    return entry


def start_migration(sc: SentinelCluster) -> int:
    epoch = sc.topology("s1")["epoch"] + 1
    status, data = sc.http("s1", "/topology", migration_topology(sc, epoch))
    assert status == 200 and data["applied"], data
    return epoch


def all_on_target(
    sc: SentinelCluster, src: redis.Redis, dst: redis.Redis, want: dict
) -> dict[str, dict]:
    """Wait until every key is on the target and none on the source; the last
    ``/status`` migration entry each sentinel showed meanwhile."""
    seen: dict[str, dict] = {}

    def done() -> bool:
        for sid in sc.procs:
            with contextlib.suppress(OSError, AssertionError, ValueError):
                entries = sc.status(sid)["migrations"]
                if entries:
                    seen[sid] = entries[0]
        return not moving_keys(src) and dst.exists(*want) == len(want)

    sc.wait_for(done, 90, "every key of the moving slots on the target")
    return seen


def check_moved(src: redis.Redis, dst: redis.Redis, want: dict, before: dict) -> None:
    for key, (kind, value, ttl) in want.items():
        if kind == "stream-groups":
            assert read(dst, key, kind) == before[key], key
        elif kind == "zset":
            assert read(dst, key, kind) == sorted(value, key=lambda p: (p[1], p[0])), key
        else:
            assert read(dst, key, kind) == value, key
        got_ttl = dst.pttl(key)
        if ttl is None:
            assert got_ttl == -1, (key, got_ttl)
        else:
            assert 0 < got_ttl <= ttl, (key, got_ttl, ttl)
            assert got_ttl > ttl - 120_000, (key, got_ttl, ttl)  # carried, not reset
    assert moving_keys(src) == []
    assert own_keys(src) == [] and own_keys(dst) == []  # no lock, no temp key left
    assert len(list(src.scan_iter(match="*:stay*"))) == 20  # the keys of slots that stay


def test_a_migration_moves_every_key_with_its_value_and_ttl(moving):
    sc = moving
    src, dst = client(sc.masters[0]), client(sc.masters[1])
    want = fill(src, 500)
    before = {k: read(src, k, "stream-groups") for k, v in want.items() if v[0] == "stream-groups"}
    # BUSYKEY: on both sides, the target's copy is the newer one
    [t] = [next(tag_in(*MOVING, start=50_000))]
    busy = f"{{{t}}}:busy"
    src.set(busy, "old")
    dst.set(busy, "new")
    epoch = start_migration(sc)
    seen = all_on_target(sc, src, dst, want)
    finished(sc)
    check_moved(src, dst, want, before)
    assert dst.get(busy) == b"new" and src.exists(busy) == 0
    # the mover (s1: the lowest id) reported its progress; the others named it
    entry = seen["s1"]
    assert entry["mover"] == "s1" and entry["since_epoch"] >= epoch
    assert entry["state"] in ("waiting-routers", "counting", "moving", "finishing")
    assert entry["keys_total"] is None or entry["keys_total"] >= len(want)
    assert seen["s2"]["mover"] == "s1"
    metrics = scrape(sc, "s1")
    labels = frozenset({"source": "a", "target": "b"}.items())
    assert metrics[("slotwarden_sentinel_migration_keys_moved_total", labels)] >= len(want)
    assert metrics[("slotwarden_sentinel_migration_bytes_moved_total", labels)] > 7 * BIG
    assert metrics[("slotwarden_sentinel_migrate_errors_total", labels)] == 0
    assert metrics[("slotwarden_sentinel_slots_migrating", frozenset())] == 0
    assert metrics[("slotwarden_sentinel_migration_duration_seconds", frozenset())] > 0
    kinds = events(sc, "s1")
    assert "migration-started" in kinds and "migration-moved" in kinds


def finished(sc: SentinelCluster) -> None:
    """The migration ended: every sentinel serves a topology without it."""
    sc.wait_for(
        lambda: all("migrations" not in sc.topology(sid) for sid in sc.procs),
        30,
        "the topology without the migration",
    )
    for sid in sc.procs:
        assert sc.status(sid)["migrations"] == []


def events(sc: SentinelCluster, sid: str) -> list[str]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{sc.ports[sid]}/events",
        headers={"Authorization": f"Bearer {SECRET}"},
    )
    kinds = []
    with urllib.request.urlopen(req, timeout=5) as resp:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            line = resp.readline()
            if not line:
                break
            kinds.append(json.loads(line)["kind"])
            if "migration-moved" in kinds and "migration-started" in kinds:
                break
    return kinds


def test_routers_registered_are_waited_for(moving):
    """Nothing moves until every router reports the migration's epoch: a registered
    router that does not answer holds the migration in waiting-routers."""
    sc = moving
    src, dst = client(sc.masters[0]), client(sc.masters[1])
    want = fill(src, 50)
    sc.http("s1", "/topology?after=-1&router=127.0.0.1:1")  # registered, never answers
    start_migration(sc)
    sc.wait_for(
        lambda: (
            migration_status(sc, "s1")["state"] == "waiting-routers"
            and "127.0.0.1:1 at epoch" in " ".join(migration_status(sc, "s1")["waiting_for"])
        ),
        20,
        "the mover waits for the silent router",
    )
    time.sleep(1.0)
    assert dst.exists(*want) == 0 and len(moving_keys(src)) == len(want)
    # the real router (the file's admin address) is not what it waits for
    [waiting] = migration_status(sc, "s1")["waiting_for"]
    assert waiting.startswith("127.0.0.1:1 at epoch")


@pytest.mark.parametrize("moving", [{"migration": {"keys_per_second": 2000}}], indirect=True)
def test_kill_9_of_the_mover_another_sentinel_finishes(moving):
    sc = moving
    src, dst = client(sc.masters[0]), client(sc.masters[1])
    want = fill(src, 6000)
    groups = {k: read(src, k, "stream-groups") for k, v in want.items() if v[0] == "stream-groups"}
    start_migration(sc)
    sc.wait_for(lambda: migration_status(sc, "s1")["keys_moved"] > 500, 60, "s1 moving")
    sc.stop("s1", signal.SIGKILL)
    assert moving_keys(src), "s1 had moved everything before its kill: nothing was tested"
    all_on_target(sc, src, dst, want)
    finished(sc)
    check_moved(src, dst, want, groups)
    assert scrape(sc, "s2")[("slotwarden_sentinel_migration_duration_seconds", frozenset())] > 0


@pytest.mark.parametrize("moving", [{"migration": {"keys_per_second": 2000}}], indirect=True)
def test_source_master_failover_mid_move_every_key_ends_on_the_target(moving):
    sc = moving
    src, dst = client(sc.masters[0]), client(sc.masters[1])
    want = fill(src, 6000)
    groups = {k: read(src, k, "stream-groups") for k, v in want.items() if v[0] == "stream-groups"}
    start_migration(sc)
    sc.wait_for(lambda: migration_status(sc, "s1")["keys_moved"] > 500, 60, "moving")
    sc.masters[0].kill(signal.SIGKILL)
    assert moving_keys(client(sc.replicas[0][0])), "all moved before the kill: nothing tested"
    promoted = sc.replicas[0][0]
    sc.wait_for(
        lambda: (
            sc.topology("s1")["shards"][0]["master"] == promoted.addr
            and sc.topology("s1").get("migrations")
        ),
        30,
        "the replica promoted, the migration kept",
    )
    new_src = client(promoted)
    all_on_target(sc, new_src, dst, want)
    finished(sc)
    check_moved(new_src, dst, want, groups)


def test_get_routers_lists_registrations_with_their_epochs(moving):
    sc = moving
    sc.wait_for(
        lambda: sc.http("s1", "/routers")[1]["routers"].get(sc.router_admin) == 0,
        10,
        "the router registered at epoch 0",
    )
    sc.http("s2", "/topology?after=-1&router=127.0.0.1:1")
    status, data = sc.http("s2", "/routers")
    assert status == 200 and data["routers"]["127.0.0.1:1"] == -1  # ?after=-1: "has none"
    assert sc.http("s2", "/routers", auth=None)[0] == 401


ROUTER_PW = "mover-pw-" + secrets.token_urlsafe(12)
ACL_NODES = (
    *("--user", "slotrouter", "on", f">{ROUTER_PW}", "~*", "&*", "+@all"),
    # the default user (the test's own clients, replication) may not RESTORE: a MIGRATE
    # that did not carry AUTH2 as the router's user would be refused by the target
    *("--user", "default", "on", "nopass", "~*", "&*", "+@all", "-restore", "-restore-asking"),
)


@pytest.mark.parametrize(
    "moving",
    [
        {
            "cluster": {"node_args": ACL_NODES},
            "top": {"backend": {"username": "slotrouter", "password_env": "T_ROUTER_PW"}},
            "env": {"T_ROUTER_PW": ROUTER_PW},
        }
    ],
    indirect=True,
)
def test_migrate_authenticates_as_the_routers_user_and_never_logs_its_password(moving):
    sc = moving
    src, dst = client(sc.masters[0]), client(sc.masters[1])
    with pytest.raises(redis.ResponseError, match="no permissions"):
        dst.execute_command("RESTORE", "x", 0, src.dump("nothing") or b"x")
    want = fill(src, 200)
    groups = {k: read(src, k, "stream-groups") for k, v in want.items() if v[0] == "stream-groups"}
    start_migration(sc)
    all_on_target(sc, src, dst, want)
    finished(sc)
    check_moved(src, dst, want, groups)
    labels = frozenset({"source": "a", "target": "b"}.items())
    assert scrape(sc, "s1")[("slotwarden_sentinel_migrate_errors_total", labels)] == 0
    assert ROUTER_PW not in sc.logs_text()
