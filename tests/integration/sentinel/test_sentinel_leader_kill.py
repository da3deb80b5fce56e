"""A leader killed right after it is elected does not stall the failover.

kill -9 the master, then kill -9 the sentinel that logs ``[elected]`` as soon
as it does: the two others notice the silent leader after about
``down_after_ms`` and elect a new one, so the shard has a new master well
before ``failover_timeout_ms`` (10 s here, so a stall until the timeout fails).
This is a correctness bound (no stall until the timeout), not a speed claim.
"""

from __future__ import annotations

import re
import signal
import time

import redis
from test_sentinel_harness import sentinel_cluster

ELECTED = re.compile(r"\[elected\].*?(s\d+) elected leader")


def test_leader_killed_after_elected_is_replaced_before_failover_timeout():
    with sentinel_cluster(
        down_after_ms=1000, probe_interval_ms=100, failover_timeout_ms=10000
    ) as sc:
        sc.start_all()
        m = sc.masters[0]
        r = redis.Redis(port=m.port)
        r.set("k", "v")
        r.close()
        sc.wait_in_sync()
        old = m.addr
        killed_at = time.monotonic()
        m.kill(signal.SIGKILL)
        # kill -9 the sentinel that logs `elected`, as soon as it does
        leader = None
        deadline = time.monotonic() + 15
        while leader is None and time.monotonic() < deadline:
            for sid in sc.ids:
                hit = ELECTED.search(sc.log(sid))
                if hit and hit.group(1) == sid:
                    leader = sid
                    sc.stop(sid, signal.SIGKILL)
                    break
            time.sleep(0.002)
        assert leader is not None, sc.logs_text()
        leader_killed_at = time.monotonic()
        others = [sid for sid in sc.ids if sid != leader]

        def switched():
            topos = [sc.topology(sid) for sid in others]
            masters = {t["shards"][0]["master"] for t in topos}
            if len(masters) == 1 and old not in masters:
                return topos[0]
            return None

        topo = sc.wait_for(switched, 20, "the surviving sentinels agree on a new master")
        took = time.monotonic() - leader_killed_at
        print(
            f"leader {leader} killed after elected; new master {topo['shards'][0]['master']} "
            f"at epoch {topo['epoch']} {took:.2f} s later ({time.monotonic() - killed_at:.2f} s "
            "after the master kill)"
        )
        # correctness bound: no stall until failover_timeout (10 s), counted from the
        # master's kill (the old code took 11-12 s; this one about down_after more than
        # a failover without a leader kill)
        assert time.monotonic() - killed_at < 10.0, sc.logs_text()
        new_master = topo["shards"][0]["master"]
        promoted = next(p for p in sc.replicas[0] if p.addr == new_master)
        assert sc.role(promoted) == ("master", None)
        others_r = [p for p in sc.replicas[0] if p is not promoted]
        for node in others_r:
            sc.wait_for(
                lambda n=node: sc.role(n) == ("slave", new_master), 10, f"{node.addr} repointed"
            )
        data = redis.Redis(port=promoted.port)
        assert data.get("k") == b"v"
        data.close()


def _stop_the_leader(sc, sig: int) -> str:
    """Send ``sig`` to the sentinel that logs ``[elected]``, as soon as it does."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for sid in sc.ids:
            hit = ELECTED.search(sc.log(sid))
            if hit and hit.group(1) == sid:
                sc.procs[sid].send_signal(sig)
                return sid
        time.sleep(0.002)
    raise AssertionError("no sentinel was elected:\n" + sc.logs_text())


def test_a_frozen_leader_resumed_after_another_took_over_does_not_act():
    """SIGSTOP the leader right after `elected` (as if cut off), let the others elect a
    new one and fail over, then SIGCONT it: its lease has lapsed and a higher epoch
    exists, so it takes no further step and publishes nothing; one master remains."""
    with sentinel_cluster(
        down_after_ms=1000, probe_interval_ms=100, failover_timeout_ms=10000
    ) as sc:
        sc.start_all()
        sc.wait_in_sync()
        old = sc.masters[0].addr
        sc.masters[0].kill(signal.SIGKILL)
        leader = _stop_the_leader(sc, signal.SIGSTOP)
        others = [sid for sid in sc.ids if sid != leader]

        def switched():
            topos = [sc.topology(sid) for sid in others]
            masters = {t["shards"][0]["master"] for t in topos}
            if len(masters) == 1 and old not in masters and topos[0]["epoch"] >= 2:
                return topos[0]
            return None

        try:
            topo = sc.wait_for(switched, 9, "the others agree on a new master (frozen leader)")
        finally:
            sc.procs[leader].send_signal(signal.SIGCONT)
        new_master = topo["shards"][0]["master"]
        # the resumed leader adopts the newer epoch; nobody serves another master
        sc.wait_for(
            lambda: sc.topology(leader)["epoch"] >= topo["epoch"], 10, "old leader catches up"
        )
        time.sleep(2 * 1.0)  # more than down_after: anything it would still do, it did
        final = {sid: sc.topology(sid) for sid in sc.ids}
        assert {t["shards"][0]["master"] for t in final.values()} == {new_master}, final
        masters = [p.addr for p in sc.replicas[0] if sc.role(p)[0] == "master"]
        assert masters == [new_master], sc.logs_text()
        log = sc.log(leader)
        resumed = log[log.index("[elected]") :]
        # it published nothing at its old epoch, and says why it stopped: its lease lapsed
        # or a newer epoch exists (checked before each step), or - when the freeze caught a
        # step already sent - that step failed (its timeout ran out while it was frozen)
        assert "[switch]" not in resumed, resumed
        epoch = re.search(r"\[elected\] epoch (\d+)", resumed).group(1)  # type: ignore[union-attr]
        aborted = re.search(rf"\[abort\] epoch {epoch}: .*", resumed)
        reasons = ("leader lease lost", "started meanwhile", "failed")
        assert aborted and any(why in aborted.group(0) for why in reasons), resumed
