"""`bench/throughput.py --quick` end to end: real shards, twemproxy, router, redis-benchmark.

Asserts a table with numeric rps for every peer that should run, and (on Linux) a second table
with the router's CPU time per request. A peer that cannot run here must be named by the
script's own "not available: <reason>" line; nothing is skipped silently.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "throughput.py"
PEERS = ("direct", "twemproxy", "router")
ROWS = ("SET -P 1", "GET -P 1", "SET -P 16", "GET -P 16", "MSET 10 keys -P 1", "MGET 10 keys -P 1")
HAS_PROC = Path(f"/proc/{os.getpid()}/stat").exists()  # CPU time is read from /proc/<pid>/stat


def run_quick(json_path: Path, cwd: Path) -> tuple[int, str, str]:
    """Run the script; on overrun send SIGTERM (not SIGKILL) so it stops what it started."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(SCRIPT),
            "--quick",
            "--requests",
            "2000",
            "--timeout",
            "15",
            "--json",
            str(json_path),
        ],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=50)
    except subprocess.TimeoutExpired:
        proc.terminate()
        out, err = proc.communicate(timeout=15)
        pytest.fail(f"bench/throughput.py --quick overran 50s\n{out}\n{err[-2000:]}")
    return proc.returncode, out, err


def parse_table(text: str, column: str = "direct rps") -> dict[str, dict[str, str]]:
    """{row label: {column header: cell}} from the report's `|`-separated table that has
    `column` (the throughput table by default)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("test ") and column in line)
    head = [c.strip() for c in lines[start].split("|")]
    table = {}
    for line in lines[start + 2 :]:
        if " | " not in line:  # a blank line or the notes under the table end it
            break
        cells = [c.strip() for c in line.split("|")]
        table[cells[0]] = dict(zip(head, cells, strict=True))
    return table


@pytest.mark.timeout(60)
def test_quick_run_prints_numeric_table(tmp_path):
    code, report, err = run_quick(tmp_path / "bench.json", tmp_path)
    assert code == 0, f"exit {code}\n{report}\n{err[-2000:]}"

    router = importlib.util.find_spec("router") is not None
    expect = {"direct": True, "twemproxy": True, "router": router}
    if shutil.which("nutcracker") is None:
        expect["twemproxy"] = False
        assert "twemproxy not available: nutcracker not found on PATH" in report, report
    if not expect["router"]:
        assert "router not available: the router package is not installed" in report, report

    table = parse_table(report)
    assert tuple(table) == ROWS, report
    for label, row in table.items():
        for peer in PEERS:
            cell = row[f"{peer} rps"]
            if expect[peer]:
                assert cell.isdigit() and int(cell) > 0, f"{peer} {label}: {cell!r}\n{report}"
            else:
                assert cell == "n/a", f"{peer} {label}: {cell!r}\n{report}"
        verdicts = [
            line.split()[0]
            for line in report.splitlines()
            if line.startswith("  ")
            and f" {label}: " in line
            and line.split()[0] in ("PASS", "MISS", "N/A")
        ]
        # one line per target: router/twemproxy rps (issue 9), CPU per request (issue 15)
        assert len(verdicts) == 2, f"want two PASS/MISS/N/A lines for {label}\n{report}"
        cpu_line = [line for line in report.splitlines() if f" {label}: router CPU" in line]
        assert len(cpu_line) == 1 and "(target <= 1.00)" in cpu_line[0], report
        if expect["router"] and expect["twemproxy"]:
            assert float(row["router/twemproxy"]) > 0, report
            assert all(v in ("PASS", "MISS") for v in verdicts), report

    assert "proxy CPU per request (process utime+stime / requests; lower is better)" in report
    cpu = parse_table(report, "router µs/req")
    assert tuple(cpu) == ROWS, report
    for label, row in cpu.items():
        for peer in PEERS:
            us, cores = row[f"{peer} µs/req"], row[f"{peer} cores"]
            if not (expect[peer] and HAS_PROC):
                assert us == cores == "n/a", f"{peer} {label}: {us!r} {cores!r}\n{report}"
            else:  # a row of a short run can take less than one clock tick (10 ms): 0.0
                assert float(us) >= 0 and float(cores) >= 0, f"{peer} {label}: {us!r}\n{report}"
        cpu_ratio = row["router CPU \u00d7"]
        assert cpu_ratio == "n/a" or float(cpu_ratio) >= 0, f"{label}: {cpu_ratio!r}\n{report}"
    if expect["router"] and HAS_PROC:
        # the CPU reading works: all rows together (21,000 requests) take many clock ticks
        # of the router's process, though one row (500 MSETs) may take none
        assert sum(float(row["router µs/req"]) for row in cpu.values()) > 0, report

    data = json.loads((tmp_path / "bench.json").read_text())
    assert [r["test"] for r in data["rows"]] == list(ROWS)
    if expect["router"] and HAS_PROC:
        cells = [r["peers"]["router"] for r in data["rows"]]
        for cell in cells:
            assert cell["cpu_us"] >= 0 and cell["cores"] >= 0, cell
            assert all(run["cpu_seconds"] >= 0 for run in cell["runs"]), cell
        assert sum(run["cpu_seconds"] for cell in cells for run in cell["runs"]) > 0, cells
    assert data["problems"] == []
    assert data["environment"]["redis_benchmark"] != "unknown"


def test_compare_prints_both_trees_per_row(tmp_path):
    """bench/compare.py with this checkout on both sides: a row per benchmark, numbers
    for both trees (the two routers really served the requests: CPU was measured)."""
    if not (REPO / ".venv" / "bin" / "python").exists():
        pytest.skip("bench/compare.py runs each tree's .venv; this checkout has none")
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "compare.py"), "--before", str(REPO),
         "--rounds", "2", "--requests", "2000"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if " | " in line and "µs/req" not in line]
    assert [r.split(" | ")[0].strip() for r in rows] == [
        "SET -P 1", "GET -P 1", "SET -P 16", "GET -P 16", "MSET 10 keys -P 1", "MGET 10 keys -P 1",
    ], out.stdout  # fmt: skip
    total = 0.0
    for row in rows:
        cells = row.split(" | ")
        before, after = float(cells[1]), float(cells[2])
        assert before >= 0 and after >= 0, row
        assert len(cells[4].split()) == 2 and len(cells[5].split()) == 2, row  # every run shown
        total += before + after
    assert total > 0, out.stdout  # a 10 ms clock tick can hide one row, not all of them
