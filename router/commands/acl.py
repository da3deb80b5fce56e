"""The router's backend ACL rules: what the shards let the router's own user run, from `TABLE`.

Pure, no I/O. A script (EVAL, FCALL) runs on a shard with the rights of the
connection that sent it, the router's backend user; without an ACL every
command the router refuses (MIGRATE, SWAPDB, SELECT 1, DEBUG ...) is one
``redis.call`` away. `command_rules` turns the command table into the
permissions of that user, so the two cannot drift apart:

- allowed: every command and subcommand the router sends to a shard, i.e.
  the rows it forwards (SINGLE, FANOUT_*, ALL_MASTERS, ANY) and the PINNED ones
  it serves through dedicated connections (MULTI/EXEC/WATCH, blocking commands,
  pub/sub, PUBLISH, PUBSUB introspection, WAIT);
- narrowed to a first argument (Redis 7.0's ``+cmd|arg`` for a command without
  subcommands): INFO to the sections the router reads from the masters
  (`INFO_SENT`: keyspace, server, memory, persistence, stats, errorstats;
  router.decide.info), so a script's ``INFO``, ``INFO clients`` or ``INFO
  replication`` is refused; SELECT to ``SELECT 0``, the only database the
  router exposes;
- allowed although the router answers them itself: PING, ECHO and TIME
  (`SCRIPT_SAFE_LOCAL`: scripts use them, and they read or change nothing);
- allowed because the router sends them itself (`ROUTER_SENT`): CLIENT ID
  (asked on every pinned connection), CLIENT UNBLOCK (of that id) and CLIENT
  TRACKING (``ON BCAST`` on its per-shard tracking connections, router.wire.tracking,
  which also send HELLO 3 and PING: granted already);
- MIGRATE only to the hosts of cluster.yaml's nodes (``+migrate|<host>``: Redis
  7.0 checks the first argument, MIGRATE's target host), for online resharding:
  the router's pre-move (router.wire.migrate) and the sentinels' mover move keys
  as this user; the target then runs RESTORE (granted: it is forwarded) as this
  user too. A script may call MIGRATE, but not to a host outside the cluster.
  The rest of what moving sends (SELECT 0, WAIT, MEMORY USAGE, PUBLISH, the
  mover's SCAN/HSCAN/.../RENAMENX copy) is forwarded, so granted already;
- allowed only with ``router.allow_config_set: true``: CONFIG SET and CONFIG
  RESETSTAT (`CONFIG_WRITES`; REJECTED rows the router then sends to every
  node itself, router.control.config_set). Scripts cannot run them either
  way (Redis flags them ``noscript``);
- denied: everything else: the REJECTED rows, the PINNED rows the router does
  not send (CLIENT CACHING/GETREDIR/TRACKINGINFO: answered by the router; SCRIPT DEBUG),
  the LOCAL rows (the router answers them: CLIENT SETNAME, READONLY ...), and
  any command the table does not know (``-@all`` comes first).

AUTH and HELLO, which the router sends on every connection, need no
permission (Redis lets every user run them). Keys ``~*`` and channels
``&*`` are all allowed: the router exposes the whole keyspace of db 0.
"""

from __future__ import annotations

from collections.abc import Iterable

from router.commands.spec import TABLE, CommandSpec
from router.commands.table import Shape

# The sections of the one INFO the router sends to a master (router.decide.info:
# the masters' data-side sections under the router's own). Redis 7.0 checks a
# first-argument grant against the first argument only; each is granted anyway.
INFO_SENT = (b"keyspace", b"server", b"memory", b"persistence", b"stats", b"errorstats")

# LOCAL commands (answered by the router) that a script may still run on a shard.
SCRIPT_SAFE_LOCAL = frozenset({"ping", "echo", "time"})

# Commands the router sends on its own behalf although it answers (or refuses) them
# for clients: CLIENT ID on each new pinned connection, CLIENT UNBLOCK of that id
# on a side connection (router.wire.client_ctl), CLIENT TRACKING ON BCAST on each
# tracking connection (router.wire.tracking). All are ``noscript`` in Redis, so a
# script still cannot call them.
ROUTER_SENT = frozenset({"client|id", "client|unblock", "client|tracking"})

# First-argument grants for commands without subcommands (Redis 7.0 ``+cmd|arg``).
FIRST_ARG_ONLY: dict[str, str] = {"info": INFO_SENT[0].decode(), "select": "0"}
# Further first arguments granted beside those (every section of `INFO_SENT`).
MORE_FIRST_ARGS: dict[str, tuple[str, ...]] = {"info": tuple(s.decode() for s in INFO_SENT[1:])}

_FORWARDED = frozenset(
    {
        Shape.SINGLE,
        Shape.FANOUT_SUM,
        Shape.FANOUT_ORDERED,
        Shape.FANOUT_OK,
        Shape.ALL_MASTERS,
        Shape.ANY,
    }
)
# PINNED commands served through the client's mode (router.decide.modes) and
# dedicated connections, rather than by router.decide.plan.plan_pinned.
_STATEFUL = frozenset(
    {
        "multi",
        "exec",
        "discard",
        "watch",
        "unwatch",
        "subscribe",
        "psubscribe",
        "ssubscribe",
        "unsubscribe",
        "punsubscribe",
        "sunsubscribe",
    }
)
# REJECTED rows the router runs itself when router.allow_config_set is true.
CONFIG_WRITES = ("config|resetstat", "config|set")
# Rows newer than Redis 7.0 (an ACL rule naming them would be refused by a 7.0 server).
_NOT_IN_7_0 = frozenset({"client|setinfo", "client|no-touch"})


def pinned_reaches_shard(spec: CommandSpec) -> bool:
    """Whether the router sends the PINNED command ``spec`` to a shard: the stateful
    ones, blocking ones, PUBLISH, SPUBLISH and PUBSUB introspection; the rest get
    "not supported by the router" (router.decide.plan.plan_pinned)."""
    return (
        spec.name in _STATEFUL
        or spec.blocks is not None
        or spec.name == "publish"
        or bool(spec.first)
        or spec.merger is not None
    )


def shard_may_run(spec: CommandSpec) -> bool:
    """Whether the router's backend user may run ``spec`` (a command or a subcommand
    row) on a shard at all: see the module docstring."""
    if spec.name in _NOT_IN_7_0:
        return False
    if spec.name in ROUTER_SENT:
        return True
    shape = spec.shape
    if shape in _FORWARDED:
        return True
    if shape is Shape.PINNED:
        return pinned_reaches_shard(spec)
    if shape is Shape.LOCAL:
        return spec.name in SCRIPT_SAFE_LOCAL
    return False  # REJECTED


def allowed_names() -> list[str]:
    """Every command (``get``) and subcommand (``config|get``) the user may run in full,
    sorted; containers whose every subcommand is allowed appear as the container."""
    names: list[str] = []
    for spec in TABLE.values():
        if spec.name in FIRST_ARG_ONLY:
            continue
        if spec.subcommands is None:
            if shard_may_run(spec):
                names.append(spec.name)
            continue
        subs = [s for s in spec.subcommands.values() if shard_may_run(s)]
        if len(subs) == len(spec.subcommands) and shard_may_run(spec):
            names.append(spec.name)  # COMMAND: bare and every subcommand
        else:
            names.extend(s.name for s in subs)
    return sorted(names)


def command_rules(config_set: bool = False, migrate_hosts: Iterable[str] = ()) -> list[str]:
    """The command part of the router user's ACL rule: ``-@all`` then one ``+`` per
    allowed command, subcommand or first argument, in a stable order; ``config_set``:
    router.allow_config_set (`CONFIG_WRITES` allowed too); ``migrate_hosts``: MIGRATE's
    allowed target hosts."""
    rules = ["-@all"]
    rules += [f"+{name}" for name in allowed_names()]
    rules += [f"+{name}|{arg}" for name, arg in sorted(FIRST_ARG_ONLY.items())]
    rules += [f"+{name}|{arg}" for name, args in sorted(MORE_FIRST_ARGS.items()) for arg in args]
    rules += [f"+migrate|{host}" for host in sorted(set(migrate_hosts))]
    if config_set:
        rules += [f"+{name}" for name in CONFIG_WRITES]
    return rules


def rule(config_set: bool = False, migrate_hosts: Iterable[str] = ()) -> list[str]:
    """Keys, channels and commands of the router's backend user (no password part);
    ``migrate_hosts``: the hosts MIGRATE may send keys to (cluster.yaml's nodes)."""
    return ["~*", "&*", *command_rules(config_set, migrate_hosts)]
