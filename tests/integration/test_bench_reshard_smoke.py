"""`bench/reshard.py --keys 2000` end to end: Redis Cluster (4 cluster-mode redis-servers,
``redis-cli --cluster reshard``) beside slotwarden (3 shards + a 4th, 3 sentinels, a
router, the cluster.yaml edit), both moving the same 4096 slots under two client loops.

Asserts each system's row has numbers (keys moved, move time, keys/s, both loops' ops/s
before and during), that every key was verified ``ok`` after the move (contents, TTLs, one
node per key, nothing left on a source) and the script exited 0. Redis Cluster missing
must be named by the script's own "not available" line. Speed is not asserted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "reshard.py"


def rows(report: str) -> dict[str, list[dict[str, str]]]:
    """{system: [row per client loop]} from the report's table (system cell carried down)."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("system "))
    head = [c.strip() for c in lines[start].split("|")]
    out: dict[str, list[dict[str, str]]] = {}
    system = ""
    for line in lines[start + 2 :]:
        if " | " not in line:
            break
        cells = dict(zip(head, (c.strip() for c in line.split("|")), strict=True))
        system = cells["system"] or system
        out.setdefault(system, []).append(cells)
    return out


@pytest.mark.timeout(300)
def test_small_run_moves_and_verifies_on_both_systems(tmp_path):
    out_json = tmp_path / "reshard.json"
    cmd = [sys.executable, str(SCRIPT), "--keys", "2000", "--measure-s", "1",
           "--json", str(out_json)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        report, err = proc.communicate(timeout=270)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the script's try/finally stops what it started
        report, err = proc.communicate(timeout=20)
        pytest.fail(f"bench/reshard.py overran 270 s\n{report}\n{err[-2000:]}")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{report}\n{err[-2000:]}"
    systems = ["slotwarden", "redis-cluster"]
    if shutil.which("redis-cli") is None:
        assert "redis-cluster not available" in err, err
        systems.remove("redis-cluster")
    table = rows(report)
    assert sorted(table) == sorted(systems), report
    for system in systems:
        first, second = table[system]
        assert first["verified"] == "ok", report
        assert int(first["keys moved"]) > 0
        float(first["move s"])
        float(first["keys/s"])
        assert {first["client"], second["client"]} == {"other slots", "moving slots"}
        for row in (first, second):
            float(row["ops/s before"])
            float(row["during"])
    data = {r["system"]: r for r in json.loads(out_json.read_text())}
    assert sorted(data) == sorted(systems)
    assert all(not r["problems"] and r["keys_per_s"] > 0 for r in data.values())
    if len(systems) == 2:
        assert "slotwarden / redis-cluster: keys/s " in report
        # the same slots moved in both
        assert data["slotwarden"]["moved_slots"] == data["redis-cluster"]["moved_slots"]
