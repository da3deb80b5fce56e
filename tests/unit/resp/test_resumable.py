"""RequestReader resumes a request where it stopped (issue 10, item 5), in C and in Python.

A 1,000,000-argument EXISTS fed in 1 KB pieces used to be framed again from
its start at every piece (quadratic: ~7 s of router CPU). The reader now
keeps the arguments framed so far; its work counters (``scanned``: bytes
handed to the framers, ``copied``: bytes the input buffer joined) must stay
within a small multiple of the bytes received, checked after every piece, so
the test fails at once (not after minutes) where work grows with the square.
No clock is read.
"""

from __future__ import annotations

import tracemalloc

import pytest

from slotwarden.resp import accel
from slotwarden.resp.encode import encode_command
from slotwarden.resp.errors import ProtocolError
from slotwarden.resp.requests import RequestReader

needs_c = pytest.mark.skipif(accel.C is None, reason="the C speedups are not in use")
PATHS = [pytest.param(True, marks=needs_c, id="c"), pytest.param(False, id="python")]


def exists_request(nargs: int) -> tuple[list[bytes], bytes]:
    args = [b"EXISTS", *(b"k%d" % i for i in range(nargs))]
    return args, encode_command(args)


@pytest.mark.parametrize("speedups", PATHS)
def test_million_argument_request_in_1k_pieces_is_framed_once(speedups: bool) -> None:
    args, raw = exists_request(1_000_000)
    tail = encode_command([b"PING"])
    data = raw + tail
    reader = RequestReader(max_args=2**31 - 1, speedups=speedups)
    got = []
    fed = 0
    for i in range(0, len(data), 1024):
        piece = data[i : i + 1024]
        reader.feed(piece)
        fed += len(piece)
        got += reader.read(1000)
        # linear in what arrived: at most every byte twice, plus a piece's worth
        assert reader.scanned <= 2 * fed + 4096, (fed, reader.scanned)
        assert reader.copied <= 2 * fed + 4096, (fed, reader.copied)
    assert len(got) == 2
    assert got[0][0] == args and got[0][1] == raw  # the exact bytes, for forwarding
    assert got[1] == ([b"PING"], tail)
    assert reader.buffered() == 0


@pytest.mark.parametrize("speedups", PATHS)
def test_big_bulks_in_pieces_are_not_joined_again_and_again(speedups: bool) -> None:
    """Many 100 KB arguments arriving 1 KB at a time: each bulk is joined once
    it is complete (``need``), never rescanned from the request's start."""
    args = [b"MSET", *(x for i in range(20) for x in (b"k%d" % i, bytes([65 + i]) * 100_000))]
    raw = encode_command(args)
    reader = RequestReader(speedups=speedups)
    got = []
    fed = 0
    for i in range(0, len(raw), 1024):
        reader.feed(raw[i : i + 1024])
        fed += len(raw[i : i + 1024])
        got += reader.read(10)
        assert reader.scanned <= 2 * fed + 4096 and reader.copied <= 2 * fed + 4096
    assert got == [(args, raw)]


@pytest.mark.parametrize("speedups", PATHS)
def test_resumed_request_keeps_errors_and_buffered(speedups: bool) -> None:
    """A request cut after some arguments and then malformed: Redis's error, raised
    again by the next call, and ``buffered()`` still counts the kept bytes."""
    head = b"*4\r\n$3\r\nDEL\r\n$1\r\na\r\n"
    reader = RequestReader(speedups=speedups)
    reader.feed(encode_command([b"PING"]) + head)
    assert reader.read(10) == [([b"PING"], encode_command([b"PING"]))]
    assert reader.buffered() == len(head)
    reader.feed(b"$1\r\nb\r\n:1\r\n")
    for _ in range(2):
        with pytest.raises(ProtocolError, match="expected '\\$', got ':'"):
            reader.read(10)
    assert reader.buffered() == len(head) + len(b"$1\r\nb\r\n:1\r\n")
    reader.clear()
    assert reader.buffered() == 0
    reader.feed(encode_command([b"GET", b"k"]))
    assert reader.read(10) == [([b"GET", b"k"], encode_command([b"GET", b"k"]))]


@needs_c
def test_c_leaves_a_request_to_the_reference_midway() -> None:
    """C frames the canonical start, the reference finishes the odd rest (a
    non-canonical length): the same request as the reference alone."""
    data = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$01\r\nv\r\n"
    for cut in range(1, len(data)):
        for speedups in (True, False):
            reader = RequestReader(speedups=speedups)
            with pytest.raises(ProtocolError, match="invalid bulk length"):
                reader.feed(data[:cut])
                assert reader.read(10) == []
                reader.feed(data[cut:])
                reader.read(10)
    lenient = b"*2\r\n$4\r\nECHO\r\n$2\r\nabXY"  # Redis skips the 2 bytes after a payload
    for cut in range(1, len(lenient)):
        reader = RequestReader()
        reader.feed(lenient[:cut])
        got = reader.read(10)
        reader.feed(lenient[cut:])
        got += reader.read(10)
        assert got == [([b"ECHO", b"ab"], lenient)], cut


@pytest.mark.parametrize("speedups", PATHS)
def test_int_max_count_costs_nothing_until_its_arguments_arrive(speedups: bool) -> None:
    """Redis 7 takes counts up to INT_MAX, the default here too (issue 10, item 10);
    nothing is allocated from the count line, and INT_MAX + 1 is Redis's error."""
    reader = RequestReader(speedups=speedups)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        reader.feed(b"*2147483647\r\n$4\r\nPING\r\n")
        assert reader.read(10) == []
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 4096, grown
    assert reader.buffered() == len(b"*2147483647\r\n$4\r\nPING\r\n")
    reader = RequestReader(speedups=speedups)
    reader.feed(b"*2147483648\r\n")
    with pytest.raises(ProtocolError, match=r"^invalid multibulk length$"):
        reader.read(10)
