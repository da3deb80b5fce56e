"""cluster.yaml's ``redis:`` blocks applied by three real sentinels (issue 13, shard config).

The redis-servers start with Redis's defaults; the sentinels set the blocks' values on
every node (the lowest id alive sends CONFIG SET, once per change, one event each), set
back a value changed by hand, report a node that refuses as drift (GET /status, one
event, ``slotwarden status``), follow a live edit of the blocks, and a replica promoted
by a kill -9 failover already runs the settings.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest
import redis
import yaml
from test_sentinel_harness import SECRET, SentinelCluster

from sentinel.act.redisconf import INTERVAL, RedisConfigApplier
from sentinel.decide.model import Event
from slotwarden.cluster import config as cfg
from slotwarden.procs import RedisFarm, RedisProc

MiB = 1024 * 1024


def config_of(node: RedisProc, key: str) -> str:
    r = redis.Redis(port=node.port, socket_timeout=2, decode_responses=True)
    try:
        return r.config_get(key)[key]
    finally:
        r.close()


@pytest.fixture(scope="module")
def sc():
    farm = RedisFarm()
    cluster = None
    try:
        cluster = SentinelCluster(farm, shards=2, replicas=1, failover_timeout_ms=3000)
        with open(cluster.config) as f:
            data = yaml.safe_load(f)
        data["redis"] = {"maxmemory": "100mb", "maxmemory-policy": "allkeys-lru"}
        data["shards"][1]["redis"] = {"maxmemory": "200mb", "notify-keyspace-events": "Ex"}
        with open(cluster.config, "w") as f:
            yaml.safe_dump(data, f, sort_keys=False)
        cluster.data = data
        cluster.start_all()
        for shard in range(2):
            cluster.wait_in_sync(shard)
        yield cluster
    finally:
        if cluster is not None:
            cluster.close()
        farm.close()


def test_the_sentinels_apply_the_blocks_to_every_node(sc):
    want = [
        (sc.nodes(0), {"maxmemory": str(100 * MiB), "maxmemory-policy": "allkeys-lru"}),
        (sc.nodes(1), {"maxmemory": str(200 * MiB), "maxmemory-policy": "allkeys-lru",
                       "notify-keyspace-events": "xE"}),
    ]  # fmt: skip

    def applied():
        return all(config_of(n, k) == v for nodes, kv in want for n in nodes for k, v in kv.items())

    sc.wait_for(applied, 20, "the redis: settings on every node")
    lines = [f"[redis-config] set maxmemory={100 * MiB} on {n.addr} (shard a; was 0)"
             for n in sc.nodes(0)]  # fmt: skip
    sc.wait_for(lambda: all(line in sc.log("s1") for line in lines), 5, "s1's events")
    # one sentinel applies (the lowest id alive); the others only look
    assert "[redis-config] set" not in sc.log("s2") + sc.log("s3")
    assert sc.status("s1")["redis_config"] == {"applier": True, "drift": []}
    sc.wait_for(lambda: sc.status("s2")["redis_config"]["drift"] == [], 10, "s2 sees no drift")
    assert sc.status("s2")["redis_config"]["applier"] is False


def test_a_value_changed_by_hand_is_set_back_once(sc):
    replica = sc.replicas[0][0]
    redis.Redis(port=replica.port).config_set("maxmemory", "12345")
    sc.wait_for(lambda: config_of(replica, "maxmemory") == str(100 * MiB), 15, "maxmemory back")
    line = f"[redis-config] set maxmemory={100 * MiB} on {replica.addr} (shard a; was 12345)"
    sc.wait_for(lambda: line in sc.log("s1"), 5, "the event")
    assert sc.log("s1").count(line) == 1


def test_a_node_that_refuses_is_drift_in_status_with_one_event(sc):
    replica = sc.replicas[1][0]
    admin = redis.Redis(port=replica.port, decode_responses=True)
    with admin.pipeline(transaction=True) as tx:  # atomic: no pass in between
        tx.config_set("maxmemory", "777")
        tx.execute_command("ACL", "SETUSER", "default", "-config|set")
        tx.execute()
    try:
        entry = {"node": replica.addr, "shard": "b", "key": "maxmemory",
                 "want": str(200 * MiB), "have": "777"}  # fmt: skip

        def drift(sid: str) -> list[dict]:
            return sc.status(sid)["redis_config"]["drift"]

        sc.wait_for(lambda: drift("s1") and drift("s2"), 15, "drift reported by s1 and s2")
        (seen,) = drift("s1")
        assert {k: seen[k] for k in entry} == entry, seen
        assert "no permissions to run the 'config|set' command" in seen["error"], seen
        assert drift("s2") == [entry]  # s2 does not set: it only saw the difference
        time.sleep(INTERVAL + 1)  # another pass or two: still one event
        assert sc.log("s1").count("[redis-config-drift]") == 1, sc.log("s1")
        env = {**os.environ, "SLOTWARDEN_SECRET": SECRET}
        out = subprocess.run(
            [sys.executable, "-m", "slotwarden", "status", "--config", sc.config],
            capture_output=True, text=True, env=env, timeout=30,
        )  # fmt: skip
        assert "redis config DRIFT" in out.stdout, out.stdout + out.stderr
        assert f"  {replica.addr} (shard b) maxmemory: want {200 * MiB}, have 777" in out.stdout, (
            out.stdout
        )
        assert f"{replica.addr} (shard b) runs maxmemory=777, cluster.yaml says " in sc.log("s1")
    finally:
        admin.execute_command("ACL", "SETUSER", "default", "+config|set")
    sc.wait_for(lambda: config_of(replica, "maxmemory") == str(200 * MiB), 15, "fixed once allowed")
    sc.wait_for(lambda: sc.status("s1")["redis_config"]["drift"] == [], 10, "no drift left")
    assert sc.log("s1").count("[redis-config-drift]") == 1


def test_a_live_edit_of_the_blocks_reaches_every_node(sc):
    sc.data["redis"]["maxmemory"] = "64mb"
    sc.data["shards"][1]["redis"] = {"notify-keyspace-events": "KEA"}  # b: the top maxmemory
    with open(sc.config, "w") as f:
        yaml.safe_dump(sc.data, f, sort_keys=False)
    nodes = sc.nodes(0) + sc.nodes(1)

    def edited():
        return all(config_of(n, "maxmemory") == str(64 * MiB) for n in nodes) and all(
            config_of(n, "notify-keyspace-events") == "AKE" for n in sc.nodes(1)
        )

    sc.wait_for(edited, 15, "the edited settings on every node")
    assert "[redis-config] set" not in sc.log("s2") + sc.log("s3")


def test_a_promoted_replica_already_runs_the_settings(sc):
    old = sc.masters[0]
    replica = sc.replicas[0][0]
    old.kill(signal.SIGKILL)

    def promoted():
        return sc.topology("s1")["shards"][0]["master"] == replica.addr

    sc.wait_for(promoted, 20, "the replica promoted")
    assert sc.role(replica) == ("master", None)
    assert config_of(replica, "maxmemory") == str(64 * MiB)
    assert config_of(replica, "maxmemory-policy") == "allkeys-lru"
    # nothing needed setting on it after the promotion
    sc.wait_for(lambda: sc.status("s1")["redis_config"]["drift"] == [], 10, "no drift")
    assert sc.log("s1").count(f"on {replica.addr} (shard a; was {64 * MiB})") == 0


def test_a_node_closing_idle_connections_is_still_looked_after(farm):
    """With ``timeout: 1`` in the block the node closes the applier's kept connection
    between passes: the next pass reconnects and still sets a value changed by hand."""
    node = farm.start(["--timeout", "1"])
    shards = [{"name": "a", "slots": "0-16383", "master": node.addr}]
    block = {"timeout": 1, "maxmemory": "10mb"}
    config = cfg.parse({"name": "t", "router": {"listen": "127.0.0.1:1"}, "redis": block,
                        "shards": shards})  # fmt: skip
    events: list[Event] = []
    applier = RedisConfigApplier("s1", "test", lambda: (config, config.slotmap()), {},
                                 events.append)  # fmt: skip

    async def two_passes() -> None:
        try:
            await applier.apply_once(config, config.slotmap())
            await asyncio.sleep(2.5)  # the node drops the idle connection
            redis.Redis(port=node.port).config_set("maxmemory", "1")
            await applier.apply_once(config, config.slotmap())
        finally:
            await applier.close(applier.clients)

    asyncio.run(two_passes())
    assert config_of(node, "maxmemory") == str(10 * MiB)
    assert [e.text for e in events] == [
        f"set maxmemory={10 * MiB} on {node.addr} (shard a; was 0)",
        f"set maxmemory={10 * MiB} on {node.addr} (shard a; was 1)",
    ]
    assert applier.drift == []
