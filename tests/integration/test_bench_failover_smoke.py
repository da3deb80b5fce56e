"""`bench/failover.py --scenario kill9 --trials 1` end to end: real redis-servers, 3
slotwarden sentinels and a router beside 3 redis-sentinels, a real `kill -9`.

Asserts the report's table has one kill9 row per system with a recovery time and a
lost-writes count, and the JSON the same. Redis Sentinel missing here must be named by the
script's own "redis-sentinel not available" line; nothing is skipped silently. Numbers are
not asserted (speed is for the bench to show, not for a test to time).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "failover.py"


def table_rows(report: str) -> dict[tuple[str, str], dict[str, str]]:
    """{(scenario, system): {column header: cell}} from the report's table."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("scenario "))
    head = [c.strip() for c in lines[start].split("|")]
    rows = {}
    for line in lines[start + 2 :]:
        if " | " not in line:
            break
        cells = [c.strip() for c in line.split("|")]
        rows[(cells[0], cells[1])] = dict(zip(head, cells, strict=True))
    return rows


@pytest.mark.timeout(150)
def test_one_kill9_trial_prints_both_systems(tmp_path):
    out_json = tmp_path / "failover.json"
    cmd = [sys.executable, str(SCRIPT), "--scenario", "kill9", "--trials", "1",
           "--preload", "2000", "--json", str(out_json)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        report, err = proc.communicate(timeout=130)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the script's try/finally stops what it started
        report, err = proc.communicate(timeout=20)
        pytest.fail(f"bench/failover.py overran 130 s\n{report}\n{err[-2000:]}")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{report}\n{err[-2000:]}"

    systems = ["slotwarden", "redis-sentinel"]
    if shutil.which("redis-sentinel") is None and not Path("/usr/bin/redis-sentinel").exists():
        assert "redis-sentinel not available" in err, err
        systems.remove("redis-sentinel")
    rows = table_rows(report)
    assert sorted(rows) == sorted(("kill9", s) for s in systems), report
    summary = {s["system"]: s for s in json.loads(out_json.read_text())["summary"]}
    for system in systems:
        row = rows[("kill9", system)]
        assert row["recovered"] == "1/1", report
        assert row["recovery median"].endswith(" s"), report
        float(row["recovery median"].removesuffix(" s"))
        int(row["acked lost median"])
        int(row["client errors median"])
        assert summary[system]["scenario"] == "kill9"
        assert summary[system]["recovery_median_s"] > 0
        assert summary[system]["lost_median"] >= 0
