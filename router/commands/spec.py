"""The routing table: every Redis 7.0 command, its key positions and routing shape.

Pure data and pure functions, no I/O. One table (`TABLE`) declares, for each
command: arity (Redis's convention: N exact, -N at least N), whether it
writes, where its keys are, and its routing `Shape`. Commands not in the
table are unknown and rejected; they are never guessed. The rows themselves
live in `router.commands.table` and the key finders of movable-key commands
in `router.commands.key_finders`; this module builds and checks the specs and
owns the hot-path functions (`lookup`, `arity_ok`, `key_positions`).

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
from dataclasses import dataclass, field

from router.commands import table
from router.commands.key_finders import KEY_FINDERS, KeyFinder, KeySpecError


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
# Building TABLE from the rows of router.commands.table.

_KEYED = frozenset({Shape.SINGLE, Shape.FANOUT_SUM, Shape.FANOUT_ORDERED, Shape.FANOUT_OK})
_KEYLESS = frozenset({Shape.ALL_MASTERS, Shape.ANY, Shape.LOCAL})


def _spec(row: table.Row) -> CommandSpec:
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
    containers = {row[0]: _spec(row) for row in table.CONTAINERS}
    subs: dict[str, dict[str, CommandSpec]] = {name: {} for name in containers}
    specs: dict[bytes, CommandSpec] = {}
    for row in table.ROWS:
        spec = _spec(row)
        parent, _, sub = spec.name.partition("|")
        if sub:
            subs[parent][sub] = spec
        elif spec.name in containers or spec.name.upper().encode() in specs:
            raise AssertionError(f"{spec.name}: declared twice")
        else:
            specs[spec.name.upper().encode()] = spec
    for name, spec in containers.items():
        if not subs[name]:
            raise AssertionError(f"{name}: container without subcommands")
        specs[name.upper().encode()] = CommandSpec(
            name=spec.name,
            arity=spec.arity,
            shape=spec.shape,
            write=spec.write,
            subcommands=subs[name],
        )
    return specs


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
