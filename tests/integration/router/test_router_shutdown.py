"""A router watching real sentinels stops quietly on SIGTERM (issue 11 item 7).

Its topology watch holds a long poll open on a sentinel; SIGTERM used to close
the HTTP session under that request and leave ``Task exception was never
retrieved ... ClientConnectionError('Connector is closed.')`` on stderr.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import yaml

from slotwarden.procs import (
    RedisFarm,
    RouterProc,
    sentinel_section,
    start_sentinels,
    write_cluster_yaml,
)

SECRET = "shutdown-test-secret"
ROUNDS = 3


def _registered(peer: dict[str, str], admin: str) -> bool:
    req = urllib.request.Request(
        f"http://{peer['listen']}/status", headers={"Authorization": f"Bearer {SECRET}"}
    )
    with urllib.request.urlopen(req, timeout=2) as resp:
        return admin in json.loads(resp.read())["routers"]


def test_sigterm_with_a_long_poll_open_leaves_no_traceback():
    farm = RedisFarm()
    sentinels = []
    try:
        master = farm.start()
        config = os.path.join(farm.root, "cluster.yaml")
        port, admin_port = write_cluster_yaml(config, [master])
        with open(config) as f:
            data = yaml.safe_load(f)
        data["sentinel"] = sentinel_section(farm.root, 500, 3000)
        with open(config, "w") as f:
            yaml.safe_dump(data, f, sort_keys=False)
        env = {**os.environ, "SLOTWARDEN_SECRET": SECRET}
        peers = data["sentinel"]["peers"]
        sentinels = start_sentinels(config, peers, env, os.path.join(farm.root, "sentinels.log"))
        admin = f"127.0.0.1:{admin_port}"
        for n in range(ROUNDS):
            log_path = os.path.join(farm.root, f"router{n}.log")
            router = RouterProc(config, port, log_path, env={"SLOTWARDEN_SECRET": SECRET})
            router.start()
            deadline = time.monotonic() + 10
            while not all(_registered(p, admin) for p in peers[:1]):
                assert time.monotonic() < deadline, router.log()
                time.sleep(0.05)
            time.sleep(0.5)  # the watch is now holding a long poll on a sentinel
            assert router.stop() == 0, router.log()
            log = router.log()
            assert "router stopped" in log, log
            assert "Task exception was never retrieved" not in log, log
            assert "Traceback" not in log, log
            assert "Connector is closed" not in log, log
    finally:
        for proc in sentinels:
            proc.send_signal(signal.SIGTERM)
        for proc in sentinels:
            try:
                proc.wait(timeout=10)
            except Exception:
                proc.kill()
        farm.close()
