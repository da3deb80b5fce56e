"""SORT and SORT_RO BY/GET patterns: accepted only when the keys they form are on its shard.

Pure, no I/O. A BY or GET pattern names other keys (``SORT ids BY w_* GET
user:*->name``): the shard the sorted key lives on reads them, and a key on
another shard would be read as missing, a silent nil. So, as Redis Cluster
7.0 does (sort.c, `patternHashSlot`), a pattern is accepted only when the
slot of the keys it forms is known: a hash tag that closes before any glob
character (``{u42}w_*``), and the router also accepts it when that slot is
on the sorted key's shard (its rule for every multi-key command); otherwise
Redis Cluster's own error. Patterns that form no key are always accepted:
``GET #`` (the element itself) and a pattern without ``*`` (BY: no sorting;
GET: nil for each element, as on one server).

The options are scanned left to right as sortCommand does, so the first
refused option is the one reported; an unknown word stops the scan (the
server answers its syntax error).
"""

from __future__ import annotations

from slotwarden.resp.accel import key_slot
from slotwarden.resp.encode import error_reply

SORTS = frozenset({"sort", "sort_ro"})

_DENIED = (
    "ERR {} option of SORT denied in Cluster mode when keys formed by the pattern "
    "may be in different slots."
)
BY_DENIED = error_reply(_DENIED.format("BY"))
GET_DENIED = error_reply(_DENIED.format("GET"))

_FLAGS = frozenset({b"ASC", b"DESC", b"ALPHA"})
_GLOB = frozenset(b"*?[\\")


def pattern_slot(pattern: bytes) -> int | None:
    """The one slot every key ``pattern`` forms hashes to, or None when they may be in
    any slot (Redis's patternHashSlot: a glob or escape before a closed non-empty
    hash tag, or an empty tag ``{}``)."""
    start = -1
    for i, c in enumerate(pattern):
        if c in _GLOB:
            return None
        if start < 0 and c == 0x7B:  # {
            start = i
        elif start >= 0 and c == 0x7D:  # }
            if i == start + 1:
                return None  # "{}": the whole key is hashed
            return key_slot(pattern[start : i + 1])
    return key_slot(pattern)


def _forms_keys(pattern: bytes, get: bool) -> bool:
    """Whether the server looks up keys for ``pattern`` (lookupKeyByPattern)."""
    if get and pattern == b"#":
        return False
    return b"*" in pattern


def _key_patterns(args: list[bytes]) -> list[tuple[bytes, int | None]]:
    """Each BY/GET pattern of ``SORT key ...`` that makes the server look keys up, with
    its word (BY/GET) and the slot of its keys (None: they may be anywhere), in order;
    the walk stops at a syntax error (the server's to report)."""
    found: list[tuple[bytes, int | None]] = []
    i, n = 2, len(args)
    while i < n:
        word = args[i].upper()
        if word in _FLAGS:
            i += 1
        elif word == b"LIMIT" and i + 2 < n:
            i += 3
        elif word == b"STORE" and i + 1 < n:
            i += 2
        elif (word == b"BY" or word == b"GET") and i + 1 < n:
            pattern = args[i + 1]
            if _forms_keys(pattern, word == b"GET"):
                found.append((word, pattern_slot(pattern)))
            i += 2
        else:
            break
    return found


def pattern_slots(args: list[bytes]) -> list[int]:
    """The slots of the keys the BY/GET patterns of ``SORT key ...`` form, where known
    (a pattern whose keys may be anywhere is `refusal`'s to refuse)."""
    return [slot for _, slot in _key_patterns(args) if slot is not None]


def refusal(args: list[bytes], shard: int, owner: bytes) -> bytes | None:
    """Redis Cluster's error for the first BY/GET pattern of ``SORT key ...`` whose keys
    may be off ``shard`` (the sorted key's, under the slot map ``owner``), else None."""
    for word, slot in _key_patterns(args):
        if slot is None or owner[slot] != shard:
            return BY_DENIED if word == b"BY" else GET_DENIED
    return None
