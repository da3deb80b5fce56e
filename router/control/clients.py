"""Every client connection of the router, by id: the max_clients bound, the counts,
CLIENT LIST/KILL/UNBLOCK/PAUSE.

`Clients` is the `router.wire.client.ClientRegistry` the client connections
register with. It hands out client ids (from 1, never reused), refuses a
connection past ``router.max_clients``, counts the connections accepted and
refused (INFO, /metrics), lists the sessions (CLIENT LIST, their live numbers
refreshed), closes the clients a CLIENT KILL filter matches, releases a client
blocked on its pinned connections (CLIENT UNBLOCK: ``CLIENT UNBLOCK <the
connection's id on the shard>`` on a side connection, `router.wire.reblock.unblock`:
the shard answers the blocked command itself and nothing popped is lost), holds the
router-wide CLIENT PAUSE (``pause``; its end wakes every client), tells every client when the route
changes, and drains them at shutdown (no new request served, blocked commands
that would outlive the drain released at its start).

Invariants: ``by_id`` holds exactly the clients that were admitted and have
not disconnected yet; while ``pause`` is in force a timer is armed for its end,
so a paused client waits at most the pause's length.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from router.decide.client_ctl import KillFilter, Pause, visible
from router.decide.merge import first_error
from router.decide.modes import Mode
from router.decide.session import Session
from router.wire import side
from router.wire.client import ClientConn
from router.wire.pinned import PinnedConn
from router.wire.ports import ConfigSource, Waiter
from router.wire.reblock import unblock as _unblock_one
from slotwarden.resp.encode import encode_int

log = logging.getLogger("slotwarden.router")

ZERO, ONE = encode_int(0), encode_int(1)


def merge_unblocked(parts: list[bytes]) -> bytes:
    """CLIENT UNBLOCK over the pinned connections of one client: 1 if a shard released
    one, else 0 (the error of a shard that could not be asked, if every one failed)."""
    if ONE in parts:
        return ONE
    if ZERO in parts:
        return ZERO
    return first_error(parts) or ZERO


class Clients:
    def __init__(self, running: ConfigSource) -> None:
        self.running = running
        self.by_id: dict[int, ClientConn] = {}
        self.total = 0  # connections accepted since start
        self.rejected = 0  # connections refused at max_clients
        self._next_id = 0
        # CLIENT ID = k * id_stride + id_base: unique across workers (router.control.workers)
        self.id_stride = 1
        self.id_base = 0
        self.pause = Pause()  # CLIENT PAUSE, router-wide
        self._pause_timer: asyncio.TimerHandle | None = None
        self._unblocks: set[asyncio.Task[None]] = set()  # CLIENT UNBLOCKs in flight

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id * self.id_stride + self.id_base

    def open(self, client: ClientConn) -> bool:
        if len(self.by_id) >= self.running.config.router.max_clients:
            self.rejected += 1
            return False
        self.total += 1
        self.by_id[client.session.id] = client  # type: ignore[union-attr]
        return True

    def close(self, client: ClientConn) -> None:
        if client.session is not None:
            self.by_id.pop(client.session.id, None)

    def sessions(self) -> list[Session]:
        """Every client's session, its live numbers (CLIENT LIST qbuf, oll, omem) refreshed;
        a client CLIENT KILL closed is gone at once, even before its loss is processed."""
        out = []
        for c in self.by_id.values():
            s = c.session
            if s is None or (c.transport is not None and c.transport.is_closing() and s.closing):
                continue
            s.qbuf = c.reader.unparsed()
            s.oll = len(c.fifo)
            s.omem = c.transport.get_write_buffer_size() if c.transport is not None else 0
            out.append(s)
        return out

    # ------------------------------------------------------------ CLIENT KILL / UNBLOCK

    def kill(self, f: KillFilter) -> int:
        """Close every client ``f`` matches, as if it had disconnected (its replies in
        flight are dropped, its dedicated connections closed); the client that asked
        is closed after its reply. The number of clients matched."""
        now = time.time()
        killed = 0
        for client in list(self.by_id.values()):
            s = client.session
            if s is None or client.transport is None or not f.matches(s, now):
                continue
            killed += 1
            if s.id == f.me.id:
                s.closing = True  # after the reply to CLIENT KILL, as Redis does
            else:
                s.closing = True
                client.transport.abort()
        return killed

    def unblock(
        self, me: Session, target: int, error: bool, waiter: Waiter, after: Callable[[], None]
    ) -> None:
        """CLIENT UNBLOCK ``target``: ask each shard the client waits on to unblock the
        pinned connection (TIMEOUT or ERROR); the shard answers the blocked command on
        that connection, the reply to ``waiter`` is 1 if a shard released one, else 0."""
        client = self.by_id.get(target)
        s = client.session if client is not None else None
        if (
            client is None
            or s is None
            or not visible(me, s)
            or client.state.mode is not Mode.BLOCKED
        ):
            waiter.on_reply(ZERO)
            return
        conns = [c for c in client.state.blocked if c.blocking is not None]
        if not conns:
            waiter.on_reply(ZERO)
            return
        if len(self._unblocks) >= side.MAX_IN_FLIGHT:
            waiter.on_reply(side.BUSY)
            return
        how = b"ERROR" if error else b"TIMEOUT"
        task = asyncio.get_running_loop().create_task(self._unblock(conns, how, waiter, after))
        self._unblocks.add(task)
        task.add_done_callback(self._unblocks.discard)

    async def _unblock(
        self, conns: list[PinnedConn], how: bytes, waiter: Waiter, after: Callable[[], None]
    ) -> None:
        """Release each connection the blocked command waits on; bounded by the
        connections' connect + command timeouts."""
        replies = await asyncio.gather(*(_unblock_one(conn, how) for conn in conns))
        waiter.on_reply(merge_unblocked(list(replies)))
        after()

    # ------------------------------------------------------------ CLIENT PAUSE / UNPAUSE

    def pause_for(self, ms: int, everything: bool) -> None:
        """CLIENT PAUSE ms [WRITE|ALL]: clients' commands (ALL) or writes wait until
        the pause ends (CLIENT UNPAUSE, or its time)."""
        loop = asyncio.get_running_loop()
        self.pause.start(loop.time(), ms, everything)
        if self._pause_timer is not None:
            self._pause_timer.cancel()
        self._pause_timer = loop.call_at(self.pause.until, self._pause_over)

    def unpause(self) -> None:
        self.pause.end()
        if self._pause_timer is not None:
            self._pause_timer.cancel()
            self._pause_timer = None
        self._wake_all()

    def _pause_over(self) -> None:
        self._pause_timer = None
        loop = asyncio.get_running_loop()
        if self.pause.until and loop.time() < self.pause.until:  # extended meanwhile
            self._pause_timer = loop.call_at(self.pause.until, self._pause_over)
            return
        self.pause.end()
        self._wake_all()

    def _wake_all(self) -> None:
        for client in list(self.by_id.values()):
            if client.transport is not None:
                client.resume_soon()

    def on_route_change(self) -> None:
        """The route changed: each client moves what it holds itself (its subscriptions)."""
        for client in list(self.by_id.values()):
            client.on_route_change()

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for every client's owed replies, then close them.

        From the start no client gets a new request served (as after QUIT: each is
        closed once the replies it is owed are written; one owed nothing at once),
        and a blocked command that would still be waiting when the drain ends
        (BLPOP 0, or a timeout past the drain's) is released now with ``CLIENT
        UNBLOCK ... TIMEOUT`` on its shard: the shard answers it as a timeout (nil),
        or with what it popped meanwhile, so nothing popped is lost."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        released = 0
        for client in list(self.by_id.values()):
            if client.transport is None or client.session is None:
                continue
            client.session.closing = True
            if not client.fifo:
                client.transport.close()
                continue
            if client.state.mode is not Mode.BLOCKED:
                continue
            for conn in client.state.blocked:
                if conn.blocking is not None and conn.progress_at + conn.grace > deadline:
                    task = loop.create_task(_unblock_one(conn, b"TIMEOUT"))
                    self._unblocks.add(task)
                    task.add_done_callback(self._unblocks.discard)
                    released += 1
        if released:
            log.info("drain: released %d blocked command(s) that would outlive it", released)
        while any(c.fifo for c in self.by_id.values()) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for client in list(self.by_id.values()):
            if client.transport is not None:
                client.transport.close()
        for task in list(self._unblocks):
            task.cancel()
