"""Sentinel restarts and leader death, with real processes.

- A sentinel killed (-9) and restarted resumes its epoch, vote and topology
  from its state directory (even with every peer down) and never votes twice
  in an epoch: the vote is on disk before the HTTP answer.
- The leader killed in the middle of a failover (``--step-pause-ms`` holds it
  between steps long enough to kill it after the promotion) -> another
  sentinel wins a later epoch and finishes the failover.
- A sentinel that was down during a failover comes back with epoch 0 on disk
  while the old master is back too: it learns epoch 1 from its peers and
  never turns the new master into a replica of the old one.
"""

from __future__ import annotations

import re
import signal
import time

from test_sentinel_harness import sentinel_cluster
from test_sentinel_kill import assert_replicas_of


def one_epoch(sc, ids) -> bool:
    """Every sentinel in ``ids`` serves the same epoch, 1 or later (a split vote
    can skip one)."""
    epochs = {sc.topology(s)["epoch"] for s in ids}
    return len(epochs) == 1 and min(epochs) >= 1


def test_restarted_sentinel_keeps_epoch_and_never_votes_twice():
    with sentinel_cluster(replicas=1) as sc:
        sc.start_all()
        sc.wait_in_sync()  # a replica that never synced is not promoted (issue 11)
        m = sc.masters[0]
        m.kill(signal.SIGKILL)
        sc.wait_for(lambda: one_epoch(sc, sc.ids), 15, "failover to epoch 1 (or later)")
        before = sc.status("s2")
        # a vote in a future epoch, answered, then kill -9 right away
        status, answer = sc.http("s2", "/vote", {"epoch": 7, "candidate": "s1"})
        assert status == 200 and answer["granted"] is True
        sc.stop("s2", signal.SIGKILL)
        # restart with every peer down: what it knows comes from its state dir
        sc.stop("s1")
        sc.stop("s3")
        sc.start("s2")
        after = sc.status("s2")
        assert after["epoch"] == 7 and after["voted_epoch"] == 7 and after["voted_for"] == "s1"
        assert after["topology"] == before["topology"]
        assert after["topology_epoch"] == before["topology_epoch"] >= 1
        status, answer = sc.http("s2", "/vote", {"epoch": 7, "candidate": "s3"})
        assert status == 200 and answer["granted"] is False and answer["voted_for"] == "s1"
        status, answer = sc.http("s2", "/vote", {"epoch": 6, "candidate": "s3"})
        assert answer["granted"] is False
        status, answer = sc.http("s2", "/vote", {"epoch": 7, "candidate": "s1"})
        assert answer["granted"] is True  # the same request again: same answer
        # and a clean restart (SIGTERM) too
        assert sc.stop("s2") == 0
        sc.start("s2")
        assert sc.http("s2", "/vote", {"epoch": 7, "candidate": "s3"})[1]["granted"] is False


def test_leader_killed_mid_failover_another_finishes():
    with sentinel_cluster(failover_timeout_ms=4000) as sc:
        sc.start_all("--step-pause-ms", "700")
        sc.wait_in_sync()
        m = sc.masters[0]
        m.kill(signal.SIGKILL)
        leader = sc.wait_for(
            lambda: next((s for s in sc.ids if "[promoted]" in sc.log(s)), None),
            15,
            "a leader to promote a replica",
        )
        sc.stop(leader, signal.SIGKILL)  # between promote and verify (700 ms pause)
        killed_at = time.monotonic()
        assert "[switch]" not in sc.log(leader)
        survivors = [s for s in sc.ids if s != leader]

        def finished():
            topos = [sc.topology(s) for s in survivors]
            if all(t["epoch"] >= 2 for t in topos) and topos[0] == topos[1]:
                return topos[0]
            return None

        topo = sc.wait_for(finished, 25, "a surviving sentinel to finish the failover")
        print(f"finished {time.monotonic() - killed_at:.1f} s after the leader died")
        new_master = topo["shards"][0]["master"]
        assert new_master != m.addr
        promoted = next(p for p in sc.replicas[0] if p.addr == new_master)
        others = [p for p in sc.replicas[0] if p is not promoted]
        assert sc.role(promoted) == ("master", None)
        assert_replicas_of(sc, new_master, others)
        later = [
            int(e) for s in survivors for e in re.findall(r"\[elected\] epoch (\d+)", sc.log(s))
        ]
        assert later and min(later) >= 2, later


def test_sentinel_that_missed_a_failover_catches_up_and_never_undoes_it():
    with sentinel_cluster(replicas=1) as sc:
        sc.start_all()
        sc.wait_in_sync()
        sc.stop("s3", signal.SIGKILL)  # s3 keeps epoch 0 on disk
        m, r = sc.masters[0], sc.replicas[0][0]
        m.kill(signal.SIGKILL)
        sc.wait_for(lambda: one_epoch(sc, ("s1", "s2")), 15, "failover")
        m.start()  # the old master is back, as an empty master, as s3's epoch 0 says
        sc.start("s3")
        # the failover's epoch: 1, or later if a split vote skipped one
        epoch = sc.topology("s1")["epoch"]
        sc.wait_for(lambda: sc.topology("s3")["epoch"] == epoch, 5, "s3 to learn the epoch")
        assert_replicas_of(sc, r.addr, [m], timeout=15)
        # give s3 the chance to undo it: at least 1 s, and until it has probed both nodes
        # since then and seen r as the master and m as its replica (on a loaded machine
        # a fixed sleep can end before s3 probed anything)
        settled_at = time.monotonic()

        def s3_saw_it() -> bool:
            since_ms = (time.monotonic() - settled_at) * 1000  # before asking: conservative
            nodes = sc.status("s3")["nodes"]
            return (
                time.monotonic() - settled_at >= 1.0
                and nodes[r.addr]["role"] == "master"
                and nodes[m.addr]["role"] == "replica"
                and nodes[m.addr]["master"] == r.addr
                and all(nodes[a]["last_ok_ms_ago"] < since_ms for a in (r.addr, m.addr))
            )

        sc.wait_for(s3_saw_it, 15, "s3 to probe both nodes after the catch-up")
        assert sc.role(r) == ("master", None)
        assert f"making it a replica of {m.addr}" not in sc.logs_text()
        assert f"topology epoch {epoch} adopted from peer" in sc.log("s3")
