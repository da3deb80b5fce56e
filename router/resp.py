"""RESP codec, sans-IO: request parsing (client side), reply framing (backend side), encoders.

Nothing here does I/O. Callers `feed()` bytes and pull complete items; a
partial item yields the `NEED_MORE` marker (never ``None``: RESP nil is a real
``None``).

- `RequestReader` parses what a Redis client sends: multibulk (``*N`` of
  ``$len`` bulks) and inline commands, pipelined, split at any byte. Each
  request comes back as ``(args, raw)``: the arguments and the exact bytes the
  client sent, so a request that goes to one shard is forwarded untouched.
  Malformed input and broken limits raise `ProtocolError` with the same text
  Redis puts after ``-ERR Protocol error:``; Redis then closes the client.
- `ReplyScanner` frames what a backend answers: it finds where each complete
  reply ends (RESP2 and RESP3 types, nested to any depth) and returns its raw
  bytes without building Python objects, so replies are forwarded as bytes.
- `encode_*` build replies and requests for the few places that re-encode
  (fan-out pieces, merged replies, router-local answers).

Invariant: a reader never returns a request/reply before all of its bytes
have arrived, and never consumes bytes past the end of the item it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import hiredis

from router.errors import ProtocolError
from router.speedups import C


class _NeedMore:
    """Marker: the buffer holds no complete item yet."""

    _instance: _NeedMore | None = None

    def __new__(cls) -> _NeedMore:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEED_MORE"

    def __bool__(self) -> bool:
        raise TypeError("test NEED_MORE with `is`, not truthiness")


NEED_MORE: Final = _NeedMore()

Request = tuple[list[bytes], bytes]

# Redis's own defaults (networking.c / server.h).
DEFAULT_MAX_BULK = 512 * 1024 * 1024  # proto-max-bulk-len
DEFAULT_MAX_ARGS = 1024 * 1024  # multibulk length limit
DEFAULT_MAX_INLINE = 64 * 1024  # PROTO_INLINE_MAX_SIZE


def _parse_len(line: bytes) -> int:
    """A strict non-negative decimal (as Redis's string2ll: no sign, no spaces,
    no leading zeros); -1 when malformed."""
    if line.isdigit() and (len(line) == 1 or line[0] != 48):
        return int(line)
    return -1


class _Buffer:
    """Bytes received but not consumed yet.

    Chunks are kept in a list and joined only when the parser can make
    progress (``need`` bytes available), so a large bulk arriving in many
    small reads is joined once, not once per read.
    """

    __slots__ = ("buf", "chunks", "chunks_len", "need", "pos")

    def __init__(self) -> None:
        self.buf = b""
        self.pos = 0
        self.chunks: list[bytes] = []
        self.chunks_len = 0
        self.need = 0  # total unread length needed before parsing can progress

    def feed(self, data: bytes) -> None:
        if not data:
            return
        if not self.chunks and self.pos >= len(self.buf):
            self.buf = bytes(data)
            self.pos = 0
            return
        self.chunks.append(bytes(data))
        self.chunks_len += len(data)

    def ready(self) -> bool:
        """Join pending chunks if that could let the parser progress."""
        if self.chunks:
            if len(self.buf) - self.pos + self.chunks_len < self.need:
                return False
            self.chunks.insert(0, self.buf[self.pos :])
            self.buf = b"".join(self.chunks)
            self.pos = 0
            self.chunks = []
            self.chunks_len = 0
        return self.pos < len(self.buf)

    def unread(self) -> int:
        return len(self.buf) - self.pos + self.chunks_len


# Decimal digits of n for n < 10000: the length of "$<n>" lines, for raw spans.
_DIGITS = bytes(len(str(i)) for i in range(10000))


class RequestReader:
    """Parses client requests. ``feed(data)``, then `read` (fast, batched) or
    `next_request` (the reference parser, one at a time) until nothing is left.

    `read` frames canonical multibulk requests in C when `router._speedups`
    is built (``router.speedups.C``), else lets hiredis's C parser split them
    and computes each request's raw span from the argument lengths (hiredis
    accepts only canonical length lines, so the span is exact). Anything
    either does not take as a plain array of bulk strings — inline commands,
    malformed input, limits — goes through `next_request`, the reference,
    which gives Redis's exact errors. ``speedups=False`` forces the hiredis
    path (tests compare the two).
    """

    __slots__ = (
        "_b", "_check_at", "_h", "_parse", "drained", "max_args", "max_bulk", "max_inline",
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
        self._b = _Buffer()
        self._h: hiredis.Reader | None = None  # fed the same bytes as _b while in sync
        self._check_at = max_inline  # backlog size at which limits are checked again
        self._parse = C.parse_requests if speedups and C is not None else None
        # True when the last `read` parsed everything it could and nothing came since:
        # another `read` would return no request (the caller can skip it).
        self.drained = False

    def feed(self, data: bytes) -> None:
        self.drained = False
        self._b.feed(data)
        if self._h is not None:
            self._h.feed(data)

    def read(self, limit: int) -> list[Request]:
        """Up to ``limit`` complete requests, in order.

        Raises `ProtocolError` when the first unread request is malformed; if
        good requests precede it, they are returned first and the error is
        raised by the next call.
        """
        if self._parse is not None:
            return self._read_c(limit)
        self.drained = False  # this path does not track it
        out: list[Request] = []
        b = self._b
        slow = False
        resyncs = 0
        max_bulk = self.max_bulk
        while len(out) < limit and b.ready():
            if slow or b.buf[b.pos] != 42 or resyncs > 8:  # inline, odd input, ping-pong
                slow = False
                try:
                    req = self.next_request()
                except ProtocolError:
                    self._h = None
                    if out:
                        break
                    raise
                if req is NEED_MORE:
                    # nothing consumed: hiredis (if still valid) stays in sync
                    break
                self._h = None  # the reference parser consumed what hiredis holds
                out.append(req)  # type: ignore[arg-type]
                continue
            h = self._h
            if h is None:
                h = self._h = hiredis.Reader()
                h.feed(b.buf[b.pos :])
                for chunk in b.chunks:
                    h.feed(chunk)
                resyncs += 1
            buf = b.buf
            pos = b.pos
            size = len(buf)
            gets = h.gets
            incomplete = False
            first = pos
            while len(out) < limit:
                try:
                    args = gets()
                except hiredis.ProtocolError:
                    self._h = None  # its state is lost; the reference parser says why
                    slow = True
                    break
                if args is False:
                    incomplete = True
                    break
                if type(args) is not list or len(args) > self.max_args:
                    slow = True
                    break
                n = len(args)
                span = 3 + (_DIGITS[n] if n < 10000 else len(str(n)))
                for a in args:
                    if type(a) is not bytes:
                        slow = True
                        break
                    alen = len(a)
                    if alen > max_bulk:
                        slow = True
                        break
                    span += alen + 5 + (_DIGITS[alen] if alen < 10000 else len(str(alen)))
                if slow:
                    break
                end = pos + span
                if end > size:  # the request spans chunks: join them
                    b.pos = pos
                    b.need = span
                    b.ready()
                    buf = b.buf
                    pos = b.pos
                    size = len(buf)
                    end = pos + span
                if n:
                    out.append((args, buf[pos:end]))
                pos = end
            b.pos = pos
            b.need = 0
            if pos != first:  # a request completed: limits restart from the next one
                self._check_at = self.max_inline
            if slow:
                # hiredis is past the bad request: the reference parser
                # re-reads it from b.pos (nothing before it was lost)
                self._h = None
                continue
            if incomplete:
                # A partial request: the reference parser looks at what has
                # arrived, so malformed input (a non-bulk element, a broken
                # limit) is answered now, as Redis does, not when more bytes
                # come. For a big request arriving in many reads, only each
                # time the backlog doubles.
                unread = b.unread()
                if unread < self.max_inline or unread > self._check_at:
                    if unread > self._check_at:
                        self._check_at = unread * 2
                    slow = True
                    continue
                break
        return out

    def _read_c(self, limit: int) -> list[Request]:
        """`read` with `router._speedups.parse_requests` framing the requests."""
        out: list[Request] = []
        b = self._b
        parse = self._parse
        assert parse is not None
        drained = True
        while len(out) < limit and b.ready():
            got, pos, need = parse(
                b.buf, b.pos, limit - len(out), self.max_args, self.max_bulk, self.max_inline
            )
            if got:
                if out:
                    out += got
                else:
                    out = got
            b.pos = pos
            if need == 0:  # at the end of the buffer (join what came since) or at limit
                b.need = 0
                if pos < len(b.buf):
                    break
                continue
            if need > 0:  # a partial request with a well-formed start: wait for `need` bytes
                b.need = need
                if not b.chunks:
                    break
                continue
            # not a canonical multibulk request: the reference parser reads it (or says why not)
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
        self.drained = drained and len(out) < limit
        return out

    def buffered(self) -> int:
        """Bytes received and not yet returned as requests."""
        return self._b.unread()

    def next_request(self) -> Request | _NeedMore:
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

    def _multibulk(self, buf: bytes, start: int) -> Request | _NeedMore:
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
            if count_s[:1] == b"-" and count_s[1:].isdigit():
                b.pos = nl + 2  # *-N: Redis treats it as an empty request
                return [], b""
            raise ProtocolError("invalid multibulk length")
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
            p = nl + 2 + size + 2
            if p > end:
                b.need = p - start
                return NEED_MORE
            append(buf[nl + 2 : p - 2])
        b.pos = p
        b.need = 0
        return args, buf[start:p]

    def _inline(self, buf: bytes, start: int) -> Request | _NeedMore:
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


# Reply type bytes, grouped by how their length is found.
_LINE_TYPES = frozenset(b"+-:,(#_")  # one line
_BULK_TYPES = frozenset(b"$=!")  # length line + payload
_AGG_TYPES = frozenset(b"*~>")  # N elements
_MAP_TYPES = frozenset(b"%")  # N key/value pairs
_ATTR_TYPES = frozenset(b"|")  # N pairs, then the reply they annotate


class ReplyScanner:
    """Frames backend replies: ``feed(data)`` then `next_reply` -> raw bytes or NEED_MORE.

    Raises `ProtocolError` if the backend sends something that is not RESP.
    `replies` frames in C when `router._speedups` is built (``speedups=False``
    forces the Python framing; `next_reply` is the reference either way).
    """

    __slots__ = ("_b", "_scan")

    def __init__(self, speedups: bool = True) -> None:
        self._b = _Buffer()
        self._scan = C.scan_replies if speedups and C is not None else None

    def feed(self, data: bytes) -> None:
        self._b.feed(data)

    def buffered(self) -> int:
        return self._b.unread()

    def replies(self) -> list[bytes]:
        """Every complete reply buffered, in order. Simple and bulk replies are
        framed inline here; aggregates and partial replies go through
        `next_reply`."""
        out: list[bytes] = []
        b = self._b
        scan = self._scan
        if scan is not None:
            while b.ready():
                pos, need = scan(b.buf, b.pos, out)
                b.pos = pos
                if need == 0:  # all framed: join what came since, if anything
                    b.need = 0
                    continue
                if need > 0:  # a partial reply: wait for `need` bytes
                    b.need = need
                    if not b.chunks:
                        break
                    continue
                raw = self.next_reply()  # one the C framer leaves to the reference
                if raw is NEED_MORE:
                    break
                out.append(raw)  # type: ignore[arg-type]
            return out
        append = out.append
        while b.ready():
            buf = b.buf
            pos = b.pos
            size = len(buf)
            while pos < size:
                t = buf[pos]
                if t == 36:  # '$'
                    nl = buf.find(b"\r\n", pos)
                    if nl == -1:
                        break
                    line = buf[pos + 1 : nl]
                    if not line.isdigit():
                        if line == b"-1":  # nil
                            append(NIL)
                            pos = nl + 2
                            continue
                        break
                    end = nl + 4 + int(line)
                    if end > size:
                        break
                    append(buf[pos:end])
                    pos = end
                elif t == 43 or t == 58 or t == 45:  # '+' ':' '-'
                    nl = buf.find(b"\r\n", pos)
                    if nl == -1:
                        break
                    append(buf[pos : nl + 2])
                    pos = nl + 2
                elif t == 42:  # '*': flat arrays (MGET, KEYS parts) framed here
                    end = _flat_array_end(buf, pos, size)
                    if end < 0:
                        break
                    append(buf[pos:end])
                    pos = end
                else:
                    break
            b.pos = pos
            if pos >= size:
                continue
            raw = self.next_reply()
            if raw is NEED_MORE:
                break
            append(raw)  # type: ignore[arg-type]
        return out

    def next_reply(self) -> bytes | _NeedMore:
        b = self._b
        if not b.ready():
            return NEED_MORE
        buf = b.buf
        start = p = b.pos
        end = len(buf)
        pending = 1  # elements still to frame, in pre-order
        while pending:
            if p >= end:
                b.need = p - start + 1
                return NEED_MORE
            t = buf[p]
            nl = buf.find(b"\r\n", p)
            if nl == -1:
                b.need = end - start + 1
                return NEED_MORE
            if t in _LINE_TYPES:
                p = nl + 2
                pending -= 1
                continue
            try:
                n = int(buf[p + 1 : nl])
            except ValueError:
                raise ProtocolError(f"bad length line {buf[p:nl][:40]!r} from backend") from None
            p = nl + 2
            if t in _BULK_TYPES:
                if n >= 0:
                    p += n + 2
                    if p > end:
                        b.need = p - start
                        return NEED_MORE
                pending -= 1
            elif t in _AGG_TYPES:
                pending += n - 1 if n > 0 else -1
            elif t in _MAP_TYPES:
                pending += 2 * n - 1 if n > 0 else -1
            elif t in _ATTR_TYPES:
                pending += 2 * n  # the annotated reply still follows
            else:
                raise ProtocolError(f"unknown reply type {chr(t)!r} from backend")
        b.pos = p
        b.need = 0
        return buf[start:p]


def _flat_array_end(buf: bytes, pos: int, size: int) -> int:
    """End of the array at ``pos`` if it is complete and holds only bulk, nil,
    integer or simple-string elements; -1 otherwise (let `next_reply` say)."""
    nl = buf.find(b"\r\n", pos)
    if nl == -1:
        return -1
    count_s = buf[pos + 1 : nl]
    if not count_s.isdigit():
        return nl + 2 if count_s == b"-1" else -1
    p = nl + 2
    for _ in range(int(count_s)):
        if p >= size:
            return -1
        t = buf[p]
        nl = buf.find(b"\r\n", p)
        if nl == -1:
            return -1
        if t == 36:
            line = buf[p + 1 : nl]
            if line.isdigit():
                p = nl + 4 + int(line)
                if p > size:
                    return -1
            elif line == b"-1":
                p = nl + 2
            else:
                return -1
        elif t == 58 or t == 43 or t == 95:  # ':' '+' '_'
            p = nl + 2
        else:
            return -1
    return p


def split_array(raw: bytes) -> list[bytes] | None:
    """The raw elements of an array reply (``*N`` ...), or None if ``raw`` is
    not a complete array. Elements keep their exact bytes (and protocol)."""
    if C is not None:
        items = C.split_array(raw)
        if items is not False:  # False: unsure, the reference decides
            return items  # type: ignore[no-any-return]
    return split_array_py(raw)


def split_array_py(raw: bytes) -> list[bytes] | None:
    """`split_array` in Python (the reference)."""
    if raw[:1] != b"*":
        return None
    nl = raw.find(b"\r\n")
    try:
        count = int(raw[1:nl])
    except ValueError:
        return None
    items: list[bytes] = []
    p = nl + 2
    size = len(raw)
    for _ in range(max(count, 0)):
        if p >= size:
            return None
        nl = raw.find(b"\r\n", p)
        t = raw[p]
        if t == 36 and nl != -1 and raw[p + 1 : nl].isdigit():  # bulk: the common case
            end = nl + 4 + int(raw[p + 1 : nl])
        elif nl != -1 and (t == 58 or t == 95 or (t == 36 and raw[p + 1 : nl] == b"-1")):
            end = nl + 2  # integer, RESP3 null, RESP2 nil
        else:  # anything else: frame it properly
            scanner = ReplyScanner()
            scanner.feed(raw[p:])
            element = scanner.next_reply()
            if element is NEED_MORE:
                return None
            end = p + len(element)  # type: ignore[arg-type]
        items.append(raw[p:end])
        p = end
    return items if p == size else None


# ---------------------------------------------------------------- encoders

OK: Final = b"+OK\r\n"
NIL: Final = b"$-1\r\n"
NULL3: Final = b"_\r\n"  # RESP3 null
PONG: Final = b"+PONG\r\n"


def encode_command(args: Sequence[bytes]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        parts.append(b"$%d\r\n%b\r\n" % (len(a), a))
    return b"".join(parts)


def encode_bulk(value: bytes | None) -> bytes:
    if value is None:
        return NIL
    return b"$%d\r\n%b\r\n" % (len(value), value)


def encode_int(value: int) -> bytes:
    return b":%d\r\n" % value


def encode_simple(text: str) -> bytes:
    return b"+" + text.encode() + b"\r\n"


def encode_array(raw_items: Sequence[bytes]) -> bytes:
    """An array of already-encoded items."""
    return b"*%d\r\n" % len(raw_items) + b"".join(raw_items)


def encode_value(value: object) -> bytes:
    """Encode a decoded RESP2 value (bytes/str/int/None/list/Exception)."""
    if value is None:
        return NIL
    if isinstance(value, bytes):
        return encode_bulk(value)
    if isinstance(value, str):
        return encode_bulk(value.encode())
    if isinstance(value, bool):
        return encode_int(int(value))
    if isinstance(value, int):
        return encode_int(value)
    if isinstance(value, (list, tuple)):
        return encode_array([encode_value(v) for v in value])
    if isinstance(value, Exception):
        from router.errors import error_reply

        return error_reply(str(value))
    raise TypeError(f"cannot encode {type(value).__name__}")
