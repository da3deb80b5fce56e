"""Router CPU per request of two slotwarden trees, side by side on the same shards.

For refactors ("no benchmark figure changes"): the router of tree A and the
router of tree B run at the same time over the same 3 redis-server shards,
and each round runs every row on both, alternating which goes first, so
that the load of this shared machine falls on both alike. Per row it prints
the median router CPU µs/request (utime+stime from /proc over the requests
sent) of each tree, their ratio, and every run.

    .venv/bin/python bench/compare.py --before /path/to/old/checkout [--rounds 7]

``--before``/``--after`` are checkouts with their own ``.venv`` (default
after: this checkout); each router runs as ``<tree>/.venv/bin/python -m
slotwarden router`` from its tree. Needs redis-server and redis-benchmark.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from slotwarden.procs import RedisFarm, wait_for_port, write_cluster_yaml

# row -> (redis-benchmark arguments, requests per run at --requests 100000)
ROWS = {
    "SET -P 1": (["-P", "1", "-t", "set"], 1.0),
    "GET -P 1": (["-P", "1", "-t", "get"], 1.0),
    "SET -P 16": (["-P", "16", "-t", "set"], 4.0),
    "GET -P 16": (["-P", "16", "-t", "get"], 4.0),
    "MSET 10 keys -P 1": (["-P", "1", "-t", "mset"], 0.25),
    "MGET 10 keys -P 1": (["-P", "1", "MGET", *["key:__rand_int__"] * 10], 0.25),
}
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, help="checkout of the tree to compare against")
    ap.add_argument("--after", default=str(here), help="checkout of the new tree (default: this)")
    ap.add_argument("--rounds", type=int, default=7, help="runs per row and tree (default 7)")
    ap.add_argument("--requests", type=int, default=100000, help="requests per -P 1 run")
    args = ap.parse_args(argv)
    trees = {"before": Path(args.before).resolve(), "after": Path(args.after).resolve()}
    for name, tree in trees.items():
        if not (tree / ".venv" / "bin" / "python").exists():
            print(f"--{name} {tree}: no .venv/bin/python there", file=sys.stderr)
            return 2
    farm = RedisFarm()
    routers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        masters = [farm.start() for _ in range(3)]
        ports = {}
        tmp = tempfile.mkdtemp(prefix="slotwarden-compare-")
        for name, tree in trees.items():
            config = os.path.join(tmp, f"{name}.yaml")
            port, _admin = write_cluster_yaml(config, masters)
            routers[name] = subprocess.Popen(
                [str(tree / ".venv/bin/python"), "-m", "slotwarden", "router", "--config", config],
                cwd=tree,
                stderr=subprocess.DEVNULL,
            )
            wait_for_port("127.0.0.1", port, timeout=20)
            ports[name] = port
        runs: dict[str, dict[str, list[float]]] = {row: {n: [] for n in trees} for row in ROWS}
        for r in range(args.rounds):
            for row, (bench_args, scale) in ROWS.items():
                n = max(1, int(args.requests * scale))
                order = list(trees) if r % 2 == 0 else list(reversed(trees))
                for name in order:
                    before = cpu_seconds(routers[name].pid)
                    subprocess.run(
                        ["redis-benchmark", "-p", str(ports[name]), "-c", "50", "-n", str(n),
                         "-r", "100000", "-q", "--csv", *bench_args],
                        capture_output=True, check=True, timeout=60 + n / 1000,
                    )  # fmt: skip
                    runs[row][name].append((cpu_seconds(routers[name].pid) - before) * 1e6 / n)
        print(f"before: {trees['before']}\nafter:  {trees['after']}\nrounds: {args.rounds}")
        head = "before µs/req | after µs/req | after/before | runs before | runs after"
        print(f"{'row':18} | {head}")
        for row, by in runs.items():
            b, a = statistics.median(by["before"]), statistics.median(by["after"])
            ratio = f"{a / b:12.2f}" if b else f"{'n/a':>12}"
            print(
                f"{row:18} | {b:13.2f} | {a:12.2f} | {ratio} | "
                f"{' '.join(f'{x:.1f}' for x in by['before'])} | "
                f"{' '.join(f'{x:.1f}' for x in by['after'])}"
            )
        print(f"(1 clock tick = {1e6 / TICK / args.requests:.3f} µs/req on the -P 1 rows)")
    finally:
        for proc in routers.values():
            proc.terminate()
            proc.wait(timeout=15)
        farm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
