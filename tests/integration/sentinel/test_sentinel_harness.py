"""Sentinel processes for integration tests, and the basic endpoint tests.

`SentinelCluster` starts real redis-servers (masters with ``--replicaof``
replicas), writes a cluster.yaml with a sentinel section and short timings,
and runs each sentinel as ``python -m slotwarden sentinel`` with its log in
the farm's directory. `close()` stops every process it started. The tests
here need one sentinel only: /health, /topology (epoch 0 = cluster.yaml,
long poll, router registration), auth (401 and no change), clean SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from slotwarden.procs import RedisFarm, RedisProc, free_port, wait_for_port, write_cluster_yaml

SECRET = "test-secret-Zq8.not-logged"
REPO = Path(__file__).resolve().parents[3]


class SentinelCluster:
    def __init__(
        self,
        farm: RedisFarm,
        shards: int = 1,
        replicas: int = 2,
        sentinels: int = 3,
        quorum: int = 2,
        down_after_ms: int = 500,
        probe_interval_ms: int = 100,
        failover_timeout_ms: int = 3000,
        node_args: tuple[str, ...] = (),  # extra redis-server arguments (ACL users, ...)
    ) -> None:
        self.farm = farm
        self.root = Path(farm.root)
        self.masters = [farm.start(node_args) for _ in range(shards)]
        self.replicas = [
            [
                farm.start([*node_args, "--replicaof", "127.0.0.1", str(m.port)])
                for _ in range(replicas)
            ]
            for m in self.masters
        ]
        self.config = str(self.root / "cluster.yaml")
        write_cluster_yaml(self.config, self.masters, self.replicas)
        with open(self.config) as f:
            data = yaml.safe_load(f)
        self.ids = [f"s{i + 1}" for i in range(sentinels)]
        self.ports = {sid: free_port() for sid in self.ids}
        data["sentinel"] = {
            "quorum": quorum,
            "down_after_ms": down_after_ms,
            "failover_timeout_ms": failover_timeout_ms,
            "probe_interval_ms": probe_interval_ms,
            "state_dir": str(self.root / "state"),
            "peers": [{"id": sid, "listen": f"127.0.0.1:{p}"} for sid, p in self.ports.items()],
        }
        with open(self.config, "w") as f:
            yaml.safe_dump(data, f, sort_keys=False)
        self.router_admin = data["router"]["admin"]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, object] = {}
        self.env = {**os.environ, "SLOTWARDEN_SECRET": SECRET, "PYTHONUNBUFFERED": "1"}

    # -- processes ------------------------------------------------------------

    def start(self, sid: str, *extra: str, wait: bool = True) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{sid}.log", "ab")
        self.logs[sid] = log
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "slotwarden",
                "sentinel",
                "--config",
                self.config,
                "--id",
                sid,
                *list(extra),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=REPO,
        )
        self.procs[sid] = proc
        if wait:
            self.wait_started(sid)
        return proc

    def wait_started(self, sid: str) -> None:
        """Wait for `sid`'s peer port; if it never opens, fail with its exit code and log."""
        try:
            wait_for_port("127.0.0.1", self.ports[sid], timeout=15)
        except TimeoutError:
            proc = self.procs.get(sid)
            code = None if proc is None else proc.poll()
            raise RuntimeError(
                f"sentinel {sid} did not listen on {self.ports[sid]} (exit code {code}):\n"
                f"{self.log(sid)}"
            ) from None

    def start_all(self, *extra: str) -> None:
        for sid in self.ids:
            self.start(sid, *extra, wait=False)
        for sid in self.ids:
            self.wait_started(sid)

    def stop(self, sid: str, sig: int = signal.SIGTERM) -> int | None:
        proc = self.procs.pop(sid, None)
        code = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(sig)
            try:
                code = proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait(timeout=5)
        log = self.logs.pop(sid, None)
        if log is not None:
            log.close()  # type: ignore[attr-defined]
        return code

    def close(self) -> None:
        for sid in list(self.procs):
            self.stop(sid, signal.SIGKILL)

    def log(self, sid: str) -> str:
        path = self.root / f"{sid}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs_text(self) -> str:
        return "\n".join(f"--- {sid}\n{self.log(sid)}" for sid in self.ids)

    # -- HTTP -------------------------------------------------------------------

    def http(
        self,
        sid: str,
        path: str,
        body: object = None,
        auth: str | None = SECRET,
        timeout: float = 5.0,
    ) -> tuple[int, object]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.ports[sid]}{path}",
            data=None if body is None else json.dumps(body).encode(),
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        if auth is not None:
            req.add_header("Authorization", f"Bearer {auth}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def topology(self, sid: str) -> dict:
        status, data = self.http(sid, "/topology")
        assert status == 200, data
        return data  # type: ignore[return-value]

    def status(self, sid: str) -> dict:
        status, data = self.http(sid, "/status")
        assert status == 200, data
        return data  # type: ignore[return-value]

    def wait_for(self, check: Callable[[], object], timeout: float, what: str) -> object:
        deadline = time.monotonic() + timeout
        last_exc: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = check()
                if value:
                    return value
            except (OSError, AssertionError, KeyError) as exc:
                last_exc = exc
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what} ({last_exc!r})\n{self.logs_text()}")

    # -- Redis ------------------------------------------------------------------

    def nodes(self, shard: int = 0) -> list[RedisProc]:
        return [self.masters[shard], *self.replicas[shard]]

    @staticmethod
    def role(node: RedisProc) -> tuple[str, str | None]:
        """("master", None) or ("slave", "host:port"), via a fresh connection."""
        r = redis.Redis(port=node.port, socket_timeout=2, socket_connect_timeout=2)
        try:
            reply = r.execute_command("ROLE")
        finally:
            r.close()
        kind = reply[0].decode()
        return (kind, None) if kind == "master" else (kind, f"{reply[1].decode()}:{reply[2]}")

    def wait_in_sync(self, shard: int = 0) -> None:
        r = redis.Redis(port=self.masters[shard].port, socket_timeout=10)
        try:
            r.set("sync-probe", "1")
            assert r.wait(len(self.replicas[shard]), 5000) == len(self.replicas[shard])
        finally:
            r.close()


# -- metrics ------------------------------------------------------------------


def scrape(sc: SentinelCluster, sid: str) -> dict[tuple[str, frozenset], float]:
    """``{(sample name, labels): value}`` from the sentinel's public ``GET /metrics``."""
    url = f"http://127.0.0.1:{sc.ports[sid]}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def metric(sc: SentinelCluster, sid: str, name: str, **labels: str) -> float:
    return scrape(sc, sid)[(name, frozenset(labels.items()))]


@contextlib.contextmanager
def sentinel_cluster(**kw: object) -> Iterator[SentinelCluster]:
    farm = RedisFarm()
    sc = None
    try:
        sc = SentinelCluster(farm, **kw)  # type: ignore[arg-type]
        yield sc
    finally:
        if sc is not None:
            sc.close()
        farm.close()


# -- tests with one sentinel --------------------------------------------------


@pytest.fixture(scope="module")
def one():
    with sentinel_cluster(sentinels=1, quorum=1) as sc:
        sc.start("s1")
        yield sc


def test_health_is_public(one):
    status, data = one.http("s1", "/health", auth=None)
    assert status == 200 and data["ok"] is True and data["id"] == "s1"


def test_serves_the_config_slot_map_at_epoch_zero(one):
    from slotwarden.cluster.config import load

    topo = one.topology("s1")
    assert topo == load(one.config).slotmap(0).to_dict()
    assert topo["epoch"] == 0


def test_long_poll_times_out_with_the_current_topology(one):
    started = time.monotonic()
    status, data = one.http("s1", "/topology?after=0&timeout=0.5", timeout=30)
    elapsed = time.monotonic() - started
    assert status == 200 and data["epoch"] == 0
    # the poll's own 0.5 s, far from the 30 s cap on any poll; the upper bound
    # is generous for a loaded machine (it was 3 s)
    assert 0.45 <= elapsed < 10


def test_router_registration(one):
    status, _ = one.http("s1", "/topology?after=-1&router=127.0.0.1:1")
    assert status == 200
    assert "127.0.0.1:1" in one.status("s1")["routers"]
    status, _data = one.http("s1", "/topology?router=nonsense")
    assert status == 400


@pytest.mark.parametrize("auth", [None, "wrong", SECRET + "x", ""])
def test_unauthenticated_requests_get_401_and_change_nothing(one, auth):
    before = one.status("s1")
    newer = dict(one.topology("s1"), epoch=99)
    for path, body in [
        ("/vote", {"epoch": 50, "candidate": "s1"}),
        ("/topology", newer),
        ("/topology", None),
        ("/opinion", None),
        ("/status", None),
        ("/events", None),
    ]:
        status, data = one.http("s1", path, body, auth=auth)
        assert status == 401, (path, status, data)
        assert "error" in data
    after = one.status("s1")
    for key in ("epoch", "voted_epoch", "voted_for", "topology_epoch", "topology"):
        assert after[key] == before[key], key
    # an authenticated vote in that epoch is still available: nothing was consumed
    status, data = one.http("s1", "/vote", {"epoch": after["epoch"] + 1, "candidate": "s1"})
    assert status == 200 and data["granted"] is True
    assert SECRET not in one.log("s1")


def test_bad_requests_are_400(one):
    assert one.http("s1", "/vote", {"epoch": "x", "candidate": "s1"})[0] == 400
    assert one.http("s1", "/vote", {"epoch": 3, "candidate": "nobody"})[0] == 400
    assert one.http("s1", "/topology", {"epoch": 3})[0] == 400


def test_status_cli(one):
    out = subprocess.run(
        [sys.executable, "-m", "slotwarden", "status", "--config", one.config, "--json"],
        capture_output=True,
        env=one.env,
        cwd=REPO,
        timeout=30,
        check=True,
    )
    report = json.loads(out.stdout)
    assert report["sentinels"][0]["up"] is True
    assert report["sentinels"][0]["id"] == "s1"
    shard = report["shards"][0]
    roles = [(n["expected"], n["role"]) for n in shard["nodes"]]
    assert roles == [("master", "master"), ("replica", "replica"), ("replica", "replica")]
    assert report["routers"][0]["up"] is False  # no router in this test: tolerated
    text = subprocess.run(
        [sys.executable, "-m", "slotwarden", "status", "--config", one.config],
        capture_output=True,
        env=one.env,
        cwd=REPO,
        timeout=30,
        check=True,
        text=True,
    ).stdout
    assert "shard a" in text and "not answering" in text


def test_sigterm_exits_cleanly():
    with sentinel_cluster(sentinels=1, quorum=1, replicas=0) as sc:
        sc.start("s1")
        assert sc.stop("s1", signal.SIGTERM) == 0
        assert "sentinel s1 stopped" in sc.log("s1")
        assert "Traceback" not in sc.log("s1")


class Forwarder:
    """A TCP forwarder to a node that can be cut: when cut, connections are
    accepted but nothing gets through (a blackholed path; the node is fine).

    Given to one sentinel with ``--probe-via NODE=127.0.0.1:PORT`` so only that
    sentinel loses the node - the network-level partition we cannot make here.
    """

    def __init__(self, target_port: int) -> None:
        import socket
        import threading

        self.target_port = target_port
        self.cut = threading.Event()
        self.closed = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sockets: list[object] = [self.server]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while not self.closed.is_set():
            try:
                client, _ = self.server.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                continue
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while self.cut.is_set() and not self.closed.is_set():
                    time.sleep(0.01)  # held, never delivered while cut
                if self.closed.is_set():
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.close()

    def close(self) -> None:
        self.closed.set()
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.close()  # type: ignore[attr-defined]


class RouterAdminStub:
    """Records what sentinels POST to a router admin address (``router.admin``).

    Stands in for the router's side of the push contract (the router's own
    tests cover applying it): answers 200 ``{"applied": true, "epoch": N}``.
    """

    def __init__(self, port: int) -> None:
        import http.server
        import threading

        self.received: list[tuple[str, dict]] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.received.append((self.headers.get("Authorization", ""), body))
                answer = json.dumps({"applied": True, "epoch": body.get("epoch")}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_events_stream(one):
    one.http("s1", "/vote", {"epoch": one.status("s1")["epoch"] + 1, "candidate": "s1"})
    req = urllib.request.Request(
        f"http://127.0.0.1:{one.ports['s1']}/events", headers={"Authorization": f"Bearer {SECRET}"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        first = json.loads(resp.readline())
    assert first["kind"] == "vote" and "voted for s1" in first["text"]


def test_non_ascii_authorization_is_401_not_500(one):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", one.ports["s1"], timeout=5)
    try:
        conn.putrequest("GET", "/status")
        conn.putheader("Authorization", "Bearer caf\xe9".encode("latin-1"))
        conn.endheaders()
        assert conn.getresponse().status == 401
    finally:
        conn.close()


def test_startup_problems_exit_1_with_one_sentence():
    import socket

    with sentinel_cluster(sentinels=1, quorum=1, replicas=0) as sc:
        base = [sys.executable, "-m", "slotwarden", "sentinel", "--config", sc.config]
        no_secret = {k: v for k, v in sc.env.items() if k != "SLOTWARDEN_SECRET"}
        cases = [
            ([*base, "--id", "s1"], no_secret, "no shared secret"),
            ([*base, "--id", "zz"], sc.env, "is not among sentinel.peers"),
            ([*base, "--id", "s1", "--probe-via", "x"], sc.env, "want NODE=VIA"),
        ]
        for argv, env, text in cases:
            out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
            assert out.returncode == 1 and text in out.stderr, (argv[-2:], out)
        with socket.create_server(("127.0.0.1", sc.ports["s1"])):
            proc = sc.start("s1", wait=False)
            assert proc.wait(timeout=15) == 1
        assert "address already in use" in sc.log("s1")
