"""Topology pushes and pulls name only cluster.yaml's nodes, with bounded epochs (issue 10, item 7).

With the secret, ``POST /topology`` could name any master (a foreign server got
the router's connections, its ``AUTH <backend password>`` and clients' writes)
and any epoch (2**62 made the router ignore every real failover until
restarted). What the router pulls from the sentinels had the same holes. A
foreign redis-server here counts every connection it receives: none may come.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
import redis
import yaml
from conftest import own_cluster

from slotwarden.procs import RedisFarm, RouterProc, free_port, http_call, write_cluster_yaml

SECRET = "test-secret-topology-trust"


@pytest.fixture(scope="module")
def trust_cluster():
    with own_cluster(env={"SLOTWARDEN_SECRET": SECRET}) as c:
        c.foreign = c.farm.start()  # a redis-server cluster.yaml does not name
        yield c


def send(admin_port: int, body: object, method: str = "POST") -> tuple[int, dict]:
    data = None if method == "GET" else json.dumps(body).encode()
    status, text = http_call(admin_port, method, "/topology", data, SECRET)
    return status, json.loads(text)


def current(admin_port: int) -> dict:
    return send(admin_port, None, "GET")[1]


def connections_received(port: int) -> int:
    r = redis.Redis(port=port, socket_timeout=5)
    try:
        # our own connection is one; INFO's number includes it
        return int(r.info("stats")["total_connections_received"])
    finally:
        r.close()


def assert_refused(status: int, body: dict, *words: str) -> None:
    assert status == 400, body
    reason = body["error"]
    assert reason.startswith("bad topology: ") and "\n" not in reason, reason
    for word in words:
        assert word in reason, reason


def test_a_foreign_master_is_refused_and_never_contacted(trust_cluster):
    c = trust_cluster
    before = connections_received(c.foreign.port)
    topo = current(c.admin_port)
    epoch = topo["epoch"]
    topo["epoch"] = epoch + 1
    topo["shards"][0]["master"] = c.foreign.addr
    reason = f"shard a: node {c.foreign.addr} is not in cluster.yaml"
    assert_refused(*send(c.admin_port, topo), reason)
    assert_refused(*send(c.admin_port, topo), reason)  # the sentinels retry pushes
    assert current(c.admin_port)["epoch"] == epoch  # state unchanged
    # writes to shard a still land on its real master
    r = c.client()
    key = next(f"k{i}" for i in range(1000) if c.owner(f"k{i}") == 0)
    r.set(key, "v")
    assert c.shard_client(0).get(key) == b"v"
    time.sleep(1.0)  # a node the router started would have connected by now
    # our two INFO connections only: the router never connected (no AUTH, no writes)
    assert connections_received(c.foreign.port) == before + 1
    assert c.router.log().count(reason) == 1  # logged once


def test_a_foreign_replica_or_shard_is_refused(trust_cluster):
    c = trust_cluster
    topo = current(c.admin_port)
    epoch = topo["epoch"]
    topo["epoch"] = epoch + 1
    topo["shards"][1]["replicas"] = [c.foreign.addr]
    assert_refused(*send(c.admin_port, topo), "shard b: node", "is not in cluster.yaml")
    topo = current(c.admin_port)
    topo["epoch"] = epoch + 1
    topo["shards"][2]["name"] = "zz"
    assert_refused(*send(c.admin_port, topo), "shard zz is not in cluster.yaml")
    assert current(c.admin_port)["epoch"] == epoch


@pytest.mark.parametrize("epoch", [1 << 63, 10**30, True, 1.5, "7", None, -1])
def test_epochs_that_are_not_64_bit_integers_are_refused(trust_cluster, epoch):
    c = trust_cluster
    topo = current(c.admin_port)
    before = topo["epoch"]
    topo["epoch"] = epoch
    assert_refused(*send(c.admin_port, topo), "epoch")
    assert current(c.admin_port)["epoch"] == before


def test_an_epoch_jump_over_1000_is_refused_a_smaller_one_applies(trust_cluster):
    c = trust_cluster
    topo = current(c.admin_port)
    epoch = topo["epoch"]
    topo["epoch"] = epoch + 1001
    assert_refused(*send(c.admin_port, topo), "more than 1000 above the current epoch")
    assert current(c.admin_port)["epoch"] == epoch
    topo["epoch"] = 1 << 62
    assert_refused(*send(c.admin_port, topo), "more than 1000")
    # a legitimate next epoch, with the file's nodes, still applies - and a jump of 1000
    topo["epoch"] = epoch + 1000
    status, body = send(c.admin_port, topo)
    assert status == 200 and body == {"applied": True, "epoch": epoch + 1000}, body
    r = c.client()
    assert r.set("after-jump", "1") and r.get("after-jump") == b"1"


# -- what the router pulls from the sentinels ---------------------------------------


class SentinelStub:
    """An HTTP server standing where cluster.yaml says a sentinel is: it answers
    ``GET /topology`` with whatever map the test sets (a compromised sentinel)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.topology: dict | None = None
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                after = int(query.get("after", ["-1"])[0])
                if stub.topology is not None and stub.topology.get("epoch") == after:
                    time.sleep(0.5)  # nothing newer: hold the long poll a little
                body = json.dumps(stub.topology).encode()
                self.send_response(200 if stub.topology is not None else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def watched_router(stubs: int) -> Iterator[tuple[RedisFarm, RouterProc, list[SentinelStub], int]]:
    farm = RedisFarm()
    sentinels = [SentinelStub() for _ in range(stubs)]
    router = None
    try:
        masters = [farm.start() for _ in range(2)]
        config = os.path.join(farm.root, "cluster.yaml")
        port, admin = write_cluster_yaml(config, masters)
        with open(config) as f:
            data = yaml.safe_load(f)
        data["sentinel"] = {
            "quorum": 1,
            "down_after_ms": 1000,
            "failover_timeout_ms": 5000,
            "peers": [
                {"id": f"s{i}", "listen": f"127.0.0.1:{s.port}"} for i, s in enumerate(sentinels)
            ],
        }
        with open(config, "w") as f:
            yaml.safe_dump(data, f, sort_keys=False)
        farm.masters = masters  # type: ignore[attr-defined]
        router = RouterProc(
            config, port, os.path.join(farm.root, "router.log"), env={"SLOTWARDEN_SECRET": SECRET}
        )
        router.start()
        yield farm, router, sentinels, admin
    finally:
        if router is not None:
            router.stop()
        for s in sentinels:
            s.close()
        farm.close()


def wait_epoch(admin: int, epoch: int, timeout: float = 8.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if current(admin)["epoch"] == epoch:
            return True
        time.sleep(0.1)
    return False


def test_a_pulled_topology_naming_a_foreign_node_is_refused():
    with watched_router(1) as (farm, router, (stub,), admin):
        foreign = farm.start()
        before = connections_received(foreign.port)
        topo = current(admin)
        topo["epoch"] = 5
        topo["shards"][0]["master"] = foreign.addr
        stub.topology = topo
        # the watcher polls the stub every RETRY_S (it answers at once): give it time
        assert not wait_epoch(admin, 5, timeout=3.0)
        assert connections_received(foreign.port) == before + 1
        assert f"shard a: node {foreign.addr} is not in cluster.yaml" in router.log()
        # the same sentinel then serving a good map is followed
        topo["shards"][0]["master"] = farm.masters[0].addr  # type: ignore[attr-defined]
        stub.topology = topo
        assert wait_epoch(admin, 5)


def test_a_pulled_epoch_jump_needs_a_majority_of_the_sentinels():
    with watched_router(3) as (_farm, router, stubs, admin):
        topo = current(admin)
        topo["epoch"] = 5000
        stubs[0].topology = topo  # one sentinel alone: refused
        assert not wait_epoch(admin, 5000, timeout=3.0)
        assert "more than 1000 above the current epoch" in router.log()
        stubs[1].topology = topo  # a majority (2 of 3) holds it: taken
        assert wait_epoch(admin, 5000)


def test_malformed_pulled_topologies_are_refused_and_the_router_keeps_serving():
    with watched_router(1) as (_farm, router, (stub,), admin):
        topo = current(admin)
        for bad in (
            {"epoch": 7, "shards": [dict(topo["shards"][0], name=f"s{i}") for i in range(300)]},
            {"epoch": 10**30, "shards": topo["shards"]},
            {"epoch": True, "shards": topo["shards"]},
            {"epoch": 7, "shards": [{"name": "a", "slots": "0-16383", "master": 5}]},
        ):
            stub.topology = bad
            time.sleep(1.2)
            assert current(admin)["epoch"] == 0
        assert "Traceback" not in router.log()
        stub.topology = dict(topo, epoch=8)
        assert wait_epoch(admin, 8)
