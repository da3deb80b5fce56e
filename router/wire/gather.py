"""Cross-shard commands computed by the router: fetch the foreign keys, run it on one shard.

The I/O half of `router.decide.algebra` (which decides the anchor shard, the copies'
names and the requests, and reads the replies). One `Gather` per command, three
steps, each sent through the client's normal (shared, pipelined) backend
connections, so each request has the usual ``command_timeout_ms``:

    measure: MEMORY USAGE of each foreign key, on its shard ─► over the bound? CROSSSLOT
    fetch:   DUMP of each foreign key, on its shard         ─► over the bound? CROSSSLOT
    run:     MULTI, RESTORE copies, the command, DEL copies, EXEC on the anchor
             (queued back to back in one loop turn, so no other client's request
             on that shared connection comes between them)

An error in any step (a shard down, a timeout, a refused request) is the client's
reply and nothing more is sent, so nothing is written. The route is the one the
command was planned with: if a failover swaps it meanwhile, the client gets
``-TRYAGAIN`` (nothing written).

Order: the client's reply slot (a `Pending`) is taken when the command is parsed, so
its pipeline's replies keep their order; while a gather runs, the client's later
requests are held (``ClientConn.gather``), so they cannot overtake its reads or its
write. Other clients are not held: the whole is not isolated across shards (the
anchor's part runs atomically inside its EXEC).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import Protocol

from router.commands.spec import CommandSpec
from router.decide import algebra
from router.decide.algebra import CrossShard
from router.wire.node import RouteSource
from router.wire.ports import ConfigSource, Sender, Waiter
from router.wire.turn import LoopTurn
from slotwarden.resp.encode import error_reply

# Unique among this router's commands in flight (the copies' names); the pid and a
# random part keep two routers on one shard apart.
_PREFIX = f"{os.getpid():x}.{os.urandom(3).hex()}.".encode()
_COUNTER = itertools.count()

TRYAGAIN = error_reply("TRYAGAIN the topology changed during a cross-shard command; retry it")


class _Watching(Protocol):
    watch: object | None  # the client's WATCH connection, if it is watching


class Holding(Protocol):
    """A client whose next requests wait while a multi-step request (a gather, or a
    walk of router.wire.walk) is in flight."""

    gather: object | None
    turn: LoopTurn

    def resume_soon(self) -> None: ...


def answer_held(client: Holding, owner: object, pending: Waiter, reply: bytes) -> None:
    """The multi-step request ``owner`` is answered: its reply slot gets ``reply`` and
    the client's held requests go on."""
    if client.gather is owner:
        client.gather = None
    pending.on_reply(reply)
    client.turn.flush()
    client.resume_soon()


class GatherClient(Protocol):
    """What a gather needs of its client connection (router.wire.client.ClientConn)."""

    gather: Gather | None  # the gather in flight: the client's next requests wait
    routes: RouteSource
    running: ConfigSource
    turn: LoopTurn

    @property
    def state(self) -> _Watching: ...

    def conn(self, shard: int) -> Sender: ...

    def new_pending(self) -> Waiter: ...

    def push(self, reply: bytes) -> None: ...

    def resume_soon(self) -> None: ...


class _Part:
    __slots__ = ("collect", "index")

    def __init__(self, collect: _Collect, index: int) -> None:
        self.collect = collect
        self.index = index

    def on_reply(self, raw: bytes) -> None:
        self.collect.on_part(self.index, raw)


class _Collect:
    """Waits for ``count`` replies, then calls ``done`` with them in request order."""

    __slots__ = ("done", "parts", "remaining")

    def __init__(self, count: int, done: Callable[[list[bytes]], None]) -> None:
        self.parts: list[bytes] = [b""] * count
        self.remaining = count
        self.done = done
        if not count:
            done(self.parts)

    def on_part(self, index: int, raw: bytes) -> None:
        self.parts[index] = raw
        self.remaining -= 1
        if self.remaining == 0:
            self.done(self.parts)


def start(client: GatherClient, spec: CommandSpec, args: list[bytes]) -> bool:
    """Compute ``args`` (whose keys span shards) if the config and the row allow it: True
    when its reply slot is taken (answered later), False to let CROSSSLOT be the reply."""
    if spec.merger not in algebra.COMPUTED or client.state.watch is not None:
        return False  # a WATCH's connection must not see our MULTI
    cfg = client.running.config.router
    if cfg.cross_shard != "compute":
        return False
    route = client.routes.route
    token = _PREFIX + str(next(_COUNTER)).encode()
    cross = algebra.plan_cross(spec, args, route.slotmap.owner, token)
    if type(cross) is bytes:
        client.push(cross)
        return True
    pending = client.new_pending()
    Gather(client, cross, pending, cfg.max_cross_shard_bytes).measure()  # type: ignore[arg-type]
    return True


class Gather:
    __slots__ = ("client", "cross", "limit", "pending", "route")

    def __init__(
        self, client: GatherClient, cross: CrossShard, pending: Waiter, limit: int
    ) -> None:
        self.client = client
        self.cross = cross
        self.pending = pending
        self.limit = limit
        self.route = client.routes.route
        client.gather = self

    def _send(self, requests: list[tuple[int, bytes]], done: Callable[[list[bytes]], None]) -> bool:
        """Send each (shard, request); False (and the client answered) if the route changed."""
        if self.client.routes.route is not self.route:
            self.finish(TRYAGAIN)
            return False
        collect = _Collect(len(requests), done)
        conn = self.client.conn
        for index, (shard, raw) in enumerate(requests):
            conn(shard).send(raw, _Part(collect, index))
        self.client.turn.flush()
        return True

    def measure(self) -> None:
        fetch = self.cross.fetch
        self._send([(shard, algebra.measure_request(key)) for shard, key in fetch], self.measured)

    def measured(self, replies: list[bytes]) -> None:
        total = algebra.measured(replies)
        if type(total) is bytes:
            self.finish(total)
        elif total > self.limit:  # type: ignore[operator]
            self.finish(algebra.too_large(total, self.limit))  # type: ignore[arg-type]
        else:
            fetch = self.cross.fetch
            self._send([(shard, algebra.dump_request(key)) for shard, key in fetch], self.fetched)

    def fetched(self, dumps: list[bytes]) -> None:
        err = algebra.first_error(dumps)
        if err is not None:
            self.finish(err)
            return
        total = algebra.dumped_bytes(dumps)
        if total > self.limit:
            self.finish(algebra.too_large(total, self.limit))
            return
        requests, restored = algebra.transaction(self.cross, dumps)
        anchor = self.cross.anchor

        def ran(replies: list[bytes]) -> None:
            self.finish(algebra.result(replies, restored))

        self._send([(anchor, raw) for raw in requests], ran)

    def finish(self, reply: bytes) -> None:
        answer_held(self.client, self, self.pending, reply)
