"""Operator papercuts of the `slotwarden` command line (issue 15), as real subprocesses.

`--version`; `failover` naming a shard that does not exist lists the real ones;
`sentinel --help` does not show the knobs that exist for tests (they are still
accepted).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from slotwarden import __version__
from slotwarden.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "cluster.yaml"


def slotwarden(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "slotwarden", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_version(tmp_path):
    result = slotwarden("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"slotwarden {__version__}"


def test_failover_of_an_unknown_shard_lists_the_shards(tmp_path):
    result = slotwarden("failover", "--config", str(BUNDLED), "zz", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "unknown shard 'zz'; the shards are: a, b, c"
    assert result.stdout == ""


def test_sentinel_help_hides_the_test_knobs(tmp_path):
    result = slotwarden("sentinel", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--id" in result.stdout
    assert "--probe-via" not in result.stdout
    assert "--step-pause-ms" not in result.stdout
    # still accepted (the sentinel tests use them)
    args = build_parser().parse_args(
        [
            "sentinel",
            "--id",
            "s1",
            "--probe-via",
            "127.0.0.1:7001=127.0.0.1:9",
            "--step-pause-ms",
            "5",
        ]
    )
    assert args.probe_via == ["127.0.0.1:7001=127.0.0.1:9"]
    assert args.step_pause_ms == 5
