"""A router no sentinel answered for 30 s says so: one WARNING, INFO sentinels_reachable:0.

The sentinels' mover waits for every registered router to run a migration's
epoch, and a router that never hears of a migration keeps writing its slots on
the source: an operator must see a router cut off from the sentinels. A real
router watches one stub sentinel (an HTTP server standing where cluster.yaml
says the sentinel is) that answers, then stops answering (503), then answers
again. The test waits the real 30 s (router.control.watch.SILENT_S).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Iterator

import redis
import yaml

from slotwarden.procs import RedisFarm, RouterProc, free_port, http_call, write_cluster_yaml

SECRET = "test-secret-sentinel-silence"
SILENT_S = 30.0
WARNING = (
    "no sentinel answered for 30 s: migrations may wait for this router; its writes to "
    "slots that start moving meanwhile are at risk"
)


class SentinelStub:
    """Answers ``GET /topology`` with ``topology`` (503 while it is None)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.topology: dict | None = None
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                after = int(query.get("after", ["-1"])[0])
                if stub.topology is not None and stub.topology.get("epoch") == after:
                    time.sleep(0.5)  # nothing newer: hold the long poll a little
                body = json.dumps(stub.topology).encode()
                self.send_response(200 if stub.topology is not None else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def watched_router() -> Iterator[tuple[RouterProc, SentinelStub, int, int]]:
    farm = RedisFarm()
    stub = SentinelStub()
    router = None
    try:
        masters = [farm.start() for _ in range(2)]
        config = os.path.join(farm.root, "cluster.yaml")
        port, admin = write_cluster_yaml(config, masters)
        with open(config) as f:
            data = yaml.safe_load(f)
        data["sentinel"] = {
            "quorum": 1,
            "down_after_ms": 1000,
            "failover_timeout_ms": 5000,
            "peers": [{"id": "s0", "listen": f"127.0.0.1:{stub.port}"}],
        }
        with open(config, "w") as f:
            yaml.safe_dump(data, f, sort_keys=False)
        router = RouterProc(
            config, port, os.path.join(farm.root, "router.log"), env={"SLOTWARDEN_SECRET": SECRET}
        )
        router.start()
        yield router, stub, port, admin
    finally:
        if router is not None:
            router.stop()
        stub.close()
        farm.close()


def reachable(port: int) -> int:
    r = redis.Redis(port=port, socket_timeout=5)
    try:
        return int(r.info("router")["sentinels_reachable"])
    finally:
        r.close()


def wait_for(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def test_a_router_cut_off_from_the_sentinels_warns_once_and_says_so_in_info() -> None:
    with watched_router() as (router, stub, port, admin):
        _status, text = http_call(admin, "GET", "/topology", None, SECRET)
        stub.topology = json.loads(text)  # the sentinel answers
        assert wait_for(lambda: reachable(port) == 1, 5.0), router.log()
        stub.topology = None  # ... and stops answering (503)
        silent_from = time.monotonic()
        assert wait_for(lambda: WARNING in router.log(), SILENT_S + 10), router.log()
        assert time.monotonic() - silent_from >= SILENT_S - 2  # not before ~30 s of silence
        assert reachable(port) == 0
        time.sleep(1.5)  # the router keeps asking: still one warning
        assert router.log().count(WARNING) == 1
        stub.topology = json.loads(text)  # back
        assert wait_for(lambda: reachable(port) == 1, 5.0), router.log()
        assert wait_for(lambda: "a sentinel answered again after" in router.log(), 5.0)
        assert router.log().count(WARNING) == 1
        assert redis.Redis(port=port, socket_timeout=5).ping()  # served all along
