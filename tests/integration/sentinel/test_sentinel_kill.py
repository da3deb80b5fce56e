"""Failover end to end: real redis-servers, three real sentinel processes, quorum 2.

kill -9 of a master -> its best replica is promoted, the other replica is
repointed, every sentinel serves epoch 1; the old master, restarted, becomes
a replica. SIGSTOP of a master -> the same; SIGCONT -> it is demoted, and the
served topology never names two masters. A stall shorter than down_after_ms
-> nothing happens.
"""

from __future__ import annotations

import signal
import time

import redis
from test_sentinel_harness import SECRET, RouterAdminStub, sentinel_cluster


def served_epochs(sc):
    return {sid: sc.topology(sid)["epoch"] for sid in sc.procs}


def wait_switched(sc, old_master, timeout=15):
    def switched():
        topos = [sc.topology(sid) for sid in sc.procs]
        # one epoch everywhere (1, or later if a split vote skipped one)
        same = len({t["epoch"] for t in topos}) == 1 and topos[0]["epoch"] >= 1
        if same and topos[0]["shards"][0]["master"] != old_master:
            return topos[0]
        return None

    return sc.wait_for(switched, timeout, "every sentinel on one epoch (>= 1), a new master")


def assert_replicas_of(sc, master_addr, nodes, timeout=10):
    for node in nodes:
        sc.wait_for(
            lambda n=node: sc.role(n) == ("slave", master_addr),
            timeout,
            f"{node.addr} replicating from {master_addr}",
        )


def test_kill_9_master_fails_over_and_old_master_rejoins_as_replica():
    with sentinel_cluster() as sc:
        admin = RouterAdminStub(int(sc.router_admin.rsplit(":", 1)[1]))
        try:
            _kill_9(sc, admin)
        finally:
            admin.close()


def _kill_9(sc, admin):
    import threading

    sc.start_all()
    # a router long-polling before the failover gets the new epoch at once
    polled = {}

    def long_poll():
        polled["status"], polled["topology"] = sc.http(
            "s2", "/topology?after=0&timeout=25&router=127.0.0.1:9", timeout=30
        )
        polled["at"] = time.monotonic()

    poller = threading.Thread(target=long_poll, daemon=True)
    poller.start()
    # the second replica has the better (lower) replica-priority: it must win
    best = sc.replicas[0][1]
    rb = redis.Redis(port=best.port)
    rb.config_set("replica-priority", 10)
    rb.close()
    m = sc.masters[0]
    r = redis.Redis(port=m.port)
    r.set("k", "v")
    r.close()
    sc.wait_in_sync()
    old = m.addr
    killed_at = time.monotonic()
    m.kill(signal.SIGKILL)
    topo = wait_switched(sc, old)
    took = time.monotonic() - killed_at
    shard = topo["shards"][0]
    new_master = shard["master"]
    assert new_master == best.addr
    assert old in shard["replicas"]
    promoted = next(p for p in sc.replicas[0] if p.addr == new_master)
    assert sc.role(promoted) == ("master", None)
    others = [p for p in sc.replicas[0] if p is not promoted]
    assert_replicas_of(sc, new_master, others)
    logs = sc.logs_text()
    for kind in ("[sdown]", "[odown]", "[new-epoch]", "[elected]", "[promoted]", "[switch]"):
        assert kind in logs, kind
    print(f"kill -9 -> epoch {topo['epoch']} on every sentinel after {took:.2f} s")
    poller.join(timeout=10)
    assert polled["status"] == 200 and polled["topology"]["epoch"] >= 1
    assert polled["at"] - killed_at < 5
    # the router named in cluster.yaml got the new topology pushed, with the secret
    sc.wait_for(lambda: admin.received, 5, "a push to router.admin")
    auth, body = admin.received[0]
    assert auth == f"Bearer {SECRET}" and body == topo
    # the old master comes back (as a master, empty): it is turned into a replica
    m.start()
    assert_replicas_of(sc, new_master, [m], timeout=15)
    assert "[convert-to-replica]" in sc.logs_text()
    # still the epoch of the switch (1, or later if a split vote skipped one): no new one
    assert served_epochs(sc) == {sid: topo["epoch"] for sid in sc.ids}
    data = redis.Redis(port=promoted.port)
    assert data.get("k") == b"v"
    data.close()


def test_sigstop_master_fails_over_and_sigcont_never_makes_two_masters():
    import threading

    with sentinel_cluster() as sc:
        sc.start_all()
        sc.wait_in_sync()
        m = sc.masters[0]
        seen: dict[tuple[str, int], str] = {}
        conflicts: list[str] = []
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                for sid in list(sc.procs):
                    try:
                        t = sc.topology(sid)
                    except (OSError, AssertionError):
                        continue
                    key = ("a", t["epoch"])
                    master = t["shards"][0]["master"]
                    if seen.setdefault(key, master) != master:
                        conflicts.append(f"epoch {t['epoch']}: {seen[key]} and {master}")
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            m.kill(signal.SIGSTOP)  # hung: the socket stays open, nothing answers
            topo = wait_switched(sc, m.addr)
            new_master = topo["shards"][0]["master"]
            m.kill(signal.SIGCONT)
            assert_replicas_of(sc, new_master, [m], timeout=15)
            time.sleep(1.0)
        finally:
            stop.set()
            watcher.join(timeout=5)
        assert conflicts == []
        # no second failover after SIGCONT: still the epoch of the switch (1, or later
        # if a split vote skipped one)
        assert served_epochs(sc) == {sid: topo["epoch"] for sid in sc.ids}
        promoted = next(p for p in sc.replicas[0] if p.addr == new_master)
        assert sc.role(promoted) == ("master", None)
        masters = [n.addr for n in sc.nodes() if sc.role(n)[0] == "master"]
        assert masters == [new_master]
