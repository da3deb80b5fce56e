"""SCAN and cross-shard LMPOP/ZMPOP: one request after another on the shards (I/O half).

`router.decide.walk` decides each request and reads each reply; this sends them,
one at a time, through the client's normal (shared, pipelined) backend connections
(`ClientConn.conn`: the WATCH connection for a watched shard), so each has the
usual ``command_timeout_ms`` and a walk has at most one request per shard (SCAN)
or per run of keys on one shard (MPOP).

Order: the client's reply slot (a `Pending`) is taken when the command is parsed,
and while a walk runs the client's later requests are held (``ClientConn.gather``,
as `router.wire.gather` does), so they cannot overtake it. If the route changes
between two requests (a failover), the walk ends with ``-TRYAGAIN`` (an MPOP has
popped nothing then: every earlier key was empty; a SCAN can be asked again with
the same cursor). If the client is gone, nothing more is sent.
"""

from __future__ import annotations

from typing import Protocol

from router.commands.spec import CommandSpec
from router.decide.walk import MpopWalk, ScanWalk, Step, Walk
from router.wire.gather import answer_held
from router.wire.node import RouteSource
from router.wire.ports import Sender, Waiter
from router.wire.turn import LoopTurn
from slotwarden.resp.accel import key_slot
from slotwarden.resp.encode import error_reply

MPOP = frozenset({"lmpop", "zmpop"})
TRYAGAIN = error_reply("TRYAGAIN the topology changed during a multi-shard command; retry it")


class WalkClient(Protocol):
    """What a walk needs of its client connection (router.wire.client.ClientConn)."""

    gather: object | None  # the walk (or gather) in flight: the client's next requests wait
    routes: RouteSource
    turn: LoopTurn

    @property
    def transport(self) -> object | None: ...

    def conn(self, shard: int) -> Sender: ...

    def new_pending(self) -> Waiter: ...

    def push(self, reply: bytes) -> None: ...

    def resume_soon(self) -> None: ...


def scan(client: WalkClient, args: list[bytes]) -> None:
    """SCAN cursor [...]: its reply slot taken now, answered when the walk ends."""
    walk = ScanWalk.of(args, len(client.routes.route.slotmap.shards))
    if type(walk) is bytes:
        client.push(walk)
    else:
        Walking(client, walk, client.new_pending())  # type: ignore[arg-type]


def mpop(client: WalkClient, spec: CommandSpec, args: list[bytes]) -> bool:
    """LMPOP/ZMPOP whose keys span shards: True when its reply slot is taken (answered
    later), False for any other command (CROSSSLOT stays its reply)."""
    if spec.name not in MPOP:
        return False
    walk = MpopWalk.of(args, client.routes.route.slotmap.owner, key_slot)
    if type(walk) is bytes:
        client.push(walk)
    else:
        Walking(client, walk, client.new_pending())  # type: ignore[arg-type]
    return True


class Walking:
    """One walk in flight: sends its requests one by one, answers its reply slot."""

    __slots__ = ("client", "pending", "route", "walk")

    def __init__(self, client: WalkClient, walk: Walk, pending: Waiter) -> None:
        self.client = client
        self.walk = walk
        self.pending = pending
        self.route = client.routes.route
        client.gather = self
        self._send(walk.first())

    def _send(self, step: Step) -> None:
        client = self.client
        if client.transport is None:  # the client is gone: nothing more is sent
            if client.gather is self:
                client.gather = None
        elif client.routes.route is not self.route:
            self.finish(TRYAGAIN)
        else:
            client.conn(step[0]).send(step[1], self)
            client.turn.flush()

    def on_reply(self, raw: bytes) -> None:
        nxt = self.walk.step(raw)
        if type(nxt) is bytes:
            self.finish(nxt)
        else:
            self._send(nxt)  # type: ignore[arg-type]

    def finish(self, reply: bytes) -> None:
        answer_held(self.client, self, self.pending, reply)
