"""RESP encoders, for the few places that re-encode (fan-out pieces, merged
replies, router-local answers, the first request on a backend connection).

No I/O here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

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


def error_reply(message: str) -> bytes:
    """Encode ``message`` (``"ERR ..."``, ``"CROSSSLOT ..."``) as a RESP error line."""
    clean = message.replace("\r", " ").replace("\n", " ")
    return b"-" + clean.encode("utf-8", "replace") + b"\r\n"
