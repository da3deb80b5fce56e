"""Client-side caching through the router end to end (issue 14): CLIENT TRACKING with correct
invalidation across shards, routers and failovers.

Real processes (`slotwarden.rig`): 2 shards (a master + a replica each), 3 sentinels, two
routers. The caching clients are `slotwarden.cacheclient.CacheClient` (checked against a
plain redis-server in test_cacheclient.py) and redis-py's own RESP3 push hook (the README's
recipe). Each test finds its keys and masters in the CURRENT topology, so the tests hold in
any order (the failover tests each take a shard that still has a replica).

- a key read through router 1 and changed through router 2, directly on its shard's master,
  by expiry, or by FLUSHALL: the invalidation (or null) arrives; a re-read is the new value;
- RESP2 REDIRECT, BCAST PREFIX, OPTIN + CLIENT CACHING YES through the router;
- kill -9 of a key's master (the key and a probe key then written on the promoted replica
  directly): the client gets a null before any reply served by the new master, and once
  it read the new value it never reads the old one again;
- a slot moved to the other shard (cluster.yaml edit): the key is invalidated, a re-read is
  right, and changes on its new shard invalidate it;
- fuzz: caching clients on both routers (default, NOLOOP, BCAST, BCAST PREFIX; RESP3 and
  REDIRECT) read and write a small key set at random (seeded), and a writer writes on the
  shards directly; once quiet, every cached value equals its shard's; again with a
  failover in the middle (no direct writer then);
- redis-py's built-in cache (``cache_config=``) refuses the router as it refuses the
  7.0.15 shards: the router reports their real version.

``WAIT_S`` bounds each invalidation's arrival: the issue asks for 100 ms; the bound has the
slack of a loaded CI box, and the real figure (printed with ``-s``; ~1 ms here) is measured
by bench/tracking.py.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from redis.cache import CacheConfig

from slotwarden.cacheclient import CacheClient, ReplyError
from slotwarden.cluster.slots import format_ranges, key_hash_slot, parse_ranges
from slotwarden.cluster.topology import SlotMap
from slotwarden.rig import ReshardRig, wait_for

WAIT_S = 5.0
FAILOVER_S = 30.0
FUZZ_S = 2.0
QUIET_S = 0.5  # no invalidation for this long after the writers stopped: settled

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def rig() -> Iterator[ReshardRig]:
    r = ReshardRig(shards=2, replicas=1, routers=2)
    try:
        r.start()
        r.wait_replicas_synced()
        yield r
    finally:
        r.close()


def cache(rig: ReshardRig, n: int = 0, **kw) -> CacheClient:
    kw.setdefault("timeout", 10.0)
    return CacheClient(port=rig.router_addrs[n][0], **kw)


def key_on(sm: SlotMap, shard: str, prefix: str, skip: int = 0) -> bytes:
    """The ``skip``-th key ``prefix:i`` whose slot shard ``shard`` owns in ``sm``."""
    want = sm.shard_index(shard)
    found = 0
    for i in range(100_000):
        k = f"{prefix}:{i}".encode()
        if sm.owner[key_hash_slot(k)] == want:
            if found == skip:
                return k
            found += 1
    raise AssertionError(f"no key of {shard}")


def master_of(rig: ReshardRig, key: bytes) -> redis.Redis:
    sm = rig.sentinel_map()
    m = sm.shards[sm.owner[key_hash_slot(key)]].master
    return redis.Redis(host=m.host, port=m.port, socket_timeout=10)


def alive(rig: ReshardRig, addr: str) -> bool:
    return any(
        p.addr == addr and p.proc is not None and p.proc.poll() is None
        for nodes in rig.nodes.values()
        for p in nodes
    )


def shard_with_replica(rig: ReshardRig, avoid: str | None = None) -> str:
    """A shard whose current master has a live replica (one failover test each)."""
    sm = rig.sentinel_map()
    for s in sm.shards:
        if s.name != avoid and any(alive(rig, str(r)) for r in s.replicas):
            return s.name
    raise AssertionError(f"no shard with a live replica left: {sm.to_dict()}")


def synced(rig: ReshardRig, shard: str) -> None:
    """Shard ``shard``'s current master has a replica with all its writes (WAIT 1)."""
    sm = rig.sentinel_map()
    m = sm.shards[sm.shard_index(shard)].master
    with redis.Redis(host=m.host, port=m.port, socket_timeout=30) as r:
        wait_for(lambda: r.wait(1, 1000) >= 1, 20, f"a replica of {shard} in sync")


def cached_get(c: CacheClient, key: bytes) -> object:
    """Read ``key`` until the client keeps it: a read while the router's tracking connection
    to the shard is not live yet (it opens with the first tracking client) is answered and
    then invalidated (the router cannot promise to report a change)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        value = c.get(key)
        if key in c.cache:
            return value
        assert time.monotonic() < deadline, f"{key!r} never stayed cached (tracking not live?)"
        time.sleep(0.05)


def wait_invalidated(c: CacheClient, key: bytes, since: float) -> float:
    """Poll until an invalidation of ``key`` (or a flush) arrived after ``since``; how long
    after ``since`` it came."""
    deadline = time.monotonic() + WAIT_S
    while True:
        at = max(c.invalidated_at.get(key, 0.0), c.flushed_at[-1] if c.flushed_at else 0.0)
        if at >= since and key not in c.cache:
            return at - since
        if time.monotonic() > deadline:
            raise AssertionError(f"no invalidation of {key!r} within {WAIT_S} s")
        c.poll(0.1)


def still_tracked(rig: ReshardRig, c: CacheClient, k: bytes) -> None:
    """``c`` keeps ``k`` (cached now) and tracking goes on where ``k`` lives now: a write
    through router 2, then one directly on its shard's master, each invalidates the copy,
    and a re-read is the new value."""
    assert k in c.cache
    for n, writer in enumerate((rig.router_client(1), master_of(rig, k))):
        t = time.monotonic()
        writer.set(k, f"after:{n}")
        wait_invalidated(c, k, t)
        assert cached_get(c, k) == f"after:{n}".encode()


def test_a_change_by_anyone_invalidates(rig: ReshardRig) -> None:
    sm = rig.sentinel_map()
    w2 = rig.router_client(1)
    with cache(rig, 0) as c:
        for shard in ("a", "b"):
            k = key_on(sm, shard, "any")
            w2.set(k, "1")
            assert cached_get(c, k) == b"1" and c.get(k) == b"1" and c.hits >= 1
            t = time.monotonic()
            w2.set(k, "2")  # through the other router
            took = wait_invalidated(c, k, t)
            print(f"shard {shard}: write through router 2 -> invalidation {took * 1000:.2f} ms")
            assert cached_get(c, k) == b"2"
            direct = master_of(rig, k)
            direct.ping()
            t = time.monotonic()
            direct.set(k, "3")  # directly on the shard's master
            took = wait_invalidated(c, k, t)
            print(f"shard {shard}: write on the master -> invalidation {took * 1000:.2f} ms")
            assert cached_get(c, k) == b"3"
            t = time.monotonic()
            w2.pexpire(k, 600)  # a write: invalidates at once
            wait_invalidated(c, k, t)
            assert cached_get(c, k) == b"3"
            t = time.monotonic()
            took = wait_invalidated(c, k, t)  # it expires
            print(f"shard {shard}: expiry -> invalidation after {took * 1000:.0f} ms (PEXPIRE 600)")
            assert c.get(k) is None


@pytest.mark.parametrize("via", [0, 1])
def test_flushall_through_a_router_drops_everything(rig: ReshardRig, via: int) -> None:
    sm = rig.sentinel_map()
    keys = [key_on(sm, s, f"fl{via}") for s in ("a", "b")]
    w = rig.router_client(via)
    with cache(rig, 0) as c:
        for k in keys:
            w.set(k, "x")
            assert cached_get(c, k) == b"x"
        w.flushall()
        wait_for(lambda: c.poll(0.1) or c.flushes, WAIT_S, "a null invalidation")
        assert c.cache == {}
        assert [c.get(k) for k in keys] == [None, None]


def test_resp2_redirect(rig: ReshardRig) -> None:
    sm = rig.sentinel_map()
    w2 = rig.router_client(1)
    with cache(rig, 0, mode="redirect") as c:
        for shard in ("a", "b"):
            k = key_on(sm, shard, "rd")
            w2.set(k, "1")
            assert cached_get(c, k) == b"1"
            t = time.monotonic()
            w2.set(k, "2")
            wait_invalidated(c, k, t)
            assert c.get(k) == b"2"


def test_bcast_prefix(rig: ReshardRig) -> None:
    sm = rig.sentinel_map()
    w2 = rig.router_client(1)
    with cache(rig, 0, bcast=True, prefixes=["bp:"]) as c:
        for s in ("a", "b"):  # the router's tracking connections are live
            cached_get(c, key_on(sm, s, "bp", skip=1))
        t = time.monotonic()
        unread = [key_on(sm, s, "bp") for s in ("a", "b")]
        w2.set(key_on(sm, "a", "other"), "x")  # outside the prefix: never reported
        for k in unread:  # never read: BCAST reports every change under the prefix
            w2.set(k, "1")
        for k in unread:
            wait_invalidated(c, k, t)
        assert not any(k.startswith(b"other") for k in c.invalidated_at)
        assert c.get(unread[0]) == b"1" and unread[0] in c.cache


def test_optin_with_client_caching_yes(rig: ReshardRig) -> None:
    sm = rig.sentinel_map()
    w2 = rig.router_client(1)
    tracked, untracked = key_on(sm, "a", "oi"), key_on(sm, "b", "oi")
    with cache(rig, 0, optin=True) as c:
        w2.mset({tracked: "1", untracked: "1"})
        assert cached_get(c, tracked) == b"1"  # CLIENT CACHING YES + GET
        assert c.execute("GET", untracked) == b"1"  # not asked for: not tracked
        t = time.monotonic()
        w2.set(untracked, "2")
        w2.set(tracked, "2")
        wait_invalidated(c, tracked, t)
        c.poll(0.3)
        assert untracked not in c.invalidated_at
        with pytest.raises(ReplyError, match="OPTOUT"):
            c.execute("CLIENT", "CACHING", "NO")


def test_the_readme_redis_py_recipe(rig: ReshardRig) -> None:
    """README *Client-side caching*: redis-py with protocol=3 and its invalidation hook."""
    local: dict[bytes, object] = {}

    def on_invalidate(msg: list) -> None:  # [b"invalidate", [keys…] or None]
        if msg[1] is None:
            local.clear()
        else:
            for k in msg[1]:
                local.pop(k, None)

    r = redis.Redis(port=rig.router_addrs[0][0], protocol=3, single_connection_client=True)
    r.connection._parser.set_invalidation_push_handler(on_invalidate)
    r.client_tracking_on()

    def cached_get(key: bytes) -> object:
        while r.connection.can_read(timeout=0):  # apply what has arrived
            r.connection.read_response(push_request=True)
        if key not in local:
            local[key] = r.get(key)
        return local[key]

    w2 = rig.router_client(1)
    w2.set(b"recipe", "1")
    assert cached_get(b"recipe") == b"1"
    w2.set(b"recipe", "2")
    wait_for(lambda: cached_get(b"recipe") == b"2", WAIT_S, "the recipe's invalidation")
    r.close()


def test_redis_py_cache_config_refuses_as_it_refuses_the_shards(rig: ReshardRig) -> None:
    """redis-py's built-in cache wants a server >= 7.4; the router reports the shards' real
    version (7.0.15 here), so it refuses the router exactly as it refuses a shard."""
    sm = rig.sentinel_map()
    m = sm.shards[0].master
    with redis.Redis(host=m.host, port=m.port) as direct:
        shard_version = direct.info("server")["redis_version"]
    hello = redis.Redis(port=rig.router_addrs[0][0], protocol=3).execute_command("HELLO", "3")
    assert hello[b"version"].decode() == shard_version
    for port in (m.port, rig.router_addrs[0][0]):
        r = redis.Redis(port=port, protocol=3, cache_config=CacheConfig())
        with pytest.raises(redis.ConnectionError, match=r"Redis 7\.4 or later"):
            r.get("x")


def test_kill_9_failover_flushes_before_the_new_master_answers(rig: ReshardRig) -> None:
    name = shard_with_replica(rig, avoid="b")
    sm = rig.sentinel_map()
    k, probe = key_on(sm, name, "fo"), key_on(sm, name, "fo", skip=1)
    w2 = rig.router_client(1)
    w2.set(k, "old")
    w2.delete(probe)
    synced(rig, name)
    old = str(sm.shards[sm.shard_index(name)].master)
    with cache(rig, 0) as c:
        assert cached_get(c, k) == b"old"
        rig.kill_master(name)
        written = False
        seen: list[object] = []  # the values of k read through router 1, in order
        deadline = time.monotonic() + FAILOVER_S
        while True:  # read the probe through router 1 until the new master's value shows
            assert time.monotonic() < deadline, f"no failover\n{rig.logs()}"
            if not written:
                now = rig.sentinel_map()
                new = now.shards[now.shard_index(name)].master
                if str(new) != old:  # k and the probe change on the new master at once
                    with redis.Redis(host=new.host, port=new.port) as promoted:
                        promoted.set(k, "new")
                        promoted.set(probe, "new")
                    written = True
            try:
                value = c.execute("GET", probe)
            except ReplyError:  # the shard is down meanwhile
                value = None
            if value == b"new":
                break
            with contextlib.suppress(ReplyError):
                seen.append(c.get(k))
            time.sleep(0.02)
        # the null was queued before the first reply under the new route: applied first
        assert c.flushes >= 1 and c.losses == 0, (c.flushes, c.losses)
        wait_for(lambda: c.get(k) == b"new", WAIT_S, "k's value on the new master")
        seen += [c.get(k) for _ in range(20)]
        first_new = seen.index(b"new")
        assert set(seen[:first_new]) <= {b"old"} and set(seen[first_new:]) == {b"new"}, seen
        still_tracked(rig, c, k)  # on the new master


def test_a_slot_move_invalidates_and_rereads_are_right(rig: ReshardRig) -> None:
    rig.wait_settled(60)
    sm = rig.sentinel_map()
    k = key_on(sm, "a", "mv")
    slot = key_hash_slot(k)
    w2 = rig.router_client(1)
    w2.set(k, "1")
    with cache(rig, 0) as c:
        assert cached_get(c, k) == b"1"
        layout = dict(rig.layout)
        a = {s for lo, hi in parse_ranges(layout["a"]) for s in range(lo, hi + 1)} - {slot}
        b = {s for lo, hi in parse_ranges(layout["b"]) for s in range(lo, hi + 1)} | {slot}
        t = time.monotonic()
        rig.set_layout({"a": format_ranges(a), "b": format_ranges(b)})
        moved = rig.wait_settled(60)
        assert moved.shards[moved.owner[slot]].name == "b"
        wait_invalidated(c, k, t)
        assert cached_get(c, k) == b"1"
        assert master_of(rig, k).get(k) == b"1"  # it lives on b now
        still_tracked(rig, c, k)  # on its new shard


class Fuzzer(threading.Thread):
    """One caching client reading (90 %) and writing (10 %) random keys until stopped."""

    def __init__(self, client: CacheClient, keys: list[bytes], seed: int) -> None:
        super().__init__(daemon=True)
        self.client, self.keys, self.rng = client, keys, random.Random(seed)
        self.seed = seed
        self.stop = threading.Event()
        self.ops = 0
        self.errors: list[str] = []

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            k = self.rng.choice(self.keys)
            try:
                if self.rng.random() < 0.9:
                    self.client.get(k)
                else:
                    n += 1
                    self.client.set(k, f"{self.seed}:{n}")
            except (ReplyError, ConnectionError) as exc:
                self.errors.append(str(exc))
                time.sleep(0.01)
            self.ops += 1


class DirectWriter(threading.Thread):
    """SETs random keys directly on their shard's master, every few ms, until stopped."""

    def __init__(self, masters: dict[bytes, redis.Redis], seed: int) -> None:
        super().__init__(daemon=True)
        self.masters, self.rng = masters, random.Random(seed)
        self.stop = threading.Event()
        self.ops = 0
        self.errors: list[str] = []

    def run(self) -> None:
        keys = sorted(self.masters)
        while not self.stop.wait(0.005):
            k = self.rng.choice(keys)
            self.ops += 1
            self.masters[k].set(k, f"direct:{self.ops}")


def fuzz(rig: ReshardRig, seed: int, fault: str | None = None) -> None:
    sm = rig.sentinel_map()
    keys = [key_on(sm, s, f"fz{seed}", skip=i) for s in ("a", "b") for i in range(6)]
    modes = [("resp3", 0), ("redirect", 0), ("resp3", 1), ("redirect", 1)]
    clients = [cache(rig, n, mode=mode) for mode, n in modes]
    clients.append(cache(rig, 1, noloop=True))
    clients.append(cache(rig, 1, bcast=True))  # every key of every shard
    clients.append(cache(rig, 0, mode="redirect", bcast=True, prefixes=[f"fz{seed}:"]))
    workers: list[Fuzzer | DirectWriter] = [
        Fuzzer(c, keys, seed * 100 + i) for i, c in enumerate(clients)
    ]
    if fault is None:  # and writes straight on the shards' masters
        workers.append(DirectWriter({k: master_of(rig, k) for k in keys}, seed))
    try:
        for w in workers:
            w.start()
        if fault is not None:
            time.sleep(FUZZ_S / 2)
            old = str(sm.shards[sm.shard_index(fault)].master)
            rig.kill_master(fault)

            def failed_over() -> bool:
                now = rig.sentinel_map()
                return str(now.shards[now.shard_index(fault)].master) != old and all(
                    e >= now.epoch for e in rig.router_epochs()
                )

            wait_for(failed_over, FAILOVER_S, f"shard {fault} failed over")
        time.sleep(FUZZ_S if fault is None else FUZZ_S / 2)
        for w in workers:
            w.stop.set()
        for w in workers:
            w.join(timeout=30)
        if fault is None:
            assert not [w.errors[:3] for w in workers if w.errors]
        assert all(w.ops > 20 for w in workers), [w.ops for w in workers]
        # quiesce: every client quiet for QUIET_S
        for c in clients:
            quiet_since = time.monotonic()
            while time.monotonic() - quiet_since < QUIET_S:
                if c.poll(0.05):
                    quiet_since = time.monotonic()
        truth = {k: master_of(rig, k).get(k) for k in keys}
        stale = [
            (i, k, v, truth[k])
            for i, c in enumerate(clients)
            for k, v in c.cache.items()
            if v != truth[k]
        ]
        assert not stale, stale
        for c in clients:  # and every read now is the shard's value
            assert {k: c.get(k) for k in keys} == truth
        print(
            f"fuzz seed {seed} fault {fault}: {sum(w.ops for w in workers)} ops, "
            f"hits {sum(c.hits for c in clients)} misses {sum(c.misses for c in clients)}, "
            f"invalidations {sum(c.invalidations for c in clients)}, "
            f"flushes {sum(c.flushes for c in clients)}, "
            f"errors {sum(len(w.errors) for w in workers)}"
        )
    finally:
        for w in workers:
            w.stop.set()
        for c in clients:
            c.close()


def test_fuzz_every_cached_value_equals_the_shards(rig: ReshardRig) -> None:
    fuzz(rig, seed=1)


def test_fuzz_with_a_failover_in_the_middle(rig: ReshardRig) -> None:
    name = shard_with_replica(rig, avoid="a")
    synced(rig, name)
    fuzz(rig, seed=2, fault=name)
