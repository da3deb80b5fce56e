"""Releasing a blocked command from a shard, and re-blocking it where its keys now live.

The I/O half of `router.decide.reblock`. `unblock` sends ``CLIENT UNBLOCK <the
pinned connection's id on the shard> TIMEOUT|ERROR`` on a side connection
(router.wire.side); CLIENT UNBLOCK from a client and the drain at shutdown
(router.control.clients) use it too. The re-blocking of a client's blocking
command (router.wire.client_state), when a new route has a slot of its keys
served by another shard than the one it blocks on:

    _block          ─► watch(): remember spec, args, its shard, the deadline
    route change    ─► route_changed(): affected? ─► unblock(conn, TIMEOUT) (a task)
                       (a slot of its keys served by another shard: a migration now
                       moving, or a new owner; not while preparing)
    the shard's reply ─► retry(): the nil our release caused, time left
                          ─► the reply slot is given up and the command dispatched
                             again with the remaining timeout (held while preparing,
                             keys moved when moving, then blocked on the target)
                       ─► anything else (an element, an error, the command's own
                          timeout): forwarded as usual

Invariants: only a command blocked on one connection of its own (not WAIT, not on a
WATCH connection) is released; at most one release per blocked command; the
client sees exactly one reply (its reply slot is the FIFO's last one, so the
re-dispatched command takes the same place; a reply CLIENT REPLY OFF/SKIP drops is
not re-blocked); an element the shard popped as it
was released is forwarded, never lost or sent twice (the shard answers the command
itself). Releases in flight are bounded (`MAX_RELEASES`) and kept referenced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from router.commands.spec import CommandSpec
from router.decide import reblock as decide
from router.decide.modes import Mode
from router.wire import side
from router.wire.backend import CLOSED, DOWN
from router.wire.node import RouteSource
from router.wire.pinned import PinnedConn
from router.wire.turn import LoopTurn
from slotwarden.resp.encode import encode_command, encode_int

ZERO = encode_int(0)
MAX_RELEASES = 16  # CLIENT UNBLOCKs sent at once for re-blocking, router-wide


async def unblock(conn: PinnedConn, how: bytes) -> bytes:
    """``CLIENT UNBLOCK <conn's id on the shard> TIMEOUT|ERROR`` on a side connection.

    The router marks its client blocked as it sends the command; the shard sees it
    a little later (the dedicated connection may still be opening, the command in
    flight). So the call waits for the connection's id, and while the shard answers
    0 and the command is still unanswered, asks again every 10 ms, up to
    ``connect_timeout + command_timeout``: a client blocked at the router is
    released, and one whose command was answered meanwhile (an element popped)
    gets that answer, the reply here being 0."""
    loop = asyncio.get_running_loop()
    settings = conn.settings
    deadline = loop.time() + settings.connect_timeout + settings.command_timeout
    blocking = conn.blocking
    while True:
        if conn.blocking is not blocking or conn.state in (CLOSED, DOWN):
            return ZERO  # answered (or gone) before it could be released
        if conn.server_id:
            args = [b"CLIENT", b"UNBLOCK", b"%d" % conn.server_id, how]
            reply = await side.call(conn.addr, settings, args)
            if reply != ZERO:
                return reply
        if loop.time() >= deadline:
            return ZERO
        await asyncio.sleep(0.01)


class Blocked:
    """A blocking command in flight that may be re-blocked elsewhere."""

    __slots__ = ("args", "deadline", "releasing", "shard", "spec")

    def __init__(
        self, spec: CommandSpec, args: list[bytes], shard: str, deadline: float | None
    ) -> None:
        self.spec = spec
        self.args = args
        self.shard = shard  # the name of the shard it blocks on
        self.deadline = deadline  # loop time its own timeout ends (None: never)
        self.releasing = False  # CLIENT UNBLOCK sent (or being sent) for a re-block


def watch(spec: CommandSpec, args: list[bytes], shard: str, grace: float | None) -> Blocked | None:
    """What `route_changed` and `retry` need of a blocking command sent now to shard
    ``shard`` (``grace``: its own timeout, None forever); None if it is never
    re-blocked (WAIT, XREAD ... $)."""
    if not decide.reissue(spec, args):
        return None
    deadline = None if grace is None else asyncio.get_running_loop().time() + grace
    return Blocked(spec, args, shard, deadline)


class _Client(Protocol):
    transport: asyncio.Transport | None
    fifo: Any  # deque[Pending]
    turn: LoopTurn
    dropped: set[Any] | None  # replies CLIENT REPLY OFF/SKIP drops

    def dispatch(self, args: list[bytes], raw: bytes, spec: CommandSpec | None) -> None: ...


class ReblockState(Protocol):
    """What re-blocking needs of a client's state (router.wire.client_state.ClientState)."""

    reblock: Blocked | None
    mode: Mode
    blocked: list[PinnedConn]
    watch: PinnedConn | None
    routes: RouteSource

    @property
    def client(self) -> _Client: ...

    def on_unblocked(self) -> None: ...


_tasks: set[asyncio.Task[None]] = set()
_gate: list[asyncio.Semaphore] = []  # made on first use, inside the running loop


def route_changed(state: ReblockState) -> None:
    """The route changed: release the client's blocked command from its shard if a
    slot of its keys is served by another shard now (`router.decide.reblock.affected`)."""
    blocked = state.reblock
    if (
        blocked is None
        or blocked.releasing
        or state.mode is not Mode.BLOCKED
        or len(state.blocked) != 1
        or state.watch is not None
    ):
        return
    if not decide.affected(blocked.spec, blocked.args, blocked.shard, state.routes.route.slotmap):
        return
    conn = state.blocked[0]
    if conn.blocking is None:
        return  # answered already
    blocked.releasing = True
    _spawn(lambda: _release(conn))


async def _release(conn: PinnedConn) -> None:
    if not _gate:
        _gate.append(asyncio.Semaphore(MAX_RELEASES))
    async with _gate[0]:
        await unblock(conn, b"TIMEOUT")  # the shard answers the command itself


def _spawn(make: Callable[[], Any]) -> None:
    task = asyncio.get_running_loop().create_task(make(), name="reblock")
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def retry(state: ReblockState, pending: object, reply: bytes) -> bool:
    """The blocked command's ``reply`` is in: True if it was the nil our release caused
    and the command was dispatched again (its reply slot ``pending`` given up), False
    to answer ``reply`` as usual."""
    blocked, state.reblock = state.reblock, None
    if blocked is None or not blocked.releasing or not decide.is_nil(reply):
        return False
    client = state.client
    fifo = client.fifo
    if client.transport is None or not fifo or fifo[-1] is not pending:
        return False
    if client.dropped is not None and pending in client.dropped:
        return False  # CLIENT REPLY OFF/SKIP: its slot is marked dropped; ends as before
    left: float | None = None
    if blocked.deadline is not None:
        left = blocked.deadline - asyncio.get_running_loop().time()
        if left < decide.MIN_LEFT_S:
            return False  # its own timeout is over: the nil is the answer
    args = decide.with_timeout(blocked.spec, blocked.args, left)
    fifo.pop()
    state.on_unblocked()
    client.dispatch(args, encode_command(args), blocked.spec)
    client.turn.flush()
    return True
