"""Planned switchover (`slotwarden failover SHARD [--to ADDR]`) with real processes.

A writer INCRs a counter on the master as fast as it can while the shard is
switched over; every INCR the old master acknowledged must be in the new
master's counter (the master pauses writes and waits for the replica before
handing over). Then an explicit ``--to`` switches back, and a request the
sentinels must refuse (unknown replica) changes nothing.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import redis
from test_sentinel_harness import REPO, sentinel_cluster


def failover_cli(sc, *args):
    return subprocess.run(
        [sys.executable, "-m", "slotwarden", "failover", "--config", sc.config, *args],
        capture_output=True,
        text=True,
        env=sc.env,
        cwd=REPO,
        timeout=60,
    )


class Writer(threading.Thread):
    """INCR on one node until stopped; counts the acknowledged ones."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.r = redis.Redis(port=port, socket_timeout=5)
        self.acked = 0
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.r.incr("counter")
                self.acked += 1
            except redis.RedisError as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                break  # the old master is a replica now: -READONLY


def test_planned_switchover_loses_no_acknowledged_write():
    with sentinel_cluster() as sc:
        sc.start_all()
        sc.wait_in_sync()
        m = sc.masters[0]
        sc.wait_for(
            lambda: all(
                sc.status(s)["nodes"][r.addr]["link_up"] for s in sc.ids for r in sc.replicas[0]
            ),
            5,
            "replicas linked",
        )
        writer = Writer(m.port)
        writer.start()
        time.sleep(0.3)
        started = time.monotonic()
        out = failover_cli(sc, "a")
        took = time.monotonic() - started
        writer.stop.set()
        writer.join(timeout=10)
        assert out.returncode == 0, out.stdout + out.stderr + sc.logs_text()
        assert "switched from" in out.stdout and "writes paused" in out.stdout
        print(out.stdout.strip(), f"(command took {took:.2f} s)")
        topo = sc.topology("s1")
        new_master = topo["shards"][0]["master"]
        assert new_master != m.addr and topo["epoch"] >= 1
        promoted = next(p for p in sc.replicas[0] if p.addr == new_master)
        assert sc.role(promoted) == ("master", None)
        assert sc.role(m) == ("slave", new_master)
        r = redis.Redis(port=promoted.port)
        final = int(r.get("counter"))
        r.close()
        assert writer.acked > 0
        # every acknowledged INCR is there; the one refused (-READONLY) is not
        assert writer.acked <= final <= writer.acked + len(writer.errors)
        assert final == writer.acked, (final, writer.acked, writer.errors)
        assert writer.errors and writer.errors[0].startswith("ReadOnlyError"), writer.errors
        other = next(p for p in sc.replicas[0] if p is not promoted)
        sc.wait_for(lambda: sc.role(other) == ("slave", new_master), 10, "other replica repointed")
        sc.wait_for(
            lambda: all(sc.topology(s) == topo for s in sc.ids), 5, "every sentinel on the epoch"
        )
        # back to the original master, named explicitly
        sc.wait_for(
            lambda: sc.status("s2")["nodes"][m.addr]["link_up"], 10, "old master linked as replica"
        )
        out = failover_cli(sc, "a", "--to", m.addr)
        assert out.returncode == 0, out.stdout + out.stderr
        assert sc.topology("s1")["shards"][0]["master"] == m.addr
        assert sc.role(m) == ("master", None)
        # refused: not a replica of the shard; nothing changes
        epoch = sc.topology("s1")["epoch"]
        out = failover_cli(sc, "a", "--to", "127.0.0.1:1")
        assert out.returncode == 1 and "not a replica of shard a" in out.stdout
        assert sc.role(m) == ("master", None)
        assert sc.topology("s1")["shards"][0]["master"] == m.addr
        assert sc.topology("s1")["epoch"] == epoch
