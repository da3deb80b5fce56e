"""Migrating slots through the router: a request's keys are moved source -> target first.

Two real shards behind a real router; a slot map with a migration a -> b of slots
0-999 is POSTed to the router's admin /topology (as the sentinels would publish
it). Keys written on ``a`` by hand before are then touched through the router:
each must end on ``b`` with its value and TTL, and none may stay on ``a``. Each
test uses keys of its own (the router remembers keys already moved).
"""

from __future__ import annotations

import itertools
import json
import signal
import threading
import time
import urllib.request
from types import SimpleNamespace

import pytest
import redis
from conftest import own_cluster
from redis.exceptions import TryAgainError

from slotwarden.cluster.slots import key_hash_slot

SECRET = "test-secret-migrating"
MIGRATING = range(0, 1000)  # slots moving a -> b
_COUNTER = itertools.count()


def http(cluster, method: str, path: str, body: object = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"http://127.0.0.1:{cluster.admin_port}{path}", data=data, method=method
    )
    req.add_header("Authorization", f"Bearer {SECRET}")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status, json.loads(resp.read())


def push_migration(cluster, slots: str = "0-999", source: str = "a", target: str = "b") -> None:
    """Publish (as a sentinel would) a map where ``slots`` move ``source`` -> ``target``."""
    _status, topo = http(cluster, "GET", "/topology")
    topo["epoch"] += 1
    topo["shards"][0]["slots"] = "1000-8191"
    topo["shards"][1]["slots"] = "0-999,8192-16383"
    topo["migrations"] = [{"slots": slots, "from": source, "to": target}]
    status, body = http(cluster, "POST", "/topology", topo)
    assert status == 200 and body["applied"] is True, body


def keys(n: int, migrating: bool = True) -> list[str]:
    """``n`` fresh key names in the migrating slots (or, ``migrating=False``, in slots
    shard ``a`` keeps)."""
    tag = next(_COUNTER)
    out = []
    for i in itertools.count():
        k = f"t{tag}:k{i}"
        slot = key_hash_slot(k.encode())
        if (slot in MIGRATING) == migrating and slot < 8192:
            out.append(k)
            if len(out) == n:
                return out
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def mig():
    with own_cluster(
        shards=2, extra_router={"command_timeout_ms": 800}, env={"SLOTWARDEN_SECRET": SECRET}
    ) as c:
        push_migration(c)
        yield c


def on(c, i: int) -> redis.Redis:
    return c.shard_client(i)


def test_commands_move_their_keys_with_values_and_ttl(mig) -> None:
    c = mig
    a, b, r = on(c, 0), on(c, 1), c.client()
    ks = keys(12)
    for i, k in enumerate(ks):
        a.set(k, f"v{i}", px=100_000 if i % 2 else None)
    a.set(ks[2], 41)
    h, lst = keys(2)
    a.hset(h, mapping={"f": "1", "g": "2"})
    a.rpush(lst, "x", "y")
    a.pexpire(lst, 50_000)
    assert r.get(ks[0]) == b"v0"
    r.set(ks[1], "new", keepttl=True)
    assert r.incr(ks[2]) == 42
    r.hset(h, "h", "3")
    r.lpush(lst, "w")
    r.expire(ks[3], 500)
    assert r.mget(ks[4], ks[5], "nosuchkey") == [b"v4", b"v5", None]
    r.mset({ks[6]: "m6", ks[7]: "m7"})
    assert r.delete(ks[8], ks[9]) == 2
    assert r.exists(ks[10]) == 1
    for k in [*ks[:11], h, lst]:
        assert a.exists(k) == 0, k  # nothing stays on the source
    assert b.get(ks[0]) == b"v0" and b.get(ks[2]) == b"42"
    assert b.get(ks[1]) == b"new" and 0 < b.pttl(ks[1]) <= 100_000  # TTL carried over
    assert b.hgetall(h) == {b"f": b"1", b"g": b"2", b"h": b"3"}
    assert b.lrange(lst, 0, -1) == [b"w", b"x", b"y"] and 0 < b.pttl(lst) <= 50_000
    assert 0 < b.ttl(ks[3]) <= 500
    assert b.get(ks[5]) == b"v5" and 0 < b.pttl(ks[5]) <= 100_000
    assert b.mget(ks[6], ks[7]) == [b"m6", b"m7"]
    assert b.exists(ks[8], ks[9]) == 0
    assert a.exists(ks[11]) == 1  # not touched: still on a (the mover's job)


def test_target_copy_wins_over_a_stale_source_copy(mig) -> None:
    c = mig
    a, b, r = on(c, 0), on(c, 1), c.client()
    (k,) = keys(1)
    a.set(k, "stale")
    b.set(k, "newer")
    assert r.get(k) == b"newer"
    assert a.exists(k) == 0  # BUSYKEY: the source's copy is deleted, the target's kept
    assert b.get(k) == b"newer"


def test_keys_of_slots_not_migrating_stay(mig) -> None:
    c = mig
    a, b, r = on(c, 0), on(c, 1), c.client()
    (k,) = keys(1, migrating=False)
    a.set(k, "here")
    assert r.get(k) == b"here"
    assert a.get(k) == b"here" and b.exists(k) == 0


def test_multi_watch_eval_blpop_move_first(mig) -> None:
    c = mig
    a, b, r = on(c, 0), on(c, 1), c.client()
    k1, k2, k3, k4, k5 = keys(5)
    for k in (k1, k2, k3, k4):
        a.set(k, "1")
    a.rpush(k5, "item")
    with r.pipeline(transaction=True) as p:  # MULTI: moved at queue time
        p.incr(k1)
        p.get(k2)
        assert p.execute() == [2, b"1"]
    with r.pipeline(transaction=True) as p:  # WATCH, then MULTI/EXEC on the target
        p.watch(k3)
        assert p.get(k3) == b"1"
        p.multi()
        p.set(k3, "2")
        assert p.execute() == [True]
    assert r.eval("return redis.call('INCRBY', KEYS[1], ARGV[1])", 1, k4, 5) == 6
    assert r.blpop([k5], timeout=1) == (k5.encode(), b"item")
    for k in (k1, k2, k3, k4, k5):
        assert a.exists(k) == 0, k
    assert b.get(k1) == b"2" and b.get(k3) == b"2" and b.get(k4) == b"6"
    assert b.get(k2) == b"1" and b.exists(k5) == 0


def test_blpop_waits_on_the_target(mig) -> None:
    c = mig
    r, r2, b = c.client(), c.client(), on(c, 1)
    (k,) = keys(1)
    got: list = []
    t = threading.Thread(target=lambda: got.append(r.blpop([k], timeout=5)))
    t.start()
    time.sleep(0.3)
    r2.rpush(k, "late")
    t.join(6)
    assert got == [(k.encode(), b"late")] and b.exists(k) == 0


def test_locked_key_waits_for_the_mover(mig) -> None:
    c = mig
    a, b, r = on(c, 0), on(c, 1), c.client()
    (k,) = keys(1)
    a.set(k, "big-enough")
    a.set(f"__slotwarden:lock:{k}", "mover", px=10_000)

    def mover() -> None:  # what the mover does: copy to the target, then DEL on the source
        time.sleep(0.3)
        b.set(k, a.get(k))
        a.delete(k, f"__slotwarden:lock:{k}")

    t = threading.Thread(target=mover)
    t.start()
    assert r.get(k) == b"big-enough"  # waited ~300 ms, then went to the target
    t.join()
    assert a.exists(k) == 0


def test_locked_key_past_the_deadline_is_tryagain(mig) -> None:
    c = mig
    a, b, r = on(c, 0), on(c, 1), c.client()
    (k,) = keys(1)
    a.set(k, "v")
    a.set(f"__slotwarden:lock:{k}", "mover", px=10_000)
    with pytest.raises(TryAgainError, match=f"key {k} is being moved to shard b, try again"):
        r.set(k, "lost?")
    assert a.get(k) == b"v" and b.exists(k) == 0  # the command was not sent
    assert r.ping()  # the client goes on
    a.delete(f"__slotwarden:lock:{k}")


def test_big_key_is_left_to_the_mover(mig) -> None:
    c = mig
    a, b, r = on(c, 0), on(c, 1), c.client()
    (k,) = keys(1)
    a.set(k, "x" * (1_200_000))  # above sentinel.migration.big_key_bytes (1 MiB)
    with pytest.raises(TryAgainError, match=r"key .* is being moved to shard b"):
        r.strlen(k)
    assert a.exists(k) == 1 and b.exists(k) == 0  # never one MIGRATE of a big key


def test_pipeline_keeps_order(mig) -> None:
    c = mig
    a, r = on(c, 0), c.client()
    moving = keys(20)
    staying = keys(20, migrating=False)
    for i, k in enumerate(moving):
        a.set(k, i)
    with r.pipeline(transaction=False) as p:
        for k, s in zip(moving, staying, strict=True):
            p.incr(k)
            p.set(s, "x")
            p.get(k)
            p.append(s, "y")
        out = p.execute()
    want = []
    for i in range(20):
        want += [i + 1, True, str(i + 1).encode(), 2]
    assert out == want


def test_keys_and_scan_hide_the_projects_keys(mig) -> None:
    c = mig
    a, r = on(c, 0), c.client()
    (k,) = keys(1, migrating=False)
    a.set(k, "1")
    a.set("__slotwarden:lock:something", "x")
    try:
        found = set(r.scan_iter(count=1000))
        assert k.encode() in found
        assert not any(x.startswith(b"__slotwarden:") for x in found)
        assert not any(x.startswith(b"__slotwarden:") for x in r.keys("*"))
        assert r.dbsize() >= 1
    finally:
        a.delete("__slotwarden:lock:something")


def test_info_and_metrics_count_moves(mig) -> None:
    c = mig
    a, r = on(c, 0), c.client()
    (k,) = keys(1)
    a.set(k, "v")
    before = r.info("router")["keys_moved"]
    assert r.get(k) == b"v"
    info = r.info("router")
    assert info["migrating_slots"] == 1000 and info["keys_moved"] == before + 1
    with urllib.request.urlopen(f"http://127.0.0.1:{c.admin_port}/metrics", timeout=5) as f:
        text = f.read().decode()
    assert f"slotwarden_router_keys_moved_total {float(before + 1)}" in text
    assert "slotwarden_router_migrate_errors_total" in text


def test_target_down_is_tryagain_and_the_key_stays() -> None:
    with own_cluster(
        shards=2, extra_router={"command_timeout_ms": 800}, env={"SLOTWARDEN_SECRET": SECRET}
    ) as c:
        push_migration(c)
        a, r = on(c, 0), c.client()
        (k,) = keys(1)
        a.set(k, "keep")
        c.masters[1].kill()
        with pytest.raises(
            TryAgainError, match=f"key {k} could not be moved from shard a to shard b"
        ):
            r.set(k, "new")
        assert a.get(k) == b"keep"  # still on the source, unchanged


def test_cross_shard_compute_moves_its_keys_first(mig) -> None:
    c = mig
    a, b, r = on(c, 0), on(c, 1), c.client()
    (moving,) = keys(1)
    (staying,) = keys(1, migrating=False)
    other = next(f"o{i}" for i in range(10_000) if key_hash_slot(f"o{i}".encode()) >= 8192)
    a.sadd(moving, "x", "y")
    a.sadd(staying, "y", "z")
    b.sadd(other, "y", "w")
    # three keys, two shards (the router computes it: router.cross_shard compute)
    assert r.sinter(moving, staying, other) == {b"y"}
    assert a.exists(moving) == 0 and b.smembers(moving) == {b"x", b"y"}


def test_with_backend_acl_users_migrate_authenticates_and_hides_the_password() -> None:
    """Nodes whose router user has only `slotwarden.acl.router_rule`: the pre-move's
    MIGRATE carries AUTH2 with the router's backend user; its password is never logged."""
    import os
    import secrets as pysecrets

    import yaml

    from slotwarden.acl import AclUser, as_server_args, node_conf, password_hash, router_rule
    from slotwarden.cluster.config import parse
    from slotwarden.procs import RedisFarm, RouterProc, free_port, write_cluster_yaml

    farm = RedisFarm()
    router = None
    try:
        ports = [free_port(), free_port()]
        path = os.path.join(farm.root, "cluster.yaml")
        password = pysecrets.token_urlsafe(16)
        admin_pw = pysecrets.token_urlsafe(16)

        # the file first (write_cluster_yaml reads only .addr): the rule names its hosts
        nodes = [SimpleNamespace(addr=f"127.0.0.1:{p}") for p in ports]
        port, admin_port = write_cluster_yaml(path, nodes)  # type: ignore[arg-type]
        with open(path) as f:
            data = yaml.safe_load(f)
        data["backend"] = {"username": "slotwarden-router", "password_env": "TEST_ROUTER_PW"}
        with open(path, "w") as f:
            yaml.safe_dump(data, f)
        with open(path) as f:
            rule = router_rule(parse(yaml.safe_load(f)))
        user = AclUser("slotwarden-router", rule, password_hash(password.encode()), "")
        args = as_server_args(node_conf(admin_pw, [user], "unused"))
        masters = [farm.start(args, port=p) for p in ports]
        router = RouterProc(
            path,
            port,
            os.path.join(farm.root, "router.log"),
            env={"TEST_ROUTER_PW": password, "SLOTWARDEN_SECRET": SECRET},
        ).start()

        push_migration(SimpleNamespace(admin_port=admin_port))
        a = redis.Redis(port=masters[0].port, password=admin_pw)
        b = redis.Redis(port=masters[1].port, password=admin_pw)
        k1, k2 = keys(2)
        a.set(k1, "v1", px=60_000)
        a.set(k2, "stale")
        b.set(k2, "newer")
        r = redis.Redis(port=port, socket_timeout=10)
        assert r.get(k1) == b"v1" and r.get(k2) == b"newer"
        assert a.exists(k1, k2) == 0 and b.get(k1) == b"v1" and 0 < b.pttl(k1) <= 60_000
        assert password not in router.log()
    finally:
        if router is not None:
            router.stop()
        farm.close()


def test_sort_by_pattern_in_a_migrating_slot_is_tryagain(mig) -> None:
    c = mig
    a, r = on(c, 0), c.client()
    tag = next(f"{{s{i}}}" for i in range(100_000) if key_hash_slot(f"s{i}".encode()) < 1000)
    a.rpush(f"{tag}ids", "2", "1")
    a.set(f"{tag}w_1", "10")
    with pytest.raises(TryAgainError, match=r"SORT BY/GET patterns read keys of slot"):
        r.sort(f"{tag}ids", by=f"{tag}w_*")
    assert r.sort(f"{tag}ids") == [b"1", b"2"]  # no pattern: its key moved, sorted on b


def test_keyless_fanouts_reach_a_draining_shard() -> None:
    """Shard c owns no slot any more (draining: its slots migrate to b): DBSIZE, KEYS,
    SCAN and FLUSHALL still reach it (route.masters has every shard of the map)."""
    with own_cluster(shards=3, env={"SLOTWARDEN_SECRET": SECRET}) as c:
        _status, topo = http(c, "GET", "/topology")
        topo["epoch"] += 1
        topo["shards"][1]["slots"] = "5461-16383"
        topo["shards"][2]["slots"] = ""
        topo["migrations"] = [{"slots": "10923-16383", "from": "c", "to": "b"}]
        assert http(c, "POST", "/topology", topo)[1]["applied"] is True
        a, cc, r = on(c, 0), on(c, 2), c.client()
        on_c = [k for k in (f"d{i}" for i in range(2000)) if key_hash_slot(k.encode()) > 10922]
        on_a = [k for k in (f"d{i}" for i in range(2000)) if key_hash_slot(k.encode()) < 5461]
        for k in on_c[:5]:
            cc.set(k, "c")
        a.set(on_a[0], "a")
        assert r.dbsize() == 6
        assert sorted(r.keys("*")) == sorted(k.encode() for k in [*on_c[:5], on_a[0]])
        assert len(set(r.scan_iter(count=2))) == 6
        assert r.get(on_c[0]) == b"c" and cc.exists(on_c[0]) == 0  # moved c -> b
        assert r.dbsize() == 6
        assert r.flushall() is True
        assert cc.dbsize() == 0 and r.dbsize() == 0


def test_a_move_that_fails_after_the_migration_ended_is_sent_to_the_new_owner() -> None:
    # the source hangs (SIGSTOP) while a request's key is being moved; meanwhile the
    # migration ends (a map without it: the slot is the target's). The move times out, but
    # the route changed: the request is dispatched again and goes to the owner, no error
    with own_cluster(
        shards=2, extra_router={"command_timeout_ms": 800}, env={"SLOTWARDEN_SECRET": SECRET}
    ) as c:
        push_migration(c)
        b, r = on(c, 1), c.client()
        (k,) = keys(1)
        source = c.masters[0]
        assert source.proc is not None
        source.proc.send_signal(signal.SIGSTOP)
        try:
            result: dict[str, object] = {}

            def client() -> None:
                try:
                    result["reply"] = r.set(k, "new")
                except redis.RedisError as exc:
                    result["reply"] = exc

            t = threading.Thread(target=client)
            t.start()
            time.sleep(0.2)  # the pre-move is waiting on the hung source
            _status, topo = http(c, "GET", "/topology")
            topo["epoch"] += 1
            del topo["migrations"]
            status, body = http(c, "POST", "/topology", topo)
            assert status == 200 and body["applied"] is True, body
            t.join(10)
        finally:
            source.proc.send_signal(signal.SIGCONT)
        assert result["reply"] is True, result
        assert b.get(k) == b"new"
