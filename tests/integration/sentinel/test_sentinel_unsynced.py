"""An unsynced replica is never promoted (issue 11 item 1), over real processes.

A master with data and a slow BGSAVE (``rdb-key-save-delay``) holds a fresh,
empty replica in its initial sync (``master_sync_in_progress:1``,
``master_link_down_since_seconds:-1``). kill -9 the master: the sentinels
refuse the failover - one ``failover-refused`` event per sentinel, no epoch
spent, the metric and ``slotwarden status`` show it - and the replica stays
a replica, so the restarted master still has every key. Then the same again,
and an operator forces it with ``slotwarden failover a --to R --force``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import redis
from test_sentinel_harness import REPO, metric, sentinel_cluster

KEYS = 500
SLOW_SAVE = 20_000  # us per key: the initial sync takes ~10 s


def _fill(port: int) -> None:
    r = redis.Redis(port=port, socket_timeout=10)
    try:
        pipe = r.pipeline(transaction=False)
        for i in range(KEYS):
            pipe.set(f"k{i}", "v" * 100)
        pipe.execute()
        r.save()  # on disk, so a restarted master has its data back
        _slow_sync(r)
    finally:
        r.close()


def _slow_sync(r: redis.Redis) -> None:
    """A full sync by a slow BGSAVE on disk: the replica is in its transfer
    (``master_sync_in_progress:1``) at once, for ~10 s."""
    r.config_set("repl-diskless-sync", "no")
    r.config_set("rdb-key-save-delay", SLOW_SAVE)


def _start_unsynced_replica(sc, replica) -> None:
    """Restart ``replica`` empty: it begins a (slow) initial sync; wait until the
    sentinels see it as never synced."""
    replica.kill(signal.SIGKILL)
    for name in os.listdir(replica.dir):  # the RDB of its last sync: it would PSYNC
        if name.endswith(".rdb"):
            os.remove(os.path.join(replica.dir, name))
    replica.start()
    r = redis.Redis(port=replica.port, socket_timeout=5)
    try:
        sc.wait_for(
            lambda: r.info("replication")["master_sync_in_progress"] == 1,
            10,
            "the replica in its initial sync",
        )
        assert r.dbsize() == 0
    finally:
        r.close()
    sc.wait_for(
        lambda: all(not sc.status(s)["nodes"][replica.addr]["link_up"] for s in sc.ids),
        10,
        "every sentinel sees the replica's link down",
    )
    time.sleep(0.3)  # a few probes at 100 ms: the sentinels read this sync


def _cli(sc, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slotwarden", *args, "--config", sc.config],
        capture_output=True,
        text=True,
        env=sc.env,
        cwd=REPO,
        timeout=60,
    )


def test_unsynced_replica_is_not_promoted_and_force_promotes_it():
    with sentinel_cluster(replicas=1) as sc:
        sc.start_all()
        sc.wait_in_sync()
        m, rep = sc.masters[0], sc.replicas[0][0]
        _fill(m.port)
        _start_unsynced_replica(sc, rep)

        m.kill(signal.SIGKILL)
        sc.wait_for(
            lambda: all("[failover-refused]" in sc.log(s) for s in sc.ids),
            10,
            "every sentinel refuses the failover",
        )
        time.sleep(3.0)  # several failover times at down_after 500 ms: still nothing
        logs = sc.logs_text()
        assert "[promoted]" not in logs and "[new-epoch]" not in logs, logs
        for sid in sc.ids:
            assert sc.log(sid).count("[failover-refused]") == 1, sc.log(sid)
            assert sc.topology(sid)["epoch"] == 0
            assert sc.status(sid)["refused"]["a"].startswith("no replica of shard a")
            assert metric(sc, sid, "slotwarden_sentinel_failover_refused", shard="a") == 1
            total = "slotwarden_sentinel_failovers_refused_total"
            assert metric(sc, sid, total, shard="a") == 1
        assert "never completed a sync" in logs
        assert sc.role(rep) == ("slave", m.addr)
        status = _cli(sc, "status")
        assert status.returncode == 1, status.stderr  # degraded: the master is down
        assert "FAILOVER REFUSED for shard a" in status.stdout, status.stdout
        assert "cluster DEGRADED (exit code 1)" in status.stdout, status.stdout

        # no data lost: the master comes back with every key, still the master
        m.start()
        sc.wait_for(
            lambda: all("[failover-refused-cleared]" in sc.log(s) for s in sc.ids),
            10,
            "the refusal cleared",
        )
        r = redis.Redis(port=m.port, socket_timeout=5)
        values = r.mget([f"k{i}" for i in range(KEYS)])
        assert all(v == b"v" * 100 for v in values)
        _slow_sync(r)
        r.close()
        assert all(sc.topology(s)["epoch"] == 0 for s in sc.ids)
        assert all(sc.status(s)["refused"] == {} for s in sc.ids)

        # again, and this time the operator forces it
        _start_unsynced_replica(sc, rep)
        m.kill(signal.SIGKILL)
        sc.wait_for(
            lambda: all(sc.log(s).count("[failover-refused]") == 2 for s in sc.ids),
            10,
            "refused again",
        )
        out = _cli(sc, "failover", "a", "--to", rep.addr, "--force")
        assert out.returncode == 0, out.stdout + out.stderr + sc.logs_text()
        assert f"switched from {m.addr} to {rep.addr}" in out.stdout
        assert sc.role(rep) == ("master", None)
        sc.wait_for(
            lambda: all(sc.topology(s)["shards"][0]["master"] == rep.addr for s in sc.ids),
            10,
            "every sentinel serves the forced master",
        )
        assert "[failover-forced]" in sc.logs_text()
        sc.wait_for(
            lambda: all(sc.status(s)["refused"] == {} for s in sc.ids), 10, "refusal cleared"
        )
