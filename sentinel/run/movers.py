"""Which migrations this sentinel moves, and what it knows of the others' progress.

Owns `Movers`: one `sentinel.act.mover.MigrationMover` task per migration of
the adopted topology while this sentinel is the mover (the lowest id among
those it sees alive, `sentinel.decide.migration.mover_of`), started and
stopped by `Movers.sync`, which the run cycle calls every turn (so a new
topology or a change of the alive set takes effect within one probe
interval). It is the movers' `MoverHost`: the latest topology, the
``sentinel.migration`` settings and the router's backend credentials of the
moment (a reload changes them), the one rate-limit bucket all its migrations
share, the events, and `Movers.router_epochs` - the
union of this sentinel's registered routers (`GET /routers` serves them,
`local_routers`) and every live peer's, each router behind pushed the
topology again. A live peer that does not answer counts as a router of
unknown epoch (nothing moves until it answers).

``GET /status`` ``"migrations"`` (`Movers.status`): the mover's own progress;
a sentinel that is not the mover shows what the mover's ``/status`` said
(asked every 2 s) or the bare slots/from/to with state "moving".
`Movers.stats` holds the counters ``GET /metrics`` exposes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Mapping
from typing import Any, Protocol, TypeVar

from sentinel.act.mover import MigrationMover
from sentinel.act.peers import PeerClient
from sentinel.decide.migration import (
    MoverStats,
    TokenBucket,
    merge_routers,
    mover_of,
    unknown_status,
)
from sentinel.decide.model import Event, PeerOpinion, Timing
from sentinel.run.events import EventLog
from slotwarden.cluster.config import ClusterConfig, MigrationConfig
from slotwarden.cluster.errors import SecretError
from slotwarden.cluster.secrets import BackendCredentials, backend_credentials
from slotwarden.cluster.tls import redis_py_kwargs
from slotwarden.cluster.topology import Address, Migration, SlotMap

log = logging.getLogger("sentinel.movers")

PEER_STATUS_EVERY = 2.0  # a non-mover asks the mover's /status this often
ASK_TIMEOUT = 1.0

T = TypeVar("T")


class MoversOwner(Protocol):
    """What `Movers` reads of its `sentinel.run.loop.Sentinel`."""

    me: str
    config: ClusterConfig
    timing: Timing
    peers: dict[str, Address]
    opinions: dict[str, PeerOpinion]
    routers: dict[Address, float]
    router_epochs: dict[Address, int]
    events: EventLog
    client: PeerClient | None

    @property
    def topology(self) -> SlotMap: ...
    def clock(self) -> float: ...
    def finish_migration(self, migration: Migration) -> None: ...
    def spawn(self, coro: Coroutine[Any, Any, T], name: str | None = None) -> asyncio.Task[T]: ...


class Movers:
    def __init__(self, owner: MoversOwner) -> None:
        self.owner = owner
        self.me = owner.me
        self.stats = MoverStats()
        self.tasks: dict[Migration, tuple[MigrationMover, asyncio.Task[None]]] = {}
        self.since: dict[Migration, int] = {}  # the epoch we first saw each migration in
        self.started: dict[Migration, float] = {}
        self.mover: str | None = None
        self.heard: dict[str, int] = {}  # routers' epochs learned by our own pushes
        self.peer_view: list[dict[str, object]] = []
        self.peer_view_at = -1e9
        self.asking: asyncio.Task[None] | None = None
        self._creds: tuple[ClusterConfig, dict[str, BackendCredentials | None]] | None = None
        self._bucket: TokenBucket | None = None
        self._bucket_for = (-1, -1)

    # -- MoverHost --------------------------------------------------------------------

    def clock(self) -> float:
        return self.owner.clock()

    def topology_now(self) -> SlotMap:
        return self.owner.topology

    def settings(self) -> MigrationConfig:
        sc = self.owner.config.sentinel
        return sc.migration if sc is not None else MigrationConfig()

    def bucket(self) -> TokenBucket:
        """The rate limit shared by every migration this sentinel moves (rebuilt when a
        reload changes ``keys_per_second`` or ``batch_keys``)."""
        cfg = self.settings()
        if self._bucket is None or self._bucket_for != (cfg.keys_per_second, cfg.batch_keys):
            self._bucket = TokenBucket(cfg.keys_per_second, cfg.batch_keys, self.clock())
            self._bucket_for = (cfg.keys_per_second, cfg.batch_keys)
        return self._bucket

    def credentials(self, shard: str) -> BackendCredentials | None:
        """The router's backend user for ``shard`` (its own ``backend:``, else the
        cluster's), read once per config (a reload re-reads)."""
        config = self.owner.config
        if self._creds is None or self._creds[0] is not config:
            table: dict[str, BackendCredentials | None] = {}
            try:
                table[""] = backend_credentials(config.backend)
                for s in config.shards:
                    if s.backend is not None:
                        table[s.name] = backend_credentials(s.backend)
            except SecretError as exc:
                log.warning("mover: backend credentials: %s", exc)
            self._creds = (config, table)
        table = self._creds[1]
        return table.get(shard, table.get(""))

    def redis_tls(self) -> dict[str, Any]:
        return redis_py_kwargs(self.owner.config.tls)

    def emit(self, event: Event) -> None:
        self.owner.events.emit(event)

    def finish_migration(self, migration: Migration) -> None:
        self.owner.finish_migration(migration)

    def local_routers(self) -> dict[str, int | None]:
        """Our registered routers and the epoch each last reported (``GET /routers``)."""
        o = self.owner
        return {str(r): o.router_epochs.get(r) for r in o.routers}

    def fresh_peers(self, now: float) -> list[str]:
        window = max(3.0, 6 * self.owner.timing.probe_interval)
        return [pid for pid, op in self.owner.opinions.items() if now - op.at <= window]

    async def router_epochs(self) -> dict[str, int | None]:
        """Every router any live sentinel knows, with the highest epoch heard from it;
        the ones behind our topology are pushed it (their answers count)."""
        o = self.owner
        client = o.client
        views: list[Mapping[str, int | None]] = [self.local_routers()]
        if client is not None:
            alive = [pid for pid in self.fresh_peers(self.clock()) if pid in o.peers]
            answers = await asyncio.gather(
                *(client.routers(o.peers[pid], ASK_TIMEOUT) for pid in alive)
            )
            for pid, answer in zip(alive, answers, strict=True):
                views.append(answer if answer is not None else {f"(sentinel {pid})": None})
        merged = merge_routers(*views, self.heard)
        topo = o.topology
        behind = [a for a, e in merged.items() if (e is None or e < topo.epoch) and a[0] != "("]
        if client is not None and behind:
            pushed = await asyncio.gather(*(self._push(client, a, topo) for a in behind))
            for addr, epoch in zip(behind, pushed, strict=True):
                if epoch is not None:
                    self.heard[addr] = max(epoch, self.heard.get(addr, epoch))
            merged = merge_routers(merged, self.heard)
        return merged

    async def _push(self, client: PeerClient, addr: str, topo: SlotMap) -> int | None:
        try:
            target = Address.parse(addr)
        except ValueError:
            return None
        answer = await client.push(target, topo, ASK_TIMEOUT)
        epoch = answer.get("epoch") if answer is not None else None
        return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None

    # -- the run cycle ----------------------------------------------------------------

    def sync(self) -> None:
        """Start a mover for each migration of the topology while we are the mover;
        stop the others (a migration gone from the topology, or another is the mover)."""
        now = self.clock()
        topo = self.owner.topology
        current = set(topo.migrations)
        for m in list(self.since):
            if m not in current:
                del self.since[m]
        for m in current:
            self.since.setdefault(m, topo.epoch)
        self.mover = mover_of(self.me, self.fresh_peers(now)) if current else None
        mine = current if self.mover == self.me else set()
        for m in list(self.tasks):
            if m not in mine:
                mover, task = self.tasks.pop(m)
                task.cancel()
                if m not in current and mover.progress.state == "finishing":
                    self.stats.last_duration = now - mover.started
        for m in mine - set(self.tasks):
            mover = MigrationMover(self, m, self.since[m])
            task = self.owner.spawn(self._guard(mover), name=f"mover {m.ranges()}")
            self.tasks[m] = (mover, task)
        if current and self.mover != self.me and now - self.peer_view_at >= PEER_STATUS_EVERY:
            if self.asking is None or self.asking.done():
                self.peer_view_at = now
                self.asking = self.owner.spawn(self._ask_mover(), name="mover status")

    async def _guard(self, mover: MigrationMover) -> None:
        """A mover's unexpected error is logged and it starts again, never the sentinel's."""
        while True:
            try:
                await mover.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("mover of %s failed; restarting it", mover.label)
                await asyncio.sleep(1.0)

    async def _ask_mover(self) -> None:
        o = self.owner
        addr = o.peers.get(self.mover or "")
        if addr is None or o.client is None:
            return
        answer = await o.client.call("GET", addr, "/status", ASK_TIMEOUT)
        view = answer.get("migrations") if isinstance(answer, dict) else None
        if isinstance(view, list):
            self.peer_view = [e for e in view if isinstance(e, dict)]

    def status(self) -> list[dict[str, object]]:
        """``GET /status`` ``"migrations"``: one entry per migration of the topology."""
        now = self.clock()
        out = []
        for m in self.owner.topology.migrations:
            since = self.since.get(m, self.owner.topology.epoch)
            if m in self.tasks:
                out.append(self.tasks[m][0].progress.to_status(now))
                continue
            told = [
                e
                for e in self.peer_view
                if (e.get("slots"), e.get("from"), e.get("to")) == (m.ranges(), m.source, m.target)
            ]
            out.append(told[0] if told else unknown_status(m, since, self.mover))
        return out

    async def stop(self) -> None:
        for _, task in self.tasks.values():
            task.cancel()
        for _, task in self.tasks.values():
            with contextlib.suppress(BaseException):
                await task
        self.tasks.clear()
