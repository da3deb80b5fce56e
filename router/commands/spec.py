"""The routing table: every Redis 7.0 command, its key positions, routing shape, merger, blocking.

Pure data and pure functions, no I/O. One table (`TABLE`) declares, for each
command: arity (Redis's convention: N exact, -N at least N), whether it
writes, where its keys are, its routing `Shape`, the merger of its replies
when several shards answer, and whether (and how long) it can block.
Commands not in the table are unknown and rejected; they are never guessed.
The rows themselves live in `router.commands.table` and the key finders of
movable-key commands in `router.commands.key_finders`; this module builds
and checks the specs and owns the functions the router calls per request:

    FAST[name] ─► CommandSpec, arity_ok ─► fast_key / split_step (the client's fast paths)
        │ miss
    resolve(args) ─► CommandSpec (known, arity accepted) ─► the client's slow path
         └─► None ─► refusal(args, lookup(args)): unknown command/subcommand, wrong arity

Container commands (CLIENT, CONFIG, OBJECT, ...) carry a ``subcommands``
table keyed by the lower-case subcommand name; `lookup` resolves them.

Invariants: the arity rule is defined once (``min_args``/``max_args``, from
the arity) and applied by `arity_ok` (which `resolve` calls); the client loop applies
the same test inline to a `FAST` hit (a function call per request there
costs about 12% of that loop); key positions match what
``COMMAND GETKEYS`` finds on redis-server 7.0.15 for valid requests (except
the channels of SSUBSCRIBE, SUNSUBSCRIBE and SPUBLISH, which Redis flags
not_key but which pick the shard like keys do); when the keys cannot be
found (bad numkeys, unbalanced STREAMS ...) `KeySpecError` carries the error
text the server itself would answer. `TABLE` is read-only after import.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

from router.commands import table
from router.commands.key_finders import KEY_FINDERS, KeyFinder, KeySpecError
from router.commands.table import Shape
from router.errors import unknown_command, unknown_subcommand, wrong_arity

_FANOUT = frozenset({Shape.FANOUT_SUM, Shape.FANOUT_ORDERED, Shape.FANOUT_OK})


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
    merger: str | None = None  # the merger of the shards' replies (router.decide.merge)
    blocks: str | None = None  # where the timeout of a blocking command is (table.LAST ...)
    subcommands: dict[str, CommandSpec] | None = field(default=None)
    # Derived, for the per-request functions:
    # the argument counts the arity accepts: min_args <= len(args) <= max_args
    min_args: int = field(default=0, init=False, compare=False)
    max_args: int = field(default=0, init=False, compare=False)
    # key indices when they do not depend on the arguments (no finder, last >= 0):
    # () for keyless commands, (1,) for GET ... (`key_positions` is then one copy)
    fixed_keys: tuple[int, ...] | None = field(default=None, init=False, compare=False)
    # the client's fast paths: the one key's index of a SINGLE command with one
    # fixed key (GET, SET, HSET, INCR ...), else 0; the key step of a fan-out
    # split by shard (MGET, DEL: 1; MSET: 2), else 0. Top-level commands only.
    fast_key: int = field(default=0, init=False, compare=False)
    split_step: int = field(default=0, init=False, compare=False)

    def __post_init__(self) -> None:
        arity = self.arity  # Redis's convention: N exactly N arguments, -N at least N
        object.__setattr__(self, "min_args", abs(arity))
        object.__setattr__(self, "max_args", arity if arity > 0 else sys.maxsize)
        if self.keys is None and self.last >= 0:
            fixed = tuple(range(self.first, self.last + 1, self.step)) if self.first else ()
            object.__setattr__(self, "fixed_keys", fixed)
        if "|" in self.name or self.subcommands is not None:
            return
        if self.shape is Shape.SINGLE and self.fixed_keys and len(self.fixed_keys) == 1:
            object.__setattr__(self, "fast_key", self.fixed_keys[0])
        if self.shape in _FANOUT:
            object.__setattr__(self, "split_step", fanout_step(self.shape))


def fanout_step(shape: Shape) -> int:
    """How many arguments each key of a fan-out takes (MSET: key and value)."""
    return 2 if shape is Shape.FANOUT_OK else 1


# ---------------------------------------------------------------------------
# Building TABLE from the rows of router.commands.table.

_KEYED = frozenset({Shape.SINGLE, *_FANOUT})
_KEYLESS = frozenset({Shape.ALL_MASTERS, Shape.ANY, Shape.LOCAL})
_MERGED = frozenset({*_FANOUT, Shape.ALL_MASTERS})
_BLOCKS = frozenset({table.LAST, table.FIRST, table.WAIT, table.BLOCK})


def _spec(row: table.Row) -> CommandSpec:
    name, arity, shape, write, first, last, step, finder, merger, blocks = row
    spec = CommandSpec(
        name=name,
        arity=arity,
        shape=shape,
        write=write,
        first=first,
        last=last,
        step=step,
        keys=KEY_FINDERS[finder] if finder is not None else None,
        merger=merger,
        blocks=blocks,
    )
    keyed = spec.keys is not None or spec.first != 0
    if (spec.shape in _KEYED and not keyed) or (spec.shape in _KEYLESS and keyed):
        raise AssertionError(f"{name}: shape {spec.shape.name} contradicts its key spec")
    if spec.fixed_keys and max(spec.fixed_keys) >= abs(arity):
        raise AssertionError(f"{name}: a fixed key lies beyond what arity {arity} ensures")
    if spec.shape in _FANOUT and (spec.keys is not None or spec.last != -1):
        raise AssertionError(f"{name}: fan-out needs a plain key range to the last argument")
    if spec.shape in _MERGED and merger is None:
        raise AssertionError(f"{name}: shape {spec.shape.name} needs a merger")
    if blocks is not None and blocks not in _BLOCKS:
        raise AssertionError(f"{name}: unknown blocking rule {blocks!r}")
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


# The client loop's first lookup: the names clients send (upper or lower case) of
# the commands with a fast path (``fast_key`` or ``split_step``) -> their spec.
FAST: dict[bytes, CommandSpec] = {
    name: spec for name, spec in _BY_NAME.items() if spec.fast_key or spec.split_step
}


# ---------------------------------------------------------------------------
# Per request.


def resolve(args: list[bytes]) -> CommandSpec | None:
    """The spec of a request the router may serve: a known command (container
    commands resolved) with a number of arguments its arity accepts; None
    otherwise (`refusal` gives the reply). The hot path: a name as clients send
    it is one dict lookup and one range test."""
    spec = _BY_NAME.get(args[0])
    if spec is None or spec.subcommands is not None:
        spec = lookup(args)  # another spelling, or a container command
        if spec is None:
            return None
    return spec if arity_ok(spec, len(args)) else None


def lookup(args: list[bytes]) -> CommandSpec | None:
    """The spec for ``args`` (container commands resolved), or None if unknown;
    the arity is not checked (`resolve` does)."""
    spec = _BY_NAME.get(args[0])
    if spec is None:
        spec = TABLE.get(args[0].upper())
        if spec is None:
            return None
    if spec.subcommands is not None and len(args) > 1:
        return spec.subcommands.get(args[1].decode("latin-1").lower(), None)
    return spec


def refusal(args: list[bytes], spec: CommandSpec | None) -> bytes:
    """Redis's reply to a request `resolve` refused (``spec``: ``lookup(args)``): an
    unknown command or subcommand, or a wrong number of arguments."""
    if spec is not None:
        return wrong_arity(spec.name)
    container = TABLE.get(args[0].upper())
    if container is not None and container.subcommands is not None:
        return unknown_subcommand(args[1] if len(args) > 1 else b"", args[0])
    return unknown_command(args[0], args[1:])


def arity_ok(spec: CommandSpec, nargs: int) -> bool:
    """Whether ``spec`` accepts ``nargs`` arguments (the command name included)."""
    return spec.min_args <= nargs <= spec.max_args


def key_positions(spec: CommandSpec, args: list[bytes]) -> list[int]:
    """Indices of the key arguments of ``args``; raises `KeySpecError`.

    ``args`` must have passed `resolve`. Returns a new list every time.
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


# XREAD/XREADGROUP options before STREAMS, and how many values each takes.
_XREAD_SKIP = {b"COUNT": 1, b"GROUP": 2, b"NOACK": 0}


def is_blocking(args: list[bytes], spec: CommandSpec | None = None) -> bool:
    """True if the request can block on the server: a command whose row says it
    blocks (BLPOP & co., WAIT), or XREAD/XREADGROUP with a BLOCK option (parsed as
    xreadCommand does: options up to STREAMS). ``spec``: ``lookup(args)``, if known."""
    if spec is None:
        spec = lookup(args)
        if spec is None:
            return False
    if spec.blocks is None:
        return False
    if spec.blocks != table.BLOCK:
        return True
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


def blocking_timeout(args: list[bytes], spec: CommandSpec | None = None) -> float | None:
    """How long (seconds) a blocking request may block on the server: its own timeout
    argument, where its row says it is; None for 0 (forever). A malformed timeout
    gives 0.0: the server will refuse the request at once."""
    if spec is None:
        spec = lookup(args)
    blocks = spec.blocks if spec is not None else None
    try:
        if blocks == table.FIRST:
            value = float(args[1])
        elif blocks == table.WAIT:
            value = float(args[2]) / 1000
        elif blocks == table.BLOCK:
            at = next(i for i in range(1, len(args) - 1) if args[i].upper() == b"BLOCK")
            value = float(args[at + 1]) / 1000
        else:
            value = float(args[-1])
    except (ValueError, StopIteration):
        return 0.0
    if not math.isfinite(value) or value < 0:
        return 0.0
    return None if value == 0 else value
