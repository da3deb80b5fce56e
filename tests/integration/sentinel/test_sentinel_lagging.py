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
force it, accepting the loss). The same with SIGSTOP instead of kill -9:
the writes wait in the hung master, which keeps them and stays master when it
runs again.
"""

from __future__ import annotations

import signal
import time

import redis
from test_sentinel_harness import sentinel_cluster

WRITES = 100
PADDING = 100  # values of 64 KiB written first: ~6.5 MB of stream, more than the sockets hold


def _writes_the_replica_does_not_get(sc, how: signal.Signals) -> int:
    """With the replica stopped, the master acknowledges `WRITES` INCRs (after ~6.5 MB of
    padding, so they stay in the master); once every sentinel has seen the master's
    offset, the master gets ``how`` and the replica runs again. The master's offset."""
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
        m.kill(how)
    finally:
        master.close()
        rep.kill(signal.SIGCONT)
    return stream


def _refused_and_nothing_promoted(sc) -> None:
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
    m, rep = sc.masters[0], sc.replicas[0][0]
    assert sc.role(rep) == ("slave", m.addr)


def test_a_replica_without_the_acknowledged_writes_is_not_promoted():
    with sentinel_cluster(replicas=1) as sc:
        sc.start_all()
        sc.wait_in_sync()
        stream = _writes_the_replica_does_not_get(sc, signal.SIGKILL)
        _refused_and_nothing_promoted(sc)
        r = redis.Redis(port=sc.replicas[0][0].port, socket_timeout=5)
        try:
            # what it would have served as master: none of the acknowledged INCRs
            assert r.get("counter") is None
            assert r.info("replication")["slave_repl_offset"] < stream
        finally:
            r.close()


def test_a_hung_master_whose_replica_lacks_its_writes_keeps_them():
    """SIGSTOP instead of kill -9: the writes wait in the hung master. The replica is
    not promoted; when the master runs again it is still the master, with every
    acknowledged INCR, and the replica catches up (the old code promoted the replica,
    and the resumed master was then resynchronised from it: the INCRs were gone)."""
    with sentinel_cluster(replicas=1) as sc:
        sc.start_all()
        sc.wait_in_sync()
        m = sc.masters[0]
        _writes_the_replica_does_not_get(sc, signal.SIGSTOP)
        try:
            _refused_and_nothing_promoted(sc)
        finally:
            m.kill(signal.SIGCONT)
        sc.wait_for(
            lambda: all("[failover-refused-cleared]" in sc.log(s) for s in sc.ids),
            15,
            "the refusal cleared when the master answered",
        )
        master = redis.Redis(port=m.port, socket_timeout=10)
        try:
            assert master.get("counter") == str(WRITES).encode()
            assert master.wait(1, 10_000) == 1  # the replica has all of it now
        finally:
            master.close()
        assert sc.role(m) == ("master", None)
        r = redis.Redis(port=sc.replicas[0][0].port, socket_timeout=5)
        try:
            assert r.get("counter") == str(WRITES).encode()
        finally:
            r.close()
