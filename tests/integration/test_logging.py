"""Router logs: one startup line, JSON lines with --log-json, and never the secret."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from redis_procs import RedisFarm, wait_for_port, write_cluster_yaml

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
