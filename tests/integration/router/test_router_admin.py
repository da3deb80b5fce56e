"""The router's admin HTTP API: health, readiness, topology, slots, authenticated pushes."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request

import pytest
from conftest import own_cluster

SECRET = "test-secret-123"


@pytest.fixture
def admin_cluster():
    with own_cluster(env={"SLOTWARDEN_SECRET": SECRET}) as c:
        yield c


def http(cluster, method: str, path: str, body: object = None, secret: str | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"http://127.0.0.1:{cluster.admin_port}{path}", data=data, method=method
    )
    if secret is not None:
        req.add_header("Authorization", f"Bearer {secret}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_health_ready_topology_slots(admin_cluster) -> None:
    c = admin_cluster
    assert http(c, "GET", "/health") == (200, {"ok": True})
    status, body = http(c, "GET", "/ready")
    assert status == 200 and body["ready"] is True and body["epoch"] == 0
    status, topo = http(c, "GET", "/topology")
    assert status == 200 and topo["epoch"] == 0
    assert [s["master"] for s in topo["shards"]] == [m.addr for m in c.masters]
    status, slots = http(c, "GET", "/slots")
    assert [row["slots"] for row in slots["slots"]] == ["0-5460", "5461-10922", "10923-16383"]
    # a dead master makes the router not ready, naming the shard
    c.masters[2].kill(signal.SIGKILL)
    deadline = time.time() + 5
    while http(c, "GET", "/ready")[0] != 503 and time.time() < deadline:
        time.sleep(0.05)
    status, body = http(c, "GET", "/ready")
    assert status == 503 and body["shards_down"] == ["c"]


def test_topology_push_needs_secret_and_higher_epoch(admin_cluster) -> None:
    import yaml

    c = admin_cluster
    spare = c.farm.start()
    # a push may name only cluster.yaml's nodes (issue 10, item 7): list the spare in shard a
    with open(c.config) as f:
        data = yaml.safe_load(f)
    data["shards"][0]["replicas"] = [spare.addr]
    with open(c.config, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    assert http(c, "POST", "/reload", {}, secret=SECRET)[1]["applied"] is True
    _status, topo = http(c, "GET", "/topology")
    base = topo["epoch"]  # the reload published the new replica (no sentinels here)
    new = json.loads(json.dumps(topo))
    new["epoch"] = base + 1
    new["shards"][0]["master"] = spare.addr
    new["shards"][0]["replicas"] = [c.masters[0].addr]
    # no or wrong secret: 401 and nothing changes
    assert http(c, "POST", "/topology", new)[0] == 401
    assert http(c, "POST", "/topology", new, secret="wrong")[0] == 401
    assert http(c, "GET", "/topology")[1]["epoch"] == base
    # malformed body
    assert http(c, "POST", "/topology", {"epoch": 2}, secret=SECRET)[0] == 400
    # with the secret: applied, and routing follows at once
    applied = {"applied": True, "epoch": base + 1}
    assert http(c, "POST", "/topology", new, secret=SECRET) == (200, applied)
    r = c.client()
    key = next(k for k in (f"k{i}" for i in range(1000)) if c.owner(k) == 0)
    r.set(key, "v")
    import redis

    assert redis.Redis(port=spare.port).get(key) == b"v"
    assert c.shard_client(0).get(key) is None
    # same or lower epoch: refused
    stale = json.loads(json.dumps(topo))
    refused = {"applied": False, "epoch": base + 1}
    assert http(c, "POST", "/topology", stale, secret=SECRET) == (200, refused)
    assert http(c, "POST", "/topology", new, secret=SECRET) == (200, refused)
    assert f"topology epoch {base} -> {base + 1}" in c.router.log()
    assert SECRET not in c.router.log()


def test_without_secret_topology_is_read_only(cluster) -> None:
    status, topo = http(cluster, "GET", "/topology")
    topo["epoch"] = 5
    status, body = http(cluster, "POST", "/topology", topo, secret="anything")
    assert status == 403 and "no shared secret" in body["error"]
