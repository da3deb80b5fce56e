"""`bench/tracking.py --quick` end to end: real shards, two routers, caching clients.

Asserts the table has numbers for every row (reads/s, ops/s), a hit ratio for the cache rows
and staleness samples for them (every probe write's invalidation arrived), no client errors,
and exit status 0. Speed is not asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "tracking.py"


def table(report: str) -> dict[str, dict[str, str]]:
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("row "))
    head = [c.strip() for c in lines[start].split("|")]
    out = {}
    for line in lines[start + 2 :]:
        if " | " not in line:
            break
        cells = [c.strip() for c in line.split("|")]
        out[cells[0]] = dict(zip(head, cells, strict=True))
    return out


@pytest.mark.timeout(120)
def test_quick_run_prints_every_row(tmp_path):
    out_json = tmp_path / "tracking.json"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--seconds", "0.5", "--warmup", "0.2",
           "--samples", "10", "--json", str(out_json)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        report, err = proc.communicate(timeout=100)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the script's finally stops what it started
        report, err = proc.communicate(timeout=20)
        pytest.fail(f"bench/tracking.py --quick overran 100 s\n{report}\n{err[-2000:]}")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{report}\n{err[-2000:]}"
    rows = table(report)
    assert list(rows) == ["direct", "direct+cache", "router", "router+cache"], report
    for name, cells in rows.items():
        assert float(cells["reads/s"]) > 0 and float(cells["ops/s"]) > 0, report
        assert cells["errors"] == "0", report
        if name.endswith("+cache"):
            assert 0 < float(cells["hit ratio"]) <= 1, report
            assert 1 <= int(cells["samples"]) <= 10, report
            assert float(cells["stale max ms"]) < 5000, report
        else:
            assert cells["hit ratio"] == "n/a", report
    assert "router+cache / router reads/s:" in report
    data = json.loads(out_json.read_text())
    assert [r["name"] for r in data["rows"]] == list(rows)
