"""RESP codec: every byte split of request and reply streams, errors, limits."""

from __future__ import annotations

import pytest

from slotwarden.resp.buffer import NEED_MORE
from slotwarden.resp.encode import encode_command
from slotwarden.resp.errors import ProtocolError
from slotwarden.resp.replies import ReplyScanner
from slotwarden.resp.requests import RequestReader, split_inline

REQUESTS = (
    b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n"  # CRLF inside a bulk
    b"*1\r\n$4\r\nPING\r\n"
    b"PING\r\n"
    b'set "a b" \'c d\' "\\x41\\n"\n'
    b"*0\r\n"  # empty multibulk: skipped
    b"\r\n"  # empty inline: skipped
    b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n"  # empty argument
    b"*2\r\n$4\r\nECHO\r\n$8\r\n\x00\xff\r\n\r\n\r\n\r\n"  # binary
)
EXPECTED = [
    [b"SET", b"key", b"va\r\nl"],
    [b"PING"],
    [b"PING"],
    [b"set", b"a b", b"c d", b"A\n"],
    [b"GET", b""],
    [b"ECHO", b"\x00\xff\r\n\r\n\r\n"],
]


def drain(reader: RequestReader) -> list[tuple[list[bytes], bytes]]:
    out = []
    while (req := reader.next_request()) is not NEED_MORE:
        out.append(req)
    return out


def test_whole_stream() -> None:
    r = RequestReader()
    r.feed(REQUESTS)
    got = drain(r)
    assert [a for a, _ in got] == EXPECTED
    assert r.buffered() == 0


def test_every_two_way_split() -> None:
    for cut in range(len(REQUESTS) + 1):
        r = RequestReader()
        r.feed(REQUESTS[:cut])
        got = drain(r)
        r.feed(REQUESTS[cut:])
        got += drain(r)
        assert [a for a, _ in got] == EXPECTED, cut


def test_every_three_way_split() -> None:
    n = len(REQUESTS)
    for i in range(0, n + 1, 3):
        for j in range(i, n + 1, 2):
            r = RequestReader()
            got = []
            for chunk in (REQUESTS[:i], REQUESTS[i:j], REQUESTS[j:]):
                r.feed(chunk)
                got += drain(r)
            assert [a for a, _ in got] == EXPECTED, (i, j)


def test_byte_by_byte() -> None:
    r = RequestReader()
    got = []
    for i in range(len(REQUESTS)):
        r.feed(REQUESTS[i : i + 1])
        got += drain(r)
    assert [a for a, _ in got] == EXPECTED


def test_raw_span_is_exact_bytes_for_multibulk() -> None:
    stream = encode_command([b"SET", b"k", b"v"]) + encode_command([b"MGET", b"a", b"b"])
    r = RequestReader()
    r.feed(stream)
    got = drain(r)
    assert b"".join(raw for _, raw in got) == stream
    # inline requests are re-encoded as multibulk for the backends
    r.feed(b"GET  k\r\n")
    [(_args, raw)] = drain(r)
    assert raw == encode_command([b"GET", b"k"])


def test_need_more_is_not_none_or_false() -> None:
    assert NEED_MORE is not None
    with pytest.raises(TypeError):
        bool(NEED_MORE)


def test_large_bulk_in_small_chunks() -> None:
    value = bytes(range(256)) * 4096  # 1 MiB
    stream = encode_command([b"SET", b"k", value])
    r = RequestReader()
    for i in range(0, len(stream), 1000):
        r.feed(stream[i : i + 1000])
        if i + 1000 < len(stream):
            assert r.next_request() is NEED_MORE
    [(args, raw)] = drain(r)
    assert args == [b"SET", b"k", value]
    assert raw == stream


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"*abc\r\n", "invalid multibulk length"),
        (b"*1\r\nfoo\r\n", "expected '$', got 'f'"),
        (b"*1\r\n$x\r\n", "invalid bulk length"),
        (b"*1\r\n$-1\r\n", "invalid bulk length"),
        (b"*1\r\n$01\r\nab\r\n", "invalid bulk length"),
        (b"*+1\r\n", "invalid multibulk length"),
        (b"*-0\r\n", "invalid multibulk length"),  # string2ll: no "-0", no leading zeros
        (b"*-01\r\n", "invalid multibulk length"),
        (b"*-\r\n", "invalid multibulk length"),
        (b'set "abc\r\n', "unbalanced quotes in request"),
        (b"set 'abc\r\n", "unbalanced quotes in request"),
        (b'set "a"b\r\n', "unbalanced quotes in request"),
    ],
)
def test_protocol_errors(data: bytes, message: str) -> None:
    r = RequestReader()
    r.feed(data)
    with pytest.raises(ProtocolError) as info:
        drain(r)
    assert str(info.value) == message


def test_requests_before_an_error_are_returned_first() -> None:
    r = RequestReader()
    r.feed(b"PING\r\n*1\r\nX\r\n")
    assert r.next_request() == ([b"PING"], encode_command([b"PING"]))
    with pytest.raises(ProtocolError):
        r.next_request()


def test_limits() -> None:
    r = RequestReader(max_bulk=10)
    r.feed(b"*1\r\n$11\r\n")
    with pytest.raises(ProtocolError, match="invalid bulk length"):
        drain(r)
    r = RequestReader(max_args=2)
    r.feed(b"*3\r\n")
    with pytest.raises(ProtocolError, match="invalid multibulk length"):
        drain(r)
    r = RequestReader(max_inline=16)
    r.feed(b"x" * 17)
    with pytest.raises(ProtocolError, match="too big inline request"):
        drain(r)
    r = RequestReader(max_inline=16)
    r.feed(b"*" + b"1" * 17)
    with pytest.raises(ProtocolError, match="too big mbulk count string"):
        drain(r)
    r = RequestReader(max_inline=16)
    r.feed(b"*1\r\n$" + b"1" * 17)
    with pytest.raises(ProtocolError, match="too big bulk count string"):
        drain(r)
    # exactly at the limit is fine
    r = RequestReader(max_bulk=10, max_args=2)
    r.feed(encode_command([b"GET", b"0123456789"]))
    assert drain(r)[0][0] == [b"GET", b"0123456789"]


def test_negative_multibulk_is_skipped_like_redis() -> None:
    r = RequestReader()
    r.feed(b"*-1\r\nPING\r\n")
    assert [a for a, _ in drain(r)] == [[b"PING"]]


def test_split_inline_escapes() -> None:
    assert split_inline(b"a \"b\\tc\" 'd\\'e'") == [b"a", b"b\tc", b"d'e"]
    assert split_inline(b"   ") == []
    assert split_inline(b'"\\x4a\\x4B"') == [b"JK"]


REPLIES = [
    b"+OK\r\n",
    b"-ERR wrong\r\n",
    b":42\r\n",
    b"$5\r\nhe\r\nl\r\n",
    b"$-1\r\n",
    b"$0\r\n\r\n",
    b"*-1\r\n",
    b"*0\r\n",
    b"*3\r\n$1\r\na\r\n*2\r\n:1\r\n*1\r\n$-1\r\n+x\r\n",
    b"*4\r\n$1\r\na\r\n$-1\r\n:5\r\n$4\r\n\r\n\r\n\r\n",  # flat array (fast path)
    b"%2\r\n+a\r\n:1\r\n+b\r\n*1\r\n:2\r\n",  # RESP3 map
    b"~1\r\n,3.14\r\n",  # set of a double
    b"|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n",  # attribute, then the reply
    b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",  # push
    b"=15\r\ntxt:Some string\r\n",
    b"!5\r\nERR x\r\n",
    b"_\r\n#t\r\n(123456789012345678901234567890\r\n",  # three replies
]


def expected_replies() -> list[bytes]:
    out = []
    for r in REPLIES:
        if r.startswith(b"_"):
            out += [b"_\r\n", b"#t\r\n", b"(123456789012345678901234567890\r\n"]
        else:
            out.append(r)
    return out


def scan_all(s: ReplyScanner) -> list[bytes]:
    out = []
    while (raw := s.next_reply()) is not NEED_MORE:
        out.append(raw)
    return out


def test_reply_scanner_every_split() -> None:
    stream = b"".join(REPLIES)
    want = expected_replies()
    for cut in range(len(stream) + 1):
        s = ReplyScanner()
        s.feed(stream[:cut])
        got = scan_all(s)
        s.feed(stream[cut:])
        got += scan_all(s)
        assert got == want, cut


def test_reply_scanner_byte_by_byte() -> None:
    stream = b"".join(REPLIES)
    s = ReplyScanner()
    got = []
    for i in range(len(stream)):
        s.feed(stream[i : i + 1])
        got += scan_all(s)
    assert got == expected_replies()


def test_reply_scanner_rejects_garbage() -> None:
    s = ReplyScanner()
    s.feed(b"?what\r\n")
    with pytest.raises(ProtocolError):
        s.next_reply()


def read_all(reader: RequestReader) -> list[tuple[list[bytes], bytes]]:
    out = []
    while batch := reader.read(7):  # a small limit exercises batch boundaries
        out += batch
    return out


def reference(stream: bytes) -> list[tuple[list[bytes], bytes]]:
    r = RequestReader()
    r.feed(stream)
    return drain(r)


def test_fast_read_equals_reference_on_every_split() -> None:
    want = reference(REQUESTS)
    for cut in range(len(REQUESTS) + 1):
        r = RequestReader()
        r.feed(REQUESTS[:cut])
        got = read_all(r)
        r.feed(REQUESTS[cut:])
        got += read_all(r)
        assert got == want, cut


def test_fast_read_byte_by_byte_and_large() -> None:
    value = b"\r\n$*" * 50000
    stream = REQUESTS + encode_command([b"SET", b"big", value]) + REQUESTS
    want = reference(stream)
    r = RequestReader()
    got = []
    for i in range(0, len(stream), 333):
        r.feed(stream[i : i + 333])
        got += read_all(r)
    assert got == want
    r = RequestReader()
    got = []
    for i in range(len(REQUESTS)):
        r.feed(REQUESTS[i : i + 1])
        got += read_all(r)
    assert got == reference(REQUESTS)


@pytest.mark.parametrize(
    "bad",
    [
        b"*2\r\n$3\r\nGET\r\n:1\r\n",  # non-bulk element
        b"*1\r\n*1\r\n$1\r\na\r\n",  # nested array
        b"*1\r\n$01\r\na\r\n",
        b"*x\r\n",
        b'GET "a\r\n',
    ],
)
def test_fast_read_errors_after_good_requests(bad: bytes) -> None:
    r = RequestReader()
    r.feed(b"PING\r\n" + encode_command([b"GET", b"k"]) + bad)
    first = r.read(100)
    assert [a for a, _ in first] == [[b"PING"], [b"GET", b"k"]]
    with pytest.raises(ProtocolError) as fast:
        r.read(100)
    ref = RequestReader()
    ref.feed(bad)
    with pytest.raises(ProtocolError) as slow:
        drain(ref)
    assert str(fast.value) == str(slow.value)


def test_fast_read_enforces_limits_before_the_request_completes() -> None:
    r = RequestReader(max_bulk=100_000, max_inline=1024)
    r.feed(b"*2\r\n$3\r\nSET\r\n$200000\r\n" + b"x" * 5000)
    with pytest.raises(ProtocolError, match="invalid bulk length"):
        r.read(10)
    r = RequestReader(max_args=10)
    r.feed(encode_command([b"MGET"] + [b"k"] * 10))
    with pytest.raises(ProtocolError, match="invalid multibulk length"):
        r.read(10)


def test_replies_batch_equals_next_reply() -> None:
    stream = b"".join(REPLIES)
    for cut in range(len(stream) + 1):
        s = ReplyScanner()
        s.feed(stream[:cut])
        got = s.replies()
        s.feed(stream[cut:])
        got += s.replies()
        assert got == expected_replies(), cut


def test_split_array() -> None:
    from slotwarden.resp.replies import split_array

    assert split_array(b"*3\r\n$1\r\na\r\n$-1\r\n_\r\n") == [b"$1\r\na\r\n", b"$-1\r\n", b"_\r\n"]
    assert split_array(b"*2\r\n*1\r\n:1\r\n$2\r\n\r\n\r\n") == [b"*1\r\n:1\r\n", b"$2\r\n\r\n\r\n"]
    assert split_array(b"*0\r\n") == []
    assert split_array(b"$1\r\na\r\n") is None
    assert split_array(b"*2\r\n$1\r\na\r\n") is None  # truncated


@pytest.mark.parametrize("speedups", [True, False], ids=["c", "python"])
def test_unauthenticated_limits(speedups: bool) -> None:
    """Redis 7's limits before AUTH: at most 10 arguments, bulks of at most 16384 bytes;
    refused at the length line, before the payload arrives."""
    for data, message in [
        (b"*11\r\n", "unauthenticated multibulk length"),
        (b"*2\r\n$3\r\nGET\r\n$16385\r\n", "unauthenticated bulk length"),
        (b"*1\r\n$600000000\r\n", "invalid bulk length"),  # past proto-max-bulk-len first
    ]:
        r = RequestReader(speedups=speedups)
        r.unauthenticated = True
        r.feed(data)
        with pytest.raises(ProtocolError, match=message):
            r.read(10)
    r = RequestReader(speedups=speedups)
    r.unauthenticated = True
    ok = b"*10\r\n" + b"$1\r\nx\r\n" * 9 + b"$16384\r\n" + b"y" * 16384 + b"\r\n"
    r.feed(ok)
    assert len(r.read(10)) == 1
    r.unauthenticated = False
    r.feed(b"*11\r\n" + b"$1\r\nx\r\n" * 11)
    assert len(r.read(10)[0][0]) == 11
