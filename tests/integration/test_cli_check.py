"""`python -m slotwarden check` as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "cluster.yaml"
PACKAGED = REPO / "slotwarden" / "cluster.yaml"


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


def test_check_bundled_file(tmp_path):
    result = slotwarden("check", str(BUNDLED), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"{BUNDLED}: OK" in out
    assert "cluster 'demo': 3 shard(s)" in out
    assert (
        "shard a  slots 0-5460 (5461 slots)  master 127.0.0.1:7001  replicas 127.0.0.1:7101"
    ) in out
    assert (
        "shard b  slots 5461-10922 (5462 slots)  master 127.0.0.1:7002  replicas 127.0.0.1:7102"
    ) in out
    assert (
        "shard c  slots 10923-16383 (5461 slots)  master 127.0.0.1:7003  replicas 127.0.0.1:7103"
    ) in out
    assert "router: listen 127.0.0.1:7777, admin 127.0.0.1:7780" in out
    assert (
        "sentinels: 3, quorum 2: s1 127.0.0.1:26701, s2 127.0.0.1:26702, s3 127.0.0.1:26703"
    ) in out
    assert result.stderr == ""


def test_check_broken_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(
        """\
name: demo
router:
  listen: 127.0.0.1:7777
  command_timeout_ms: abc
shards:
  - name: a
    slots: 0-5460
    master: 127.0.0.1:7001
  - name: b
    slots: 5471-16383
    master: 127.0.0.1
sentinel:
  quorum: 4
  down_after_ms: 1000
  failover_timeout_ms: 10000
  peers:
    - {id: s1, listen: 127.0.0.1:26701}
"""
    )
    result = slotwarden("check", str(path), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}: 4 problem(s):",
        "  - router.command_timeout_ms: must be a positive integer, got 'abc'",
        "  - shards[1].master: malformed address '127.0.0.1' (want host:port)",
        "  - shards: slots 5461-5470 are not assigned to any shard",
        "  - sentinel.quorum: 4 is larger than the number of sentinels (1)",
    ]


def test_check_yaml_syntax_error(tmp_path):
    path = tmp_path / "syntax.yaml"
    path.write_text("name: demo\nrouter:\n  listen: [127.0.0.1:7777\n")
    result = slotwarden("check", str(path), cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"{path}: 1 problem(s):"
    assert lines[1].startswith("  - YAML syntax error at line ")


def test_check_missing_file(tmp_path):
    result = slotwarden("check", "nope.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "nope.yaml: 1 problem(s):",
        f"  - file not found (looked at {tmp_path / 'nope.yaml'})",
    ]


def test_check_defaults_to_packaged_copy(tmp_path):
    # No ./cluster.yaml in the working directory: the packaged demo is used.
    result = slotwarden("check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{PACKAGED}: OK" in result.stdout


def test_check_prefers_local_cluster_yaml(tmp_path):
    (tmp_path / "cluster.yaml").write_text(BUNDLED.read_text().replace("name: demo", "name: mine"))
    result = slotwarden("check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "cluster.yaml: OK" in result.stdout.splitlines()
    assert "cluster 'mine': 3 shard(s)" in result.stdout


def test_no_subcommand_prints_usage(tmp_path):
    result = slotwarden(cwd=tmp_path)
    assert result.returncode == 2
    assert "check" in result.stderr and "router" in result.stderr and "up" in result.stderr
