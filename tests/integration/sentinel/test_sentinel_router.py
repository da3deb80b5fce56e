"""Failover through the real router: sentinels push/serve the topology, the router follows.

A writer INCRs through one router client (one connection pool) the whole
time. kill -9 of the master -> writes fail for a moment, then succeed again
through the same client, and the new master's counter holds every
acknowledged INCR. SIGSTOP of the master -> the same, and after SIGCONT no
acknowledged write lands on the old master (it would be lost when the old
master is turned into a replica, so the final counter would fall short).
"""

from __future__ import annotations

import itertools
import re
import signal
import threading
import time

import pytest
import redis
from test_sentinel_harness import SECRET, sentinel_cluster

from slotwarden.procs import RouterProc, wait_for_port


class Writer(threading.Thread):
    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.r = redis.Redis(port=port, socket_timeout=5)
        self.acked = 0
        self.failed = 0
        self.last_error_at = 0.0
        self.errors: list[str] = []
        self.values: list[int] = []  # INCR's replies, in order
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                value = self.r.incr("counter")
                self.values.append(value)
                self.acked += 1
            except redis.RedisError as exc:
                self.failed += 1
                self.errors.append(str(exc)[:200])
                self.last_error_at = time.monotonic()
                time.sleep(0.01)


@pytest.fixture
def routed(monkeypatch):
    monkeypatch.setenv("SLOTWARDEN_SECRET", SECRET)
    with sentinel_cluster(replicas=1) as sc:
        sc.start_all()
        sc.wait_in_sync()
        import yaml

        with open(sc.config) as f:
            router_port = int(yaml.safe_load(f)["router"]["listen"].rsplit(":", 1)[1])
        router = RouterProc(sc.config, router_port, str(sc.root / "router.log"))
        router.start()
        try:
            admin = sc.router_admin.rsplit(":", 1)
            wait_for_port(admin[0], int(admin[1]))
            sc.router = router
            sc.router_port = router_port
            yield sc
        finally:
            router.stop()


def router_epoch(sc) -> int:
    import json
    import urllib.request

    with urllib.request.urlopen(f"http://{sc.router_admin}/topology", timeout=2) as resp:
        return json.loads(resp.read())["epoch"]


def run_failover(sc, how):
    m = sc.masters[0]
    writer = Writer(sc.router_port)
    writer.start()
    try:
        sc.wait_for(lambda: writer.acked > 200, 10, "writes through the router")
        killed_at = time.monotonic()
        m.kill(how)
        sc.wait_for(lambda: router_epoch(sc) >= 1, 15, "the router on epoch 1")
        switched_at = time.monotonic()
        before = writer.acked
        sc.wait_for(lambda: writer.acked > before + 200, 10, "writes flowing again")
        recovered = (writer.last_error_at or killed_at) - killed_at
        if how == signal.SIGSTOP:
            m.kill(signal.SIGCONT)
            new_master = sc.topology("s1")["shards"][0]["master"]
            sc.wait_for(lambda: sc.role(m) == ("slave", new_master), 15, "old master demoted")
            time.sleep(0.5)
    finally:
        writer.stop.set()
        writer.join(timeout=10)
    new = sc.replicas[0][0]
    r = redis.Redis(port=new.port)
    final = int(r.get("counter"))
    r.close()
    lost = max(writer.acked - final, 0)
    # INCR's replies: strictly increasing on the one connection (an ack for an INCR
    # that never ran, or a reply given to the wrong request, would break this)
    backwards = [(a, b) for a, b in itertools.pairwise(writer.values) if b <= a]
    print(
        f"router on epoch 1 {switched_at - killed_at:.2f} s after the kill; last failed write "
        f"{recovered:.2f} s after it; {writer.failed} failed, {writer.acked} acked, {lost} lost"
    )
    assert sc.role(new) == ("master", None)
    assert not backwards, f"INCR replies went backwards: {backwards[:5]}"
    # every acknowledged INCR is there; a failed one may or may not have landed
    assert writer.acked <= final <= writer.acked + writer.failed, sc.router.log()[-3000:]
    # a split vote can skip an epoch: the failover is epoch 1 or later
    assert re.search(r"topology epoch 0 -> \d+", sc.router.log()), sc.router.log()[-3000:]
    epoch = router_epoch(sc)
    assert epoch >= 1
    # `slotwarden status` sees the router on the new epoch too
    import json
    import subprocess
    import sys

    from test_sentinel_harness import REPO

    out = subprocess.run(
        [sys.executable, "-m", "slotwarden", "status", "--config", sc.config, "--json"],
        capture_output=True,
        env=sc.env,
        cwd=REPO,
        timeout=30,
    )
    report = json.loads(out.stdout)
    # exit code 1 (degraded) while the killed old master is down, 0 once all is back
    if how == signal.SIGKILL:
        assert out.returncode == 1, out.stderr
        assert f"shard a: replica {m.addr} is down" in report["health"]["problems"]
    else:
        assert out.returncode == 0, report["health"]
    [router] = report["routers"]
    assert (router["admin"], router["up"], router["epoch"]) == (sc.router_admin, True, epoch)
    assert router["ready"] is True and router["shards_down"] == []
    assert report["topology_epoch"] == epoch
    assert [s["topology_epoch"] for s in report["sentinels"]] == [epoch] * 3


def test_kill_9_under_load_through_the_router(routed):
    run_failover(routed, signal.SIGKILL)


def test_sigstop_under_load_through_the_router(routed):
    run_failover(routed, signal.SIGSTOP)


def test_planned_switchover_through_the_router_surfaces_no_error(routed):
    """`slotwarden failover` under load: the writes the demoted master refuses with
    -READONLY are held by the router and sent to the new master (router.control.parking),
    so the client sees no error at all and every acknowledged INCR is kept."""
    import subprocess
    import sys

    from test_sentinel_harness import REPO

    sc = routed
    writers = [Writer(sc.router_port) for _ in range(3)]
    for w in writers:
        w.start()
    try:
        sc.wait_for(lambda: all(w.acked > 100 for w in writers), 10, "writes through the router")
        out = subprocess.run(
            [sys.executable, "-m", "slotwarden", "failover", "--config", sc.config, "a"],
            capture_output=True, text=True, env=sc.env, cwd=REPO, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        sc.wait_for(lambda: router_epoch(sc) >= 1, 15, "the router on the new epoch")
        before = [w.acked for w in writers]
        sc.wait_for(
            lambda: all(w.acked > b + 100 for w, b in zip(writers, before, strict=True)),
            10,
            "writes flowing on the new master",
        )
    finally:
        for w in writers:
            w.stop.set()
        for w in writers:
            w.join(timeout=10)
    new = sc.replicas[0][0]
    final = int(redis.Redis(port=new.port).get("counter"))
    acked = sum(w.acked for w in writers)
    failed = sum(w.failed for w in writers)
    errors = [e for w in writers for e in w.errors]
    assert failed == 0, f"{failed} writes failed during a planned switchover: {errors[:3]}"
    assert final == acked
