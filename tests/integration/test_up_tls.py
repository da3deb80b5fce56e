"""`slotwarden up --tls`: every hop over TLS, end to end, and a failover over TLS.

The launcher makes a throwaway CA with openssl, starts every redis-server on
``tls-port`` only (``port 0``, client certificates required, replication over
TLS), and runs the sentinels and the router from a config with a ``tls:``
section: the router's clients, its shards, its admin API, the sentinels'
probes of the nodes and their HTTP API all speak TLS, and plain connections
to any of them fail.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis
from test_up import UpRun, owner_of

from slotwarden.cluster.topology import Address


def tls_client(
    addr: Address, tls_dir: Path, cert: bool = True, password: str | None = None
) -> redis.Redis:
    kw = {"ssl_certfile": str(tls_dir / "tls.crt"), "ssl_keyfile": str(tls_dir / "tls.key")}
    return redis.Redis(
        addr.host,
        addr.port,
        password=password,
        socket_timeout=5,
        decode_responses=True,
        ssl=True,
        ssl_ca_certs=str(tls_dir / "ca.crt"),
        **(kw if cert else {}),
    )


def wait_up(run: UpRun, tls_dir: Path, timeout: float = 60.0) -> redis.Redis:
    router = tls_client(run.config.router.listen, tls_dir, cert=False)
    deadline = time.monotonic() + timeout
    while True:
        code = run.proc.poll()
        assert code is None, f"up exited with {code} before serving:\n{run.output}"
        try:
            if "Press Ctrl-C" in run.output and router.ping():
                return router
        except redis.RedisError:
            pass
        assert time.monotonic() < deadline, f"router did not answer PING:\n{run.output}"
        time.sleep(0.1)


@pytest.mark.timeout(150)
def test_up_tls_runs_every_hop_over_tls_and_fails_over(tmp_path):
    run = UpRun(
        tmp_path,
        {"down_after_ms: 1000": "down_after_ms: 500",
         "failover_timeout_ms: 10000": "failover_timeout_ms: 3000"},
        extra=("--tls",),
    )  # fmt: skip
    tls_dir = run.run_dir / "tls"
    try:
        router = wait_up(run, tls_dir)
        config = run.config
        assert "(TLS on every hop)" in run.output
        assert f"--tls --cacert {tls_dir / 'ca.crt'}" in run.output
        # clients -> router: TLS only
        plain = redis.Redis(config.router.listen.host, config.router.listen.port, socket_timeout=2)
        with pytest.raises(redis.ConnectionError):
            plain.ping()
        # the nodes: TLS only, client certificates required
        shard = config.shards[0]
        with pytest.raises(redis.ConnectionError):
            redis.Redis(shard.master.host, shard.master.port, socket_timeout=2).ping()
        with pytest.raises(redis.ConnectionError):
            tls_client(shard.master, tls_dir, cert=False).ping()
        # the admin (default user) has a password `up` wrote in the run directory
        admin_password = (run.run_dir / "secrets" / "default.password").read_text().strip()
        master = tls_client(shard.master, tls_dir, password=admin_password)
        assert master.ping() is True
        # router -> shards over TLS
        key = next(f"k{i}" for i in range(1000) if owner_of(config, f"k{i}") == 0)
        assert router.set(key, "before") is True
        assert master.get(key) == "before"
        assert master.wait(len(shard.replicas), 5000) == len(shard.replicas)  # TLS replication
        # the admin API: HTTPS verified with the CA; plain HTTP gets no answer
        admin = config.router.admin
        ctx = ssl.create_default_context(cafile=str(tls_dir / "ca.crt"))
        url = f"https://{admin.host}:{admin.port}/topology"
        with urllib.request.urlopen(url, timeout=5, context=ctx) as resp:
            assert json.loads(resp.read())["epoch"] == 0
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            urllib.request.urlopen(f"http://{admin.host}:{admin.port}/health", timeout=5).read()
        peer = config.sentinel.peers[0].listen
        with urllib.request.urlopen(f"https://{peer}/health", timeout=5, context=ctx) as resp:
            assert json.loads(resp.read())["ok"] is True
        sentinel_password = (
            (run.run_dir / "secrets" / "slotwarden-sentinel.password").read_text().strip()
        )
        # `slotwarden status` reads the sentinels (HTTPS), the nodes (TLS) and the router
        status = subprocess.run(
            [sys.executable, "-m", "slotwarden", "status", "--json",
             "--config", str(run.run_dir / "cluster.tls.yaml")],
            capture_output=True, text=True, timeout=30,
            env={**os.environ, "SLOTWARDEN_SENTINEL_PASSWORD": sentinel_password},
        )  # fmt: skip
        report = json.loads(status.stdout)
        assert status.returncode == 0, (report["health"], report["shards"][0]["nodes"][0])
        assert all(s["up"] for s in report["sentinels"]), report
        assert report["routers"][0]["up"] and report["routers"][0]["ready"], report
        first = report["shards"][0]["nodes"][0]
        assert first.get("role") == "master", first
        # a failover, the sentinels probing and reconfiguring the nodes over TLS
        pid = int(master.info("server")["process_id"])
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        while True:
            try:
                if router.set(key, "after") is True:
                    break
            except redis.RedisError:
                pass
            assert time.monotonic() - killed_at < 30, f"writes did not resume:\n{run.output}"
            time.sleep(0.05)
        new_master = tls_client(shard.replicas[0], tls_dir, password=admin_password)
        assert new_master.info("replication")["role"] == "master"
        assert new_master.get(key) == "after"
        with urllib.request.urlopen(url, timeout=5, context=ctx) as resp:
            assert json.loads(resp.read())["epoch"] >= 1  # pushed / watched over HTTPS
        logs = "".join(p.read_text() for p in run.run_dir.glob("sentinel-*/sentinel.log"))
        assert "[switch] shard a switched from" in logs
        assert "listening on https://" in logs
        assert run.stop(signal.SIGTERM) == 0, run.output
    finally:
        run.kill()
