"""`bench/large_requests.py` end to end, small: real shards, a real router, one redis-server.

40,000 keys (more than one fan-out piece), unpaced: both rows, both peers, numbers and
the ratios line; the script stops everything it started.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1].parent / "bench" / "large_requests.py"

pytestmark = pytest.mark.timeout(180)


def test_large_requests_bench_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--args", "40000", "--rate", "0"],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    number = r"\s*(?:[0-9.]+|nan)\s*"  # nan: no GET finished during a short request
    for row in ("1024 B writes", "one write"):
        for peer in ("direct", "router"):
            pattern = rf"^{row}\s*\| {peer}\s*\|" + r"\|".join([number] * 6) + r"$"
            assert any(re.match(pattern, line) for line in lines), (row, peer, out.stdout)
        assert any(line.startswith(row) and "CPU x" in line for line in lines), out.stdout
    assert "router/direct ratios:" in lines
