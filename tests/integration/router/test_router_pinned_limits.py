"""Per-client limits on dedicated connections (issue 10, item 9).

512 ``BLPOP k 0`` from one source took every dedicated connection to a shard;
every other client then got ``-ERR router has no free dedicated connection``
for WATCH and SUBSCRIBE. Now one source address holds at most
``pinned_per_source``, one router user at most ``pinned_per_user``, and the
last ``pinned_reserved_for_pubsub`` are kept for subscriptions. Clients from
"other machines" connect from 127.0.0.2 and 127.0.0.3 (Linux routes all of
127/8 to lo).
"""

from __future__ import annotations

import socket
import time

import pytest
import redis
from conftest import own_cluster

from slotwarden.cluster.slots import key_hash_slot

LIMITS = {
    "pinned_connections_per_node": 8,
    "pinned_per_source": 4,
    "pinned_per_user": 5,
    "pinned_reserved_for_pubsub": 2,
}


def encode(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class Raw:
    """A client connection from a chosen source address (redis-py cannot bind one)."""

    def __init__(self, port: int, source: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), 5, (source, 0))
        self.buf = b""

    def send(self, *args: str) -> None:
        self.sock.sendall(encode(*args))

    def reply(self, timeout: float = 5.0) -> bytes:
        """The next reply's first line (enough for +OK, -ERR, :n and the pub/sub arrays)."""
        self.sock.settimeout(timeout)
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def no_reply(self, wait: float = 0.3) -> bool:
        try:
            self.reply(wait)
        except TimeoutError:
            return True
        return False

    def call(self, *args: str) -> bytes:
        self.send(*args)
        return self.reply()

    def close(self) -> None:
        self.sock.close()


def shard_a_name(c, prefix: str) -> str:
    """A key (or channel) in shard 0 ("a")."""
    return next(f"{prefix}{i}" for i in range(10_000) if c.owner(f"{prefix}{i}") == 0)


def blocked_on_shard(c) -> int:
    return int(c.shard_client(0).info("clients")["blocked_clients"])


def wait_until(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def limited():
    with own_cluster(extra_router=dict(LIMITS)) as c:
        yield c


def test_one_source_is_capped_and_others_still_get_blpop_watch_and_subscribe(limited):
    c = limited
    key = shard_a_name(c, "q")
    channel = shard_a_name(c, "ch")
    assert key_hash_slot(key.encode()) is not None
    opened: list[Raw] = []
    try:
        # source 127.0.0.1 fills its cap with BLPOP k 0 ...
        a = [Raw(c.port, "127.0.0.1") for _ in range(5)]
        opened += a
        for r in a[:4]:
            r.send("BLPOP", key, "0")
        wait_until(lambda: blocked_on_shard(c) == 4)
        assert all(r.no_reply() for r in a[:4])
        # ... and gets the error beyond it, naming the limit (WATCH too)
        assert a[4].call("BLPOP", key, "0") == (
            b"-ERR too many dedicated connections from 127.0.0.1 to shard a "
            b"(router.pinned_per_source is 4)"
        )
        assert a[4].call("WATCH", key).startswith(b"-ERR too many dedicated connections")
        # another source still gets WATCH (and gives it back) and BLPOP
        b = [Raw(c.port, "127.0.0.2") for _ in range(4)]
        opened += b
        assert b[0].call("WATCH", key) == b"+OK"
        assert b[0].call("UNWATCH") == b"+OK"
        b[0].send("BLPOP", key, "0")
        b[1].send("BLPOP", key, "0")
        wait_until(lambda: blocked_on_shard(c) == 6)
        # 6 of 8 held: the last 2 are for subscriptions only
        reply = b[2].call("BLPOP", key, "0")
        assert reply.startswith(b"-ERR router has no free dedicated connection to shard a for "), (
            reply
        )
        assert b"router.pinned_reserved_for_pubsub" in reply
        assert b[2].call("WATCH", key).startswith(b"-ERR router has no free dedicated")
        # SUBSCRIBE still works, from either source
        assert b[3].call("SUBSCRIBE", channel) == b"*3"
        cc = Raw(c.port, "127.0.0.3")
        opened.append(cc)
        assert cc.call("SUBSCRIBE", channel) == b"*3"
        for r in (b[3], cc):
            assert r.reply() == b"$9" and r.reply() == b"subscribe"
            r.reply(), r.reply()  # the channel, :1
        assert redis.Redis(port=c.port).publish(channel, "hi") == 2
        # connections are given back when clients leave: 127.0.0.1 may block again
        for r in a[:4]:
            r.close()
        wait_until(lambda: blocked_on_shard(c) == 2)
        again = Raw(c.port, "127.0.0.1")
        opened.append(again)
        again.send("BLPOP", key, "0")
        wait_until(lambda: blocked_on_shard(c) == 3)
        assert again.no_reply()
        redis.Redis(port=c.port).rpush(key, "x")
        wait_until(lambda: blocked_on_shard(c) == 2)
    finally:
        for r in opened:
            r.close()


USERS_LIMITS = {
    **LIMITS,
    "pinned_connections_per_node": 12,
    "users": [
        {"name": "alice", "password_env": "ALICE_PW"},
        {"name": "bob", "password_env": "BOB_PW"},
    ],
}


def test_one_user_is_capped_across_sources():
    env = {"ALICE_PW": "alice-pw", "BOB_PW": "bob-pw"}
    with own_cluster(extra_router=USERS_LIMITS, env=env) as c:
        key = shard_a_name(c, "q")
        opened: list[Raw] = []
        try:
            for source in ("127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.2"):
                r = Raw(c.port, source)
                opened.append(r)
                assert r.call("AUTH", "alice", "alice-pw") == b"+OK"
                r.send("BLPOP", key, "0")
            wait_until(lambda: blocked_on_shard(c) == 5)
            r = Raw(c.port, "127.0.0.3")
            opened.append(r)
            assert r.call("AUTH", "alice", "alice-pw") == b"+OK"
            assert r.call("BLPOP", key, "0") == (
                b"-ERR too many dedicated connections for user alice to shard a "
                b"(router.pinned_per_user is 5)"
            )
            # another user, from the same address, still blocks
            assert r.call("AUTH", "bob", "bob-pw") == b"+OK"
            r.send("BLPOP", key, "0")
            wait_until(lambda: blocked_on_shard(c) == 6)
            assert r.no_reply()
        finally:
            for r in opened:
                r.close()
