"""GET /metrics on the router: every metric of the contract is there and moves with traffic."""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis
from conftest import own_cluster

SECRET = "metrics-secret"
CONTRACT = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "METRICS.md"


@pytest.fixture
def mc():
    extra = {"reconnect_min_ms": 20, "reconnect_max_ms": 100}
    with own_cluster(env={"SLOTWARDEN_SECRET": SECRET}, extra_router=extra) as c:
        yield c


def scrape(c) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{c.admin_port}/metrics", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def value(samples: dict[str, float], name: str, **labels: str) -> float:
    """The sample ``name`` whose labels include ``labels`` (0 if absent)."""
    for key, v in samples.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if all(found.get(k) == want for k, want in labels.items()):
            return v
    return 0.0


def router_names_in_contract() -> set[str]:
    return set(re.findall(r"`(slotwarden_router_[a-z_]+)`", CONTRACT.read_text()))


def test_every_contract_metric_is_exposed(mc) -> None:
    mc.client().set("warm", 1)
    samples = scrape(mc)
    exposed = {k.partition("{")[0] for k in samples}
    for name in router_names_in_contract():
        variants = {name, f"{name}_bucket", f"{name}_count"}
        assert exposed & variants, f"{name} is in METRICS.md but not on /metrics"


def test_command_counters_move_with_traffic(mc) -> None:
    r = mc.client()
    r.ping()  # connect first: redis-py's handshake sends commands of its own
    before = scrape(mc)
    for i in range(200):
        r.set(f"k{i}", i)
        r.get(f"k{i}")
    r.mget([f"k{i}" for i in range(30)])
    r.rpush("alist", 1)
    with pytest.raises(redis.ResponseError):
        r.get("alist")  # WRONGTYPE: an error reply from Redis
    keys = [f"k{i}" for i in range(30)]
    a = next(k for k in keys if mc.owner(k) == 0)
    b = next(k for k in keys if mc.owner(k) == 1)
    with pytest.raises(redis.ResponseError):
        r.rename(a, b)  # a move between shards stays CROSSSLOT
    with pytest.raises(redis.ResponseError):
        r.execute_command("NOSUCHCOMMAND")
    with pytest.raises(redis.ResponseError):
        r.execute_command("DEBUG", "SLEEP", "0")
    after = scrape(mc)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    total = "slotwarden_router_commands_total"
    assert delta(total, command="set", outcome="ok") == 200
    assert delta(total, command="get", outcome="ok") == 200
    assert delta(total, command="get", outcome="error") == 1
    assert delta(total, command="mget", outcome="ok") == 1
    assert delta(total, command="rename", outcome="error") == 1
    assert delta(total, command="unknown", outcome="error") == 1
    assert delta(total, command="debug", outcome="error") == 1
    errors = "slotwarden_router_command_errors_total"
    assert delta(errors, outcome="error") == 1  # the WRONGTYPE
    assert delta(errors, outcome="crossslot") == 1
    assert delta(errors, outcome="invalid") == 1
    assert delta(errors, outcome="rejected") == 1
    assert delta("slotwarden_router_command_seconds_count", shape="single") >= 400 // 16 - 2
    assert delta("slotwarden_router_command_seconds_count", shape="fanout-ordered") == 1
    assert delta("slotwarden_router_received_bytes_total") > 400 * 20
    assert delta("slotwarden_router_sent_bytes_total") > 400 * 4
    assert value(after, "slotwarden_router_client_connections") >= 1
    assert delta("slotwarden_router_client_connections_total") == 0  # same connection


def test_what_the_router_cannot_honour_counts_as_unsupported(mc) -> None:
    # One reply text for "not supported by the router", whoever answers it: the
    # planner (SCRIPT DEBUG) and MULTI's queue-time check.
    # Each is outcome=unsupported, not error.
    r = mc.client()
    r.ping()
    before = scrape(mc)
    with pytest.raises(redis.ResponseError, match="'script debug' is not supported"):
        r.execute_command("SCRIPT", "DEBUG", "NO")
    assert r.execute_command("MULTI") in (b"OK", "OK", True)
    with pytest.raises(redis.ResponseError, match="'subscribe' inside MULTI is not supported"):
        r.execute_command("SUBSCRIBE", "ch")
    assert r.execute_command("DISCARD") in (b"OK", "OK", True)
    after = scrape(mc)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    total = "slotwarden_router_commands_total"
    for command in ("script|debug", "subscribe"):
        assert delta(total, command=command, outcome="error") == 1, command
    errors = "slotwarden_router_command_errors_total"
    assert delta(errors, outcome="unsupported") == 2
    assert delta(errors, outcome="error") == 0


def test_backend_state_errors_and_topology(mc) -> None:
    node = mc.masters[1].addr
    samples = scrape(mc)
    assert (
        value(samples, "slotwarden_router_backend_connections", node=node, state="connected") >= 1
    )
    assert value(samples, "slotwarden_router_node_up", shard="b", node=node) == 1
    errors_before = value(samples, "slotwarden_router_backend_errors_total", node=node)
    mc.masters[1].kill(signal.SIGKILL)
    r = mc.client()
    key = next(k for k in (f"x{i}" for i in range(1000)) if mc.owner(k) == 1)
    deadline = time.monotonic() + 5
    while True:
        with pytest.raises(redis.ResponseError):
            r.get(key)
        samples = scrape(mc)
        if value(samples, "slotwarden_router_node_up", shard="b", node=node) == 0:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert value(samples, "slotwarden_router_backend_errors_total", node=node) > errors_before
    assert value(samples, "slotwarden_router_command_errors_total", outcome="unavailable") >= 1
    assert (
        value(samples, "slotwarden_router_backend_connections", node=node, state="connected") == 0
    )

    # topology pushes and admin auth failures
    admin = f"http://127.0.0.1:{mc.admin_port}"
    with urllib.request.urlopen(f"{admin}/topology", timeout=5) as resp:
        topo = json.loads(resp.read())
    topo["epoch"] = 3
    req = urllib.request.Request(f"{admin}/topology", data=json.dumps(topo).encode(), method="POST")
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(req, timeout=5)  # no secret
    req.add_header("Authorization", f"Bearer {SECRET}")
    urllib.request.urlopen(req, timeout=5).read()
    samples = scrape(mc)
    assert value(samples, "slotwarden_router_topology_epoch") == 3
    assert (
        value(samples, "slotwarden_router_topology_updates_total", source="push", result="applied")
        == 1
    )
    assert value(samples, "slotwarden_router_auth_failures_total", endpoint="admin") == 1
    assert value(samples, "slotwarden_router_config_last_reload_successful") == 1
