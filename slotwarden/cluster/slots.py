"""Redis Cluster hash slots: CRC16-XMODEM of the key (or its hash tag) mod 16384.

Pure functions, no I/O. `binascii.crc_hqx(data, 0)` is CRC16-XMODEM in C (the
same routine redis-py uses); the PyPI `crc16` package does not build on
Python >= 3.10 and is not used.

`slotwarden.resp.accel.key_slot` is `key_hash_slot` done in C when the
speedups are built (the router's hot paths call that one).

Hash-tag rule (Redis `keyHashSlot`): if the key contains ``{`` and a ``}``
after it with at least one byte between, only the bytes between the first
``{`` and the first ``}`` after it are hashed; otherwise the whole key is.
"""

from __future__ import annotations

from binascii import crc_hqx
from collections.abc import Iterable

SLOT_COUNT = 16384
_MASK = SLOT_COUNT - 1


def crc16(data: bytes) -> int:
    """CRC16-XMODEM (poly 0x1021, init 0): ``crc16(b"123456789") == 0x31C3``."""
    return crc_hqx(data, 0)


def key_hash_slot(key: bytes) -> int:
    """The Redis Cluster slot of ``key``, honouring ``{hash tags}``."""
    start = key.find(b"{")
    if start != -1:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return crc_hqx(key[start + 1 : end], 0) & _MASK
    return crc_hqx(key, 0) & _MASK


def parse_ranges(text: str) -> list[tuple[int, int]]:
    """Parse ``"0-100,200,300-310"`` into inclusive ``(start, end)`` pairs.

    Raises ``ValueError`` with a readable message on malformed input or slots
    outside 0..16383.
    """
    ranges: list[tuple[int, int]] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            raise ValueError(f"empty slot range in {text!r}")
        lo_s, sep, hi_s = part.partition("-")
        try:
            lo = int(lo_s)
            hi = int(hi_s) if sep else lo
        except ValueError:
            raise ValueError(f"malformed slot range {part!r} (want N or N-M)") from None
        if not (0 <= lo <= hi < SLOT_COUNT):
            raise ValueError(f"slot range {part!r} is outside 0-{SLOT_COUNT - 1} or reversed")
        ranges.append((lo, hi))
    return ranges


def format_ranges(slots: Iterable[int]) -> str:
    """Inverse of `parse_ranges` for a set of slots: ``{0,1,2,5}`` -> ``"0-2,5"``."""
    out: list[str] = []
    ordered = sorted(set(slots))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)
