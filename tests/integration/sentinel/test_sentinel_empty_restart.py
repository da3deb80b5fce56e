"""A master restarted empty before the failover finishes (issue 11 item 4), over real
processes, through the real router.

The master (no persistence, like every test node) holds KEYS keys; it is killed
(-9) and started again on the same port, empty, 0.4 s later - what systemd or
Kubernetes do with a crashed process - so it answers again before
``down_after`` (500 ms) has passed and is never "down" by silence. On the old
code the sentinels saw it answer and did nothing; its replica reconnected,
full-resynchronised from the empty master (a few seconds later: Redis's
diskless-sync delay) and every key of the shard was gone. Now each sentinel
sees the master come back with a lower offset and a new replication ID while
the replica still holds the old stream (``restarted-empty``), counts it down,
and the replica is promoted with the data.
"""

from __future__ import annotations

import time

import redis
from test_sentinel_router import routed, router_epoch  # noqa: F401 (routed: a fixture)

KEYS = 3000


def test_a_master_restarted_empty_is_replaced_by_its_replica(routed):  # noqa: F811
    sc = routed
    m, rep = sc.masters[0], sc.replicas[0][0]
    client = redis.Redis(port=sc.router_port, socket_timeout=5)
    try:
        pipe = client.pipeline(transaction=False)
        for i in range(KEYS):
            pipe.set(f"key:{i}", i)
        pipe.execute()
        master = redis.Redis(port=m.port, socket_timeout=5)
        assert master.wait(1, 5000) == 1  # the replica has every key
        stream = master.info("replication")["master_repl_offset"]
        master.close()
        sc.wait_for(
            lambda: all(sc.status(s)["nodes"][m.addr]["offset"] >= stream for s in sc.ids),
            10,
            "every sentinel sees the master's offset after the writes",
        )
        m.kill()  # kill -9
        time.sleep(0.4)
        m.start()  # the same port, empty: a quick restart without persistence
        sc.wait_for(lambda: router_epoch(sc) >= 1, 15, "the router on a new epoch")
        assert "[restarted-empty]" in sc.logs_text()
        new_master = sc.topology("s1")["shards"][0]["master"]
        assert new_master == rep.addr
        assert sc.role(rep) == ("master", None)
        # every key, read through the router from the promoted replica
        pipe = client.pipeline(transaction=False)
        for i in range(KEYS):
            pipe.get(f"key:{i}")
        values = pipe.execute()
        assert values == [str(i).encode() for i in range(KEYS)]
        # and the emptied node becomes a replica of the one with the data
        sc.wait_for(lambda: sc.role(m) == ("slave", rep.addr), 15, "the old master demoted")
    finally:
        client.close()
