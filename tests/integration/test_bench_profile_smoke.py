"""`bench/profile.py` end to end, small: real shards and router, redis-benchmark, the
router's user and system CPU per request read from /proc."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "profile.py"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("row", ["SET -P 1", "MGET"])
def test_profile_bench_runs(row: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--row", row, "--requests", "5000"],
        cwd=tmp_path, capture_output=True, text=True, timeout=100,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{row}: ") and "requests per second" in lines[0], done.stdout
    cpu = re.fullmatch(r"router user (\d+\.\d\d) sys (\d+\.\d\d) µs/req", lines[1])
    assert cpu is not None, done.stdout
    assert float(cpu[1]) + float(cpu[2]) > 0, "the router used no CPU for 5000 requests?"
