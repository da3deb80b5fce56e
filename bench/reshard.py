#!/usr/bin/env python3
"""Online resharding: slotwarden beside Redis Cluster moving the same slots over the same data.

Owns one run, per system (``--systems``, default both, Redis Cluster first):

- **redis-cluster**: 4 redis-servers in cluster mode (Debian's redis-server),
  ``redis-cli --cluster create`` with the first 3 as masters, ``--cluster add-node``
  of the 4th, then ``redis-cli --cluster reshard --cluster-from <the 3> --cluster-to
  <4th> --cluster-slots 4096 --cluster-yes --cluster-pipeline <--batch>``; clients use
  redis-py's ``RedisCluster`` (follows MOVED and ASK).
- **slotwarden**: 3 shards (no replicas, like the cluster's masters), 3 sentinels
  (``sentinel.migration``: ``keys_per_second`` = ``--rate``, ``batch_keys`` = ``--batch``),
  one router; a 4th shard d added by editing cluster.yaml so that d owns the slots Redis
  Cluster's reshard gave its 4th node (or, without that half, the first quarter of each
  shard's range, as redis-cli picks them); clients go through the router.

Same data for both (`slotwarden.dataset`): ``--keys`` keys (default 200,000) of six types,
half with a TTL, loaded straight into the node owning each key's slot, plus 2 x
`TP_KEYS` string keys for the client loops: ``tp:o:*`` in slots that do not move and
``tp:m:*`` in slots that do. Two client threads (one connection each) alternate GET and SET
on their keys for ``--measure-s`` before the move and throughout it.

Reported per system: keys moved (data keys the 4th node holds after), move time (from the
``redis-cli`` start / the file edit, to its exit / the sentinels' topology without the
migration and the router on that epoch), keys/s, each client's ops/s and p99 latency before
vs during and their ratio, client errors, and a check of every key afterwards (contents and
TTL read from the owner of its slot, each key on exactly one node, nothing left on a
source); then slotwarden / redis-cluster ratios.

Invariant: every process started here is stopped and its temp dir removed (try/finally per
system, SIGTERM unwinds like Ctrl-C). Exit status: 0 when every system ran and verified; 1
when one failed or lost/misplaced keys (the report is still printed, with PROBLEMS); 2 when
nothing could run.

Usage: python bench/reshard.py [--keys N] [--systems slotwarden,redis-cluster] [--rate K]
       [--batch B] [--measure-s S] [--timeout S] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.cluster import RedisCluster

from slotwarden.cluster.slots import format_ranges, key_hash_slot
from slotwarden.dataset import (
    Model,
    error_kind,
    key_name,
    load,
    placement,
    scan_keys,
    verify_contents,
)
from slotwarden.procs import RedisFarm, RedisProc
from slotwarden.rig import ReshardRig, normal, wait_for

MOVE_SLOTS = 4096  # a quarter of 16384
TP_KEYS = 1000  # string keys per client loop
SYSTEMS = ("slotwarden", "redis-cluster")


# ---------------------------------------------------------------- clients


@dataclass
class Loop:
    """One connection alternating GET and SET on ``keys``; every reply's (time, latency)."""

    make_client: Callable[[], Any]
    keys: list[bytes]
    done: list[tuple[float, float]] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> Loop:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        client = self.make_client()
        n = 0
        while not self.stop.is_set():
            key = self.keys[n % len(self.keys)]
            sent = time.monotonic()
            try:
                if n % 2:
                    client.set(key, b"%d" % n)
                else:
                    client.get(key)
            except (redis.RedisError, OSError) as exc:
                self.errors.append((time.monotonic(), f"{error_kind(exc)}: {str(exc)[:100]}"))
                time.sleep(0.01)
                continue
            now = time.monotonic()
            self.done.append((now, now - sent))
            n += 1
        client.close()

    def finish(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=10)

    def window(self, t0: float, t1: float) -> tuple[float | None, float | None]:
        """(ops/s, p99 ms) of the replies in [t0, t1]."""
        lat = [lat for t, lat in list(self.done) if t0 <= t <= t1]
        if t1 <= t0 or not lat:
            return None, None
        p99 = statistics.quantiles(lat, n=100)[98] if len(lat) >= 2 else lat[0]
        return len(lat) / (t1 - t0), p99 * 1000


def tp_keys(prefix: str, slots: set[int], inside: bool) -> list[bytes]:
    out, n = [], 0
    while len(out) < TP_KEYS:
        key = b"tp:%s:%d" % (prefix.encode(), n)
        if (key_hash_slot(key) in slots) == inside:
            out.append(key)
        n += 1
    return out


def default_moving() -> set[int]:
    """What redis-cli 7.0 takes from 3 even masters for 4096 slots (seen): the first 1365
    of the first and third, 1366 of the second (5462 slots, the largest)."""
    out: set[int] = set()
    for lo, n in ((0, 1365), (5461, 1366), (10923, 1365)):
        out.update(range(lo, lo + n))
    return out


@dataclass
class Result:
    system: str
    keys_moved: int | None = None
    move_s: float | None = None
    loops: dict[str, dict[str, float | None]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # client errors (text, first few)
    error_count: int = 0
    problems: list[str] = field(default_factory=list)  # verification and run failures
    moved_slots: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def keys_per_s(self) -> float | None:
        if self.keys_moved is None or not self.move_s:
            return None
        return self.keys_moved / self.move_s


def measure(
    result: Result,
    loops: dict[str, Loop],
    measure_s: float,
    move: Callable[[], None],
) -> None:
    """Loops running: ``measure_s`` before, then ``move()`` timed, then the windows."""
    for loop in loops.values():
        loop.start()
    try:
        time.sleep(0.5)  # connections made, first replies in
        t_before = time.monotonic()
        time.sleep(measure_s)
        t0 = time.monotonic()
        move()
        t1 = time.monotonic()
    finally:
        for loop in loops.values():
            loop.finish()
    result.move_s = t1 - t0
    for name, loop in loops.items():
        before, p99_before = loop.window(t_before, t0)
        during, p99_during = loop.window(t0, t1)
        result.loops[name] = {"before": before, "during": during, "p99_before": p99_before,
                              "p99_during": p99_during}  # fmt: skip
        result.error_count += len(loop.errors)
        result.errors += [f"{name}: {e}" for _, e in loop.errors[:3]]


# ---------------------------------------------------------------- redis cluster


def cli(args: Sequence[str], timeout: float) -> str:
    done = subprocess.run(
        ["redis-cli", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"redis-cli {' '.join(args[:2])} exited {done.returncode}: "
                           f"{(done.stdout + done.stderr)[-500:]}")  # fmt: skip
    return done.stdout


def node_ids(node: RedisProc) -> dict[str, str]:
    """addr -> node id, as ``node`` sees the cluster."""
    with redis.Redis(port=node.port, socket_timeout=10) as r:
        nodes = r.execute_command("CLUSTER NODES")  # redis-py: {addr: {"node_id": ...}}
    return {addr.split("@")[0]: info["node_id"] for addr, info in nodes.items()}


def slot_owners(node: RedisProc) -> dict[int, int]:
    """slot -> port of its master, from CLUSTER SLOTS."""
    with redis.Redis(port=node.port, socket_timeout=10) as r:
        rows = r.execute_command("CLUSTER SLOTS")
    out = {}
    for row in rows:
        for slot in range(int(row[0]), int(row[1]) + 1):
            out[slot] = int(row[2][1])
    return out


def run_redis_cluster(args: argparse.Namespace) -> tuple[Result, set[int] | None]:
    result = Result("redis-cluster")
    farm = RedisFarm()
    try:
        conf = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "5000"]  # fmt: skip
        nodes = [farm.start(conf) for _ in range(4)]
        cli(["--cluster", "create", *[n.addr for n in nodes[:3]], "--cluster-replicas", "0",
             "--cluster-yes"], 60)  # fmt: skip

        def ok(node: RedisProc) -> bool:
            with redis.Redis(port=node.port, socket_timeout=5) as r:
                return r.cluster("info")["cluster_state"] == "ok"

        wait_for(lambda: all(ok(n) for n in nodes[:3]), 60, "cluster_state:ok")
        cli(["--cluster", "add-node", nodes[3].addr, nodes[0].addr], 60)
        wait_for(lambda: all(len(node_ids(n)) == 4 for n in nodes), 60, "4 nodes known")
        # the 4th must see every slot covered, or it answers MIGRATE's RESTOREs CLUSTERDOWN
        wait_for(lambda: all(ok(n) for n in nodes), 60, "cluster_state:ok on the 4th")
        wait_for(lambda: "[OK] All 16384 slots covered" in cli(["--cluster", "check",
                 nodes[0].addr], 30), 60, "redis-cli --cluster check")  # fmt: skip
        owners = slot_owners(nodes[0])
        port_to_node = {n.port: n for n in nodes}
        model = load_per_owner(args.keys, lambda slot: port_to_node[owners[slot]].port)
        # the client loops' keys: other = slots the default reshard leaves alone
        guess = default_moving()
        loops = {
            "other slots": Loop(lambda: cluster_client(nodes[0]), tp_keys("o", guess, False)),
            "moving slots": Loop(lambda: cluster_client(nodes[0]), tp_keys("m", guess, True)),
        }
        for loop in loops.values():
            with cluster_client(nodes[0]) as rc:
                rc.mset_nonatomic({k: b"0" for k in loop.keys})
        ids = node_ids(nodes[0])

        def move() -> None:
            cli(["--cluster", "reshard", nodes[0].addr,
                 "--cluster-from", ",".join(ids[n.addr] for n in nodes[:3]),
                 "--cluster-to", ids[nodes[3].addr], "--cluster-slots", str(MOVE_SLOTS),
                 "--cluster-yes", "--cluster-pipeline", str(args.batch)],
                args.timeout)  # fmt: skip

        measure(result, loops, args.measure_s, move)
        owners = slot_owners(nodes[0])
        moved = {s for s, port in owners.items() if port == nodes[3].port}
        result.moved_slots = format_ranges(moved)
        if moved != guess:
            result.notes.append(f"redis-cli moved {result.moved_slots}, not the guessed slots")
        with redis.Redis(port=nodes[3].port, socket_timeout=30) as r:
            result.keys_moved = len(scan_keys(r))
        masters = {f"node{i + 1}": redis.Redis(port=n.port, socket_timeout=30)
                   for i, n in enumerate(nodes)}  # fmt: skip
        name_of = {n.port: f"node{i + 1}" for i, n in enumerate(nodes)}
        result.problems += verify(model, masters, lambda slot: name_of[owners[slot]])
        return result, moved
    except Exception as exc:
        result.problems.append(f"run failed: {exc!r}"[:600])
        return result, None
    finally:
        farm.close()


def cluster_client(node: RedisProc) -> RedisCluster:
    return RedisCluster(host="127.0.0.1", port=node.port, socket_timeout=10)


# ---------------------------------------------------------------- slotwarden


def run_slotwarden(args: argparse.Namespace, moving: set[int]) -> Result:
    result = Result("slotwarden")
    migration = {"keys_per_second": args.rate, "batch_keys": args.batch}
    rig = None
    try:
        rig = ReshardRig(shards=3, replicas=0, routers=1, migration=migration).start()
        sm = rig.sentinel_map()
        masters = {s.name: s.master.port for s in sm.shards}
        model = load_per_owner(args.keys, lambda slot: masters[sm.shards[sm.owner[slot]].name])
        loops = {
            "other slots": Loop(lambda: rig.router_client(0), tp_keys("o", moving, False)),
            "moving slots": Loop(lambda: rig.router_client(0), tp_keys("m", moving, True)),
        }
        with rig.router_client(0, socket_timeout=60) as r:
            for loop in loops.values():
                r.mset({k: b"0" for k in loop.keys})
        rig.add_nodes("d")
        layout = {}
        for s in sm.shards:
            own = set(sm.slots_of(sm.shard_index(s.name)))
            layout[s.name] = format_ranges(own - moving)
        layout["d"] = format_ranges(moving)
        result.moved_slots = layout["d"]

        seen: dict[str, Any] = {}

        def move() -> None:
            t0 = time.monotonic()
            rig.set_layout(layout)
            while rig_settled(rig, seen, t0) is None:
                if time.monotonic() - t0 > args.timeout:
                    raise TimeoutError(f"the move did not settle in {args.timeout:.0f} s")
                time.sleep(0.1)

        measure(result, loops, args.measure_s, move)
        if "published_s" in seen:
            result.notes.append(f"migration published {seen['published_s']:.1f} s after the edit")
        for m in seen.get("status", []):
            result.notes.append(
                "mover's last /status: "
                + ", ".join(f"{k} {m.get(k)}" for k in STATUS_FIELDS if m.get(k) is not None)
            )
        after = rig.wait_settled(10)
        d = after.shards[after.shard_index("d")].master
        with redis.Redis(host=d.host, port=d.port, socket_timeout=30) as r:
            result.keys_moved = len(scan_keys(r))
        if normal(layout["d"]) != after.ranges_of(after.shard_index("d")):
            result.problems.append("shard d does not own the moved slots")
        result.problems += verify(model, rig.masters(after), rig.owner_name(after))
        return result
    except Exception as exc:
        result.problems.append(f"run failed: {exc!r}"[:600])
        if rig is not None:
            result.notes.append(rig.logs(1500))
        return result
    finally:
        if rig is not None:
            rig.close()


STATUS_FIELDS = ("slots", "from", "to", "state", "keys_moved", "bytes_moved", "big_keys_moved",
                 "errors", "rate_keys_per_s")  # fmt: skip


def rig_settled(rig: ReshardRig, seen: dict[str, Any], t0: float) -> Any:
    """`ReshardRig.settled`, noting in ``seen`` when the migration was first published and
    the mover's last progress in ``/status`` (transient HTTP errors: not settled yet)."""
    try:
        sm = rig.sentinel_map()
        if sm.migrations and "published_s" not in seen:
            seen["published_s"] = time.monotonic() - t0
        status = rig.migrations()
        if status:
            seen["status"] = status
        return rig.settled()
    except (OSError, ValueError, KeyError):
        return None


# ---------------------------------------------------------------- data


def load_per_owner(n: int, port_of_slot: Callable[[int], int]) -> Model:
    """The data set's ``n`` keys, each loaded straight into its slot's node."""
    by_port: dict[int, list[int]] = {}
    for i in range(n):
        by_port.setdefault(port_of_slot(key_hash_slot(key_name(i))), []).append(i)
    model = Model(n)
    for port, indices in by_port.items():
        with redis.Redis(port=port, socket_timeout=60) as r:
            load(lambda r=r: r.pipeline(transaction=False), indices)
    model.loaded_at = time.time()
    return model


def verify(model: Model, masters: dict[str, redis.Redis], owner: Callable[[int], str]) -> list[str]:
    """Every key read from its slot's owner as loaded (TTL too); placement over all nodes."""
    by_owner: dict[str, list[int]] = {}
    for i in range(model.n):
        by_owner.setdefault(owner(key_hash_slot(key_name(i))), []).append(i)
    problems = []
    for name, indices in by_owner.items():
        problems += verify_contents(masters[name], model, name, indices)
    problems += placement(masters, owner, model.n)
    for client in masters.values():
        client.close()
    return problems


# ---------------------------------------------------------------- report


def version_of(cmd: Sequence[str], pattern: str) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    found = re.search(pattern, done.stdout + done.stderr)
    return found.group(1) if found and done.returncode == 0 else "unknown"


def fmt(x: float | None, spec: str = ".0f") -> str:
    return "-" if x is None else format(x, spec)


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}"


def print_report(results: list[Result], args: argparse.Namespace) -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    server = version_of(["redis-server", "--version"], r"v=(\S+)")
    print(
        f"\n{args.keys} keys (6 types, half with TTL), {MOVE_SLOTS} slots moved to a 4th node, "
        f"slotwarden rate {args.rate or 'unlimited'} keys/s, batch {args.batch}, "
        f"{os.cpu_count()} cores, load {load:.1f}, redis-server {server}, python "
        f"{platform.python_version()}"
    )
    head = ("system        | keys moved | move s | keys/s | client        | ops/s before | "
            "during | during/before | p99 ms before | during | errors | verified")  # fmt: skip
    print(head)
    print("-" * len(head))
    for r in results:
        for n, (name, w) in enumerate(r.loops.items() or [("-", {})]):
            lead = (
                f"{r.system:<13} | {fmt(r.keys_moved, 'd'):>10} | {fmt(r.move_s, '.1f'):>6} "
                f"| {fmt(r.keys_per_s):>6}"
                if n == 0
                else f"{'':<13} | {'':>10} | {'':>6} | {'':>6}"
            )
            verified = ("ok" if not r.problems else f"{len(r.problems)} PROBLEMS") if n == 0 else ""
            errs = str(r.error_count) if n == 0 else ""
            print(
                f"{lead} | {name:<13} | {fmt(w.get('before')):>12} | {fmt(w.get('during')):>6} | "
                f"{ratio(w.get('during'), w.get('before')):>13} | "
                f"{fmt(w.get('p99_before'), '.2f'):>13} | {fmt(w.get('p99_during'), '.2f'):>6} | "
                f"{errs:>6} | {verified}"
            )
    by = {r.system: r for r in results}
    if len(by) == 2:
        sw, rc = by["slotwarden"], by["redis-cluster"]
        print(f"slotwarden / redis-cluster: keys/s {ratio(sw.keys_per_s, rc.keys_per_s)}, "
              f"move time {ratio(sw.move_s, rc.move_s)}", end="")  # fmt: skip
        for name in ("other slots", "moving slots"):
            a, b = sw.loops.get(name, {}), rc.loops.get(name, {})
            print(f", {name} ops/s during {ratio(a.get('during'), b.get('during'))}", end="")
        print()
    for r in results:
        print(f"{r.system}: moved slots {r.moved_slots or '-'}")
        for note in r.notes:
            print(f"{r.system} note: {note}")
        for e in r.errors[:5]:
            print(f"{r.system} client error: {e}")
    problems = [(r.system, p) for r in results for p in r.problems]
    if problems:
        print("PROBLEMS:")
        for system, p in problems[:40]:
            print(f"  {system}: {p}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=200_000)
    ap.add_argument("--systems", default=",".join(reversed(SYSTEMS)))
    ap.add_argument("--rate", type=int, default=0,
                    help="slotwarden's sentinel.migration.keys_per_second (0: none)")  # fmt: skip
    ap.add_argument("--batch", type=int, default=100,
                    help="keys per MIGRATE: batch_keys / --cluster-pipeline")  # fmt: skip
    ap.add_argument("--measure-s", type=float, default=5.0, help="client loops before the move")
    ap.add_argument("--timeout", type=float, default=0.0,
                    help="seconds a move may take (default 60 + keys/500)")  # fmt: skip
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    args.timeout = args.timeout or 60 + args.keys / 500
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    chosen = [s.strip() for s in args.systems.split(",") if s.strip()]
    bad = [s for s in chosen if s not in SYSTEMS]
    if bad:
        ap.error(f"unknown system {', '.join(bad)}; choose from {', '.join(SYSTEMS)}")
    if not shutil.which("redis-server"):
        print("redis-server not found (apt-get install redis-server)", file=sys.stderr)
        return 2
    if "redis-cluster" in chosen and not shutil.which("redis-cli"):
        print("redis-cluster not available: apt-get install redis-tools", file=sys.stderr)
        chosen.remove("redis-cluster")
    results: list[Result] = []
    moving = default_moving()
    if "redis-cluster" in chosen:  # first: slotwarden then moves the slots it moved
        rc, moved = run_redis_cluster(args)
        results.append(rc)
        moving = moved or moving
        print(f"redis-cluster: {fmt(rc.move_s, '.1f')} s, {fmt(rc.keys_moved, 'd')} keys",
              flush=True)  # fmt: skip
    if "slotwarden" in chosen:
        sw = run_slotwarden(args, moving)
        results.insert(0, sw)
        print(f"slotwarden: {fmt(sw.move_s, '.1f')} s, {fmt(sw.keys_moved, 'd')} keys", flush=True)
    print_report(results, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{**r.__dict__, "keys_per_s": r.keys_per_s} for r in results], f, indent=2)
    return 1 if any(r.problems for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
