"""sentinel.report: migration rows, progress lines and status's exit code (pure)."""

from __future__ import annotations

from typing import Any

from sentinel.report import (
    DEGRADED,
    HEALTHY,
    UNREACHABLE,
    bar,
    detail_lines,
    migration_rows,
    progress_line,
    verdict,
)
from slotwarden.cluster.topology import Migration

M = Migration.of([(0, 99)], "a", "d")


def test_rows_take_the_movers_own_report():
    mover = {
        "slots": "0-99", "from": "a", "to": "d", "mover": "s1", "state": "moving",
        "keys_total": 1000, "keys_moved": 400, "keys_left": 600, "rate_keys_per_s": 200.0,
        "eta_s": 3.0, "waiting_for": [], "errors": 0, "reason": None,
    }  # fmt: skip
    hearsay = {"slots": "0-99", "from": "a", "to": "d", "state": "moving", "keys_moved": 0}
    other = {"slots": "500-600", "from": "b", "to": "c", "state": "blocked"}  # not in the map
    rows = migration_rows([M], [("s2", [hearsay, other]), ("s1", [mover]), ("s3", "junk")])
    assert len(rows) == 1
    row = rows[0]
    assert (row["slots"], row["from"], row["to"], row["slot_count"]) == ("0-99", "a", "d", 100)
    assert (row["keys_moved"], row["keys_left"], row["mover"]) == (400, 600, "s1")
    line = progress_line(row)
    assert "slots 0-99 (100) a -> d" in line
    assert bar(0.4) in line and " 40%" in line
    assert "400 moved / 600 left" in line and "200 keys/s" in line and "ETA 3s" in line
    assert line.endswith("moving (mover s1)")


def test_rows_without_any_report_are_still_shown():
    [row] = migration_rows([M], [])
    assert row["state"] == "moving" and row["keys_moved"] is None
    line = progress_line(row)
    assert "[????" in line and "?" in line and "a -> d" in line


def test_details_name_waiting_routers_and_blocks():
    row = {"slots": "0-99", "from": "a", "to": "d", "state": "waiting-routers",
           "waiting_for": ["127.0.0.1:7780 at epoch 11"]}  # fmt: skip
    assert detail_lines(row) == ["waiting for routers: 127.0.0.1:7780 at epoch 11"]
    row = {"slots": "0-99", "from": "a", "to": "d", "state": "blocked", "reason": "target full"}
    assert detail_lines(row) == ["BLOCKED: target full"]


def node(addr: str, expected: str, up: bool = True, role: str | None = None) -> dict[str, Any]:
    return {"addr": addr, "expected": expected, "up": up, "role": role or expected, "error": "x"}


def healthy() -> dict[str, Any]:
    return {
        "topology_epoch": 3,
        "shards": [{"name": "a", "nodes": [node("m:1", "master"), node("r:1", "replica")]}],
        "sentinels": [
            {"id": "s1", "listen": "h:1", "up": True, "refused": {}},
            {"id": "s2", "listen": "h:2", "up": True},
        ],
        "routers": [
            {"admin": "h:9", "up": True, "epoch": 3, "ready": True, "shards_down": []},
            {"admin": "h:8", "up": False, "epoch": None, "ready": False, "shards_down": []},
        ],
        "migrations": [{"slots": "0-99", "from": "a", "to": "d", "state": "moving"}],
    }


def test_verdict_healthy_ignores_a_router_that_does_not_answer():
    assert verdict(healthy(), True) == (HEALTHY, [])


def test_verdict_degraded_reasons():
    cases = []
    r = healthy()
    r["shards"][0]["nodes"][0]["up"] = False
    cases.append((r, "shard a: master m:1 is down"))
    r = healthy()
    r["shards"][0]["nodes"][1]["role"] = "master"
    cases.append((r, "r:1 is a master, the topology says replica"))
    r = healthy()
    r["sentinels"][1]["up"] = False
    cases.append((r, "sentinel s2 (h:2) is not answering"))
    r = healthy()
    r["sentinels"][0]["refused"] = {"a": "no replica in sync"}
    cases.append((r, "sentinel(s) s1 refuse to fail shard a over: no replica in sync"))
    r = healthy()
    r["routers"][0]["epoch"] = 2
    cases.append((r, "router h:9 is at epoch 2, behind 3"))
    r = healthy()
    r["routers"][0].update(ready=False, shards_down=["a"])
    cases.append((r, "router h:9 is not ready (shards down: a)"))
    r = healthy()
    r["migrations"][0].update(state="blocked", reason="MIGRATE: OOM on d")
    cases.append((r, "0-99 a -> d is blocked: MIGRATE: OOM on d"))
    for report, why in cases:
        code, problems = verdict(report, True)
        assert code == DEGRADED, why
        assert any(why in p for p in problems), (why, problems)


def test_verdict_unreachable():
    r = healthy()
    for s in r["sentinels"]:
        s["up"] = False
    code, problems = verdict(r, True)
    assert code == UNREACHABLE
    assert problems == ["no sentinel answers: s1 (h:1), s2 (h:2)"]
    # without sentinels: unreachable when no node answers
    r = healthy()
    r["sentinels"] = []
    for n in r["shards"][0]["nodes"]:
        n["up"] = False
    assert verdict(r, False)[0] == UNREACHABLE
