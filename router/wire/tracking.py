"""Client-side caching through the router: the per-shard tracking connections and the fan-out.

One `Tracker` per router process. While at least one client of the router has
CLIENT TRACKING on, it keeps one `ShardLink` per shard of the route, to the
shard's current master (none otherwise: zero cost for apps that do not use it):

    HELLO 3 [AUTH ..] + CLIENT TRACKING ON BCAST ──► +OK: live (generation n)
    PING every second; no answer within router.command_timeout_ms: lost
    >2 invalidate [k ...] ─► Table.invalidate ─► each client that read k: invalidate [its keys]
    >2 invalidate _ / lost / new master, slots or migrations ─► flush: every client that
        read a key of that shard, and every BCAST client, gets a null (drop everything)

Redis reports every key change of the shard on the BCAST connection (a write
by anyone: another client of this router, another router, a script, an expiry
or an eviction, a key moved by a migration), so the router's own table
(`router.decide.tracking.Table`) decides who is told. Deliveries go through
`ClientPort.push`, appended to the client's reply FIFO: an invalidation comes
after every reply the client was owed when it arrived, so it cannot overtake
the reply of a read of the old value.

Invariants (the guarantees of README *Client-side caching*):
- A read is remembered when it is dispatched (before the shard can answer it),
  and only while its shard's link is live: a read of a shard whose link is not
  live is answered and then followed by an invalidation of its keys (`late`).
- A link that stops being live (lost, unanswered PING, a null from the shard)
  flushes its shard before anything else is read from it; a route change that
  changes a shard's master, its slots or its migrations, or removes it, flushes
  it synchronously in the route change (before any request is dispatched under
  the new route) and the link reopens on the new master.
- A RESP3 client gets pushes; a client with REDIRECT id gets them on client id
  (a RESP3 target: the push; a RESP2 target subscribed to anything: a message
  on ``__redis__:invalidate``); a target gone: ``tracking-redir-broken`` (RESP3)
  and TRACKINGINFO's ``broken_redirect``, as Redis does. BCAST + NOLOOP: the
  router cannot tell whose write a key change was, so the client is told anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from router.commands import spec as cmds
from router.commands.key_finders import KeySpecError
from router.commands.spec import CommandSpec
from router.decide import tracking as rules
from router.decide.tracking import ClientTracking, Table
from router.wire.backend import handshake, open_to
from router.wire.node import Node, Route, RouteSource
from router.wire.ports import ClientPort, ConfigSource
from router.wire.turn import LoopTurn
from slotwarden.resp.accel import key_slot
from slotwarden.resp.encode import encode_command
from slotwarden.resp.errors import ProtocolError
from slotwarden.resp.replies import ReplyScanner, split_array

log = logging.getLogger("slotwarden.tracking")

TRACKING_ON = encode_command([b"CLIENT", b"TRACKING", b"ON", b"BCAST"])
PING = encode_command([b"PING"])
PING_EVERY = 1.0  # seconds between health PINGs on a link
FLUSH_REASONS = ("shard_flush", "connection_lost", "topology")


def _bulk_items(raw: bytes) -> list[bytes] | None:
    """The strings of a RESP array of bulks (None: a null)."""
    if raw[:1] != b"*":
        return None
    items = split_array(raw) or []
    return [i[i.find(b"\r\n") + 2 : -2] for i in items]


class ShardLink(asyncio.Protocol):
    """The BCAST tracking connection to one shard's master (reconnects until closed)."""

    def __init__(self, tracker: Tracker, shard: int, node: Node) -> None:
        self.tracker = tracker
        self.shard = shard
        self.node = node
        self.live = False
        self.closed = False
        self.refused = ""  # the last refusal logged (HELLO or CLIENT TRACKING: the ACL)
        self.transport: asyncio.Transport | None = None
        self.scanner = ReplyScanner()
        self.owed: deque[tuple[bytes, float]] = deque()  # (what, sent at) awaiting replies
        self.task: asyncio.Task[None] | None = None
        self.gone: asyncio.Event = asyncio.Event()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self.run(), name=f"tracking {self.node.addr}"
        )
        self.tracker.tasks.add(self.task)
        self.task.add_done_callback(self.tracker.tasks.discard)

    async def run(self) -> None:
        settings = self.node.settings
        backoff = settings.reconnect_min
        loop = asyncio.get_running_loop()
        while not self.closed:
            self.gone = asyncio.Event()
            self.scanner = ReplyScanner()
            self.owed.clear()
            try:
                async with asyncio.timeout(settings.connect_timeout):
                    await open_to(self, self.node.addr, settings)
            except (OSError, TimeoutError) as exc:
                log.debug("tracking connection to %s: %s", self.node.addr, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, settings.reconnect_max)
                continue
            assert self.transport is not None
            if self.closed:  # closed while it was connecting
                self.transport.abort()
                break
            now = loop.time()
            hello = handshake(settings.credentials, 3)
            self.owed.extend([(b"hello", now), (b"tracking", now)])
            self.transport.write(hello + TRACKING_ON)
            while not self.gone.is_set() and not self.closed:
                try:
                    async with asyncio.timeout(PING_EVERY):
                        await self.gone.wait()
                except TimeoutError:
                    pass
                if self.transport is None or self.closed:
                    break
                now = loop.time()
                if self.owed and now - self.owed[0][1] > self.node.settings.command_timeout:
                    log.warning(
                        "tracking connection to %s: no reply within %d ms; closing it",
                        self.node.addr,
                        int(self.node.settings.command_timeout * 1000),
                    )
                    self.transport.abort()
                    break
                if self.live:
                    backoff = settings.reconnect_min
                    self.owed.append((b"ping", now))
                    self.transport.write(PING)
            if not self.closed:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, settings.reconnect_max)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.scanner.feed(data)
            replies = self.scanner.replies()
        except ProtocolError as exc:
            log.warning("tracking connection to %s: %s", self.node.addr, exc)
            if self.transport is not None:
                self.transport.abort()
            return
        for raw in replies:
            if raw[:1] == b">":
                self._push(raw)
                continue
            if not self.owed:
                continue
            what, _ = self.owed.popleft()
            if raw[:1] == b"-":
                why = raw[1:].rstrip().decode("utf-8", "replace")[:200]
                if why != self.refused:  # once per reason, not per retry
                    self.refused = why
                    log.warning(
                        "tracking connection to %s: %s refused: %s",
                        self.node.addr,
                        what.decode(),
                        why,
                    )
                if self.transport is not None:
                    self.transport.abort()
                return
            if what == b"tracking":
                self.refused = ""
                self.live = True
                self.tracker.generation += 1
        self.tracker.turn.flush()

    def _push(self, raw: bytes) -> None:
        items = split_array(b"*" + raw[1:])
        if not items or len(items) < 2 or items[0] != b"$10\r\ninvalidate\r\n":
            return
        keys = _bulk_items(items[1])
        if keys is None:
            self.tracker.flush(self.shard, "shard_flush")
        elif self.live:
            self.tracker.invalidate(self.shard, keys)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        was_live, self.live = self.live, False
        self.gone.set()
        if was_live and not self.closed:
            log.warning("tracking connection to %s lost", self.node.addr)
            self.tracker.flush(self.shard, "connection_lost")
            self.tracker.turn.flush()

    def close(self) -> None:
        self.closed = True
        self.live = False
        if self.transport is not None:
            self.transport.abort()
        self.gone.set()


class Tracker:
    """Every tracking client of this router, the key table, and the links to the shards."""

    def __init__(
        self,
        routes: RouteSource,
        running: ConfigSource,
        turn: LoopTurn,
        lookup: Callable[[int], ClientPort | None],
    ) -> None:
        self.routes = routes
        self.running = running
        self.turn = turn
        self.lookup = lookup  # a client of this router by id (the registry's)
        self.table = Table(running.config.router.tracking_table_max_keys)
        self.clients: dict[int, ClientPort] = {}  # tracking on
        self.bcast: dict[int, ClientPort] = {}  # ... in BCAST mode
        self.links: dict[int, ShardLink] = {}  # shard index -> its link (while tracking)
        self.tasks: set[asyncio.Task[None]] = set()
        self.generation = 0  # live periods begun, all links together
        self.invalidations = 0  # invalidation messages sent to clients
        self.evictions = 0  # keys evicted because the table was full
        self.flushes = dict.fromkeys(FLUSH_REASONS, 0)

    # ------------------------------------------------------------ the commands

    def command(self, client: ClientPort, name: str, args: list[bytes]) -> bytes:
        """The reply to CLIENT TRACKING / CACHING / GETREDIR / TRACKINGINFO."""
        session = client.session
        assert session is not None
        now: ClientTracking | None = session.tracking
        if name == "client|tracking":
            parsed = rules.parse_tracking(args, now, self._exists)
            if type(parsed) is bytes:
                return parsed
            if parsed is None:
                self.off(client)
            else:
                self._on(client, rules.enable(now, parsed))  # type: ignore[arg-type]
            return rules.OK
        if name == "client|caching":
            return rules.caching(now, args)
        if name == "client|getredir":
            return rules.getredir(now)
        return rules.trackinginfo(now, client.resp3())

    def _exists(self, cid: int) -> bool:
        target = self.lookup(cid)
        return target is not None and target.transport is not None

    def _on(self, client: ClientPort, tracking: ClientTracking) -> None:
        session = client.session
        assert session is not None
        session.tracking = tracking
        self.clients[session.id] = client
        if tracking.bcast:
            self.bcast[session.id] = client
        else:
            self.bcast.pop(session.id, None)
        self._open_links()

    def off(self, client: ClientPort) -> None:
        """Tracking off for ``client`` (CLIENT TRACKING OFF, RESET, disconnect)."""
        session = client.session
        if session is None:
            return
        session.tracking = None
        self.clients.pop(session.id, None)
        self.bcast.pop(session.id, None)
        if not self.clients:  # nobody tracks: no link, no table
            for link in self.links.values():
                link.close()
            self.links.clear()
            self.table = Table(self.running.config.router.tracking_table_max_keys)

    # ------------------------------------------------------------ the requests

    def on_request(
        self, client: ClientPort, spec: CommandSpec, args: list[bytes], in_multi: bool
    ) -> list[bytes] | None:
        """A request of a tracking client, before it is sent: its read keys remembered
        (the ones of shards not live returned, to invalidate after the reply), NOLOOP
        applied to its writes, the CACHING flag used up."""
        session = client.session
        assert session is not None
        tracking: ClientTracking = session.tracking
        name = spec.name
        if name == "reset":
            self.off(client)
            return None
        tracked = tracking.tracks_reads()
        if tracking.caching and not in_multi and name != "multi" and not name.startswith("client|"):
            tracking.caching = False  # CLIENT CACHING YES/NO: the next command only
        if not (spec.first or spec.keys) or not (tracked or (spec.write and tracking.noloop)):
            return None
        try:
            positions = cmds.key_positions(spec, args)
        except KeySpecError:
            return None
        if not positions:
            return None
        cid = session.id
        if spec.write:
            if tracking.noloop and not tracking.bcast:
                for pos in positions:
                    self.table.forget_writer(args[pos], cid)
            return None
        owner = self.routes.route.slotmap.owner
        # the bound in use (a reload applies at the next read; a smaller one evicts then)
        self.table.max_keys = self.running.config.router.tracking_table_max_keys
        late: list[bytes] = []
        for pos in positions:
            key = args[pos]
            shard = owner[key_slot(key)]
            link = self.links.get(shard)
            if link is None or not link.live:
                late.append(key)
                continue
            before = self.table.evictions
            for other, keys in self.table.add(shard, key, cid).items():  # evicted
                self._deliver(other, keys)
            self.evictions += self.table.evictions - before
        return late or None

    def late(self, client: ClientPort, keys: list[bytes]) -> None:
        """Reads of shards not live: told to drop them, after the reply."""
        session = client.session
        if session is not None:
            self._deliver(session.id, keys)

    # ------------------------------------------------------------ from the shards

    def invalidate(self, shard: int, keys: list[bytes]) -> None:
        for cid, mine in self.table.invalidate(shard, keys).items():
            self._deliver(cid, mine)
        for cid, client in list(self.bcast.items()):
            tracking = client.session.tracking if client.session is not None else None
            if tracking is None:
                continue
            mine = rules.bcast_keys(tracking, keys)
            if mine:
                self._deliver(cid, mine)

    def flush(self, shard: int, reason: str) -> None:
        """Everything known of ``shard`` is forgotten: a null to each client that read
        from it and to every BCAST client."""
        ids = self.table.flush(shard) | set(self.bcast)
        if self.clients:
            self.flushes[reason] += 1
        for cid in sorted(ids):
            self._deliver(cid, None)

    def _deliver(self, cid: int, keys: list[bytes] | None) -> None:
        client = self.clients.get(cid)
        session = client.session if client is not None else None
        tracking = session.tracking if session is not None else None
        if client is None or tracking is None or client.transport is None:
            return  # gone, or no longer tracking (skipped lazily, as Redis does)
        resp3 = client.resp3()
        if tracking.redirect:
            target = self.lookup(tracking.redirect)
            if target is None or target.transport is None or target.session is None:
                tracking.broken = True
                if resp3:
                    client.push(rules.redir_broken(tracking.redirect))
                return
            if target.resp3():
                target.push(rules.invalidate_push(keys, resp3))
            elif target.session.subs != (0, 0, 0):  # RESP2: only a subscribed client
                target.push(rules.invalidate_message(keys, resp3))
            else:
                return
        elif resp3:
            client.push(rules.invalidate_push(keys, True))
        else:
            return  # RESP2 without REDIRECT: nowhere to say it (as Redis)
        self.invalidations += 1

    # ------------------------------------------------------------ the links

    def _open_links(self) -> None:
        route = self.routes.route
        for index, node in enumerate(route.masters):
            link = self.links.get(index)
            if link is None:
                link = self.links[index] = ShardLink(self, index, node)
                link.start()

    def on_route(self, old: Route | None, new: Route) -> None:
        """A new route: the shards it changes are flushed now, their links reopened."""
        if old is None or not self.links:
            return
        changed = changed_shards(old, new)
        for index in sorted(changed):
            link = self.links.pop(index, None)
            if link is not None:
                link.close()
            self.flush(index, "topology")
        self._open_links()
        self.turn.flush()

    def close(self) -> None:
        for link in self.links.values():
            link.close()
        self.links.clear()

    # ------------------------------------------------------------ INFO, metrics

    def info(self) -> dict[str, int]:
        return {
            "tracking_clients": len(self.clients),
            "tracking_total_keys": len(self.table),
            "tracking_total_items": self.table.items,
            # as Redis: the distinct prefixes of every BCAST client
            "tracking_total_prefixes": len(
                {
                    p
                    for c in self.bcast.values()
                    if c.session is not None and c.session.tracking is not None
                    for p in c.session.tracking.prefixes
                }
            ),
        }


def changed_shards(old: Route, new: Route) -> set[int]:
    """The shard indices whose master, slots or migrations differ between two routes,
    or that one of them lacks."""
    a, b = old.slotmap, new.slotmap
    n_old, n_new = len(a.shards), len(b.shards)
    changed = set(range(min(n_old, n_new), max(n_old, n_new)))
    for i in range(min(n_old, n_new)):
        sa, sb = a.shards[i], b.shards[i]  # (its replicas may change: no matter)
        if sa.name != sb.name or sa.master != sb.master or old.masters[i] is not new.masters[i]:
            changed.add(i)
    if a.owner != b.owner:
        for x, y in zip(a.owner, b.owner, strict=True):
            if x != y:
                changed.add(x)
                changed.add(y)
    if a.migrations != b.migrations:
        names = {s.name: i for i, s in enumerate(b.shards)}
        names.update({s.name: i for i, s in enumerate(a.shards)})
        for m in (*a.migrations, *b.migrations):
            if m not in a.migrations or m not in b.migrations:
                for name in (m.source, m.target):
                    if name in names:
                        changed.add(names[name])
    return changed
