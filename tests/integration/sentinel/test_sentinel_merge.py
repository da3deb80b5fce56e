"""Two leaders at once: a publish at a higher epoch never overwrites one at a lower epoch.

The race: leader A publishes epoch 5 while leader B, elected for epoch 6
before A's map existed, is still failing over another shard. B's map must
be built on top of A's (B adopts the newest map its peers hold before
publishing), not on the map B had when it was elected.

Here the test plays A through the public API (A's votes, then A's map
reaching one sentinel only): all three sentinels vote for s1 in epoch 5, so
s1 is the only one free to lead the next election; shard b's master is
killed; once s1 is elected for epoch 6 (and slowed down between failover
steps), the epoch-5 map - slots 0-999 moved from a to b - is posted to s3.
Every sentinel must end on epoch 6 with both the slot move and b's failover.
"""

from __future__ import annotations

import signal

from test_sentinel_harness import sentinel_cluster


def test_a_leader_publishes_on_top_of_a_lower_epoch_published_meanwhile():
    with sentinel_cluster(shards=2, replicas=1, failover_timeout_ms=6000) as sc:
        sc.start_all("--step-pause-ms", "600")
        sc.wait_in_sync(1)
        for sid in sc.ids:
            status, answer = sc.http(sid, "/vote", {"epoch": 5, "candidate": "s1"})
            assert status == 200 and answer["granted"] is True, answer
        epoch5 = sc.topology("s3")
        epoch5["epoch"] = 5
        epoch5["shards"][0]["slots"] = "1000-8191"
        epoch5["shards"][1]["slots"] = "0-999,8192-16383"
        b_master, b_replica = sc.masters[1], sc.replicas[1][0]
        b_master.kill(signal.SIGKILL)
        sc.wait_for(lambda: "[elected] epoch 6: s1 elected" in sc.log("s1"), 10, "s1 elected")
        assert all(sc.topology(sid)["epoch"] == 0 for sid in sc.ids)
        status, answer = sc.http("s3", "/topology", epoch5)
        assert status == 200 and answer == {"applied": True, "epoch": 5}

        def published():
            topos = [sc.topology(sid) for sid in sc.ids]
            return all(t["epoch"] == 6 for t in topos) and topos[0]

        final = sc.wait_for(published, 15, "epoch 6 on every sentinel")
        a, b = final["shards"]
        assert (a["slots"], b["slots"]) == ("1000-8191", "0-999,8192-16383"), final
        assert b["master"] == b_replica.addr and b_master.addr in b["replicas"]
        # s1 took epoch 5 from s3 (pulled before publishing, or pushed to it meanwhile)
        assert "topology epoch 5 adopted from" in sc.log("s1")
        assert "Traceback" not in sc.logs_text()
