"""Refusals the router makes itself answer byte for byte what redis-server 7.0 answers.

Unknown commands and subcommands (Redis cuts the name at 128 bytes, shows
arguments while fewer than 128 bytes of them are shown, passes raw bytes, stops
each at a NUL and turns CR/LF into spaces), and malformed multibulk counts
(``*-0``). Each case runs on a fresh connection to the router and to a plain
redis-server, and the replies must be equal.
"""

from __future__ import annotations

import random

import pytest
from compat import Raw, both, plain_server


@pytest.fixture(scope="module")
def plain(session_farm):
    yield from plain_server(session_farm)


UNKNOWN = [
    (b"NOSUCH",),
    (b"NOSUCH", b"a", b"b"),
    (b"N" * 300, b"x" * 300),  # name and argument cut at 128
    (b"NOSUCH", *[b"arg%d" % i for i in range(40)]),  # stops once 128 bytes are shown
    (b"NOSUCH", b"x" * 120, b"abcdefghij", b"z"),  # the second argument gets what is left
    (b"NOSUCH", b"caf\xc3\xa9", b"\xff\xfe\x80"),  # raw bytes, not decoded
    (b"NOSUCH", b"a\x00b", b"c"),  # a C string stops at NUL
    (b"NO\x00SUCH", b"a"),
    (b"NOSUCH", b"line\r\nbreak"),  # CR/LF become spaces
    (b"CONFIG", b"NOSUCH"),  # unknown subcommand
    (b"config", b"s" * 300),
    (b"object", b"\xff\x00x"),
    (b"cOnFiG", b"nosuch", b"x"),
]


@pytest.mark.parametrize("request_", UNKNOWN, ids=range(len(UNKNOWN)))
def test_unknown_command_texts_match_redis(fresh, plain, request_) -> None:
    got, want = both(fresh.port, plain.port, request_)
    assert got == want, (request_, got, want)


def test_random_unknown_commands_match_redis(fresh, plain) -> None:
    rng = random.Random(9)
    alphabet = b"ab\x00\r\n'\"\xff "
    for _ in range(60):
        name = b"zz" + bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 140)))
        args = [
            bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
            for _ in range(rng.randint(0, 8))
        ]
        got, want = both(fresh.port, plain.port, (name, *args))
        assert got == want, (name, args, got, want)


@pytest.mark.parametrize("count", [b"-0", b"-01", b"-"])
def test_malformed_negative_multibulk_count_is_a_protocol_error(fresh, plain, count) -> None:
    replies = []
    for port in (fresh.port, plain.port):
        with Raw(port) as c:
            c.sock.sendall(b"*" + count + b"\r\n")
            replies.append(c.read(1))
    assert replies[0] == replies[1] == [b"-ERR Protocol error: invalid multibulk length\r\n"]


@pytest.mark.parametrize("request_", [(b"READONLY",), (b"READWRITE",), (b"asking",)])
def test_cluster_connection_flags_answer_as_a_standalone_redis(fresh, plain, request_) -> None:
    # a standalone redis-server refuses them (cluster support disabled); so does the router
    got, want = both(fresh.port, plain.port, request_)
    assert got == want == [b"-ERR This instance has cluster support disabled\r\n"], got
