"""`slotwarden reshard` / `rebalance` / `status` against real shards, sentinels and a router.

3 shards (a master each), 3 sentinels, one router, all real processes. The
reshard edits the cluster.yaml the sentinels read (comments kept), reloads
them, and the sentinels publish the move as a migration that the router and
`slotwarden status` show, and the sentinels' mover moves the keys while reshard
follows. `status`'s exit codes: 0 healthy, 1 degraded (a
master killed), 2 unreachable (no sentinel answers), 3 usage errors.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import yaml

from slotwarden.cluster.slots import key_hash_slot
from slotwarden.procs import (
    RedisFarm,
    RedisProc,
    RouterProc,
    sentinel_section,
    start_sentinels,
    write_cluster_yaml,
)

SECRET = "reshard-test-secret-not-logged"
REPO = Path(__file__).resolve().parents[2]
COMMENT = "# operator's note: keep this comment\n"
RATE = 50  # sentinel.migration.keys_per_second
KEYS = 2000  # about 40 s of moving at RATE: seen under way by several CLI calls


def tag_in(lo: int, hi: int) -> str:
    """A hash tag whose slot is in lo-hi: every ``{tag}:...`` key lands there."""
    return next(f"t{i}" for i in range(1_000_000) if lo <= key_hash_slot(f"t{i}".encode()) <= hi)


class Cluster:
    def __init__(self, farm: RedisFarm, shards: int = 3) -> None:
        self.farm = farm
        self.masters: list[RedisProc] = [farm.start() for _ in range(shards)]
        self.config = os.path.join(farm.root, "cluster.yaml")
        self.port, admin_port = write_cluster_yaml(self.config, self.masters)
        self.admin = f"127.0.0.1:{admin_port}"
        with open(self.config) as f:
            data = yaml.safe_load(f)
        data["sentinel"] = sentinel_section(farm.root, 500, 3000)
        # slow enough that a move of KEYS keys is seen under way (about KEYS/RATE s)
        data["sentinel"]["migration"] = {"keys_per_second": RATE, "batch_keys": 10}
        self.peers: list[dict[str, str]] = data["sentinel"]["peers"]
        with open(self.config, "w") as f:
            f.write(COMMENT)
            yaml.safe_dump(data, f, sort_keys=False)
        self.env = {**os.environ, "SLOTWARDEN_SECRET": SECRET, "PYTHONUNBUFFERED": "1"}
        self.sentinels = start_sentinels(
            self.config, self.peers, self.env, os.path.join(farm.root, "sentinels.log")
        )
        self.router = RouterProc(
            self.config,
            self.port,
            os.path.join(farm.root, "router.log"),
            env={"SLOTWARDEN_SECRET": SECRET},
        ).start()

    def close(self) -> None:
        self.router.stop()
        self.stop_sentinels()

    def stop_sentinels(self) -> None:
        for proc in self.sentinels:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.sentinels:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "slotwarden", *args, "--config", self.config],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=REPO,
            timeout=timeout,
        )

    def get(self, url: str) -> dict:
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {SECRET}"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def sentinel_topology(self, i: int = 0) -> dict:
        return self.get(f"http://{self.peers[i]['listen']}/topology")

    def router_topology(self) -> dict:
        return self.get(f"http://{self.admin}/topology")

    def logs(self) -> str:
        parts = []
        for name in ("sentinels.log", "router.log"):
            with contextlib.suppress(OSError):
                parts.append(f"--- {name}\n" + Path(self.farm.root, name).read_text()[-6000:])
        return "\n".join(parts)

    def wait_for(self, check: Callable[[], object], timeout: float, what: str) -> object:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = check()
                if value:
                    return value
            except (OSError, KeyError, AssertionError) as exc:
                last = exc
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what} ({last!r})\n{self.logs()}")


@contextlib.contextmanager
def cluster_of(shards: int = 3) -> Iterator[Cluster]:
    farm = RedisFarm()
    c = None
    try:
        c = Cluster(farm, shards)
        yield c
    finally:
        if c is not None:
            c.close()
        farm.close()


@pytest.fixture(scope="module")
def cl() -> Iterator[Cluster]:
    with cluster_of() as c:
        c.wait_for(lambda: c.cli("status").returncode == 0, 20, "a healthy cluster")
        yield c


def _status(c: Cluster) -> tuple[int, dict]:
    out = c.cli("status", "--json")
    return out.returncode, json.loads(out.stdout)


def test_status_healthy_is_exit_0(cl):
    code, report = _status(cl)
    assert code == 0, report["health"]
    assert report["health"] == {"code": 0, "state": "healthy", "problems": []}
    text = cl.cli("status")
    assert text.returncode == 0
    assert "cluster HEALTHY (exit code 0)" in text.stdout
    assert "None@" not in text.stdout and "voted None" not in text.stdout
    # usage and config errors are 3, never taken for "unreachable" (2)
    assert cl.cli("status", "--no-such-flag").returncode == 3
    bad = subprocess.run(
        [sys.executable, "-m", "slotwarden", "status", "--config", "/nonexistent.yaml"],
        capture_output=True, text=True, timeout=30, cwd=REPO,
    )  # fmt: skip
    assert bad.returncode == 3 and "file not found" in bad.stderr


def test_reshard_edits_reloads_follows_and_the_keys_move(cl):
    """0-99 a -> c: the file edited, every sentinel reloaded, the migration published
    and followed (a progress line) until --timeout, shown by status; an edit touching
    it refused meanwhile; in the end every key is on c and none on a."""
    r = redis.Redis(port=cl.port, socket_timeout=5)
    tag = tag_in(0, 99)
    keys = [f"{{{tag}}}:{i}" for i in range(KEYS)]
    r.mset({k: k for k in keys})
    before = Path(cl.config).read_text()
    out = cl.cli("reshard", "--to", "c", "--slots", "0-99", "--timeout", "10")
    assert out.returncode == 1, out.stdout + out.stderr + cl.logs()
    assert "slots 0-99 (100): a -> c" in out.stdout
    assert "reloaded by sentinel(s) s1, s2, s3" in out.stdout
    assert "published at topology epoch" in out.stdout and "0-99 a -> c" in out.stdout
    assert "slots 0-99 (100) a -> c  [" in out.stdout  # a progress line
    assert "timed out after 10 s; the migration goes on" in out.stderr
    after = Path(cl.config).read_text()
    # only the two slots values changed; the comment and everything else stayed
    assert after.startswith(COMMENT)
    assert after == before.replace("slots: 0-5460", "slots: 100-5460").replace(
        "slots: 10923-16383", "slots: 0-99,10923-16383"
    )
    migration = {"slots": "0-99", "from": "a", "to": "c"}
    assert migration in cl.router_topology().get("migrations", []), cl.logs()

    # status shows it with the mover's progress
    code, report = _status(cl)
    [row] = report["migrations"]
    assert (row["slots"], row["from"], row["to"], row["slot_count"]) == ("0-99", "a", "c", 100)
    assert row["mover"] == "s1" and row["state"] in ("waiting-routers", "counting", "moving")
    assert code == 0, report["health"]  # a migration under way is not a degradation
    text = cl.cli("status").stdout
    assert "migrations" in text and "slots 0-99 (100) a -> c  [" in text, text

    # a second edit that touches the migrating slots is refused, the file untouched
    refused = cl.cli("reshard", "--to", "b", "--slots", "50-60", "--no-wait")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "slots 50-60 are still moving a -> c" in refused.stderr
    assert Path(cl.config).read_text() == after
    # a rebalance plans around them: no move names a migrating slot
    dry = cl.cli("rebalance", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    planned = [line.split()[1] for line in dry.stdout.splitlines() if line.startswith("slots ")]
    assert planned, dry.stdout
    for ranges in planned:
        assert not set(range(100)) & {s for part in ranges.split(",") for s in _span(part)}, (
            dry.stdout
        )
    assert Path(cl.config).read_text() == after

    # the mover ends it: the keys are all on c, none left on a, values intact
    cl.wait_for(lambda: not cl.sentinel_topology(0).get("migrations"), 120, "the migration to end")
    a, c = (redis.Redis(port=m.port, socket_timeout=5) for m in (cl.masters[0], cl.masters[2]))
    assert a.exists(*keys) == 0
    assert c.exists(*keys) == KEYS
    assert r.mget(keys) == [k.encode() for k in keys]
    assert _status(cl)[1]["migrations"] == []


def test_follow_until_the_keys_are_moved(cl):
    r = redis.Redis(port=cl.port, socket_timeout=5)
    tag = tag_in(6000, 6009)
    keys = [f"{{{tag}}}:{i}" for i in range(50)]
    r.mset({k: k for k in keys})
    out = cl.cli("reshard", "--to", "a", "--slots", "6000-6009", "--timeout", "60")
    assert out.returncode == 0, out.stdout + out.stderr + cl.logs()
    assert "slots 6000-6009 (10): b -> a" in out.stdout
    assert "published at topology epoch" in out.stdout
    assert "done: every slot is on its new shard" in out.stdout
    a, b = (redis.Redis(port=m.port, socket_timeout=5) for m in (cl.masters[0], cl.masters[1]))
    assert a.exists(*keys) == len(keys) and b.exists(*keys) == 0
    assert r.mget(keys) == [k.encode() for k in keys]


def _span(part: str) -> range:
    lo, _, hi = part.partition("-")
    return range(int(lo), int(hi or lo) + 1)


def test_drain_keeps_the_shard_with_no_slots(cl):
    """b's slots go to a and c (6000-6009 already left it); b stays, `slots: ""`."""
    before = Path(cl.config).read_text()
    out = cl.cli("reshard", "--drain", "b", "--no-wait")
    assert out.returncode == 0, out.stdout + out.stderr + cl.logs()
    assert "b -> a" in out.stdout and "b -> c" in out.stdout
    after = Path(cl.config).read_text()
    data = yaml.safe_load(after)
    assert [s["slots"] for s in data["shards"] if s["name"] == "b"] == [""]
    assert 'slots: ""' in after and after.startswith(COMMENT)
    assert len(after.splitlines()) == len(before.splitlines())

    def drained() -> bool:
        topo = cl.sentinel_topology(0)
        [b] = [s for s in topo["shards"] if s["name"] == "b"]
        sources = {m["from"] for m in topo.get("migrations", [])}
        return b["slots"] == "" and "b" in sources

    cl.wait_for(drained, 20, "a topology where b owns nothing and drains")


def test_status_degraded_then_unreachable():
    with cluster_of(shards=2) as c:
        c.wait_for(lambda: c.cli("status").returncode == 0, 20, "a healthy cluster")
        c.masters[1].kill(signal.SIGKILL)

        # degraded: shard b's master is down (and, with no replica, its failover refused)
        def degraded() -> dict | None:
            code, report = _status(c)
            return report if code == 1 else None

        report = c.wait_for(degraded, 20, "status exit code 1")
        assert f"shard b: master {c.masters[1].addr} is down" in report["health"]["problems"]
        text = c.cli("status")
        assert text.returncode == 1 and "cluster DEGRADED (exit code 1)" in text.stdout
        # unreachable: no sentinel answers
        c.stop_sentinels()
        out = c.cli("status")
        assert out.returncode == 2, out.stdout + out.stderr
        assert out.stdout.startswith("cluster UNREACHABLE: no sentinel answers: s1 (")
        code, report = _status(c)
        assert code == 2 and report["health"]["state"] == "unreachable"
