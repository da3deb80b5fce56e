"""Backend connections: shared, pipelined, write-coalesced connections to Redis nodes.

One `Node` per backend address owns ``size`` `BackendConn` s per protocol
(RESP2, and RESP3 ones that say ``HELLO 3`` first, for RESP3 clients); a
client always uses the same one (``client_id % size``), so its requests to a
node stay in order. Each connection is kept alive by one task (`BackendConn.maintain`)
that connects, waits for the loss, backs off and reconnects, forever.

    clients ──send(raw, waiter)──► out: [raw, raw, ...]  ── flush(): one write per loop turn
                                   waiting: deque[waiter]  ◄── replies, framed by ReplyScanner,
                                                              handed to waiters in FIFO order

Invariants:
- ``waiting`` holds exactly one waiter per request written (or queued to be
  written) on the current connection, in write order; the n-th reply belongs
  to the n-th waiter.
- A waiter is answered exactly once: by its reply, or by an error when the
  connection fails, times out, or is down (fail fast while backing off).
- Nothing waits forever: `check_timeout` aborts a connection whose oldest
  request has seen no reply for ``command_timeout``; connecting is bounded
  by ``connect_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from router.errors import ProtocolError, shard_down
from router.resp import ReplyScanner
from router.topology import Address

log = logging.getLogger("slotwarden.backend")


class Waiter(Protocol):
    def on_reply(self, raw: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class BackendSettings:
    connect_timeout: float = 1.0
    command_timeout: float = 2.0
    reconnect_min: float = 0.05
    reconnect_max: float = 2.0
    connections: int = 1


class Flusher(Protocol):
    """Whoever collects the connections written to in this loop turn (the router)."""

    dirty_backends: list[BackendConn]

    def flush(self) -> None: ...

    def hint_topology(self) -> None:
        """A master said READONLY or went away: the topology may have changed."""


CONNECTING, UP, DOWN, CLOSED = "connecting", "up", "down", "closed"
HELLO3 = b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n"


class BackendConn(asyncio.Protocol):
    __slots__ = (
        "_lost",
        "addr",
        "dirty",
        "down_reply",
        "flusher",
        "label",
        "out",
        "progress_at",
        "proto",
        "scanner",
        "settings",
        "state",
        "transport",
        "waiting",
    )

    def __init__(
        self, addr: Address, label: str, settings: BackendSettings, flusher: Flusher, proto: int = 2
    ) -> None:
        self.addr = addr
        self.proto = proto
        self.label = label  # shard name, for error replies
        self.settings = settings
        self.flusher = flusher
        self.state = CONNECTING
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[Waiter] = deque()
        self.out: list[bytes] = []
        self.dirty = False
        self.scanner = ReplyScanner()
        self.progress_at = 0.0
        self.down_reply = shard_down(label)
        self._lost: asyncio.Future[None] | None = None

    # ------------------------------------------------------------ sending

    def send(self, raw: bytes, waiter: Waiter) -> None:
        """Queue one request; it goes out with everything else queued this loop turn."""
        if self.state is DOWN or self.state is CLOSED:
            waiter.on_reply(self.down_reply)
            return
        if not self.waiting:
            self.progress_at = asyncio.get_running_loop().time()
        self.waiting.append(waiter)
        self.out.append(raw)
        if not self.dirty:
            self.dirty = True
            self.flusher.dirty_backends.append(self)

    def flush(self) -> None:
        self.dirty = False
        if self.state is UP and self.out:
            out = self.out
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))  # type: ignore[union-attr]
            self.out = []

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.scanner = ReplyScanner()
        self.state = UP
        self.progress_at = asyncio.get_running_loop().time()
        if self.proto == 3:  # the handshake goes before anything queued while connecting
            self.out.insert(0, HELLO3)
            self.waiting.appendleft(_Handshake(self))
        if self.out:
            self.flush()

    def data_received(self, data: bytes) -> None:
        scanner = self.scanner
        scanner.feed(data)
        waiting = self.waiting
        try:
            for raw in scanner.replies():
                if not waiting:
                    raise ProtocolError("reply with no request waiting for it")
                waiting.popleft().on_reply(raw)
                if raw[0] == 45 and raw.startswith(b"-READONLY"):  # a demoted master
                    self.flusher.hint_topology()
        except ProtocolError as exc:
            log.error("backend %s (%s): protocol error: %s; closing", self.addr, self.label, exc)
            self.transport.abort()  # type: ignore[union-attr]
        self.progress_at = asyncio.get_running_loop().time()
        self.flusher.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.state is UP:
            self.state = DOWN
            self.flusher.hint_topology()
        self.fail_all(self.down_reply)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    # ------------------------------------------------------------ failure handling

    def fail_all(self, reply: bytes) -> None:
        """Answer every queued and in-flight request with ``reply``."""
        self.out = []
        waiting = self.waiting
        self.waiting = deque()
        for waiter in waiting:
            waiter.on_reply(reply)
        if waiting:
            self.flusher.flush()

    def check_timeout(self, now: float) -> None:
        if (
            self.state is UP
            and self.waiting
            and now - self.progress_at > self.settings.command_timeout
        ):
            ms = int(self.settings.command_timeout * 1000)
            log.warning(
                "backend %s (shard %s): no reply for %d ms with %d request(s) in flight; "
                "dropping the connection",
                self.addr,
                self.label,
                ms,
                len(self.waiting),
            )
            self.state = DOWN
            self.fail_all(shard_down(self.label, f"timed out (no reply within {ms} ms)"))
            if self.transport is not None:
                self.transport.abort()

    async def maintain(self) -> None:
        """Connect, serve until the connection is lost, back off, reconnect; until cancelled."""
        loop = asyncio.get_running_loop()
        s = self.settings
        delay = s.reconnect_min
        was_down = False
        try:
            while True:
                self.state = CONNECTING
                self._lost = loop.create_future()
                try:
                    await asyncio.wait_for(
                        loop.create_connection(lambda: self, self.addr.host, self.addr.port),
                        s.connect_timeout,
                    )
                except (OSError, TimeoutError) as exc:
                    self.state = DOWN
                    why = "connect timed out" if isinstance(exc, TimeoutError) else str(exc)
                    self.fail_all(shard_down(self.label, f"is unavailable ({self.addr}: {why})"))
                    if not was_down:
                        log.warning("backend %s (shard %s) is down: %s", self.addr, self.label, why)
                        was_down = True
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, s.reconnect_max)
                    continue
                if was_down:
                    log.info("backend %s (shard %s) is back", self.addr, self.label)
                    was_down = False
                delay = s.reconnect_min
                await self._lost
                log.warning("backend %s (shard %s): connection lost", self.addr, self.label)
                self.state = DOWN
                was_down = True
                await asyncio.sleep(s.reconnect_min)
        finally:
            self.state = CLOSED
            if self.transport is not None:
                self.transport.abort()
            self.fail_all(self.down_reply)


class _Handshake:
    """Consumes the reply to ``HELLO 3``; a refusal drops the connection."""

    __slots__ = ("conn",)

    def __init__(self, conn: BackendConn) -> None:
        self.conn = conn

    def on_reply(self, raw: bytes) -> None:
        if raw[:1] == b"-":
            log.error("backend %s refused HELLO 3: %r", self.conn.addr, raw[:200])
            if self.conn.transport is not None:
                self.conn.transport.abort()


class Node:
    """One backend address and its pipelined connections."""

    def __init__(
        self, addr: Address, label: str, settings: BackendSettings, flusher: Flusher, proto: int = 2
    ) -> None:
        self.addr = addr
        self.proto = proto
        self.label = label
        size = settings.connections
        self.conns = [BackendConn(addr, label, settings, flusher, 2) for _ in range(size)]
        self.conns3 = [BackendConn(addr, label, settings, flusher, 3) for _ in range(size)]
        self.tasks: list[asyncio.Task[None]] = []

    def conn_for(self, client_id: int, proto: int = 2) -> BackendConn:
        conns = self.conns if proto == 2 else self.conns3
        return conns[0] if len(conns) == 1 else conns[client_id % len(conns)]

    def all_conns(self) -> list[BackendConn]:
        return self.conns + self.conns3

    def start(self, spawn: Callable[..., asyncio.Task[None]]) -> None:
        """Start the connection tasks with ``spawn`` (the owner's TaskGroup.create_task)."""
        self.tasks = [
            spawn(conn.maintain(), name=f"backend {self.addr} resp{conn.proto}")
            for conn in self.all_conns()
        ]

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()

    def is_up(self) -> bool:
        return all(conn.state is UP for conn in self.conns)
