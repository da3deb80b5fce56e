"""A whole slotwarden cluster as real processes, edited live: the resharding rig.

Owns what `tests/integration/test_resharding.py` and `bench/reshard.py` share
about the PROCESSES of a resharding run (the data is `slotwarden.dataset`):
`ReshardRig` starts shards (a master + replicas each, redis-servers of a
`RedisFarm`), three ``slotwarden sentinel`` processes and one or more
``slotwarden router`` processes; `set_layout` rewrites cluster.yaml (slots per
shard; a shard left out is removed, a new one added) the way an operator does,
and `wait_settled` waits until the sentinels publish exactly that layout with no
migration left and every router runs that epoch. Faults: `kill_master`,
`kill_sentinel` (kill -9).

Every router has its own copy of the file, differing only in ``router.listen`` /
``router.admin`` (two routers cannot share one admin address, and there is no
``--admin`` flag); `set_layout` writes every copy. Routers that watch sentinels
take the slot map from them, never from their file.

Invariant: like `slotwarden.procs` (whose helpers it uses), this module starts
the router and the sentinels as subprocesses and imports neither; `close` stops
every process it started and removes the temp dir.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import redis
import yaml

from slotwarden.cluster.slots import format_ranges, parse_ranges
from slotwarden.cluster.topology import SlotMap
from slotwarden.procs import (
    RedisFarm,
    RedisProc,
    RouterProc,
    free_port,
    http_call,
    sentinel_section,
    start_sentinels,
    wait_for_port,
)

SECRET = "reshard-rig-secret-not-logged"
HTTP_TIMEOUT_S = 5.0


def even_layout(names: list[str]) -> dict[str, str]:
    """The 16384 slots split evenly over ``names`` (as `procs.write_cluster_yaml`)."""
    n = len(names)
    bounds = [round(i * 16384 / n) for i in range(n + 1)]
    return {name: f"{bounds[i]}-{bounds[i + 1] - 1}" for i, name in enumerate(names)}


def normal(ranges: str) -> str:
    """``"0-9,5"`` -> ``"0-9"``; ``""`` stays ``""``."""
    if not ranges.strip():
        return ""
    return format_ranges(s for lo, hi in parse_ranges(ranges) for s in range(lo, hi + 1))


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``check`` until truthy (its value); `TimeoutError` naming ``what`` (and the last
    exception it raised) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except (OSError, ValueError, KeyError, redis.RedisError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} ({last!r})")
        time.sleep(interval)


class ReshardRig:
    def __init__(
        self,
        shards: int = 3,
        replicas: int = 1,
        routers: int = 2,
        migration: dict[str, int] | None = None,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
    ) -> None:
        self.farm = RedisFarm()
        self.root = self.farm.root
        self.replicas = replicas
        self.nodes: dict[str, list[RedisProc]] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.routers: list[RouterProc] = []
        self.env = {**os.environ, "SLOTWARDEN_SECRET": SECRET, "PYTHONUNBUFFERED": "1"}
        try:
            for n in range(shards):
                self.add_nodes(chr(ord("a") + n))
            self.layout = even_layout(list(self.nodes))
            sentinel = sentinel_section(self.root, down_after_ms, failover_timeout_ms)
            if migration:
                sentinel["migration"] = dict(migration)
            self.sentinel = sentinel
            self.peers: list[dict[str, str]] = sentinel["peers"]  # type: ignore[assignment]
            self.router_addrs = [(free_port(), free_port()) for _ in range(routers)]
            self.configs = [
                os.path.join(self.root, f"cluster{n or ''}.yaml") for n in range(routers)
            ]
            self.write_files()
        except BaseException:
            self.farm.close()
            raise

    # -- processes ---------------------------------------------------------------

    def add_nodes(self, name: str) -> list[RedisProc]:
        """Start shard ``name``'s master and replicas (not in the file until `set_layout`)."""
        master = self.farm.start()
        reps = [
            self.farm.start(["--replicaof", "127.0.0.1", str(master.port)])
            for _ in range(self.replicas)
        ]
        self.nodes[name] = [master, *reps]
        return self.nodes[name]

    def start(self) -> ReshardRig:
        log = os.path.join(self.root, "sentinels.log")
        procs = start_sentinels(self.configs[0], self.peers, self.env, log)
        self.procs = {p["id"]: proc for p, proc in zip(self.peers, procs, strict=True)}
        for n, (port, admin) in enumerate(self.router_addrs):
            router = RouterProc(
                self.configs[n], port, os.path.join(self.root, f"router{n + 1}.log"), env=self.env
            )
            self.routers.append(router.start())
            wait_for_port("127.0.0.1", admin)
        expected = self.sentinel_map().epoch
        wait_for(lambda: all(e >= expected for e in self.router_epochs()), 20, "routers' epoch")
        return self

    def kill_master(self, name: str) -> RedisProc:
        """kill -9 of shard ``name``'s CURRENT master (from the sentinels' topology)."""
        current = str(self.sentinel_map().shards[self.sentinel_map().shard_index(name)].master)
        node = next(p for p in self.nodes[name] if p.addr == current)
        node.kill(signal.SIGKILL)
        return node

    def kill_sentinel(self, sid: str) -> None:
        proc = self.procs.pop(sid)
        proc.kill()
        proc.wait(timeout=10)

    def close(self) -> None:
        for router in self.routers:
            with contextlib.suppress(Exception):
                router.stop()
        for proc in self.procs.values():
            with contextlib.suppress(Exception):
                proc.kill()
                proc.wait(timeout=10)
        self.farm.close()

    # -- the file ----------------------------------------------------------------

    def write_files(self) -> None:
        shards = []
        for name, slots in self.layout.items():
            master, *reps = self.nodes[name]
            shards.append(
                {"name": name, "slots": slots, "master": master.addr,
                 "replicas": [r.addr for r in reps]}
            )  # fmt: skip
        for path, (port, admin) in zip(self.configs, self.router_addrs, strict=True):
            data = {
                "name": "reshard",
                "router": {"listen": f"127.0.0.1:{port}", "admin": f"127.0.0.1:{admin}"},
                "shards": shards,
                "sentinel": self.sentinel,
            }
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                yaml.safe_dump(data, f, sort_keys=False)
            os.replace(tmp, path)  # the watchers never read half a file

    def set_layout(self, layout: dict[str, str]) -> None:
        """Edit every copy of cluster.yaml to ``layout`` (shard name -> slot ranges, in
        file order; a shard of the current file left out is removed)."""
        self.layout = dict(layout)
        self.write_files()

    # -- what runs -----------------------------------------------------------------

    def sentinel_http(self, path: str) -> Any:
        """GET ``path`` from the first live sentinel that answers."""
        last: Exception | None = None
        for p in self.peers:
            if p["id"] not in self.procs:
                continue
            port = int(p["listen"].rsplit(":", 1)[1])
            try:
                status, body = http_call(port, "GET", path, secret=SECRET)
            except OSError as exc:
                last = exc
                continue
            if status == 200:
                return json.loads(body)
            last = OSError(f"{p['id']} {path}: {status} {body[:200]}")
        raise last or OSError("no sentinel alive")

    def sentinel_map(self) -> SlotMap:
        return SlotMap.from_dict(self.sentinel_http("/topology"))

    def migrations(self) -> list[dict[str, Any]]:
        """The ``migrations`` of a live sentinel's ``/status`` ([] when it has none)."""
        return list(self.sentinel_http("/status").get("migrations") or [])

    def router_epochs(self) -> list[int]:
        out = []
        for _port, admin in self.router_addrs:
            status, body = http_call(admin, "GET", "/topology")
            out.append(json.loads(body)["epoch"] if status == 200 else -1)
        return out

    def settled(self) -> SlotMap | None:
        """The sentinels' map if it is exactly the file's layout with no migration and every
        router runs its epoch; else None."""
        sm = self.sentinel_map()
        if sm.migrations or {s.name for s in sm.shards} != set(self.layout):
            return None
        for name, slots in self.layout.items():
            if sm.ranges_of(sm.shard_index(name)) != normal(slots):
                return None
        return sm if all(e >= sm.epoch for e in self.router_epochs()) else None

    def wait_settled(self, timeout: float) -> SlotMap:
        return wait_for(self.settled, timeout, f"layout {self.layout} settled, no migration")

    def router_client(self, n: int = 0, **kw: Any) -> redis.Redis:
        kw.setdefault("socket_timeout", 10)
        return redis.Redis(port=self.router_addrs[n][0], **kw)

    def owner_name(self, sm: SlotMap) -> Callable[[int], str]:
        return lambda slot: sm.shards[sm.owner[slot]].name

    def masters(self, sm: SlotMap) -> dict[str, redis.Redis]:
        """A client per shard master of ``sm``, and per running node of a shard that is no
        longer in it (a drained shard: it must hold nothing of the data)."""
        out = {s.name: redis.Redis(host=s.master.host, port=s.master.port, socket_timeout=10)
               for s in sm.shards}  # fmt: skip
        for name, nodes in self.nodes.items():
            if name not in out:
                for n, node in enumerate(nodes):
                    if node.proc is not None and node.proc.poll() is None:
                        out[f"{name}(removed){n}"] = redis.Redis(port=node.port, socket_timeout=10)
        return out

    def wait_replicas_synced(self, timeout: float = 20.0) -> None:
        """Every current master's replicas have all its writes (WAIT)."""
        sm = self.sentinel_map()
        for s in sm.shards:
            if not s.replicas:
                continue
            want = len(s.replicas)
            with redis.Redis(host=s.master.host, port=s.master.port, socket_timeout=30) as r:
                wait_for(
                    lambda r=r, want=want: r.wait(want, 1000) >= want,
                    timeout,
                    f"replicas of {s.name} in sync",
                )

    def logs(self, tail: int = 12000) -> str:
        out = []
        for name in ["sentinels.log", *[f"router{n + 1}.log" for n in range(len(self.routers))]]:
            path = os.path.join(self.root, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    out.append(f"--- {name}\n{f.read()[-tail:]}")
        return "\n".join(out)
