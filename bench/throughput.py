#!/usr/bin/env python3
"""Throughput of the slotwarden router next to twemproxy and one bare shard, by redis-benchmark.

Owns one run: it starts 3 redis-server shards, twemproxy (nutcracker) over them and the
slotwarden router over them, all on free ports in one temp dir; probes each peer for
correctness with redis-py; runs redis-benchmark against every peer, interleaved per test
(direct, twemproxy, router; the order changes from one repetition to the next), optionally
repeated (median); prints one table and the issue's PASS/MISS targets; optionally writes the
same to JSON.

Two measurements per redis-benchmark run:
- throughput (rps, from redis-benchmark's CSV). On a 2-core box it depends on everything else
  that runs there: redis-benchmark itself, the shards, other users' load. It is noisy run to run.
- CPU time per request of the peer's own process: utime+stime from /proc/<pid>/stat (fields 14
  and 15, in clock ticks) read right before and right after redis-benchmark, divided by the
  requests, in microseconds; and cores = CPU seconds / wall seconds of the run. For twemproxy
  and the router that is what the proxy's own code costs per request, independent of how fast
  redis-benchmark or anything else on the box happens to run, so it varies less than rps and
  shows a change in the router's efficiency that rps hides in noise. It is not immune to a busy
  box (a starved proxy reads more requests per wakeup, which is cheaper per request): use
  --repeat, the median is shown. For direct it is the one redis-server shard's cost. The
  resolution is one clock tick (10 ms at the usual 100 Hz), so short runs (--quick) give
  coarse numbers, and a cheap peer can show 0.0 there. Without /proc (not Linux) the CPU
  columns show n/a.

Invariants:
- A number in the table comes only from a peer that passed the correctness probe and from
  redis-benchmark runs that exited 0, printed nothing but known-benign warnings on stderr, and
  printed a CSV row for the test. Anything else is that peer's error, never throughput.
- Every process started here is stopped and the temp dir removed on any exit (try/finally,
  atexit, SIGTERM).
- A peer that is missing (nutcracker not installed, the router package not installed) is
  reported as "not available: <reason>" and is not a failure; a peer that exists but fails to
  start, fails the probe or errors under load is a failure (exit status 1, after the full
  report).

With --workers N (comma-separated counts) a router with router.workers: N is a peer of its
own, "router-wN" (its CPU: the supervisor and every worker). With --pin the proxies run on
the first usable cores and the shards and redis-benchmark on the last one (sched_setaffinity;
the report states every process's cores, the core budget of each row).

Usage: python bench/throughput.py [--requests N] [--clients 50] [--repeat R] [--quick]
                                  [--workers N[,M]] [--pin] [--json FILE]
"""

from __future__ import annotations

import argparse
import atexit
import csv
import importlib.metadata
import importlib.util
import io
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import redis
import yaml

from slotwarden.cluster.slots import SLOT_COUNT, key_hash_slot
from slotwarden.procs import RedisFarm, RedisProc, free_port

REPO = Path(__file__).resolve().parent.parent

SHARDS = 3
KEYSPACE = 100_000  # redis-benchmark -r: keys key:000000000000 .. key:000000099999
PEERS = ("direct", "twemproxy", "router")
TARGETS = {1: 0.7, 16: 0.5}  # the issue: router/twemproxy at -P 1 and at -P 16
# redis-benchmark starts by sending CONFIG GET save / appendonly on a side connection, only to
# print them; proxies without CONFIG make that fail, and redis-benchmark says so and goes on.
BENIGN_STDERR = ("WARNING: Could not fetch server CONFIG",)
START_TIMEOUT = 20.0  # seconds for a proxy to listen; the router is a Python process
MGET_ARGS = ("MGET", *["key:__rand_int__"] * 10)  # each __rand_int__ is drawn separately
TIMES = "\u00d7"  # multiplication sign for the "router CPU" ratio column (RUF001 on a literal)


@dataclass(frozen=True)
class Case:
    label: str  # table row
    pipeline: int
    scale: float  # requests = scale * --requests
    args: tuple[str, ...]  # redis-benchmark test selection or custom command
    title: str  # the "test" column of redis-benchmark's CSV
    stat: str  # the shards' INFO commandstats entry the test drives


CASES = (
    Case("SET -P 1", 1, 1, ("-t", "set"), "SET", "set"),
    Case("GET -P 1", 1, 1, ("-t", "get"), "GET", "get"),
    Case("SET -P 16", 16, 4, ("-t", "set"), "SET", "set"),
    Case("GET -P 16", 16, 4, ("-t", "get"), "GET", "get"),
    Case("MSET 10 keys -P 1", 1, 0.25, ("-t", "mset"), "MSET (10 keys)", "mset"),
    Case("MGET 10 keys -P 1", 1, 0.25, MGET_ARGS, " ".join(MGET_ARGS), "mget"),
)


class PeerError(Exception):
    """A peer started but is unusable: it did not listen, died, or answered wrongly."""


@dataclass
class Peer:
    name: str
    host: str = "127.0.0.1"
    port: int = 0
    what: str = ""
    unavailable: str | None = None  # not installed / not written yet: reported, not a failure
    failed: str | None = None  # exists but broken: reported, and the exit status is 1
    notes: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    cpu_pid: int | None = None  # whose CPU time is measured, when it is not `proc` (direct)
    tree: bool = False  # CPU of the process and its children (a router with workers)
    cores: str = "unpinned"  # the cores it may run on (--pin), for the report

    @property
    def usable(self) -> bool:
        return self.unavailable is None and self.failed is None

    @property
    def pid(self) -> int | None:
        """The process serving this peer, for CPU time: the proxy, or the direct shard."""
        if self.cpu_pid is not None:
            return self.cpu_pid
        return self.proc.pid if self.proc is not None else None


@dataclass
class Run:
    rps: float | None
    error: str | None
    seconds: float
    shard_calls: list[int]  # per shard, calls of the test's command during this run
    cpu_us: float | None = None  # the peer process's utime+stime per request, microseconds
    cpu_seconds: float | None = None  # the peer process's utime+stime during the run
    cores: float | None = None  # cpu_seconds / seconds (wall time of redis-benchmark)


class Harness:
    """Owns the temp dir and every process; `close()` is idempotent."""

    def __init__(self) -> None:
        self.farm = RedisFarm()
        self.root = Path(self.farm.root)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.closed = False
        self.proxy_cores: set[int] = set()  # --pin: twemproxy and the routers (empty: any)
        self.other_cores: set[int] = set()  # --pin: the shards and redis-benchmark

    def pin(self) -> None:
        """--pin: the proxies on every usable core but the last, the rest on the last."""
        usable = sorted(os.sched_getaffinity(0))
        if len(usable) < 2:
            return  # nothing to pin apart: everything shares the one core
        self.proxy_cores, self.other_cores = set(usable[:-1]), {usable[-1]}

    def launch(self, peer: Peer, cmd: Sequence[str], output: Path, cwd: Path | None = None) -> None:
        """Start `cmd` for `peer` (stdout+stderr to `output`) and wait until it listens.
        With --pin it (and its children) may run only on `self.proxy_cores`."""
        cores = self.proxy_cores
        with output.open("wb") as out:
            peer.proc = subprocess.Popen(
                list(cmd),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,
            )
        if cores:
            peer.cores = cores_text(cores)
        self.procs.append(peer.proc)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            code = peer.proc.poll()
            if code is not None:
                raise PeerError(f"exited with code {code} before listening: {tail(output)}")
            try:
                with socket.create_connection((peer.host, peer.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise PeerError(
                        f"not listening on {peer.host}:{peer.port} after "
                        f"{START_TIMEOUT:.0f}s: {tail(output)}"
                    ) from None
                time.sleep(0.05)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self.farm.close()  # stops the shards and removes the temp dir


def tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no output)"
    return " / ".join(text[-lines:]) or "(no output)"


def client(host: str, port: int) -> redis.Redis:
    """A plain RESP2 client. redis-py 8 opens with HELLO 3 and CLIENT SETINFO by default, which
    twemproxy answers by closing the connection."""
    kw: dict[str, object] = {"socket_timeout": 10, "socket_connect_timeout": 5, "protocol": 2}
    try:
        from redis.driver_info import DriverInfo
    except ImportError:  # redis-py < 8
        kw.update(lib_name=None, lib_version=None)
    else:
        kw["driver_info"] = DriverInfo(name=None, lib_version=None)
    return redis.Redis(host=host, port=port, **kw)


def process_cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of process `pid` (all its threads) in seconds, from /proc/<pid>/stat;
    None when there is no such file (not Linux, process gone) or it cannot be parsed."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after
        # the last ")"; the rest starts with field 3 (state), so fields 14, 15 are [11], [12].
        rest = stat[stat.rindex(b")") + 1 :].split()
        ticks = int(rest[11]) + int(rest[12])
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def tree_cpu_seconds(pid: int | None) -> float | None:
    """`process_cpu_seconds` of `pid` plus those of its children, theirs included (a router's
    supervisor and workers); None as there."""
    own = process_cpu_seconds(pid)
    if own is None or pid is None:
        return own
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return own
    return own + sum(tree_cpu_seconds(int(c)) or 0.0 for c in children)


def pin_threads(pid: int | None, cores: set[int]) -> None:
    """Every thread of `pid` may run only on `cores` (redis-server has background threads)."""
    if pid is None or not cores:
        return
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), cores)


def cores_text(cores: set[int]) -> str:
    return "cores " + ",".join(str(c) for c in sorted(cores))


def slot_ranges(count: int) -> list[tuple[int, int]]:
    """Even split the way redis-cli does it: 0-5460, 5461-10922, 10923-16383 for 3."""
    starts = [round(i * SLOT_COUNT / count) for i in range(count)] + [SLOT_COUNT]
    return [(starts[i], starts[i + 1] - 1) for i in range(count)]


# ---------------------------------------------------------------- peers


def twemproxy_conf(port: int, shards: Sequence[RedisProc]) -> str:
    servers = "\n".join(f"    - {s.addr}:1 shard{i}" for i, s in enumerate(shards))
    return (
        "slotwarden_bench:\n"
        f"  listen: 127.0.0.1:{port}\n"
        "  hash: crc16\n"
        '  hash_tag: "{}"\n'
        "  distribution: modula\n"
        "  redis: true\n"
        "  server_connections: 1\n"
        "  auto_eject_hosts: false\n"
        "  timeout: 5000\n"
        "  preconnect: true\n"
        f"  servers:\n{servers}\n"
    )


def start_twemproxy(h: Harness, shards: Sequence[RedisProc]) -> Peer:
    peer = Peer("twemproxy")
    binary = shutil.which("nutcracker")
    if binary is None:
        peer.unavailable = "nutcracker not found on PATH (apt-get install nutcracker)"
        return peer
    peer.port = free_port()
    peer.what = f"nutcracker {peer.host}:{peer.port} (crc16/modula, 1 conn per shard)"
    conf = h.root / "nutcracker.yml"
    conf.write_text(twemproxy_conf(peer.port, shards))
    cmd = [
        binary,
        "-c",
        str(conf),
        "-s",
        str(free_port()),
        "-a",
        "127.0.0.1",
        "-o",
        str(h.root / "nutcracker.log"),
        "-v",
        "4",
    ]
    try:
        h.launch(peer, cmd, h.root / "nutcracker.out")
    except PeerError as e:
        peer.failed = f"nutcracker {e}; log: {tail(h.root / 'nutcracker.log')}"
    return peer


def start_router(h: Harness, shards: Sequence[RedisProc], workers: int = 1) -> Peer:
    name = "router" if workers == 1 else f"router-w{workers}"
    peer = Peer(name, tree=workers > 1)
    if importlib.util.find_spec("router") is None:
        peer.unavailable = "the router package is not installed (pip install -e .)"
        return peer
    peer.port = free_port()
    admin = free_port()
    peer.what = f"slotwarden router {peer.host}:{peer.port} (admin :{admin})"
    router: dict[str, object] = {
        "listen": f"{peer.host}:{peer.port}",
        "admin": f"{peer.host}:{admin}",
    }
    if workers > 1:
        router["workers"] = workers
        peer.what += f", {workers} workers (CPU: supervisor + workers)"
    cluster = {
        "name": "bench",
        "router": router,
        "shards": [
            {"name": f"shard{i}", "slots": f"{lo}-{hi}", "master": s.addr, "replicas": []}
            for i, (s, (lo, hi)) in enumerate(zip(shards, slot_ranges(len(shards)), strict=True))
        ],
    }
    conf = h.root / f"{name}.yaml"
    conf.write_text(yaml.safe_dump(cluster, sort_keys=False))
    cmd = [sys.executable, "-m", "slotwarden", "router", "--config", str(conf)]
    try:
        h.launch(peer, cmd, h.root / f"{name}.out", cwd=REPO)
        if workers > 1:
            wait_workers(peer, admin, workers)
    except PeerError as e:
        peer.failed = f"`{' '.join(cmd[1:])}` {e}"
    return peer


def wait_workers(peer: Peer, admin: int, workers: int) -> None:
    """Wait until every worker listens (GET /ready), so the kernel spreads over all of them."""
    import urllib.request

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{peer.host}:{admin}/ready", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise PeerError(f"not all {workers} workers ready after {START_TIMEOUT:.0f}s")


def probe(peer: Peer, shards: Sequence[RedisProc], owner: Callable[[bytes], int] | None) -> None:
    """SET/GET/MSET/MGET through `peer`, then find every key on the shards: each must be on
    exactly one shard, a proxy must have used all shards, and the router must have put each key
    on the shard owning its slot. Raises `PeerError`; removes the probe keys."""
    keys = [f"slotwarden-probe:{i}" for i in range(30)]
    first = [f"first-{i}".encode() for i in range(30)]
    second = [f"second-{i}".encode() for i in range(30)]
    c = client(peer.host, peer.port)
    try:
        for k, v in zip(keys, first, strict=True):
            if c.set(k, v) is not True:
                raise PeerError(f"SET {k} did not reply OK")
        if (got := [c.get(k) for k in keys]) != first:
            raise PeerError(f"GET returned {got[:3]}... after SET, want {first[:3]}...")
        if (got := c.mget([*keys, "slotwarden-probe:missing"])) != [*first, None]:
            raise PeerError(f"MGET across shards returned {got[:3]}..., want {first[:3]}...")
        if c.mset(dict(zip(keys, second, strict=True))) is not True:
            raise PeerError("MSET across shards did not reply OK")
        if (got := c.mget(keys)) != second:
            raise PeerError(f"MGET after MSET returned {got[:3]}..., want {second[:3]}...")
    except redis.RedisError as e:
        raise PeerError(f"probe failed: {type(e).__name__}: {e}") from e
    finally:
        c.close()
    holders: dict[str, list[int]] = {k: [] for k in keys}
    for index, shard in enumerate(shards):
        with client(shard.host, shard.port) as sc:
            pipe = sc.pipeline(transaction=False)
            for k in keys:
                pipe.exists(k)
            for k, there in zip(keys, pipe.execute(), strict=True):
                if there:
                    holders[k].append(index)
            sc.delete(*keys)
    misplaced = [f"{k} on shards {v}" for k, v in holders.items() if len(v) != 1]
    if misplaced:
        raise PeerError(f"keys not on exactly one shard: {', '.join(misplaced[:3])}")
    used = {v[0] for v in holders.values()}
    if len(used) != len(shards):
        raise PeerError(f"30 keys went to only {len(used)} of {len(shards)} shards")
    if owner is not None:
        wrong = [
            f"{k} on shard{v[0]}, slot owner is shard{owner(k.encode())}"
            for k, v in holders.items()
            if v[0] != owner(k.encode())
        ]
        if wrong:
            raise PeerError(f"misrouted: {', '.join(wrong[:3])}")


# ---------------------------------------------------------------- benchmark


def command_calls(shard_clients: Sequence[redis.Redis], stat: str) -> list[int]:
    return [
        int(c.info("commandstats").get(f"cmdstat_{stat}", {}).get("calls", 0))
        for c in shard_clients
    ]


def run_benchmark(
    peer: Peer,
    case: Case,
    requests: int,
    clients: int,
    timeout: float,
    shard_clients: Sequence[redis.Redis],
    cores: set[int] | None = None,
) -> Run:
    cmd = [
        "redis-benchmark",
        "-h",
        peer.host,
        "-p",
        str(peer.port),
        "-c",
        str(clients),
        "-n",
        str(requests),
        "-r",
        str(KEYSPACE),
        "-P",
        str(case.pipeline),
        "-q",
        "--csv",
        *case.args,
    ]
    before = command_calls(shard_clients, case.stat)
    cpu_of = tree_cpu_seconds if peer.tree else process_cpu_seconds
    cpu_before = cpu_of(peer.pid)
    started = time.monotonic()
    try:
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,
        )
    except subprocess.TimeoutExpired:
        return Run(None, f"redis-benchmark timed out after {timeout:.0f}s", timeout, [])
    seconds = time.monotonic() - started
    cpu_after = cpu_of(peer.pid)
    calls = [a - b for a, b in zip(command_calls(shard_clients, case.stat), before, strict=True)]
    cpu: dict[str, float] = {}
    if cpu_before is not None and cpu_after is not None:
        used = cpu_after - cpu_before
        cpu = {
            "cpu_us": used / requests * 1e6,
            "cpu_seconds": used,
            "cores": used / seconds if seconds > 0 else 0.0,
        }
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    for line in lines:
        if line in BENIGN_STDERR and line not in peer.notes:
            peer.notes.append(line)
    errors = [line for line in lines if line not in BENIGN_STDERR]
    if done.returncode != 0 or errors:
        why = "; ".join(e[:160] for e in errors[:3]) or "no message"
        return Run(None, f"redis-benchmark exit {done.returncode}: {why}", seconds, calls, **cpu)
    for row in csv.reader(io.StringIO(done.stdout)):
        if len(row) >= 2 and row[0] == case.title:
            try:
                rps = float(row[1])
            except ValueError:
                break
            if rps > 0:
                return Run(rps, None, seconds, calls, **cpu)
            break
    return Run(
        None,
        f"no usable CSV row {case.title!r} in: {done.stdout.strip()[-200:]!r}",
        seconds,
        calls,
        **cpu,
    )


# ---------------------------------------------------------------- report


def version_of(cmd: Sequence[str], pattern: str) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"
    found = re.search(pattern, done.stdout + done.stderr)
    return found.group(1) if found and done.returncode == 0 else "unknown"


def clock_ticks() -> int | None:
    """Clock ticks per second of /proc/<pid>/stat, or None where CPU time is not measured."""
    if process_cpu_seconds(os.getpid()) is None:
        return None
    try:
        return os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError, AttributeError):
        return None


def environment() -> dict[str, object]:
    try:
        uvloop = f"uvloop {importlib.metadata.version('uvloop')} installed"
    except importlib.metadata.PackageNotFoundError:
        uvloop = "uvloop not installed"
    rev = version_of(["git", "-C", str(REPO), "describe", "--always", "--dirty"], r"(\S+)")
    return {
        "cores": os.cpu_count(),
        "usable_cores": (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        ),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "redis_server": version_of(["redis-server", "--version"], r"v=(\S+)"),
        "redis_benchmark": version_of(["redis-benchmark", "--version"], r"redis-benchmark (\S+)"),
        "nutcracker": (
            version_of(["nutcracker", "-V"], r"nutcracker-(\S+)")
            if shutil.which("nutcracker")
            else "not installed"
        ),
        "python": platform.python_version(),
        "uvloop": uvloop,
        "slotwarden": rev,
    }


def rotated(names: Sequence[str], rep: int) -> list[str]:
    """The peers' order in repetition ``rep``: rotated, and reversed every other run, so
    that no peer is always measured first (on a machine just idle) or right after the
    same other one; with 3 peers, 3 runs put each first once and 6 runs make every order."""
    base = list(names) if rep % 2 == 0 else list(reversed(names))
    k = (rep // 2) % len(base) if base else 0
    return [*base[k:], *base[:k]]


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt_rps(cell: dict[str, object]) -> str:
    if cell.get("rps") is not None:
        return f"{cell['rps']:.0f}"
    return "ERROR" if cell.get("error") else "n/a"


def fmt_ratio(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def fmt_cpu(cell: dict[str, object], key: str, digits: int) -> str:
    if cell.get(key) is not None:
        return f"{cell[key]:.{digits}f}"
    return "ERROR" if cell.get("error") else "n/a"


def table(head: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """`head` and `body` as `|`-separated lines: first column left-aligned, the rest right."""
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    out = [" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    out.append("-+-".join("-" * w for w in widths))
    for row in body:
        out.append(
            " | ".join(
                [
                    row[0].ljust(widths[0]),
                    *(x.rjust(w) for x, w in zip(row[1:], widths[1:], strict=True)),
                ]
            )
        )
    return out


def core_budget(h: Harness) -> str:
    if not h.proxy_cores:
        usable = sorted(os.sched_getaffinity(0))
        return f"unpinned: every process may run on {cores_text(set(usable))}"
    return (
        f"pinned (--pin): twemproxy and the routers (supervisor and workers) on "
        f"{cores_text(h.proxy_cores)}; the shards (direct included) and redis-benchmark on "
        f"{cores_text(h.other_cores)}"
    )


def render(report: dict[str, object]) -> str:
    env = report["environment"]
    names = report.get("names", PEERS)
    workers = [n for n in names if n.startswith("router-w")]
    out = [
        f"slotwarden throughput: redis-benchmark -c {report['clients']} -r {KEYSPACE} --csv, "
        f"median of {report['repeat']} run(s) per cell, peers interleaved per test "
        "(order changed per run)",
        f"machine: {env['cores']} cores ({env['usable_cores']} usable), load {env['loadavg']}; "
        f"redis-server {env['redis_server']}, redis-benchmark {env['redis_benchmark']}, "
        f"nutcracker {env['nutcracker']}, python {env['python']}, {env['uvloop']}, "
        f"slotwarden {env['slotwarden']}",
    ]
    for name, p in report["peers"].items():
        if p["unavailable"]:
            out.append(f"{name} not available: {p['unavailable']}")
        elif p["failed"]:
            out.append(f"{name} FAILED: {p['failed']}")
        else:
            out.append(f"{name}: {p['what']} [{p.get('cores', 'unpinned')}]")
    out.append(f"core budget of every row: {report.get('core_budget', 'unpinned')}")
    head = [
        "test",
        "requests",
        *(f"{p} rps" for p in names),
        "router/twemproxy",
        "router/direct",
        *(f"{w}/router" for w in workers),
    ]
    body = [
        [
            r["test"],
            str(r["requests"]),
            *(fmt_rps(r["peers"][p]) for p in names),
            fmt_ratio(r["router/twemproxy"]),
            fmt_ratio(r["router/direct"]),
            *(fmt_ratio(r.get(f"{w}/router")) for w in workers),
        ]
        for r in report["rows"]
    ]
    out.append("")
    out.extend(table(head, body))
    out.append("")
    out.append(
        "proxy CPU per request (process utime+stime / requests; lower is better), "
        "and cores used (CPU s / wall s):"
    )
    head = [
        "test",
        *(f"{p} µs/req" for p in names),
        f"router CPU {TIMES}",
        *(f"{p} cores" for p in names),
    ]
    body = [
        [
            r["test"],
            *(fmt_cpu(r["peers"][p], "cpu_us", 1) for p in names),
            fmt_ratio(r["router/twemproxy cpu"]),
            *(fmt_cpu(r["peers"][p], "cores", 2) for p in names),
        ]
        for r in report["rows"]
    ]
    out.extend(table(head, body))
    out.append(
        f"  router CPU {TIMES} = router µs/req / twemproxy µs/req; direct = the one "
        "redis-server shard (no proxy), for scale."
    )
    if report.get("clk_tck") and report["rows"]:
        tick_ms = 1e3 / report["clk_tck"]
        fine, coarse = (
            tick_ms * 1e3 / f(r["requests"] for r in report["rows"]) for f in (max, min)
        )
        out.append(
            f"  resolution: 1 clock tick = {tick_ms:.0f} ms of CPU per run, i.e. "
            f"{fine:.2g} to {coarse:.2g} µs/req at these request counts "
            "(more --requests for finer numbers)."
        )
    elif not report.get("clk_tck"):
        out.append("  CPU not measured: no /proc/<pid>/stat here (not Linux).")
    out.append("")
    out.append("targets (issue 9): router/twemproxy >= 0.70 at -P 1, >= 0.50 at -P 16")
    for r in report["rows"]:
        out.append(f"  {r['verdict']:<4} {r['test']}: {r['verdict_detail']}")
    out.append("targets (issue 15): router CPU per request <= twemproxy's on every row")
    for r in report["rows"]:
        cpu = r.get("router/twemproxy cpu")
        word = "N/A" if cpu is None else "PASS" if cpu <= 1.0 else "MISS"
        shown = "no CPU figure" if cpu is None else f"router CPU {TIMES} = {cpu:.2f}"
        out.append(f"  {word:<4} {r['test']}: {shown} (target <= 1.00)")
    out.append("")
    out.append("routing (backend calls of the test's command during the last run, per shard):")
    for r in report["rows"]:
        cells = r["peers"]
        parts = [f"{p} {cells[p]['shard_calls']}" for p in names if cells[p].get("shard_calls")]
        out.append(f"  {r['test']}: " + ("; ".join(parts) or "n/a"))
    out.append(
        "  MSET: outside --cluster mode redis-benchmark's MSET uses 10 keys "
        "key:__rand_int__ with no hash tag (the {tag} is added only with --cluster), so "
        "every MSET spans shards through a proxy, like the MGET row."
    )
    for name, p in report["peers"].items():
        for note in p["notes"]:
            out.append(
                f"  note {name}: redis-benchmark said {note!r} (its start-up CONFIG GET "
                "save/appendonly was refused; harmless)"
            )
    if report["problems"]:
        out.append("")
        out.append(f"PROBLEMS ({len(report['problems'])}):")
        out.extend(f"  - {p}" for p in report["problems"])
    out.append(f"total {report['seconds']:.0f}s")
    return "\n".join(out)


def verdict(case: Case, peers: dict[str, dict[str, object]]) -> tuple[str, str]:
    target = TARGETS[case.pipeline]
    if peers["router"].get("rps") is None or peers["twemproxy"].get("rps") is None:
        missing = [p for p in ("router", "twemproxy") if peers[p].get("rps") is None]
        return "N/A", f"no number for {' and '.join(missing)}"
    r = peers["router"]["rps"] / peers["twemproxy"]["rps"]
    word = "PASS" if r >= target else "MISS"
    return word, f"router/twemproxy = {r:.2f} (target >= {target:.2f})"


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--requests",
        type=int,
        default=None,
        help="requests per -P 1 run (x4 at -P 16, /4 for MSET/MGET); "
        "default 100000, 10000 with --quick",
    )
    ap.add_argument("--clients", type=int, default=50, help="redis-benchmark -c (default 50)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per cell; the median is shown")
    ap.add_argument("--quick", action="store_true", help="smoke run (~30 s)")
    ap.add_argument(
        "--peers", default=",".join(PEERS), help=f"comma-separated subset of {','.join(PEERS)}"
    )
    ap.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per redis-benchmark run (default 30 + requests/2000)",
    )
    ap.add_argument(
        "--workers",
        default="",
        help="comma-separated router.workers counts (>= 2): a router-wN peer for each",
    )
    ap.add_argument(
        "--pin",
        action="store_true",
        help="proxies on all usable cores but the last; shards and redis-benchmark on the last",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = ap.parse_args(argv)
    try:
        args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    except ValueError:
        ap.error("--workers takes counts like 2 or 2,4")
    if any(w < 2 for w in args.workers):
        ap.error("--workers counts must be 2 or more (the router row is 1 worker)")
    if args.requests is None:
        args.requests = 10_000 if args.quick else 100_000
    wanted = [p.strip() for p in args.peers.split(",") if p.strip()]
    if not wanted or any(p not in PEERS for p in wanted):
        ap.error(f"--peers takes names from {','.join(PEERS)}")
    args.peers = wanted
    if args.requests < 1 or args.clients < 1 or args.repeat < 1:
        ap.error("--requests, --clients and --repeat must be positive")
    return args


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def benchmark_all(args: argparse.Namespace, h: Harness) -> dict[str, object]:
    started = time.monotonic()
    env = environment()  # before starting anything: the load average shows other users' noise
    problems: list[str] = []
    shards = [h.farm.start() for _ in range(SHARDS)]  # failure here is fatal: main reports it
    if args.pin:
        h.pin()
        for shard in shards:
            pin_threads(shard.proc.pid if shard.proc is not None else None, h.other_cores)
    ranges = slot_ranges(SHARDS)
    names = [*PEERS, *(f"router-w{n}" for n in args.workers)]

    def slot_owner(key: bytes) -> int:
        slot = key_hash_slot(key)
        return next(i for i, (lo, hi) in enumerate(ranges) if lo <= slot <= hi)

    starters: dict[str, Callable[[], Peer]] = {
        "direct": lambda: Peer(
            "direct",
            port=shards[0].port,
            what=f"redis-server {shards[0].addr} (one shard, no proxy)",
            cpu_pid=shards[0].proc.pid if shards[0].proc is not None else None,
        ),
        "twemproxy": lambda: start_twemproxy(h, shards),
        "router": lambda: start_router(h, shards),
    }
    for n in args.workers:
        starters[f"router-w{n}"] = lambda n=n: start_router(h, shards, workers=n)
    peers = {
        name: starters[name]()
        if name in args.peers or name.startswith("router-w")
        else Peer(name, unavailable="not selected (--peers)")
        for name in names
    }
    if h.other_cores:
        peers["direct"].cores = cores_text(h.other_cores)
    for peer in peers.values():
        if not peer.usable:
            continue
        try:
            probe(
                peer,
                [shards[0]] if peer.name == "direct" else shards,
                slot_owner if peer.name.startswith("router") else None,
            )
        except PeerError as e:
            peer.failed = f"correctness probe: {e}"
    for peer in peers.values():
        if peer.failed:
            problems.append(f"{peer.name}: {peer.failed}")
    shard_clients = [client(s.host, s.port) for s in shards]
    for sc in shard_clients:
        sc.flushall()
    rows = []
    try:
        for case in CASES:
            requests = max(args.clients, int(args.requests * case.scale))
            timeout = args.timeout or 30 + requests / 2000  # a peer below 2000 rps is broken
            runs: dict[str, list[Run]] = {p: [] for p in names}
            for rep in range(args.repeat):
                for name in rotated(names, rep):
                    peer = peers[name]
                    if not peer.usable:
                        continue
                    run = run_benchmark(
                        peer, case, requests, args.clients, timeout, shard_clients, h.other_cores
                    )
                    runs[name].append(run)
                    shown = f"{run.rps:.0f} rps" if run.rps else f"ERROR {run.error}"
                    if run.cpu_us is not None:
                        shown += f", {run.cpu_us:.1f} CPU µs/req, {run.cores:.2f} cores"
                    progress(f"[{case.label} #{rep + 1}] {name}: {shown} ({run.seconds:.1f}s)")
                    if peer.proc is not None and peer.proc.poll() is not None:
                        peer.failed = (
                            f"process exited with code {peer.proc.returncode} during {case.label}"
                        )
                        problems.append(f"{name}: {peer.failed}")
                    elif run.error and "timed out" in run.error:
                        peer.failed = f"{case.label}: {run.error}; later tests skipped"
                        problems.append(f"{name}: {peer.failed}")
            rows.append(make_row(case, requests, runs, problems, names))
    finally:
        for sc in shard_clients:
            sc.close()
    return {
        "clients": args.clients,
        "repeat": args.repeat,
        "requests": args.requests,
        "environment": env,
        "clk_tck": clock_ticks(),
        "names": names,
        "core_budget": core_budget(h),
        "peers": {
            n: {
                "what": p.what,
                "addr": f"{p.host}:{p.port}" if p.port else None,
                "unavailable": p.unavailable,
                "failed": p.failed,
                "notes": p.notes,
                "cores": p.cores,
            }
            for n, p in peers.items()
        },
        "rows": rows,
        "problems": problems,
        "seconds": time.monotonic() - started,
    }


def make_row(
    case: Case,
    requests: int,
    runs: dict[str, list[Run]],
    problems: list[str],
    names: Sequence[str] = PEERS,
) -> dict[str, object]:
    cells: dict[str, dict[str, object]] = {}
    for name in names:
        got = runs[name]
        cell: dict[str, object] = {"runs": [asdict(r) for r in got]}
        errors = [r.error for r in got if r.error]
        if errors:
            cell["error"] = errors[0]
            problems.append(f"{name} {case.label}: {errors[0]}")
        elif got:
            cell["rps"] = statistics.median(r.rps for r in got if r.rps is not None)
            for key in ("cpu_us", "cores"):
                values = [getattr(r, key) for r in got if getattr(r, key) is not None]
                if values:
                    cell[key] = statistics.median(values)
            cell["shard_calls"] = got[-1].shard_calls
            hit = sum(1 for c in got[-1].shard_calls if c > 0)
            if name != "direct" and hit != SHARDS:
                problems.append(
                    f"{name} {case.label}: traffic reached only {hit} of {SHARDS} "
                    f"shards {got[-1].shard_calls}"
                )
        cells[name] = cell
    rt, rd = (
        ratio(cells["router"].get("rps"), cells[p].get("rps")) for p in ("twemproxy", "direct")
    )
    cpu_ratio = ratio(cells["router"].get("cpu_us"), cells["twemproxy"].get("cpu_us"))
    word, detail = verdict(case, cells)
    scaling = {
        f"{n}/router": ratio(cells[n].get("rps"), cells["router"].get("rps"))
        for n in names
        if n.startswith("router-w")
    }
    return {
        "test": case.label,
        "pipeline": case.pipeline,
        "requests": requests,
        "command": " ".join(case.args),
        "peers": cells,
        "router/twemproxy": rt,
        "router/direct": rd,
        "router/twemproxy cpu": cpu_ratio,
        "verdict": word,
        "verdict_detail": detail,
        **scaling,
    }


def run_main(
    args: argparse.Namespace,
    measure: Callable[[argparse.Namespace, Harness], dict],
    render_report: Callable[[dict], str],
    tools: Sequence[str] = ("redis-server", "redis-benchmark"),
) -> int:
    """The main of a bench script (this one, bench/latency.py): ``tools`` checked, one
    `Harness` stopped on any exit, the report printed (and written to ``args.json``); 2
    when it cannot run, 130 when interrupted, 1 when a peer failed, else 0."""
    for tool in tools:
        if shutil.which(tool) is None:
            print(
                f"cannot run: {tool} not found on PATH (apt-get install redis-server redis-tools)",
                file=sys.stderr,
            )
            return 2
    h = Harness()
    atexit.register(h.close)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        report = measure(args, h)
    except (OSError, TimeoutError, RuntimeError, redis.RedisError) as e:
        print(f"cannot run: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; stopped every process started here", file=sys.stderr)
        return 130
    finally:
        h.close()
    print(render_report(report), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 1 if report["problems"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(parse_args(argv), benchmark_all, render)


if __name__ == "__main__":
    sys.exit(main())
