"""One client's mode and the stateful commands: AUTH gating, MULTI/EXEC/WATCH, blocking, pub/sub.

`ClientState` is the client connection's (router.wire.client.ClientConn,
seen through the `ClientPort` port) partner for everything that is not a
plain forward. It owns the client's `modes.Mode` and changes it only
through `modes.step`; it owns the dedicated backend connections the client
holds (its WATCH connection, the one a blocking command waits on, and the
subscription connections of its `router.wire.subscriber.Subscriber`) and
gives them back clean or closes them.

    handle(spec, args, raw)
      ├─ not authenticated and not AUTH/HELLO/QUIT/RESET ─► -NOAUTH
      ├─ NORMAL and an ordinary command ─────────────────► client.forward (planner)
      └─ modes.step(mode, input) ─► error reply (Redis's text) | a handler below

Invariants: ``plain`` is True exactly when the fast path may forward without
asking (NORMAL mode, authenticated, no connection of its own, replies not
dropped by CLIENT REPLY OFF/SKIP, no CLIENT TRACKING); while a client
has its own connection to a shard (WATCH), all its commands for that shard go
on it, in order, and it is given back only after EXEC/DISCARD/UNWATCH/RESET
*and* once every request sent on it has been answered (so the client's next
commands cannot overtake them on a shared connection); a blocking command's
connection is given back after its reply; all are closed at once if the
client goes away. A transaction over several shards (router.transactions:
split) is sent by `router.wire.split_exec`; with WATCH the client is BLOCKED
(its next commands held) until every shard's part has answered. An EXEC whose
transaction began (WATCH, else MULTI) before a migration appeared in the slot map
is refused (`router.decide.migrate.exec_refusal`): its commands were planned for
the old layout. A blocking command blocked on a shard that no longer serves a
slot of its keys (a migration now moving them away) is released there and sent
again where its keys now live (`router.wire.reblock`). A blocking command's reply comes through a
`router.decide.fanin.FanIn` (WAIT: one part per master, merged by its row's
merger), and so do the confirmations of the `Subscriber`.
"""

from __future__ import annotations

import logging

from router.commands import spec as cmds
from router.commands.spec import CommandSpec, Shape
from router.decide import modes, split_txn, txn
from router.decide import plan as planner
from router.decide.builtins import NO_AUTH_COMMANDS, NOAUTH
from router.decide.fanin import FanIn, FanInPart
from router.decide.merge import merge_first
from router.decide.migrate import exec_refusal
from router.decide.modes import Mode, ModeInput
from router.errors import CROSSSLOT
from router.wire import reblock, split_exec
from router.wire.node import RouteSource
from router.wire.pinned import PinnedConn, holder_of
from router.wire.ports import ClientPort, Waiter
from router.wire.subscriber import Subscriber, pong
from slotwarden.cluster.topology import SlotMap
from slotwarden.resp.encode import OK, encode_array, encode_command

log = logging.getLogger("slotwarden.frontend")

NORMAL, MULTI, SUBSCRIBED, BLOCKED = Mode.NORMAL, Mode.MULTI, Mode.SUBSCRIBED, Mode.BLOCKED
# WAIT must see every write the shard executed before it: a write on the WAIT
# connection itself (PUBLISH is propagated to replicas, and nobody listens here)
# makes the server wait for the replication offset of everything before it.
WAIT_BARRIER = encode_command([b"PUBLISH", b"__slotwarden:wait__", b""])


class _Ignore:
    """Waiter for replies nobody reads (MULTI's +OK, +QUEUED, a silent UNWATCH)."""

    __slots__ = ()

    def on_reply(self, raw: bytes) -> None:
        pass


IGNORE = _Ignore()


class ClientState:
    __slots__ = (
        "blocked",
        "client",
        "mode",
        "plain",
        "reblock",
        "routes",
        "since",
        "subscriber",
        "tx",
        "watch",
        "watch_shard",
        "watching",
    )

    def __init__(self, client: ClientPort, routes: RouteSource) -> None:
        self.client = client
        self.routes = routes  # the route in use (the route table)
        self.mode = NORMAL
        self.plain = False  # set by update_plain once the session exists
        self.tx: txn.Transaction | None = None
        # The client's own connection to one shard: while WATCH is active, and after
        # it until the requests sent on it are answered (so that the client's next
        # commands for that shard cannot overtake them on a shared connection).
        self.watch: PinnedConn | None = None
        self.watch_shard = -1
        self.watching = False
        self.blocked: list[PinnedConn] = []  # pinned connections of the blocking command
        self.reblock: reblock.Blocked | None = None  # it, if a migration may re-block it
        self.subscriber: Subscriber | None = None
        self.since: SlotMap | None = None  # the slot map when WATCH (or MULTI) began

    def update_plain(self) -> None:
        session = self.client.session
        # Redis's limits for a client that has not authenticated yet (slotwarden.resp)
        self.client.reader.unauthenticated = session is not None and not session.authenticated
        self.plain = (
            self.mode is NORMAL
            and self.watch is None
            and session is not None
            and session.authenticated
            and session.reply == "on"  # CLIENT REPLY OFF/SKIP: replies dropped by dispatch
            and session.tracking is None  # CLIENT TRACKING: reads remembered by dispatch
        )
        self.client.plain = self.plain  # read there by the C hot path (router.wire._hot)
        if session is not None:
            session.flags = {NORMAL: "N", MULTI: "x", SUBSCRIBED: "P", BLOCKED: "b"}[self.mode]
            sub = self.subscriber
            session.subs = (
                (len(sub.wanted[0]), len(sub.wanted[1]), len(sub.wanted[2])) if sub else (0, 0, 0)
            )
            session.multi = len(self.tx.items) if self.tx is not None else -1

    # ------------------------------------------------------------ entry points

    def reject(self, error: bytes, args: list[bytes]) -> None:
        """An unknown command or a wrong arity: Redis's error; inside MULTI it also
        dooms the transaction. EXEC itself rejected answers EXECABORT with the reason
        (and discards the transaction), in or out of MULTI, as Redis does."""
        if args[0].lower() == b"exec":  # Redis answers a rejected EXEC with EXECABORT
            error = txn.execabort_because(error)
            if self.mode is MULTI:
                self.tx = None
                self._unwatch_silently()
                self._enter(NORMAL)
        elif self.mode is MULTI and self.tx is not None:
            self.tx.fail(error)
        self.client.push(error)

    def handle(self, spec: CommandSpec, args: list[bytes], raw: bytes) -> None:
        client = self.client
        session = client.session
        assert session is not None
        name = spec.name
        session.last_cmd = name
        if not session.authenticated and name not in NO_AUTH_COMMANDS:
            if name == "exec":
                client.push(txn.execabort_because(NOAUTH))
            else:
                client.push(NOAUTH)
            return
        blocking = spec.blocks is not None and cmds.is_blocking(args, spec)
        event = modes.classify(name, blocking)
        mode = self.mode
        if event is ModeInput.COMMAND and mode is NORMAL:
            client.forward(spec, args, raw)
            if name == "auth" or name == "hello":
                self.update_plain()
            return
        nxt = modes.step(mode, event, name, session.proto == 3)
        if type(nxt) is bytes:
            client.push(nxt)
            return
        if nxt is MULTI and mode is MULTI and event is not ModeInput.QUIT:
            self._queue(spec, args, raw)
        elif event is ModeInput.MULTI:
            if not self.watching:
                self.since = self.routes.route.slotmap
            split = client.running.config.router.transactions == "split"
            self.tx = txn.Transaction(self.watch_shard if self.watching else None, split=split)
            client.push(OK)
        elif event is ModeInput.EXEC:
            if self._exec():
                return  # BLOCKED until the split transaction's reply (or already back)
        elif event is ModeInput.DISCARD:
            self.tx = None
            self._unwatch_silently()
            client.push(OK)
        elif event is ModeInput.WATCH:
            self._watch(spec, args, raw)
        elif event is ModeInput.UNWATCH:
            self._unwatch(raw)
        elif event is ModeInput.SUBSCRIBE or event is ModeInput.UNSUBSCRIBE:
            self._pubsub(spec, args)
        elif event is ModeInput.PING and mode is SUBSCRIBED and session.proto == 2:
            client.push(pong(args))
        elif event is ModeInput.RESET:
            self.reset()
            client.push(client.answer_local(name, args))
        elif event is ModeInput.BLOCKING:
            if self._block(spec, args, raw):
                return  # BLOCKED (or already answered and back): _block set the mode
            nxt = mode
        else:  # PING, QUIT, or any command of a RESP3 subscriber
            client.forward(spec, args, raw)
        self._enter(nxt)

    def _enter(self, mode: Mode) -> None:
        sub = self.subscriber
        subscribed = sub is not None and sub.count() > 0
        if mode is NORMAL and subscribed:
            mode = SUBSCRIBED  # a RESP3 subscriber after EXEC, say
        elif mode is SUBSCRIBED and not subscribed:
            mode = modes.TRANSITIONS[(SUBSCRIBED, ModeInput.NO_SUBSCRIPTIONS)]
        self.mode = mode
        self.update_plain()

    # ------------------------------------------------------------ transactions

    def _queue(self, spec: CommandSpec, args: list[bytes], raw: bytes) -> None:
        tx = self.tx
        assert tx is not None
        client = self.client
        if spec.shape is Shape.LOCAL:
            if len(tx.items) >= txn.MAX_QUEUED:
                client.push(tx.fail(txn.TOO_LONG))
                return
            tx.items.append(txn.LocalItem(spec.name, args))
            client.push(txn.QUEUED)
            self.update_plain()
            return
        slotmap = self.routes.route.slotmap
        if tx.split:
            entry = split_txn.queue_entry(spec, args, raw, slotmap, client.resp3())
            client.push(tx.fail(entry) if type(entry) is bytes else tx.add(entry))  # type: ignore[arg-type]
            self.update_plain()
            return
        shard = planner.plan_queued(spec, args, slotmap)
        if type(shard) is bytes:
            client.push(tx.fail(shard))
            return
        client.push(tx.queue(raw, shard))  # type: ignore[arg-type]
        self.update_plain()

    def _exec(self) -> bool:
        """Run the transaction; True if the client is left BLOCKED until its reply."""
        client = self.client
        tx, self.tx = self.tx, None
        assert tx is not None
        if tx.aborted:
            self._unwatch_silently()
            client.push(txn.EXECABORT)
            return False
        moved_on = exec_refusal(self.since, self.routes.route.slotmap)  # a migration began
        if moved_on is not None:
            self._unwatch_silently()
            client.push(moved_on)
            return False
        answer = lambda item: client.answer_local(item.name, item.args)  # noqa: E731
        if tx.split:
            watched = self.watch_shard if self.watching else None
            plan = split_txn.plan_split(tx.items, watched, answer)
            if plan.split:
                return self._exec_split(plan, watched is not None)
            home = plan.order[0] if plan.order else None
            requests = plan.requests[home] if home is not None else []
            local: list[bytes | None] = [place.local for place in plan.places]
        else:
            home = tx.shard
            local = tx.local_replies(answer)
            requests = tx.backend_requests()
        if not requests and not self.watching:
            client.push(encode_array([r for r in local if r is not None]))
            return False
        if home is not None:
            shard = home
        else:
            shard = self.watch_shard if self.watching else 0
        pending = _ExecPending(client.new_pending(), local)
        split_exec.send_part(client.conn(shard), requests, pending)
        self._stop_watching()  # EXEC unwatches: the connection is clean after it
        return False

    def _exec_split(self, plan: split_txn.SplitPlan, watched: bool) -> bool:
        """One MULTI/EXEC per shard (router.wire.split_exec). Without WATCH all at once;
        with it the watched shard first, the client BLOCKED (nothing more of it is
        read) until the others are sent and answered, so its next commands cannot
        overtake them."""
        client = self.client
        client.stats.split_transactions += 1
        names = [shard.name for shard in self.routes.route.slotmap.shards]
        pending = client.new_pending()
        if not watched:
            split_exec.send_all(plan, names, client.conn, pending)
            return False

        def done(reply: bytes) -> None:
            pending.on_reply(reply)
            if client.transport is not None:
                self.on_unblocked()

        self._enter(BLOCKED)  # before sending: a dead shard answers at once
        split_exec.send_watched_first(plan, names, client.conn, done)
        self._stop_watching()  # EXEC unwatches: the connection is clean after it
        if self.mode is not BLOCKED:  # answered at once (a dead shard): back to normal
            self.update_plain()
        return True

    def _watch(self, spec: CommandSpec, args: list[bytes], raw: bytes) -> None:
        client = self.client
        route = self.routes.route
        shard = planner.plan_single(spec, args, route.slotmap)
        if type(shard) is bytes:
            client.push(shard)
            return
        if self.watching and shard != self.watch_shard:
            client.push(CROSSSLOT)
            return
        if not self.watching:
            self.since = route.slotmap
        if self.watch is not None and shard != self.watch_shard:
            self._release_watch()  # still draining on another shard: let it go
        if self.watch is None:
            node = route.masters[shard]  # type: ignore[index]
            conn = node.acquire_pinned(client.proto(), holder_of(client.session))
            if type(conn) is bytes:
                client.push(conn)
                return
            self.watch, self.watch_shard = conn, shard  # type: ignore[assignment]
        self.watching = True
        self.watch.on_idle = None  # type: ignore[union-attr]
        self.watch.send(raw, client.new_pending())  # type: ignore[union-attr]

    def _unwatch(self, raw: bytes) -> None:
        if not self.watching or self.watch is None:
            self.client.push(OK)
            return
        self.watch.send(raw, self.client.new_pending())
        self._stop_watching()

    def _unwatch_silently(self) -> None:
        if self.watching and self.watch is not None:
            self.watch.send(txn.UNWATCH_RAW, IGNORE)
            self._stop_watching()

    def _stop_watching(self) -> None:
        """The connection is clean now; give it back once its replies are in."""
        self.watching = False
        conn = self.watch
        if conn is not None:
            if conn.waiting:
                conn.on_idle = self._on_idle
            else:
                self._release_watch()

    def _on_idle(self, conn: PinnedConn) -> None:
        if conn is self.watch and not self.watching and not self.blocked:
            self._release_watch()
            self.update_plain()

    def _release_watch(self) -> None:
        conn, self.watch = self.watch, None
        self.watch_shard = -1
        self.watching = False
        if conn is not None:
            conn.pool.release(conn)

    # ------------------------------------------------------------ blocking

    def _block(self, spec: CommandSpec, args: list[bytes], raw: bytes) -> bool:
        """Send a blocking command on a dedicated connection; False if answered at once."""
        client = self.client
        route = self.routes.route
        grace = cmds.blocking_timeout(args, spec)
        if spec.name == "wait":
            targets = list(range(len(route.masters)))
        else:
            shard = planner.plan_single(spec, args, route.slotmap)
            if type(shard) is bytes:
                client.push(split_txn.BLOCKING_CROSSSLOT if shard == CROSSSLOT else shard)
                return False
            targets = [shard]  # type: ignore[list-item]
        conns: list[PinnedConn] = []
        for shard in targets:
            if self.watch is not None and shard == self.watch_shard:
                conns.append(self.watch)  # its own connection, kept after the reply
                continue
            node = route.masters[shard]
            conn = node.acquire_pinned(client.proto(), holder_of(client.session))
            if type(conn) is bytes:
                self._release(conns)
                client.push(conn)
                return False
            conns.append(conn)  # type: ignore[arg-type]
        self.blocked = conns
        self._enter(BLOCKED)  # before sending: a dead shard answers at once
        pending = client.new_pending()

        def done(reply: bytes) -> None:
            if self.reblock is not None and reblock.retry(self, pending, reply):
                return  # released for a migration: sent again (router.wire.reblock)
            pending.on_reply(reply)
            if client.transport is not None:
                self.on_unblocked()

        if len(conns) == 1 and self.watch is None:
            name = route.slotmap.shards[targets[0]].name
            self.reblock = reblock.watch(spec, args, name, grace)
        # WAIT: the smallest count over every master (each must have that many
        # replicas in sync); the others: the reply of their one connection
        merger = planner.merger_of(spec) if spec.merger is not None else merge_first
        fan = FanIn(len(conns), merger, done)
        for index, conn in enumerate(conns):
            if spec.name == "wait":
                conn.send(WAIT_BARRIER, IGNORE)
            conn.send_blocking(raw, FanInPart(fan, index), grace)
        return True

    def on_unblocked(self) -> None:
        self._release(self.blocked)
        self.blocked = []
        self.reblock = None
        if self.watch is not None and not self.watching and not self.watch.waiting:
            self._release_watch()
        nxt = modes.step(self.mode, ModeInput.UNBLOCKED)
        self._enter(nxt if type(nxt) is Mode else NORMAL)
        self.client.resume_soon()

    def _release(self, conns: list[PinnedConn]) -> None:
        for conn in conns:
            if conn is not self.watch:
                conn.pool.release(conn)

    # ------------------------------------------------------------ pub/sub

    def _pubsub(self, spec: CommandSpec, args: list[bytes]) -> None:
        client = self.client
        verb = spec.name.encode()
        names = args[1:]  # shard channels of several shards too, as one Redis 7.0 takes them
        if self.subscriber is None:
            self.subscriber = Subscriber(client, self.routes)
        pending = client.new_pending()
        if verb in (b"subscribe", b"psubscribe", b"ssubscribe"):
            self.subscriber.subscribe(verb, names, pending)
        else:
            self.subscriber.unsubscribe(verb, names, pending)

    def on_route_change(self) -> None:
        if self.subscriber is not None:
            self.subscriber.on_route_change()
        if self.reblock is not None:  # blocked on a shard its keys are moving away from
            reblock.route_changed(self)

    # ------------------------------------------------------------ the end

    def reset(self) -> None:
        """RESET: leave MULTI, unwatch, unsubscribe everything, back to NORMAL."""
        self.tx = None
        self._unwatch_silently()
        if self.subscriber is not None:
            self.subscriber.reset()  # it lives on until its connections are clean

    def close(self) -> None:
        """The client disconnected: close its dedicated connections now."""
        for conn in self.blocked:
            conn.close()
        self.blocked = []
        self.reblock = None
        if self.watch is not None:
            if self.mode is BLOCKED and not self.blocked and self.watch.waiting:
                # a split EXEC in flight (_exec_split): its watched shard may commit,
                # and then the other shards' parts must follow; the connection is clean
                # after EXEC and goes back once answered
                self.watch.on_idle = _give_back
            else:
                self.watch.close()
            self.watch = None
            self.watching = False
        if self.subscriber is not None:
            self.subscriber.close()


def _give_back(conn: PinnedConn) -> None:
    conn.pool.release(conn)


class _ExecPending:
    """EXEC's reply: the shard's array with the router's local replies spliced in."""

    __slots__ = ("local", "pending")

    def __init__(self, pending: Waiter, local: list[bytes | None]) -> None:
        self.pending = pending
        self.local = local

    def on_reply(self, raw: bytes) -> None:
        self.pending.on_reply(txn.splice(raw, self.local))
