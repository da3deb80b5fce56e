"""Live edits of cluster.yaml: file watch, SIGHUP, POST /reload; bad edits rejected."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request

import pytest
import redis
import yaml
from conftest import own_cluster

from slotwarden.cluster.slots import key_hash_slot

SECRET = "reload-secret"


@pytest.fixture
def rc():
    with own_cluster(check_exit=True, env={"SLOTWARDEN_SECRET": SECRET}) as c:
        yield c


def topology(c) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{c.admin_port}/topology", timeout=5) as r:
        return json.loads(r.read())


def edit(c, change) -> None:
    with open(c.config) as f:
        data = yaml.safe_load(f)
    change(data)
    with open(c.config, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)


def wait_until(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def key_in_slots(lo: int, hi: int) -> str:
    return next(
        k for k in (f"m{i}" for i in range(100000)) if lo <= key_hash_slot(k.encode()) <= hi
    )


def test_moving_slots_applies_live_without_dropping_clients(rc) -> None:
    r = rc.client()
    cid = r.client_id()
    key = key_in_slots(0, 100)
    r.set(key, "before")
    assert rc.shard_client(0).get(key) == b"before"

    def move(data):
        data["shards"][0]["slots"] = "101-5460"
        data["shards"][1]["slots"] = "0-100,5461-10922"

    edit(rc, move)
    wait_until(lambda: topology(rc)["epoch"] == 1)
    t = topology(rc)
    assert t["shards"][1]["slots"] == "0-100,5461-10922"
    r.set(key, "after")  # same connection, now routed to shard b
    assert r.client_id() == cid
    assert rc.shard_client(1).get(key) == b"after"
    assert rc.shard_client(0).get(key) == b"before"  # routing moved, data did not
    assert "reload (file changed) applied" in rc.router.log()


def test_without_sentinels_an_edit_moving_slots_warns_that_keys_stay(rc) -> None:
    def move(data):
        data["shards"][0]["slots"] = "101-5460"
        data["shards"][1]["slots"] = "0-100,5461-10922"

    edit(rc, move)
    wait_until(lambda: topology(rc)["epoch"] == 1)
    wait_until(lambda: "without sentinels keys are not moved" in rc.router.log())
    (line,) = [ln for ln in rc.router.log().splitlines() if "keys are not moved" in ln]
    assert "WARNING" in line
    assert "slots 0-100 moved a -> b: without sentinels keys are not moved; see README " in line
    assert "migrations" not in topology(rc)


def test_invalid_edit_is_rejected_and_the_running_config_stays(rc) -> None:
    def break_it(data):
        data["shards"][1]["slots"] = "5471-10922"
        data["shards"][2]["master"] = "127.0.0.1"
        data["shardz"] = []

    edit(rc, break_it)
    wait_until(lambda: "reload rejected" in rc.router.log())
    log = rc.router.log()
    assert "slots 5461-5470 are not assigned to any shard" in log
    assert "shards[2].master: malformed address" in log
    assert "unknown key 'shardz'" in log
    assert topology(rc)["epoch"] == 0
    r = rc.client()
    assert r.set("still", "serving") and r.get("still") == b"serving"


def test_sighup_and_post_reload(rc) -> None:
    edit(rc, lambda d: d["router"].update(command_timeout_ms=1500))
    rc.router.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "command_timeout_ms 2000 -> 1500" in rc.router.log())
    url = f"http://127.0.0.1:{rc.admin_port}/reload"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=5)
    assert err.value.code == 401
    edit(rc, lambda d: d["router"].update(command_timeout_ms=1200))
    req = urllib.request.Request(url, data=b"", method="POST")
    req.add_header("Authorization", f"Bearer {SECRET}")
    with urllib.request.urlopen(req, timeout=5) as resp:
        body = json.loads(resp.read())
    assert body["applied"] is True
    assert any("command_timeout_ms 1500 -> 1200" in c for c in body["changes"])
    # a rejected reload over HTTP lists every problem
    edit(rc, lambda d: d["router"].update(command_timeout_ms="soon"))
    req = urllib.request.Request(url, data=b"", method="POST")
    req.add_header("Authorization", f"Bearer {SECRET}")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 422
    assert "command_timeout_ms" in json.loads(err.value.read())["problems"][0]


def test_adding_a_shard(rc) -> None:
    extra = rc.farm.start()

    def add(data):
        data["shards"][2]["slots"] = "10923-13000"
        data["shards"].append({"name": "d", "slots": "13001-16383", "master": extra.addr})

    edit(rc, add)
    wait_until(lambda: len(topology(rc)["shards"]) == 4)
    key = key_in_slots(13001, 16383)
    rc.client().set(key, "d")
    assert redis.Redis(port=extra.port).get(key) == b"d"
