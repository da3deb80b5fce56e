"""Backend credentials on the sentinels' connections too: password-protected shards fail over."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import redis
import yaml

from slotwarden.procs import RedisFarm, RouterProc, free_port, sentinel_section, start_sentinels

SECRET = "auth-test-secret"
PASSWORD = "backend-pw-9q"


def sentinel_status(listen: str) -> dict:
    import json
    import urllib.request

    req = urllib.request.Request(
        f"http://{listen}/status", headers={"Authorization": f"Bearer {SECRET}"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def sees_master_and_linked_replica(listen: str) -> bool:
    """The sentinel at ``listen`` has probed both nodes: a master and a linked replica."""
    nodes = sentinel_status(listen)["nodes"].values()
    roles = sorted((n["role"], n["link_up"]) for n in nodes if n["error"] is None)
    return roles == [("master", False), ("replica", True)]


def test_failover_of_password_protected_shards() -> None:
    farm = RedisFarm()
    procs: list[subprocess.Popen[bytes]] = []
    router = None
    try:
        auth = ["--requirepass", PASSWORD, "--masterauth", PASSWORD]
        master = farm.start(auth)
        replica = farm.start([*auth, "--replicaof", "127.0.0.1", str(master.port)])
        router_port, admin_port = free_port(), free_port()
        sentinels = sentinel_section(farm.root, 500, 3000)
        config = {
            "name": "auth",
            "router": {"listen": f"127.0.0.1:{router_port}", "admin": f"127.0.0.1:{admin_port}"},
            "shards": [
                {"name": "a", "slots": "0-16383", "master": master.addr, "replicas": [replica.addr]}
            ],
            "backend": {"password_env": "TEST_BACKEND_PASSWORD"},
            "sentinel": sentinels,
        }
        path = os.path.join(farm.root, "cluster.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(config, f)
        env = {**os.environ, "SLOTWARDEN_SECRET": SECRET, "TEST_BACKEND_PASSWORD": PASSWORD}
        log_path = os.path.join(farm.root, "sentinels.log")
        procs += start_sentinels(path, sentinels["peers"], env, log_path)  # type: ignore[arg-type]
        router = RouterProc(path, router_port, os.path.join(farm.root, "router.log"), env=env)
        router.start()
        r = redis.Redis(port=router_port, socket_timeout=5)
        assert r.set("k", "v") is True  # the router authenticates to the shard
        # every sentinel has probed both nodes (authenticated) and sees the replica linked
        # (was: a 1.5 s sleep, which a loaded machine could end before that)
        deadline = time.monotonic() + 20
        while not all(sees_master_and_linked_replica(p["listen"]) for p in sentinels["peers"]):
            assert time.monotonic() < deadline, open(log_path).read()[-3000:]
            time.sleep(0.1)
        master.kill(signal.SIGKILL)
        deadline = time.monotonic() + 20
        while True:
            try:
                if r.set("k", "after") is True:
                    break
            except redis.RedisError:
                pass
            assert time.monotonic() < deadline, open(log_path).read()[-3000:]
            time.sleep(0.1)
        promoted = redis.Redis(port=replica.port, password=PASSWORD)
        assert promoted.execute_command("ROLE")[0] == b"master"
        assert promoted.get("k") == b"after"
        with open(log_path, "rb") as f:
            assert PASSWORD.encode() not in f.read()
    finally:
        if router is not None:
            router.stop()
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)
        farm.close()
