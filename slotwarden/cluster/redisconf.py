"""The ``redis:`` blocks of cluster.yaml: Redis settings every node of a shard runs with.

Owns which Redis config names may be set from cluster.yaml (`ALLOWED`, each with
the kind of value it takes) and which are refused and why (`REFUSED`,
`REFUSED_PREFIXES`), the validation of a block (`parse_block`, called by
`slotwarden.cluster.config` for the top-level ``redis:`` and every
``shards[].redis``), the merge of the two (`settings_for`: a shard's keys
override the top block's), the redis-server arguments `slotwarden up` starts a
node with (`server_args`) and the comparison of a wanted value with what a
node's ``CONFIG GET`` reports (`same`).

Values are kept the way Redis reports them on ``CONFIG GET``: sizes in bytes
(``100mb`` -> ``104857600``, ``1gb`` -> ``1073741824``, ``1g`` -> ``1000000000``,
Redis's own ``memtoull`` units), booleans ``yes``/``no``, enums lower case.
Pure: no I/O.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

# A parsed block: (name, value as Redis reports it), in file order.
RedisSettings = tuple[tuple[str, str], ...]

POLICIES = (
    "volatile-lru", "allkeys-lru", "volatile-lfu", "allkeys-lfu",
    "volatile-random", "allkeys-random", "volatile-ttl", "noeviction",
)  # fmt: skip
# notify-keyspace-events flags (Redis 7.0); "A" is an alias of EVENTS_ALL.
EVENT_FLAGS = "g$lshzxetdmnKEA"
EVENTS_ALL = "g$lshzxetd"

# kind: "bytes" (a memory value), "bytes%" (a memory value or a percentage),
# "bool" (yes/no), "policy", "events", or ("int", minimum, maximum) - the bounds
# are Redis's own where it clamps or refuses (None: none we check).
Kind = str | tuple[str, int | None, int | None]
ALLOWED: dict[str, Kind] = {
    # memory and eviction (Redis as a cache)
    "maxmemory": "bytes",
    "maxmemory-policy": "policy",
    "maxmemory-samples": ("int", 1, 64),
    "maxmemory-eviction-tenacity": ("int", 0, 100),
    "maxmemory-clients": "bytes%",
    "replica-ignore-maxmemory": "bool",
    "lfu-log-factor": ("int", 0, None),
    "lfu-decay-time": ("int", 0, None),
    # lazy freeing
    "lazyfree-lazy-eviction": "bool",
    "lazyfree-lazy-expire": "bool",
    "lazyfree-lazy-server-del": "bool",
    "lazyfree-lazy-user-del": "bool",
    "lazyfree-lazy-user-flush": "bool",
    "replica-lazy-flush": "bool",
    # expiry and background work
    "active-expire-effort": ("int", 1, 10),
    "hz": ("int", 1, 500),
    "dynamic-hz": "bool",
    "activerehashing": "bool",
    # client connections and latency
    "timeout": ("int", 0, None),
    "tcp-keepalive": ("int", 0, None),
    "busy-reply-threshold": ("int", 0, None),
    "slowlog-log-slower-than": ("int", -1, None),
    "slowlog-max-len": ("int", 0, None),
    "latency-monitor-threshold": ("int", 0, None),
    "latency-tracking": "bool",
    # keyspace notifications
    "notify-keyspace-events": "events",
    # active defragmentation
    "activedefrag": "bool",
    "active-defrag-ignore-bytes": "bytes",
    "active-defrag-threshold-lower": ("int", 0, 1000),
    "active-defrag-threshold-upper": ("int", 0, 1000),
    "active-defrag-cycle-min": ("int", 1, 99),
    "active-defrag-cycle-max": ("int", 1, 99),
    "active-defrag-max-scan-fields": ("int", 1, None),
    # small-value encodings (memory per key)
    "hash-max-listpack-entries": ("int", 0, None),
    "hash-max-listpack-value": "bytes",
    "list-max-listpack-size": ("int", None, None),
    "list-compress-depth": ("int", 0, None),
    "set-max-intset-entries": ("int", 0, None),
    "zset-max-listpack-entries": ("int", 0, None),
    "zset-max-listpack-value": "bytes",
    "stream-node-max-bytes": "bytes",
    "stream-node-max-entries": ("int", 0, None),
    "hll-sparse-max-bytes": "bytes",
}

_UP = "set by slotwarden up / not settable from cluster.yaml"
_CREDS = (
    "credentials are not settable from cluster.yaml (the backend: and sentinel.backend "
    "sections and `slotwarden up`'s ACL users)"
)
_SAFETY = "a security setting, not settable from cluster.yaml"
_REPL = "replication is the sentinels' (shards[].replicas), not settable from cluster.yaml"
REFUSED: dict[str, str] = {
    **dict.fromkeys(
        ("port", "bind", "dir", "dbfilename", "daemonize", "logfile", "pidfile", "save",
         "appendonly", "appendfilename", "appenddirname", "unixsocket", "unixsocketperm",
         "include", "supervised"),
        _UP,
    ),
    **dict.fromkeys(("requirepass", "masterauth", "masteruser", "aclfile", "user"), _CREDS),
    **dict.fromkeys(("replicaof", "slaveof", "replica-read-only", "slave-read-only"), _REPL),
    **dict.fromkeys(
        ("rename-command", "protected-mode", "enable-protected-configs",
         "enable-debug-command", "enable-module-command", "loadmodule"),
        _SAFETY,
    ),
}  # fmt: skip
REFUSED_PREFIXES: dict[str, str] = {
    "tls-": "TLS is cluster.yaml's tls: section (and `slotwarden up --tls`), " + _UP,
    "cluster-": "slotwarden shards are standalone Redis servers (cluster mode off), " + _UP,
}

_SIZE_RE = re.compile(r"^(\d+)(b|k|kb|m|mb|g|gb)?$", re.IGNORECASE)
_UNITS = {
    "": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2,
    "g": 1000**3, "gb": 1024**3,
}  # fmt: skip
_BOOLS = {"yes": "yes", "no": "no", "true": "yes", "false": "no"}

Problem = Callable[[str, str], None]  # (field path, message)


def refusal(name: str) -> str | None:
    """Why ``name`` may not be set from cluster.yaml, or None if it is allowed."""
    if name in ALLOWED:
        return None
    if name in REFUSED:
        return REFUSED[name]
    for prefix, reason in REFUSED_PREFIXES.items():
        if name.startswith(prefix):
            return reason
    msg = (
        "not among the settings slotwarden applies from cluster.yaml (memory, eviction, "
        "expiry, lazyfree, latency, notifications, active defrag, encodings; README "
        "*cluster.yaml*)"
    )
    hint = difflib.get_close_matches(name, ALLOWED, n=1)
    return msg + (f"; did you mean {hint[0]!r}?" if hint else "")


def normalise(name: str, value: object) -> str:
    """``value`` of the allowed setting ``name`` as Redis reports it on CONFIG GET;
    raises ValueError with the reason (a sentence without the field path)."""
    kind = ALLOWED[name]
    if value is None or isinstance(value, (Mapping, list, tuple, float)):
        raise ValueError(f"must be {_want(kind)}, got {_describe(value)}")
    if kind == "bool":
        if isinstance(value, bool):
            return "yes" if value else "no"
        text = str(value).lower()
        if text not in _BOOLS:
            raise ValueError(f"must be yes or no, got {_describe(value)}")
        return _BOOLS[text]
    if isinstance(value, bool):
        raise ValueError(f"must be {_want(kind)}, got {_describe(value)}")
    text = str(value).strip()
    if isinstance(kind, tuple):
        _, low, high = kind
        if not re.fullmatch(r"-?\d+", text):
            raise ValueError(f"must be an integer, got {_describe(value)}")
        number = int(text)
        if (low is not None and number < low) or (high is not None and number > high):
            bounds = f"{low}..{high}" if high is not None else f">= {low}"
            raise ValueError(f"must be in {bounds} (Redis's range), got {number}")
        return str(number)
    if kind == "policy":
        if text.lower() not in POLICIES:
            raise ValueError(f"must be one of {', '.join(POLICIES)}, got {_describe(value)}")
        return text.lower()
    if kind == "events":
        bad = sorted({c for c in text if c not in EVENT_FLAGS})
        if bad:
            raise ValueError(
                f"{_describe(value)} has flags Redis does not know ({''.join(bad)}; "
                f"known: {EVENT_FLAGS})"
            )
        return text
    if kind == "bytes%" and re.fullmatch(r"\d+%", text):
        return text
    match = _SIZE_RE.match(text)
    if match is None:
        raise ValueError(f"must be {_want(kind)}, got {_describe(value)}")
    return str(int(match.group(1)) * _UNITS[(match.group(2) or "").lower()])


def same(name: str, want: str, have: str) -> bool:
    """Whether a node reporting ``have`` (CONFIG GET) runs ``want`` (normalised)."""
    if ALLOWED.get(name) == "events":
        return _event_flags(want) == _event_flags(have)
    try:
        return normalise(name, have) == want
    except (ValueError, KeyError):
        return have == want


def parse_block(value: object, path: str, problem: Problem) -> RedisSettings | None:
    """A ``redis:`` block (a mapping of Redis config names to scalars), normalised;
    None (with one `problem` per bad key) if any key or value is refused."""
    if not isinstance(value, Mapping):
        problem(path, f"must be a mapping of Redis config names to values, got "
                      f"{_describe(value)}")  # fmt: skip
        return None
    out: list[tuple[str, str]] = []
    ok = True
    for key, raw in value.items():
        name = str(key).lower() if isinstance(key, str) else None
        if name is None:
            problem(path, f"key {_describe(key)} is not a Redis config name")
            ok = False
            continue
        if name in dict(out):
            problem(f"{path}.{key}", f"{name} is set twice in this block")
            ok = False
            continue
        why = refusal(name)
        if why is not None:
            problem(f"{path}.{key}", why)
            ok = False
            continue
        try:
            out.append((name, normalise(name, raw)))
        except ValueError as exc:
            problem(f"{path}.{key}", str(exc))
            ok = False
    return tuple(out) if ok else None


def merged(top: RedisSettings, shard: RedisSettings) -> dict[str, str]:
    """The settings of a shard's nodes: the top block's, overridden key by key by the shard's."""
    return {**dict(top), **dict(shard)}


class _Shard(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def redis(self) -> RedisSettings: ...


class _Config(Protocol):
    """What `settings_for` reads of a `slotwarden.cluster.config.ClusterConfig`."""

    @property
    def redis(self) -> RedisSettings: ...
    @property
    def shards(self) -> Iterable[_Shard]: ...


def settings_for(config: _Config, shard_name: str) -> dict[str, str]:
    """What every node of shard ``shard_name`` runs with (a `ClusterConfig`; a shard the
    file no longer lists, a draining migration source, gets the top block only)."""
    for shard in config.shards:
        if shard.name == shard_name:
            return merged(config.redis, shard.redis)
    return dict(config.redis)


def server_args(settings: Mapping[str, str]) -> list[str]:
    """redis-server command-line arguments: ``--maxmemory 104857600 ...``."""
    out: list[str] = []
    for name, value in settings.items():
        out += [f"--{name}", value]
    return out


def _event_flags(text: str) -> frozenset[str]:
    flags = set(text.replace("A", EVENTS_ALL))
    if set(EVENTS_ALL) <= flags:
        # Redis 7.0 reports "A" for all of these and then drops "n" from its answer
        # (keyspaceEventsFlagsToString), though the flag is set: not a difference.
        flags.add("n")
    return frozenset(flags)


def _want(kind: Kind) -> str:
    if kind == "bytes":
        return "a size like 100mb, 1gb or 1048576"
    if kind == "bytes%":
        return "a size like 100mb or a percentage like 10%"
    if kind == "bool":
        return "yes or no"
    if kind == "policy":
        return f"one of {', '.join(POLICIES)}"
    if kind == "events":
        return f"a string of notify-keyspace-events flags ({EVENT_FLAGS})"
    return "an integer"


def _describe(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
