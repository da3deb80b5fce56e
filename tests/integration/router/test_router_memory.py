"""Memory a client's request took comes back when the request is done or the client leaves
(issue 10, item 3).

Before: the read buffer kept a consumed request until the client's next bytes, and a
client and its state refer to each other, so a disconnected client's buffer waited for
a full GC: four clients that each sent a 50 MB unknown command and closed took the
router from 43 MB to 243 MB RSS, and it stayed there.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from slotwarden.procs import RedisFarm, wait_for_port, write_cluster_yaml

BIG = 40 << 20  # bytes per request
SLACK_MB = 25  # what the router may keep beyond its baseline afterwards


def rss_mb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def router(tmp_path):
    farm = RedisFarm()
    proc = None
    try:
        masters = [farm.start() for _ in range(3)]
        config = str(tmp_path / "cluster.yaml")
        port, _admin = write_cluster_yaml(config, masters)
        proc = subprocess.Popen(
            [sys.executable, "-m", "slotwarden", "router", "--config", config],
            stderr=subprocess.DEVNULL,
        )
        wait_for_port("127.0.0.1", port, timeout=15)
        yield proc, port
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=15)
        farm.close()


def settles_near(pid: int, limit: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        now = rss_mb(pid)
        if now <= limit or time.monotonic() > deadline:
            return now
        time.sleep(0.2)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_rss_returns_after_large_requests_and_disconnects(router) -> None:
    proc, port = router
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert s.recv(100) == b"+PONG\r\n"
    time.sleep(0.3)
    base = rss_mb(proc.pid)
    payload = b"x" * BIG
    # complete requests (an unknown command: answered, then the client goes)
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"*2\r\n$6\r\nNOSUCH\r\n$%d\r\n" % BIG + payload + b"\r\n")
            assert s.recv(100).startswith(b"-ERR unknown command 'NOSUCH'")
    # a client that stays connected after its large request keeps no copy of it
    keep = socket.create_connection(("127.0.0.1", port), timeout=30)
    keep.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n" % BIG + payload + b"\r\n")
    assert keep.recv(100) == b"+OK\r\n"
    # partial requests: half a bulk, then the client disconnects
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"*2\r\n$4\r\nECHO\r\n$%d\r\n" % BIG + payload[: BIG // 2])
            time.sleep(0.2)
    now = settles_near(proc.pid, base + SLACK_MB)
    keep.close()
    assert now <= base + SLACK_MB, f"RSS {base} MB before, {now} MB after"
