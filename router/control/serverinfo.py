"""The router's own facts for INFO (router.decide.info): its process, clients, counters, CPU.

`ServerInfo.facts` is called once per INFO request (the client connection's
``info_head`` port); it reads the client registry, the metrics counters
(`RouterStats`: replies per command and outcome, bytes in and out) and the
process (getrusage), and keeps the previous sample to give the
``instantaneous_*`` rates, so nothing is added to the request path.

CONFIG RESETSTAT (router.control.config_set calls `ServerInfo.resetstat`)
resets what INFO reports as Redis does (commandstats, errorstats, the command,
connection and byte totals) by taking a baseline that INFO subtracts from
then on; the counters themselves (Prometheus, /metrics) stay monotonic.
"""

from __future__ import annotations

import os
import platform
import resource
import secrets
import struct
import sys
import time
from collections.abc import Callable

from router.control.clients import Clients
from router.control.metrics import (
    CROSSSLOT,
    ERROR,
    INVALID,
    OK,
    REJECTED,
    TIMEOUT,
    UNAVAILABLE,
    UNSUPPORTED,
    RouterStats,
)
from router.control.running import RunningConfig
from router.decide.builtins import COMPAT_REDIS_VERSION
from router.decide.info import RouterFacts
from slotwarden import __version__

# Outcomes (router.control.metrics) counted as Redis counts them per command.
_REJECTED = (INVALID, CROSSSLOT, REJECTED, UNSUPPORTED)  # refused before running
_FAILED = (ERROR, UNAVAILABLE, TIMEOUT)  # ran (was sent) and got an error
# The router's own error replies by prefix (the shards count the errors they return).
_OWN_ERRORS = {INVALID: "ERR", REJECTED: "ERR", UNSUPPORTED: "ERR", CROSSSLOT: "CROSSSLOT",
               UNAVAILABLE: "CLUSTERDOWN", TIMEOUT: "CLUSTERDOWN"}  # fmt: skip


def _multiplexing_api() -> str:
    import selectors

    name = selectors.DefaultSelector.__name__  # EpollSelector, KqueueSelector ...
    return name.removesuffix("Selector").lower()


class ServerInfo:
    def __init__(
        self,
        running: RunningConfig,
        clients: Clients,
        stats: RouterStats,
        port: Callable[[], int],
        router_section: Callable[[], dict[str, object]],
    ) -> None:
        self.running = running
        self.clients = clients
        self.stats = stats
        self.port = port
        self.router_section = router_section
        # CLIENT TRACKING's counts (router.wire.tracking.Tracker.info), set by router.app
        self.tracking: Callable[[], dict[str, int]] = lambda: {}
        self.started = time.time()
        self.run_id = secrets.token_hex(20)
        self.replid = secrets.token_hex(20)
        uname = platform.uname()
        self.os = f"{uname.system} {uname.release} {uname.machine}"
        self.multiplexing = _multiplexing_api()
        # the previous sample (monotonic time, commands, bytes in, bytes out) and the rates
        self._sample: tuple[float, int, int, int] = (time.monotonic(), 0, 0, 0)
        self._rates: tuple[int, float, float] = (0, 0.0, 0.0)
        # CONFIG RESETSTAT's baseline: the command rows, then (connections received,
        # connections rejected, bytes in, bytes out) at the time
        self._base_rows: dict[str, list[int]] = {}
        self._base: tuple[int, int, int, int] = (0, 0, 0, 0)

    def resetstat(self) -> None:
        """CONFIG RESETSTAT: INFO's counters start again from zero (a baseline)."""
        self._base_rows = {name: list(row) for name, row in list(self.stats.commands.items())}
        self._base = (
            self.clients.total,
            self.clients.rejected,
            self.stats.bytes_in,
            self.stats.bytes_out,
        )
        self._sample = (time.monotonic(), 0, 0, 0)

    def connections(self) -> tuple[int, int]:
        """Connections received and rejected since start or the last CONFIG RESETSTAT (the
        stats section and the ``# Router`` section say the same: a client that flattens
        INFO, as redis-py does, reads one value)."""
        return self.clients.total - self._base[0], self.clients.rejected - self._base[1]

    def _bytes(self) -> tuple[int, int]:
        """Bytes in and out since start or the last CONFIG RESETSTAT."""
        return self.stats.bytes_in - self._base[2], self.stats.bytes_out - self._base[3]

    def _commands(self) -> tuple[dict[str, tuple[int, int, int]], dict[str, int], int]:
        """Per command (calls, rejected_calls, failed_calls), own errors by prefix, total."""
        per: dict[str, tuple[int, int, int]] = {}
        errors: dict[str, int] = {}
        total = 0
        base = self._base_rows
        for name, now in list(self.stats.commands.items()):
            then = base.get(name)
            row = now if then is None else [n - t for n, t in zip(now, then, strict=True)]
            if then is not None and not any(row):
                continue  # nothing since CONFIG RESETSTAT: not listed, as in Redis
            rejected = sum(row[i] for i in _REJECTED)
            failed = sum(row[i] for i in _FAILED)
            calls = row[OK] + failed
            if name != "unknown":  # Redis lists known commands only (errorstats: below)
                per[name] = (calls, rejected, failed)
            total += calls
            for outcome, prefix in _OWN_ERRORS.items():
                if row[outcome]:
                    errors[prefix] = errors.get(prefix, 0) + row[outcome]
        return per, errors, total

    def _rate(self, total: int) -> tuple[int, float, float]:
        now = time.monotonic()
        t0, c0, i0, o0 = self._sample
        if now - t0 >= 0.1:
            dt = now - t0
            bytes_in, bytes_out = self._bytes()
            self._rates = (
                round((total - c0) / dt),
                (bytes_in - i0) / dt / 1024,
                (bytes_out - o0) / dt / 1024,
            )
            self._sample = (now, total, bytes_in, bytes_out)
        return self._rates

    def facts(self) -> RouterFacts:
        config = self.running.config
        router = config.router
        uptime = int(time.time() - self.started)
        sessions = self.clients.sessions()
        per, errors, total = self._commands()
        ops, kin, kout = self._rate(total)
        bytes_in, bytes_out = self._bytes()
        received, rejected = self.connections()
        received, rejected = self.connections()
        period = min(0.1, router.command_timeout_ms / 4000)  # the timeout sweep's period
        hz = max(1, round(1 / period)) if period > 0 else 10
        me = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        thread = resource.getrusage(getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF))
        return RouterFacts(
            server={
                "redis_version": COMPAT_REDIS_VERSION,
                "redis_git_sha1": "00000000",
                "redis_git_dirty": 0,
                "redis_build_id": "0",
                "redis_mode": "standalone",
                "os": self.os,
                "arch_bits": struct.calcsize("P") * 8,
                "monotonic_clock": "POSIX clock_gettime",
                "multiplexing_api": self.multiplexing,
                "process_id": os.getpid(),
                "process_supervised": "no",
                "run_id": self.run_id,
                "tcp_port": self.port(),
                "server_time_usec": time.time_ns() // 1000,
                "uptime_in_seconds": uptime,
                "uptime_in_days": uptime // 86400,
                "hz": hz,
                "configured_hz": hz,
                "executable": os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else "",
                "config_file": os.path.abspath(config.path) if config.path else "",
                "io_threads_active": 0,
                "slotwarden_version": __version__,
            },
            clients={
                "connected_clients": len(sessions),
                "cluster_connections": 0,
                "maxclients": router.max_clients,
                "blocked_clients": sum(1 for s in sessions if "b" in s.flags),
                "tracking_clients": 0,
            }
            | _only(self.tracking(), ("tracking_clients",)),
            stats={
                "total_connections_received": received,
                "total_commands_processed": total,
                "instantaneous_ops_per_sec": ops,
                "total_net_input_bytes": bytes_in,
                "total_net_output_bytes": bytes_out,
                "total_net_repl_input_bytes": 0,
                "total_net_repl_output_bytes": 0,
                "instantaneous_input_kbps": f"{kin:.2f}",
                "instantaneous_output_kbps": f"{kout:.2f}",
                "instantaneous_input_repl_kbps": "0.00",
                "instantaneous_output_repl_kbps": "0.00",
                "rejected_connections": rejected,
                "sync_full": 0,
                "sync_partial_ok": 0,
                "sync_partial_err": 0,
                "migrate_cached_sockets": 0,
                "slave_expires_tracked_keys": 0,
                "tracking_total_keys": 0,
                "tracking_total_items": 0,
                "tracking_total_prefixes": 0,
                "io_threaded_reads_processed": 0,
                "io_threaded_writes_processed": 0,
            }
            | _only(self.tracking(), _TRACKING_STATS),
            replication={
                "role": "master",
                "connected_slaves": 0,
                "master_failover_state": "no-failover",
                "master_replid": self.replid,
                "master_replid2": "0" * 40,
                "master_repl_offset": 0,
                "second_repl_offset": -1,
                "repl_backlog_active": 0,
                "repl_backlog_size": 0,
                "repl_backlog_first_byte_offset": 0,
                "repl_backlog_histlen": 0,
            },
            cpu={
                "used_cpu_sys": f"{me.ru_stime:.6f}",
                "used_cpu_user": f"{me.ru_utime:.6f}",
                "used_cpu_sys_children": f"{children.ru_stime:.6f}",
                "used_cpu_user_children": f"{children.ru_utime:.6f}",
                "used_cpu_sys_main_thread": f"{thread.ru_stime:.6f}",
                "used_cpu_user_main_thread": f"{thread.ru_utime:.6f}",
            },
            commands=per,
            errors=errors,
            router=self.router_section(),
        )


_TRACKING_STATS = ("tracking_total_keys", "tracking_total_items", "tracking_total_prefixes")


def _only(values: dict[str, int], names: tuple[str, ...]) -> dict[str, int]:
    """The fields ``names`` of ``values`` (the tracker's counts, this router's own)."""
    return {n: values[n] for n in names if n in values}
