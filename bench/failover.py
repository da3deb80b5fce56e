#!/usr/bin/env python3
"""Failover under faults: slotwarden beside Redis Sentinel, in the same run.

Scenarios (``--scenario``, default all; ``--trials N`` of each, per system):

- ``kill9``: ``kill -9`` the master of a synced pair.
- ``sigstop``: SIGSTOP the master for 5 s, then SIGCONT (a hung master that comes back).
- ``leader-kill``: ``kill -9`` the master, then ``kill -9`` the sentinel that logs
  that it won the election (slotwarden ``[elected]``, Redis ``+elected-leader``) as
  soon as the script sees that line (its log is polled every 5 ms).
- ``unsynced``: the only replica is in its initial sync (``master_sync_in_progress:1``,
  none of the data: the master writes its RDB at 1 ms per key, Redis 7's
  ``rdb-key-save-delay 1000``) when the master is killed.
- ``quick-restart``: ``kill -9`` the master and start it again, empty (no
  persistence), on the same port 0.5 s later; writes go on for 6 s after the
  kill, so whatever the sentinels do with it has happened before the final read.

Systems: **slotwarden** (2 shards with a replica each, 3 ``slotwarden sentinel``
processes, one router; writers use keys of shard a through the router) and
**redis-sentinel** (one master + replica, 3 ``redis-sentinel`` processes, quorum
2, same ``down-after-milliseconds``, ``failover-timeout`` 10 s; writers use a
redis-py ``Sentinel.master_for`` client).

Each trial: fresh processes; the master gets ``--preload`` keys (acknowledged
MSETs) and writers INCR their own key in a loop; then (except ``unsynced``) the
script waits until the replica has every write, injects the fault and measures:

- recovery: from the fault until the first acknowledged reply to a write sent
  after the fault (reply time, so a hung master's late reply counts when it
  comes); none within the timeout = not recovered (the shard stayed down);
- acked lost: preloaded keys missing plus acknowledged INCRs missing from the
  final counters (only when the shard answers at the end);
- client errors: writes that got an error or a timeout after the fault.

Invariant: every process started here is stopped and its temp dir removed,
whatever happens (try/finally per trial).

Usage: python bench/failover.py [--scenario kill9,sigstop,...] [--trials N]
       [--systems slotwarden,redis-sentinel] [--down-after-ms MS] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
import yaml
from redis.sentinel import Sentinel

from slotwarden.cluster.slots import key_hash_slot
from slotwarden.procs import (
    RedisFarm,
    RedisProc,
    RouterProc,
    free_port,
    sentinel_section,
    start_sentinels,
    wait_for_port,
)

SECRET = "bench-failover-secret"
FAILOVER_TIMEOUT_MS = 10000  # both systems
AFTER_RECOVERY_S = 1.0  # keep writing this long after the first acknowledged write
STOP_S = 5.0  # sigstop: how long the master stays stopped (writes go on 3 s more)
RESTART_AFTER_S = 0.5  # quick-restart: delay before the empty master is back
RESTART_OBSERVE_S = 6.0  # quick-restart: keep writing this long after the kill
SCENARIOS = ("kill9", "sigstop", "leader-kill", "unsynced", "quick-restart")
TIMEOUTS = {"kill9": 20.0, "sigstop": 20.0, "leader-kill": 35.0, "unsynced": 12.0,
            "quick-restart": 20.0}  # fmt: skip


@dataclass
class Writers:
    """Threads that INCR their own key in a loop; count acknowledgements and errors."""

    make_client: Callable[[], redis.Redis]
    keys: list[str]
    acked: dict[str, int] = field(default_factory=dict)
    replies: list[tuple[float, float]] = field(default_factory=list)  # (sent, replied)
    errors: list[float] = field(default_factory=list)  # when each error came
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for key in self.keys:
            self.acked[key] = 0
            t = threading.Thread(target=self._run, args=(key,), daemon=True)
            t.start()
            self.threads.append(t)

    def _run(self, key: str) -> None:
        client = self.make_client()
        while not self.stop.is_set():
            sent = time.monotonic()
            try:
                client.incr(key)
            except (redis.RedisError, OSError):
                self.errors.append(time.monotonic())
                time.sleep(0.005)
                continue
            self.acked[key] += 1
            self.replies.append((sent, time.monotonic()))

    def first_reply_after(self, t0: float) -> float | None:
        """When the first acknowledged write sent after ``t0`` got its reply."""
        after = [r for s, r in list(self.replies) if s > t0]
        return min(after) if after else None

    def errors_after(self, t0: float) -> int:
        return sum(1 for t in list(self.errors) if t > t0)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=5)


def wait_in_sync(master: redis.Redis, replica: redis.Redis, timeout: float = 10.0) -> None:
    """WAIT 1 on the master, then until the replica's offset reaches the master's."""
    master.execute_command("WAIT", 1, 1000)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = master.info("replication")["master_repl_offset"]
        r = replica.info("replication").get("slave_repl_offset", -1)
        if r >= m:
            return
        time.sleep(0.01)
    raise TimeoutError("replica did not catch up")


def wait_initial_sync(replica: redis.Redis, timeout: float = 10.0) -> None:
    """Until the replica reports an initial sync in progress."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if replica.info("replication").get("master_sync_in_progress") == 1:
            return
        time.sleep(0.05)
    raise TimeoutError("replica did not start its initial sync")


def keys_for_slots(lo: int, hi: int, count: int, prefix: str) -> list[str]:
    out: list[str] = []
    i = 0
    while len(out) < count:
        k = f"{prefix}{i}"
        if lo <= key_hash_slot(k.encode()) <= hi:
            out.append(k)
        i += 1
    return out


def preload(master: redis.Redis, tag: str, count: int) -> list[str]:
    """``count`` keys ``pre:{tag}:i`` (one slot), acknowledged by the master."""
    keys = [f"pre:{{{tag}}}:{i}" for i in range(count)]
    pipe = master.pipeline(transaction=False)
    for i in range(0, count, 1000):
        pipe.mset({k: "v" * 32 for k in keys[i : i + 1000]})
    pipe.execute()
    return keys


def count_present(client: redis.Redis, keys: list[str]) -> int:
    return sum(int(client.exists(*keys[i : i + 1000])) for i in range(0, len(keys), 1000))


def final_lost(
    writers: Writers, client: redis.Redis, pre: list[str], timeout: float = 10.0
) -> tuple[int, int]:
    """(acknowledged INCRs missing from the final counters, preloaded keys missing); read
    with retries: right after a failover a read may meet a connection being replaced."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            incr = sum(max(n - int(client.get(k) or 0), 0) for k, n in writers.acked.items())
            return incr, len(pre) - count_present(client, pre)
        except (redis.RedisError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class LogWatch:
    """Polls log files for a sentinel's election line; kills that sentinel at once."""

    def __init__(self, files: list[str], pattern: str, procs: dict[str, subprocess.Popen[bytes]]):
        self.files, self.pattern, self.procs = files, re.compile(pattern), procs
        self.offsets = {f: os.path.getsize(f) if os.path.exists(f) else 0 for f in files}
        self.killed: str | None = None
        self.killed_at: float | None = None
        self.then: Callable[[], str] | None = None  # called right after the kill
        self.then_result = ""
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> LogWatch:
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.is_set():
            for i, f in enumerate(self.files):
                if not os.path.exists(f):
                    continue
                with open(f, "rb") as fh:
                    fh.seek(self.offsets[f])
                    text = fh.read().decode(errors="replace")
                m = self.pattern.search(text)
                if m:
                    who = m.group(1) if m.groups() else str(i)
                    self.procs[who].kill()
                    self.killed, self.killed_at = who, time.monotonic()
                    if self.then is not None:
                        try:
                            self.then_result = self.then()
                        except (redis.RedisError, OSError) as exc:
                            self.then_result = repr(exc)
                    return
            time.sleep(0.005)


# ---------------------------------------------------------------- the two systems


@dataclass
class Rig:
    """One system's processes for one trial; ``close`` stops them all."""

    farm: RedisFarm
    master: RedisProc
    replica: RedisProc
    client: Callable[[], redis.Redis]  # a client of the shard, for writers and the final read
    keys: list[str]  # writers' keys
    tag: str  # hash tag for preloaded keys
    sentinels: dict[str, subprocess.Popen[bytes]]
    leader_watch: Callable[[], LogWatch]
    refusals: Callable[[], str] = lambda: ""  # the system's own word for a refused failover
    stops: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for stop in self.stops:
            try:
                stop()
            except Exception as exc:  # keep stopping the rest
                print(f"cleanup: {exc!r}", file=sys.stderr)
        for p in self.sentinels.values():
            if p.poll() is None:
                p.terminate()
        for p in self.sentinels.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        self.farm.close()


def start_pair(farm: RedisFarm, unsynced: bool, n_pre: int, tag: str) -> tuple[RedisProc, ...]:
    """Master (preloaded) and its replica; in sync unless ``unsynced``."""
    # unsynced: the master's RDB for the replica takes >= 1 ms per key (Redis 7's
    # rdb-key-save-delay, in microseconds), so the initial sync outlasts the trial
    extra = ["--repl-diskless-sync", "no", "--rdb-key-save-delay", "1000"] if unsynced else []
    master = farm.start(extra)
    preload(redis.Redis(port=master.port), tag, n_pre)
    replica = farm.start(["--replicaof", "127.0.0.1", str(master.port)])
    if unsynced:
        wait_initial_sync(redis.Redis(port=replica.port))
    return master, replica


def rig_slotwarden(down_after_ms: int, n_writers: int, unsynced: bool, n_pre: int) -> Rig:
    farm = RedisFarm()
    rig = None
    try:
        tag = next(t for t in (f"t{i}" for i in range(100)) if key_hash_slot(t.encode()) < 8192)
        ma, ra = start_pair(farm, unsynced, n_pre, tag)
        mb = farm.start()
        rb = farm.start(["--replicaof", "127.0.0.1", str(mb.port)])
        router_port, admin_port = free_port(), free_port()
        sentinels = sentinel_section(farm.root, down_after_ms, FAILOVER_TIMEOUT_MS)
        config = {
            "name": "bench",
            "router": {"listen": f"127.0.0.1:{router_port}", "admin": f"127.0.0.1:{admin_port}"},
            "shards": [
                {"name": "a", "slots": "0-8191", "master": ma.addr, "replicas": [ra.addr]},
                {"name": "b", "slots": "8192-16383", "master": mb.addr, "replicas": [rb.addr]},
            ],
            "sentinel": sentinels,
        }
        path = os.path.join(farm.root, "cluster.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(config, f)
        log_path = os.path.join(farm.root, "sentinels.log")
        env = {**os.environ, "SLOTWARDEN_SECRET": SECRET}
        peers = sentinels["peers"]
        procs = start_sentinels(path, peers, env, log_path)  # type: ignore[arg-type]
        by_id = {p["id"]: proc for p, proc in zip(peers, procs, strict=True)}  # type: ignore[union-attr, index]
        rig = Rig(
            farm, ma, ra,
            lambda: redis.Redis(port=router_port, protocol=2, socket_timeout=2),
            keys_for_slots(0, 8191, n_writers, "ctr:"), tag, by_id,
            lambda: LogWatch([log_path], r"\[elected\] epoch \d+: (\S+) elected leader", by_id),
        )  # fmt: skip
        rig.refusals = lambda: refused_in(log_path)
        router = RouterProc(path, router_port, os.path.join(farm.root, "router.log"), env=env)
        rig.stops.append(router.stop)
        router.start()
        return rig
    except BaseException:
        if rig is not None:
            rig.close()
        else:
            farm.close()
        raise


def rig_redis_sentinel(down_after_ms: int, n_writers: int, unsynced: bool, n_pre: int) -> Rig:
    binary = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"
    farm = RedisFarm()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    rig = None
    try:
        master, replica = start_pair(farm, unsynced, n_pre, "t")
        ports = [free_port() for _ in range(3)]
        logs = []
        for port in ports:
            d = os.path.join(farm.root, f"sentinel-{port}")
            os.makedirs(d)
            conf = os.path.join(d, "sentinel.conf")
            logs.append(os.path.join(d, "sentinel.log"))
            with open(conf, "w") as f:
                f.write(
                    f"port {port}\nbind 127.0.0.1\ndir {d}\nlogfile {logs[-1]}\n"
                    f"sentinel monitor mymaster 127.0.0.1 {master.port} 2\n"
                    f"sentinel down-after-milliseconds mymaster {down_after_ms}\n"
                    f"sentinel failover-timeout mymaster {FAILOVER_TIMEOUT_MS}\n"
                    "sentinel parallel-syncs mymaster 1\n"
                )
            procs[str(len(procs))] = subprocess.Popen(
                [binary, conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        sentinel = Sentinel([("127.0.0.1", p) for p in ports], socket_timeout=0.5)
        rig = Rig(
            farm, master, replica,
            lambda: sentinel.master_for("mymaster", socket_timeout=0.5, protocol=2),
            [f"ctr:{i}" for i in range(n_writers)], "t", procs,
            lambda: LogWatch(logs, r"\+elected-leader", procs),
        )  # fmt: skip
        for port in ports:
            wait_for_port("127.0.0.1", port, timeout=10)
        # the sentinels must know each other and the replica before a kill can
        # reach quorum and a majority (they discover both through the master)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            info = [redis.Redis(port=p, protocol=2).sentinel_master("mymaster") for p in ports]
            if all(i["num-other-sentinels"] == 2 and i["num-slaves"] == 1 for i in info):
                break
            time.sleep(0.1)
        else:
            raise TimeoutError("redis-sentinels did not discover each other")
        return rig
    except BaseException:
        if rig is not None:
            rig.close()
        else:
            for p in procs.values():
                p.kill()
                p.wait(timeout=10)
            farm.close()
        raise


def refused_in(log_path: str) -> str:
    """How often slotwarden's sentinels logged a refused failover, with the first reason."""
    with open(log_path, errors="replace") as f:
        found = re.findall(r"\[failover-refused\] (.*)", f.read())
    return f"{len(found)}x failover-refused: {found[0][:120]}" if found else ""


RIGS = {"slotwarden": rig_slotwarden, "redis-sentinel": rig_redis_sentinel}


# ---------------------------------------------------------------- one trial


def trial(system: str, scenario: str, args: argparse.Namespace) -> dict[str, object]:
    timeout = args.timeout or TIMEOUTS[scenario]
    unsynced = scenario == "unsynced"
    rig = RIGS[system](args.down_after_ms, args.writers, unsynced, args.preload)
    try:
        m = redis.Redis(port=rig.master.port)
        pre = [f"pre:{{{rig.tag}}}:{i}" for i in range(args.preload)]
        writers = Writers(rig.client, rig.keys)
        writers.start()
        time.sleep(0.5)
        if not unsynced:
            wait_in_sync(m, redis.Redis(port=rig.replica.port))
        note = ""
        watch: LogWatch | None = None
        timer: threading.Timer | None = None
        if scenario == "sigstop":
            rig.master.kill(signal.SIGSTOP)
            t0 = time.monotonic()
            timer = threading.Timer(STOP_S, rig.master.kill, args=(signal.SIGCONT,))
            timer.start()
        else:
            if scenario == "leader-kill":
                watch = rig.leader_watch()
                replica = redis.Redis(port=rig.replica.port, socket_timeout=1)
                watch.then = lambda: str(replica.info("replication")["role"])
                watch.start()
            rig.master.kill(signal.SIGKILL)
            t0 = time.monotonic()
            if scenario == "quick-restart":
                time.sleep(RESTART_AFTER_S)
                rig.master.start()  # same port, same args, no persistence: empty
        deadline = t0 + timeout
        replied = None
        while time.monotonic() < deadline:
            replied = writers.first_reply_after(t0)
            if replied is not None:
                break
            time.sleep(0.01)
        if watch is not None:
            watch.stop.set()
            if watch.killed_at is None:
                note = "no election seen, no leader killed"
            else:
                note = (
                    f"leader killed {watch.killed_at - t0:.2f} s after the master, "
                    f"replica then: {watch.then_result}"
                )
        # keep writing: a SIGSTOPped master must have resumed, then a little longer
        end = max(time.monotonic() + AFTER_RECOVERY_S, t0 + STOP_S + 3 if timer else 0)
        if scenario == "quick-restart":
            end = max(end, t0 + RESTART_OBSERVE_S)
        time.sleep(max(end - time.monotonic(), 0))
        writers.finish()
        if timer is not None:
            timer.cancel()
            rig.master.kill(signal.SIGCONT)
        recovery = None if replied is None else replied - t0
        lost: int | None = None
        lost_incr = lost_keys = None
        if recovery is not None:
            lost_incr, lost_keys = final_lost(writers, rig.client(), pre)
            lost = lost_incr + lost_keys
        else:
            note = (note + "; " if note else "") + f"shard down {timeout:.0f} s (no write acked)"
        refused = rig.refusals()
        if refused:
            note = (note + "; " if note else "") + refused
        return {"recovery_s": recovery, "lost": lost, "lost_incr": lost_incr,
                "lost_keys": lost_keys, "acked": sum(writers.acked.values()),
                "errors": writers.errors_after(t0), "note": note}  # fmt: skip
    finally:
        rig.close()


# ---------------------------------------------------------------- report


def summarize(scenario: str, system: str, rs: list[dict[str, object]]) -> dict[str, object]:
    times = [float(r["recovery_s"]) for r in rs if r.get("recovery_s") is not None]  # type: ignore[arg-type]
    lost = [int(r["lost"]) for r in rs if r.get("lost") is not None]  # type: ignore[call-overload]
    errs = [int(r.get("errors") or 0) for r in rs]  # type: ignore[call-overload]
    # one note per kind: addresses and times vary between trials (each trial's own
    # line and the JSON keep them)
    kinds = [
        re.sub(r"\d+\.\d+ s", "~s", re.sub(r"127\.0\.0\.1:\d+", "the replica", str(n)))
        for r in rs
        for n in (r.get("note"), r.get("error") and f"ERROR {r['error']}")
        if n
    ]
    notes = [f"{k} ({kinds.count(k)}/{len(rs)})" for k in sorted(set(kinds))]
    return {
        "scenario": scenario,
        "system": system,
        "trials": len(rs),
        "recovered": len(times),
        "recovery_median_s": statistics.median(times) if times else None,
        "recovery_worst_s": max(times) if times else None,
        "lost_median": statistics.median(lost) if lost else None,
        "lost_worst": max(lost) if lost else None,
        "lost_worst_split": max(  # (INCRs, keys) of the worst trial
            ((r["lost_incr"], r["lost_keys"]) for r in rs if r.get("lost") is not None),
            key=lambda p: p[0] + p[1],  # type: ignore[operator]
            default=None,
        ),
        "errors_median": statistics.median(errs) if errs else None,
        "notes": notes,
    }


def fmt(x: object, unit: str = "") -> str:
    if x is None:
        return "-"
    return f"{x:.2f}{unit}" if isinstance(x, float) else f"{x}{unit}"


def print_table(summary: list[dict[str, object]]) -> None:
    print(
        "scenario      | system         | recovered | recovery median | worst s "
        "| acked lost median | worst (INCRs+keys) | client errors median | notes"
    )
    print("-" * 150)
    for s in summary:
        rec = f"{s['recovered']}/{s['trials']}"
        split = s["lost_worst_split"]
        worst = "-" if split is None else f"{split[0] + split[1]} ({split[0]}+{split[1]})"  # type: ignore[index]
        print(
            f"{s['scenario']:<13} | {s['system']:<14} | {rec:>9} | "
            f"{fmt(s['recovery_median_s'], ' s'):>15} | {fmt(s['recovery_worst_s'], ' s'):>7} | "
            f"{fmt(s['lost_median']):>17} | {worst:>18} | {fmt(s['errors_median']):>20} | "
            f"{'; '.join(s['notes'])}"  # type: ignore[arg-type]
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=",".join(SCENARIOS), help="comma-separated")
    ap.add_argument("--trials", type=int, default=3, help="per scenario and system")
    ap.add_argument("--down-after-ms", type=int, default=1000)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--preload", type=int, default=20000, help="keys written before the fault")
    ap.add_argument("--timeout", type=float, default=0.0,
                    help="seconds to wait for recovery (default: per scenario)")  # fmt: skip
    ap.add_argument("--systems", default="slotwarden,redis-sentinel")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so each trial's finally stops what it started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    scenarios = [s.strip() for s in args.scenario.split(",") if s.strip()]
    bad = [s for s in scenarios if s not in SCENARIOS]
    if bad:
        ap.error(f"unknown scenario {', '.join(bad)}; choose from {', '.join(SCENARIOS)}")
    chosen = [s.strip() for s in args.systems.split(",") if s.strip()]
    if "redis-sentinel" in chosen and not (
        shutil.which("redis-sentinel") or os.path.exists("/usr/bin/redis-sentinel")
    ):
        print("redis-sentinel not available: apt-get install redis-sentinel", file=sys.stderr)
        chosen.remove("redis-sentinel")
    results: dict[tuple[str, str], list[dict[str, object]]] = {}
    for scenario in scenarios:
        for n in range(args.trials):
            for system in chosen:  # interleaved, so both see the same machine state
                try:
                    r = trial(system, scenario, args)
                except Exception as exc:  # one broken trial is reported, not fatal
                    r = {"recovery_s": None, "lost": None, "errors": None, "error": repr(exc)[:200]}
                results.setdefault((scenario, system), []).append(r)
                print(
                    f"{scenario} trial {n + 1} {system}: recovery {fmt(r['recovery_s'], ' s')}, "
                    f"lost {fmt(r.get('lost_incr'))} of {fmt(r.get('acked'))} acked INCRs and "
                    f"{fmt(r.get('lost_keys'))} of {args.preload} keys, "
                    f"{fmt(r['errors'])} client errors"
                    + (f" ({r.get('note') or r.get('error')})" if r.get("note") or r.get("error")
                       else ""),
                    flush=True,
                )  # fmt: skip
    summary = [summarize(sc, sy, rs) for (sc, sy), rs in results.items()]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"\ndown_after_ms={args.down_after_ms}, failover_timeout_ms={FAILOVER_TIMEOUT_MS}, "
        f"{args.trials} trials, {args.writers} writers (INCR), {args.preload} preloaded keys, "
        f"{os.cpu_count()} cores, load {load:.1f}"
    )
    print_table(summary)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"summary": summary, "trials": {f"{k[0]}/{k[1]}": v for k, v in results.items()}},
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
