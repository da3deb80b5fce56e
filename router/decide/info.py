"""INFO as a standalone Redis 7.0 master would answer it, built from the router's own facts
and every master's INFO.

Pure, no I/O. The router is one standalone master to its clients: sections
about its clients, connections, commands, CPU and replication are the
router's own (`RouterFacts`, gathered by router.control.serverinfo); sections
about the data (memory, persistence, keyspace, the data-side stats) are
every master's, merged (`merge_masters`): sizes and counters summed, ``*_human``
and ratios recomputed from the sums, flags the worst shard's, settings the
masters' when they agree (else ``mixed``). ``redis_version`` is the lowest
version among the masters.

Section arguments as Redis 7.0's (`select`): none or ``default``, ``all``,
``everything``, or section names (case-insensitive, several allowed); an
unknown section selects nothing. `plan` answers locally when no selected
section needs the masters (``INFO replication``, ``INFO clients``), else it
names the one request sent to every master (`REQUEST`, the sections the
router's backend ACL user may read: router.commands.acl.INFO_SENT) and the
merger.

Fields a real 7.0 server has and the router leaves out, because it cannot
know them truthfully: server ``atomicvar_api``, ``gcc_version``,
``lru_clock``; clients ``client_recent_max_input_buffer``,
``client_recent_max_output_buffer``, ``clients_in_timeout_table``; stats
``total_reads_processed``, ``total_writes_processed``,
``reply_buffer_shrinks``, ``reply_buffer_expands``. ``# Latencystats`` is
empty (as a Redis's with ``latency-tracking no``) and ``cmdstat_*`` ``usec``
is 0: the router times requests by routing shape, in /metrics, not per command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import hiredis

from router.commands.acl import INFO_SENT
from slotwarden.resp.encode import encode_bulk, encode_command, error_reply

Merger = Callable[[list[bytes]], bytes]

# Redis 7.0's section order; "router" is the router's own, last.
ORDER = (
    "server", "clients", "memory", "persistence", "stats", "replication", "cpu",
    "modules", "commandstats", "errorstats", "latencystats", "cluster", "keyspace", "router",
)  # fmt: skip
DEFAULT = frozenset(
    {"server", "clients", "memory", "persistence", "stats", "replication", "cpu",
     "modules", "errorstats", "cluster", "keyspace", "router"}
)  # fmt: skip
ALL = frozenset(ORDER)
# Sections built (at least in part) from the masters' INFO.
FROM_MASTERS = frozenset({"server", "memory", "persistence", "stats", "errorstats", "keyspace"})
# The one INFO the router sends to a master: the sections its backend ACL user may read.
REQUEST = encode_command([b"INFO", *INFO_SENT])


@dataclass(frozen=True, slots=True)
class RouterFacts:
    """What the router knows of itself when INFO is asked (router.control.serverinfo)."""

    server: dict[str, object]  # process_id, run_id, tcp_port, uptime, executable ...
    clients: dict[str, object]  # connected_clients, blocked_clients, maxclients ...
    stats: dict[str, object]  # total_commands_processed, instantaneous_ops_per_sec ...
    replication: dict[str, object]  # role:master, master_replid ...
    cpu: dict[str, object]  # used_cpu_sys ...
    commands: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # calls, rej, fail
    errors: dict[str, int] = field(default_factory=dict)  # the router's own errors, by prefix
    router: dict[str, object] = field(default_factory=dict)  # the "# Router" section


def select(args: Sequence[bytes]) -> frozenset[str]:
    """The sections ``INFO args...`` shows (``args``: the arguments after INFO)."""
    if not args:
        return DEFAULT
    chosen: set[str] = set()
    for raw in args:
        name = raw.decode("utf-8", "replace").lower()
        if name == "default":
            chosen |= DEFAULT
        elif name in ("all", "everything"):
            chosen |= ALL
        elif name in ALL:
            chosen.add(name)
    return frozenset(chosen)


def plan(
    args: Sequence[bytes], facts: RouterFacts, shard_names: Sequence[str]
) -> bytes | tuple[bytes, Merger]:
    """INFO ``args``: the reply now (nothing needed from the masters), or the request to
    send to every master and the merger of their replies."""
    chosen = select(args)
    if not chosen & FROM_MASTERS:
        return encode_bulk(render(facts, chosen, None).encode())
    return REQUEST, merger(facts, chosen, shard_names)


def merger(facts: RouterFacts, chosen: frozenset[str], shard_names: Sequence[str]) -> Merger:
    def merge(parts: list[bytes]) -> bytes:
        texts: list[bytes] = []
        for i, raw in enumerate(parts):
            if raw[:1] == b"-":
                return raw
            reader = hiredis.Reader()
            reader.feed(raw)
            value = reader.gets()
            if isinstance(value, str):  # RESP3 verbatim string
                value = value.encode()
            if not isinstance(value, bytes):
                name = shard_names[i] if i < len(shard_names) else str(i)
                return error_reply(
                    f"ERR router expected an INFO bulk string from shard {name}, got {raw[:60]!r}"
                )
            texts.append(value)
        merged = merge_masters([parse(t) for t in texts])
        return encode_bulk(render(facts, chosen, merged).encode())

    return merge


# ------------------------------------------------------------------ parsing


Sections = dict[str, dict[str, str]]


def parse(text: bytes) -> Sections:
    """``# Memory`` / ``used_memory:123`` lines -> {"memory": {"used_memory": "123"}}."""
    out: Sections = {}
    current: dict[str, str] = out.setdefault("", {})
    for line in text.decode("utf-8", "replace").splitlines():
        if line.startswith("#"):
            current = out.setdefault(line[1:].strip().lower(), {})
        elif ":" in line:
            key, _, value = line.partition(":")
            current[key] = value
    return out


def _num(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _int(value: str | None) -> int | None:
    if value is None or not value.lstrip("-").isdigit():
        return None
    return int(value)


def human(n: float) -> str:
    """Redis's bytesToHuman: 1.50K, 2.00M ..."""
    for unit, size in (("P", 1 << 50), ("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    if n >= 1024:
        return f"{n / 1024:.2f}K"
    return f"{int(n)}B"


def version_key(v: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in v.split("."))


def _same(values: list[str]) -> str:
    """A setting every master shares, or ``mixed`` when they differ."""
    return values[0] if all(v == values[0] for v in values) else "mixed"


# How a field of the masters' sections is merged (anything numeric not named: summed).
_MAX = frozenset(
    {
        "loading", "async_loading", "current_cow_peak", "current_cow_size",
        "current_cow_size_age", "current_fork_perc", "rdb_bgsave_in_progress",
        "rdb_current_bgsave_time_sec", "rdb_last_bgsave_time_sec", "aof_rewrite_in_progress",
        "aof_rewrite_scheduled", "aof_last_rewrite_time_sec", "aof_current_rewrite_time_sec",
        "module_fork_in_progress", "active_defrag_running", "latest_fork_usec",
        "current_active_defrag_time", "current_eviction_exceeded_time", "total_system_memory",
        "number_of_cached_scripts", "number_of_functions", "number_of_libraries",
        "pubsub_patterns", "expired_stale_perc", "loading_eta_seconds",
        "loading_loaded_perc",
    }
)  # fmt: skip
_MIN = frozenset({"rdb_last_save_time", "aof_enabled"})
# status fields: "ok" only when every master says ok
_STATUS = frozenset(
    {"rdb_last_bgsave_status", "aof_last_bgrewrite_status", "aof_last_write_status"}
)
# What the data-side sections take from the masters (the rest of each is the router's).
_TAKEN = ("memory", "persistence", "stats", "errorstats", "keyspace")
# The replication part of the masters' stats: the router has no replicas of its own.
_NOT_MINE = frozenset(
    {
        "sync_full", "sync_partial_ok", "sync_partial_err", "total_net_repl_input_bytes",
        "total_net_repl_output_bytes", "instantaneous_input_repl_kbps",
        "instantaneous_output_repl_kbps", "slave_expires_tracked_keys", "migrate_cached_sockets",
        "tracking_total_keys", "tracking_total_items", "tracking_total_prefixes",
        "total_reads_processed", "total_writes_processed", "io_threaded_reads_processed",
        "io_threaded_writes_processed", "reply_buffer_shrinks", "reply_buffer_expands",
        "total_connections_received", "total_commands_processed", "instantaneous_ops_per_sec",
        "total_net_input_bytes", "total_net_output_bytes", "instantaneous_input_kbps",
        "instantaneous_output_kbps", "rejected_connections", "total_error_replies",
    }
)  # fmt: skip


def _merge_field(name: str, values: list[str]) -> str:
    if name in _STATUS:
        return "ok" if all(v == "ok" for v in values) else "err"
    ints = [_int(v) for v in values]
    if all(i is not None for i in ints):
        nums = [i for i in ints if i is not None]
        if name in _MAX:
            return str(max(nums))
        if name in _MIN:
            return str(min(nums))
        return str(sum(nums))
    floats = [_num(v) for v in values]
    if all(f is not None for f in floats):
        fl = [f for f in floats if f is not None]
        if name in _MIN:
            return f"{min(fl):.2f}"
        return f"{max(fl):.2f}"  # a ratio or percentage: the worst shard's, unless recomputed
    return _same(values)


def merge_masters(masters: list[Sections]) -> Sections:
    """Every master's sections merged into one (see the module docstring)."""
    out: Sections = {}
    for section in _TAKEN:
        names: dict[str, None] = {}
        for m in masters:
            names.update(dict.fromkeys(m.get(section, {})))
        merged: dict[str, str] = {}
        if section == "keyspace":
            out[section] = _merge_keyspace([m.get(section, {}) for m in masters])
            continue
        if section == "errorstats":
            counts: dict[str, int] = {}
            for m in masters:
                for key, value in m.get(section, {}).items():
                    n = _int(value.partition("count=")[2].split(",")[0])
                    counts[key] = counts.get(key, 0) + (n or 0)
            out[section] = {k: f"count={v}" for k, v in counts.items()}
            continue
        for name in names:
            if section == "stats" and name in _NOT_MINE:
                continue
            values = [m[section][name] for m in masters if name in m.get(section, {})]
            merged[name] = _merge_field(name, values)
        out[section] = merged
    versions = [m.get("server", {}).get("redis_version", "") for m in masters]
    versions = [v for v in versions if v]
    out["server"] = {"redis_version": min(versions, key=version_key)} if versions else {}
    mem = out.get("memory", {})
    if mem:
        _recompute_memory(mem, masters)
    return out


def _recompute_memory(mem: dict[str, str], masters: list[Sections]) -> None:
    """``*_human`` from the summed bytes; ratios from the summed parts; maxmemory 0
    (no limit) if any master has none."""
    maxes = [_int(m.get("memory", {}).get("maxmemory")) for m in masters]
    if any(v == 0 for v in maxes):
        mem["maxmemory"] = "0"
    for key in list(mem):
        if key.endswith("_human") and _num(mem.get(key[: -len("_human")])) is not None:
            mem[key] = human(float(mem[key[: -len("_human")]]))

    def n(key: str) -> float:
        return _num(mem.get(key)) or 0.0

    def ratio(key: str, top: float, bottom: float, pct: bool = False) -> None:
        if key in mem:
            value = (top * (100 if pct else 1) / bottom) if bottom else 0.0
            mem[key] = f"{value:.2f}%" if pct else f"{value:.2f}"

    ratio("used_memory_peak_perc", n("used_memory"), n("used_memory_peak"), pct=True)
    net = n("used_memory") - n("used_memory_startup")
    ratio("used_memory_dataset_perc", n("used_memory_dataset"), net, pct=True)
    ratio("allocator_frag_ratio", n("allocator_active"), n("allocator_allocated"))
    ratio("allocator_rss_ratio", n("allocator_resident"), n("allocator_active"))
    ratio("rss_overhead_ratio", n("used_memory_rss"), n("allocator_resident"))
    ratio("mem_fragmentation_ratio", n("used_memory_rss"), n("used_memory"))
    if "maxmemory_policy" in mem:
        policies = [m.get("memory", {}).get("maxmemory_policy", "") for m in masters]
        mem["maxmemory_policy"] = _same(policies)


def _merge_keyspace(parts: list[dict[str, str]]) -> dict[str, str]:
    """``db0:keys=1,expires=0,avg_ttl=0`` summed (avg_ttl weighted by expires)."""
    dbs: dict[str, list[int]] = {}
    for part in parts:
        for db, value in part.items():
            fields = dict(f.partition("=")[::2] for f in value.split(","))
            acc = dbs.setdefault(db, [0, 0, 0])
            keys = _int(fields.get("keys")) or 0
            expires = _int(fields.get("expires")) or 0
            acc[0] += keys
            acc[1] += expires
            acc[2] += (_int(fields.get("avg_ttl")) or 0) * expires
    out: dict[str, str] = {}
    for db in sorted(dbs, key=lambda name: int(name[2:]) if name[2:].isdigit() else 0):
        keys, expires, weight = dbs[db]
        out[db] = f"keys={keys},expires={expires},avg_ttl={weight // expires if expires else 0}"
    return out


# ------------------------------------------------------------------ rendering


def _lines(fields: Iterable[tuple[str, object]]) -> list[str]:
    return [f"{k}:{v}" for k, v in fields]


def _errors(facts: RouterFacts, merged: Sections | None) -> dict[str, int]:
    """Error replies by prefix: the masters' (the errors they returned through the router)
    plus the router's own refusals."""
    counts: dict[str, int] = {}
    for key, value in (merged or {}).get("errorstats", {}).items():
        counts[key.removeprefix("errorstat_")] = _int(value.removeprefix("count=")) or 0
    for prefix, n in facts.errors.items():
        counts[prefix] = counts.get(prefix, 0) + n
    return counts


def render(facts: RouterFacts, chosen: frozenset[str], merged: Sections | None) -> str:
    """The INFO text of the ``chosen`` sections (``merged``: the masters', when needed)."""
    m = merged or {}
    blocks: list[list[str]] = []
    for section in ORDER:
        if section not in chosen:
            continue
        title = {"cpu": "CPU"}.get(section, section.capitalize())
        lines = [f"# {title}"]
        if section == "server":
            server = dict(facts.server)
            version = m.get("server", {}).get("redis_version")
            if version:
                server["redis_version"] = version
            lines += _lines(server.items())
        elif section == "clients":
            lines += _lines(facts.clients.items())
        elif section in ("memory", "persistence", "keyspace"):
            lines += _lines(m.get(section, {}).items())
        elif section == "stats":
            stats: dict[str, object] = dict(facts.stats)
            stats.update(m.get("stats", {}))
            stats["total_error_replies"] = sum(_errors(facts, merged).values())
            lines += _lines(stats.items())
        elif section == "replication":
            lines += _lines(facts.replication.items())
        elif section == "cpu":
            lines += _lines(facts.cpu.items())
        elif section == "commandstats":
            for name, (calls, rejected, failed) in sorted(facts.commands.items()):
                lines.append(
                    f"cmdstat_{name}:calls={calls},usec=0,usec_per_call=0.00,"
                    f"rejected_calls={rejected},failed_calls={failed}"
                )
        elif section == "errorstats":
            for prefix, n in sorted(_errors(facts, merged).items()):
                lines.append(f"errorstat_{prefix}:count={n}")
        elif section == "cluster":
            lines.append("cluster_enabled:0")
        elif section == "router":
            lines += _lines(facts.router.items())
        blocks.append(lines)
    return "".join("\r\n".join(b) + "\r\n\r\n" for b in blocks)[:-2] if blocks else ""
