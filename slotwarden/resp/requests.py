"""Client requests, sans-IO: `RequestReader` parses what a Redis client sends.

Multibulk (``*N`` of ``$len`` bulks) and inline commands, pipelined, split at
any byte. Each request comes back as ``(args, raw)``: the arguments and the
exact bytes the client sent, so a request that goes to one shard is
forwarded untouched. Malformed input and broken limits raise `ProtocolError`
with the same text Redis puts after ``-ERR Protocol error:``; Redis then
closes the client.

Invariant: a reader never returns a request before all of its bytes have
arrived, and never consumes bytes past the end of the request it returns.
"""

from __future__ import annotations

from slotwarden.resp.accel import UNSURE, parse_requests
from slotwarden.resp.buffer import NEED_MORE, Buffer, NeedMore
from slotwarden.resp.encode import encode_command
from slotwarden.resp.errors import ProtocolError

Request = tuple[list[bytes], bytes]

# Redis's own defaults (networking.c / server.h).
DEFAULT_MAX_BULK = 512 * 1024 * 1024  # proto-max-bulk-len
DEFAULT_MAX_ARGS = 1024 * 1024  # multibulk length limit
DEFAULT_MAX_INLINE = 64 * 1024  # PROTO_INLINE_MAX_SIZE
# What Redis 7 lets a client send before it has authenticated (networking.c): more
# arguments or a longer bulk is a protocol error, so nothing big is buffered for it.
UNAUTHENTICATED_MAX_ARGS = 10
UNAUTHENTICATED_MAX_BULK = 16384


def _parse_len(line: bytes) -> int:
    """A strict non-negative decimal (as Redis's string2ll: no sign, no spaces,
    no leading zeros); -1 when malformed."""
    if line.isdigit() and (len(line) == 1 or line[0] != 48):
        return int(line)
    return -1


class RequestReader:
    """Parses client requests. ``feed(data)``, then `read` (batched) or `next_request`
    (the reference parser, one at a time) until nothing is left.

    `read` frames canonical multibulk requests in C when the speedups are built
    (`slotwarden.resp.accel.parse_requests`); anything C answers `UNSURE` for
    — inline commands, malformed input, broken limits — and everything when C
    is not built goes through `next_request`, the reference, which gives
    Redis's exact errors. ``speedups=False`` forces the reference (tests
    compare the two).
    """

    __slots__ = (
        "_b", "_parse", "drained", "max_args", "max_bulk", "max_inline", "unauthenticated",
    )  # fmt: skip

    def __init__(
        self,
        max_bulk: int = DEFAULT_MAX_BULK,
        max_args: int = DEFAULT_MAX_ARGS,
        max_inline: int = DEFAULT_MAX_INLINE,
        speedups: bool = True,
    ) -> None:
        self.max_bulk = max_bulk
        self.max_args = max_args
        self.max_inline = max_inline
        self._b = Buffer()
        self._parse = parse_requests if speedups else None
        # True while the client must still authenticate: Redis's tighter limits apply
        self.unauthenticated = False
        # True when the last `read` parsed everything it could and nothing came since:
        # another `read` would return no request (the caller can skip it).
        self.drained = False

    def feed(self, data: bytes) -> None:
        self.drained = False
        self._b.feed(data)

    def read(self, limit: int) -> list[Request]:
        """Up to ``limit`` complete requests, in order.

        Raises `ProtocolError` when the first unread request is malformed; if
        good requests precede it, they are returned first and the error is
        raised by the next call.
        """
        out: list[Request] = []
        b = self._b
        parse = self._parse
        drained = True
        while len(out) < limit and b.ready():
            if parse is not None:
                if self.unauthenticated:  # a request past these: the reference says why
                    max_args = min(self.max_args, UNAUTHENTICATED_MAX_ARGS)
                    max_bulk = min(self.max_bulk, UNAUTHENTICATED_MAX_BULK)
                else:
                    max_args, max_bulk = self.max_args, self.max_bulk
                got, pos, need = parse(
                    b.buf, b.pos, limit - len(out), max_args, max_bulk, self.max_inline
                )
                if got:
                    if out:
                        out += got
                    else:
                        out = got
                b.pos = pos
                if need is not UNSURE:
                    if need == 0:  # at the end of the buffer (join what came since) or at limit
                        b.need = 0
                        if pos < len(b.buf):
                            break
                        continue
                    # a partial request with a well-formed start: wait for `need` bytes
                    b.need = need
                    if not b.chunks:
                        break
                    continue
            # not one C frames (or no C): the reference parser reads it (or says why not)
            try:
                req = self.next_request()
            except ProtocolError:
                if out:
                    drained = False  # raised by the next call
                    break
                raise
            if req is NEED_MORE:
                break
            out.append(req)  # type: ignore[arg-type]
        if b.pos >= len(b.buf) and not b.chunks and b.buf:
            # all consumed: let go of the bytes now, not at the next feed (a 100 MB
            # request must not stay in memory while its client sends nothing more)
            b.buf = b""
            b.pos = 0
        self.drained = drained and len(out) < limit
        return out

    def clear(self) -> None:
        """Drop everything buffered (the connection is gone)."""
        self._b = Buffer()
        self.drained = False

    def buffered(self) -> int:
        """Bytes received and not yet returned as requests."""
        return self._b.unread()

    def next_request(self) -> Request | NeedMore:
        """The next complete request as ``(args, raw)``, or NEED_MORE.

        Empty requests (``*0``, ``*-1``, blank inline lines) are skipped as
        Redis skips them. Raises `ProtocolError` on malformed input.
        """
        b = self._b
        while b.ready():
            buf = b.buf
            start = b.pos
            if buf[start] == 42:  # '*'
                result = self._multibulk(buf, start)
            else:
                result = self._inline(buf, start)
            if result is NEED_MORE or result[0]:
                return result
            # an empty request was consumed: keep going
        return NEED_MORE

    def _multibulk(self, buf: bytes, start: int) -> Request | NeedMore:
        b = self._b
        end = len(buf)
        nl = buf.find(b"\r\n", start)
        if nl == -1:
            if end - start > self.max_inline:
                raise ProtocolError("too big mbulk count string")
            b.need = end - start + 1
            return NEED_MORE
        count_s = buf[start + 1 : nl]
        count = _parse_len(count_s)
        if count < 0:
            if count_s[:1] == b"-" and count_s[1:].isdigit() and count_s[1:2] != b"0":
                b.pos = nl + 2  # *-N (N > 0, string2ll's form): Redis skips it as empty
                return [], b""
            raise ProtocolError("invalid multibulk length")
        if count > UNAUTHENTICATED_MAX_ARGS and self.unauthenticated:
            raise ProtocolError("unauthenticated multibulk length")
        if count > self.max_args:
            raise ProtocolError("invalid multibulk length")
        p = nl + 2
        args: list[bytes] = []
        append = args.append
        max_bulk = self.max_bulk
        for _ in range(count):
            if p >= end:
                b.need = p - start + 1
                return NEED_MORE
            if buf[p] != 36:  # '$'
                got = chr(buf[p]) if 32 < buf[p] < 127 else f"\\x{buf[p]:02x}"
                raise ProtocolError(f"expected '$', got '{got}'")
            nl = buf.find(b"\r\n", p)
            if nl == -1:
                if end - p > self.max_inline:
                    raise ProtocolError("too big bulk count string")
                b.need = end - start + 1
                return NEED_MORE
            line = buf[p + 1 : nl]
            # inlined _parse_len (hot path): strict decimal, no leading zeros
            if not line.isdigit() or (line[0] == 48 and len(line) > 1):
                raise ProtocolError("invalid bulk length")
            size = int(line)
            if size > max_bulk:
                raise ProtocolError("invalid bulk length")
            if size > UNAUTHENTICATED_MAX_BULK and self.unauthenticated:
                raise ProtocolError("unauthenticated bulk length")
            p = nl + 2 + size + 2
            if p > end:
                b.need = p - start
                return NEED_MORE
            append(buf[nl + 2 : p - 2])
        b.pos = p
        b.need = 0
        return args, buf[start:p]

    def _inline(self, buf: bytes, start: int) -> Request | NeedMore:
        b = self._b
        nl = buf.find(b"\n", start)
        if nl == -1:
            if len(buf) - start > self.max_inline:
                raise ProtocolError("too big inline request")
            b.need = len(buf) - start + 1
            return NEED_MORE
        if nl - start > self.max_inline:
            raise ProtocolError("too big inline request")
        line = buf[start:nl]
        if line.endswith(b"\r"):
            line = line[:-1]
        args = split_inline(line)  # may raise: then nothing is consumed
        if len(args) > self.max_args:  # nor here (raised again by the next call)
            raise ProtocolError("invalid multibulk length")
        b.pos = nl + 1
        b.need = 0
        if not args:
            return [], b""
        # Inline requests are re-encoded so backends always see multibulk.
        return args, encode_command(args)


_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_HEX = b"0123456789abcdefABCDEF"


def split_inline(line: bytes) -> list[bytes]:
    """Split an inline command line as Redis's ``sdssplitargs`` does
    (spaces separate; ``"..."`` with escapes; ``'...'``). Raises
    `ProtocolError` ``unbalanced quotes in request``."""
    args: list[bytes] = []
    i = 0
    n = len(line)
    while True:
        while i < n and line[i] in b" \t\n\r\x0b\x0c":
            i += 1
        if i >= n:
            return args
        cur = bytearray()
        in_dq = in_sq = False
        while True:
            if in_dq:
                if i >= n:
                    raise ProtocolError("unbalanced quotes in request")
                c = line[i]
                if (
                    c == 92
                    and i + 3 < n
                    and line[i + 1] == ord("x")
                    and line[i + 2] in _HEX
                    and line[i + 3] in _HEX
                ):
                    cur.append(int(line[i + 2 : i + 4], 16))
                    i += 3
                elif c == 92 and i + 1 < n:
                    i += 1
                    cur.append(_ESCAPES.get(line[i], line[i]))
                elif c == 34:  # closing quote must be followed by a space or the end
                    if i + 1 < n and line[i + 1] not in b" \t\n\r\x0b\x0c":
                        raise ProtocolError("unbalanced quotes in request")
                    in_dq = False
                    i += 1
                    break
                else:
                    cur.append(c)
            elif in_sq:
                if i >= n:
                    raise ProtocolError("unbalanced quotes in request")
                c = line[i]
                if c == 92 and i + 1 < n and line[i + 1] == 39:
                    i += 1
                    cur.append(39)
                elif c == 39:
                    if i + 1 < n and line[i + 1] not in b" \t\n\r\x0b\x0c":
                        raise ProtocolError("unbalanced quotes in request")
                    in_sq = False
                    i += 1
                    break
                else:
                    cur.append(c)
            else:
                if i >= n:
                    break
                c = line[i]
                if c in b" \t\n\r\x0b\x0c":
                    break
                if c == 34:
                    in_dq = True
                elif c == 39:
                    in_sq = True
                else:
                    cur.append(c)
            i += 1
        args.append(bytes(cur))
