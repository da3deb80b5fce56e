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

from slotwarden.resp.accel import UNSURE, parse_bulks, parse_requests
from slotwarden.resp.buffer import NEED_MORE, Buffer, NeedMore
from slotwarden.resp.encode import encode_command
from slotwarden.resp.errors import ProtocolError

Request = tuple[list[bytes], bytes]

# Redis's own defaults (networking.c / server.h).
DEFAULT_MAX_BULK = 512 * 1024 * 1024  # proto-max-bulk-len
DEFAULT_MAX_ARGS = 2**31 - 1  # multibulk length limit: INT_MAX since Redis 7.0
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

    Resumable, as Redis's own parser: a multibulk request whose count line and
    first arguments have arrived keeps them (``_argc`` announced, ``_args``
    framed, ``_raw`` their exact bytes) and parsing goes on after them when
    more bytes come, in C (`slotwarden.resp.accel.parse_bulks`) or in the
    reference alike; so a request arriving in many small pieces is framed
    once, not from its start again at every piece (issue 10, item 5).
    ``scanned`` counts the bytes handed to the framers (each call: from where
    it started to where it stopped, or to the end of the buffer when it needs
    more) and ``copied`` the bytes the input buffer joined; both stay within a
    small multiple of the bytes received, however they are cut (the tests
    check it). Nothing is allocated from a count line: ``*2147483647`` alone
    costs nothing until its arguments arrive.
    """

    __slots__ = (
        "_argc", "_args", "_b", "_bulks", "_parse", "_raw", "_raw_len", "drained", "max_args",
        "max_bulk", "max_inline", "scanned", "unauthenticated",
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
        self._bulks = parse_bulks if speedups else None
        # the multibulk request in progress: arguments announced (0: none), framed, raw bytes
        self._argc = 0
        self._args: list[bytes] = []
        self._raw: list[bytes] = []
        self._raw_len = 0
        # True while the client must still authenticate: Redis's tighter limits apply
        self.unauthenticated = False
        # True when the last `read` parsed everything it could and nothing came since:
        # another `read` would return no request (the caller can skip it).
        self.drained = False
        self.scanned = 0  # bytes handed to the framers (a work counter for the tests)

    @property
    def copied(self) -> int:
        """Bytes the input buffer copied joining what arrived (a work counter)."""
        return self._b.copied

    def feed(self, data: bytes) -> None:
        self.drained = False
        b = self._b
        if data and not b.chunks and b.pos >= len(b.buf):  # Buffer.feed's common case, inlined
            b.buf = bytes(data)
            b.pos = 0
        else:
            b.feed(data)

    def _limits(self) -> tuple[int, int]:
        if self.unauthenticated:  # a request past these: the reference says why
            return (
                min(self.max_args, UNAUTHENTICATED_MAX_ARGS),
                min(self.max_bulk, UNAUTHENTICATED_MAX_BULK),
            )
        return self.max_args, self.max_bulk

    def _keep(self, start: int, end: int, argc: int = 0) -> None:
        """The request in progress framed ``buf[start:end]`` more (``argc``: it starts
        there, announcing that many): keep those bytes, go on from ``end``."""
        b = self._b
        if argc:
            self._argc = argc
            self._raw = []
            self._raw_len = 0
        if end > start:
            self._raw.append(b.buf[start:end])
            self._raw_len += end - start
        b.pos = end

    def _finish(self, end: int) -> Request:
        """The request in progress is complete up to ``end``: hand it out, forget it."""
        b = self._b
        raw_parts = self._raw
        raw_parts.append(b.buf[b.pos : end])
        req = self._args, b"".join(raw_parts)
        self._argc = 0
        self._args = []
        self._raw = []
        self._raw_len = 0
        b.pos = end
        b.need = 0
        return req

    def read(self, limit: int) -> list[Request]:
        """Up to ``limit`` complete requests, in order.

        Raises `ProtocolError` when the first unread request is malformed; if
        good requests precede it, they are returned first and the error is
        raised by the next call.
        """
        b = self._b
        parse = self._parse
        buf = b.buf
        start = b.pos
        if parse is not None and not self._argc and not b.chunks and start < len(buf):
            # The common case, in one C call: whole requests that end where the input
            # ends (no request in progress, no chunk to join). Anything else is left to
            # the loop below, which frames the same input again from the same state.
            max_args, max_bulk = self._limits()
            got, pos, need, partial = parse(buf, start, limit, max_args, max_bulk, self.max_inline)
            if partial is None and need is not UNSURE and need == 0 and pos == len(buf):
                self.scanned += pos - start
                b.buf = b""  # all consumed: let go of the bytes (as below)
                b.pos = 0
                b.need = 0
                self.drained = len(got) < limit
                return got
        out: list[Request] = []
        drained = True
        while len(out) < limit and b.ready():
            if parse is not None:
                max_args, max_bulk = self._limits()
                start = b.pos
                size = len(b.buf)
                if self._argc:  # a request in progress: frame its next arguments
                    args = self._args
                    pos, need = self._bulks(  # type: ignore[misc]
                        b.buf, start, self._argc - len(args), max_bulk, self.max_inline, args
                    )
                    self.scanned += (pos if need == 0 else size) - start
                    if need == 0:
                        out.append(self._finish(pos))
                        continue
                    self._keep(start, pos)
                else:
                    got, pos, need, partial = parse(
                        b.buf, start, limit - len(out), max_args, max_bulk, self.max_inline
                    )
                    self.scanned += (pos if need == 0 and partial is None else size) - start
                    if got:
                        if out:
                            out += got
                        else:
                            out = got
                    if partial is not None:  # stopped inside a request: keep what is framed
                        at, argc, self._args = partial
                        b.pos = at
                        self._keep(at, pos, argc)
                    else:
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
        self._argc = 0
        self._args = []
        self._raw = []
        self._raw_len = 0
        self.drained = False

    def buffered(self) -> int:
        """Bytes received and not yet returned as requests (those of the request in
        progress included)."""
        return self._b.unread() + self._raw_len

    def empty(self) -> bool:
        """Nothing buffered: no byte received and not yet returned as a request."""
        b = self._b
        return not self._argc and not b.chunks and b.pos >= len(b.buf)

    def unparsed(self) -> int:
        """Bytes received and not parsed yet: what Redis's client-query-buffer-limit
        bounds (the arguments of the request in progress are parsed, as in Redis)."""
        b = self._b  # Buffer.unread, inlined (asked after every read of a client)
        return len(b.buf) - b.pos + b.chunks_len

    def next_request(self) -> Request | NeedMore:
        """The next complete request as ``(args, raw)``, or NEED_MORE.

        Empty requests (``*0``, ``*-1``, blank inline lines) are skipped as
        Redis skips them. Raises `ProtocolError` on malformed input.
        """
        b = self._b
        while b.ready():
            buf = b.buf
            start = b.pos
            if self._argc:
                result = self._resume(buf, start)
            elif buf[start] == 42:  # '*'
                result = self._multibulk(buf, start)
            else:
                result = self._inline(buf, start)
            self.scanned += (b.pos if result is not NEED_MORE else len(buf)) - start
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
        if count == 0:
            b.pos = nl + 2
            return [], b""
        args: list[bytes] = []
        p = self._bulks_py(buf, nl + 2, count, args)
        if len(args) == count:
            b.pos = p
            b.need = 0
            return args, buf[start:p]
        self._args = args  # incomplete: keep what is framed, go on from there later
        self._keep(start, p, count)
        return NEED_MORE

    def _resume(self, buf: bytes, start: int) -> Request | NeedMore:
        """The request in progress, from its next argument at ``start``."""
        args: list[bytes] = []
        p = self._bulks_py(buf, start, self._argc - len(self._args), args)
        self._args += args
        if len(self._args) == self._argc:
            return self._finish(p)
        self._keep(start, p)
        return NEED_MORE

    def _bulks_py(self, buf: bytes, p: int, count: int, args: list[bytes]) -> int:
        """Frame up to ``count`` bulk arguments from ``buf[p]`` into ``args``; returns
        where the last one framed ends. Fewer than ``count``: ``need`` is set (bytes
        wanted from that point). Raises `ProtocolError` on a malformed one."""
        b = self._b
        end = len(buf)
        append = args.append
        max_bulk = self.max_bulk
        for _ in range(count):
            if p >= end:
                b.need = 1
                return p
            if buf[p] != 36:  # '$'
                got = chr(buf[p]) if 32 < buf[p] < 127 else f"\\x{buf[p]:02x}"
                raise ProtocolError(f"expected '$', got '{got}'")
            nl = buf.find(b"\r\n", p)
            if nl == -1:
                if end - p > self.max_inline:
                    raise ProtocolError("too big bulk count string")
                b.need = end - p + 1
                return p
            line = buf[p + 1 : nl]
            # inlined _parse_len (hot path): strict decimal, no leading zeros
            if not line.isdigit() or (line[0] == 48 and len(line) > 1):
                raise ProtocolError("invalid bulk length")
            size = int(line)
            if size > max_bulk:
                raise ProtocolError("invalid bulk length")
            if size > UNAUTHENTICATED_MAX_BULK and self.unauthenticated:
                raise ProtocolError("unauthenticated bulk length")
            q = nl + 2 + size + 2
            if q > end:
                b.need = q - p
                return p
            append(buf[nl + 2 : q - 2])
            p = q
        return p

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
