"""One sentinel process: the run cycle (snapshot -> decide -> act) and its tasks.

Owns `Sentinel` and its live state: the probers, the peers' latest
opinions, the persisted epoch/vote/topology, the routers to push to, the
running config (swapped as a whole by `Sentinel.apply_config`, which
`sentinel.run.reload` calls) and the counters (`stats`,
`sentinel.run.stats`) and the movers of migrating slots (`sentinel.run.movers`,
synced every cycle). It holds one `sentinel.run.leader.Leader`, which owns
everything about leading (role, elections, failovers, edits to publish);
the Sentinel serves as its `LeaderHost`. Every background task belongs to
the TaskGroup in `Sentinel.run`; probers and peer pollers are tracked so a
reload can stop the ones it no longer needs. cluster.yaml's ``redis:``
settings are applied to the nodes by its `sentinel.act.redisconf` task.
Decisions come from the pure modules (`sentinel.decide`); this module
gathers the snapshot, awaits I/O, and logs one sentence per transition
(sdown, odown, vote, convert-to-replica, topology). Invariants: the
persisted state is saved before a vote is answered or a new topology is
served; a topology is adopted only with a higher epoch, and one from
outside (a peer, a POST) only once `Sentinel.vet` passed it (the nodes
cluster.yaml lists, a bounded epoch jump: slotwarden.cluster.trust); only
the elected leader of an epoch publishes a topology at that epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from sentinel.act.actuator import Actuator
from sentinel.act.peers import PeerClient
from sentinel.act.probe import Prober
from sentinel.act.redisconf import RedisConfigApplier
from sentinel.act.state import Persisted, StateStore, answer_vote
from sentinel.decide import election, failover, reconfigure
from sentinel.decide.detector import Flags, detect
from sentinel.decide.election import VoteState
from sentinel.decide.model import (
    Event,
    PeerOpinion,
    Snapshot,
    Timing,
)
from sentinel.run.events import EventLog
from sentinel.run.leader import Leader
from sentinel.run.movers import Movers
from sentinel.run.reload import SentinelReloader
from sentinel.run.stats import SentinelStats
from slotwarden.cluster.config import ClusterConfig
from slotwarden.cluster.topology import Address, Migration, SlotMap
from slotwarden.cluster.trust import TopologyRefused, check_epoch, check_nodes

log = logging.getLogger("sentinel")

ROUTER_TTL = 600.0  # a router that registered via GET /topology?router= is pushed to this long
PUSH_RETRY = 2.0  # routers behind our epoch are retried this often
MAX_LONG_POLL = 30.0

T = TypeVar("T")


class Sentinel:
    """One sentinel: its live state, the run cycle, and the `LeaderHost` its `Leader` uses."""

    def __init__(
        self,
        config: ClusterConfig,
        me: str,
        secret: str,
        *,
        routes: Mapping[Address, Address] | None = None,
        step_pause: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        sc = config.sentinel
        if sc is None:
            raise ValueError("the config has no sentinel section")
        peers = {p.id: p for p in sc.peers}
        if me not in peers:
            raise ValueError(f"sentinel id {me!r} is not among sentinel.peers ({', '.join(peers)})")
        self.config = config
        self.me = me
        self.secret = secret
        self.listen = peers[me].listen
        self.peers = {pid: p.listen for pid, p in peers.items() if pid != me}
        self.all_ids = tuple(peers)
        self.quorum = sc.quorum
        self.timing = Timing.from_ms(
            sc.down_after_ms, sc.probe_interval_ms, sc.failover_timeout_ms, sc.max_replica_lag_ms
        )
        self.routes = dict(routes or {})
        self.clock = clock
        self.name = f"slotwarden-sentinel-{me}"
        self.store = StateStore(sc.state_dir, me)
        loaded = self.store.load()
        topology = loaded.topology or config.slotmap(0)
        votes = election.observe_epoch(loaded.votes, topology.epoch)
        self.state = Persisted(votes, topology)
        self.topology_json = _encode(topology)  # GET /topology must stay cheap
        self.topology_at = clock()  # when the topology's epoch was adopted (see detector)
        self.actuator = Actuator(self.name, self.timing.step_timeout, self.routes)
        self.probers: dict[Address, Prober] = {}
        self.probe_tasks: dict[Address, asyncio.Task[None]] = {}
        self.peer_tasks: dict[str, asyncio.Task[None]] = {}
        self.flags = Flags()
        self.opinions: dict[str, PeerOpinion] = {}
        self.repointing: dict[Address, float] = {}  # reconcile: node -> when last sent
        self.routers: dict[Address, float] = {config.router.admin: float("inf")}
        self.router_epochs: dict[Address, int] = {}
        # when each router last registered or answered a push: a migration waits only for
        # the routers heard within ROUTER_ACK_TTL (sentinel.run.movers.local_routers)
        self.router_heard: dict[Address, float] = {}
        self.changed = asyncio.Event()  # replaced on every new topology
        self.wake_pollers = asyncio.Event()
        self.events = EventLog()  # one sentence per transition, logged and streamed
        self.client: PeerClient | None = None
        self.tg: asyncio.TaskGroup | None = None
        self.stats = SentinelStats()
        self._last_refusal = ""  # the last refused topology's reason (logged once)
        self.cycle_done_at = clock()  # when decide_once last completed (GET /health reads it)
        self.redisconf = RedisConfigApplier(  # cluster.yaml redis: on every node
            me, self.name, lambda: (self.config, self.topology), self.opinions,
            self.events.emit, self.routes, clock,
        )  # fmt: skip
        self.leader = Leader(
            self,
            me,
            actuator=self.actuator,
            events=self.events,
            stats=self.stats,
            clock=clock,
            rng=rng or random.Random(),
            step_pause=step_pause,
        )
        self.reloader = (
            SentinelReloader(config.path, me, self.apply_config, self.stats, lambda: self.topology)
            if config.path
            else None
        )
        self.movers = Movers(self)  # the background movers of migrating slots

    def reload_if_changed(self) -> None:
        """Reload cluster.yaml now if it changed since the last reload (a leader about to
        publish an edit: `sentinel.run.leader.Leader._publish_edit`)."""
        if self.reloader is not None and self.reloader.file.changed():
            self.reloader.reload("file changed, before publishing")

    # -- read side ---------------------------------------------------------------

    @property
    def topology(self) -> SlotMap:
        assert self.state.topology is not None
        return self.state.topology

    @property
    def votes(self) -> VoteState:
        return self.state.votes

    def snapshot(self) -> Snapshot:
        return Snapshot(
            now=self.clock(),
            me=self.me,
            topology=self.topology,
            nodes={a: p.obs for a, p in self.probers.items()},
            opinions=dict(self.opinions),
            topology_at=self.topology_at,
        )

    async def wait_topology(self, after: int, timeout: float) -> SlotMap:
        """The topology as soon as its epoch is above ``after``, or at ``timeout``."""
        deadline = self.clock() + min(max(timeout, 0.0), MAX_LONG_POLL)
        while self.topology.epoch <= after:
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return self.topology

    def register_router(self, addr: Address, epoch: int | None = None) -> None:
        """Push to ``addr`` from now on; ``epoch`` is the one it says it has."""
        new = addr not in self.routers
        if epoch is not None:
            self.router_epochs[addr] = epoch
        self.router_heard[addr] = self.clock()
        if self.routers.get(addr) != float("inf"):
            self.routers[addr] = self.clock() + ROUTER_TTL
        if new:
            log.info("router %s registered for topology pushes", addr)

    # -- state changes ---------------------------------------------------------------

    def advance_migration(self, migration: Migration) -> None:
        """Every router runs the epoch of the ``preparing`` ``migration``: publish, at an
        epoch, the map where it is ``moving``."""
        self.leader.request_advance(migration)

    def finish_migration(self, migration: Migration) -> None:
        """The mover emptied ``migration``'s source: publish, at an epoch, the map without it."""
        self.leader.request_finish(migration)

    def save(self, state: Persisted) -> None:
        self.store.save(state)
        self.state = state

    def save_votes(self, votes: VoteState) -> None:
        """Persist ``votes`` (with our topology) before anyone is told about them."""
        self.save(replace(self.state, votes=votes))

    def note_epoch(self, epoch: int) -> None:
        """Move the current epoch forward to ``epoch`` in memory (saved with the next change)."""
        self.state = replace(self.state, votes=election.observe_epoch(self.votes, epoch))

    def known_epoch(self) -> int:
        """The highest epoch we know of: our topology's, our vote epoch, and the vote and
        topology epochs cluster.yaml's other sentinels report (`poll_peer`)."""
        epochs = [self.topology.epoch, self.votes.epoch]
        for op in self.opinions.values():
            epochs += [op.epoch, op.topology_epoch]
        return max(epochs)

    def vet(self, topology: SlotMap, source: str) -> TopologyRefused | None:
        """None if ``topology`` (from a peer or a POST) names only nodes our cluster.yaml
        lists for their shards and its epoch is at most `MAX_EPOCH_JUMP` above
        `known_epoch`, else why not, logged once per new reason."""
        try:
            check_nodes(topology, self.config, self.topology)
            check_epoch(topology.epoch, self.known_epoch())
        except TopologyRefused as exc:
            if str(exc) != self._last_refusal:
                self._last_refusal = str(exc)
                log.warning("topology epoch %d from %s refused: %s", topology.epoch, source, exc)
            return exc
        return None

    def adopt(self, topology: SlotMap, source: str, check: bool = True) -> bool:
        """Take ``topology`` if its epoch is higher than ours; persist it first. ``check``:
        it comes from outside and must pass `vet` (False: our own publication)."""
        if not topology.supersedes(self.topology):
            return False
        if check and self.vet(topology, source) is not None:
            return False
        old = self.topology
        self.save(Persisted(election.observe_epoch(self.votes, topology.epoch), topology))
        self.topology_json = _encode(topology)
        self.topology_at = self.clock()
        what = reconfigure.describe(old, topology)
        self.events.emit(
            Event(
                "topology",
                f"topology epoch {topology.epoch} adopted from {source} (was {old.epoch}; "
                f"{'; '.join(what) or 'same layout'})",
                epoch=topology.epoch,
            )
        )
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()
        self.leader.on_topology(topology)
        self.sync_watches()
        return True

    def on_vote_request(self, epoch: int, candidate: str) -> dict[str, Any]:
        before = self.votes
        self.state, granted = answer_vote(self.store, self.state, epoch, candidate)
        if self.votes != before:
            if granted and before.voted_epoch != epoch:
                self.stats.votes_cast[candidate] += 1
            self.leader.on_voted(candidate, epoch_raised=self.votes.epoch > before.epoch)
            self.events.emit(
                Event(
                    "vote",
                    f"voted for {candidate} as leader of epoch {epoch}",
                    epoch=epoch,
                )
            )
        return {
            "granted": granted,
            "epoch": self.votes.epoch,
            "voted_for": self.votes.voted_for if self.votes.voted_epoch == epoch else None,
            "topology": self.topology.to_dict(),
        }

    def apply_config(self, new: ClusterConfig) -> list[str]:
        """Swap in ``new`` (valid and compatible, see `sentinel.run.reload`) as a whole;
        one phrase per change. What needs a restart keeps its running value."""
        old = self.config
        osc, nsc = old.sentinel, new.sentinel
        assert osc is not None and nsc is not None
        changes: list[str] = []
        # -- needs a restart: keep what is running, say so
        kept = {}
        for name in ("state_dir", "secret_env", "secret_file"):
            if getattr(nsc, name) != getattr(osc, name):
                changes.append(f"sentinel.{name} changes need a restart (kept the old one)")
                kept[name] = getattr(osc, name)
        peers = {p.id: p for p in nsc.peers}
        if peers[self.me].listen != self.listen:
            changes.append(
                f"this sentinel's listen address changes need a restart (kept {self.listen})"
            )
            peers[self.me] = replace(peers[self.me], listen=self.listen)
        nsc = replace(nsc, peers=tuple(peers.values()), **kept)
        new = replace(new, sentinel=nsc)
        # -- timings and quorum
        timings = ("down_after_ms", "probe_interval_ms", "failover_timeout_ms")
        timings += ("max_replica_lag_ms",)
        for name in (*timings, "quorum"):
            if getattr(nsc, name) != getattr(osc, name):
                changes.append(f"sentinel.{name} {getattr(osc, name)} -> {getattr(nsc, name)}")
        lag = nsc.max_replica_lag_ms
        timing = Timing.from_ms(
            nsc.down_after_ms, nsc.probe_interval_ms, nsc.failover_timeout_ms, lag
        )
        self.set_timing(timing)
        self.quorum = nsc.quorum
        # -- peers
        wanted = {pid: p.listen for pid, p in peers.items() if pid != self.me}
        for pid in sorted(set(self.peers) - set(wanted)):
            changes.append(f"sentinel {pid} removed")
            self.stop_peer(pid)
        for pid, addr in sorted(wanted.items()):
            if pid not in self.peers:
                changes.append(f"sentinel {pid} at {addr} added")
            elif self.peers[pid] != addr:
                changes.append(f"sentinel {pid} moved {self.peers[pid]} -> {addr}")
                self.stop_peer(pid)
            else:
                continue
            self.start_peer(pid, addr)
        self.all_ids = tuple(peers)
        # -- the router named in the file
        if new.router.admin != old.router.admin:
            changes.append(f"router.admin {old.router.admin} -> {new.router.admin}")
            self.routers.pop(old.router.admin, None)
            self.routers[new.router.admin] = float("inf")
        self.config = new
        # -- topology: the sentinels publish it as a new epoch
        current = self.topology
        merged = reconfigure.merge(new, current, current.epoch + 1)
        if reconfigure.same_layout(merged, current):
            self.leader.set_reconfigure_pending(False)
        else:
            what = reconfigure.describe(current, merged, new)
            changes.append(
                f"slot layout differs from topology epoch {current.epoch} ({'; '.join(what)}): "
                "asking the sentinels for an epoch to publish it"
            )
            self.leader.set_reconfigure_pending(True)
            self.events.emit(
                Event(
                    "reconfigure-pending",
                    f"cluster.yaml edit to publish after topology epoch {current.epoch}: "
                    + "; ".join(what),
                    epoch=current.epoch,
                )
            )
        self.sync_watches()
        return changes

    # -- the tasks -----------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, T], name: str | None = None) -> asyncio.Task[T]:
        """Run ``coro`` as a task of this sentinel's TaskGroup (it must be running)."""
        assert self.tg is not None
        return self.tg.create_task(coro, name=name)

    def nodes_of(self, topology: SlotMap) -> list[Address]:
        out = []
        for s in topology.shards:
            out += [s.master, *s.replicas]
        return out

    def watch(self, addr: Address) -> None:
        if addr in self.probers or self.tg is None:
            return
        prober = Prober(addr, self.timing, self.name, self.routes.get(addr), self.clock)
        self.probers[addr] = prober
        self.probe_tasks[addr] = self.tg.create_task(prober.run(), name=f"probe {addr}")

    def sync_watches(self) -> None:
        """Probe every node of the topology and of the file, and no other."""
        wanted = self.nodes_of(self.topology) + self.nodes_of(self.config.slotmap(0))
        for addr in wanted:
            self.watch(addr)
        for addr in set(self.probers) - set(wanted):
            del self.probers[addr]
            task = self.probe_tasks.pop(addr, None)
            if task is not None:
                task.cancel()
            self.flags = replace(
                self.flags,
                sdown=self.flags.sdown - {addr},
                demoted=self.flags.demoted - {addr},
                restarted=self.flags.restarted - {addr},
            )
            log.info("no longer watching %s (not in the topology nor the file)", addr)

    def set_timing(self, timing: Timing) -> None:
        self.timing = timing
        self.actuator.timeout = timing.step_timeout
        for prober in self.probers.values():
            prober.timing = timing

    def start_peer(self, pid: str, addr: Address) -> None:
        self.peers[pid] = addr
        if self.tg is not None:
            self.peer_tasks[pid] = self.tg.create_task(
                self.poll_peer(pid, addr), name=f"peer {pid}"
            )

    def stop_peer(self, pid: str) -> None:
        self.peers.pop(pid, None)
        self.opinions.pop(pid, None)
        task = self.peer_tasks.pop(pid, None)
        if task is not None:
            task.cancel()

    async def run(self, serve: Callable[[Sentinel], Awaitable[None]]) -> None:
        """Run until cancelled; ``serve`` runs the HTTP endpoint (see `sentinel.http.api`)."""
        async with PeerClient(self.secret, self.config.tls) as client, asyncio.TaskGroup() as tg:
            self.client = client
            self.tg = tg
            self.sync_watches()
            tg.create_task(serve(self), name="http")
            for pid, addr in list(self.peers.items()):
                self.start_peer(pid, addr)
            tg.create_task(self.push_routers(), name="push")
            tg.create_task(self.redisconf.run(), name="redis config")
            if self.reloader is not None:
                tg.create_task(self.reloader.watch(), name="config watch")
            log.info(
                "sentinel %s starting on %s: %d peers, quorum %d, %d nodes, epoch %d, "
                "topology epoch %d",
                self.me,
                self.listen,
                len(self.peers),
                self.quorum,
                len(self.probers),
                self.votes.epoch,
                self.topology.epoch,
            )
            await self.sync_from_peers()
            self.cycle_done_at = self.clock()  # the stall clock starts with the cycle
            tg.create_task(self.decide_forever(), name="decide")

    async def sync_from_peers(self) -> None:
        """At start, take the newest topology any peer has (bounded wait)."""
        assert self.client is not None
        timeout = max(self.timing.down_after, 0.5)
        answers = await asyncio.gather(
            *(self.client.topology(addr, timeout) for addr in self.peers.values())
        )
        for pid, topo in zip(self.peers, answers, strict=True):
            if topo is not None:
                self.adopt(topo, f"peer {pid} at start")

    async def poll_peer(self, pid: str, addr: Address) -> None:
        """Ask one peer for its opinion; fast while anything is down or a vote holds us
        back (the leader's opinion may free us), slow otherwise."""
        assert self.client is not None
        t = self.timing
        while True:
            answer = await self.client.opinion(addr, timeout=max(t.probe_interval * 3, 0.3))
            if answer is not None:
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    down = frozenset(Address.parse(a) for a in answer.get("down", ()))
                    op = PeerOpinion(
                        pid,
                        self.clock(),
                        down,
                        int(answer.get("epoch", 0)),
                        int(answer.get("topology_epoch", 0)),
                        int(answer.get("led_epoch", 0)),
                    )
                    self.opinions[pid] = op
                    if op.topology_epoch > self.topology.epoch:
                        topo = await self.client.topology(addr, timeout=1.0)
                        if topo is not None:
                            self.adopt(topo, f"peer {pid}")
            busy = (
                self.flags.down
                or any(op.down for op in self.opinions.values())
                or self.leader.held_by is not None  # its opinion frees us (led_epoch)
            )
            interval = t.probe_interval if busy else 5 * t.probe_interval
            self.wake_pollers.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake_pollers.wait(), interval)

    async def push_routers(self) -> None:
        """Push the topology to every known router that is behind our epoch."""
        assert self.client is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), PUSH_RETRY)
            now = self.clock()
            for addr, expiry in list(self.routers.items()):
                if expiry < now:
                    del self.routers[addr]
            topo = self.topology
            behind = [r for r in self.routers if self.router_epochs.get(r, -1) < topo.epoch]
            if not behind or topo.epoch == 0:
                continue
            answers = await asyncio.gather(*(self.client.push(r, topo, 1.0) for r in behind))
            for r, ans in zip(behind, answers, strict=True):
                if ans is not None and isinstance(ans.get("epoch"), int):
                    self.router_epochs[r] = ans["epoch"]
                    self.router_heard[r] = self.clock()
                    log.info(
                        "pushed topology epoch %d to router %s (applied %s, router at %d)",
                        topo.epoch,
                        r,
                        ans.get("applied"),
                        ans["epoch"],
                    )

    async def decide_forever(self) -> None:
        while True:
            self.decide_once()
            self.cycle_done_at = self.clock()
            await asyncio.sleep(self.timing.probe_interval)

    def stalled_for(self) -> float | None:
        """Seconds since the run cycle last completed, if that is too long, else None.

        Too long: more than ``max(5 probe intervals, down_after, 2 s)`` - the
        detector's verdicts are stale by then (``GET /health`` answers 503).
        """
        t = self.timing
        since = self.clock() - self.cycle_done_at
        return since if since > max(5 * t.probe_interval, t.down_after, 2.0) else None

    def decide_once(self) -> None:
        snap = self.snapshot()
        had_down = bool(self.flags.down)
        self.flags, events = detect(self.flags, snap, self.timing, self.quorum)
        for e in events:
            self.events.emit(e)
        if self.flags.down and not had_down:
            self.wake_pollers.set()
        self.leader.maybe_elect(snap.now, self.flags.odown, snap)
        if self.topology_confirmed(snap.now):
            self.reconcile(snap)
        self.movers.sync()

    def topology_confirmed(self, now: float) -> bool:
        """No peer is known to be ahead of us, and a majority (us included) answered lately."""
        fresh = [op for op in self.opinions.values() if now - op.at <= 3.0]
        if any(op.topology_epoch > self.topology.epoch for op in fresh):
            return False
        return len(fresh) + 1 >= len(self.all_ids) // 2 + 1

    def reconcile(self, snap: Snapshot) -> None:
        assert self.tg is not None
        for action, event in failover.reconcile(snap, self.timing, self.leader.busy):
            last = self.repointing.get(action.addr, -1e9)
            if snap.now - last < max(2.0, self.timing.down_after):
                continue
            self.repointing[action.addr] = snap.now
            self.events.emit(event)
            self.tg.create_task(self.actuator.repoint(action.addr, action.master))


def _encode(topology: SlotMap) -> bytes:
    return json.dumps(topology.to_dict()).encode()
