"""Side connections: one request to a node on a short-lived connection of its own.

Some commands must never wait behind what a shared or pinned connection is
doing: ``SCRIPT KILL`` / ``FUNCTION KILL`` (the busy script they must stop is
in front of them on the shared, pipelined connection), and the
``CLIENT UNBLOCK <server-side id>`` the router sends to release one of its
pinned connections (router.wire.unblock). `side_call` opens a fresh
connection to the node (TLS and the backend credentials as the shared ones:
`router.wire.backend.handshake`), sends the request, reads its one reply and
closes; `on_masters` sends a command that way to every master of the route
and merges the replies with the command's merger.

    client ──SCRIPT KILL──► FanIn ─┬─ side_call(master 0) ─► +OK / -NOTBUSY ...
                                   ├─ side_call(master 1)
                                   └─ side_call(master n)   (in parallel, each bounded)

Invariants: every side call is bounded by ``connect_timeout`` +
``command_timeout`` of its node and always produces exactly one reply (the
shard's, a ``-CLUSTERDOWN`` naming why there is none, or an ``-ERR`` when
`MAX_IN_FLIGHT` side calls are already open); its connection is closed when
it returns; the tasks are kept referenced until they finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol

from router.decide.fanin import FanIn, FanInPart
from router.decide.merge import Merger
from router.errors import shard_down
from router.wire.backend import BackendSettings, handshake
from router.wire.ports import Waiter
from slotwarden.cluster.topology import Address
from slotwarden.resp.encode import error_reply
from slotwarden.resp.replies import ReplyScanner

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


async def side_call(addr: Address, label: str, settings: BackendSettings, raw: bytes) -> bytes:
    """Send ``raw`` (one encoded request) to ``addr`` on a connection of its own and
    return its reply, or the ``-CLUSTERDOWN`` error saying why there is none."""
    hello = handshake(settings.credentials, 2)
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(settings.connect_timeout):
            reader, writer = await asyncio.open_connection(
                addr.host,
                addr.port,
                ssl=settings.ssl,
                server_hostname=addr.host if settings.ssl is not None else None,
            )
        async with asyncio.timeout(settings.command_timeout):
            writer.write(hello + raw)
            scanner = ReplyScanner()
            replies: list[bytes] = []
            want = 2 if hello else 1
            while len(replies) < want:
                data = await reader.read(65536)
                if not data:
                    return shard_down(label, f"closed the connection ({addr})")
                scanner.feed(data)
                replies += scanner.replies()
    except TimeoutError:
        return shard_down(label, f"timed out ({addr})")
    except OSError as exc:
        return shard_down(label, f"is unavailable ({addr}: {exc})")
    finally:
        if writer is not None:
            writer.close()
    if hello and replies[0][:1] == b"-":
        return shard_down(label, "refused the router's backend credentials")
    return replies[-1]


def call_soon(
    addr: Address,
    label: str,
    settings: BackendSettings,
    raw: bytes,
    waiter: Waiter,
    after: Callable[[], None],
) -> None:
    """`side_call` in a task; its reply goes to ``waiter``, then ``after()`` runs (the
    caller's flush). Past `MAX_IN_FLIGHT` calls at once, ``waiter`` gets `BUSY` now."""
    if len(_tasks) >= MAX_IN_FLIGHT:
        waiter.on_reply(BUSY)
        return

    async def run() -> None:
        waiter.on_reply(await side_call(addr, label, settings, raw))
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
    raw: bytes,
    merger: Merger,
    waiter: Waiter,
    after: Callable[[], None],
) -> None:
    """Send ``raw`` to every master on side connections, in parallel; the replies,
    merged by ``merger``, go to ``waiter``."""
    fan = FanIn(len(masters), merger, waiter.on_reply)
    for index, node in enumerate(masters):
        call_soon(node.addr, node.label, node.settings, raw, FanInPart(fan, index), after)
