"""Issue 15, the router's metric semantics found by using it: sub-millisecond latency,
quiet-cluster topology counters, a bounded number of command series."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
import redis
from conftest import own_cluster

SECRET = "ops-metrics-secret"
CONTRACT = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "METRICS.md"
SUB_MS = ("0.0001", "0.00025", "0.0005")  # bucket bounds a millisecond clock cannot tell apart


@pytest.fixture(scope="module")
def oc():
    with own_cluster() as c:
        yield c


def scrape_text(c) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{c.admin_port}/metrics", timeout=5) as r:
        return r.read().decode()


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        base, _, rest = line.partition("{")
        if base == name and rest:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', rest.rpartition("}")[0]))
            out.append((labels, float(line.rsplit(" ", 1)[1])))
    return out


def test_latency_histogram_resolves_sub_millisecond(oc) -> None:
    # With uvloop's loop.time() (millisecond ticks) every fast request measured 0 or
    # 1 ms: the 100/250/500 µs buckets all held the same count. A real clock spreads
    # thousands of round trips (tens to hundreds of µs each) over them.
    r = oc.client()
    r.set("lat", "x")
    for _ in range(3000):
        r.get("lat")
    buckets = {
        labels["le"]: v
        for labels, v in samples(scrape_text(oc), "slotwarden_router_command_seconds_bucket")
        if labels["shape"] == "single"
    }
    count = buckets["+Inf"]
    assert count >= 2000
    values = [buckets[le] for le in SUB_MS]
    assert len(set(values)) > 1, f"sub-ms buckets all equal: {values} of {count}"
    assert "5e-05" in buckets  # a 50 µs bucket for the fastest requests


def contract_row(name: str) -> str:
    text = CONTRACT.read_text()
    return next(line for line in text.splitlines() if line.startswith(f"| `{name}` |"))


def error_counts(text: str) -> dict[str, float]:
    rows = samples(text, "slotwarden_router_command_errors_total")
    return {labels["outcome"]: v for labels, v in rows}


def test_commands_total_has_two_series_per_command(oc) -> None:
    # 8 outcome series per command made ~900 series per router after a test run; now a
    # command has ok and error, and the error outcomes are counted once, without it.
    r = oc.client()
    r.rpush("alist", 1)
    before = error_counts(scrape_text(oc))
    for args in (("GET", "alist"), ("NOSUCHCOMMAND",), ("DEBUG", "SLEEP", "0"),
                 ("SCRIPT", "DEBUG", "NO"), ("GET", "a", "b")):  # fmt: skip
        with pytest.raises(redis.ResponseError):
            r.execute_command(*args)
    for i in range(40):
        r.set(f"k{i}", i)
        r.incr(f"n{i}")
        r.exists(f"k{i}")
    text = scrape_text(oc)
    cmds = samples(text, "slotwarden_router_commands_total")
    commands = {labels["command"] for labels, _ in cmds}
    assert {"get", "set", "incrby", "exists", "unknown", "debug"} <= commands
    outcomes = sorted(labels["outcome"] for labels, _ in cmds)
    assert outcomes == ["error"] * len(commands) + ["ok"] * len(commands)
    by = {(labels["command"], labels["outcome"]): v for labels, v in cmds}
    assert by[("debug", "error")] == 1 and by[("set", "ok")] >= 40
    errors = error_counts(text)
    assert len(errors) == 7
    delta = {k: v - before[k] for k, v in errors.items()}
    assert delta == {"error": 1, "invalid": 2, "crossslot": 0, "rejected": 1,
                     "unsupported": 1, "unavailable": 0, "timeout": 0}  # fmt: skip
    assert sum(errors.values()) == sum(v for (_, o), v in by.items() if o == "error")
    # the contract names exactly the outcomes served, in METRICS.md
    row = contract_row("slotwarden_router_command_errors_total")
    meaning = row.split(" | ")[3]
    declared = set(
        re.findall(r"`([a-z]+)`", meaning.partition("by outcome:")[2].partition("; without")[0])
    )
    assert declared == set(errors), (declared, set(errors))
    row = contract_row("slotwarden_router_commands_total")
    declared = set(re.findall(r"`([a-z]+)`", row.split(" | ")[3].partition(":")[2]))
    assert declared == {"ok", "error"}


def push(c, body: dict, secret: str = SECRET) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{c.admin_port}/topology",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {secret}"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def updates(c) -> dict[tuple[str, str], float]:
    rows = samples(scrape_text(c), "slotwarden_router_topology_updates_total")
    return {(labels["source"], labels["result"]): v for labels, v in rows}


def test_the_map_in_use_again_is_unchanged_not_rejected() -> None:
    # A sentinel's long poll that ends with no change answers the map in use (same
    # epoch): ~3/min in a quiet cluster were counted as rejections. A push of the map
    # in use takes the same path (RouteTable.apply_topology).
    with own_cluster(env={"SLOTWARDEN_SECRET": SECRET}) as c:
        with urllib.request.urlopen(f"http://127.0.0.1:{c.admin_port}/topology", timeout=5) as r:
            topo = json.loads(r.read())
        before = updates(c)
        assert before[("watch", "unchanged")] == 0 and before[("push", "unchanged")] == 0
        assert push(c, topo) == {"applied": False, "epoch": topo["epoch"]}
        assert push(c, topo) == {"applied": False, "epoch": topo["epoch"]}
        after = updates(c)
        assert after[("push", "unchanged")] == 2
        assert after[("push", "rejected")] == 0
        newer = {**topo, "epoch": topo["epoch"] + 2}
        assert push(c, newer)["applied"] is True
        assert push(c, topo)["applied"] is False  # an older epoch: a real rejection
        swapped = {
            **newer,
            "shards": [newer["shards"][1], newer["shards"][0], *newer["shards"][2:]],
        }
        assert push(c, swapped)["applied"] is False  # same epoch, another map: rejected too
        after = updates(c)
        assert after[("push", "applied")] == 1
        assert after[("push", "rejected")] == 2
        assert after[("push", "unchanged")] == 2
