#!/usr/bin/env python3
"""Client-side caching: a read-heavy zipfian workload with and without a tracking-driven cache,
through the router and directly on a redis-server, side by side in one run.

What runs, in one temp dir on free ports (stopped and removed afterwards: try/finally,
SIGTERM unwinds like Ctrl-C): 3 redis-server shards and two routers over them (router 1
for the workload and the staleness reader, router 2 for the staleness writer: "another
router"), both from ``python -m slotwarden router`` with the same slot map.

Rows (``--rows``, default all), each a fresh run of the same workload:

- **direct**: redis-server shard 0 alone (every key on it), no cache;
- **direct+cache**: the same with `slotwarden.cacheclient.CacheClient` in RESP3 tracking
  mode (Redis's own tracking: the reference);
- **router**: through router 1, no cache (``CacheClient(mode="off")``: same client code);
- **router+cache**: through router 1 with the RESP3 tracking cache.

Workload: ``--clients`` processes (one connection each, so the clients do not share a
GIL), each for ``--seconds``: 95 % GET / 5 % SET (``--write-ratio``) of ``--keys`` keys
drawn zipfian (exponent ``--zipf``, default 0.99: a few hot keys); every key is written
before the run. Reported: reads/s and ops/s (all clients), the cache's hit ratio, client
errors.

Staleness window (the cache rows, measured while the workload runs): a probe reader
(a caching client in its own thread, always blocked reading its socket) caches a probe
key; a writer (another connection: through router 2 for router+cache, on the shard for
direct+cache) SETs it and notes when the ack arrived; the window is the reader's arrival
time of the invalidation minus that ack (negative: it arrived before the writer had its
ack). ``--samples`` writes, one at a time; p50 / p99 / max in ms.

Then the ratios: router+cache / router and direct+cache / direct reads/s (what the cache
buys), and router+cache / direct+cache.

Usage: python bench/tracking.py [--quick] [--clients N] [--seconds S] [--keys K]
       [--write-ratio F] [--zipf S] [--samples N] [--rows direct,router,...] [--json FILE]

Numbers from a shared 2-core box are noisy (the workload processes, 3 shards and 2
routers compete for the cores): compare rows of one run, not runs of different days.
Exit status: 0 when every row ran without client errors; 1 otherwise; 2 when nothing ran.
"""

from __future__ import annotations

import argparse
import bisect
import json
import multiprocessing
import os
import platform
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from slotwarden.cacheclient import CacheClient, ReplyError
from slotwarden.procs import RedisFarm, RouterProc, write_cluster_yaml

ROWS = ("direct", "direct+cache", "router", "router+cache")
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PROBE_PREFIX = "probe:"


@dataclass
class Row:
    name: str
    reads: int = 0
    writes: int = 0
    hits: int = 0
    misses: int = 0
    errors: int = 0
    seconds: float = 0.0
    staleness_ms: list[float] = field(default_factory=list)
    probe_errors: list[str] = field(default_factory=list)
    cpu_us_per_op: float | None = None  # the serving process: the router, or the shard

    @property
    def reads_per_s(self) -> float:
        return self.reads / self.seconds if self.seconds else 0.0

    @property
    def ops_per_s(self) -> float:
        return (self.reads + self.writes) / self.seconds if self.seconds else 0.0

    @property
    def hit_ratio(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total and self.name.endswith("+cache") else None


def zipf_cum(n: int, s: float) -> list[float]:
    total = 0.0
    out = []
    for rank in range(1, n + 1):
        total += 1.0 / rank**s
        out.append(total)
    return out


def key_name(i: int) -> str:
    return f"tr:{i}"


def worker(
    port: int, cached: bool, keys: int, zipf: float, write_ratio: float, warmup: float,
    seconds: float, seed: int, start: Any, out: Any,
) -> None:  # fmt: skip
    """One client process: the workload for ``warmup`` + ``seconds`` after ``start`` is set;
    reports what it did after the warm-up (the cache filled: the steady state)."""
    cum = zipf_cum(keys, zipf)
    top = cum[-1]
    rng = random.Random(seed)
    c = CacheClient(port=port, mode="resp3" if cached else "off", timeout=10)
    reads = writes = errors = 0
    try:
        c.connect()
        start.wait(30)
        warm_until = time.monotonic() + warmup
        deadline = warm_until + seconds
        n = 0
        while True:
            n += 1
            if n % 64 == 0 and warm_until and time.monotonic() > warm_until:
                warm_until = 0.0  # the measured part starts: counters from zero
                reads = writes = errors = c.hits = c.misses = 0
            if n % 64 == 0 and time.monotonic() > deadline:
                break
            k = key_name(bisect.bisect_left(cum, rng.random() * top))
            try:
                if rng.random() < write_ratio:
                    c.set(k, f"{seed}:{n}")
                    writes += 1
                else:
                    c.get(k)
                    reads += 1
            except (ReplyError, ConnectionError):
                errors += 1
        out.put((reads, writes, c.hits, c.misses, errors))
    except BaseException as exc:  # reported, never a hang of the parent
        out.put(exc)
    finally:
        c.close()


class Probe(threading.Thread):
    """The staleness probe: a caching reader (its own thread) and a writer (the caller)."""

    def __init__(self, reader_port: int, writer_port: int) -> None:
        super().__init__(daemon=True)
        self.arrived: dict[bytes, float] = {}
        self.event = threading.Event()
        self.requests: queue.Queue[bytes | None] = queue.Queue()
        self.cached = threading.Event()
        self.reader = CacheClient(port=reader_port, timeout=10, on_invalidate=self._on_inval)
        self.writer = redis.Redis(port=writer_port, socket_timeout=10)
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def _on_inval(self, key: bytes | None, t: float) -> None:
        if key is not None and key.startswith(PROBE_PREFIX.encode()):
            self.arrived.setdefault(key, t)
            self.event.set()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    key = self.requests.get_nowait()
                except queue.Empty:
                    key = None
                if key is not None:  # cache it (a read while tracking is not live is dropped)
                    for _ in range(200):
                        self.reader.get(key)
                        if key in self.reader.cache:
                            break
                        time.sleep(0.01)
                    self.cached.set()
                self.reader.poll(0.02)
        except BaseException as exc:
            self.error = exc
            self.cached.set()
            self.event.set()

    def sample(self, i: int) -> float | None:
        """One write's window in ms (None: no invalidation within 5 s)."""
        key = f"{PROBE_PREFIX}{i}".encode()
        self.writer.set(key, "0")
        self.cached.clear()
        self.requests.put(key)
        if not self.cached.wait(10) or self.error is not None:
            return None
        self.event.clear()
        self.writer.set(key, "1")
        acked = time.monotonic()
        deadline = acked + 5
        while key not in self.arrived and time.monotonic() < deadline:
            self.event.wait(0.1)
            self.event.clear()
        got = self.arrived.get(key)
        return None if got is None else (got - acked) * 1000

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=5)
        self.reader.close()
        self.writer.close()


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (Linux /proc; 0.0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def run_row(name: str, port: int, writer_port: int, pid: int, args: argparse.Namespace) -> Row:
    cached = name.endswith("+cache")
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=worker, args=(port, cached, args.keys, args.zipf, args.write_ratio,
                                         args.warmup, args.seconds, 1000 * n + 1, start, out),
                    daemon=True)
        for n in range(args.clients)
    ]  # fmt: skip
    row = Row(name)
    probe = Probe(port, writer_port) if cached else None
    try:
        for p in procs:
            p.start()
        if probe is not None:
            probe.start()
        t0 = time.monotonic()
        start.set()
        cpu: list[float] = []
        timers = [threading.Timer(t, lambda: cpu.append(cpu_seconds(pid)))
                  for t in (args.warmup, args.warmup + args.seconds)]  # fmt: skip
        for t in timers:
            t.start()
        if probe is not None:
            time.sleep(args.warmup)
            for i in range(args.samples):
                if time.monotonic() - t0 > args.warmup + args.seconds:
                    break
                ms = probe.sample(i)
                if ms is None:
                    why = repr(probe.error) if probe.error else "no invalidation within 5 s"
                    row.probe_errors.append(f"staleness sample {i}: {why}")
                    break
                row.staleness_ms.append(ms)
        for _ in procs:
            got = out.get(timeout=args.warmup + args.seconds + 60)
            if isinstance(got, BaseException):
                raise RuntimeError(f"{name}: a client failed: {got!r}")
            reads, writes, hits, misses, errors = got
            row.reads += reads
            row.writes += writes
            row.hits += hits
            row.misses += misses
            row.errors += errors
        row.seconds = args.seconds
        for t in timers:
            t.join()
        if len(cpu) == 2 and row.reads + row.writes:
            row.cpu_us_per_op = (cpu[1] - cpu[0]) * 1e6 / (row.reads + row.writes)
    finally:
        if probe is not None:
            probe.close()
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
    return row


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def report(rows: list[Row], args: argparse.Namespace) -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    lines = [
        f"redis-server: {version.stdout.strip()}",
        f"python: {platform.python_version()}, cores: {os.cpu_count()}, "
        f"load: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        f"workload: {args.clients} clients x {args.seconds:g} s, {args.keys} keys zipf "
        f"{args.zipf:g}, {100 * (1 - args.write_ratio):g}/{100 * args.write_ratio:g} GET/SET",
        "",
        "row          | reads/s | ops/s   | hit ratio | stale p50 ms | stale p99 ms | "
        "stale max ms | samples | errors | server CPU µs/op",
        "-------------|---------|---------|-----------|--------------|--------------|"
        "--------------|---------|--------|-----------------",
    ]
    for r in rows:
        s = r.staleness_ms
        lines.append(
            f"{r.name:12} | {r.reads_per_s:7.0f} | {r.ops_per_s:7.0f} | "
            f"{fmt(r.hit_ratio, '9.3f'):>9} | "
            f"{fmt(pct(s, 0.5) if s else None, '12.3f'):>12} | "
            f"{fmt(pct(s, 0.99) if s else None, '12.3f'):>12} | "
            f"{fmt(max(s) if s else None, '12.3f'):>12} | {len(s):7d} | "
            f"{r.errors + len(r.probe_errors):6d} | {fmt(r.cpu_us_per_op, '.2f')}"
        )
    by = {r.name: r for r in rows}
    lines.append("")
    for a, b in (("router+cache", "router"), ("direct+cache", "direct"),
                 ("router+cache", "direct+cache"), ("router", "direct")):  # fmt: skip
        if a in by and b in by and by[b].reads_per_s:
            lines.append(f"{a} / {b} reads/s: {by[a].reads_per_s / by[b].reads_per_s:.2f}")
    lines.append(
        "(staleness: the invalidation's arrival at a caching reader minus the writer's ack; "
        f"negative = before the ack. Counted after a warm-up of {args.warmup:g} s. Server "
        "CPU: the router for router rows, the shard for direct rows, per op of the workload)"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 s, 2 clients, 2000 keys")
    ap.add_argument("--clients", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=None, help="measured, per row")
    ap.add_argument("--warmup", type=float, default=None, help="before the measured part")
    ap.add_argument("--keys", type=int, default=None)
    ap.add_argument("--write-ratio", type=float, default=0.05)
    ap.add_argument("--zipf", type=float, default=0.99)
    ap.add_argument("--samples", type=int, default=None, help="staleness writes per cache row")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"a subset of {','.join(ROWS)}")
    ap.add_argument("--json", help="write the rows here too")
    args = ap.parse_args(argv)
    quick = args.quick
    args.clients = args.clients or (2 if quick else 4)
    args.seconds = args.seconds or (1.0 if quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if quick else 3.0)
    args.keys = args.keys or (2000 if quick else 10000)
    args.samples = args.samples or (20 if quick else 200)
    wanted = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in wanted if r not in ROWS]
    if unknown or not wanted:
        ap.error(f"--rows: unknown {unknown}; choose from {','.join(ROWS)}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    farm = RedisFarm()
    routers: list[RouterProc] = []
    rows: list[Row] = []
    try:
        masters = [farm.start() for _ in range(3)]
        ports = []
        for n in (1, 2):
            config = os.path.join(farm.root, f"cluster{n}.yaml")
            port, _admin = write_cluster_yaml(config, masters)
            log = os.path.join(farm.root, f"router{n}.log")
            routers.append(RouterProc(config, port, log).start())
            ports.append(port)
        direct = masters[0].port
        values = {key_name(i): "v" for i in range(args.keys)}
        for p in (direct, ports[0]):
            with redis.Redis(port=p, socket_timeout=60) as r:
                pipe = r.pipeline(transaction=False)
                for i in range(0, args.keys, 1000):
                    pipe.mset({k: values[k] for k in list(values)[i : i + 1000]})
                pipe.execute()
        shard_pid = masters[0].proc.pid if masters[0].proc else 0
        router_pid = routers[0].proc.pid if routers[0].proc else 0
        target = {"direct": (direct, direct, shard_pid),
                  "direct+cache": (direct, direct, shard_pid),
                  "router": (ports[0], ports[1], router_pid),
                  "router+cache": (ports[0], ports[1], router_pid)}  # fmt: skip
        for name in wanted:
            rows.append(run_row(name, *target[name], args))
    finally:
        for router in routers:
            router.stop()
        farm.close()
    if not rows:
        return 2
    print(report(rows, args))
    if args.json:
        data = [{**asdict(r), "reads_per_s": r.reads_per_s, "ops_per_s": r.ops_per_s,
                 "hit_ratio": r.hit_ratio} for r in rows]  # fmt: skip
        with open(args.json, "w") as f:
            json.dump({"rows": data, "args": vars(args)}, f, indent=1)
    problems = [r.name for r in rows if r.errors or r.probe_errors]
    if problems:
        print(f"PROBLEMS: client errors in {problems}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
