"""Client connections: parse requests, dispatch them, and write replies back in request order.

Each client keeps a FIFO of pending replies (twemproxy's in_q/out_q idea):

    requests ─►  fifo: [ p1 ✓ ][ p2 … ][ p3 ✓ ][ p4 … ]  ─► client socket
                          ▲ head
    A reply is written only when every earlier one is ready: p1 goes out now;
    p3 waits for p2 even though its shard answered first.

Invariants:
- Every parsed request appends exactly one `Pending` to ``fifo``, in order,
  and each `Pending` is completed exactly once (by its backend, by the
  `router.decide.fanin.FanIn` of its fan-out parts, or at once for local
  replies and errors).
- Output produced during one loop turn is written with one ``write``
  (`router.wire.turn.LoopTurn.flush`).
- Bounded: past ``max_pending`` unanswered requests, or when the socket's
  write buffer is above its high-water mark, the router stops reading from
  this client until it drains (so a slow or greedy client cannot grow the
  router's memory without bound); a client whose input not yet parsed
  exceeds ``client_query_buffer_limit_bytes`` is closed (Redis's
  client-query-buffer-limit).
- A client that disconnects leaks nothing: backends still answer its
  in-flight requests on shared connections, and those answers are dropped;
  its dedicated connections (WATCH, a blocked BLPOP, subscriptions) are
  closed at once.
- Published messages are appended to the FIFO as ready entries, so they
  come after every reply the client was owed when they arrived.

Every request is looked up once in the command table (`router.commands.spec`:
``FAST`` for the commands with a fast path, `resolve` for the others, both
with the table's arity rule), and its spec decides the path. Stateful commands
(MULTI/EXEC/WATCH, blocking commands, (P|S)SUBSCRIBE, AUTH gating) go through
`router.wire.client_state.ClientState`, which owns the client's mode; while
the client is in plain NORMAL mode (authenticated, not watching) single-key
commands (``spec.fast_key``) take the inlined fast path in `process`, which
checks that once per batch, and MGET/MSET/DEL-like commands
(``spec.split_step``) are split by `slotwarden.resp.accel.group_keys` (C when
the speedups are built) in `_send_fanout` instead of going through `dispatch`
and the whole planner. A very large fan-out (more than
`router.decide.large.PIECE_KEYS` keys) is split a piece per event-loop turn
(`_start_large`, `_large_step`) so other clients are served in between; its
reply slot is taken at once and the client's next requests wait in ``held``
until every part is sent. A multi-key command whose keys span shards and that the
router computes (``router.cross_shard: compute``: `router.wire.gather`) takes its
reply slot at once too, and the client's next requests wait until it is answered;
so do SCAN and LMPOP/ZMPOP over several shards, which ask shards one after another
(`router.wire.walk`), and a request whose keys are in migrating slots while they are
moved from the source shard first, or held while their migration is preparing
(`router.wire.migrate`; with migrations in the slot map every request goes through
`dispatch`, the fast paths are off).

With the C hot path built (`router.wire.hot`: ``_hot.c``), `ClientConn` sits on
``ClientBase``, which holds the attributes that path reads (``CLIENT_FIELDS``) and
runs ``data_received`` and ``flush`` in C: while the client is in plain mode with
nothing buffered, the single-key requests and the MGET/MSET/DEL-likes at the head
of what was read are framed, routed, queued on their backends and given their
reply slots (``Pending``, a C type then) without a Python frame, exactly as
`process` does; the first request it does not take, and everything after it, goes
to `_feed` (the reader and `process`) from that byte. `_data_received`, `_flush`,
`_take_ready` and `PyPending` are the Python reference, and what runs without C.

SCRIPT KILL and FUNCTION KILL never go on the shared connection (the busy
script they must stop is in front of them there): `forward` sends them to
every master on side connections (`router.wire.side`). CLIENT KILL/UNBLOCK/
PAUSE/UNPAUSE go to `router.wire.client_ctl`; while a CLIENT PAUSE is in
force `process` hands over to `client_ctl.process_paused` (one request at a
time, held in order until the pause ends); CLIENT REPLY OFF/SKIP turn the
fast path off and `dispatch` marks the reply slots to drop (``dropped``),
which `flush` skips.

Everything the connection needs from above it comes in `ClientPorts` (the
route, the running config, the loop turn, the counters, the parking of
refused writes, the client registry, the INFO head, the script cache of the
NOSCRIPT retry (router.wire.noscript), who runs CONFIG SET on every node):
it imports nothing of router.control or router.app.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter  # latency clock: ns resolution (uvloop's loop.time() ticks in ms)
from typing import Protocol

from router.commands import spec as cmds
from router.commands.spec import FAST, CommandSpec, Shape, resolve
from router.decide import builtins, merge
from router.decide import plan as planner
from router.decide.config_set import CONFIG_WRITES
from router.decide.fanin import FanIn, FanInPart, merged
from router.decide.info import RouterFacts
from router.decide.large import PIECE_KEYS, LargeFanout, is_large
from router.decide.modes import Mode
from router.decide.plan import Fanout
from router.decide.scripts import RETRIED, SCRIPTED, ScriptCache
from router.decide.session import Session
from router.decide.tracking import TRACKING_COMMANDS
from router.errors import CROSSSLOT
from router.wire import client_ctl, gather, migrate, side, walk
from router.wire.backend import CLOSED, DOWN, UP, BackendConn
from router.wire.client_state import ClientState
from router.wire.gather import Gather
from router.wire.hot import H, fast_table
from router.wire.node import Route, RouteSource, lowest_version
from router.wire.noscript import Retry
from router.wire.ports import ConfigSource, ConfigWriter, StatsSink, TrackingPort
from router.wire.turn import LoopTurn
from router.wire.walk import Walking
from slotwarden.resp import accel
from slotwarden.resp.accel import group_keys, key_slot
from slotwarden.resp.encode import error_reply
from slotwarden.resp.errors import ProtocolError
from slotwarden.resp.requests import Request, RequestReader

log = logging.getLogger("slotwarden.frontend")

LOCAL = Shape.LOCAL
SINGLE = Shape.SINGLE.value  # the latency metric's label of the fast path
OUTPUT_HIGH_WATER = 1 << 20  # bytes of unsent output before we stop reading a client
BLOCKED_INPUT_LIMIT = 1 << 20  # bytes read from a blocked client before we stop reading it


class PyPending:
    """One reply slot in a client's FIFO (the reference; `Pending` is the C one when built).

    ``cmd`` names the request for the metrics (None for published messages);
    ``t0``/``shape`` are set on the requests whose latency is sampled.
    """

    __slots__ = ("client", "cmd", "reply", "req", "sent", "shape", "t0")

    def __init__(
        self,
        client: ClientConn,
        cmd: str | None = None,
        req: bytes | None = None,
        sent: BackendConn | None = None,
    ) -> None:
        self.client = client
        self.reply: bytes | None = None
        self.cmd = cmd
        self.t0 = 0.0
        self.req = req  # set when a -READONLY may be retried (router.control.parking) ...
        self.sent = sent  # ... with the connection it went to

    def on_reply(self, raw: bytes) -> None:
        client = self.client
        req = self.req
        if req is not None and raw[0] == 45 and raw.startswith(b"-READONLY"):
            self.req = None  # held and resent at most once
            if client.ports.parker.park(self, raw, req):
                return
        self.reply = raw
        if self.t0:
            client.stats.observe(self.shape, perf_counter() - self.t0)
        if not client.dirty and client.fifo and client.fifo[0] is self:
            client.dirty = True
            client.turn.dirty_clients.append(client)


# The reply slot every path creates: router.wire._hot's C type when the hot path is
# built (same attributes, same on_reply), else the Python reference above.
Pending = H.Pending if H is not None else PyPending


def merge_fanout(
    kind: str, parts: list[bytes], positions: list[list[int]] | None, total: int, resp3: bool
) -> bytes:
    """A fan-out's merge where the C hot path leaves it (an error reply, a part of an
    odd shape): `FanIn`'s, with the merger `_send_fanout` would have planned."""
    if kind == "ordered":
        merger = merge.merge_ordered(positions or [], total, resp3)
    else:
        merger = merge.MERGERS[kind]
    return merged(merger, parts)


if H is not None:
    H.setup(
        fast_table(), BackendConn, deque, UP, DOWN, CLOSED, SINGLE, perf_counter,
        group_keys, accel.merge_ordered, merge_fanout, accel.UNSURE, PIECE_KEYS,
    )  # fmt: skip


# The attributes the C hot path reads and writes directly: `router.wire._hot.ClientBase`'s
# fields when it is built, these slots otherwise (tests/unit/router/test_hot_path.py checks
# that the two lists match).
CLIENT_FIELDS = (
    "fifo", "turn", "session", "stats", "transport", "loop", "state", "held", "large",
    "gather", "reader", "routes", "running", "ports", "pause", "dirty", "dropped",
    "out_paused", "read_paused", "_conns", "_conns_route", "plain", "input_idle",
    "hot_owner", "hot_config", "hot_limit", "io", "hot_reader", "hot_max_args", "hot_max_bulk",
)  # fmt: skip


class _PyClientBase:
    """`ClientConn`'s base without the C hot path: the same attributes as slots (its
    reference methods are used)."""

    __slots__ = CLIENT_FIELDS


ClientBase = H.ClientBase if H is not None else _PyClientBase


def _release(args: list[bytes]) -> None:
    """Let go of a large fan-out's arguments a piece per loop turn (freeing a million
    objects at once would stall every client as long as splitting them did)."""
    del args[max(1, len(args) - PIECE_KEYS) :]
    if len(args) > 1:
        asyncio.get_running_loop().call_soon(_release, args)


class Parker(Protocol):
    """Whoever holds a write a demoted master refused until the new topology
    (router.control.routes.RouteTable, with router.control.parking)."""

    def park(self, pending: Pending, error: bytes, request: bytes) -> bool:
        """True if ``pending`` is held (answered later), False to answer ``error`` now."""


class ClientRegistry(client_ctl.Controls, Protocol):
    """Every client connection of the router (router.control.clients.Clients), with
    CLIENT KILL/UNBLOCK/PAUSE (`router.wire.client_ctl.Controls`)."""

    def next_id(self) -> int: ...

    def open(self, client: ClientConn) -> bool:
        """Count a new client in; False if the router is full (max_clients)."""

    def close(self, client: ClientConn) -> None: ...

    def sessions(self) -> list[Session]:
        """Every client's session (CLIENT LIST)."""


@dataclass(frozen=True, slots=True)
class ClientPorts:
    """What a client connection needs from above it, one small port each (router.app
    plugs in the router's objects; a test can plug in its own)."""

    routes: RouteSource  # the route in use
    running: ConfigSource  # the running config (limits) and the router's users
    turn: LoopTurn  # the loop turn replies are flushed in, and the sampling flag
    stats: StatsSink  # the metrics counters
    parker: Parker  # holds writes a demoted master refused
    clients: ClientRegistry  # client ids, max_clients, CLIENT LIST
    info_head: Callable[[], RouterFacts]  # the router's own facts for INFO
    scripts: ScriptCache = field(default_factory=ScriptCache)  # bodies seen (NOSCRIPT retry)
    config_writes: ConfigWriter | None = None  # CONFIG SET/RESETSTAT (allow_config_set)
    migrator: migrate.Migrator = field(default_factory=migrate.Migrator)  # keys moved
    tracker: TrackingPort | None = None  # CLIENT TRACKING (router.wire.tracking)


class ClientConn(ClientBase, asyncio.Protocol):
    # the rest of its attributes are ClientBase's (CLIENT_FIELDS)
    __slots__ = ("large_pending", "premoved")

    def __init__(self, ports: ClientPorts) -> None:
        self.ports = ports
        # what the C hot path (router.wire._hot) checks before taking a read's bytes
        self.pause = ports.clients.pause  # the router-wide CLIENT PAUSE (one object)
        self.plain = False  # ClientState.plain, mirrored by ClientState.update_plain
        self.input_idle = True  # the reader holds no byte (set after each _feed)
        self.hot_owner: bytes | None = None  # _conns_route's slot owners; None: migrating
        self.hot_config: object = None  # the config hot_limit was read from
        self.hot_limit = 0
        self.hot_reader: object = None  # the reader hot_max_args/hot_max_bulk were read from
        self.hot_max_args = 0
        self.hot_max_bulk = 0
        # the ports used per request, kept at hand
        self.routes = ports.routes
        self.running = ports.running
        self.turn = ports.turn
        self.stats = ports.stats
        self.io = ports.stats.io  # its ByteCounters: C adds to them directly
        self.loop: asyncio.AbstractEventLoop  # set by connection_made
        cfg = ports.running.config.router
        self.reader = RequestReader(cfg.max_bulk_bytes, cfg.max_args, cfg.max_inline_bytes)
        self.fifo: deque[Pending] = deque()
        self.dirty = False
        self.read_paused = False
        self.out_paused = False
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self._conns: list[BackendConn] = []
        self._conns_route: Route | None = None  # the route _conns was built for
        self.held: list[Request] = []  # parsed, not yet dispatched (while blocked)
        # a very large fan-out being split over several loop turns, and its reply slot
        self.large: LargeFanout | None = None
        self.large_pending: Pending | None = None
        # a multi-key command computed across shards (router.wire.gather) or a walk
        # (router.wire.walk): the client's next requests wait in ``held`` until answered
        self.gather: Gather | Walking | migrate.PreMove | migrate.Hold | None = None
        self.state = ClientState(self, ports.routes)
        self.dropped: set[Pending] | None = None  # replies CLIENT REPLY OFF/SKIP drops
        self.premoved: list[bytes] | None = None  # keys just moved (router.wire.migrate)

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.loop = asyncio.get_running_loop()
        peer = transport.get_extra_info("peername") or ("?", 0)
        sock = transport.get_extra_info("sockname") or ("?", 0)
        self.session = Session(
            id=self.ports.clients.next_id(),
            addr=f"{peer[0]}:{peer[1]}",
            laddr=f"{sock[0]}:{sock[1]}",
            users=self.running.users,
        )
        self.state.update_plain()
        # Past this much unsent output the router stops reading the client
        # (it is not reading its replies); past client_output_limit_bytes the
        # client is closed, as Redis's client-output-buffer-limit does.
        limit = self.running.config.router.client_output_limit_bytes
        self.transport.set_write_buffer_limits(high=min(OUTPUT_HIGH_WATER, limit))
        if not self.ports.clients.open(self):
            self.transport.write(error_reply("ERR max number of clients reached"))
            self.transport.close()
            self.transport = None

    def _data_received(self, data: bytes) -> None:
        """The reference ``data_received`` (`ClientBase`'s C one runs when built: the
        same, with `process`'s fast paths, single-key and fan-out, done in C over these
        bytes first)."""
        if self.transport is None:
            return
        self.stats.bytes_in += len(data)
        self.session.last_at = self.loop.time()  # type: ignore[union-attr]  # CLIENT LIST idle=
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        """Parse and dispatch ``data`` (counted already), then `LoopTurn.flush_requests`:
        the backends written now on a quiet loop when nothing else waits and none had
        requests in flight, else at the turn's end."""
        self.reader.feed(data)
        self.process()
        unparsed = self.reader.unparsed()
        if unparsed > self.running.config.router.client_query_buffer_limit_bytes:
            self._over_query_buffer_limit(unparsed)
        self.input_idle = self.reader.empty()
        self.turn.flush_requests()

    if H is None:  # pure Python: the reference methods are the protocol's
        data_received = _data_received

    def _over_query_buffer_limit(self, unparsed: int) -> None:
        """Close a client whose input not yet parsed exceeds client_query_buffer_limit_bytes,
        as Redis closes one past its client-query-buffer-limit (no reply; its bytes are
        not logged: they may hold a password)."""
        session = self.session
        assert session is not None and self.transport is not None
        log.warning(
            "client %s: closing client that reached max query buffer length "
            "(%d bytes unparsed > client_query_buffer_limit_bytes %d)",
            session.addr,
            unparsed,
            self.running.config.router.client_query_buffer_limit_bytes,
        )
        session.closing = True
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.fifo.clear()
        self.held.clear()
        self.large = self.large_pending = None  # a large fan-out being split: dropped
        # Its buffered input goes now: the client and its state refer to each other, so
        # without this a large unread request would wait for a full GC (issue 10, item 3).
        self.reader.clear()
        self.state.close()  # dedicated backend connections go at once
        if self.session is not None and self.session.tracking is not None:
            self.ports.tracker.off(self)  # type: ignore[union-attr]
        self.ports.clients.close(self)

    def on_route_change(self) -> None:
        """The route table swapped its route (a failover): resubscribe on the new masters.

        Shared connections follow by themselves (they are looked up per batch);
        a WATCH or a blocked command stays on the connection it started on and
        fails if that master is gone.
        """
        if self.transport is not None:
            self.state.on_route_change()
            migrate.route_changed(self)  # a request held for a preparing migration looks now

    def pause_writing(self) -> None:
        self.out_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.out_paused = False
        self._update_reading()

    # ------------------------------------------------------------ requests

    def process(self) -> None:
        """Dispatch every complete request buffered, until a bound is hit.

        Single-key commands take the inlined fast path here (this loop is the
        router's hottest code); everything else goes through `dispatch`.
        """
        reader = self.reader
        fifo = self.fifo
        turn = self.turn
        routes = self.routes
        limit = self.running.config.router.max_pending_per_client
        session = self.session
        assert session is not None
        pause = self.ports.clients.pause
        if pause.until:  # CLIENT PAUSE in force: one request at a time, held if it must wait
            client_ctl.process_paused(self, pause)
            return
        dispatch = self.dispatch
        slot_of = key_slot
        fast = FAST
        state = self.state
        while (
            not session.closing
            and len(fifo) < limit
            and state.mode is not Mode.BLOCKED
            and self.large is None
            and self.gather is None
        ):
            if self.held:  # requests parsed while a blocking command was waiting
                batch = self.held[: limit - len(fifo)]
                del self.held[: len(batch)]
            else:
                try:
                    batch = reader.read(limit - len(fifo))
                except ProtocolError as exc:
                    log.info("client %s: protocol error: %s", session.addr, exc)
                    self.push(error_reply(f"ERR Protocol error: {exc}"))
                    session.closing = True
                    break
                if not batch:
                    break
            route = routes.route
            owner = route.slotmap.owner
            conns = self._conns if self._conns_route is route else self._bind(route)
            append = fifo.append
            # normal mode, authenticated, not watching, no slot migrating: fast path
            plain = state.plain and not route.slotmap.migrations
            requests = iter(batch)
            # the first single-key request of each turn is timed (turn.sample_due)
            sampled = not turn.sample_due
            for args, raw in requests:
                # The command's spec, its arity checked. A command with a fast path is
                # one dict lookup and arity_ok inlined (a call per request here costs
                # about 12% of this loop); any other request goes through resolve().
                spec = fast.get(args[0])
                if spec is None or not spec.min_args <= len(args) <= spec.max_args:
                    spec = resolve(args)  # None: unknown, or a wrong number of arguments
                elif plain:
                    index = spec.fast_key
                    if index:
                        conn = conns[owner[slot_of(args[index])]]
                        name = spec.name
                        session.last_cmd = name  # CLIENT LIST cmd=
                        pending = Pending(self, name, raw, conn)
                        if not sampled:
                            sampled = True
                            turn.sample_due = False
                            pending.t0 = perf_counter()
                            pending.shape = SINGLE
                        append(pending)
                        conn.send(raw, pending)
                        continue
                    if self._send_fanout(spec, args, raw, owner, conns):
                        if self.large is not None:  # split over the next turns: wait for it
                            self.held[:0] = list(requests)
                            break
                        continue
                dispatch(args, raw, spec)
                if session.closing:  # QUIT: nothing after it is served
                    break
                if (
                    state.mode is Mode.BLOCKED
                    or self.large is not None
                    or self.gather is not None
                    or pause.until
                ):
                    # nothing more until the reply / the split / the gather / the paused path
                    self.held[:0] = list(requests)
                    break
                plain = state.plain and not route.slotmap.migrations
                if self._conns_route is not route:  # HELLO switched protocol
                    conns = self._bind(route)
            if reader.drained and not self.held:  # no need to ask the reader again
                break
            if pause.until:  # a CLIENT PAUSE in this batch: the rest goes the paused way
                client_ctl.process_paused(self, pause)
                return
        if (
            self.read_paused
            or len(fifo) >= limit
            or self.out_paused
            or session.closing
            or state.mode is Mode.BLOCKED
            or self.large is not None
            or self.gather is not None
        ):
            self._update_reading()  # otherwise it has nothing to change

    def _send_fanout(
        self,
        spec: CommandSpec,
        args: list[bytes],
        raw: bytes,
        owner: bytes,
        conns: list[BackendConn],
    ) -> bool:
        """MGET/MSET/DEL-like in plain normal mode, split by `slotwarden.resp.accel.group_keys`
        (what `forward` does through the planner, minus its layers). False: let
        `dispatch` answer it (a key without its value)."""
        step = spec.split_step
        n = len(args)
        if (n - 1) % step:
            return False
        session = self.session
        assert session is not None
        if is_large(spec, n):  # split a piece per loop turn, others served in between
            self._start_large(spec, args, raw)
            return True
        plan = planner.fanout_of(spec, group_keys(args, step, owner), n - 1, session.proto == 3)
        name = spec.name
        session.last_cmd = name  # CLIENT LIST cmd=
        if type(plan) is int:  # every key on one shard: the original bytes go there
            pending = self._send_single(conns[plan], raw, name)
        else:
            pending = self._send_parts(plan, conns.__getitem__, name)
        pending.t0 = perf_counter()
        pending.shape = spec.shape.value
        return True

    def _start_large(self, spec: CommandSpec, args: list[bytes], raw: bytes) -> None:
        """A very large fan-out (router.decide.large): its reply slot now, in request
        order; its keys split one piece per loop turn (`_large_step`), the client's
        next requests held until every part is sent."""
        pending = self.new_pending()
        pending.cmd = spec.name
        self.session.last_cmd = spec.name  # type: ignore[union-attr]  # CLIENT LIST cmd=
        pending.t0 = perf_counter()
        pending.shape = spec.shape.value
        pending.req = raw  # the original bytes, if every key is on one shard
        self.large = LargeFanout(spec, args, self.routes.route.slotmap.owner)
        self.large_pending = pending
        self._large_step()

    def _large_step(self) -> None:
        large = self.large
        pending = self.large_pending
        if self.transport is None or large is None or pending is None:
            self.large = self.large_pending = None  # the client is gone
            return
        owner = self.routes.route.slotmap.owner
        if owner != large.owner:  # the slot map changed meanwhile: split again
            large = self.large = LargeFanout(large.spec, large.args, owner)
        if not large.step():
            self.loop.call_soon(self._large_step)
            return
        session = self.session
        assert session is not None
        plan = large.finish(session.proto == 3)
        raw = pending.req
        pending.req = None
        self.large = self.large_pending = None
        self.loop.call_soon(_release, large.args)  # a million arguments are let go in pieces
        if type(plan) is int:
            conn = self.conn(plan)
            pending.sent = conn
            if conn is not self.state.watch:  # a -READONLY may be replayed, as for any single
                pending.req = raw
            conn.send(raw, pending)  # type: ignore[arg-type]
        else:
            fan = FanIn(len(plan.parts), plan.merge, pending.on_reply)
            for index, (shard, piece) in enumerate(plan.parts):
                self.conn(shard).send(piece, FanInPart(fan, index))
        self.turn.flush()
        self.resume_soon()

    def _send_single(
        self, conn: BackendConn, raw: bytes, cmd: str | None, replayable: bool = True
    ) -> Pending:
        """Forward ``raw`` untouched to ``conn``. ``replayable``: a ``-READONLY``
        refusal may be resent to a new master (router.control.parking)."""
        pending = Pending(self, cmd, raw, conn) if replayable else Pending(self, cmd)
        self.fifo.append(pending)
        conn.send(raw, pending)
        return pending

    def _send_evalsha(self, shard: int, conn: BackendConn, raw: bytes, sha: bytes) -> None:
        """EVALSHA/EVALSHA_RO to ``shard``: on -NOSCRIPT with the body known, loaded there
        and retried once (router.wire.noscript); a -READONLY may be resent as any single."""
        pending = Pending(self, None, raw, conn) if conn is not self.state.watch else Pending(self)
        self.fifo.append(pending)
        retry = Retry(pending, raw, sha, self.ports.scripts.get, lambda: self._conn_now(shard))
        conn.send(raw, retry)

    def _conn_now(self, shard: int) -> BackendConn | None:
        """The connection to ``shard`` now (None: the client or the shard is gone)."""
        if self.transport is None or shard >= len(self.routes.route.masters):
            return None
        return self.conn(shard)

    def _send_parts(
        self, plan: Fanout, conn_of: Callable[[int], BackendConn], cmd: str | None
    ) -> Pending:
        """Send each part of ``plan`` to its shard's connection; the replies are merged
        into one reply slot."""
        pending = Pending(self, cmd)
        self.fifo.append(pending)
        fan = FanIn(len(plan.parts), plan.merge, pending.on_reply)
        for index, (shard, piece) in enumerate(plan.parts):
            conn_of(shard).send(piece, FanInPart(fan, index))
        return pending

    def _bind(self, route: Route) -> list[BackendConn]:
        """This client's connection to each shard's master under ``route``."""
        session = self.session
        assert session is not None
        self._conns = [node.conn_for(session.id, session.proto) for node in route.masters]
        self._conns_route = route
        self.hot_owner = None if route.slotmap.migrations else route.slotmap.owner
        return self._conns

    def dispatch(self, args: list[bytes], raw: bytes, spec: CommandSpec | None) -> None:
        """Every request the fast paths did not take; ``spec``: ``resolve(args)``."""
        fifo = self.fifo
        before = len(fifo)
        session = self.session
        late = None  # CLIENT TRACKING: reads remembered before they are sent
        tracker = self.ports.tracker
        if tracker and session is not None and session.tracking is not None and spec is not None:
            late = tracker.on_request(self, spec, args, self.state.mode is Mode.MULTI)
        if spec is None:  # unknown, or a wrong number of arguments: Redis's error
            spec = cmds.lookup(args)
            self.state.reject(cmds.refusal(args, spec), args)
        elif not (self.routes.route.slotmap.migrations and migrate.start(self, spec, args, raw)):
            self.state.handle(spec, args, raw)  # (keys in migrating slots: moved first)
        if late:  # their shard's tracking connection is not live: dropped after the reply
            tracker.late(self, late)  # type: ignore[union-attr]
        # name (and time) the reply slots this request added, for the metrics
        name = spec.name if spec is not None else "unknown"
        if session is not None and (session.reply != "on" or name == "client|reply"):
            client_ctl.drop_replies(self, session, before, name)
        shape = spec.shape.value if spec is not None else "local"
        now = perf_counter()
        for i in range(before, len(fifo)):
            pending = fifo[i]
            if pending.cmd is None:
                pending.cmd = name
                if pending.reply is None:
                    pending.t0 = now
                    pending.shape = shape
                else:
                    self.stats.observe(shape, perf_counter() - now)

    def forward(self, spec: CommandSpec, args: list[bytes], raw: bytes) -> None:
        """Answer a command in normal mode: locally, or planned and sent to the shards."""
        if spec.shape is LOCAL:
            self.push(self.answer_local(spec.name, args))
            return
        if spec.name in CONFIG_WRITES and self.ports.config_writes is not None:
            if self.running.config.router.allow_config_set:  # every node of every shard
                self.ports.config_writes.request(args, self.new_pending())
                return
        if spec.name == "client|unblock":
            client_ctl.unblock(self, self.ports.clients, args)
            return
        if spec.name in TRACKING_COMMANDS and self.ports.tracker is not None:
            self.push(self.ports.tracker.command(self, spec.name, args))
            self.state.update_plain()  # a tracking client leaves the fast path
            return
        if spec.name in side.SIDE_COMMANDS:  # SCRIPT/FUNCTION KILL: never behind the script
            masters = self.routes.route.masters
            side.on_masters(
                masters, args, planner.merger_of(spec), self.new_pending(), self.turn.flush
            )
            return
        session = self.session
        assert session is not None
        route = self.routes.route
        if spec.split_step and not (len(args) - 1) % spec.split_step and is_large(spec, len(args)):
            self._start_large(spec, args, raw)  # split a piece per loop turn
            return
        if spec.merger == "scan":  # SCAN: on to the next shards in one call (router.wire.walk)
            walk.scan(self, args)
            return
        info = self.ports.info_head() if spec.name == "info" else None
        plan = planner.plan(spec, args, route.slotmap, info, session.proto == 3)
        if spec.name in SCRIPTED:  # script bodies seen (router.decide.scripts)
            self.ports.scripts.seen(spec.name, args, self.running.config.router.script_cache_bytes)
        if type(plan) is int:
            conn = self.conn(plan)
            if spec.name in RETRIED:  # -NOSCRIPT: the body loaded and retried once
                self._send_evalsha(plan, conn, raw, args[1])
            else:  # never replay inside a WATCH
                self._send_single(conn, raw, None, replayable=conn is not self.state.watch)
        elif type(plan) is Fanout:
            self._send_parts(plan, self.conn, None)
        elif not (
            plan is CROSSSLOT and (gather.start(self, spec, args) or walk.mpop(self, spec, args))
        ):
            self.push(plan)  # type: ignore[arg-type]

    def conn(self, shard: int) -> BackendConn:
        """This client's connection to ``shard``: its WATCH connection for the watched
        shard (so its own commands stay in order with WATCH), else the shared one."""
        watch = self.state.watch
        if watch is not None and shard == self.state.watch_shard:
            return watch
        route = self.routes.route
        conns = self._conns if self._conns_route is route else self._bind(route)
        return conns[shard]

    def answer_local(self, name: str, args: list[bytes]) -> bytes:
        reply = self._local(name, args)
        if name == "hello" or name == "reset":
            self._conns_route = None  # the protocol may have changed
        return reply

    # ------------------------------------------------------------ used by ClientState

    def resp3(self) -> bool:
        return self.session is not None and self.session.proto == 3

    def proto(self) -> int:
        return self.session.proto if self.session is not None else 2

    def addr(self) -> str:
        return self.session.addr if self.session is not None else "?"

    def resume_soon(self) -> None:
        """Input may be waiting (held requests, buffered bytes): process it soon."""
        self._update_reading()
        if self.held or self.reader.buffered():
            self.loop.call_soon(self._resume)

    def _local(self, name: str, args: list[bytes]) -> bytes:
        session = self.session
        assert session is not None
        if name in client_ctl.CONTROL:  # CLIENT KILL/PAUSE/UNPAUSE: on other connections
            return client_ctl.answer(self.ports.clients, session, name, args)
        if name == "hello":  # the version: the shards' lowest, as INFO's redis_version
            return builtins.hello(session, args, lowest_version(self.routes.route))
        return builtins.answer(session, name, args, self.ports.clients.sessions)

    def new_pending(self) -> Pending:
        """A reply slot at the tail of the FIFO, filled later."""
        pending = Pending(self)
        self.fifo.append(pending)
        return pending

    def push(self, reply: bytes) -> None:
        """Queue a reply that is ready now."""
        pending = Pending(self)
        self.fifo.append(pending)
        pending.on_reply(reply)

    # ------------------------------------------------------------ output

    def _flush(self) -> None:
        """Write every ready reply at the head of the FIFO, in one write (the reference;
        `ClientBase`'s C ``flush`` runs when built: the same, `_take_ready` in C)."""
        self.dirty = False
        transport = self.transport
        fifo = self.fifo
        if transport is None:
            return
        data = self._take_ready()
        if data is not None:
            self.stats.bytes_out += len(data)
            transport.write(data)
            if self.out_paused and self._over_output_limit(transport):
                return
        if not fifo and self.session.closing:  # type: ignore[union-attr]
            transport.close()
            return
        if self.read_paused:
            self._update_reading()

    if H is None:
        flush = _flush

    def _over_output_limit(self, transport: asyncio.Transport) -> bool:
        """Close a client whose unread replies exceed client_output_limit_bytes (as Redis's
        client-output-buffer-limit); True if it was closed."""
        limit = self.running.config.router.client_output_limit_bytes
        if transport.get_write_buffer_size() <= limit:
            return False
        log.warning(
            "client %s: %d bytes of unread replies exceed client_output_limit_bytes "
            "(%d); closing it",
            self.session.addr,  # type: ignore[union-attr]
            transport.get_write_buffer_size(),
            limit,
        )
        transport.abort()
        return True

    def replies_all_in(self) -> bool:
        """Every reply slot in the FIFO is answered (LoopTurn.flush_replies writes this
        client at once)."""
        return all(pending.reply is not None for pending in self.fifo)

    def _take_ready(self) -> bytes | None:
        """Pop every answered reply at the head of the FIFO, count each (the metrics), and
        return them joined (None: nothing to write). CLIENT REPLY OFF/SKIP's dropped
        replies are counted, not returned."""
        fifo = self.fifo
        out: list[bytes] = []
        stats = self.stats
        rows = stats.commands
        dropped = self.dropped
        while fifo and fifo[0].reply is not None:
            pending = fifo.popleft()
            reply: bytes = pending.reply  # type: ignore[assignment]
            if dropped is not None and pending in dropped:  # CLIENT REPLY OFF/SKIP
                dropped.discard(pending)
                if not dropped:
                    self.dropped = dropped = None
            else:
                out.append(reply)
            cmd = pending.cmd
            if cmd is not None:  # inlined RouterStats.count (once per reply)
                row = rows.get(cmd)
                if row is None or reply[0] == 45:
                    stats.count(cmd, reply)
                else:
                    row[0] += 1
        if not out:
            return None
        return out[0] if len(out) == 1 else b"".join(out)

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None:
            return
        full = (
            len(self.fifo) >= self.running.config.router.max_pending_per_client
            or self.out_paused
            or self.session.closing  # type: ignore[union-attr]
            or self.large is not None  # a few loop turns: its next requests wait anyway
            or self.gather is not None  # likewise
            # A blocked client's input is read (so that its disconnect is seen at
            # once and frees the backend connection) but not processed, up to a bound.
            or (self.state.mode is Mode.BLOCKED and self.reader.buffered() > BLOCKED_INPUT_LIMIT)
        )
        if full and not self.read_paused:
            self.read_paused = True
            transport.pause_reading()
        elif not full and self.read_paused:
            self.read_paused = False
            transport.resume_reading()
            if self.reader.buffered() or self.held:
                # requests left in the buffer while paused: go on with them
                self.loop.call_soon(self._resume)

    def _resume(self) -> None:
        if self.transport is not None:
            self.process()
            self.turn.flush()
