"""Key finders of the commands whose keys move (numkeys arguments, STORE, STREAMS ...).

Pure, no I/O. Each finder mirrors what redis-server 7.0 does for
``COMMAND GETKEYS`` (its key-specs, or its getkeys procedure where the
key-specs are incomplete) and returns the argument indices of the keys.
Invariant: when the keys cannot be found, a finder raises `KeySpecError`
carrying the error text the command itself would answer. The table
(`router.commands.table`) names a finder by its key in `KEY_FINDERS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from router.errors import RouterError


class KeySpecError(RouterError):
    """The arguments do not let us find the keys (e.g. numkeys > remaining args).

    ``str(exc)`` is the Redis error text to answer, e.g. ``ERR syntax error``.
    """


KeyFinder = Callable[[list[bytes]], list[int]]


# ---------------------------------------------------------------------------
# Key finders for movable keys. Each mirrors what redis-server 7.0 does for
# COMMAND GETKEYS (its key-specs, or its getkeys procedure where the key-specs
# are incomplete), and raises the error the command itself would answer when
# the keys cannot be found.

_SYNTAX = "ERR syntax error"
_NOT_INT = "ERR value is not an integer or out of range"
_TOO_MANY = "ERR Number of keys can't be greater than number of args"
_NEGATIVE = "ERR Number of keys can't be negative"
_NOT_POSITIVE = "ERR numkeys should be greater than 0"
_UNBALANCED = (
    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."
)
_MIGRATE_KEYS = (
    "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string"
)

# Redis's string2ll: no sign but '-', no leading zeros, no spaces, no "-0".
_INTEGER = re.compile(rb"0|-?[1-9][0-9]{0,18}")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _parse_int64(arg: bytes) -> int | None:
    """``arg`` as Redis parses an integer argument, or None if Redis would refuse it."""
    if _INTEGER.fullmatch(arg) is None:
        return None
    value = int(arg)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def _script_keys(args: list[bytes]) -> list[int]:
    """EVAL/EVALSHA/EVAL_RO/EVALSHA_RO script numkeys key [key ...] arg ..."""
    numkeys = _parse_int64(args[2])
    if numkeys is None:
        raise KeySpecError(_NOT_INT)
    return _script_range(numkeys, len(args))


def _function_keys(args: list[bytes]) -> list[int]:
    """FCALL/FCALL_RO function numkeys key [key ...] arg ..."""
    numkeys = _parse_int64(args[2])
    if numkeys is None:
        raise KeySpecError("ERR Bad number of keys provided")
    return _script_range(numkeys, len(args))


def _script_range(numkeys: int, nargs: int) -> list[int]:
    # Same order of checks as evalGenericCommand / fcallCommandGeneric. (The
    # server looks up an EVALSHA script or FCALL function first; with a bad
    # numkeys *and* a missing script we answer the numkeys error.)
    if numkeys > nargs - 3:
        raise KeySpecError(_TOO_MANY)
    if numkeys < 0:
        raise KeySpecError(_NEGATIVE)
    return list(range(3, 3 + numkeys))


def _zset_numkeys(args: list[bytes], index: int) -> int:
    """numkeys at ``index`` as ZUNION/ZINTER/ZDIFF[STORE]/ZINTERCARD check it."""
    numkeys = _parse_int64(args[index])
    if numkeys is None:
        raise KeySpecError(_NOT_INT)
    if numkeys < 1:
        name = args[0].decode("latin-1").lower()
        raise KeySpecError(f"ERR at least 1 input key is needed for '{name}' command")
    if numkeys > len(args) - index - 1:
        raise KeySpecError(_SYNTAX)
    return numkeys


def _zset_keys(args: list[bytes]) -> list[int]:
    """ZUNION/ZINTER/ZDIFF/ZINTERCARD numkeys key [key ...] ..."""
    return list(range(2, 2 + _zset_numkeys(args, 1)))


def _zset_store_keys(args: list[bytes]) -> list[int]:
    """ZUNIONSTORE/ZINTERSTORE/ZDIFFSTORE destination numkeys key [key ...] ..."""
    return [1, *range(3, 3 + _zset_numkeys(args, 2))]


def _positive_numkeys(args: list[bytes], index: int) -> int:
    numkeys = _parse_int64(args[index])
    if numkeys is None or numkeys < 1:  # getRangeLongFromObjectOrReply(1, LONG_MAX)
        raise KeySpecError(_NOT_POSITIVE)
    return numkeys


def _sintercard_keys(args: list[bytes]) -> list[int]:
    """SINTERCARD numkeys key [key ...] [LIMIT limit]"""
    numkeys = _positive_numkeys(args, 1)
    if numkeys > len(args) - 2:
        raise KeySpecError(_TOO_MANY)
    return list(range(2, 2 + numkeys))


def _mpop_range(args: list[bytes], index: int) -> list[int]:
    numkeys = _positive_numkeys(args, index)
    if numkeys >= len(args) - index - 1:  # the LEFT|RIGHT / MIN|MAX must follow
        raise KeySpecError(_SYNTAX)
    return list(range(index + 1, index + 1 + numkeys))


def _mpop_keys(args: list[bytes]) -> list[int]:
    """LMPOP/ZMPOP numkeys key [key ...] LEFT|RIGHT|MIN|MAX [COUNT count]"""
    return _mpop_range(args, 1)


def _blocking_mpop_keys(args: list[bytes]) -> list[int]:
    """BLMPOP/BZMPOP timeout numkeys key [key ...] ... (the timeout is the backend's to check)"""
    return _mpop_range(args, 2)


def _keyword(args: list[bytes], keyword: bytes, start: int) -> int:
    """Index of the first ``keyword`` (any case) in ``args[start:-1]``, or 0.

    Redis's key-spec keyword search: the last argument is never a keyword,
    since a key must follow it.
    """
    for i in range(start, len(args) - 1):
        if args[i].upper() == keyword:
            return i
    return 0


def _streams_keys(args: list[bytes], start: int) -> list[int]:
    streams = _keyword(args, b"STREAMS", start)
    if not streams:
        raise KeySpecError(_SYNTAX)
    rest = len(args) - streams - 1
    if rest % 2:
        raise KeySpecError(_UNBALANCED)
    return list(range(streams + 1, streams + 1 + rest // 2))


def _xread_keys(args: list[bytes]) -> list[int]:
    """XREAD [COUNT n] [BLOCK ms] STREAMS key [key ...] id [id ...]"""
    return _streams_keys(args, 1)


def _xreadgroup_keys(args: list[bytes]) -> list[int]:
    """XREADGROUP GROUP group consumer [COUNT n] [BLOCK ms] [NOACK] STREAMS key ... id ..."""
    return _streams_keys(args, 4)


_SORT_SKIP = {b"LIMIT": 2, b"GET": 1, b"BY": 1}


def _sort_keys(args: list[bytes]) -> list[int]:
    """SORT key [BY p] [LIMIT o c] [GET p ...] [ASC|DESC] [ALPHA] [STORE dest]

    As sortGetKeys: the last STORE wins; BY/GET patterns are not keys.
    """
    keys = [1]
    store = 0
    i, n = 2, len(args)
    while i < n:
        word = args[i].upper()
        if word == b"STORE" and i + 1 < n:
            store = i + 1
        else:
            i += _SORT_SKIP.get(word, 0)
        i += 1
    if store:
        keys.append(store)
    return keys


def _sort_ro_keys(args: list[bytes]) -> list[int]:
    """SORT_RO key [BY p] [LIMIT o c] [GET p ...] [ASC|DESC] [ALPHA]: the one key. A finder
    (not a fixed key) so that SORT_RO is planned, its BY/GET patterns checked
    (router.decide.sort_patterns), instead of taking the single-key fast path."""
    return [1]


def _georadius_keys(args: list[bytes], start: int) -> list[int]:
    # Key-specs: the key, then the first STORE and the first STOREDIST (both
    # are returned when both are given, as GETKEYS does; the server uses one).
    keys = [1]
    for keyword in (b"STORE", b"STOREDIST"):
        found = _keyword(args, keyword, start)
        if found:
            keys.append(found + 1)
    return keys


def _georadius_point_keys(args: list[bytes]) -> list[int]:
    """GEORADIUS key lon lat radius unit [...] [STORE key] [STOREDIST key]"""
    return _georadius_keys(args, 6)


def _georadius_member_keys(args: list[bytes]) -> list[int]:
    """GEORADIUSBYMEMBER key member radius unit [...] [STORE key] [STOREDIST key]"""
    return _georadius_keys(args, 5)


_MIGRATE_SKIP = {b"COPY": 0, b"REPLACE": 0, b"AUTH": 1, b"AUTH2": 2}


def _migrate_keys(args: list[bytes]) -> list[int]:
    """MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH ..] [KEYS key ...]

    As the server: a backwards search for KEYS decides whether the single key
    is the answer; if not, migrateGetKeys scans forward past the options.
    """
    n = len(args)
    if not any(args[i].upper() == b"KEYS" for i in range(n - 2, 1, -1)):
        return [3]
    i = 6
    while i < n:
        word = args[i].upper()
        if word == b"KEYS":
            if args[3]:
                raise KeySpecError(_MIGRATE_KEYS)
            return list(range(i + 1, n))
        i += _MIGRATE_SKIP.get(word, 0) + 1
    return [3]


KEY_FINDERS: dict[str, KeyFinder] = {
    "script": _script_keys,
    "function": _function_keys,
    "zset": _zset_keys,
    "zset-store": _zset_store_keys,
    "sintercard": _sintercard_keys,
    "mpop": _mpop_keys,
    "blocking-mpop": _blocking_mpop_keys,
    "xread": _xread_keys,
    "xreadgroup": _xreadgroup_keys,
    "sort": _sort_keys,
    "sort-ro": _sort_ro_keys,
    "georadius": _georadius_point_keys,
    "georadiusbymember": _georadius_member_keys,
    "migrate": _migrate_keys,
}
