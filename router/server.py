"""The router process: owns the listening socket, the clients, the backend nodes and the route.

`Router` is the one object every connection shares. It holds the current
`Route` (an immutable slot map plus the master `Node` of each shard, swapped
as a whole so a request sees either the old or the new topology, never a
mix), the set of clients, and the lists of connections written to during the
current loop turn, which `flush` writes out (one ``write`` per socket per
turn). It applies new slot maps (`apply_topology`: a strictly higher epoch
only; replaced masters are retired, writes they refuse with READONLY are held
in `router.parking` and resent), reloaded configs (`apply_config`), and owns
the metrics counters (`router.metrics.Stats`). Every background task
(backend connections, the timeout sweep, the config watch, the sentinel
watcher) runs in the TaskGroup of `Router.serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import socket
import sys
import time
from dataclasses import dataclass

from aiohttp import web

from router import admin
from router.backend import BackendConn, Node, settings_for_shard, settings_from_config
from router.decide.builtins import Session, router_info_section
from router.decide.users import Users
from router.frontend import ClientConn, Pending
from router.metrics import Stats, make_registry
from router.parking import ParkingLot
from router.reload import Reloader
from router.watch import TopologyWatcher
from slotwarden import __version__
from slotwarden.cluster.config import ClusterConfig, load
from slotwarden.cluster.errors import ConfigError, SecretError
from slotwarden.cluster.secrets import read_secret
from slotwarden.cluster.topology import Address, SlotMap
from slotwarden.resp.accel import implementation

log = logging.getLogger("slotwarden.router")


@dataclass(frozen=True, slots=True)
class Route:
    slotmap: SlotMap
    masters: tuple[Node, ...]  # masters[i] serves slotmap.shards[i]


class Router:
    def __init__(
        self, config: ClusterConfig, listen: Address | None = None, secret: str | None = None
    ) -> None:
        self.config = config
        self.secret = secret
        self.listen = listen or config.router.listen
        self.settings = settings_from_config(config)  # raises SecretError
        self.users = Users.load(config)  # raises SecretError
        self.dirty_backends: list[BackendConn] = []
        self.dirty_clients: list[ClientConn] = []
        self.clients: dict[int, ClientConn] = {}
        self.nodes: dict[Address, Node] = {}
        self.route: Route  # set by apply_slotmap before serving
        self.started = time.time()
        self.total_connections = 0
        self.rejected_connections = 0
        self._next_id = 0
        self._flush_scheduled = False
        # Latency sampling: the first single-key request parsed in each event-loop
        # turn is timed (router.frontend); every other kind of request is timed.
        self.sample_due = True
        self._tg: asyncio.TaskGroup | None = None
        self.loop: asyncio.AbstractEventLoop
        self.bound: Address | None = None
        self.admin_bound: Address | None = None
        self.watcher: TopologyWatcher | None = None
        self.watcher_task: asyncio.Task[None] | None = None
        self.reloader = Reloader(self, config.path) if config.path else None
        self.stats = Stats()
        self.parking = ParkingLot()
        self.retired: list[Node] = []  # replaced masters finishing their in-flight replies
        self.registry = make_registry(self)
        self.ready = asyncio.Event()

    # ------------------------------------------------------------ shared by connections

    def next_client_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def flush(self) -> None:
        """Ask for what this loop turn produced to be written, once, after every
        read callback of the turn has run (so requests from many clients to one
        backend share one ``write``)."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._flush_scheduled = False
        self.sample_due = True
        while self.dirty_backends or self.dirty_clients:
            backends, self.dirty_backends = self.dirty_backends, []
            for conn in backends:
                conn.flush()
            clients, self.dirty_clients = self.dirty_clients, []
            for client in clients:
                client.flush()

    def on_client_open(self, client: ClientConn) -> bool:
        if len(self.clients) >= self.config.router.max_clients:
            self.rejected_connections += 1
            return False
        self.total_connections += 1
        self.clients[client.session.id] = client  # type: ignore[union-attr]
        return True

    def on_client_close(self, client: ClientConn) -> None:
        if client.session is not None:
            self.clients.pop(client.session.id, None)

    def sessions(self) -> list[Session]:
        return [c.session for c in self.clients.values() if c.session is not None]

    def info_head(self) -> str:
        return router_info_section(
            {
                "router_version": __version__,
                "speedups": implementation(),  # "c": slotwarden.resp._speedups is built and used
                "uptime_in_seconds": int(time.time() - self.started),
                "listen": str(self.bound or self.listen),
                "connected_clients": len(self.clients),
                "total_connections_received": self.total_connections,
                "rejected_connections": self.rejected_connections,
                "topology_epoch": self.route.slotmap.epoch,
                "shards": len(self.route.slotmap.shards),
                "shards_up": sum(1 for n in self.route.masters if n.is_up()),
            }
        )

    # ------------------------------------------------------------ topology

    def apply_topology(self, slotmap: SlotMap, source: str, kind: str = "watch") -> bool:
        """Adopt ``slotmap`` if its epoch is higher than the current one.
        ``kind`` (push, watch, reload) is for the metrics."""
        current = self.route.slotmap
        if not slotmap.supersedes(current):
            self.stats.topology_update(kind, False)
            return False
        self.stats.topology_update(kind, True)
        changes = [
            f"{new.name} {old.master}->{new.master}"
            for old, new in zip(current.shards, slotmap.shards, strict=False)
            if old.name == new.name and old.master != new.master
        ]
        self.apply_slotmap(slotmap)
        log.info(
            "topology epoch %d -> %d from %s%s",
            current.epoch,
            slotmap.epoch,
            source,
            (": " + ", ".join(changes)) if changes else "",
        )
        return True

    def apply_config(self, new: ClusterConfig) -> list[str]:
        """Swap in a reloaded config; returns one phrase per change applied."""
        old = self.config
        changes: list[str] = []
        r_old, r_new = old.router, new.router
        if (r_new.listen, r_new.admin) != (r_old.listen, r_old.admin):
            changes.append("router.listen/admin changes need a restart (kept the old ones)")
            r_new = dataclasses.replace(r_new, listen=r_old.listen, admin=r_old.admin)
            new = dataclasses.replace(new, router=r_new)
        for name in (f.name for f in dataclasses.fields(r_new)):
            if getattr(r_new, name) != getattr(r_old, name) and name not in ("listen", "admin"):
                changes.append(f"router.{name} {getattr(r_old, name)} -> {getattr(r_new, name)}")
        try:
            settings = settings_from_config(new)
            users = Users.load(new)
        except SecretError as exc:
            changes.append(f"kept the old credentials and timeouts ({exc})")
            settings, users = self.settings, self.users
        rebuild = (settings.connections, settings.credentials) != (
            self.settings.connections,
            self.settings.credentials,
        )
        self.settings = settings
        self.users = users
        self.config = new
        for node in self.nodes.values():
            node_settings = settings_for_shard(settings, new, node.label)
            node.settings = node_settings
            node.pinned.settings = node_settings
            for conn in node.all_conns():
                conn.settings = node_settings
        if self.watcher is not None and new.sentinel is not None:
            self.watcher.sentinels = [p.listen for p in new.sentinel.peers]
        current = self.route.slotmap
        layout = new.slotmap(current.epoch + 1)
        same_layout = layout.owner == current.owner and layout.shards == current.shards
        if rebuild:
            for node in self.nodes.values():
                node.stop()
            self.nodes.clear()
        if same_layout:
            if rebuild:
                self.apply_slotmap(current)
        elif self.watcher is not None:
            changes.append(
                "slot layout edits are left to the sentinels, which publish them as a new epoch"
            )
            if rebuild:
                self.apply_slotmap(current)
        else:
            self.apply_topology(layout, source=f"{new.path} (reload)", kind="reload")
            changes.append(f"topology epoch {current.epoch} -> {layout.epoch}")
        return changes

    def observe(self, shape: str, t0: float) -> None:
        """A sampled request of routing ``shape`` got its reply (metrics)."""
        hist = self.stats.latency.get(shape)
        if hist is not None:
            hist.observe(self.loop.time() - t0)

    def hint_topology(self) -> None:
        if self.watcher is not None:
            self.watcher.hint()

    def apply_slotmap(self, slotmap: SlotMap) -> None:
        """Swap in a new slot map (and its master nodes) atomically."""
        masters: list[Node] = []
        grace = self.settings.command_timeout
        self.retired = [n for n in self.retired if any(not t.done() for t in n.tasks)]
        for shard in slotmap.shards:
            node = self.nodes.get(shard.master)
            if node is None or node.label != shard.name:
                if node is not None:
                    node.retire(self.loop, grace)
                    self.retired.append(node)
                node = Node(shard.master, shard.name, self.settings, self)
                self.nodes[shard.master] = node
                assert self._tg is not None
                node.start(self._tg.create_task)
            masters.append(node)
        wanted = {shard.master for shard in slotmap.shards}
        for addr in list(self.nodes):
            if addr not in wanted:
                old = self.nodes.pop(addr)
                old.retire(self.loop, grace)
                self.retired.append(old)
        self.route = Route(slotmap, tuple(masters))
        for client in list(self.clients.values()):
            client.on_route_change()  # subscriptions follow their channels' new masters
        self.parking.resend(self.route)

    def park(self, pending: Pending, error: bytes, request: bytes) -> bool:
        """Hold a write a demoted master refused until the new topology (router.parking)."""
        if pending.client.transport is None or self.watcher is None:
            return False  # nobody to tell us the new master: answer the error now
        if pending.sent is not None and pending.sent.retired:
            # the topology already moved on from the node that refused: go now
            self.parking.resend_one(self.route, pending, error, request)
            return True
        deadline = self.loop.time() + self.settings.command_timeout
        self.parking.park(pending, error, request, deadline)
        self.hint_topology()
        return True

    # ------------------------------------------------------------ lifecycle

    async def serve(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then drain and close."""
        self.loop = asyncio.get_running_loop()
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            self.apply_slotmap(self.config.slotmap(0))
            runner = web.AppRunner(admin.make_app(self), access_log=None)
            await runner.setup()
            try:
                await self._start_admin(runner)
                await self._start_watcher(tg)
                server = await self.loop.create_server(
                    lambda: ClientConn(self),
                    self.listen.host,
                    self.listen.port,
                    reuse_address=True,
                    backlog=1024,
                )
                sock = server.sockets[0].getsockname()
                self.bound = Address(self.listen.host, sock[1])
                sweep = tg.create_task(self._sweep(), name="timeout sweep")
                watch = (
                    tg.create_task(self.reloader.watch(), name="config watch")
                    if self.reloader is not None
                    else None
                )
                log.info(
                    "slotwarden router %s listening on %s (admin http://%s), config %s, "
                    "%d shards, topology epoch %d, speedups %s",
                    __version__, self.bound, self.admin_bound, self.config.path,
                    len(self.route.masters), self.route.slotmap.epoch, implementation(),
                )  # fmt: skip
                self.ready.set()
                await stop.wait()
                server.close()
                await self._drain()
                sweep.cancel()
                if watch is not None:
                    watch.cancel()
                for node in [*self.nodes.values(), *self.retired]:
                    node.stop()
            finally:
                if self.watcher_task is not None:
                    self.watcher_task.cancel()
                await runner.cleanup()
        log.info("router stopped")

    async def _start_admin(self, runner: web.AppRunner) -> None:
        addr = self.config.router.admin
        family = socket.AF_INET6 if ":" in addr.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((addr.host, addr.port))
        except OSError:
            sock.close()
            raise
        await web.SockSite(runner, sock).start()
        self.admin_bound = Address(addr.host, sock.getsockname()[1])

    async def _start_watcher(self, tg: asyncio.TaskGroup) -> None:
        sc = self.config.sentinel
        self.watcher_task = None
        if sc is None or not sc.peers:
            return
        if not self.secret:
            log.warning(
                "no shared secret (%s / sentinel.secret_file): not watching the sentinels; "
                "the topology stays as in %s",
                sc.secret_env,
                self.config.path,
            )
            return
        self.watcher = TopologyWatcher(self, [p.listen for p in sc.peers], self.secret)
        await self.watcher.start()
        self.watcher_task = tg.create_task(self.watcher.run(), name="topology watcher")

    async def _drain(self) -> None:
        deadline = time.monotonic() + self.config.router.drain_timeout_ms / 1000
        while any(c.fifo for c in self.clients.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for client in list(self.clients.values()):
            if client.transport is not None:
                client.transport.close()

    async def _sweep(self) -> None:
        """Abort backend connections whose replies are overdue."""
        period = min(0.1, self.settings.command_timeout / 4)
        while True:
            await asyncio.sleep(period)
            now = self.loop.time()
            for node in list(self.nodes.values()):
                for conn in node.all_conns():
                    conn.check_timeout(now)
            self.parking.expire(now)


def _install_uvloop() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


async def _run(router: Router) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    if router.reloader is not None:
        reloader = router.reloader
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGHUP, lambda: reloader.reload("SIGHUP"))
    await router.serve(stop)


def main(config_path: str, listen: str | None = None) -> int:
    """Run the router in the foreground until SIGTERM/SIGINT. Returns the exit code."""
    try:
        config = load(config_path)
        listen_addr = Address.parse(listen) if listen else None
    except ConfigError as exc:
        print(f"{exc.source}: {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"--listen: {exc}", file=sys.stderr)
        return 2
    try:
        secret = read_secret(config)
        router = Router(config, listen_addr, secret)
    except SecretError as exc:
        print(f"router: {exc}", file=sys.stderr)
        return 1
    impl = _install_uvloop()
    log.info("event loop: %s", impl)
    try:
        asyncio.run(_run(router))
    except OSError as exc:
        log.error("router cannot start: %s", exc)
        return 1
    return 0
