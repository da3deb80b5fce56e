"""Input buffering shared by the request and reply readers, and the NEED_MORE marker.

A partial item yields `NEED_MORE` (never ``None``: RESP nil is a real
``None``). `Buffer` joins received chunks only when the parser can make
progress. No I/O here.
"""

from __future__ import annotations

from typing import Final


class NeedMore:
    """Marker: the buffer holds no complete item yet."""

    _instance: NeedMore | None = None

    def __new__(cls) -> NeedMore:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEED_MORE"

    def __bool__(self) -> bool:
        raise TypeError("test NEED_MORE with `is`, not truthiness")


NEED_MORE: Final = NeedMore()


class Buffer:
    """Bytes received but not consumed yet.

    Chunks are kept in a list and joined only when the parser can make
    progress (``need`` bytes available), so a large bulk arriving in many
    small reads is joined once, not once per read.
    """

    __slots__ = ("buf", "chunks", "chunks_len", "copied", "need", "pos")

    def __init__(self) -> None:
        self.buf = b""
        self.pos = 0
        self.chunks: list[bytes] = []
        self.chunks_len = 0
        self.need = 0  # total unread length needed before parsing can progress
        self.copied = 0  # bytes copied by joins (a work counter for the tests)

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
            self.copied += len(self.buf)
            self.pos = 0
            self.chunks = []
            self.chunks_len = 0
        return self.pos < len(self.buf)

    def unread(self) -> int:
        return len(self.buf) - self.pos + self.chunks_len
