#!/usr/bin/env python3
"""Failover: recovery time and acknowledged writes lost after ``kill -9`` of a master.

Runs N trials (default 10) of each system, side by side in one run:

- **slotwarden**: 2 shards (master + replica each), 3 ``slotwarden sentinel``
  processes, one router; writers INCR keys of shard a through the router.
- **redis-sentinel**: one master + replica, 3 ``redis-sentinel`` processes
  (Debian package ``redis-sentinel``) with the same ``down-after-milliseconds``
  and quorum 2; writers INCR through a redis-py ``Sentinel.master_for`` client.

Each trial: fresh processes, steady writes, wait until the replica has every
write (WAIT 1 on the master, then equal replication offsets), ``kill -9`` the
master, and measure the time from the kill until the first successful write to
that shard, and the acknowledged INCRs minus the final counters (lost writes).
Prints median and worst for both systems.

Invariant: every process started here is stopped and its temp dir removed,
whatever happens (try/finally per trial).

Usage: python bench/failover.py [--trials N] [--down-after-ms MS] [--writers W] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
import yaml
from redis.sentinel import Sentinel

from slotwarden.cluster.slots import key_hash_slot
from slotwarden.procs import (
    RedisFarm,
    RouterProc,
    free_port,
    sentinel_section,
    start_sentinels,
    wait_for_port,
)

SECRET = "bench-failover-secret"
AFTER_RECOVERY_S = 1.0  # keep writing this long after the first successful write


@dataclass
class Writers:
    """Threads that INCR their own key in a loop and count acknowledgements."""

    make_client: Callable[[], redis.Redis]
    keys: list[str]
    acked: dict[str, int] = field(default_factory=dict)
    successes: list[float] = field(default_factory=list)  # when each acked INCR was sent
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
                time.sleep(0.005)
                continue
            self.acked[key] += 1
            self.successes.append(sent)

    def first_success_after(self, t0: float) -> float | None:
        """When the first write that was sent after ``t0`` and acknowledged was sent."""
        after = [t for t in list(self.successes) if t > t0]
        return min(after) if after else None

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


def measure(writers: Writers, kill: Callable[[], None], timeout: float) -> float | None:
    """Kill, then wait for the first acknowledged write sent after the kill;
    seconds from the kill until that write was sent (the write itself took
    under a millisecond), or None on timeout."""
    kill()  # returns once the process is gone
    t0 = time.monotonic()  # after the kill: a write acked before it died is not "recovery"
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        first = writers.first_success_after(t0)
        if first is not None:
            time.sleep(AFTER_RECOVERY_S)
            return first - t0
        time.sleep(0.01)
    return None


def keys_for_slots(lo: int, hi: int, count: int, prefix: str) -> list[str]:
    out: list[str] = []
    i = 0
    while len(out) < count:
        k = f"{prefix}{i}"
        if lo <= key_hash_slot(k.encode()) <= hi:
            out.append(k)
        i += 1
    return out


def lost_writes(writers: Writers, final: Callable[[str], int], timeout: float = 10.0) -> int:
    """Acknowledged INCRs missing from the final counters (read with retries:
    right after a failover a read may still meet a connection being replaced)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return sum(max(acked - final(key), 0) for key, acked in writers.acked.items())
        except (redis.RedisError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# ---------------------------------------------------------------- slotwarden


def trial_slotwarden(down_after_ms: int, n_writers: int, timeout: float) -> dict[str, object]:
    farm = RedisFarm()
    procs: list[subprocess.Popen[bytes]] = []
    router: RouterProc | None = None
    env = {**os.environ, "SLOTWARDEN_SECRET": SECRET}
    try:
        ma, mb = farm.start(), farm.start()
        ra = farm.start(["--replicaof", "127.0.0.1", str(ma.port)])
        rb = farm.start(["--replicaof", "127.0.0.1", str(mb.port)])
        router_port, admin_port = free_port(), free_port()
        sentinels = sentinel_section(farm.root, down_after_ms, 10000)
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
        log_path = os.path.join(farm.root, "procs.log")
        procs += start_sentinels(path, sentinels["peers"], env, log_path)  # type: ignore[arg-type]
        router = RouterProc(path, router_port, log_path, env=env).start()
        keys = keys_for_slots(0, 8191, n_writers, "ctr:")
        writers = Writers(lambda: redis.Redis(port=router_port, protocol=2, socket_timeout=2), keys)
        writers.start()
        time.sleep(0.5)
        wait_in_sync(redis.Redis(port=ma.port), redis.Redis(port=ra.port))
        recovery = measure(writers, lambda: ma.kill(signal.SIGKILL), timeout)
        writers.finish()
        check = redis.Redis(port=router_port, protocol=2, socket_timeout=5)
        lost = lost_writes(writers, lambda k: int(check.get(k) or 0))
        epoch = json.loads(
            urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/topology", timeout=5).read()
        )["epoch"]
        return {"recovery_s": recovery, "lost": lost, "acked": sum(writers.acked.values()),
                "epoch": epoch}  # fmt: skip
    finally:
        if router is not None:
            router.stop()
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        farm.close()


# ---------------------------------------------------------------- Redis Sentinel


def trial_redis_sentinel(down_after_ms: int, n_writers: int, timeout: float) -> dict[str, object]:
    binary = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"
    farm = RedisFarm()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        master = farm.start()
        replica = farm.start(["--replicaof", "127.0.0.1", str(master.port)])
        ports = [free_port() for _ in range(3)]
        for port in ports:
            d = os.path.join(farm.root, f"sentinel-{port}")
            os.makedirs(d)
            conf = os.path.join(d, "sentinel.conf")
            with open(conf, "w") as f:
                f.write(
                    f"port {port}\nbind 127.0.0.1\ndir {d}\n"
                    f"sentinel monitor mymaster 127.0.0.1 {master.port} 2\n"
                    f"sentinel down-after-milliseconds mymaster {down_after_ms}\n"
                    "sentinel failover-timeout mymaster 10000\n"
                    "sentinel parallel-syncs mymaster 1\n"
                )
            procs.append(
                subprocess.Popen(
                    [binary, conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
        for port in ports:
            wait_for_port("127.0.0.1", port, timeout=10)
        sentinel = Sentinel([("127.0.0.1", p) for p in ports], socket_timeout=0.5)
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

        def client() -> redis.Redis:
            return sentinel.master_for("mymaster", socket_timeout=0.5, protocol=2)

        keys = [f"ctr:{i}" for i in range(n_writers)]
        writers = Writers(client, keys)
        writers.start()
        time.sleep(0.5)
        wait_in_sync(redis.Redis(port=master.port), redis.Redis(port=replica.port))
        recovery = measure(writers, lambda: master.kill(signal.SIGKILL), timeout)
        writers.finish()
        if recovery is None:
            views = [redis.Redis(port=p, protocol=2).sentinel_master("mymaster") for p in ports]
            print(f"redis-sentinel did not fail over: {[v.get('flags') for v in views]}")
            return {"recovery_s": None, "lost": 0, "acked": sum(writers.acked.values())}
        check = client()
        lost = lost_writes(writers, lambda k: int(check.get(k) or 0))
        return {"recovery_s": recovery, "lost": lost, "acked": sum(writers.acked.values())}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
        farm.close()


# ---------------------------------------------------------------- report


def summarize(name: str, results: list[dict[str, object]]) -> dict[str, object]:
    times = [r["recovery_s"] for r in results if r["recovery_s"] is not None]
    failed = len(results) - len(times)
    lost = [int(r["lost"]) for r in results]  # type: ignore[call-overload]
    return {
        "system": name,
        "trials": len(results),
        "recovered": len(times),
        "recovery_median_s": statistics.median(times) if times else None,
        "recovery_worst_s": max(times) if times else None,
        "lost_total": sum(lost),
        "lost_worst": max(lost) if lost else 0,
        "not_recovered": failed,
    }


def fmt(x: object) -> str:
    return f"{x:.2f}" if isinstance(x, float) else str(x)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--down-after-ms", type=int, default=1000)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for recovery")
    ap.add_argument("--systems", default="slotwarden,redis-sentinel")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    systems = {"slotwarden": trial_slotwarden, "redis-sentinel": trial_redis_sentinel}
    chosen = [s.strip() for s in args.systems.split(",") if s.strip()]
    if "redis-sentinel" in chosen and not (
        shutil.which("redis-sentinel") or os.path.exists("/usr/bin/redis-sentinel")
    ):
        print("redis-sentinel not available: apt-get install redis-sentinel", file=sys.stderr)
        chosen.remove("redis-sentinel")
    results: dict[str, list[dict[str, object]]] = {s: [] for s in chosen}
    for trial in range(args.trials):
        for name in chosen:  # interleaved, so both see the same machine state
            try:
                r = systems[name](args.down_after_ms, args.writers, args.timeout)
            except Exception as exc:  # one broken trial is reported, not fatal
                r = {"recovery_s": None, "lost": 0, "acked": 0, "error": repr(exc)[:300]}
                print(f"trial {trial + 1} {name}: ERROR {r['error']}", flush=True)
            results[name].append(r)
            print(
                f"trial {trial + 1} {name}: recovery {fmt(r['recovery_s'])} s, "
                f"lost {r['lost']} of {r['acked']} acked",
                flush=True,
            )
    summary = [summarize(name, rs) for name, rs in results.items()]
    print(
        f"\nkill -9 of a master, down_after_ms={args.down_after_ms}, {args.trials} trials, "
        f"{args.writers} writers (INCR), machine: {os.cpu_count()} cores"
    )
    print(
        "system          | recovery median s | recovery worst s | lost writes (total/worst) "
        "| not recovered"
    )
    for s in summary:
        print(
            f"{s['system']:<15} | {fmt(s['recovery_median_s']):>17} | "
            f"{fmt(s['recovery_worst_s']):>16} | {s['lost_total']:>11}/{s['lost_worst']:<13} "
            f"| {s['not_recovered']}"
        )
    sw = next((s for s in summary if s["system"] == "slotwarden"), None)
    if sw is not None and sw["recovery_median_s"] is not None:
        ok = sw["recovery_median_s"] <= 1.5 and sw["lost_total"] == 0
        print(f"target (median recovery <= 1.5 s, 0 lost): {'PASS' if ok else 'MISS'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "trials": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
