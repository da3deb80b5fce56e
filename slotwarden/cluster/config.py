"""cluster.yaml: load it, validate it, and turn it into frozen config objects.

Owns the schema of cluster.yaml (keys, defaults, types) and its validation.
Invariant: `parse` either returns a `ClusterConfig` that is valid as a whole
(every slot owned by exactly one shard, every address used once, quorum
reachable) or raises one `ConfigError` listing *every* problem it found, each
a sentence that starts with the field path (``shards[1].master: ...``).

The ``redis:`` blocks (top level, ``shards[].redis``) are checked against the
allow list of `slotwarden.cluster.redisconf`, which owns their names and values.

No asyncio, no sockets: `load` reads one file, `parse` is a pure function of
the already-decoded YAML data. Defaults live in one place, the dataclass
field defaults below; the parser reads them from there.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from slotwarden.cluster.errors import ConfigError
from slotwarden.cluster.redisconf import RedisSettings, parse_block
from slotwarden.cluster.slots import SLOT_COUNT, format_ranges, parse_ranges
from slotwarden.cluster.tls import TLS_KEYS, TLSConfig, cleartext_problems, parse_tls
from slotwarden.cluster.topology import Address, Shard, SlotMap

# `SlotMap.owner` is a byte per slot and 255 marks "unassigned" while building.
MAX_SHARDS = 255
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_ADMIN = Address("127.0.0.1", 7780)


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a password comes from: an environment variable or a file (never the YAML)."""

    env: str | None = None
    file: str | None = None

    def describe(self) -> str:
        return f"env {self.env}" if self.env else f"file {self.file}"


@dataclass(frozen=True, slots=True)
class UserConfig:
    """One router user (``router.users[]``): clients AUTH with its name and password."""

    name: str
    password: SecretRef


@dataclass(frozen=True, slots=True)
class BackendAuthConfig:
    """The ``backend:`` section: credentials the router sends to every Redis node."""

    password: SecretRef
    username: str | None = None  # None: AUTH <password> (Redis's default user)


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """The ``router:`` section. Every bound has a default; only ``listen`` is required."""

    listen: Address  # client endpoint
    admin: Address = DEFAULT_ADMIN  # HTTP admin: health, metrics, topology
    command_timeout_ms: int = 2000  # a backend reply must arrive within this
    connect_timeout_ms: int = 1000
    backend_connections: int = 1  # pipelined connections per backend node, shared
    reconnect_min_ms: int = 50  # reconnect backoff starts here, doubling ...
    reconnect_max_ms: int = 2000  # ... up to here
    max_clients: int = 10000
    max_pending_per_client: int = 1024  # queued replies before we stop reading a client
    client_output_limit_bytes: int = 64 * 1024 * 1024  # buffered output before pause/close
    max_bulk_bytes: int = 512 * 1024 * 1024  # Redis proto-max-bulk-len
    max_args: int = 2**31 - 1  # arguments per request: Redis 7 takes up to INT_MAX
    max_inline_bytes: int = 64 * 1024  # Redis PROTO_INLINE_MAX_SIZE
    # A client whose unparsed input exceeds this is closed (Redis client-query-buffer-limit)
    client_query_buffer_limit_bytes: int = 1024 * 1024 * 1024
    drain_timeout_ms: int = 5000  # on shutdown, how long in-flight replies may take
    # Dedicated backend connections (transactions with WATCH, blocking commands,
    # subscriptions), per backend node: at most this many at once (each is a
    # socket and a Redis client on the shard) ...
    pinned_connections_per_node: int = 512
    # ... and up to this many kept open when returned clean, for the next client.
    pinned_idle_per_node: int = 8
    # Per node, what one client source address (all of a sidecar's apps: 127.0.0.1)
    # and one router user (only with router users) may hold of them at once, and how
    # many only subscriptions may take (WATCH and blocking commands leave them;
    # unset: this, at most pinned_connections_per_node // 16).
    pinned_per_source: int = 256
    pinned_per_user: int = 384
    pinned_reserved_for_pubsub: int = 32
    # Router users clients must AUTH as (empty: no authentication, as a Redis
    # without a password). Passwords come from env vars or files, never the file.
    users: tuple[UserConfig, ...] = ()
    # MULTI/EXEC over keys of several shards: "split" (one MULTI/EXEC per shard, the
    # replies in the client's order) or "single-shard" (Redis Cluster's CROSSSLOT).
    transactions: str = "split"
    # CONFIG SET / CONFIG RESETSTAT through the router, to every node of every shard
    # (router.control.config_set); false: refused, and the backend ACL denies them.
    allow_config_set: bool = False
    # Bytes of Lua bodies the router keeps for the transparent NOSCRIPT retry (0: none).
    script_cache_bytes: int = 4 * 1024 * 1024
    # Multi-key commands whose keys span shards (SUNION, ZUNIONSTORE, PFCOUNT, LCS,
    # BITOP ...: router.decide.algebra): "compute" them in the router, or "strict"
    # (CROSSSLOT, as Redis Cluster); and at most this many bytes of inputs copied
    # between shards for one command (beyond it: CROSSSLOT with a hint).
    cross_shard: str = "compute"
    max_cross_shard_bytes: int = 64 * 1024 * 1024
    # CLIENT TRACKING: keys the router remembers clients read (Redis's
    # tracking-table-max-keys); when full the oldest is invalidated and forgotten. 0: no bound.
    tracking_table_max_keys: int = 1_000_000
    # Router processes on router.listen (SO_REUSEPORT), under one supervisor that owns
    # router.admin (router.control.supervisor); 1: one process, no supervisor. The
    # file may say "auto": the usable cores (os.sched_getaffinity), resolved at load.
    workers: int = 1


TRANSACTION_MODES = ("split", "single-shard")
CROSS_SHARD_MODES = ("compute", "strict")


@dataclass(frozen=True, slots=True)
class ShardConfig:
    name: str
    slots: tuple[tuple[int, int], ...]  # inclusive ranges, in file order
    master: Address
    replicas: tuple[Address, ...] = ()
    backend: BackendAuthConfig | None = None  # this shard's credentials, if not the cluster's
    # shards[].redis: Redis settings of this shard's nodes over the top block's
    # (slotwarden.cluster.redisconf)
    redis: RedisSettings = ()

    @property
    def slot_count(self) -> int:
        return len({s for lo, hi in self.slots for s in range(lo, hi + 1)})

    @property
    def slots_text(self) -> str:
        """The slots as canonical ranges, e.g. ``"0-5460"``."""
        return format_ranges(s for lo, hi in self.slots for s in range(lo, hi + 1))

    def to_shard(self) -> Shard:
        return Shard(self.name, self.master, self.replicas)


@dataclass(frozen=True, slots=True)
class SentinelPeer:
    id: str
    listen: Address  # HTTP endpoint for votes and topology between sentinels


@dataclass(frozen=True, slots=True)
class MigrationConfig:
    """``sentinel.migration``: how keys of migrating slots move (README *Resharding*)."""

    keys_per_second: int = 20000  # the mover's rate limit (0: none)
    batch_keys: int = 100  # keys per MIGRATE the mover sends
    big_key_bytes: int = 1048576  # a key larger than this (MEMORY USAGE) moves in chunks
    chunk_items: int = 1000  # elements per chunk of a big key


MIGRATION_KEYS = ("keys_per_second", "batch_keys", "big_key_bytes", "chunk_items")


@dataclass(frozen=True, slots=True)
class SentinelConfig:
    quorum: int  # sentinels that must agree a master is down before a failover
    down_after_ms: int  # unanswered this long -> subjectively down
    failover_timeout_ms: int  # a failover not finished by then is abandoned
    probe_interval_ms: int = 100
    secret_env: str = "SLOTWARDEN_SECRET"  # env var holding the shared peer secret
    secret_file: str | None = None  # or a file holding it
    state_dir: str = ".slotwarden/state"  # persisted votes and epochs
    peers: tuple[SentinelPeer, ...] = ()
    # The sentinels' own credentials for the Redis nodes (an ACL user with the
    # rights sentinel.act.acl lists); None: the router's (``backend:``).
    backend: BackendAuthConfig | None = None
    # A replica further behind its master than this is not promoted (link down
    # longer than the master's downtime + this, or offset below the master's of
    # this long ago); None: 10 x down_after_ms.
    max_replica_lag_ms: int | None = None
    migration: MigrationConfig = MigrationConfig()


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    name: str
    router: RouterConfig
    shards: tuple[ShardConfig, ...]
    sentinel: SentinelConfig | None = None
    path: str | None = None  # the file it was loaded from, if any
    backend: BackendAuthConfig | None = None  # credentials for the Redis nodes, if any
    tls: TLSConfig | None = None  # the tls: section (slotwarden.cluster.tls), if any
    # redis: Redis settings of every node (slotwarden.cluster.redisconf), normalised
    redis: RedisSettings = ()

    def slotmap(self, epoch: int = 0) -> SlotMap:
        return SlotMap.build(
            epoch, [s.to_shard() for s in self.shards], [s.slots for s in self.shards]
        )


TOP_KEYS = ("name", "router", "shards", "sentinel", "backend", "tls", "redis")
USER_KEYS = ("name", "password_env", "password_file")
BACKEND_KEYS = ("username", "password_env", "password_file")
ROUTER_KEYS = tuple(f.name for f in dataclasses.fields(RouterConfig))
MAX_WORKERS = 256  # router.workers: processes on one listen address
MAX_ARGS_CEILING = 2**31 - 1  # Redis 7 refuses a multibulk count above INT_MAX
SHARD_KEYS = ("name", "slots", "master", "replicas", "backend", "redis")
SENTINEL_KEYS = tuple(f.name for f in dataclasses.fields(SentinelConfig))
PEER_KEYS = ("id", "listen")

_MISSING: Any = object()


def load(path: str | os.PathLike[str]) -> ClusterConfig:
    """Read and validate ``path``; raises `ConfigError` listing every problem."""
    source = os.fspath(path)
    try:
        raw = Path(source).read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            [f"file not found (looked at {os.path.abspath(source)})"], source
        ) from None
    except OSError as exc:
        raise ConfigError([f"cannot read the file: {exc.strerror or exc}"], source) from None
    loader = _Loader(raw)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_yaml_problem(exc)], source) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"YAML error: {exc}"], source) from None
    finally:
        loader.dispose()
    config = _parse(data, source, loader.duplicate_keys)
    return dataclasses.replace(config, path=source)


def parse(data: object, source: str = "cluster.yaml") -> ClusterConfig:
    """Validate already-decoded YAML ``data``; raises `ConfigError` listing every problem."""
    return _parse(data, source, [])


def _parse(data: object, source: str, problems: list[str]) -> ClusterConfig:
    checker = _Checker(problems)
    config = checker.cluster(data)
    if checker.problems or config is None:
        raise ConfigError(checker.problems, source)
    return config


class _Loader(yaml.SafeLoader):
    """SafeLoader that also notes duplicate mapping keys (PyYAML keeps the last silently)."""

    def __init__(self, stream: bytes) -> None:
        super().__init__(stream)
        self.duplicate_keys: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            line = key_node.start_mark.line + 1
            first = seen.setdefault((key_node.tag, key_node.value), line)
            if first != line:
                self.duplicate_keys.append(
                    f"line {line}: key {key_node.value!r} appears twice in one mapping "
                    f"(also line {first}); the earlier value would be silently ignored"
                )
        return super().construct_mapping(node, deep)


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    what = exc.problem or exc.context or "malformed YAML"
    if exc.problem and exc.context:
        what += f" ({exc.context}"
        if exc.context_mark is not None and exc.context_mark.line != getattr(mark, "line", None):
            what += f" that started at line {exc.context_mark.line + 1}"
        what += ")"
    if mark is None:
        return f"YAML syntax error: {what}"
    return f"YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {what}"


class _Checker:
    """Walks the decoded YAML, appending one sentence per problem to `problems`.

    Each method returns the parsed value, or ``None`` if that part is invalid
    (its problems have been recorded); the caller keeps going either way.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        # address -> the first field path that used it
        self.addresses: dict[tuple[str, int], str] = {}

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}" if path else message)

    # -- generic field checks ---------------------------------------------

    def mapping(self, value: object, path: str, known: tuple[str, ...]) -> Mapping[Any, Any]:
        """``value`` as a mapping (empty if it is not one); flags unknown keys."""
        if not isinstance(value, Mapping):
            what = "the file" if not path else path
            self.problems.append(
                f"{what}: must be a mapping with keys {', '.join(known)}, got {_describe(value)}"
            )
            return {}
        for key in value:
            if key in known:
                continue
            hint = difflib.get_close_matches(str(key), known, n=1)
            msg = f"unknown key {str(key)!r} (known: {', '.join(known)})"
            if hint:
                msg += f"; did you mean {hint[0]!r}?"
            self.problem(path, msg)
        return value

    def integer(self, value: object, path: str, minimum: int = 1) -> int | None:
        if not isinstance(value, int) or isinstance(value, bool):
            self.problem(path, f"must be a positive integer, got {_describe(value)}")
            return None
        if value < minimum:
            self.problem(path, f"must be >= {minimum}, got {value}")
            return None
        return value

    def one_of(self, value: object, path: str, choices: tuple[str, ...]) -> str | None:
        if value not in choices:
            self.problem(path, f"must be one of {', '.join(choices)}, got {_describe(value)}")
            return None
        return value  # type: ignore[return-value]

    def name(self, value: object, path: str) -> str | None:
        if value is _MISSING:
            self.problem(path, "missing (want a name like 'a')")
            return None
        if not isinstance(value, str) or not _NAME_RE.match(value):
            self.problem(
                path,
                f"{_describe(value)} is not a valid name "
                "(letters, digits, '_', '.', '-'; starting with a letter or digit)",
            )
            return None
        return value

    def address(self, value: object, path: str) -> Address | None:
        if value is _MISSING:
            self.problem(path, "missing (want host:port)")
            return None
        if not isinstance(value, str):
            self.problem(path, f"malformed address {_describe(value)} (want host:port)")
            return None
        try:
            address = Address.parse(value)
        except ValueError as exc:
            self.problem(path, str(exc))
            return None
        key = (address.host.lower(), address.port)
        first = self.addresses.setdefault(key, path)
        if first != path:
            self.problem(path, f"address {address} is used twice (also {first})")
        return address

    def unique(self, value: str | None, path: str, seen: dict[str, str]) -> None:
        if value is None:
            return
        first = seen.setdefault(value, path)
        if first != path:
            self.problem(path, f"{value!r} is used twice (also {first})")

    # -- sections -----------------------------------------------------------

    def cluster(self, data: object) -> ClusterConfig | None:
        if data is None:
            self.problems.append(
                f"the file is empty (want a mapping with keys {', '.join(TOP_KEYS)})"
            )
            return None
        top = self.mapping(data, "", TOP_KEYS)
        if not isinstance(data, Mapping):
            return None
        name = top.get("name", _MISSING)
        if name is _MISSING:
            self.problem("name", "missing (the cluster's name, e.g. 'demo')")
            name = None
        else:
            name = self.name(name, "name")
        # Router first, then shards, then sentinel: "used twice (also X)" names
        # the earlier field in that order.
        router = self.router(top.get("router", _MISSING))
        shards = self.shards(top.get("shards", _MISSING))
        raw_sentinel = top.get("sentinel")
        sentinel = None if raw_sentinel is None else self.sentinel(raw_sentinel)
        raw_backend = top.get("backend")
        backend = None if raw_backend is None else self.backend(raw_backend)
        self.own_sentinel_user(backend, sentinel)
        raw_tls = top.get("tls")
        tls = None if raw_tls is None else self.tls(raw_tls)
        redis = self.redis_block(top.get("redis"), "redis")
        if self.problems or name is None or router is None or shards is None:
            return None
        if raw_sentinel is not None and sentinel is None:
            return None
        if raw_backend is not None and backend is None:
            return None
        if raw_tls is not None and tls is None:
            return None
        if redis is None:
            return None
        config = ClusterConfig(
            name=name, router=router, shards=shards, sentinel=sentinel, backend=backend, tls=tls,
            redis=redis,
        )  # fmt: skip
        return None if self.cleartext(config) else config

    def tls(self, value: object) -> TLSConfig | None:
        section = self.mapping(value, "tls", TLS_KEYS)
        return parse_tls(section, self.problem) if isinstance(value, Mapping) else None

    def cleartext(self, config: ClusterConfig) -> list[str]:
        """Refuse secrets travelling in clear to non-loopback addresses (cluster.tls)."""
        sc = config.sentinel
        peers = (
            [(f"sentinel.peers[{i}].listen", p.listen) for i, p in enumerate(sc.peers)]
            if sc
            else []
        )
        nodes = [
            (f"shards[{i}].{'master' if n == s.master else 'replicas'}", n)
            for i, s in enumerate(config.shards)
            if (s.backend or config.backend) is not None
            for n in (s.master, *s.replicas)
        ]
        users_listen = config.router.listen if config.router.users else None
        found = cleartext_problems(config.tls, config.router.admin, peers, nodes, users_listen)
        self.problems.extend(found)
        return found

    def router(self, value: object) -> RouterConfig | None:
        if value is _MISSING:
            self.problem("router", "missing (at least 'listen: host:port' is required)")
            return None
        section = self.mapping(value, "router", ROUTER_KEYS)
        ok = isinstance(value, Mapping)
        kwargs: dict[str, Any] = {}
        for field in dataclasses.fields(RouterConfig):
            path = f"router.{field.name}"
            raw = section.get(field.name, _MISSING)
            if raw is _MISSING:
                if field.default is dataclasses.MISSING:
                    if ok:
                        self.problem(path, "missing (want host:port, e.g. 127.0.0.1:7777)")
                    ok = False
                elif isinstance(field.default, Address):
                    # Defaulted addresses still count for the "used twice" check.
                    self.address(str(field.default), path)
                continue
            parsed: object
            if field.name == "users":
                parsed = self.users(raw, path)
            elif field.name == "pinned_reserved_for_pubsub":
                parsed = self.integer(raw, path, minimum=0)
            elif field.name == "transactions":
                parsed = self.one_of(raw, path, TRANSACTION_MODES)
            elif field.name in ("allow_config_set", "script_cache_bytes"):  # issue 12 items 5, 6
                parsed = self.integer(raw, path, minimum=0) if field.type == "int" else raw
                if field.type == "bool" and not isinstance(raw, bool):
                    self.problem(path, f"must be true or false, got {_describe(raw)}")
                    parsed = None
            elif field.name == "tracking_table_max_keys":  # 0: no bound (issue 14)
                parsed = self.integer(raw, path, minimum=0)
            elif field.name == "cross_shard":
                parsed = self.one_of(raw, path, CROSS_SHARD_MODES)
            elif field.name == "workers":
                parsed = self.workers(raw, path)
            elif field.type == "Address":
                parsed = self.address(raw, path)
            else:
                parsed = self.integer(raw, path)
            if parsed is None:
                ok = False
            else:
                kwargs[field.name] = parsed
        if not ok:
            return None
        if "pinned_reserved_for_pubsub" not in kwargs:  # default: 32, at most 1/16 of the cap
            per_node = kwargs.get(
                "pinned_connections_per_node", _default(RouterConfig, "pinned_connections_per_node")
            )
            kwargs["pinned_reserved_for_pubsub"] = min(
                _default(RouterConfig, "pinned_reserved_for_pubsub"), per_node // 16
            )
        config = RouterConfig(**kwargs)
        if config.max_args > MAX_ARGS_CEILING:
            self.problem(
                "router.max_args",
                f"{config.max_args} is larger than {MAX_ARGS_CEILING} (Redis's own ceiling, "
                "INT_MAX: a longer multibulk count is a protocol error there)",
            )
            return None
        if config.reconnect_min_ms > config.reconnect_max_ms:
            self.problem(
                "router.reconnect_min_ms",
                f"{config.reconnect_min_ms} is larger than router.reconnect_max_ms "
                f"({config.reconnect_max_ms})",
            )
            return None
        return config if self.pinned_limits(config) else None

    def workers(self, value: object, path: str) -> int | None:
        """``router.workers``: 1..MAX_WORKERS, or "auto" (the cores this process may use)."""
        if value == "auto":
            return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0))))
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_WORKERS:
            self.problem(
                path, f'must be an integer 1..{MAX_WORKERS} or "auto", got {_describe(value)}'
            )
            return None
        return value

    def pinned_limits(self, config: RouterConfig) -> bool:
        """The subscriptions' reserve leaves room for WATCH and blocking commands."""
        if config.pinned_reserved_for_pubsub >= config.pinned_connections_per_node:
            self.problem(
                "router.pinned_reserved_for_pubsub",
                f"{config.pinned_reserved_for_pubsub} must be smaller than "
                f"router.pinned_connections_per_node ({config.pinned_connections_per_node})",
            )
            return False
        return True

    def shards(self, value: object) -> tuple[ShardConfig, ...] | None:
        if value is _MISSING or value is None:
            self.problem("shards", "missing (the cluster needs at least one shard)")
            return None
        if not isinstance(value, list):
            self.problem("shards", f"must be a list of shards, got {_describe(value)}")
            return None
        if not value:
            self.problem("shards", "must list at least one shard")
            return None
        if len(value) > MAX_SHARDS:
            self.problem(
                "shards", f"{len(value)} shards listed, at most {MAX_SHARDS} are supported"
            )
        names: dict[str, str] = {}
        parsed: list[ShardConfig | None] = []
        ranges: list[list[tuple[int, int]] | None] = []
        labels: list[str] = []
        for index, item in enumerate(value):
            shard, shard_ranges = self.shard(item, f"shards[{index}]", names)
            parsed.append(shard)
            ranges.append(shard_ranges)
            label = item.get("name") if isinstance(item, Mapping) else None
            labels.append(label if isinstance(label, str) else f"shards[{index}]")
        self.coverage(ranges, labels)
        if any(s is None for s in parsed):
            return None
        return tuple(s for s in parsed if s is not None)

    def shard(
        self, value: object, path: str, names: dict[str, str]
    ) -> tuple[ShardConfig | None, list[tuple[int, int]] | None]:
        section = self.mapping(value, path, SHARD_KEYS)
        if not isinstance(value, Mapping):
            return None, None
        name = self.name(section.get("name", _MISSING), f"{path}.name")
        self.unique(name, f"{path}.name", names)
        slots = self.slots(section.get("slots", _MISSING), f"{path}.slots")
        master = self.address(section.get("master", _MISSING), f"{path}.master")
        replicas = self.replicas(section.get("replicas"), f"{path}.replicas")
        raw_backend = section.get("backend")
        backend = None if raw_backend is None else self.backend(raw_backend, f"{path}.backend")
        redis = self.redis_block(section.get("redis"), f"{path}.redis")
        if name is None or slots is None or master is None or replicas is None:
            return None, slots
        if raw_backend is not None and backend is None:
            return None, slots
        if redis is None:
            return None, slots
        return ShardConfig(name, tuple(slots), master, replicas, backend, redis), slots

    def redis_block(self, value: object, path: str) -> RedisSettings | None:
        """A ``redis:`` block (top level or a shard's): slotwarden.cluster.redisconf."""
        return () if value is None else parse_block(value, path, self.problem)

    def slots(self, value: object, path: str) -> list[tuple[int, int]] | None:
        if value is _MISSING or value is None:
            self.problem(
                path,
                "missing (want slot ranges like '0-5460' or '0-100,200-300', "
                "or '' for a shard that owns no slots)",
            )
            return None
        if isinstance(value, str) and not value.strip():
            return []  # kept, owning nothing (README Resharding: draining a shard)
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.problem(
                path,
                f"must be slot ranges like '0-5460' or '0-100,200-300', got {_describe(value)}",
            )
            return None
        try:
            ranges = parse_ranges(str(value))
        except ValueError as exc:
            self.problem(path, str(exc))
            return None
        seen: set[int] = set()
        twice: set[int] = set()
        for lo, hi in ranges:
            for slot in range(lo, hi + 1):
                (twice if slot in seen else seen).add(slot)
        if twice:
            self.problem(path, f"{_slots_are(twice)} listed twice")
        return ranges

    def replicas(self, value: object, path: str) -> tuple[Address, ...] | None:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.problem(path, f"must be a list of host:port addresses, got {_describe(value)}")
            return None
        out = [self.address(item, f"{path}[{i}]") for i, item in enumerate(value)]
        if any(a is None for a in out):
            return None
        return tuple(a for a in out if a is not None)

    def coverage(self, ranges: list[list[tuple[int, int]] | None], labels: list[str]) -> None:
        """Every slot owned by exactly one shard; gaps only if every shard's slots parsed."""
        owner: list[int] = [-1] * SLOT_COUNT
        overlaps: dict[tuple[int, int], set[int]] = {}
        for index, shard_ranges in enumerate(ranges):
            for lo, hi in shard_ranges or ():
                for slot in range(lo, hi + 1):
                    first = owner[slot]
                    if first == -1:
                        owner[slot] = index
                    elif first != index:
                        overlaps.setdefault((first, index), set()).add(slot)
        for (first, second), slots in sorted(overlaps.items()):
            self.problem(
                "shards",
                f"{_slots_are(slots)} assigned to both {labels[first]!r} and {labels[second]!r}",
            )
        if all(r is not None for r in ranges):
            gaps = [slot for slot, index in enumerate(owner) if index == -1]
            if gaps:
                self.problem("shards", f"{_slots_are(gaps)} not assigned to any shard")

    def sentinel(self, value: object) -> SentinelConfig | None:
        section = self.mapping(value, "sentinel", SENTINEL_KEYS)
        if not isinstance(value, Mapping):
            return None
        ok = True
        kwargs: dict[str, Any] = {}

        def take(key: str, check: Callable[[object, str], object], required: bool) -> None:
            nonlocal ok
            raw = section.get(key, _MISSING)
            if raw is _MISSING:
                if required:
                    self.problem(f"sentinel.{key}", "missing")
                    ok = False
                return
            parsed = check(raw, f"sentinel.{key}")
            if parsed is None:
                ok = False
            else:
                kwargs[key] = parsed

        take("quorum", self.integer, True)
        take("down_after_ms", self.integer, True)
        take("failover_timeout_ms", self.integer, True)
        take("probe_interval_ms", self.integer, False)
        take("secret_env", self.env_name, False)
        take("secret_file", self.text, False)
        take("state_dir", self.text, False)
        take("peers", self.peers, True)
        take("backend", self.backend, False)
        take("max_replica_lag_ms", self.integer, False)
        take("migration", self.migration, False)
        # Cross-field checks run on whatever parsed, so they show up alongside
        # the problems of individual fields.
        quorum = kwargs.get("quorum")
        raw_peers = section.get("peers")
        if quorum is not None and isinstance(raw_peers, list) and raw_peers:
            if quorum > len(raw_peers):
                self.problem(
                    "sentinel.quorum",
                    f"{quorum} is larger than the number of sentinels ({len(raw_peers)})",
                )
                ok = False
        probe = kwargs.get("probe_interval_ms", _default(SentinelConfig, "probe_interval_ms"))
        down = kwargs.get("down_after_ms")
        if "probe_interval_ms" in section and "probe_interval_ms" not in kwargs:
            probe = None  # invalid, already reported
        if probe is not None and down is not None and probe >= down:
            self.problem(
                "sentinel.probe_interval_ms",
                f"{probe} must be smaller than sentinel.down_after_ms ({down})",
            )
            ok = False
        return SentinelConfig(**kwargs) if ok else None

    def migration(self, value: object, path: str) -> MigrationConfig | None:
        section = self.mapping(value, path, MIGRATION_KEYS)
        if not isinstance(value, Mapping):
            return None
        kwargs: dict[str, int] = {}
        ok = True
        for key in MIGRATION_KEYS:
            if key in section:
                minimum = 0 if key == "keys_per_second" else 1
                parsed = self.integer(section[key], f"{path}.{key}", minimum)
                if parsed is None:
                    ok = False
                else:
                    kwargs[key] = parsed
        return MigrationConfig(**kwargs) if ok else None

    def own_sentinel_user(
        self, backend: BackendAuthConfig | None, sentinel: SentinelConfig | None
    ) -> None:
        """``sentinel.backend`` must name another user than ``backend``: the router's
        user is denied what the sentinels send (REPLICAOF, ROLE ...)."""
        own = sentinel.backend if sentinel is not None else None
        if own is not None and backend is not None and own.username == backend.username:
            who = f"user {own.username!r}" if own.username else "the default user (no username)"
            self.problem(
                "sentinel.backend.username",
                f"names {who}, as backend.username does; the sentinels need an ACL user "
                "of their own (leave sentinel.backend out to share the router's)",
            )

    def secret_ref(self, section: Mapping[Any, Any], path: str) -> SecretRef | None:
        """Exactly one of ``password_env`` / ``password_file``; a clear password is refused."""
        env = section.get("password_env")
        file = section.get("password_file")
        if (env is None) == (file is None):
            self.problem(
                path,
                "needs exactly one of password_env (an environment variable name) or "
                "password_file (a file holding the password); passwords are never written "
                "in this file",
            )
            return None
        if env is not None:
            name = self.env_name(env, f"{path}.password_env")
            return None if name is None else SecretRef(env=name)
        text = self.text(file, f"{path}.password_file")
        return None if text is None else SecretRef(file=text)

    def users(self, value: object, path: str) -> tuple[UserConfig, ...] | None:
        if not isinstance(value, list):
            self.problem(path, f"must be a list of {{name, password_env|password_file}}, "
                         f"got {_describe(value)}")  # fmt: skip
            return None
        names: dict[str, str] = {}
        out: list[UserConfig | None] = []
        for index, item in enumerate(value):
            item_path = f"{path}[{index}]"
            if isinstance(item, Mapping) and "password" in item:
                self.problem(
                    f"{item_path}.password",
                    "passwords are not allowed in the file; use password_env or password_file",
                )
                out.append(None)
                continue
            section = self.mapping(item, item_path, USER_KEYS)
            if not isinstance(item, Mapping):
                out.append(None)
                continue
            user = self.name(section.get("name", _MISSING), f"{item_path}.name")
            self.unique(user, f"{item_path}.name", names)
            ref = self.secret_ref(section, item_path)
            out.append(None if user is None or ref is None else UserConfig(user, ref))
        if any(u is None for u in out):
            return None
        return tuple(u for u in out if u is not None)

    def backend(self, value: object, path: str = "backend") -> BackendAuthConfig | None:
        if isinstance(value, Mapping) and "password" in value:
            self.problem(
                f"{path}.password",
                "passwords are not allowed in the file; use password_env or password_file",
            )
            return None
        section = self.mapping(value, path, BACKEND_KEYS)
        if not isinstance(value, Mapping):
            return None
        username = section.get("username")
        if username is not None:
            username = self.text(username, f"{path}.username")
            if username is None:
                return None
        ref = self.secret_ref(section, path)
        return None if ref is None else BackendAuthConfig(ref, username)

    def env_name(self, value: object, path: str) -> str | None:
        if not isinstance(value, str) or not _ENV_RE.match(value):
            self.problem(
                path,
                f"must be an environment variable name (like SLOTWARDEN_SECRET), "
                f"got {_describe(value)}",
            )
            return None
        return value

    def text(self, value: object, path: str) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.problem(path, f"must be a non-empty string, got {_describe(value)}")
            return None
        return value

    def peers(self, value: object, path: str) -> tuple[SentinelPeer, ...] | None:
        if not isinstance(value, list):
            self.problem(path, f"must be a list of {{id, listen}} entries, got {_describe(value)}")
            return None
        if not value:
            self.problem(path, "must list at least one sentinel")
            return None
        ids: dict[str, str] = {}
        out: list[SentinelPeer | None] = []
        for index, item in enumerate(value):
            item_path = f"{path}[{index}]"
            section = self.mapping(item, item_path, PEER_KEYS)
            if not isinstance(item, Mapping):
                out.append(None)
                continue
            peer_id = self.name(section.get("id", _MISSING), f"{item_path}.id")
            self.unique(peer_id, f"{item_path}.id", ids)
            listen = self.address(section.get("listen", _MISSING), f"{item_path}.listen")
            out.append(None if peer_id is None or listen is None else SentinelPeer(peer_id, listen))
        if any(p is None for p in out):
            return None
        return tuple(p for p in out if p is not None)


def _default(cls: type, name: str) -> Any:
    """The declared default of dataclass field ``name`` (slots=True hides it on the class)."""
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def _slots_are(slots: Iterable[int]) -> str:
    """``"slots 1-3,7 are"`` or ``"slot 7 is"``, for messages about a set of slots."""
    text = format_ranges(slots)
    return f"slots {text} are" if "-" in text or "," in text else f"slot {text} is"


def _describe(value: object) -> str:
    """A short rendering of a YAML value for messages: ``'abc'``, ``12``, ``a list``."""
    if value is _MISSING or value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
