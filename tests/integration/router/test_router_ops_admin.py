"""Issue 15: which shard holds a key (``GET /slots?key=``, ``slotwarden slot``) and an
index at the admin URL ``up`` prints (it was a 404)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import redis
from conftest import own_cluster

from slotwarden import __version__
from slotwarden.cluster.slots import key_hash_slot

SECRET = "ops-admin-secret"


@pytest.fixture(scope="module")
def ac():
    with own_cluster(env={"SLOTWARDEN_SECRET": SECRET}) as c:
        yield c


def get(c, path: str, accept: str | None = None) -> tuple[int, str, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{c.admin_port}{path}")
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def slot_cli(c, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slotwarden", "slot", "--config", c.config, *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_admin_root_is_an_index(ac) -> None:
    status, ctype, body = get(ac, "/")
    assert status == 200 and ctype.startswith("text/html"), (status, body)
    for path in ("/health", "/ready", "/metrics", "/topology", "/slots"):
        assert f'href="{path}"' in body, path
    assert "POST /topology" in body and "POST /reload" in body
    assert __version__ in body and "topology epoch 0" in body and "3 of 3 shards up" in body
    status, ctype, body = get(ac, "/", accept="application/json")
    data = json.loads(body)
    assert status == 200 and ctype.startswith("application/json")
    assert data["version"] == __version__ and data["cluster"] == "test"
    assert data["epoch"] == 0 and data["shards"] == 3 and data["shards_up"] == 3
    assert {e["path"] for e in data["endpoints"]} >= {"/health", "/metrics", "/slots", "/reload"}


def test_slots_of_keys(ac, redis_cluster_node) -> None:
    keys = ["user:1", "user:3", "{team}:a", "{team}:b", "é"]
    query = "&".join(f"key={urllib.request.quote(k)}" for k in keys)
    status, _, body = get(ac, f"/slots?{query}")
    assert status == 200, body
    data = json.loads(body)
    assert data["epoch"] == 0
    assert [r["key"] for r in data["keys"]] == keys
    for row in data["keys"]:
        slot = key_hash_slot(row["key"].encode())
        owner = ac.owner(row["key"])
        assert row["slot"] == slot
        assert row["shard"] == "abc"[owner] and row["master"] == ac.masters[owner].addr
    assert data["keys"][0]["slot"] == 10778 and data["keys"][1]["slot"] == 2648
    assert data["keys"][2]["slot"] == data["keys"][3]["slot"]
    cluster_node = redis.Redis(port=redis_cluster_node.port, socket_timeout=5)
    for row in data["keys"]:  # what Redis Cluster itself says
        assert cluster_node.execute_command("CLUSTER", "KEYSLOT", row["key"]) == row["slot"]
    status, _, body = get(ac, "/slots?" + "&".join(["key=k"] * 1001))
    assert status == 400 and "at most 1000" in body
    status, _, body = get(ac, "/slots")  # no key: the ranges, as before
    assert status == 200 and [r["shard"] for r in json.loads(body)["slots"]] == ["a", "b", "c"]


def test_slotwarden_slot_asks_the_router_else_the_file() -> None:
    with own_cluster(env={"SLOTWARDEN_SECRET": SECRET}) as c:
        with urllib.request.urlopen(f"http://127.0.0.1:{c.admin_port}/topology", timeout=5) as r:
            topo = json.loads(r.read())
        topo["epoch"] = 4  # the router's map now differs from the file's (epoch 0) ...
        topo["migrations"] = [{"slots": "10778", "from": "a", "to": "b"}]  # ... user:1 moving
        req = urllib.request.Request(
            f"http://127.0.0.1:{c.admin_port}/topology",
            data=json.dumps(topo).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {SECRET}"},
        )
        urllib.request.urlopen(req, timeout=5).read()
        run = slot_cli(c, "user:1", "{team}:a")
        assert run.returncode == 0, run.stderr
        lines = run.stdout.splitlines()
        assert lines[0] == f"from router 127.0.0.1:{c.admin_port}, topology epoch 4:", lines
        b = c.masters[c.owner("user:1")].addr
        assert lines[1].split() == [
            "user:1", "slot", "10778", "shard", "b", "master", b,
            "(migrating", "from", "shard", "a)",
        ]  # fmt: skip
        assert lines[2].split()[:3] == ["{team}:a", "slot", str(key_hash_slot(b"team"))]
        run = slot_cli(c, "--json", "user:1")
        data = json.loads(run.stdout)
        assert data["source"] == f"router 127.0.0.1:{c.admin_port}" and data["epoch"] == 4
        assert data["keys"] == [
            {"key": "user:1", "slot": 10778, "shard": "b", "master": b, "migrating_from": "a"}
        ]
        c.router.stop()
        run = slot_cli(c, "user:1")
        assert run.returncode == 0, run.stderr
        lines = run.stdout.splitlines()
        assert lines[0].startswith(f"from cluster.yaml ({c.config}); the router at "), lines
        assert "did not answer" in lines[0] and lines[0].endswith("topology epoch 0:")
        assert lines[1].split() == ["user:1", "slot", "10778", "shard", "b", "master", b]
