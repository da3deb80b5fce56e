"""CLIENT TRACKING through the router (issue 14): real shards, a real router process, raw sockets.

Each test speaks RESP (2 or 3) on plain sockets (`Conn`, parsed by hiredis,
pushes included) to a `slotwarden router` subprocess in front of three real
redis-servers (tests/conftest.py ``own_cluster``), and checks what arrives:
the ``invalidate`` pushes (RESP3), the ``__redis__:invalidate`` messages of a
REDIRECT target (RESP2), the nulls of a flush. Command replies and errors are
compared with a real redis-server's, side by side (`test_commands_answer_as_redis`).

A bound like "the push arrives" is a correctness bound: `Conn.read` waits up to
`WAIT` seconds (slack for a loaded CI box); the real figure is bench/tracking.py's.
"""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import hiredis
import pytest
import redis
import yaml
from conftest import Cluster, own_cluster

from router.wire.node import Route
from router.wire.tracking import changed_shards
from slotwarden.cluster.topology import Address, Migration, Shard, SlotMap
from slotwarden.procs import RedisProc

pytestmark = pytest.mark.timeout(90)

WAIT = 5.0  # seconds a push may take on a loaded box (it takes about a millisecond)


def cmd(*args: bytes | str | int) -> bytes:
    raw = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    return b"*%d\r\n" % len(raw) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in raw)


class Conn:
    """A raw RESP connection: send commands, read replies and pushes in arrival order."""

    def __init__(self, port: int, resp3: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.reader = hiredis.Reader(notEnoughData=Ellipsis)
        if resp3:
            assert isinstance(self.call("HELLO", "3"), dict)

    def send(self, *args: bytes | str | int) -> None:
        self.sock.sendall(cmd(*args))

    def read(self, timeout: float = WAIT) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            item = self.reader.gets()
            if item is not Ellipsis:
                return item
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("nothing arrived")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.reader.feed(data)

    def call(self, *args: bytes | str | int) -> Any:
        self.send(*args)
        return self.read()

    def nothing(self, wait: float = 0.3) -> None:
        """Nothing more arrives (a PING's reply comes first)."""
        assert self.call("PING") in (b"PONG", "PONG"), "a push came before PONG"
        try:
            got = self.read(wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected {got!r}")

    def close(self) -> None:
        self.sock.close()


def tracking_on(conn: Conn, *options: str) -> None:
    assert conn.call("CLIENT", "TRACKING", "ON", *options) == b"OK"
    # the router opens its tracking connections now; a read before they are live
    # is followed by its invalidation (test_read_before_live_is_invalidated_after_reply)
    time.sleep(0.3)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with own_cluster() as c:
        yield c


@pytest.fixture
def conns(cluster: Cluster) -> Iterator[list[Conn]]:
    made: list[Conn] = []
    yield made
    for c in made:
        c.close()


def new(cluster: Cluster, conns: list[Conn], resp3: bool = True) -> Conn:
    c = Conn(cluster.port, resp3)
    conns.append(c)
    return c


def test_write_through_router_and_on_shard_invalidates(cluster: Cluster, conns: list[Conn]):
    a, b = new(cluster, conns), new(cluster, conns)
    tracking_on(a)
    assert a.call("SET", "t1", "v") == b"OK"
    assert a.call("GET", "t1") == b"v"
    assert b.call("SET", "t1", "w") == b"OK"  # another client of the router
    assert a.read() == [b"invalidate", [b"t1"]]
    assert a.call("GET", "t1") == b"w"
    cluster.shard_client(cluster.owner("t1")).set("t1", "x")  # straight on the shard
    assert a.read() == [b"invalidate", [b"t1"]]
    b.call("SET", "t1", "y")  # no read since: forgotten, no message
    a.nothing()


def test_own_write_invalidates_unless_noloop(cluster: Cluster, conns: list[Conn]):
    a, noloop, other = new(cluster, conns), new(cluster, conns), new(cluster, conns)
    tracking_on(a)
    tracking_on(noloop, "NOLOOP")
    for c in (a, noloop):
        assert c.call("GET", "t2") is None
    assert a.call("SET", "t2", "1") == b"OK"
    assert a.read() == [b"invalidate", [b"t2"]]  # its own write, as Redis
    assert noloop.read() == [b"invalidate", [b"t2"]]  # another's write
    assert noloop.call("GET", "t2") == b"1"
    assert noloop.call("SET", "t2", "2") == b"OK"  # its own write: no message
    noloop.nothing()
    assert noloop.call("GET", "t2") == b"2"
    other.call("DEL", "t2")
    assert noloop.read() == [b"invalidate", [b"t2"]]


def test_expiry_invalidates(cluster: Cluster, conns: list[Conn]):
    a = new(cluster, conns)
    tracking_on(a)
    assert a.call("SET", "t3", "v", "PX", "100") == b"OK"
    assert a.call("GET", "t3") == b"v"
    assert a.read() == [b"invalidate", [b"t3"]]  # expired on the shard
    assert a.call("GET", "t3") is None


def test_flushall_on_a_shard_sends_a_null(cluster: Cluster, conns: list[Conn]):
    a = new(cluster, conns)
    tracking_on(a)
    a.call("GET", "t4")
    cluster.shard_client(cluster.owner("t4")).flushall()
    assert a.read() == [b"invalidate", None]


def test_optin_tracks_only_after_caching_yes(cluster: Cluster, conns: list[Conn]):
    a, b = new(cluster, conns), new(cluster, conns)
    tracking_on(a, "OPTIN")
    a.call("GET", "t5a")  # not tracked
    assert a.call("CLIENT", "CACHING", "YES") == b"OK"
    a.call("GET", "t5b")  # tracked
    a.call("GET", "t5c")  # not: CACHING YES lasts one command
    b.call("MSET", "t5a", "1", "t5c", "1")
    b.call("SET", "t5b", "1")
    assert a.read() == [b"invalidate", [b"t5b"]]
    a.nothing()


def test_optout_skips_the_read_after_caching_no(cluster: Cluster, conns: list[Conn]):
    a, b = new(cluster, conns), new(cluster, conns)
    tracking_on(a, "OPTOUT")
    assert a.call("CLIENT", "CACHING", "NO") == b"OK"
    a.call("GET", "t6a")  # not tracked
    a.call("GET", "t6b")  # tracked
    b.call("SET", "t6a", "1")
    b.call("SET", "t6b", "1")
    assert a.read() == [b"invalidate", [b"t6b"]]
    a.nothing()


def test_bcast_with_prefix(cluster: Cluster, conns: list[Conn]):
    a, b = new(cluster, conns), new(cluster, conns)
    tracking_on(a, "BCAST", "PREFIX", "user:", "PREFIX", "acct:")
    b.call("SET", "user:1", "x")  # never read: BCAST is told anyway
    assert a.read() == [b"invalidate", [b"user:1"]]
    b.call("SET", "other:1", "x")
    b.call("SET", "acct:9", "x")
    assert a.read() == [b"invalidate", [b"acct:9"]]
    info = a.call("CLIENT", "TRACKINGINFO")
    assert info[b"flags"] == {b"on", b"bcast"} or info[b"flags"] == [b"on", b"bcast"]
    assert info[b"prefixes"] == [b"acct:", b"user:"]


def test_resp2_redirect_to_a_subscribed_connection(cluster: Cluster, conns: list[Conn]):
    sub, a, b = (new(cluster, conns, resp3=False) for _ in range(3))
    sub_id = sub.call("CLIENT", "ID")
    assert sub.call("SUBSCRIBE", "__redis__:invalidate") == [
        b"subscribe",
        b"__redis__:invalidate",
        1,
    ]
    tracking_on(a, "REDIRECT", sub_id)
    assert a.call("CLIENT", "GETREDIR") == sub_id
    a.call("GET", "t7")
    b.call("SET", "t7", "1")
    assert sub.read() == [b"message", b"__redis__:invalidate", [b"t7"]]
    sub.close()
    time.sleep(0.2)
    a.call("GET", "t7")
    b.call("SET", "t7", "2")  # the target is gone: broken_redirect (no push in RESP2)
    deadline = time.monotonic() + WAIT
    while b"broken_redirect" not in a.call("CLIENT", "TRACKINGINFO")[1]:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_read_before_live_is_invalidated_after_reply(cluster: Cluster, conns: list[Conn]):
    a = new(cluster, conns)
    a.sock.sendall(cmd("SET", "t8", "v") + cmd("CLIENT", "TRACKING", "ON") + cmd("GET", "t8"))
    assert [a.read(), a.read(), a.read()] == [b"OK", b"OK", b"v"]
    assert a.read() == [b"invalidate", [b"t8"]]  # its shard's tracking was not live yet


def test_killed_tracking_connection_flushes(cluster: Cluster, conns: list[Conn]):
    a = new(cluster, conns)
    tracking_on(a)
    key = "t9"
    a.call("GET", key)
    shard = cluster.shard_client(cluster.owner(key))
    lines = shard.execute_command("CLIENT", "LIST").decode().splitlines()
    tracker = [ln for ln in lines if "flags=" in ln and "B" in ln.split("flags=")[1].split()[0]]
    assert len(tracker) == 1, lines
    shard.execute_command("CLIENT", "KILL", "ID", tracker[0].split()[0].split("=")[1])
    assert a.read() == [b"invalidate", None]
    # it reopens: tracked again after a while
    deadline = time.monotonic() + WAIT
    while True:
        a.call("GET", key)
        cluster.shard_client(cluster.owner(key)).set(key, "1")
        got = a.read()
        if got == [b"invalidate", [key.encode()]]:
            break
        assert time.monotonic() < deadline, got


def test_hello_reports_the_shards_version(cluster: Cluster, conns: list[Conn]):
    a = new(cluster, conns, resp3=False)
    hello = dict(zip(*[iter(a.call("HELLO", "2"))] * 2, strict=True))
    shard = cluster.shard_client(0).info("server")["redis_version"]
    assert hello[b"version"].decode() == shard == "7.0.15"


def test_full_table_evicts_the_oldest_key():
    with own_cluster(extra_router={"tracking_table_max_keys": 2}) as c:
        a = Conn(c.port)
        try:
            tracking_on(a)
            assert a.call("GET", "e1") is None
            assert a.call("GET", "e2") is None
            a.send("GET", "e3")  # e1 evicted: the client is told (before e3's reply)
            assert [a.read(), a.read()] == [[b"invalidate", [b"e1"]], None]
            c.shard_client(c.owner("e1")).set("e1", "1")  # forgotten: no message
            a.nothing()
            c.shard_client(c.owner("e3")).set("e3", "1")
            assert a.read() == [b"invalidate", [b"e3"]]
            info = a.call("INFO", "stats")
            assert b"tracking_total_keys:1" in info  # e2
            assert b"tracking_clients:1" in a.call("INFO", "clients")
            c.shard_client(c.owner("e2")).flushall()
            assert a.read() == [b"invalidate", None]
            url = f"http://127.0.0.1:{c.admin_port}/metrics"
            with urllib.request.urlopen(url, timeout=WAIT) as response:
                metrics = response.read().decode()
            for line in (
                "slotwarden_router_tracking_clients 1.0",
                "slotwarden_router_tracking_keys 0.0",
                "slotwarden_router_tracking_invalidations_total 3.0",
                "slotwarden_router_tracking_evictions_total 1.0",
                'slotwarden_router_tracking_flushes_total{reason="shard_flush"} 1.0',
                'slotwarden_router_tracking_flushes_total{reason="topology"} 0.0',
            ):
                assert line in metrics.splitlines(), line
        finally:
            a.close()


# ---------------------------------------------------------------- side by side with Redis

SCRIPT: list[tuple[str, ...]] = [
    ("CLIENT", "TRACKINGINFO"),
    ("CLIENT", "GETREDIR"),
    ("CLIENT", "CACHING", "YES"),
    ("CLIENT", "TRACKING", "ON", "PREFIX", "a"),
    ("CLIENT", "TRACKING", "ON", "BCAST", "OPTIN"),
    ("CLIENT", "TRACKING", "ON", "OPTIN", "OPTOUT"),
    ("CLIENT", "TRACKING", "ON", "REDIRECT", "987654"),
    ("CLIENT", "TRACKING", "ON", "REDIRECT", "x"),
    ("CLIENT", "TRACKING", "ON", "BOGUS"),
    ("CLIENT", "TRACKING", "MAYBE"),
    ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a", "PREFIX", "ab"),
    ("CLIENT", "TRACKING", "ON", "OPTIN"),
    ("CLIENT", "CACHING", "NO"),
    ("CLIENT", "CACHING", "MAYBE"),
    ("CLIENT", "CACHING", "YES"),
    ("CLIENT", "TRACKINGINFO"),
    ("CLIENT", "TRACKING", "ON", "OPTOUT"),
    ("CLIENT", "TRACKING", "ON", "BCAST"),
    ("CLIENT", "GETREDIR"),
    ("CLIENT", "TRACKING", "OFF"),
    ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "b", "NOLOOP"),
    ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "bc"),
    ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "c"),
    ("CLIENT", "TRACKINGINFO"),
    ("CLIENT", "TRACKING", "ON"),
    ("CLIENT", "TRACKING", "OFF"),
    ("CLIENT", "TRACKINGINFO"),
    ("CLIENT", "CACHING", "YES"),
]


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_commands_answer_as_redis(
    cluster: Cluster, conns: list[Conn], redis_plain: RedisProc, resp3: bool
):
    ours, theirs = new(cluster, conns, resp3), Conn(redis_plain.port, resp3)
    conns.append(theirs)
    for args in SCRIPT:
        assert plain(ours.call(*args)) == plain(theirs.call(*args)), args


def plain(reply: Any) -> Any:
    """A reply comparable with ==: hiredis's error objects as their text."""
    if isinstance(reply, Exception):
        return ("error", str(reply))
    return reply


def test_topology_change_flushes_and_tracks_on_the_new_master() -> None:
    secret = "tracking-test-secret"
    with own_cluster(env={"SLOTWARDEN_SECRET": secret}) as c:
        a, b = Conn(c.port), Conn(c.port)
        try:
            tracking_on(a)
            key = "topo-k"
            shard = c.owner(key)
            assert a.call("GET", key) is None
            spare = c.farm.start()
            headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
            admin = f"http://127.0.0.1:{c.admin_port}"

            def post(path: str, body: bytes) -> dict[str, Any]:
                req = urllib.request.Request(admin + path, body, headers, method="POST")
                with urllib.request.urlopen(req, timeout=WAIT) as resp:
                    return json.load(resp)  # type: ignore[no-any-return]

            with open(c.config) as f:  # a pushed topology names only cluster.yaml's nodes
                data = yaml.safe_load(f)
            data["shards"][shard]["replicas"] = [spare.addr]
            with open(c.config, "w") as f:
                yaml.safe_dump(data, f, sort_keys=False)
            assert post("/reload", b"")["applied"] is True
            with urllib.request.urlopen(admin + "/topology", timeout=WAIT) as resp:
                epoch = json.load(resp)["epoch"]
            shards = data["shards"]  # shard moves to the spare, as a failover would
            shards[shard]["master"], shards[shard]["replicas"] = spare.addr, []
            body = json.dumps({"epoch": epoch + 1, "shards": shards}).encode()
            assert post("/topology", body)["applied"] is True
            assert a.read() == [b"invalidate", None]  # before anything is read from it
            # the tracking connection reopens on the new master: tracked again there
            direct = redis.Redis(port=spare.port, socket_timeout=WAIT)
            deadline = time.monotonic() + WAIT
            while True:
                assert a.call("GET", key) is None
                direct.set(key, "1")
                got = a.read()
                direct.delete(key)
                if got == [b"invalidate", [key.encode()]]:
                    break
                assert time.monotonic() < deadline, got
            with urllib.request.urlopen(admin + "/metrics", timeout=WAIT) as resp:
                metrics = resp.read().decode().splitlines()
            assert 'slotwarden_router_tracking_flushes_total{reason="topology"} 1.0' in metrics
        finally:
            a.close()
            b.close()


def test_resp3_redirect_target_and_broken_redirect(cluster: Cluster, conns: list[Conn]):
    target, a, b = new(cluster, conns), new(cluster, conns), new(cluster, conns)
    tracking_on(a, "REDIRECT", target.call("CLIENT", "ID"))
    a.call("GET", "t10")
    b.call("SET", "t10", "1")
    assert target.read() == [b"invalidate", [b"t10"]]  # a RESP3 target: the push
    target_id = a.call("CLIENT", "GETREDIR")
    target.close()
    time.sleep(0.2)
    a.call("GET", "t10")
    b.call("SET", "t10", "2")
    assert a.read() == [b"tracking-redir-broken", target_id]
    assert b"broken_redirect" in a.call("CLIENT", "TRACKINGINFO")[b"flags"]


def test_reads_queued_in_multi_are_tracked(cluster: Cluster, conns: list[Conn]):
    a, b = new(cluster, conns), new(cluster, conns)
    tracking_on(a)
    assert a.call("MULTI") == b"OK"
    assert a.call("GET", "t11") == b"QUEUED"
    assert a.call("EXEC") == [None]
    b.call("SET", "t11", "1")
    assert a.read() == [b"invalidate", [b"t11"]]


def test_stopped_master_is_detected_by_the_health_ping():
    with own_cluster(extra_router={"command_timeout_ms": 500}) as c:
        a = Conn(c.port)
        master = c.masters[c.owner("t12")]
        try:
            tracking_on(a)
            assert a.call("GET", "t12") is None
            assert master.proc is not None
            master.proc.send_signal(signal.SIGSTOP)
            try:
                # no PING answer within command_timeout_ms: lost, flushed
                assert a.read() == [b"invalidate", None]
            finally:
                master.proc.send_signal(signal.SIGCONT)
        finally:
            a.close()


def info_fields(conn: Conn) -> tuple[str, str]:
    """``flags=`` and ``redir=`` of the connection's CLIENT INFO."""
    fields = dict(f.split("=", 1) for f in conn.call("CLIENT", "INFO").decode().split())
    return fields["flags"], fields["redir"]


def test_client_info_shows_tracking_as_redis(
    cluster: Cluster, conns: list[Conn], redis_plain: RedisProc
):
    ours, theirs = new(cluster, conns), Conn(redis_plain.port)
    conns.append(theirs)
    for step in (
        (),
        ("CLIENT", "TRACKING", "ON"),
        ("CLIENT", "TRACKING", "OFF"),
        ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "p"),
        ("RESET",),
    ):
        if step:
            assert plain(ours.call(*step)) == plain(theirs.call(*step)), step
        assert info_fields(ours) == info_fields(theirs), step


# ------------------------------------------------ which shards a route change flushes


def test_route_changes_flush_the_shards_they_change() -> None:
    nodes = [object(), object(), object()]  # a route's masters, compared by identity

    def route(shards: list[Shard], ranges: list[list[tuple[int, int]]], masters=nodes, mig=()):
        return Route(SlotMap.build(1, shards, ranges, mig), tuple(masters))  # type: ignore[arg-type]

    shards = [Shard(n, Address("127.0.0.1", 7000 + i)) for i, n in enumerate("abc")]
    ranges = [[(0, 5000)], [(5001, 10000)], [(10001, 16383)]]
    base = route(shards, ranges)
    assert changed_shards(base, route(shards, ranges)) == set()
    # a replica list changes: nothing to flush
    more = [shards[0], Shard("b", shards[1].master, (Address("127.0.0.1", 7100),)), shards[2]]
    assert changed_shards(base, route(more, ranges)) == set()
    # b fails over to a new master (a new node)
    moved = [shards[0], Shard("b", Address("127.0.0.1", 7200)), shards[2]]
    assert changed_shards(base, route(moved, ranges, [nodes[0], object(), nodes[2]])) == {1}
    # a slot moves from a to c
    assert changed_shards(
        base, route(shards, [[(0, 4999)], ranges[1], [(5000, 5000), *ranges[2]]])
    ) == {0, 2}
    # a migration from b to c starts, then ends
    mig = (Migration(((6000, 6000),), "b", "c"),)
    started = route(
        shards, [ranges[0], [(5001, 5999), (6001, 10000)], [(6000, 6000), *ranges[2]]], mig=mig
    )
    assert changed_shards(base, started) == {1, 2}
    ended = Route(started.slotmap.derive(migrations=()), started.masters)
    assert changed_shards(started, ended) == {1, 2}
    # c is removed
    assert changed_shards(base, route(shards[:2], [ranges[0], [(5001, 16383)]], nodes[:2])) == {
        1,
        2,
    }


def test_scripts_declared_keys_are_tracked(cluster: Cluster, conns: list[Conn]):
    a, b = new(cluster, conns), new(cluster, conns)
    tracking_on(a)
    assert a.call("EVAL", "return redis.call('GET', KEYS[1])", 1, "t13") is None
    b.call("SET", "t13", "1")
    assert a.read() == [b"invalidate", [b"t13"]]
