"""Backend connections: shared, pipelined, write-coalesced connections to Redis nodes.

A `router.wire.node.Node` per backend address owns ``size`` `BackendConn` s
per protocol (RESP2, and RESP3 ones that say ``HELLO 3`` first, for RESP3
clients). Each connection is kept alive by one task (`BackendConn.maintain`)
that connects, waits for the loss, backs off and reconnects, forever. Every
new connection first sends its `handshake`, ``HELLO 3`` (RESP3 ones) and/or
``AUTH`` (when cluster.yaml has ``backend:`` credentials, and only to a node
cluster.yaml lists for its shard: `settings_for_shard`); a refusal is
logged once and answered to the shard's requests as ``-CLUSTERDOWN shard a
refused ...``. A retired connection (its node left the route, see
`Node.retire`) still gets its in-flight replies for a grace period, and every
one of them but a ``-READONLY`` refusal becomes an error (the fence: an
acknowledgement from a replaced master may be lost with it).

    clients ──send(raw, waiter)──► out: [raw, raw, ...]  ── flush(): one write per loop turn
                                   waiting: deque[waiter]  ◄── replies, framed by ReplyScanner,
                                                              handed to waiters in FIFO order

A connection with requests in flight when a turn first gives it one marks the
turn ``busy``: every backend's requests of that turn wait for its end, each
backend's in one write. On a quiet loop, connections with none in flight are
written at the end of the client read that gave them requests, which ends the
turn (Nagle's rule, `router.wire.turn.LoopTurn.flush_requests`).

With the C hot path built (`router.wire.hot`), `BackendConn` sits on
``BackendBase``: the attributes it reads (``BACKEND_FIELDS``) are C fields and
``send``, ``flush`` and ``data_received`` run in C (complete replies with no partial
one buffered before them go to their waiters there; the rest to `_data_received`
from that byte); `_send`, `_flush` and `_data_received` are the Python reference.

A connection calls up only through its `BackendPorts` (router.wire.ports): the
`LoopTurn` that flushes it, the counters it bumps (`StatsSink`), and the
`TopologyHint` it gives when a master refuses a write or goes away.

Invariants:
- ``waiting`` holds exactly one waiter per request written (or queued to be
  written) on the current connection, in write order; the n-th reply belongs
  to the n-th waiter.
- A waiter is answered exactly once: by its reply, or by an error when the
  connection fails, times out, or is down (fail fast while backing off).
- A node's outage is logged once ("is down", "connection lost" or "no reply ...")
  and "is back" only when it answers again (a PING sent on reconnecting): a hung
  node that accepts TCP connections is not "back" on every reconnect.
- Nothing waits forever: `check_timeout` aborts a connection whose oldest
  request has seen no reply for ``command_timeout`` (a retired one too: the
  route table's sweep covers it, and it is not reconnected); connecting is
  bounded by ``connect_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace

from router.errors import shard_down
from router.wire.hot import H
from router.wire.ports import BackendPorts, Waiter
from slotwarden.cluster.config import ClusterConfig
from slotwarden.cluster.secrets import BackendCredentials, backend_credentials
from slotwarden.cluster.tls import backend_context
from slotwarden.cluster.topology import Address
from slotwarden.cluster.trust import is_listed
from slotwarden.resp.encode import encode_command
from slotwarden.resp.errors import ProtocolError
from slotwarden.resp.replies import ReplyScanner

log = logging.getLogger("slotwarden.backend")


# The attributes the C hot path reads and writes directly: `router.wire._hot.BackendBase`'s
# fields when it is built, these slots otherwise (tests/unit/router/test_hot_path.py checks
# that the two lists match).
BACKEND_FIELDS = (
    "state", "waiting", "out", "dirty", "turn", "loop", "transport", "progress_at",
    "down_reply", "hints", "retired", "scanner",
)  # fmt: skip


class _PyBackendBase:
    """`BackendConn`'s base without the C hot path: the same attributes as slots (its
    reference methods are used)."""

    __slots__ = BACKEND_FIELDS


BackendBase = H.BackendBase if H is not None else _PyBackendBase


@dataclass(frozen=True, slots=True)
class BackendSettings:
    connect_timeout: float = 1.0
    command_timeout: float = 2.0
    reconnect_min: float = 0.05
    reconnect_max: float = 2.0
    connections: int = 1
    pinned_max: int = 512  # dedicated connections per node (router.pinned_connections_per_node)
    pinned_idle: int = 8  # ... kept open when returned clean (router.pinned_idle_per_node)
    pinned_per_source: int = 256  # ... held by the clients of one source address
    pinned_per_user: int = 384  # ... held by one router user's clients
    pinned_reserved: int = 32  # ... the last ones, kept for subscriptions
    credentials: BackendCredentials | None = None  # sent first on every connection
    ssl: ssl.SSLContext | None = None  # Redis TLS (cluster.yaml tls.backends), else plain TCP


def settings_from_config(
    config: ClusterConfig, environ: Mapping[str, str] = os.environ
) -> BackendSettings:
    """Every backend setting of ``config``, the backend password read from its source.

    Raises `SecretError` when ``backend:`` names a password that cannot be read.
    """
    r = config.router
    return BackendSettings(
        connect_timeout=r.connect_timeout_ms / 1000,
        command_timeout=r.command_timeout_ms / 1000,
        reconnect_min=r.reconnect_min_ms / 1000,
        reconnect_max=r.reconnect_max_ms / 1000,
        connections=r.backend_connections,
        pinned_max=r.pinned_connections_per_node,
        pinned_idle=r.pinned_idle_per_node,
        pinned_per_source=r.pinned_per_source,
        pinned_per_user=r.pinned_per_user,
        pinned_reserved=r.pinned_reserved_for_pubsub,
        credentials=backend_credentials(config.backend, environ),
        ssl=backend_context(config.tls),  # SecretError if a tls file cannot be loaded
    )


async def open_to(
    conn: asyncio.Protocol, addr: Address, settings: BackendSettings
) -> asyncio.BaseTransport:
    """Connect ``conn`` to ``addr``, over TLS (verifying the node's certificate against
    tls.ca_file, for ``addr.host``) when ``settings.ssl`` is set; the caller bounds the time."""
    loop = asyncio.get_running_loop()
    context = settings.ssl
    transport, _ = await loop.create_connection(
        lambda: conn,
        addr.host,
        addr.port,
        ssl=context,
        server_hostname=addr.host if context is not None else None,
    )
    return transport


def settings_for_shard(
    settings: BackendSettings,
    config: ClusterConfig,
    shard: str,
    addr: Address,
    environ: Mapping[str, str] = os.environ,
) -> BackendSettings:
    """``settings`` for node ``addr`` of ``shard``: the shard's own credentials when it has
    its own ``backend:``, and none at all for an address cluster.yaml does not list for
    that shard (the backend password never goes to a server the file does not name)."""
    if not is_listed(config, shard, addr):
        if settings.credentials is not None:
            log.error(
                "backend %s is not a node of shard %s in cluster.yaml: no credentials sent",
                addr,
                shard,
            )
        return replace(settings, credentials=None)
    for section in config.shards:
        if section.name == shard and section.backend is not None:
            return replace(settings, credentials=backend_credentials(section.backend, environ))
    return settings


def handshake(credentials: BackendCredentials | None, proto: int) -> bytes:
    """The first request on a backend connection: ``HELLO 3 [AUTH ..]`` for RESP3,
    ``AUTH ..`` for RESP2 with credentials, nothing otherwise."""
    if proto == 3:
        return encode_command([b"HELLO", b"3", *(credentials.hello_args() if credentials else [])])
    if credentials is not None:
        return encode_command([b"AUTH", *credentials.auth_args()])
    return b""


CONNECTING, UP, DOWN, CLOSED = "connecting", "up", "down", "closed"


class BackendConn(BackendBase, asyncio.Protocol):
    # the rest of its attributes are BackendBase's (BACKEND_FIELDS)
    __slots__ = (
        "_lost", "addr", "handshake", "label", "proto", "refused", "settings", "stats",
        "told_down", "version",
    )  # fmt: skip

    def __init__(
        self,
        addr: Address,
        label: str,
        settings: BackendSettings,
        ports: BackendPorts,
        proto: int = 2,
    ) -> None:
        self.addr = addr
        self.proto = proto
        self.label = label  # shard name, for error replies
        self.settings = settings
        self.turn = ports.turn  # the loop turn this connection's output is flushed in
        self.stats = ports.stats
        self.hints = ports.hints
        self.state = CONNECTING
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[Waiter] = deque()
        self.out: list[bytes] = []
        self.dirty = False
        self.scanner = ReplyScanner()
        self.progress_at = 0.0
        self.down_reply = shard_down(label)
        self.retired = False  # no longer in the route: see Node.retire
        self.loop: asyncio.AbstractEventLoop | None = None  # cached (get_running_loop: a getpid)
        self._lost: asyncio.Future[None] | None = None
        # HELLO 3 and/or AUTH, sent before anything else on every new connection
        self.handshake = handshake(settings.credentials, proto)
        self.refused = False  # the node refused the handshake (bad credentials)
        self.told_down = False  # "is down" was logged and the node has not answered since
        self.version = ""  # the node's redis_version, from its HELLO 3 reply (RESP3 only)

    # ------------------------------------------------------------ sending

    def _send(self, raw: bytes, waiter: Waiter) -> None:
        """Queue one request; it goes out with everything else queued this loop turn (the
        reference; `BackendBase`'s C ``send`` runs when built)."""
        if self.state is DOWN or self.state is CLOSED:
            waiter.on_reply(self.down_reply)
            return
        in_flight = bool(self.waiting)
        if not in_flight:
            self.progress_at = self.now()
        self.waiting.append(waiter)
        self.out.append(raw)
        if not self.dirty:
            if in_flight:  # the turn's requests wait for its end (turn.flush_requests)
                self.turn.busy = True
            self.dirty = True
            self.turn.dirty_backends.append(self)

    if H is None:
        send = _send

    def now(self) -> float:
        loop = self.loop
        if loop is None:
            loop = self.loop = asyncio.get_running_loop()
        return loop.time()

    def _flush(self) -> None:
        """What this loop turn queued, in one write (the reference; `BackendBase`'s C
        ``flush`` runs when built)."""
        self.dirty = False
        if self.state is UP and self.out:
            out = self.out
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))  # type: ignore[union-attr]
            self.out = []

    if H is None:  # pure Python: the reference methods are the protocol's
        flush = _flush

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.scanner = ReplyScanner()
        self.state = UP
        self.loop = asyncio.get_running_loop()
        self.progress_at = self.loop.time()
        if self.handshake:  # the handshake goes before anything queued while connecting
            self.out.insert(0, self.handshake)
            self.waiting.appendleft(_Handshake(self))
        if self.out:
            self.flush()

    def _data_received(self, data: bytes) -> None:
        """Replies, each to the next waiter (the reference ``data_received``; `BackendBase`'s
        C one runs when built: complete replies with no partial one buffered before them
        are handed out in C, and what is left comes here from that byte)."""
        if self.retired:
            self._retired_data(data)
            return
        scanner = self.scanner
        scanner.feed(data)
        waiting = self.waiting
        try:
            for raw in scanner.replies():
                if not waiting:
                    raise ProtocolError("reply with no request waiting for it")
                waiting.popleft().on_reply(raw)
                if raw[0] == 45 and raw.startswith(b"-READONLY"):  # a demoted master
                    self.hints.hint_topology()
        except ProtocolError as exc:
            if not self.refused:  # after a refused handshake the rest is noise
                log.error(
                    "backend %s (%s): protocol error: %s; closing", self.addr, self.label, exc
                )
            self.transport.abort()  # type: ignore[union-attr]
        self.progress_at = self.loop.time()  # type: ignore[union-attr]  # set by connection_made
        self.turn.flush_replies()

    if H is None:
        data_received = _data_received

    def _retired_data(self, data: bytes) -> None:
        """Replies from a master the topology has replaced. A ``-READONLY`` (the
        write was refused, so the router may send it to the new master) passes;
        any other reply becomes an error, because what it acknowledges may be
        lost with the old master."""
        self.scanner.feed(data)
        try:
            for raw in self.scanner.replies():
                if not self.waiting:
                    raise ProtocolError("reply with no request waiting for it")
                waiter = self.waiting.popleft()
                waiter.on_reply(raw if raw.startswith(b"-READONLY") else self.failed_over_reply)
        except ProtocolError:
            if self.transport is not None:
                self.transport.abort()
        self.turn.flush()

    @property
    def failed_over_reply(self) -> bytes:
        return shard_down(
            self.label, "failed over while the request was in flight (it may not have been applied)"
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.state is UP:  # not our doing (a timeout or a stop sets the state first)
            self.state = DOWN
            self.stats.backend_error(str(self.addr))
            self.hints.hint_topology()
        self.fail_all(self.down_reply)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    # ------------------------------------------------------------ failure handling

    def fail_all(self, reply: bytes) -> None:
        """Answer every queued and in-flight request with ``reply``."""
        self.out = []
        waiting = self.waiting
        self.waiting = deque()
        answered = bool(waiting)
        while waiting:  # emptied: a reply loop still holding this deque answers none twice
            waiting.popleft().on_reply(reply)
        if answered:
            self.turn.flush()

    def check_timeout(self, now: float) -> None:
        if (
            self.state is UP
            and self.waiting
            and now - self.progress_at > self.settings.command_timeout
        ):
            ms = int(self.settings.command_timeout * 1000)
            self.stats.backend_timeout(str(self.addr))
            if not self.told_down:  # a hung node: once, not on every reconnect's timeout
                self.told_down = True
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
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow
                    # a cancel that lands as the connection completes (Node.stop lost)
                    async with asyncio.timeout(s.connect_timeout):
                        await open_to(self, self.addr, s)
                except (OSError, TimeoutError) as exc:
                    self.state = DOWN
                    timed_out = isinstance(exc, TimeoutError)
                    stats = self.stats
                    (stats.backend_timeout if timed_out else stats.backend_error)(str(self.addr))
                    why = "connect timed out" if timed_out else str(exc)
                    reply = shard_down(self.label, f"is unavailable ({self.addr}: {why})")
                    if isinstance(exc, ssl.SSLError):  # say why to every request until fixed
                        self.down_reply = reply
                    self.fail_all(reply)
                    if not self.told_down:
                        log.warning("backend %s (shard %s) is down: %s", self.addr, self.label, why)
                        self.told_down = True
                    was_down = True
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, s.reconnect_max)
                    continue
                if not self.refused:
                    self.down_reply = shard_down(self.label)
                if was_down and not self.refused:
                    # a TCP connect is not an answer (a SIGSTOPped node's kernel accepts
                    # it): "is back" is logged when the node answers this PING
                    self.send(PING, _Back(self))
                    self.turn.flush()
                    was_down = False
                await self._lost
                self.state = DOWN
                if self.retired:  # out of the route (a timeout dropped it): no reconnect
                    return
                was_down = True
                if self.refused:  # bad credentials: back off as for a node that is down
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, s.reconnect_max)
                    continue
                if not self.told_down:
                    log.warning("backend %s (shard %s): connection lost", self.addr, self.label)
                    self.told_down = True
                delay = s.reconnect_min
                await asyncio.sleep(s.reconnect_min)
        finally:
            self.state = CLOSED
            if self.transport is not None:
                self.transport.abort()
            self.fail_all(self.down_reply)


PING = encode_command([b"PING"])


def hello_version(raw: bytes) -> str:
    """The ``version`` field of a HELLO 3 reply ("" if there is none)."""
    at = raw.find(b"$7\r\nversion\r\n$")
    if at < 0:
        return ""
    head = at + 14
    nl = raw.find(b"\r\n", head)
    size = int(raw[head:nl]) if raw[head:nl].isdigit() else 0
    return raw[nl + 2 : nl + 2 + size].decode("ascii", "replace")


class _Back:
    """The PING sent on a reconnection: the node is back once it answers (any reply from
    the node; not the shard-down error a failed connection answers its waiters with)."""

    __slots__ = ("conn",)

    def __init__(self, conn: BackendConn) -> None:
        self.conn = conn

    def on_reply(self, raw: bytes) -> None:
        conn = self.conn
        if conn.told_down and not raw.startswith(b"-CLUSTERDOWN"):
            conn.told_down = False
            log.info("backend %s (shard %s) is back", conn.addr, conn.label)


class _Handshake:
    """Consumes the reply to ``HELLO 3`` / ``AUTH``; a refusal drops the connection, and
    until a handshake succeeds the shard's requests are answered with the reason."""

    __slots__ = ("conn",)

    def __init__(self, conn: BackendConn) -> None:
        self.conn = conn

    def on_reply(self, raw: bytes) -> None:
        conn = self.conn
        if raw.startswith(b"-CLUSTERDOWN"):
            # not the node's answer: the connection failed first (a timeout, a loss) and
            # every waiter got the shard-down error; maintain() reconnects as for a loss
            return
        if raw[:1] != b"-":
            if conn.refused:
                log.info("backend %s (shard %s) accepted the handshake", conn.addr, conn.label)
            conn.refused = False
            conn.down_reply = shard_down(conn.label)
            conn.version = hello_version(raw)
            return
        why = raw[1:].rstrip(b"\r\n").decode("utf-8", "replace")[:200]
        if not conn.refused:
            # the reply names no secret (Redis answers WRONGPASS/NOAUTH/NOPROTO texts)
            log.error(
                "backend %s (shard %s) refused the router's handshake (%s): %s",
                conn.addr, conn.label,
                "credentials" if conn.settings.credentials else "HELLO 3", why,
            )  # fmt: skip
        conn.refused = True
        conn.down_reply = shard_down(
            conn.label, f"refused the router's backend credentials or protocol ({why})"
        )
        # Requests pipelined behind the handshake ran unauthenticated (NOAUTH):
        # answer them with the reason instead, and drop the connection.
        conn.fail_all(conn.down_reply)
        if conn.transport is not None:
            conn.transport.abort()
