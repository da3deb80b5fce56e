"""The routing table: every Redis 7.0 command, its key positions and routing shape.

Pure data and pure functions, no I/O. One table (`TABLE`) declares, for each
command: arity (Redis's convention: N exact, -N at least N), whether it
writes, where its keys are, and its routing `Shape`. Commands not in the
table are unknown and rejected; they are never guessed.

Container commands (CLIENT, CONFIG, OBJECT, ...) carry a ``subcommands``
table keyed by the lower-case subcommand name; `lookup` resolves them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

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


TABLE: dict[bytes, CommandSpec] = {}


def lookup(args: list[bytes]) -> CommandSpec | None:
    """The spec for ``args`` (container commands resolved), or None if unknown."""
    spec = TABLE.get(args[0].upper())
    if spec is not None and spec.subcommands is not None and len(args) > 1:
        return spec.subcommands.get(args[1].decode("latin-1").lower(), None)
    return spec


def arity_ok(spec: CommandSpec, nargs: int) -> bool:
    a = spec.arity
    return nargs == a if a > 0 else nargs >= -a


def key_positions(spec: CommandSpec, args: list[bytes]) -> list[int]:
    """Indices of the key arguments of ``args``; raises `KeySpecError`."""
    if spec.keys is not None:
        return spec.keys(args)
    if spec.first == 0:
        return []
    last = spec.last if spec.last >= 0 else len(args) + spec.last
    return list(range(spec.first, last + 1, spec.step))
