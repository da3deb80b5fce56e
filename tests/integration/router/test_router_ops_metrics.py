"""Issue 15, the router's metric semantics found by using it: sub-millisecond latency,
quiet-cluster topology counters, a bounded number of command series."""

from __future__ import annotations

import re
import urllib.request

import pytest
from conftest import own_cluster

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
