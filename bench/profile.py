"""Where the router's CPU goes under one redis-benchmark row: user and kernel time per request.

    .venv/bin/python bench/profile.py [--row "SET -P 1"] [--requests 200000] [--perf]
                                      [--syscalls] [--cprofile FILE]

Starts 3 redis-server shards and the router (`slotwarden router`, its slots split evenly)
in a temp dir, warms up with 20,000 requests, then runs ``redis-benchmark -c 50 -r 100000
-n N -P P -t CMD`` and prints the router process's user and system CPU per request (from
``/proc/<pid>/stat`` around the run) beside redis-benchmark's own line. Options:

- ``--perf``: ``perf record -F 2000`` the router during the run (``/tmp/router.perf``; read
  it with ``perf report -i /tmp/router.perf --sort dso,sym``);
- ``--syscalls``: ``perf stat`` the router's system calls (read, write, epoll_pwait, ...)
  and print them per request;
- ``--cprofile FILE``: run the router under cProfile (its stats go to FILE when it stops;
  call counts, not costs: cProfile inflates every Python call).

Rows: ``SET``/``GET`` with ``-P 1`` or ``-P 16``, ``MSET``, ``MGET`` (redis-benchmark's
10-key forms). Everything it starts is stopped and removed on exit. No peer is compared
here: bench/throughput.py does that; this answers "which part of the router's CPU".
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence

from slotwarden.procs import RedisFarm, RouterProc, wait_for_port, write_cluster_yaml

MGET_ARGS = ("MGET", *["key:__rand_int__"] * 10)  # as bench/throughput.py's MGET row

SYSCALLS = ("read", "write", "epoll_pwait", "epoll_wait", "writev", "epoll_ctl")


def cpu_ticks(pid: int) -> tuple[int, int]:
    """utime, stime of ``pid`` in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def start_router(conf: str, port: int, log: str, cprofile: str | None) -> RouterProc:
    router = RouterProc(conf, port, log)
    if cprofile is None:
        return router.start()
    router._log = open(log, "ab")
    router.proc = subprocess.Popen(
        [sys.executable, "-m", "cProfile", "-o", cprofile, "-m", "slotwarden", "router",
         "--config", conf],
        stdout=router._log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_for_port("127.0.0.1", port, timeout=15)
    return router


def benchmark_cmd(port: int, row: str, requests: int) -> list[str]:
    name, *rest = row.split()
    pipeline = rest[1] if len(rest) > 1 and rest[0] == "-P" else "1"
    # redis-benchmark has no MGET test: the command itself, 10 random keys (bench/throughput.py)
    what = list(MGET_ARGS) if name.upper() == "MGET" else ["-t", name.lower()]
    return [
        "redis-benchmark", "-p", str(port), "-c", "50", "-n", str(requests), "-r", "100000",
        "-P", pipeline, "-q", *what,
    ]  # fmt: skip


def run(args: argparse.Namespace) -> str:
    farm = RedisFarm()
    try:
        shards = [farm.start() for _ in range(3)]
        conf = os.path.join(farm.root, "cluster.yaml")
        port, _ = write_cluster_yaml(conf, shards)
        router = start_router(conf, port, os.path.join(farm.root, "router.log"), args.cprofile)
        pid = router.proc.pid  # type: ignore[union-attr]
        try:
            subprocess.run(benchmark_cmd(port, args.row, 20000), capture_output=True, timeout=120)
            watcher = None
            if args.perf or args.syscalls:
                events = ",".join(
                    ["raw_syscalls:sys_enter"] + [f"syscalls:sys_enter_{s}" for s in SYSCALLS]
                )
                cmd = (
                    ["perf", "record", "-F", "2000", "-q", "-o", "/tmp/router.perf"]
                    if args.perf
                    else ["perf", "stat", "-e", events, "-o", "/tmp/router.stat"]
                )
                watcher = subprocess.Popen([*cmd, "-p", str(pid)], stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            before = cpu_ticks(pid)
            done = subprocess.run(
                benchmark_cmd(port, args.row, args.requests), capture_output=True, text=True,
                timeout=600,
            )  # fmt: skip
            after = cpu_ticks(pid)
            if watcher is not None:
                watcher.send_signal(2)
                watcher.wait(timeout=60)
        finally:
            router.stop()
        tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
        user, sys_ = ((b - a) * tick_us / args.requests for a, b in zip(before, after, strict=True))
        lines = done.stdout.strip().splitlines() or ["(no output)"]
        out = [f"{args.row}: {lines[-1].strip()}", f"router user {user:.2f} sys {sys_:.2f} µs/req"]
        if args.syscalls:
            out.append(syscall_report("/tmp/router.stat", args.requests))
        if args.perf:
            out.append("perf: perf report -i /tmp/router.perf --sort dso,sym")
        return "\n".join(out)
    finally:
        farm.close()


def syscall_report(path: str, requests: int) -> str:
    counts: dict[str, int] = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[1].startswith(("raw_syscalls:", "syscalls:")):
                name = "all" if parts[1].startswith("raw_") else parts[1].split("sys_enter_")[-1]
                counts[name] = int(parts[0].replace(",", ""))
    shown = ", ".join(f"{k} {v / requests:.2f}" for k, v in counts.items() if v)
    return f"system calls per request (started 0.5 s into the run): {shown}"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--row", default="SET -P 1", help='e.g. "SET -P 1", "GET -P 16", "MGET"')
    ap.add_argument("--requests", type=int, default=200000)
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--perf", action="store_true", help="perf record the router")
    group.add_argument("--syscalls", action="store_true", help="perf stat its system calls")
    ap.add_argument("--cprofile", default=None, help="run the router under cProfile to FILE")
    print(run(ap.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
