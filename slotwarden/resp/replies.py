"""Backend replies, sans-IO: `ReplyScanner` frames what a server answers.

It finds where each complete reply ends (RESP2 and RESP3 types, nested to any
depth) and returns its raw bytes without building Python objects, so
replies are forwarded as bytes. `split_array` cuts an array reply into its
raw elements (for merges).

Invariant: a scanner never returns a reply before all of its bytes have
arrived, and never consumes bytes past the end of the reply it returns.
"""

from __future__ import annotations

from slotwarden.resp import accel
from slotwarden.resp.accel import UNSURE
from slotwarden.resp.buffer import NEED_MORE, Buffer, NeedMore
from slotwarden.resp.encode import NIL
from slotwarden.resp.errors import ProtocolError

# Reply type bytes, grouped by how their length is found.
_LINE_TYPES = frozenset(b"+-:,(#_")  # one line
_BULK_TYPES = frozenset(b"$=!")  # length line + payload
_AGG_TYPES = frozenset(b"*~>")  # N elements
_MAP_TYPES = frozenset(b"%")  # N key/value pairs
_ATTR_TYPES = frozenset(b"|")  # N pairs, then the reply they annotate


class ReplyScanner:
    """Frames backend replies: ``feed(data)`` then `next_reply` -> raw bytes or NEED_MORE.

    Raises `ProtocolError` if the backend sends something that is not RESP.
    `replies` frames in C when the speedups are built (``speedups=False``
    forces the Python framing; `next_reply` is the reference either way).
    """

    __slots__ = ("_b", "_scan")

    def __init__(self, speedups: bool = True) -> None:
        self._b = Buffer()
        self._scan = accel.scan_replies if speedups else None

    def feed(self, data: bytes) -> None:
        self._b.feed(data)

    def buffered(self) -> int:
        return self._b.unread()

    def empty(self) -> bool:
        """Nothing buffered (no partial reply waits for more bytes)."""
        b = self._b
        return not b.chunks and b.pos >= len(b.buf)

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
                if need is not UNSURE:
                    if need == 0:  # all framed: join what came since, if anything
                        b.need = 0
                        continue
                    b.need = need  # a partial reply: wait for `need` bytes
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

    def next_reply(self) -> bytes | NeedMore:
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
    fast = accel.split_array
    if fast is not None:
        items = fast(raw)
        if items is not UNSURE:  # UNSURE: the reference decides
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
