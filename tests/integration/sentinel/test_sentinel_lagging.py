"""A replica that lacks writes the master acknowledged is not promoted (issue 11: writes lost
in a failover under CPU load), over real processes.

What the load did, made deterministic: the replica is not scheduled (SIGSTOP
stands in for a starved process) while the master acknowledges writes, so the
replication stream piles up in the master - in its socket and its output
buffer - instead of in the replica. The master is then killed (-9) and the
replica runs again: it never gets those writes. On the old code the sentinels
promoted it ~1 s later (its link was down only briefly, and the master's offset
``max_replica_lag_ms`` earlier was long passed), and every INCR acknowledged
before the kill was gone. Now each sentinel sees that the replica's offset is
below the master's offset at its last reply and refuses the failover: the
shard stays down, loudly, and the replica keeps its role (an operator may
force it, accepting the loss).
"""

from __future__ import annotations

import signal
import time

import redis
from test_sentinel_harness import sentinel_cluster

WRITES = 100
PADDING = 100  # values of 64 KiB written first: ~6.5 MB of stream, more than the sockets hold


def test_a_replica_without_the_acknowledged_writes_is_not_promoted():
    with sentinel_cluster(replicas=1) as sc:
        sc.start_all()
        sc.wait_in_sync()
        m, rep = sc.masters[0], sc.replicas[0][0]
        master = redis.Redis(port=m.port, socket_timeout=10)
        rep.kill(signal.SIGSTOP)  # the replica gets no CPU
        try:
            pipe = master.pipeline(transaction=False)
            for i in range(PADDING):
                pipe.set(f"pad:{i}", b"x" * 65536)
            pipe.execute()
            acked = [master.incr("counter") for _ in range(WRITES)]
            assert acked == list(range(1, WRITES + 1))  # every one acknowledged, in order
            stream = master.info("replication")["master_repl_offset"]
            # the sentinels read the master's offset after the writes (probes every 100 ms)
            sc.wait_for(
                lambda: all(sc.status(s)["nodes"][m.addr]["offset"] >= stream for s in sc.ids),
                10,
                "every sentinel sees the master's offset after the writes",
            )
            m.kill(signal.SIGKILL)
        finally:
            master.close()
            rep.kill(signal.SIGCONT)
        r = redis.Redis(port=rep.port, socket_timeout=5)
        try:
            sc.wait_for(
                lambda: all("[failover-refused]" in sc.log(s) for s in sc.ids),
                15,
                "every sentinel refuses to promote the replica",
            )
            time.sleep(2.0)  # a few failover times at down_after 500 ms: still nothing
            logs = sc.logs_text()
            assert "[promoted]" not in logs and "[new-epoch]" not in logs, logs
            assert "bytes behind" in logs and "writes it acknowledged would be lost" in logs
            assert all(sc.topology(s)["epoch"] == 0 for s in sc.ids)
            assert sc.role(rep) == ("slave", m.addr)
            # what it would have served as master: none of the acknowledged INCRs
            assert r.get("counter") is None
            assert r.info("replication")["slave_repl_offset"] < stream
        finally:
            r.close()
