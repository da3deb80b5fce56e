"""Issue 15, ``router.workers``: N router processes on one address under one supervisor.

Real processes throughout: redis-server shards, ``slotwarden router`` with
``workers: 2`` (a supervisor and two workers), redis-py and raw sockets.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import redis
import yaml
from conftest import Cluster, own_cluster

from slotwarden.procs import RedisFarm, wait_for_port, write_cluster_yaml

SECRET = "workers-secret-1"
WORKERS = {"workers": 2}


def http(c: Cluster, method: str, path: str, body: object = None, secret: str | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{c.admin_port}{path}", data=data, method=method)
    if secret is not None:
        req.add_header("Authorization", f"Bearer {secret}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if path != "/metrics" else raw.decode())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def worker_pids(c: Cluster) -> list[int | None]:
    return [w["pid"] for w in http(c, "GET", "/health")[1]["workers"]]


def wait_ready(c: Cluster, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while http(c, "GET", "/ready")[0] != 200:
        assert time.monotonic() < deadline, c.router.log()[-3000:]
        time.sleep(0.05)


def connect(c: Cluster) -> redis.Redis:
    return redis.Redis(port=c.port, socket_timeout=10, single_connection_client=True)


def by_worker(c: Cluster, wanted: int = 2, limit: int = 200) -> dict[int, list[redis.Redis]]:
    """Connections grouped by the pid of the worker serving them, until ``wanted`` pids."""
    found: dict[int, list[redis.Redis]] = {}
    for _ in range(limit):
        r = connect(c)
        found.setdefault(int(r.info("server")["process_id"]), []).append(r)
        if len(found) >= wanted and all(len(v) >= 2 for v in found.values()):
            break
    return found


def metric(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture(scope="module")
def wc() -> Iterator[Cluster]:
    with own_cluster(shards=2, extra_router=WORKERS, env={"SLOTWARDEN_SECRET": SECRET}) as c:
        wait_ready(c)
        yield c


def test_connections_spread_over_both_workers_with_unique_client_ids(wc: Cluster) -> None:
    pids = worker_pids(wc)
    assert len(pids) == 2 and None not in pids and wc.router.proc.pid not in pids
    conns = [connect(wc) for _ in range(40)]
    seen = [int(r.info("server")["process_id"]) for r in conns]
    assert set(seen) == set(pids), seen  # the kernel spread 40 connections over both
    ids = [r.client_id() for r in conns]
    assert len(set(ids)) == len(ids)  # CLIENT ID: unique across the workers (strided)
    assert {i % 2 for i in ids} == {0, 1}
    # CLIENT LIST shows the clients of the worker it is asked on
    mine = conns[0].client_list()
    same = sum(1 for p in seen if p == seen[0])
    assert len(mine) >= same
    for r in conns:
        r.close()


def test_metrics_sum_the_requests_of_both_workers(wc: Cluster) -> None:
    groups = by_worker(wc)
    assert len(groups) == 2
    sample = 'slotwarden_router_commands_total{command="get",outcome="ok"}'
    before = metric(http(wc, "GET", "/metrics")[1], sample)
    for conns in groups.values():
        for r in conns[:2]:
            for _ in range(5):
                r.get("m")
    text = http(wc, "GET", "/metrics")[1]
    assert metric(text, sample) - before == 20, text
    assert metric(text, 'slotwarden_router_workers{state="running"}') == 2
    assert metric(text, "slotwarden_router_ready") == 1  # a state: not 2
    assert metric(text, 'slotwarden_router_build_info{cluster="test",version="0.1.0"}') == 1
    assert metric(text, "slotwarden_router_client_connections") >= 4  # summed
    assert text.count("# TYPE slotwarden_router_commands_total counter") == 1
    assert text.count("# TYPE slotwarden_router_workers gauge") == 1  # the supervisor's only
    assert metric(text, 'slotwarden_router_workers{state="configured"}') == 2
    for conns in groups.values():
        for r in conns:
            r.close()


def test_a_push_reaches_both_workers_and_a_killed_worker_restarts_from_it(
    tmp_path_factory,
) -> None:
    with own_cluster(shards=2, extra_router=WORKERS, env={"SLOTWARDEN_SECRET": SECRET}) as c:
        wait_ready(c)
        spare = c.farm.start()
        with open(c.config) as f:
            data = yaml.safe_load(f)
        data["shards"][0]["replicas"] = [spare.addr]  # a push may name only listed nodes
        with open(c.config, "w") as f:
            yaml.safe_dump(data, f, sort_keys=False)
        status, body = http(c, "POST", "/reload", {}, secret=SECRET)  # to every worker
        assert status == 200 and body["applied"] is True, body
        topo = http(c, "GET", "/topology")[1]
        new = json.loads(json.dumps(topo))
        new["epoch"] = topo["epoch"] + 1
        new["shards"][0]["master"] = spare.addr
        new["shards"][0]["replicas"] = [c.masters[0].addr]
        assert http(c, "POST", "/topology", new, secret="wrong")[0] == 401
        status, body = http(c, "POST", "/topology", new, secret=SECRET)
        assert status == 200 and body["applied"] is True and body["workers"] == 2, body
        key = next(k for k in (f"k{i}" for i in range(1000)) if c.owner(k) == 0)
        groups = by_worker(c)
        assert len(groups) == 2
        for n, conns in enumerate(groups.values()):  # each worker routes by the new map
            assert int(conns[0].info("router")["topology_epoch"]) == new["epoch"]
            conns[0].set(key, f"v{n}")
            assert redis.Redis(port=spare.port).get(key) == f"v{n}".encode()
        assert c.shard_client(0).get(key) is None
        # kill -9 one worker: the other's clients are unaffected, new connections served
        victim, survivor = list(groups)
        os.kill(victim, signal.SIGKILL)
        for r in groups[survivor]:
            assert r.ping() is True
        deadline = time.monotonic() + 20
        while True:
            pids = worker_pids(c)
            if victim not in pids and None not in pids:
                break
            assert time.monotonic() < deadline, c.router.log()[-3000:]
            time.sleep(0.05)
        assert all(connect(c).get(key) == b"v1" for _ in range(10))
        wait_ready(c)
        restarted = next(p for p in pids if p != survivor)
        fresh = by_worker(c)
        assert restarted in fresh, fresh.keys()
        r = fresh[restarted][0]
        assert int(r.info("router")["topology_epoch"]) == new["epoch"]  # not the file's
        assert r.get(key) == b"v1"  # routed to the spare, as pushed
        health = http(c, "GET", "/health")[1]["workers"]
        assert sum(w["restarts"] for w in health) == 1
        log = c.router.log()
        assert f"(pid {victim}) was killed by SIGKILL" in log and "starting it again" in log
        assert SECRET not in log
        metrics = http(c, "GET", "/metrics")[1]
        assert metric(metrics, "slotwarden_router_worker_restarts_total") == 1
        # dying again within 10 s of its start: the next start waits twice as long
        os.kill(restarted, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while "starting it again in 0.2 s" not in c.router.log():
            assert time.monotonic() < deadline, c.router.log()[-3000:]
            time.sleep(0.05)
        wait_ready(c)
        assert sum(w["restarts"] for w in http(c, "GET", "/health")[1]["workers"]) == 2


def test_sigterm_drains_both_workers(tmp_path) -> None:
    farm = RedisFarm()
    try:
        shard = farm.start()
        config = str(tmp_path / "cluster.yaml")
        extra = {**WORKERS, "drain_timeout_ms": 20000}
        port, admin = write_cluster_yaml(config, [shard], extra_router=extra)  # type: ignore[list-item]
        proc = subprocess.Popen(
            [sys.executable, "-m", "slotwarden", "router", "--config", config],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for_port("127.0.0.1", port, timeout=15)
            c = type("C", (), {"admin_port": admin, "port": port})()
            deadline = time.monotonic() + 20
            while http(c, "GET", "/ready")[0] != 200:  # type: ignore[arg-type]
                assert time.monotonic() < deadline
                time.sleep(0.05)
            # one BLPOP 0 client on each worker
            blocked: dict[int, socket.socket] = {}
            while len(blocked) < 2:
                s = socket.create_connection(("127.0.0.1", port), timeout=15)
                s.sendall(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
                info = b""
                while b"process_id:" not in info or not info.endswith(b"\r\n"):
                    info += s.recv(65536)
                pid = int(info.split(b"process_id:")[1].split(b"\r\n")[0])
                if pid in blocked:
                    s.close()
                    continue
                while not info.endswith(b"\r\n\r\n") and info.count(b"\r\n") < 3:
                    info += s.recv(65536)
                s.sendall(b"*3\r\n$5\r\nBLPOP\r\n$6\r\nnolist\r\n$1\r\n0\r\n")
                blocked[pid] = s
            r = redis.Redis(port=shard.port, socket_timeout=5)
            deadline = time.monotonic() + 10
            while sum(1 for x in r.client_list() if x.get("cmd") == "blpop") < 2:
                assert time.monotonic() < deadline, "the BLPOPs never reached the shard"
                time.sleep(0.02)
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            for s in blocked.values():
                data = b""
                while True:
                    chunk = s.recv(100)
                    if not chunk:
                        break
                    data += chunk
                assert data.endswith((b"*-1\r\n", b"_\r\n")), data  # released, then closed
            _, err = proc.communicate(timeout=30)
            assert time.monotonic() - sent < 10, "the drain waited for its timeout"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err[-3000:]
        assert err.count("SIGTERM: draining 2 worker(s), up to 20000 ms") == 1, err[-3000:]
        assert err.count("released 1 blocked command(s)") == 2, err[-3000:]
        assert "router stopped (2 workers)" in err
    finally:
        farm.close()


def test_workers_die_with_their_supervisor(tmp_path) -> None:
    with own_cluster(shards=1, extra_router=WORKERS) as c:
        wait_ready(c)
        pids = worker_pids(c)
        c.router.proc.kill()  # SIGKILL: no drain from the supervisor
        c.router.proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        for pid in pids:
            while os.path.exists(f"/proc/{pid}") and _state(pid) != "Z":
                assert time.monotonic() < deadline, f"worker {pid} outlived its supervisor"
                time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_a_taken_port_with_workers_is_one_line_and_exit_1(tmp_path) -> None:
    farm = RedisFarm()
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # even a reuseport holder
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        config = str(tmp_path / "cluster.yaml")
        write_cluster_yaml(config, [farm.start()], router_port=port, extra_router=WORKERS)
        run = subprocess.run(
            [sys.executable, "-m", "slotwarden", "router", "--config", config],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        holder.close()
        farm.close()
    want = f"slotwarden router: cannot listen on 127.0.0.1:{port}: address already in use"
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr and run.stderr.splitlines().count(want) == 1, run.stderr


@pytest.mark.parametrize("value", ["auto", 0, "junk"])
def test_check_resolves_workers_auto_and_refuses_0_and_junk(tmp_path, value: object) -> None:
    config = tmp_path / "cluster.yaml"
    data = {
        "name": "t",
        "router": {"listen": "127.0.0.1:7777", "workers": value},
        "shards": [{"name": "a", "slots": "0-16383", "master": "127.0.0.1:7001"}],
    }
    config.write_text(yaml.safe_dump(data))
    cmd = [sys.executable, "-m", "slotwarden", "check", str(config)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if value == "auto":
        cores = len(os.sched_getaffinity(0))
        assert run.returncode == 0, run.stdout + run.stderr
        assert (f", {cores} workers" in run.stdout) == (cores > 1), run.stdout
    else:
        assert run.returncode == 1
        assert 'router.workers: must be an integer 1..256 or "auto", got' in run.stdout + run.stderr


def test_tracking_a_write_through_the_other_worker_invalidates(wc: Cluster) -> None:
    # each worker is a whole router with its own tracking connections (issue 14): a key
    # read on one worker is invalidated by a write through the other
    groups = by_worker(wc)
    s = socket.create_connection(("127.0.0.1", wc.port), timeout=10)
    f = s.makefile("rb")

    def send(*args: bytes) -> None:
        s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))

    send(b"HELLO", b"3")
    send(b"CLIENT", b"TRACKING", b"ON")
    while f.readline() != b"+OK\r\n":  # HELLO's map, then TRACKING's +OK
        pass
    send(b"INFO", b"server")
    info = f.read(int(f.readline()[1:]) + 2)
    pid = int(info.split(b"process_id:")[1].split(b"\r\n")[0])
    writer = next(conns[0] for p, conns in groups.items() if p != pid)
    send(b"GET", b"tracked:k")
    assert f.readline() == b"_\r\n"  # RESP3 null, and the key is tracked
    writer.set("tracked:k", "v")
    push = [f.readline() for _ in range(6)]
    assert push == [
        b">2\r\n",
        b"$10\r\n",
        b"invalidate\r\n",
        b"*1\r\n",
        b"$9\r\n",
        b"tracked:k\r\n",
    ]
    s.close()
