"""Router logs: one startup line, JSON lines with --log-json, and never the secret."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from slotwarden.procs import RedisFarm, wait_for_port, write_cluster_yaml

SECRET = "do-not-log-this-7f3a"


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
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"*3\r\n$5\r\nBLPOP\r\n$6\r\nnolist\r\n$3\r\n0.7\r\n")  # in flight 0.7 s
            time.sleep(0.2)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            reply = s.recv(100)
            assert reply in (b"*-1\r\n", b"_\r\n")  # BLPOP timed out normally: drained
            assert time.monotonic() - t0 > 0.3
            # new connections are refused once draining started
            time.sleep(0.2)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                refused = False
            except OSError:
                refused = True
            assert refused or proc.poll() is not None
        finally:
            _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert b"router stopped" in err
    finally:
        farm.close()
