"""A sentinel takes only topologies naming cluster.yaml's nodes, bounded epochs (issue 10, item 7).

``POST /topology`` (and what a sentinel takes from its peers) could name any
node - the sentinel then probed it and could promote it - and ``POST /vote``
any epoch up to 2**63-1, after which every later election's topology was at
an epoch routers cannot follow. And a real failover must still reach the
router after it refused a push.
"""

from __future__ import annotations

import signal
import time
import urllib.request

import pytest
import redis
from test_sentinel_harness import SECRET, sentinel_cluster

from slotwarden.procs import RouterProc, wait_for_port


@pytest.fixture(scope="module")
def one():
    with sentinel_cluster(sentinels=1, quorum=1, replicas=1) as sc:
        sc.start("s1")
        sc.foreign = sc.farm.start()  # a redis-server cluster.yaml does not name
        yield sc


def connections_received(port: int) -> int:
    r = redis.Redis(port=port, socket_timeout=5)
    try:
        return int(r.info("stats")["total_connections_received"])
    finally:
        r.close()


def refused(sc, body: object, *words: str, path: str = "/topology") -> str:
    status, data = sc.http("s1", path, body)
    assert status == 400, data
    reason = data["error"]  # type: ignore[index]
    assert "\n" not in reason
    for word in words:
        assert word in reason, reason
    return reason


def test_a_foreign_master_or_replica_is_refused_and_never_probed(one):
    sc = one
    before = connections_received(sc.foreign.port)
    topo = sc.topology("s1")
    epoch = topo["epoch"]
    topo["epoch"] = epoch + 1
    topo["shards"][0]["master"] = sc.foreign.addr
    refused(sc, topo, f"bad topology: shard a: node {sc.foreign.addr} is not in cluster.yaml")
    topo = sc.topology("s1")
    topo["epoch"] = epoch + 1
    topo["shards"][0]["replicas"] = [*topo["shards"][0]["replicas"], sc.foreign.addr]
    refused(sc, topo, "is not in cluster.yaml")
    topo = sc.topology("s1")
    topo["epoch"] = epoch + 1
    topo["shards"][0]["name"] = "zz"
    refused(sc, topo, "shard zz is not in cluster.yaml")
    assert sc.topology("s1")["epoch"] == epoch
    time.sleep(1.0)  # probes run every 100 ms: a watched node would have been connected
    assert connections_received(sc.foreign.port) == before + 1
    assert sc.foreign.addr not in sc.status("s1")["nodes"]


@pytest.mark.parametrize("epoch", [1 << 63, 10**30, True, 1.5, "7"])
def test_epochs_that_are_not_64_bit_integers_are_refused(one, epoch):
    topo = one.topology("s1")
    topo["epoch"] = epoch
    refused(one, topo, "epoch")


def test_an_epoch_jump_over_1000_is_refused_a_smaller_one_applies(one):
    sc = one
    topo = sc.topology("s1")
    epoch = max(topo["epoch"], sc.status("s1")["epoch"])
    topo["epoch"] = epoch + 1001
    refused(sc, topo, "more than 1000 above the current epoch")
    topo["epoch"] = 1 << 62
    refused(sc, topo, "more than 1000 above the current epoch")
    topo["epoch"] = epoch + 1000
    status, data = sc.http("s1", "/topology", topo)
    assert status == 200 and data == {"applied": True, "epoch": epoch + 1000}, data


def test_a_vote_epoch_jump_over_1000_is_refused(one):
    sc = one
    epoch = sc.status("s1")["epoch"]
    refused(sc, {"epoch": epoch + 1001, "candidate": "s1"}, "more than 1000", path="/vote")
    refused(sc, {"epoch": (1 << 63) - 1, "candidate": "s1"}, "more than 1000", path="/vote")
    assert sc.status("s1")["epoch"] == epoch


# -- the router follows a real failover after refusing a push -------------------------


def router_epoch(admin: str) -> int:
    import json

    with urllib.request.urlopen(f"http://{admin}/topology", timeout=2) as resp:
        return json.loads(resp.read())["epoch"]


def push_router(admin: str, body: object) -> int:
    import json
    import urllib.error

    req = urllib.request.Request(
        f"http://{admin}/topology",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_real_failover_still_applies_after_a_refused_push(monkeypatch):
    monkeypatch.setenv("SLOTWARDEN_SECRET", SECRET)
    with sentinel_cluster(replicas=1) as sc:
        sc.start_all()
        sc.wait_in_sync()
        import yaml

        with open(sc.config) as f:
            port = int(yaml.safe_load(f)["router"]["listen"].rsplit(":", 1)[1])
        router = RouterProc(sc.config, port, str(sc.root / "router.log"))
        router.start()
        try:
            host, admin_port = sc.router_admin.rsplit(":", 1)
            wait_for_port(host, int(admin_port))
            topo = sc.topology("s1")
            for huge in (1 << 62, (1 << 63) - 1):  # would have frozen the router's epoch
                assert push_router(sc.router_admin, dict(topo, epoch=huge)) == 400
            assert router_epoch(sc.router_admin) == 0
            sc.masters[0].kill(signal.SIGKILL)
            sc.wait_for(lambda: router_epoch(sc.router_admin) >= 1, 20, "the router's failover")
            new = sc.replicas[0][0]
            r = redis.Redis(port=port, socket_timeout=5)
            sc.wait_for(lambda: r.set("after", "1"), 10, "writes through the router")
            assert redis.Redis(port=new.port).get("after") == b"1"
            r.close()
        finally:
            router.stop()
