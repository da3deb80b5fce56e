"""Issue 15, the router's process edges found by using it: a taken port, SIGTERM's drain."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from slotwarden.procs import RedisFarm, write_cluster_yaml


@pytest.fixture
def shard(tmp_path) -> Iterator[object]:
    farm = RedisFarm()
    try:
        yield farm.start()
    finally:
        farm.close()


@pytest.mark.parametrize("which", ["listen", "admin"])
def test_a_taken_port_is_one_line_and_exit_1(tmp_path, shard, which: str) -> None:
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        config = str(tmp_path / "cluster.yaml")
        ports = {"router_port": port} if which == "listen" else {"admin_port": port}
        write_cluster_yaml(config, [shard], **ports)  # type: ignore[arg-type]
        run = subprocess.run(
            [sys.executable, "-m", "slotwarden", "router", "--config", config],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        holder.close()
    out = run.stdout + run.stderr
    suffix = "" if which == "listen" else " (router.admin)"
    want = f"slotwarden router: cannot listen on 127.0.0.1:{port}{suffix}: address already in use"
    assert run.returncode == 1, out
    assert "Traceback" not in out and "ExceptionGroup" not in out, out
    assert run.stderr.splitlines().count(want) == 1, out
