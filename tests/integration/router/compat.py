"""Helpers for the compatibility tests: raw RESP conversations with the router and with
one real redis-server, so each behaviour can be compared byte for byte."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import redis

from slotwarden.resp.encode import encode_command
from slotwarden.resp.replies import ReplyScanner


def cmd(*args: bytes | str | int) -> bytes:
    return encode_command([a if isinstance(a, bytes) else str(a).encode() for a in args])


class Raw:
    """One client connection speaking raw RESP; replies come back as their exact bytes."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.scanner = ReplyScanner()
        self.buffered: list[bytes] = []

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, *commands: tuple[bytes | str | int, ...]) -> None:
        self.sock.sendall(b"".join(cmd(*c) for c in commands))

    def read(self, n: int = 1, timeout: float = 10.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.buffered) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(self.buffered)} of {n} replies: {self.buffered!r}")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError(f"closed after {self.buffered!r}")
            self.scanner.feed(data)
            self.buffered += self.scanner.replies()
        out, self.buffered = self.buffered[:n], self.buffered[n:]
        return out

    def quiet(self, wait: float = 0.2) -> bool:
        """True if nothing arrives within ``wait`` seconds."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return not self.buffered
        self.scanner.feed(data)
        self.buffered += self.scanner.replies()
        return False

    def call(self, *args: bytes | str | int) -> bytes:
        self.send(args)
        return self.read(1)[0]

    def talk(
        self, *commands: tuple[bytes | str | int, ...], replies: int | None = None
    ) -> list[bytes]:
        self.send(*commands)
        return self.read(len(commands) if replies is None else replies)


def both(
    router_port: int, plain_port: int, *commands: tuple, replies: int | None = None
) -> tuple[list[bytes], list[bytes]]:
    """The same commands on a fresh connection to the router and to the plain server."""
    with Raw(router_port) as a, Raw(plain_port) as b:
        return a.talk(*commands, replies=replies), b.talk(*commands, replies=replies)


def keys_on_every_shard(cluster, per_shard: int = 1, prefix: str = "k") -> list[list[str]]:
    """``per_shard`` keys owned by each shard, grouped by shard."""
    found: list[list[str]] = [[] for _ in cluster.masters]
    i = 0
    while any(len(v) < per_shard for v in found):
        k = f"{prefix}{i}"
        owner = cluster.owner(k)
        if len(found[owner]) < per_shard:
            found[owner].append(k)
        i += 1
    return found


def router_conns(cluster, shard: int) -> list[dict[str, str]]:
    """The router's connections to one shard, from its CLIENT LIST (redis-py clients of
    the tests name their library; the router's connections do not)."""
    with Raw(cluster.masters[shard].port) as c:
        raw = c.call("CLIENT", "LIST")
    text = raw.split(b"\r\n", 1)[1].decode()
    clients = [dict(f.split("=", 1) for f in line.split(" ")) for line in text.splitlines() if line]
    return [c for c in clients if not c.get("lib-name") and c["cmd"] != "client|list"]


def wait_for(check, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def plain_server(session_farm) -> Iterator:
    """A plain redis-server of a module's own, the reference the router is compared to
    (use as ``yield from plain_server(session_farm)`` in a module-scoped fixture)."""
    proc = session_farm.start()
    try:
        yield proc
    finally:
        proc.stop()


def in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Run ``call`` (a blocking client call) in a daemon thread: the thread and a
    list that gets its result, or the `redis.RedisError` it raised."""
    out: list[object] = []

    def run() -> None:
        try:
            out.append(call())
        except redis.RedisError as exc:
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out
