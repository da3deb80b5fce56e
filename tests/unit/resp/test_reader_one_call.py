"""`RequestReader.read`'s one-call path (whole requests ending where the input ends, framed
by one C call) against the reference parser, one `read` at a time: the requests, `drained`,
what stays buffered and the `scanned` work counter, at the boundaries where the one-call
path must hand over to the general loop (the limit reached, a partial request, a request
C leaves to the reference, a request in progress, chunks to join, unauthenticated limits).
"""

from __future__ import annotations

import pytest

from slotwarden.resp import accel
from slotwarden.resp.errors import ProtocolError
from slotwarden.resp.requests import RequestReader

needs_c = pytest.mark.skipif(accel.C is None, reason="the C speedups are not in use")


def cmd(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


SET = cmd(b"SET", b"key:000000012345", b"xxx")
BIG = cmd(b"SET", b"k", b"v" * 5000)
GET = cmd(b"GET", b"k")

# (label, chunks fed one by one, limit per read)
CASES = [
    ("one request", [SET], 100),
    ("sixteen requests", [SET * 16], 100),
    ("exactly the limit", [SET * 4], 4),
    ("over the limit", [SET * 5], 4),
    ("trailing partial", [SET + GET[:5]], 100),
    ("partial then rest", [SET + GET[:5], GET[5:] + SET], 100),
    ("inline request", [b"PING\r\n" + SET], 100),
    ("empty multibulk skipped", [b"*0\r\n" + SET], 100),
    ("two chunks before a read", [SET[:7], SET[7:]], 100),
    ("bytewise", [bytes([c]) for c in SET + GET], 100),
    ("big bulk in pieces", [BIG[i : i + 700] for i in range(0, len(BIG), 700)], 100),
    ("malformed after good", [SET + b"*1\r\n$x\r\n"], 100),
]  # fmt: skip


def steps(use_c: bool, chunks: list[bytes], limit: int, feed_all_first: bool, unauth: bool):
    """Every `read` (after each feed, until it returns nothing): its requests, then
    `drained` and `buffered()`; or the error text. (Not `unparsed()`: C frames the count
    line of a request in progress before the reference does; the existing differential
    tests do not compare it either.)"""
    reader = RequestReader(speedups=use_c)
    reader.unauthenticated = unauth
    out = []
    groups = [chunks] if feed_all_first else [[c] for c in chunks]
    for group in groups:
        for chunk in group:
            reader.feed(chunk)
        while True:
            try:
                got = reader.read(limit)
            except ProtocolError as exc:
                out.append(("error", str(exc)))
                return out, reader.scanned
            out.append((got, reader.drained, reader.buffered()))
            if not got:
                break
    return out, reader.scanned


@needs_c
@pytest.mark.parametrize("feed_all_first", [False, True], ids=["read-per-chunk", "feed-all"])
@pytest.mark.parametrize("unauth", [False, True], ids=["authenticated", "unauthenticated"])
@pytest.mark.parametrize(("label", "chunks", "limit"), CASES, ids=[c[0] for c in CASES])
def test_read_matches_the_python_reader(label, chunks, limit, feed_all_first, unauth):
    c, c_scanned = steps(True, chunks, limit, feed_all_first, unauth)
    py, _ = steps(False, chunks, limit, feed_all_first, unauth)
    assert c == py, label
    total = sum(map(len, chunks))
    assert c_scanned <= 3 * total + 64, (label, c_scanned, total)  # framed about once


@needs_c
def test_one_read_of_whole_requests_frames_each_byte_once():
    reader = RequestReader()
    data = SET * 16 + GET
    reader.feed(data)
    got = reader.read(1000)
    assert [args for args, _ in got] == [[b"SET", b"key:000000012345", b"xxx"]] * 16 + [
        [b"GET", b"k"]
    ]
    assert b"".join(raw for _, raw in got) == data
    assert reader.drained and reader.buffered() == 0 and reader.scanned == len(data)
    assert reader.read(1000) == []
