"""The routing table: every Redis 7.0 command, its key positions and routing shape.

Pure data and pure functions, no I/O. One table (`TABLE`) declares, for each
command: arity (Redis's convention: N exact, -N at least N), whether it
writes, where its keys are, and its routing `Shape`. Commands not in the
table are unknown and rejected; they are never guessed. The rows themselves
live in `router.command_table`; this module builds and checks the specs and
owns the hot-path functions (`lookup`, `arity_ok`, `key_positions`) and the
key finders of movable-key commands.

Container commands (CLIENT, CONFIG, OBJECT, ...) carry a ``subcommands``
table keyed by the lower-case subcommand name; `lookup` resolves them.

Invariants: key positions match what ``COMMAND GETKEYS`` finds on
redis-server 7.0.15 for valid requests (except the channels of SSUBSCRIBE,
SUNSUBSCRIBE and SPUBLISH, which Redis flags not_key but which pick the
shard like keys do); when the keys cannot be found
(bad numkeys, unbalanced STREAMS ...) `KeySpecError` carries the error text
the server itself would answer. `TABLE` is read-only after import.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from router import command_table
from router.errors import RouterError


class Shape(enum.Enum):
    """How the router answers a command (one planner branch per shape)."""

    SINGLE = "single"  # keyed: every key on one shard -> forward original bytes
    FANOUT_SUM = "fanout-sum"  # DEL/UNLINK/EXISTS/TOUCH: split by shard, sum integers
    FANOUT_ORDERED = "fanout-ordered"  # MGET: split by shard, replies back in key order
    FANOUT_OK = "fanout-ok"  # MSET: split by shard, +OK only if every part is +OK
    ALL_MASTERS = "all-masters"  # keyless, sent to every master, merged (FLUSHALL, DBSIZE)
    ANY = "any"  # keyless, read-only, forwarded to one master (COMMAND, CONFIG GET)
    LOCAL = "local"  # answered by the router itself (PING, ECHO, SELECT, CLIENT ...)
    PINNED = "pinned"  # needs a client-pinned backend connection: not supported yet
    REJECTED = "rejected"  # never passes through the router (SHUTDOWN, DEBUG, ...)


class KeySpecError(RouterError):
    """The arguments do not let us find the keys (e.g. numkeys > remaining args).

    ``str(exc)`` is the Redis error text to answer, e.g. ``ERR syntax error``.
    """


KeyFinder = Callable[[list[bytes]], list[int]]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str  # lower case; subcommands as "object|encoding"
    arity: int
    shape: Shape
    write: bool = False
    # Redis's legacy key spec: first key index, last (-1 = last arg, -2 = one
    # before ...), step. first == 0 means no fixed keys.
    first: int = 0
    last: int = 0
    step: int = 0
    keys: KeyFinder | None = None  # movable keys: returns argument indices
    subcommands: dict[str, CommandSpec] | None = field(default=None)
    # Precomputed key indices when they do not depend on the arguments (no
    # finder, last >= 0): () for keyless commands, (1,) for GET ... The hot
    # path of `key_positions` is then one copy.
    fixed_keys: tuple[int, ...] | None = field(default=None, init=False, compare=False)

    def __post_init__(self) -> None:
        if self.keys is None and self.last >= 0:
            fixed = tuple(range(self.first, self.last + 1, self.step)) if self.first else ()
            object.__setattr__(self, "fixed_keys", fixed)


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
    "georadius": _georadius_point_keys,
    "georadiusbymember": _georadius_member_keys,
    "migrate": _migrate_keys,
}


# ---------------------------------------------------------------------------
# Building TABLE from command_table's rows.

_KEYED = frozenset({Shape.SINGLE, Shape.FANOUT_SUM, Shape.FANOUT_ORDERED, Shape.FANOUT_OK})
_KEYLESS = frozenset({Shape.ALL_MASTERS, Shape.ANY, Shape.LOCAL})


def _spec(row: command_table.Row) -> CommandSpec:
    name, arity, shape_name, write, first, last, step, finder = row
    spec = CommandSpec(
        name=name,
        arity=arity,
        shape=Shape(shape_name),
        write=write,
        first=first,
        last=last,
        step=step,
        keys=KEY_FINDERS[finder] if finder is not None else None,
    )
    keyed = spec.keys is not None or spec.first != 0
    if (spec.shape in _KEYED and not keyed) or (spec.shape in _KEYLESS and keyed):
        raise AssertionError(f"{name}: shape {spec.shape.name} contradicts its key spec")
    if spec.fixed_keys and max(spec.fixed_keys) >= abs(arity):
        raise AssertionError(f"{name}: a fixed key lies beyond what arity {arity} ensures")
    if spec.shape in (Shape.FANOUT_SUM, Shape.FANOUT_ORDERED, Shape.FANOUT_OK) and (
        spec.keys is not None or spec.last != -1
    ):
        raise AssertionError(f"{name}: fan-out needs a plain key range to the last argument")
    return spec


def _build() -> dict[bytes, CommandSpec]:
    containers = {row[0]: _spec(row) for row in command_table.CONTAINERS}
    subs: dict[str, dict[str, CommandSpec]] = {name: {} for name in containers}
    table: dict[bytes, CommandSpec] = {}
    for row in command_table.ROWS:
        spec = _spec(row)
        parent, _, sub = spec.name.partition("|")
        if sub:
            subs[parent][sub] = spec
        elif spec.name in containers or spec.name.upper().encode() in table:
            raise AssertionError(f"{spec.name}: declared twice")
        else:
            table[spec.name.upper().encode()] = spec
    for name, spec in containers.items():
        if not subs[name]:
            raise AssertionError(f"{name}: container without subcommands")
        table[name.upper().encode()] = CommandSpec(
            name=spec.name,
            arity=spec.arity,
            shape=spec.shape,
            write=spec.write,
            subcommands=subs[name],
        )
    return table


TABLE: dict[bytes, CommandSpec] = _build()

# Names as clients usually send them (upper or lower case) -> spec, so the
# common lookup needs no `bytes.upper()`; any other spelling falls back.
_BY_NAME: dict[bytes, CommandSpec] = {
    **{name.lower(): spec for name, spec in TABLE.items()},
    **TABLE,
}


def _fast_keyed() -> dict[bytes, tuple[int, int, str]]:
    out: dict[bytes, tuple[int, int, str]] = {}
    for name, spec in _BY_NAME.items():
        fixed = spec.fixed_keys
        if spec.shape is Shape.SINGLE and spec.subcommands is None and fixed and len(fixed) == 1:
            out[name] = (fixed[0], spec.arity, spec.name)
    return out


# The router's hot path: command name (upper or lower case, as clients send
# them) -> (key index, arity, name) for single-shard commands with one key at a
# fixed position (GET, SET, HSET, INCR, ...). Anything else goes through
# `lookup`.
FAST_KEYED: dict[bytes, tuple[int, int, str]] = _fast_keyed()


def fanout_step(shape: Shape) -> int:
    """How many arguments each key of a fan-out takes (MSET: key and value)."""
    return 2 if shape is Shape.FANOUT_OK else 1


def _fast_fanout() -> dict[bytes, tuple[int, int, str, Shape]]:
    out: dict[bytes, tuple[int, int, str, Shape]] = {}
    for name, spec in _BY_NAME.items():
        if spec.shape in _FANOUT_SHAPES and spec.subcommands is None:
            out[name] = (fanout_step(spec.shape), spec.arity, spec.name, spec.shape)
    return out


_FANOUT_SHAPES = frozenset({Shape.FANOUT_SUM, Shape.FANOUT_ORDERED, Shape.FANOUT_OK})

# The hot path for multi-key commands split by shard (MGET, MSET, DEL, EXISTS,
# TOUCH, UNLINK): command name -> (key step, arity, name, shape).
FAST_FANOUT: dict[bytes, tuple[int, int, str, Shape]] = _fast_fanout()


def lookup(args: list[bytes]) -> CommandSpec | None:
    """The spec for ``args`` (container commands resolved), or None if unknown."""
    spec = _BY_NAME.get(args[0])
    if spec is None:
        spec = TABLE.get(args[0].upper())
        if spec is None:
            return None
    if spec.subcommands is not None and len(args) > 1:
        return spec.subcommands.get(args[1].decode("latin-1").lower(), None)
    return spec


def arity_ok(spec: CommandSpec, nargs: int) -> bool:
    a = spec.arity
    return nargs == a if a > 0 else nargs >= -a


def key_positions(spec: CommandSpec, args: list[bytes]) -> list[int]:
    """Indices of the key arguments of ``args``; raises `KeySpecError`.

    ``args`` must have passed `arity_ok`. Returns a new list every time.
    """
    fixed = spec.fixed_keys
    if fixed is not None:
        return [*fixed]
    if spec.keys is not None:
        return spec.keys(args)
    first, step = spec.first, spec.step
    end = len(args) + spec.last + 1  # one past the last key
    if (end - first) % step:  # MSET/MSETNX with a key but no value
        raise KeySpecError(f"ERR wrong number of arguments for '{spec.name}' command")
    return list(range(first, end, step))


# Commands that always block server-side (the "blocking" flag of COMMAND,
# plus WAIT, which waits for replicas). XREAD/XREADGROUP block with BLOCK.
_ALWAYS_BLOCKING = frozenset(
    {
        b"BLPOP",
        b"BRPOP",
        b"BRPOPLPUSH",
        b"BLMOVE",
        b"BLMPOP",
        b"BZPOPMIN",
        b"BZPOPMAX",
        b"BZMPOP",
        b"WAIT",
    }
)
_XREAD_SKIP = {b"COUNT": 1, b"GROUP": 2, b"NOACK": 0}


def is_blocking(args: list[bytes]) -> bool:
    """True if the request can block on the server: BLPOP & co., WAIT, and
    XREAD/XREADGROUP with a BLOCK option (parsed as xreadCommand does: options
    up to STREAMS)."""
    name = args[0].upper()
    if name in _ALWAYS_BLOCKING:
        return True
    if name != b"XREAD" and name != b"XREADGROUP":
        return False
    i, n = 1, len(args)
    while i < n - 1:  # every option here takes a value or is followed by more
        word = args[i].upper()
        if word == b"BLOCK":
            return True
        skip = _XREAD_SKIP.get(word)
        if skip is None:  # STREAMS, or a syntax error the backend will report
            return False
        i += skip + 1
    return False


def blocking_timeout(args: list[bytes]) -> float | None:
    """How long (seconds) a blocking request may block on the server: its own timeout
    argument; None for 0 (forever). A malformed timeout gives 0.0: the server will
    refuse the request at once."""
    name = args[0].upper()
    try:
        if name == b"BLMPOP" or name == b"BZMPOP":
            value = float(args[1])
        elif name == b"WAIT":
            value = float(args[2]) / 1000
        elif name == b"XREAD" or name == b"XREADGROUP":
            at = next(i for i in range(1, len(args) - 1) if args[i].upper() == b"BLOCK")
            value = float(args[at + 1]) / 1000
        else:
            value = float(args[-1])
    except (ValueError, StopIteration):
        return 0.0
    if not math.isfinite(value) or value < 0:
        return 0.0
    return None if value == 0 else value
