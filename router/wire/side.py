"""Side connections: one command on a short-lived connection of its own to a node, bounded in time.

For what must not share the pipelined connections (router.wire.backend): the
router's CONFIG SET / RESETSTAT to every node of every shard, replicas
included (router.control.config_set); SCRIPT KILL / FUNCTION KILL, which must
never wait behind the busy script they stop on the shared connection
(`on_masters`: every master, merged with the command's merger); and the
``CLIENT UNBLOCK <server-side id>`` the router sends to release one of its
pinned connections (router.control.clients). `call` connects as the shared
connections do (`open_to`: TLS when ``tls.backends``; the handshake with the
backend credentials `settings_for_shard` gives that node), sends the
command, reads its one reply and closes. It never raises for a node that is
down, hung or refusing: the answer is then an error reply the router makes
(``-ERR unreachable (Connection refused)``), and the whole call is bounded by
``connect_timeout + command_timeout``.

    client ──SCRIPT KILL──► FanIn ─┬─ call_soon(master 0) ─► +OK / -NOTBUSY ...
                                   ├─ call_soon(master 1)
                                   └─ call_soon(master n)   (in parallel, each bounded)

Invariants: `call_soon` tasks are kept referenced until they finish, at most
`MAX_IN_FLIGHT` at once router-wide (past it the waiter gets an ``-ERR``
at once), and each gives its waiter exactly one reply (an unreachable master
as ``-CLUSTERDOWN shard <name> ...``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol

from router.decide.fanin import FanIn, FanInPart
from router.decide.merge import Merger
from router.errors import shard_down
from router.wire.backend import BackendSettings, handshake, open_to
from router.wire.ports import Waiter
from slotwarden.cluster.topology import Address
from slotwarden.resp.encode import encode_command, error_reply
from slotwarden.resp.errors import ProtocolError
from slotwarden.resp.replies import ReplyScanner


class _OneShot(asyncio.Protocol):
    """Collects ``want`` replies, then resolves ``done``."""

    def __init__(self, want: int) -> None:
        self.want = want
        self.scanner = ReplyScanner()
        self.replies: list[bytes] = []
        self.done: asyncio.Future[list[bytes]] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        try:
            self.scanner.feed(data)
            self.replies += self.scanner.replies()
        except ProtocolError as exc:
            if not self.done.done():
                self.done.set_exception(exc)
            return
        if len(self.replies) >= self.want and not self.done.done():
            self.done.set_result(self.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError("connection closed"))


async def call(addr: Address, settings: BackendSettings, args: list[bytes]) -> bytes:
    """``args``' reply from ``addr`` on a connection of its own, or an error naming why
    not (the handshake's refusal, unreachable, timed out)."""
    hello = handshake(settings.credentials, 2)
    proto = _OneShot(2 if hello else 1)
    transport: asyncio.BaseTransport | None = None
    limit = settings.connect_timeout + settings.command_timeout
    try:
        async with asyncio.timeout(limit):
            transport = await open_to(proto, addr, settings)
            transport.write(hello + encode_command(args))  # type: ignore[attr-defined]
            replies = await proto.done
    except TimeoutError:
        return error_reply(f"ERR timed out (no reply within {int(limit * 1000)} ms)")
    except (OSError, ProtocolError) as exc:
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return error_reply(f"ERR unreachable ({why})")
    finally:
        if transport is not None:
            transport.close()
    if hello and replies[0][:1] == b"-":
        why = replies[0][1:].rstrip(b"\r\n").decode("utf-8", "replace")[:200]
        return error_reply(f"ERR refused the router's backend credentials ({why})")
    return replies[-1]


# Commands sent on side connections instead of the shared connection.
SIDE_COMMANDS = frozenset({"script|kill", "function|kill"})

_tasks: set[asyncio.Task[None]] = set()  # side calls in flight (kept referenced)
# Side connections open at once, router-wide: a client repeating SCRIPT KILL or
# CLIENT UNBLOCK in a loop must not open connections to the shards without bound.
MAX_IN_FLIGHT = 64
BUSY = error_reply(
    f"ERR router has {MAX_IN_FLIGHT} side connections in flight already "
    "(SCRIPT KILL, FUNCTION KILL, CLIENT UNBLOCK); try again"
)
# the errors `call` makes itself (not the node's): said as the shard being down
_OWN_ERRORS = (b"-ERR timed out", b"-ERR unreachable", b"-ERR refused the router")


def call_soon(
    addr: Address,
    label: str,
    settings: BackendSettings,
    args: list[bytes],
    waiter: Waiter,
    after: Callable[[], None],
) -> None:
    """`call` in a task; its reply goes to ``waiter`` (the router's own errors as
    ``-CLUSTERDOWN shard <label> ...``), then ``after()`` runs (the caller's flush).
    Past `MAX_IN_FLIGHT` calls at once, ``waiter`` gets `BUSY` now."""
    if len(_tasks) >= MAX_IN_FLIGHT:
        waiter.on_reply(BUSY)
        return

    async def run() -> None:
        reply = await call(addr, settings, args)
        if reply.startswith(_OWN_ERRORS):
            why = reply[5:].rstrip(b"\r\n").decode("utf-8", "replace")
            reply = shard_down(label, f"{why} ({addr})")
        waiter.on_reply(reply)
        after()

    task = asyncio.get_running_loop().create_task(run(), name=f"side {addr}")
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


class NodeLike(Protocol):
    """What `on_masters` needs of a `router.wire.node.Node`."""

    @property
    def addr(self) -> Address: ...

    @property
    def label(self) -> str: ...

    @property
    def settings(self) -> BackendSettings: ...


def on_masters(
    masters: Sequence[NodeLike],
    args: list[bytes],
    merger: Merger,
    waiter: Waiter,
    after: Callable[[], None],
) -> None:
    """Send ``args`` to every master on side connections, in parallel; the replies,
    merged by ``merger``, go to ``waiter``."""
    fan = FanIn(len(masters), merger, waiter.on_reply)
    for index, node in enumerate(masters):
        call_soon(node.addr, node.label, node.settings, args, FanInPart(fan, index), after)
