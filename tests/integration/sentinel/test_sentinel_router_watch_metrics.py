"""Issue 15: a router watching quiet sentinels counts no rejected topology updates.

The watcher asks every sentinel at start and then long-polls one (20 s); in a quiet
cluster each answer is the map in use (same epoch). Those answers were counted as
``topology_updates_total{source="watch",result="rejected"}``, ~3 a minute, which
reads like an attack or a bug. They are ``result="unchanged"`` now.
"""

from __future__ import annotations

import re
import time
import urllib.request

import yaml
from test_sentinel_harness import SECRET, sentinel_cluster

from slotwarden.procs import RouterProc, wait_for_port


def watch_updates(admin: str) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("slotwarden_router_topology_updates_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            if labels["source"] == "watch":
                out[labels["result"]] = float(line.rsplit(" ", 1)[1])
    return out


def test_quiet_sentinels_answers_are_unchanged_not_rejected(monkeypatch) -> None:
    monkeypatch.setenv("SLOTWARDEN_SECRET", SECRET)
    with sentinel_cluster(replicas=0) as sc:
        sc.start_all()
        with open(sc.config) as f:
            port = int(yaml.safe_load(f)["router"]["listen"].rsplit(":", 1)[1])
        router = RouterProc(sc.config, port, str(sc.root / "router.log"))
        router.start()
        try:
            host, admin_port = sc.router_admin.rsplit(":", 1)
            wait_for_port(host, int(admin_port))
            deadline = time.monotonic() + 10
            while True:  # the start-up question to every sentinel has been answered
                counts = watch_updates(sc.router_admin)
                if sum(counts.values()) >= 1:
                    break
                assert time.monotonic() < deadline, router.log()[-3000:]
                time.sleep(0.1)
            assert counts["rejected"] == 0, (counts, router.log()[-3000:])
            assert counts["unchanged"] >= 1 or counts["applied"] >= 1, counts
        finally:
            router.stop()
