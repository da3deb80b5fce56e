"""Request size limits as redis-server 7.0 has them (issue 10, item 10), side by side with one.

- Multibulk counts up to INT_MAX are taken (``*1048577`` and longer were
  refused by the router): a 1,048,577-argument MGET answers what redis-server
  answers, byte for byte; ``*2147483648`` is Redis's exact protocol error.
- Memory is bounded as Redis bounds it: a client whose input not yet parsed
  exceeds ``client_query_buffer_limit_bytes`` (Redis: client-query-buffer-limit,
  1 MiB in these tests, the smallest Redis allows) is closed without a reply,
  the router logs why, and every other client goes on being served.
"""

from __future__ import annotations

import socket

import pytest
from compat import Raw, plain_server, wait_for
from conftest import own_cluster

pytestmark = pytest.mark.timeout(120)

LIMIT = 1024 * 1024


@pytest.fixture(scope="module")
def plain(session_farm):
    yield from plain_server(session_farm)


@pytest.fixture(scope="module")
def limited():
    with own_cluster(extra_router={"client_query_buffer_limit_bytes": LIMIT}) as c:
        yield c


def raw_reply(port: int, data: bytes, until_closed: bool = False) -> bytes:
    """Send ``data``; read one complete reply (or, with ``until_closed``, everything
    until the server closes the connection)."""
    from slotwarden.resp.replies import ReplyScanner

    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(data)
        scanner = ReplyScanner()
        got = b""
        while True:
            try:
                chunk = s.recv(1 << 20)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return got
            got += chunk
            if not until_closed:
                scanner.feed(chunk)
                replies = scanner.replies()
                if replies:
                    return replies[0]


def mget(keys: list[bytes]) -> bytes:
    return b"*%d\r\n$4\r\nMGET\r\n" % (len(keys) + 1) + b"".join(
        b"$%d\r\n%b\r\n" % (len(k), k) for k in keys
    )


def test_1048577_arguments_answer_like_redis(limited, plain) -> None:
    """``*1048577``: 1,048,576 keys (a few of them set on each side), the same reply."""
    keys = [b"k%d" % i for i in range(1_048_576)]
    data = mget(keys)
    assert data.startswith(b"*1048577\r\n")
    for port in (limited.port, plain.port):
        with Raw(port) as c:
            assert c.call("MSET", "k7", "seven", "k1048575", "last", "k500000", "mid") == b"+OK\r\n"
    got = raw_reply(limited.port, data)
    want = raw_reply(plain.port, data)
    assert want.startswith(b"*1048576\r\n$-1\r\n") and b"$5\r\nseven\r\n" in want
    assert got == want


@pytest.mark.parametrize(
    "head", [b"*2147483648\r\n", b"*2147483648\r\n$4\r\nPING\r\n", b"*99999999999\r\n"]
)
def test_count_over_int_max_is_redis_error(limited, plain, head) -> None:
    got = raw_reply(limited.port, head, until_closed=True)
    want = raw_reply(plain.port, head, until_closed=True)
    assert got == want == b"-ERR Protocol error: invalid multibulk length\r\n"


def test_int_max_count_is_taken_and_waits_for_its_arguments(limited, plain) -> None:
    for port in (limited.port, plain.port):
        with Raw(port) as c:
            c.sock.sendall(b"*2147483647\r\n$4\r\nPING\r\n")
            assert c.quiet(0.3)  # no error: the rest may still come
        with Raw(port) as c:  # and the server is fine
            assert c.call("PING") == b"+PONG\r\n"


def test_client_over_query_buffer_limit_is_closed_others_go_on(limited, plain) -> None:
    """A 2 MiB argument in progress (more than the 1 MiB limit unparsed): Redis and the
    router both close the client without a reply; a second client keeps working."""
    with Raw(plain.port) as c:
        c.call("CONFIG", "SET", "client-query-buffer-limit", str(LIMIT))
    data = b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n" % (2 * LIMIT) + b"x" * (2 * LIMIT)
    other = Raw(limited.port)
    try:
        assert other.call("SET", "small", "1") == b"+OK\r\n"
        replies = {}
        for name, port in (("router", limited.port), ("redis", plain.port)):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                sent = 0
                try:
                    for i in range(0, len(data), 65536):
                        s.sendall(data[i : i + 65536])
                        sent += 65536
                except (BrokenPipeError, ConnectionResetError):
                    pass
                got = b""
                try:
                    while chunk := s.recv(65536):
                        got += chunk
                except ConnectionResetError:
                    pass
                replies[name] = got
            # still serving the others
            assert Raw(port).call("GET", "big") == b"$-1\r\n"
        assert replies == {"router": b"", "redis": b""}
        assert other.call("GET", "small") == b"$1\r\n1\r\n"
        wait_for(
            lambda: "closing client that reached max query buffer length" in limited.router.log(),
            "the router's log line",
        )
        assert "x" * 64 not in limited.router.log()  # the client's bytes are not logged
    finally:
        other.close()
