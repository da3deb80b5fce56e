"""Router logs: one startup line, JSON lines with --log-json, and never the secret."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from slotwarden.procs import RedisFarm, wait_for_port, write_cluster_yaml

SECRET = "do-not-log-this-7f3a"


def running(server, command: str) -> bool:
    """Whether a client of the redis-server ``server`` is running ``command`` now."""
    import redis

    with redis.Redis(port=server.port, socket_timeout=5) as r:
        return any(c["cmd"] == command for c in r.client_list())


def test_json_logs_startup_line_and_no_secret(tmp_path) -> None:
    farm = RedisFarm()
    try:
        masters = [farm.start() for _ in range(2)]
        config = str(tmp_path / "cluster.yaml")
        port, _admin = write_cluster_yaml(config, masters)
        env = {**os.environ, "SLOTWARDEN_SECRET": SECRET}
        proc = subprocess.Popen(
            [sys.executable, "-m", "slotwarden", "router", "--config", config, "--log-json"],
            stderr=subprocess.PIPE,
            env=env,
        )
        try:
            wait_for_port("127.0.0.1", port, timeout=15)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0
        lines = [json.loads(line) for line in err.decode().splitlines() if line.strip()]
        assert all({"ts", "level", "logger", "msg"} <= set(entry) for entry in lines)
        startup = [e["msg"] for e in lines if "listening on" in e["msg"]]
        assert len(startup) == 1
        assert f"127.0.0.1:{port}" in startup[0] and "topology epoch 0" in startup[0]
        assert config in startup[0] and "slotwarden router 0." in startup[0]
        assert SECRET not in err.decode()
    finally:
        farm.close()


def test_sigterm_drains_in_flight_commands_then_exits_0(tmp_path) -> None:
    import socket
    import time

    farm = RedisFarm()
    try:
        masters = [farm.start() for _ in range(2)]
        config = str(tmp_path / "cluster.yaml")
        port, _admin = write_cluster_yaml(config, masters)
        proc = subprocess.Popen(
            [sys.executable, "-m", "slotwarden", "router", "--config", config],
            stderr=subprocess.PIPE,
        )
        try:
            wait_for_port("127.0.0.1", port, timeout=15)
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            sent = time.monotonic()
            s.sendall(b"*3\r\n$5\r\nBLPOP\r\n$6\r\nnolist\r\n$1\r\n3\r\n")  # in flight 3 s
            # SIGTERM once the BLPOP waits on its shard (was: after a 0.2 s sleep, which a
            # loaded machine could spend before the router even read it)
            deadline = time.monotonic() + 10
            while not any(running(m, "blpop") for m in masters):
                assert time.monotonic() < deadline, "the BLPOP never reached a shard"
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            assert time.monotonic() - sent < 1.5, "SIGTERM came too late to test the drain"
            # new connections are refused once draining started, while the BLPOP is still
            # in flight (the router has not exited: it is draining)
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                except OSError:
                    break  # refused
                assert time.monotonic() < deadline, "still accepting connections while draining"
                time.sleep(0.02)
            assert proc.poll() is None, "the router exited before draining the BLPOP"
            s.setblocking(False)
            try:
                early = s.recv(100)
            except BlockingIOError:
                early = None  # nothing yet: the BLPOP is still in flight
            assert early is None, f"the BLPOP was answered before the refusal: {early!r}"
            s.setblocking(True)
            reply = s.recv(100)
            assert reply in (b"*-1\r\n", b"_\r\n")  # BLPOP timed out normally: drained
            assert time.monotonic() - sent >= 2.9  # at its own 3 s, not cut short by SIGTERM
        finally:
            _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert b"router stopped" in err
    finally:
        farm.close()
