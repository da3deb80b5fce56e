"""The pre-move: a request's keys in migrating slots are moved source → target before it is sent.

The I/O half of `router.decide.migrate` (which decides what moves, builds the
requests and reads the replies). `start` is called by `ClientConn.dispatch`
only when the route's slot map has migrations; it returns False (nothing to
do: the request goes on as usual) unless some key of the request is in a
migrating slot and not yet known to be on its target. Then a `PreMove` runs,
one per request, and the client's next requests wait behind it (it sits in
``ClientConn.gather``, as a cross-shard gather does), so its commands keep
their order:

    fence    once per route and source: PING on each shared connection to the
             source, so requests sent there under the previous route have run
    per (source, target) group, on a dedicated connection to the source (bounded
    by command_timeout plus MIGRATE's own timeout):
      check  MGET locks + MEMORY USAGE … ─► absent | movable | waiting (locked/big)
      move   MIGRATE … KEYS k (one per key, no REPLACE) … + WAIT n 100
             BUSYKEY ─► DEL k on the source (+ WAIT): the target's copy is newer
      wait   locked/big keys: re-checked every 20 ms until gone from the source,
             up to command_timeout_ms ─► -TRYAGAIN key k is being moved to shard t;
             the first re-check (and one every 250 ms) is pipelined after
             SADD __slotwarden:wanted:<slot> k… + PEXPIRE: the mover moves them next
             (`sentinel.act.prio`), so a client does not wait for its SCAN pass
    done     the request is dispatched again (now sent to the target as usual);
             a key that could not be moved ─► -TRYAGAIN …, the request is not sent
             (unless the route changed meanwhile: then it is dispatched again)

Before that, a request with a key in a slot whose migration is still
``preparing`` is HELD by a `Hold` (`router.decide.migrate.held_slot`), which sits
in ``ClientConn.gather`` like a pre-move (the client's next requests wait behind
it): nothing is moved or sent. It looks again whenever the route changes
(`route_changed`, from ``ClientConn.on_route_change``) and every 20 ms; once no
key of the request is in a preparing slot the request is dispatched again (a
``moving`` slot: the pre-move; no longer migrating: sent as usual). Past
command_timeout_ms: -TRYAGAIN slot N is about to move …, the request not executed.

The keys moved or found absent are remembered in the router-wide `Migrator`
(`router.decide.migrate.MovedKeys`), so a key costs one check per migration.
MIGRATE's AUTH/AUTH2 carries the target's backend password: the requests are
never logged. Invariants: the command is sent only after every one of its keys
in a migrating slot was found absent from the source or moved off it; nothing of a
request with a key in a preparing slot reaches source or target while it is held.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from router.commands.spec import CommandSpec
from router.decide import migrate as decide
from router.decide.modes import Mode
from router.decide.session import Session
from router.wire.backend import DOWN, BackendConn
from router.wire.node import Node, Route, RouteSource
from router.wire.pinned import PinnedConn, holder_of
from router.wire.ports import ConfigSource, StatsSink
from router.wire.turn import LoopTurn
from slotwarden.resp.accel import key_slot
from slotwarden.resp.encode import encode_command, error_reply

log = logging.getLogger("slotwarden.migrate")

PING = encode_command([b"PING"])


class Migrator:
    """Router-wide state of the pre-moves: the keys known moved, the fences done, the
    tasks in flight (kept referenced)."""

    def __init__(self) -> None:
        self.moved = decide.MovedKeys()
        self.fences: dict[tuple[int, int], asyncio.Future[None]] = {}
        self.fenced_route: Route | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def fence(self, route: Route, source: int, turn: LoopTurn) -> asyncio.Future[None]:
        """Done once every request sent before on the shared connections to ``route``'s
        master ``source`` was answered (their order: FIFO per connection)."""
        if self.fenced_route is not route:
            self.fences.clear()
            self.fenced_route = route
        key = (id(route), source)
        future = self.fences.get(key)
        if future is None:
            node = route.masters[source]
            conns = [c for c in node.conns + node.conns3 if c.state is not DOWN]
            future = self.fences[key] = asyncio.get_running_loop().create_future()
            count = _Count(len(conns), future)
            for conn in conns:
                conn.send(PING, count)
            turn.flush()
        return future


class _Count:
    """Resolves ``future`` after ``n`` replies."""

    __slots__ = ("future", "n")

    def __init__(self, n: int, future: asyncio.Future[None]) -> None:
        self.n = n
        self.future = future
        if n == 0:
            future.set_result(None)

    def on_reply(self, raw: bytes) -> None:
        self.n -= 1
        if self.n == 0 and not self.future.done():
            self.future.set_result(None)


class _Replies:
    """Collects the replies of one pipelined round, in order."""

    __slots__ = ("future", "replies", "want")

    def __init__(self, want: int) -> None:
        self.want = want
        self.replies: list[bytes] = []
        self.future: asyncio.Future[list[bytes]] = asyncio.get_running_loop().create_future()

    def on_reply(self, raw: bytes) -> None:
        self.replies.append(raw)
        if len(self.replies) == self.want and not self.future.done():
            self.future.set_result(self.replies)


class _State(Protocol):
    mode: Mode

    def reject(self, error: bytes, args: list[bytes]) -> None: ...


class _Ports(Protocol):
    @property
    def migrator(self) -> Migrator: ...


class MoveClient(Protocol):
    """What a pre-move needs of its client connection (router.wire.client.ClientConn)."""

    gather: object | None  # the pre-move in flight: the client's next requests wait
    premoved: list[bytes] | None  # the request whose keys were just moved
    routes: RouteSource
    running: ConfigSource
    turn: LoopTurn
    stats: StatsSink
    session: Session | None
    transport: asyncio.Transport | None
    fifo: Any  # deque[Pending]

    @property
    def ports(self) -> _Ports: ...

    @property
    def state(self) -> _State: ...

    def dispatch(self, args: list[bytes], raw: bytes, spec: CommandSpec | None) -> None: ...

    def resume_soon(self) -> None: ...


def start(client: MoveClient, spec: CommandSpec, args: list[bytes], raw: bytes) -> bool:
    """Move ``args``' keys in migrating slots first, if any may be on a source: True if
    a pre-move started (the request is dispatched again when it is done)."""
    if client.premoved is args:  # its keys were just moved: on to the target
        client.premoved = None
        return False
    session = client.session
    if session is None or not session.authenticated or client.state.mode is Mode.SUBSCRIBED:
        return False  # the normal path answers (-NOAUTH, the subscribed-mode error)
    slotmap = client.routes.route.slotmap
    refused = decide.sort_refusal(spec, args, slotmap)
    if refused is not None:  # SORT BY/GET reading keys of a migrating slot
        client.state.reject(refused, args)
        client.fifo[-1].cmd = spec.name
        return True
    migrator = client.ports.migrator
    held = decide.held_slot(spec, args, slotmap)
    if held is not None:  # its migration is preparing: wait until it moves (or is gone)
        hold = Hold(client, spec, args, raw)
        client.stats.held_requests += 1
        client.gather = hold
        _spawn(migrator, hold.run(), "hold")
        return True
    migrator.moved.follow(slotmap.migrations)
    groups = decide.keys_to_move(spec, args, slotmap, migrator.moved)
    if not groups:
        return False
    move = PreMove(client, spec, args, raw, groups)
    client.gather = move
    _spawn(migrator, move.run(), "premove")
    return True


def _spawn(migrator: Migrator, coro: Coroutine[Any, Any, None], name: str) -> None:
    task = asyncio.get_running_loop().create_task(coro, name=name)
    migrator.tasks.add(task)  # referenced until done
    task.add_done_callback(migrator.tasks.discard)


def route_changed(client: MoveClient) -> None:
    """The route changed: a request the client holds looks at the new slot map now."""
    hold = client.gather
    if isinstance(hold, Hold):
        hold.wake()


class Hold:
    """One request held while a slot of its keys is in a preparing migration (see the
    module docstring)."""

    def __init__(
        self, client: MoveClient, spec: CommandSpec, args: list[bytes], raw: bytes
    ) -> None:
        self.client = client
        self.spec = spec
        self.args = args
        self.raw = raw
        self._woken: asyncio.Future[None] | None = None

    def wake(self) -> None:
        if self._woken is not None and not self._woken.done():
            self._woken.set_result(None)

    async def run(self) -> None:
        client = self.client
        loop = asyncio.get_running_loop()
        deadline = loop.time() + client.running.config.router.command_timeout_ms / 1000
        error: bytes | None = None
        try:
            while True:
                slotmap = client.routes.route.slotmap
                slot = decide.held_slot(self.spec, self.args, slotmap)
                if slot is None:
                    break  # moving (the pre-move comes next) or no longer migrating
                left = deadline - loop.time()
                if left <= 0:
                    migration = slotmap.migration_of(slot)
                    assert migration is not None
                    client.stats.held_timeouts += 1
                    error = decide.tryagain_preparing(slot, migration.source, migration.target)
                    break
                if client.transport is None:
                    break  # the client is gone: nothing to answer
                self._woken = loop.create_future()
                await asyncio.wait({self._woken}, timeout=min(decide.RECHECK_S, left))
                self._woken = None
        except Exception:  # never leave the client held
            log.exception("hold of %s failed", self.spec.name)
            error = error_reply("TRYAGAIN the router could not hold the request, try again")
        _resume(client, self, self.spec, self.args, self.raw, error)


class PreMove:
    """One request's pre-move (see the module docstring)."""

    def __init__(
        self,
        client: MoveClient,
        spec: CommandSpec,
        args: list[bytes],
        raw: bytes,
        groups: dict[int, list[bytes]],
    ) -> None:
        self.client = client
        self.spec = spec
        self.args = args
        self.raw = raw
        self.groups = groups
        self.route = client.routes.route

    async def run(self) -> None:
        try:
            error = await self._move_all()
        except Exception:  # never leave the client held
            log.exception("pre-move of %s failed", self.spec.name)
            error = error_reply("TRYAGAIN the router could not move the keys, try again")
        if error is None:
            self.client.premoved = self.args  # moved: on to the target, no second look
        elif self.client.routes.route is not self.route:
            # the route changed while the keys were moving (the migration ended and its
            # drained source was retired, the source failed over): not the client's
            # problem - the request is dispatched again and looks at the new route
            error = None
        _resume(self.client, self, self.spec, self.args, self.raw, error)

    async def _move_all(self) -> bytes | None:
        route = self.route
        slotmap = route.slotmap
        migrator = self.client.ports.migrator
        by_pair: dict[tuple[int, int], list[bytes]] = {}
        for source, keys in self.groups.items():
            for key in keys:
                by_pair.setdefault((source, slotmap.owner[key_slot(key)]), []).append(key)
        for source in self.groups:
            await migrator.fence(route, source, self.client.turn)
        for (source, target), keys in by_pair.items():
            error = await self._move_group(source, target, keys)
            if error is not None:
                return error
        return None

    async def _move_group(self, source: int, target: int, keys: list[bytes]) -> bytes | None:
        client = self.client
        route = self.route
        shards = route.slotmap.shards
        src_name, dst_name = shards[source].name, shards[target].name
        node = route.masters[source]
        conn = node.acquire_pinned(2, holder_of(client.session))
        if isinstance(conn, bytes):
            client.stats.migrate_errors += 1
            why = decide.reason(conn)
            return decide.tryagain_failed(keys[0], src_name, dst_name, why)
        try:
            return await self._move_on(conn, route.masters[target], source, target, keys)
        finally:
            conn.grace = 0.0
            if conn.state is DOWN or conn.waiting:
                conn.close()
            else:
                node.pinned.release(conn)

    async def _move_on(
        self, conn: PinnedConn, target_node: Node, source: int, target: int, keys: list[bytes]
    ) -> bytes | None:
        client = self.client
        route = self.route
        shards = route.slotmap.shards
        src_name, dst_name = shards[source].name, shards[target].name
        config = client.running.config
        timeout_ms = config.router.command_timeout_ms
        big = config.sentinel.migration.big_key_bytes if config.sentinel else 1 << 20
        replicas = len(shards[source].replicas)
        creds = target_node.settings.credentials
        auth = creds.auth_args() if creds is not None else None
        addr = target_node.addr
        conn.grace = timeout_ms / 1000 + decide.WAIT_MS / 1000  # MIGRATE may take its timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        moved = client.ports.migrator.moved
        pending = keys
        asked_at: float | None = None  # when the keys waited for were last asked for
        ask: list[bytes] = []
        while True:
            if ask and (asked_at is None or loop.time() - asked_at >= decide.ASK_EVERY_S):
                asks = decide.ask_requests(ask, route.slotmap)  # the mover moves them next
                asked_at = loop.time()
            else:
                asks = []
            replies = await _round(conn, asks + decide.check_requests(pending), client.turn)
            # the asks' own replies are not looked at: refused, the client waits as before
            check = decide.read_check(pending, replies[len(asks) :], big)
            if check.error is not None:
                client.stats.migrate_errors += 1
                return decide.tryagain_failed(pending[0], src_name, dst_name, check.error)
            done = check.absent
            failed: tuple[bytes, str] | None = None
            if check.movable:
                requests = [
                    decide.migrate_request(addr.host, addr.port, k, timeout_ms, auth)
                    for k in check.movable
                ]
                if replicas:
                    requests.append(decide.wait_request(replicas))
                replies = await _round(conn, requests, client.turn)
                busy: list[bytes] = []
                for key, raw in zip(check.movable, replies, strict=False):
                    outcome = decide.read_migrate(raw)
                    if outcome is decide.MOVED:
                        client.stats.keys_moved += 1
                        done.append(key)
                    elif outcome is decide.ABSENT:
                        done.append(key)
                    elif outcome is decide.BUSY:
                        busy.append(key)
                    elif failed is None:
                        failed = (key, decide.reason(raw))
                if busy:  # the target's copy is the newer: the source's goes
                    cleanup = [decide.del_request(busy)]
                    if replicas:
                        cleanup.append(decide.wait_request(replicas))
                    reply = (await _round(conn, cleanup, client.turn))[0]
                    if reply[:1] == b"-":
                        failed = failed or (busy[0], decide.reason(reply))
                    else:
                        done += busy
            moved.add(done)
            if failed is not None:
                client.stats.migrate_errors += 1
                log.warning(
                    "could not move a key from shard %s to shard %s: %s",
                    src_name,
                    dst_name,
                    failed[1],
                )
                return decide.tryagain_failed(failed[0], src_name, dst_name, failed[1])
            if not check.waiting:
                return None
            if loop.time() >= deadline:
                return decide.tryagain_waiting(check.waiting[0], dst_name)
            pending = ask = check.waiting
            await asyncio.sleep(decide.RECHECK_S)


def _resume(
    client: MoveClient,
    holder: object,
    spec: CommandSpec,
    args: list[bytes],
    raw: bytes,
    error: bytes | None,
) -> None:
    """A pre-move or hold is over: the request is dispatched again (``error`` None) or
    answered ``error``, then the client's next requests go on."""
    if client.gather is holder:
        client.gather = None
    if client.transport is None:
        client.premoved = None
        return  # the client is gone (the keys moved stay moved)
    if error is None:
        client.dispatch(args, raw, spec)
    else:
        client.state.reject(error, args)  # in MULTI: the transaction fails too
        client.fifo[-1].cmd = spec.name
    client.turn.flush()
    client.resume_soon()


async def _round(conn: BackendConn, requests: list[bytes], turn: LoopTurn) -> list[bytes]:
    """Send ``requests`` pipelined on ``conn``; their replies, in order (errors included:
    a connection that fails or times out answers every request with an error)."""
    replies = _Replies(len(requests))
    for raw in requests:
        conn.send(raw, replies)
    turn.flush()
    return await replies.future
