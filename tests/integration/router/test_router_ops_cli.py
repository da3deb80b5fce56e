"""Issue 15, the router's process edges found by using it: a taken port, SIGTERM's drain."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import redis

from slotwarden.procs import RedisFarm, wait_for_port, write_cluster_yaml


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


def test_sigterm_logs_the_drain_and_releases_blpop_0_at_once(tmp_path, shard) -> None:
    # A BLPOP 0 held the drain for the whole drain_timeout_ms, and SIGTERM logged nothing.
    # Now: one line says the drain started; a blocked command that would outlive the drain
    # is released at its start (the shard answers it as a timeout: nil), idle clients are
    # closed at once, and the router exits long before drain_timeout_ms.
    config = str(tmp_path / "cluster.yaml")
    port, _admin = write_cluster_yaml(config, [shard], extra_router={"drain_timeout_ms": 20000})  # type: ignore[list-item]
    proc = subprocess.Popen(
        [sys.executable, "-m", "slotwarden", "router", "--config", config],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=15)
        blocked = socket.create_connection(("127.0.0.1", port), timeout=15)
        blocked.sendall(b"*3\r\n$5\r\nBLPOP\r\n$6\r\nnolist\r\n$1\r\n0\r\n")
        idle = socket.create_connection(("127.0.0.1", port), timeout=15)
        idle.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert idle.recv(100) == b"+PONG\r\n"
        r = redis.Redis(port=shard.port, socket_timeout=5)  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while not any(c.get("cmd") == "blpop" for c in r.client_list()):
            assert time.monotonic() < deadline, "the BLPOP never reached the shard"
            time.sleep(0.02)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert blocked.recv(100) in (b"*-1\r\n", b"_\r\n")  # released: answered as a timeout
        assert idle.recv(100) == b""  # owed nothing: closed
        assert blocked.recv(100) == b""  # then closed too
        _, err = proc.communicate(timeout=15)
        assert time.monotonic() - sent < 10, "the drain waited for its timeout"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    drain = [
        line for line in err.splitlines() if "SIGTERM: draining 2 client connection(s)" in line
    ]
    assert len(drain) == 1, err[-2000:]
    assert "up to 20000 ms" in drain[0]
    assert "released 1 blocked command(s)" in err
