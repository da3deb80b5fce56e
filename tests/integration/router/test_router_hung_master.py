"""Requests in flight to a hung master are answered within command_timeout_ms, even when
the topology replaces that master meanwhile (issue 11 item 3).

A master is SIGSTOPped with requests in flight; a second later a topology naming
its replica as master is pushed (as the sentinels would). The replaced master's
connection used to leave the router's timeout sweep: its requests waited for the
retirement grace (failover time + command timeout, ~3 s at a 2 s timeout) and
nothing was logged. Each must be answered within the timeout (plus a margin for a
loaded machine: a correctness bound, not a speed claim), and the hang logged once.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request

import redis

from slotwarden.procs import RouterProc, write_cluster_yaml

SECRET = "hung-master-secret"
TIMEOUT_MS = 2000
MARGIN = 0.5
CLIENTS = 5


def _push(admin_port: int, topology: dict) -> None:
    req = urllib.request.Request(
        f"http://127.0.0.1:{admin_port}/topology",
        data=json.dumps(topology).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert json.loads(resp.read())["applied"] is True


def test_in_flight_requests_to_a_replaced_hung_master_answer_within_the_timeout(farm):
    master = farm.start()
    replica = farm.start(["--replicaof", "127.0.0.1", str(master.port)])
    config = os.path.join(farm.root, "cluster.yaml")
    port, admin_port = write_cluster_yaml(
        config, [master], [[replica]], extra_router={"command_timeout_ms": TIMEOUT_MS}
    )
    router = RouterProc(
        config, port, os.path.join(farm.root, "router.log"), env={"SLOTWARDEN_SECRET": SECRET}
    )
    router.start()
    stopped = False
    try:
        clients = [redis.Redis(port=port, socket_timeout=10) for _ in range(CLIENTS)]
        for c in clients:
            assert c.set("k", "v")  # connected, and the backend connection is up
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/topology", timeout=5) as r:
            topology = json.loads(r.read())

        took: list[float] = []
        answers: list[object] = []

        def ask(c: redis.Redis) -> None:
            started = time.monotonic()
            try:
                answers.append(c.get("k"))
            except redis.RedisError as exc:
                answers.append(exc)
            took.append(time.monotonic() - started)

        master.kill(signal.SIGSTOP)
        stopped = True
        threads = [threading.Thread(target=ask, args=(c,), daemon=True) for c in clients]
        for t in threads:
            t.start()
        time.sleep(1.0)  # hung for a second, then "the sentinels" replace the master
        replica_client = redis.Redis(port=replica.port)
        replica_client.execute_command("REPLICAOF", "NO", "ONE")
        replica_client.close()
        shard = topology["shards"][0]
        shard["master"], shard["replicas"] = replica.addr, [master.addr]
        topology["epoch"] += 1
        _push(admin_port, topology)
        for t in threads:
            t.join(timeout=15)
        assert len(took) == CLIENTS, took
        limit = TIMEOUT_MS / 1000 + MARGIN
        assert max(took) <= limit, (took, router.log())
        for answer in answers:
            # -CLUSTERDOWN shard a timed out (no reply within 2000 ms)
            assert isinstance(answer, redis.exceptions.ClusterDownError), answers
            assert f"timed out (no reply within {TIMEOUT_MS} ms)" in str(answer), answers
        log = router.log()
        hang = [line for line in log.splitlines() if f"no reply for {TIMEOUT_MS} ms" in line]
        assert len(hang) == 1 and master.addr in hang[0], log
        # the dropped connection of a replaced master is not reconnected (nothing to send)
        time.sleep(0.3)
        assert "refused the router's handshake" not in router.log()
        assert f"backend {master.addr} (shard a) is back" not in router.log()
        # the new master serves
        assert clients[0].set("k2", "v2") and clients[0].get("k2") == b"v2"
        for c in clients:
            c.close()
    finally:
        if stopped:
            master.kill(signal.SIGCONT)
        router.stop()
