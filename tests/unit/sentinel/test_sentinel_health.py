"""``GET /health`` of a sentinel turns 503 when its run cycle stalls (issue 10, item 6).

A real `Sentinel` (not started) with an injected clock, and its real aiohttp
handler: the cycle's completion time stays put while the clock moves on.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import yaml
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from sentinel.http.api import SENTINEL_KEY, health
from sentinel.run.loop import Sentinel
from slotwarden.cluster.config import load


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_sentinel(tmp_path: Path, clock: Clock) -> Sentinel:
    config = {
        "name": "health",
        "router": {"listen": "127.0.0.1:7000", "admin": "127.0.0.1:7001"},
        "shards": [{"name": "a", "slots": "0-16383", "master": "127.0.0.1:7002"}],
        "sentinel": {
            "quorum": 1,
            "down_after_ms": 1000,
            "probe_interval_ms": 100,
            "failover_timeout_ms": 3000,
            "state_dir": str(tmp_path / "state"),
            "peers": [{"id": "s1", "listen": "127.0.0.1:7003"}],
        },
    }
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(config))
    return Sentinel(load(str(path)), "s1", "secret", clock=clock)


def get_health(sentinel: Sentinel) -> tuple[int, dict]:
    app = web.Application()
    app[SENTINEL_KEY] = sentinel
    resp = asyncio.run(health(make_mocked_request("GET", "/health", app=app)))
    assert resp.body is not None
    return resp.status, json.loads(resp.body)  # type: ignore[arg-type]


def test_health_is_503_while_the_run_cycle_is_stalled(tmp_path: Path) -> None:
    clock = Clock()
    s = make_sentinel(tmp_path, clock)
    clock.now += 0.5  # within 5 probe intervals / down_after / 2 s
    assert get_health(s) == (200, {"ok": True, "id": "s1", "epoch": 0, "topology_epoch": 0})
    clock.now += 3.0  # no cycle completed for 3.5 s: stalled
    status, body = get_health(s)
    assert status == 503 and body["ok"] is False
    assert body["error"] == "run cycle stalled: none completed for 3.5 s"
    s.cycle_done_at = clock()  # what decide_forever records after each completed cycle
    assert get_health(s)[0] == 200
