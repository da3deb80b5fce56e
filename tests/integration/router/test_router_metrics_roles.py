"""The router's node gauges (issue 15, metric semantics): the role is not part of a node's
``node_up`` series, healthy replicas do not read as down, and ``ready`` is what ``GET /ready``
answers.

Two shards, each a real master with a real replica, behind a real router; a topology push
swaps shard b's master and replica as a failover would; then shard a's master is killed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request

import pytest

from slotwarden.procs import RedisFarm, RouterProc, http_call, write_cluster_yaml

SECRET = "roles-metrics-secret"
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(admin_port: int) -> Series:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: Series = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            name, _, rest = key.partition("{")
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', rest))
            out[(name, labels)] = float(value)
    return out


def rows(samples: Series, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def lab(**kw: str) -> frozenset[tuple[str, str]]:
    return frozenset(kw.items())


@pytest.fixture
def two_shards():
    farm = RedisFarm()
    router = None
    try:
        masters = [farm.start(), farm.start()]
        replicas = [farm.start(["--replicaof", "127.0.0.1", str(m.port)]) for m in masters]
        config = os.path.join(farm.root, "cluster.yaml")
        port, admin = write_cluster_yaml(config, masters, [[r] for r in replicas])
        router = RouterProc(
            config, port, os.path.join(farm.root, "router.log"), env={"SLOTWARDEN_SECRET": SECRET}
        )
        router.start()
        yield masters, replicas, admin
    finally:
        if router is not None:
            router.stop()
        farm.close()


def wait_until(admin: int, check, what: str) -> Series:
    deadline = time.monotonic() + 10
    while True:
        samples = scrape(admin)
        if check(samples):
            return samples
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {samples}"
        time.sleep(0.05)


def test_node_up_has_no_role_and_ready_follows_get_ready(two_shards) -> None:
    masters, replicas, admin = two_shards
    (ma, mb), (ra, rb) = masters, replicas
    up = "slotwarden_router_node_up"
    role = "slotwarden_router_node_role"
    want_up = {lab(shard="a", node=ma.addr): 1.0, lab(shard="b", node=mb.addr): 1.0}
    samples = wait_until(admin, lambda s: rows(s, up) == want_up, "both masters connected")
    # healthy replicas do not show as down; no node_up row carries a role
    assert all(v == 1 for v in rows(samples, up).values())
    assert rows(samples, "slotwarden_router_ready") == {frozenset(): 1.0}
    assert http_call(admin, "GET", "/ready")[0] == 200

    def roles(a_master: str, a_replica: str, b_master: str, b_replica: str) -> dict:
        out = {}
        for shard, master, replica in (("a", a_master, a_replica), ("b", b_master, b_replica)):
            for node, is_master in ((master, True), (replica, False)):
                out[lab(shard=shard, node=node, role="master")] = 1.0 if is_master else 0.0
                out[lab(shard=shard, node=node, role="replica")] = 0.0 if is_master else 1.0
        return out

    assert rows(samples, role) == roles(ma.addr, ra.addr, mb.addr, rb.addr)

    # shard b fails over (as the router sees it: a pushed topology with a higher epoch)
    topo = json.loads(http_call(admin, "GET", "/topology")[1])
    for shard in topo["shards"]:
        if shard["name"] == "b":
            shard["master"], shard["replicas"] = rb.addr, [mb.addr]
    topo["epoch"] += 1
    status, body = http_call(admin, "POST", "/topology", json.dumps(topo).encode(), SECRET)
    assert status == 200 and json.loads(body)["applied"] is True, body
    want_up = {lab(shard="a", node=ma.addr): 1.0, lab(shard="b", node=rb.addr): 1.0}
    samples = wait_until(admin, lambda s: rows(s, up) == want_up, "the new master connected")
    # the same node_role series as before, with the roles swapped
    assert rows(samples, role) == roles(ma.addr, ra.addr, rb.addr, mb.addr)

    # shard a's master dies: its node_up and the router's ready go to 0 with GET /ready
    ma.kill(signal.SIGKILL)
    samples = wait_until(
        admin, lambda s: rows(s, up).get(lab(shard="a", node=ma.addr)) == 0.0, "a's master down"
    )
    assert rows(samples, "slotwarden_router_ready") == {frozenset(): 0.0}
    assert http_call(admin, "GET", "/ready")[0] == 503
    assert rows(samples, up) == {
        lab(shard="a", node=ma.addr): 0.0,
        lab(shard="b", node=rb.addr): 1.0,
    }
