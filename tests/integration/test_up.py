"""`slotwarden up` end to end: real redis-servers, sentinels and router, real signals.

Each test copies the bundled cluster.yaml into tmp_path with every port
rewritten to a free one, runs ``python -m slotwarden up --config FILE`` in its
own session (as a terminal would run it) without the shared secret in its
environment, and checks that it serves, routes keys to the shard owning their
slot, replicates, fails over a killed master (the sentinels it started, with
the session secret it generated and never shows), gives the shards the router's
and the sentinels' ACL users, and on SIGTERM or Ctrl-C
stops with exit 0 leaving no process behind.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from slotwarden.cluster.config import ClusterConfig, load
from slotwarden.cluster.slots import key_hash_slot
from slotwarden.cluster.topology import Address
from slotwarden.procs import free_port

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "slotwarden" / "cluster.yaml"
ADDRESS_RE = re.compile(r"\b(\d{1,3}(?:\.\d{1,3}){3}|localhost):(\d{1,5})\b")


def copy_config(
    tmp_path: Path, replace: dict[str, str] | None = None
) -> tuple[Path, ClusterConfig]:
    """The bundled cluster.yaml, comments and all, with every port made free
    (and each ``replace`` key replaced by its value)."""
    text = BUNDLED.read_text()
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    ports: dict[str, str] = {}

    def rewrite(match: re.Match[str]) -> str:
        old = match.group(2)
        if old not in ports:
            new = free_port()
            while str(new) in ports.values():
                new = free_port()
            ports[old] = str(new)
        return f"{match.group(1)}:{ports[old]}"

    path = tmp_path / "cluster.yaml"
    path.write_text(ADDRESS_RE.sub(rewrite, text))
    config = load(path)
    used = [config.router.listen, config.router.admin]
    used += [a for s in config.shards for a in (s.master, *s.replicas)]
    if config.sentinel is not None:
        used += [p.listen for p in config.sentinel.peers]
    assert all(str(a.port) in ports.values() for a in used), "a port was not rewritten"
    return path, config


def redis_addresses(config: ClusterConfig) -> list[Address]:
    return [a for s in config.shards for a in (s.master, *s.replicas)]


def all_ports(config: ClusterConfig) -> list[Address]:
    return [config.router.listen, config.router.admin, *redis_addresses(config)]


def client(addr: Address, password: str | None = None) -> redis.Redis:
    return redis.Redis(
        addr.host, addr.port, password=password, socket_timeout=5, decode_responses=True
    )


def listening(addr: Address) -> bool:
    try:
        with socket.create_connection((addr.host, addr.port), timeout=0.5):
            return True
    except OSError:
        return False


def processes_mentioning(text: str) -> list[str]:
    """``pid cmdline`` of every live process whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and pid_alive(int(entry.name)):
            found.append(f"{entry.name} {cmdline}")
    return found


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class UpRun:
    """One ``slotwarden up`` subprocess, its output in a file, always stopped."""

    def __init__(
        self, tmp_path: Path, replace: dict[str, str] | None = None, extra: tuple[str, ...] = ()
    ) -> None:
        self.config_path, self.config = copy_config(tmp_path, replace)
        self.out_path = tmp_path / "up.out"
        self.run_dir = tmp_path / ".slotwarden" / "run" / self.config.name
        unset = ("SLOTWARDEN_SECRET", "SLOTWARDEN_BACKEND_PASSWORD", "SLOTWARDEN_SENTINEL_PASSWORD")
        env = {k: v for k, v in os.environ.items() if k not in unset}
        argv = [sys.executable, "-m", "slotwarden", "up", "--config", str(self.config_path)]
        with self.out_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [*argv, *extra],
                cwd=tmp_path,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )

    @property
    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def wait_router(self, timeout: float = 60.0) -> redis.Redis:
        """A client of the router once it answers PING and `up` has said it is up."""
        router = client(self.config.router.listen)
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            assert code is None, f"up exited with {code} before serving:\n{self.output}"
            try:
                if "Press Ctrl-C" in self.output and router.ping():
                    return router
            except redis.RedisError:
                pass
            assert time.monotonic() < deadline, f"router did not answer PING:\n{self.output}"
            time.sleep(0.1)

    def pids(self) -> dict[str, int]:
        """Every process of the cluster: redis-servers (by INFO), sentinels, router and up."""
        found = {}
        for addr in redis_addresses(self.config):
            found[f"redis {addr}"] = int(self.admin(addr).info("server")["process_id"])
        for line in processes_mentioning(str(self.config_path)):
            found[line] = int(line.split()[0])
        assert self.proc.pid in found.values()
        sentinels = [line for line in found if " sentinel " in line]
        assert len(sentinels) == len(self.config.sentinel.peers), found
        # + sentinels + router + up
        assert len(found) == len(redis_addresses(self.config)) + len(sentinels) + 2, found
        return found

    def admin(self, addr: Address) -> redis.Redis:
        """A client of a redis-server as its default user (the admin; `up` gives it a
        password in the run directory)."""
        password = (self.run_dir / "secrets" / "default.password").read_text().strip()
        return client(addr, password)

    def secret(self) -> str:
        """The session secret, read from the router's environment."""
        (router,) = [
            int(line.split()[0])
            for line in processes_mentioning(str(self.config_path))
            if " router " in line
        ]
        environ = Path(f"/proc/{router}/environ").read_bytes().split(b"\0")
        values = [e.split(b"=", 1)[1] for e in environ if e.startswith(b"SLOTWARDEN_SECRET=")]
        assert len(values) == 1 and len(values[0]) >= 32, "no session secret for the router"
        return values[0].decode()

    def stop(self, sig: signal.Signals, group: bool = False) -> int:
        if group:
            os.killpg(self.proc.pid, sig)  # what a terminal does on Ctrl-C
        else:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"up did not exit within 30s after {sig.name}:\n{self.output}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def assert_nothing_left(self, pids: dict[str, int] | None = None) -> None:
        deadline = time.monotonic() + 5
        while True:
            alive = {name: pid for name, pid in (pids or {}).items() if pid_alive(pid)}
            busy = [str(a) for a in all_ports(self.config) if listening(a)]
            leftovers = processes_mentioning(str(self.config_path))
            leftovers += processes_mentioning(str(self.run_dir))
            if not (alive or busy or leftovers):
                return
            assert time.monotonic() < deadline, (
                f"left behind: processes {alive} {leftovers}, listening {busy}\n{self.output}"
            )
            time.sleep(0.1)


@pytest.fixture
def up_run(tmp_path):
    run = UpRun(tmp_path)
    try:
        yield run
    finally:
        run.kill()


def owner_of(config: ClusterConfig, key: str) -> int:
    slotmap = config.slotmap()
    return slotmap.owner[key_hash_slot(key.encode())]


@pytest.mark.timeout(120)
def test_up_serves_routes_replicates_and_stops_on_sigterm(up_run):
    router = up_run.wait_router()
    config = up_run.config
    output = up_run.output
    assert f"redis-cli -p {config.router.listen.port}" in output
    assert f"http://127.0.0.1:{config.router.admin.port}/" in output
    for shard in config.shards:
        assert str(shard.master) in output
        assert all(str(r) in output for r in shard.replicas)
    assert config.sentinel is not None
    assert f"sentinels (quorum {config.sentinel.quorum}): " in output
    for peer in config.sentinel.peers:
        assert f"{peer.id} {peer.listen}" in output
        assert listening(peer.listen)
    assert "generated a session secret" in output
    pids = up_run.pids()
    secret = up_run.secret()

    keys = [f"user:{i}" for i in range(40)] + ["{tag}a", "{tag}b"]
    for key in keys:
        assert router.set(key, f"value of {key}") is True
    for key in keys:
        assert router.get(key) == f"value of {key}"
    owners = {key: owner_of(config, key) for key in keys}
    assert set(owners.values()) == set(range(len(config.shards))), "keys should hit every shard"

    masters = [up_run.admin(s.master) for s in config.shards]
    for key, owner in owners.items():
        for index, master in enumerate(masters):
            expected = f"value of {key}" if index == owner else None
            assert master.get(key) == expected, (key, config.shards[index].name)

    deadline = time.monotonic() + 10
    for key, owner in owners.items():
        for replica_addr in config.shards[owner].replicas:
            replica = up_run.admin(replica_addr)
            while replica.get(key) != f"value of {key}":
                assert time.monotonic() < deadline, f"{key} never reached replica {replica_addr}"
                time.sleep(0.05)

    assert up_run.stop(signal.SIGTERM) == 0, up_run.output
    up_run.assert_nothing_left(pids)
    logs = [up_run.output] + [p.read_text() for p in up_run.run_dir.rglob("*.log")]
    assert len(logs) == 1 + len(redis_addresses(config)) + len(config.sentinel.peers) + 1
    assert not [text for text in logs if secret in text], "the session secret was shown"


def environ_of(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode(errors="replace").split("=", 1) for e in entries if b"=" in e)


@pytest.mark.timeout(120)
def test_up_gives_the_shards_acl_users(up_run):
    """Issue 10 item 2: `up` creates the router's and the sentinels' ACL users on every
    node; a script through the router cannot run what the router refuses; the default
    user needs the password in the run directory; each process kind gets only its own
    generated password; none is shown or logged."""
    router = up_run.wait_router()
    config = up_run.config
    target = config.shards[1].master
    assert router.set("{m}k", "v") is True
    for call in (
        # MIGRATE only to the cluster's own hosts (moving keys, see README Resharding)
        ["migrate", "192.0.2.1", str(target.port), "{m}k", "0", "1000", "COPY"],
        ["swapdb", "0", "1"],
        ["select", "1"],
        ["info", "clients"],
        ["pfselftest"],
    ):
        with pytest.raises(redis.ResponseError) as exc:
            router.eval("return redis.call(unpack(ARGV))", 1, "{m}k", *call)
        assert "can't run this command" in str(exc.value) or "NOPERM" in str(exc.value), call
    assert router.eval("return redis.call('INCR', KEYS[1])", 1, "{m}n") == 1
    assert "acl      router and sentinels use ACL users" in up_run.output
    with pytest.raises(redis.AuthenticationError):
        client(config.shards[0].master).ping()
    admin = up_run.admin(config.shards[0].master)
    users = sorted(admin.execute_command("ACL", "USERS"))
    assert users == sorted(["default", "slotwarden-router", "slotwarden-sentinel",
                            "slotwarden-replication"])  # fmt: skip
    for path in [*up_run.run_dir.glob("*/node.conf"), *up_run.run_dir.glob("secrets/*")]:
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert len(list(up_run.run_dir.glob("*/node.conf"))) == len(redis_addresses(config))
    pids = up_run.pids()
    router_pid = next(pid for name, pid in pids.items() if " router " in name)
    sentinel_pid = next(pid for name, pid in pids.items() if " sentinel " in name)
    router_env, sentinel_env = environ_of(router_pid), environ_of(sentinel_pid)
    assert "SLOTWARDEN_BACKEND_PASSWORD" in router_env
    assert "SLOTWARDEN_SENTINEL_PASSWORD" not in router_env
    assert "SLOTWARDEN_SENTINEL_PASSWORD" in sentinel_env
    assert "SLOTWARDEN_BACKEND_PASSWORD" not in sentinel_env
    passwords = [p.read_text().strip() for p in up_run.run_dir.glob("secrets/*.password")]
    assert len(passwords) == 4
    assert up_run.stop(signal.SIGTERM) == 0, up_run.output
    logs = [up_run.output] + [p.read_text() for p in up_run.run_dir.rglob("*.log")]
    assert not [pw for pw in passwords for text in logs if pw in text], "a password was logged"


@pytest.mark.timeout(120)
def test_up_stops_everything_on_ctrl_c(up_run):
    router = up_run.wait_router()
    assert router.set("k", "v") is True
    pids = up_run.pids()
    assert up_run.stop(signal.SIGINT, group=True) == 0, up_run.output
    assert "SIGINT" in up_run.output
    up_run.assert_nothing_left(pids)


@pytest.mark.timeout(60)
def test_up_refuses_a_port_in_use_and_leaves_nothing_behind(tmp_path):
    config_path, config = copy_config(tmp_path)
    taken = config.shards[1].master  # a master in the middle of the start order
    with socket.socket() as blocker:
        blocker.bind((taken.host, taken.port))
        blocker.listen()
        result = subprocess.run(
            [sys.executable, "-m", "slotwarden", "up", "--config", str(config_path)],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=50,
            start_new_session=True,
        )
        others = [a for a in all_ports(config) if a != taken]
        still_busy = [str(a) for a in others if listening(a)]
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert str(taken.port) in output and "in use" in output, output
    assert f"{config.shards[1].name} master" in output, output
    assert not still_busy, f"left listening: {still_busy}\n{output}"
    assert not processes_mentioning(str(config_path))


@pytest.mark.timeout(120)
def test_up_sentinels_fail_over_a_killed_master(tmp_path):
    """kill -9 of a master: the sentinels `up` started promote its replica, and
    writes through the same router client succeed again."""
    run = UpRun(tmp_path, {"down_after_ms: 1000": "down_after_ms: 500",
                           "failover_timeout_ms: 10000": "failover_timeout_ms: 3000"})  # fmt: skip
    try:
        router = run.wait_router()
        config = run.config
        assert config.sentinel is not None and config.sentinel.down_after_ms == 500
        assert config.sentinel.probe_interval_ms == 100
        shard = config.shards[0]
        key = next(f"k{i}" for i in range(1000) if owner_of(config, f"k{i}") == 0)
        assert router.set(key, "before") is True
        master = run.admin(shard.master)
        assert master.wait(len(shard.replicas), 5000) == len(shard.replicas)
        pids = run.pids()
        os.kill(pids[f"redis {shard.master}"], signal.SIGKILL)
        killed_at = time.monotonic()
        while True:
            try:
                if router.set(key, "after") is True:
                    break
            except redis.RedisError:
                pass
            assert time.monotonic() - killed_at < 20, f"writes did not resume:\n{run.output}"
            time.sleep(0.05)
        new_master = run.admin(shard.replicas[0])
        assert new_master.get(key) == "after"
        assert new_master.info("replication")["role"] == "master"
        assert router.get(key) == "after"
        assert f"redis-server {shard.name} master {shard.master} exited unexpectedly" in run.output
        print(f"writes resumed {time.monotonic() - killed_at:.2f} s after the kill")
        assert run.stop(signal.SIGTERM) == 0, run.output
        run.assert_nothing_left(pids)
        logs = "".join(p.read_text() for p in run.run_dir.glob("sentinel-*/sentinel.log"))
        assert "[switch] shard a switched from" in logs
    finally:
        run.kill()
