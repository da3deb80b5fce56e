"""`bench/throughput.py --workers 2 --pin`: a router-w2 row beside the router's, with its cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_bench_smoke import ROWS, SCRIPT, parse_table

HAS_PROC = Path(f"/proc/{os.getpid()}/stat").exists()


@pytest.mark.timeout(60)
def test_workers_rows_state_their_core_budget(tmp_path: Path) -> None:
    cmd = [sys.executable, str(SCRIPT), "--quick", "--requests", "1000", "--timeout", "15"]
    cmd += ["--peers", "router", "--workers", "2", "--pin", "--json", str(tmp_path / "b.json")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=55, cwd=tmp_path)
    report = done.stdout
    assert done.returncode == 0, f"{report}\n{done.stderr[-2000:]}"
    table = parse_table(report, "router-w2 rps")
    assert tuple(table) == ROWS, report
    for label, row in table.items():
        assert row["router-w2 rps"].isdigit(), f"{label}\n{report}"
        assert float(row["router-w2/router"]) > 0, f"{label}\n{report}"
    assert "core budget of every row: " in report
    if len(os.sched_getaffinity(0)) >= 2:
        assert "pinned (--pin)" in report and "router-w2: slotwarden router" in report
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["names"][-1] == "router-w2" and data["problems"] == []
    if HAS_PROC:  # the supervisor's and both workers' CPU, together
        cells = [r["peers"]["router-w2"] for r in data["rows"]]
        assert sum(run["cpu_seconds"] for c in cells for run in c["runs"]) > 0, cells
