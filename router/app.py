"""The router process, wired: builds every part, starts them in one TaskGroup, drains at the end.

`Router` is the composition root and nothing else: it owns no routing
decision and no connection logic. It builds

    RunningConfig ─► Clients, RouteTable (+ ParkingLot), RouterReloader, metrics,
                     ConfigWrites (CONFIG SET on every node, told of each slot map)
    LoopTurn, RouterStats ─► the ports of every connection (router.wire.ports)

plugs them into the connections (`ClientPorts` for each client connection,
`BackendPorts` for each backend connection, through the route table), and
runs them: the admin HTTP endpoint, the topology watcher, the listening
socket, the timeout sweep and the config watch, every background task in
the TaskGroup of `Router.serve`. With cluster.yaml ``tls:`` the client
listener, the admin endpoint and the watcher's calls use the SSL contexts of
`slotwarden.cluster.tls`. As one worker of ``router.workers`` > 1 (a
`router.control.workers.WorkerRole`) it listens with SO_REUSEPORT, serves its
admin API on a unix socket for the supervisor, strides its client ids and
starts from the supervisor's latest slot map.

Invariant: after `serve` returns, no task it started is running and every
client was given ``drain_timeout_ms`` to receive the replies it was owed.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from router.control.admin import Admin, make_app
from router.control.clients import Clients
from router.control.config_set import ConfigWrites
from router.control.listen import bind_tcp, cannot_listen
from router.control.metrics import RouterStats, make_registry
from router.control.parking import ParkingLot
from router.control.reload import RouterReloader
from router.control.routes import RouteTable
from router.control.running import RunningConfig
from router.control.serverinfo import ServerInfo
from router.control.tracking_metrics import TrackingCollector
from router.control.watch import TopologyWatcher
from router.control.workers import WorkerRole, initial_slotmap, start_admin
from router.wire.client import ClientConn, ClientPorts
from router.wire.hot import implementation
from router.wire.tracking import Tracker
from router.wire.turn import LoopTurn
from slotwarden import __version__
from slotwarden.cluster.config import ClusterConfig
from slotwarden.cluster.tls import (
    client_listener_context,
    http_client_context,
    http_scheme,
    http_server_context,
)
from slotwarden.cluster.topology import Address

log = logging.getLogger("slotwarden.router")


class Router:
    def __init__(
        self,
        config: ClusterConfig,
        listen: Address | None = None,
        secret: str | None = None,
        worker: WorkerRole | None = None,  # one of router.workers (router.control.workers)
    ) -> None:
        self.running = RunningConfig.load(config)  # raises SecretError
        self.worker = worker
        self.secret = secret
        self.listen = listen or config.router.listen
        self.turn = LoopTurn()
        self.stats = RouterStats()
        self.clients = Clients(self.running)
        if worker is not None:
            self.clients.id_stride, self.clients.id_base = worker.client_ids()
        self.routes = RouteTable(self.running, self.turn, self.stats, self.clients, ParkingLot())
        self.config_writes = ConfigWrites(self.running, self.routes, self.turn)
        self.routes.on_slotmap = self.config_writes.on_slotmap
        self.reloader = (
            RouterReloader(config.path, self.running, self.routes) if config.path else None
        )
        self.registry = make_registry(
            self.stats, self.running, self.clients, self.routes, self.reloader
        )
        self.server_info = ServerInfo(
            self.running, self.clients, self.stats, self.port, self.router_section
        )
        self.config_writes.on_resetstat = self.server_info.resetstat
        self.tracker = Tracker(self.routes, self.running, self.turn, self.clients.by_id.get)
        self.routes.on_route = self.tracker.on_route  # flushes of the shards a route changes
        self.server_info.tracking = self.tracker.info  # INFO tracking_clients ...
        self.registry.register(TrackingCollector(self.tracker))  # its metrics
        self.client_ports = ClientPorts(
            routes=self.routes,
            running=self.running,
            turn=self.turn,
            stats=self.stats,
            parker=self.routes,
            clients=self.clients,
            info_head=self.server_info.facts,
            config_writes=self.config_writes,
            tracker=self.tracker,
        )
        self.started = time.time()
        self.bound: Address | None = None
        self.admin_bound: Address | None = None
        self.watcher: TopologyWatcher | None = None
        self.ready = asyncio.Event()
        tls = config.tls  # TLS contexts, built once (SecretError if a file cannot be loaded)
        self.client_ssl = client_listener_context(tls)
        self.admin_ssl = http_server_context(tls)
        self.sentinel_ssl = http_client_context(tls)
        self.scheme = http_scheme(tls)

    def new_client(self) -> ClientConn:
        """A client connection (the listening socket's protocol factory)."""
        return ClientConn(self.client_ports)

    def port(self) -> int:
        """The port clients connect to (INFO tcp_port)."""
        return (self.bound or self.listen).port

    def router_section(self) -> dict[str, object]:
        """The ``# Router`` section of INFO (the rest: router.control.serverinfo)."""
        route = self.routes.route
        received, rejected = self.server_info.connections()  # since CONFIG RESETSTAT
        return {
            "router_version": __version__,
            "speedups": implementation(),  # "c": the C speedups and hot path are built and used
            "uptime_in_seconds": int(time.time() - self.started),
            "listen": str(self.bound or self.listen),
            "connected_clients": len(self.clients.by_id),
            "total_connections_received": received,
            "rejected_connections": rejected,
            "topology_epoch": route.slotmap.epoch,
            "shards": len(route.slotmap.shards),
            "shards_up": sum(1 for n in route.masters if n.is_up()),
            "migrating_slots": sum(m.count() for m in route.slotmap.migrations),
            "keys_moved": self.stats.keys_moved,
            # 0: no sentinel answered for 30 s (or none is watched): router.control.watch
            "sentinels_reachable": int(self.watcher is not None and self.watcher.reachable()),
        }

    # ------------------------------------------------------------ lifecycle

    async def serve(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then drain and close."""
        loop = asyncio.get_running_loop()
        config = self.running.config
        watcher_task: asyncio.Task[None] | None = None
        async with asyncio.TaskGroup() as tg:
            self.routes.attach(tg)
            self.config_writes.attach(tg)
            self.routes.apply_slotmap(initial_slotmap(self.worker, config))
            admin = Admin(self.routes, self.reloader, self.stats, self.registry, self.secret)
            runner = web.AppRunner(make_app(admin), access_log=None)
            await runner.setup()
            try:
                await self._start_admin(runner)
                watcher_task = await self._start_watcher(tg)
                try:
                    server = await loop.create_server(
                        self.new_client,
                        self.listen.host,
                        self.listen.port,
                        reuse_address=True,
                        reuse_port=self.worker is not None,  # beside the other workers
                        backlog=1024,
                        **self._listen_tls(),
                    )
                except OSError as exc:
                    raise cannot_listen(self.listen, exc) from None
                sock = server.sockets[0].getsockname()
                self.bound = Address(self.listen.host, sock[1])
                sweep = tg.create_task(self.routes.sweep(), name="timeout sweep")
                watch = (
                    tg.create_task(self.reloader.watch(), name="config watch")
                    if self.reloader is not None
                    else None
                )
                log.info(
                    "slotwarden router %s listening on %s%s (admin %s://%s), config %s, "
                    "%d shards, topology epoch %d, speedups %s",
                    __version__, self.bound, " (TLS)" if self.client_ssl else "",
                    self.scheme, self.admin_bound, config.path,
                    len(self.routes.route.masters), self.routes.route.slotmap.epoch,
                    implementation(),
                )  # fmt: skip
                self.ready.set()
                if self.worker is not None:
                    self.worker.announce()
                await stop.wait()
                server.close()
                await self.clients.drain(self.running.config.router.drain_timeout_ms / 1000)
                sweep.cancel()
                if watch is not None:
                    watch.cancel()
                self.routes.stop()
                self.tracker.close()
            finally:
                if watcher_task is not None:
                    watcher_task.cancel()
                await runner.cleanup()
        log.info("router stopped")

    def _listen_tls(self) -> dict[str, object]:
        """TLS arguments of the client listener (tls.clients); a handshake is bounded."""
        if self.client_ssl is None:
            return {}
        timeout = self.running.config.router.command_timeout_ms / 1000
        return {"ssl": self.client_ssl, "ssl_handshake_timeout": timeout}

    async def _start_admin(self, runner: web.AppRunner) -> None:
        if self.worker is not None:  # the supervisor serves router.admin
            await start_admin(runner, self.worker)
            self.admin_bound = self.worker.admin
            return
        addr = self.running.config.router.admin
        sock = bind_tcp(addr, " (router.admin)")
        await web.SockSite(runner, sock, ssl_context=self.admin_ssl).start()
        self.admin_bound = Address(addr.host, sock.getsockname()[1])

    async def _start_watcher(self, tg: asyncio.TaskGroup) -> asyncio.Task[None] | None:
        """Watch the sentinels (if configured, with the shared secret); the watch task."""
        config = self.running.config
        sc = config.sentinel
        if sc is None or not sc.peers:
            return None
        if not self.secret:
            log.warning(
                "no shared secret (%s / sentinel.secret_file): not watching the sentinels; "
                "the topology stays as in %s",
                sc.secret_env,
                config.path,
            )
            return None
        watcher = TopologyWatcher(
            self.routes, [p.listen for p in sc.peers], self.secret, self.admin_bound,
            ssl=self.sentinel_ssl,
        )  # fmt: skip
        self.watcher = watcher
        self.routes.on_hint = watcher.hint
        if self.reloader is not None:
            self.reloader.watcher = watcher
        await watcher.start()
        return tg.create_task(watcher.run(), name="topology watcher")
