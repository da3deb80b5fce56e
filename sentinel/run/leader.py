"""Leadership: this sentinel's elections, and the failovers and edits it publishes as leader.

Owns `Leader` and all of a leader's state: the election role (moved only
along `sentinel.decide.election.TRANSITIONS`), the election in flight, the
time before which it may not stand again (after a vote for another, a lost
election, an abort), the shards in a failover it leads, whether a
cluster.yaml edit waits to be published, and whose turn it is. Only
`Leader`'s own methods change them; the sentinel reads them for its status
and tells the leader what it saw (`maybe_elect`, `on_voted`, `on_topology`,
`set_reconfigure_pending`).

A round: bump the epoch (persisted) and ask every peer for its vote, then -
with a majority of all sentinels and at least the quorum - plan each
shard's failover with `sentinel.decide.failover`, drive it through the
actuator, and publish one topology at the won epoch. The same election
publishes a cluster.yaml edit (a "reconfigure" action, see
`sentinel.run.reload`): failovers and reconfigures take turns when both
wait. An ODOWN shard no replica of which may be promoted is not stood for
at all: it is refused (`sentinel.run.refusals`), unless an operator forces
a named replica (`Leader.manual` with ``force``). Every outcome is one
logged event (new-epoch, elected, promoted, repoint, switch, reconfigure,
abort, failover-refused, failover-forced); a loss sets a randomized time
before the next attempt, an abort one that doubles with each abort in a
row for the shard (`sentinel.decide.election.abort_backoff`). A vote for
another holds us back for `failover_timeout` unless that leader stops
answering our polls for ``down_after`` (`election.leader_silent`) or its
opinion says it ended that term (`Leader.led_epoch`, `election.term_ended`:
an edit's term ends even with nothing to publish, which no topology tells); as leader
we take each failover step, and publish, only while our lease holds
(`election.lease_holds`: a majority answered within ``down_after`` / 2) and no
higher epoch was seen - otherwise the failover aborts. Steps are
performed by `sentinel.run.steps`. Tasks run in the sentinel's TaskGroup
(`LeaderHost.spawn`).

A leader promotes, repoints and publishes only nodes its cluster.yaml lists
for their shard (`slotwarden.cluster.trust.restrict`), so routers and
sentinels sharing that file accept what it publishes.

Before publishing, the leader asks every peer for its topology and adopts the
newest (`Leader._refresh`), then applies its result on top of that: a failover or an
edit published by another leader at a lower epoch meanwhile is kept (or, if
it touched the same shard, ours aborts), not overwritten.

What the leader needs from the sentinel it works for - the settings of the
moment (a reload changes them), the persisted state, the task group and
the peer client - comes through `LeaderHost`, a Protocol declared here;
the actuator, the event log and the counters are handed in. This module
imports nothing from `sentinel.run.loop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from typing import Any, Protocol, TypeVar

from sentinel.act.actuator import Actuator
from sentinel.act.peers import PeerClient
from sentinel.decide import election, failover, reconfigure
from sentinel.decide.election import ElectionInput, ElectionRole, VoteState
from sentinel.decide.failover import Failover, Step
from sentinel.decide.model import (
    Abort,
    Event,
    PauseWrites,
    Publish,
    Repoint,
    Snapshot,
    Timing,
)
from sentinel.run import publish, steps
from sentinel.run.events import EventLog
from sentinel.run.refusals import Backoff, Refusals
from sentinel.run.stats import SentinelStats
from slotwarden.cluster.config import ClusterConfig
from slotwarden.cluster.topology import Address, Migration, SlotMap
from slotwarden.cluster.trust import TopologyRefused, parse_topology, restrict

log = logging.getLogger("sentinel")

T = TypeVar("T")
Outcome = dict[str, Any]  # the answer to ``POST /failover``: ok, epoch, switched, reason


class LeaderHost(Protocol):
    """The sentinel a `Leader` works for (`sentinel.run.loop.Sentinel`).

    The settings (timing, quorum, the sentinels, the config) are read at each
    use, since a reload swaps them.
    """

    @property
    def timing(self) -> Timing: ...
    @property
    def quorum(self) -> int: ...
    @property
    def all_ids(self) -> tuple[str, ...]: ...  # every configured sentinel, this one included
    @property
    def peers(self) -> Mapping[str, Address]: ...  # the other sentinels: id -> listen address
    @property
    def config(self) -> ClusterConfig: ...
    @property
    def client(self) -> PeerClient | None: ...  # set while the sentinel runs
    @property
    def topology(self) -> SlotMap: ...
    @property
    def votes(self) -> VoteState: ...

    def snapshot(self) -> Snapshot: ...
    def adopt(self, topology: SlotMap, source: str, check: bool = True) -> bool: ...
    def save_votes(self, votes: VoteState) -> None: ...  # persisted before it returns
    def note_epoch(self, epoch: int) -> None: ...  # in memory; saved with the next change
    def reload_if_changed(self) -> None: ...  # cluster.yaml reloaded now if it changed
    def spawn(self, coro: Coroutine[Any, Any, T], name: str | None = None) -> asyncio.Task[T]: ...


class Leader:
    """This sentinel's side of elections, and of the failovers and edits it leads."""

    def __init__(
        self,
        host: LeaderHost,
        me: str,
        *,
        actuator: Actuator,
        events: EventLog,
        stats: SentinelStats,
        clock: Callable[[], float],
        rng: random.Random,
        step_pause: float = 0.0,
    ) -> None:
        self.host = host
        self.me = me
        self.actuator = actuator
        self.events = events
        self.stats = stats
        self.clock = clock
        self.rng = rng
        self.step_pause = step_pause  # a pause after each failover step (tests watch the steps)
        self._role = ElectionRole.FOLLOWER
        self._not_before = 0.0  # no candidacy before this (after a vote, a loss, an abort)
        self._busy: set[str] = set()  # shards in a failover we lead
        self._election: asyncio.Task[Outcome] | None = None
        # A valid cluster.yaml edit whose layout is not published yet (see sentinel.run.reload).
        self._reconfigure_pending = False
        # Migrations the mover emptied, to end in the next epoch we publish (`request_finish`).
        self._finishing: list[Migration] = []
        # Preparing migrations every router has taken, to publish 'moving' (`request_advance`).
        self._advancing: list[Migration] = []
        # failover or reconfigure: they take turns when both wait (a failover first)
        self._last_election = "reconfigure"
        self.refusals = Refusals(events, stats)  # ODOWN shards with no eligible replica
        self._backoff = Backoff()  # aborted attempts in a row, per shard
        # our last vote for another: (candidate, when, hold until) - lifted early if it falls
        # silent (`election.leader_silent`)
        self._vote_hold: tuple[str, float, float] | None = None
        self._vote_hold_epoch = 0  # the epoch of that vote
        self._heard: dict[str, float] = {}  # as leader: peer -> when it last granted/answered
        # the last epoch we led to its end (an edit's, published or not; a failover's that
        # published): told in our opinion, it frees the sentinels that voted for us
        self.led_epoch = 0

    # -- read by the sentinel ---------------------------------------------------------

    @property
    def role(self) -> ElectionRole:
        return self._role

    @property
    def held_by(self) -> str | None:
        """The leader whose term we wait out after voting for it (None: none): its peers
        poll it fast meanwhile, since its opinion may say the term ended."""
        return self._vote_hold[0] if self._vote_hold is not None else None

    @property
    def busy(self) -> frozenset[str]:
        """The shards in a failover we lead (reconcile leaves them alone)."""
        return frozenset(self._busy)

    @property
    def reconfigure_pending(self) -> bool:
        return self._reconfigure_pending

    @property
    def finishing(self) -> tuple[Migration, ...]:
        """Migrations asked to end (`request_finish`) and not published yet."""
        return tuple(self._finishing)

    # -- told by the sentinel ---------------------------------------------------------

    def set_reconfigure_pending(self, pending: bool) -> None:
        """A reload found the file's layout differs from the topology (or no longer does)."""
        self._reconfigure_pending = pending

    def request_finish(self, migration: Migration) -> None:
        """The mover found no key of ``migration`` left on its source: stand for an epoch
        (like an edit) in which it ends. Ignored if the topology no longer has it."""
        if migration in self.host.topology.migrations and migration not in self._finishing:
            self._finishing.append(migration)
            log.info(
                "migration of slots %s %s -> %s is done moving: asking for an epoch to end it",
                migration.ranges(), migration.source, migration.target,
            )  # fmt: skip

    def request_advance(self, migration: Migration) -> None:
        """Every router runs the epoch that published ``migration`` ``preparing``: stand for
        an epoch (like an edit) in which it is ``moving``. Ignored if the topology no
        longer has it preparing."""
        if (
            migration.preparing
            and migration in self.host.topology.migrations
            and migration not in self._advancing
        ):
            self._advancing.append(migration)
            log.info(
                "every router holds slots %s (%s -> %s): asking for an epoch to start moving",
                migration.ranges(), migration.source, migration.target,
            )  # fmt: skip

    def on_topology(self, topology: SlotMap) -> None:
        """``topology`` was adopted: an edit whose layout it already has is no longer pending;
        a refused shard whose master it changed is no longer refused; a migration it no
        longer has is no longer to be ended."""
        self.refusals.on_topology(topology)
        if self._vote_hold is not None and topology.epoch >= self._vote_hold_epoch:
            # the leader we voted for published its epoch: it has finished (a failover
            # publishes after its last step), so waiting for it no longer protects anything
            # and a migration's next step need not wait failover_timeout_ms
            self._vote_hold = None
        self._finishing = [m for m in self._finishing if m in topology.migrations]
        self._advancing = [m for m in self._advancing if m in topology.migrations]
        if self._reconfigure_pending:
            merged = reconfigure.merge(self.host.config, topology, topology.epoch)
            if reconfigure.same_layout(merged, topology):
                self._reconfigure_pending = False
                log.info("topology epoch %d has the edited cluster.yaml layout", topology.epoch)

    def on_voted(self, candidate: str, epoch_raised: bool) -> None:
        """We granted ``candidate`` a vote (persisted): a higher epoch ends our candidacy,
        and a vote for another leaves that leader time to finish before we stand."""
        if epoch_raised and self._role is ElectionRole.CANDIDATE:
            self._role = election.next_role(self._role, ElectionInput.HIGHER_EPOCH)
        if candidate != self.me:
            now = self.clock()
            self._vote_hold = (candidate, now, now + election.wait_after_vote(self.host.timing))
            self._vote_hold_epoch = self.host.votes.epoch

    def maybe_elect(self, now: float, odown: frozenset[str], snap: Snapshot | None = None) -> None:
        """Stand for an epoch if a shard is ODOWN or an edit waits, and nothing holds us back.

        With ``snap``, an ODOWN shard none of whose replicas may be promoted
        (`failover.refusal`) is refused - one event - and no epoch is spent on it.
        """
        refused = self.refusals.review(odown, self._busy, snap, self.host.timing)
        self._backoff.keep_only(odown)
        if self._role is not ElectionRole.FOLLOWER or self._held(now, snap):
            return
        if self._election is not None and not self._election.done():
            return
        shards = sorted(odown - self._busy - refused)
        wants = self._reconfigure_pending or bool(self._finishing) or bool(self._advancing)
        if wants and snap is not None and publish.peers_ahead(self.host.topology, snap.opinions):
            wants = False  # behind a peer's map (one we refused?): never publish over it
        if not shards and not wants:
            return
        if wants and (not shards or self._last_election == "failover"):
            self._last_election = "reconfigure"
            self._role = election.next_role(self._role, ElectionInput.RECONFIGURE)
            self._election = self.host.spawn(self._elect([], reconfigure=True), name="reconfigure")
            return
        self._last_election = "failover"
        self._role = election.next_role(self._role, ElectionInput.ODOWN)
        self._election = self.host.spawn(self._elect(shards), name="election")

    async def manual(self, shard: str, to: Address | None, force: bool = False) -> Outcome:
        """A planned switchover asked for by an operator: win an epoch, then hand over.
        With ``force`` (and ``to``): promote ``to`` although the master is down and no
        replica is eligible (`failover.start_forced`)."""
        if force and to is None:
            return {"ok": False, "reason": "--force needs --to: the replica to promote"}
        running = self._election is not None and not self._election.done()
        if self._role is not ElectionRole.FOLLOWER or running or shard in self._busy:
            return {"ok": False, "reason": f"sentinel {self.me} is busy ({self._role.value})"}
        self._role = election.next_role(self._role, ElectionInput.MANUAL)
        task = self.host.spawn(
            self._elect([shard], planned=True, to=to, force=force), name="manual failover"
        )
        self._election = task
        return await asyncio.shield(task)  # a client hanging up does not stop it half-way

    # -- an election ------------------------------------------------------------------

    def _hold_off(self, delay: float) -> None:
        self._not_before = max(self._not_before, self.clock() + delay)

    def _held(self, now: float, snap: Snapshot | None) -> bool:
        """May we not stand now? After a loss or an abort until `_not_before`; after a
        vote for another until `wait_after_vote`, unless that leader fell silent."""
        if now < self._not_before:
            return True
        if self._vote_hold is None:
            return False
        leader, voted_at, until = self._vote_hold
        if now >= until:
            self._vote_hold = None
            return False
        op = snap.opinions.get(leader) if snap is not None else None
        if op is not None and election.term_ended(self._vote_hold_epoch, op.led_epoch):
            self._vote_hold = None  # it says it is done with that epoch, published or not
            return False
        if not election.leader_silent(
            now, voted_at, None if op is None else op.at, self.host.timing
        ):
            return True
        self._vote_hold = None
        log.warning(
            "leader %s we voted for has not answered for %.0f ms: standing for a new epoch",
            leader,
            (now - (voted_at if op is None else max(voted_at, op.at))) * 1000,
        )
        return False

    async def _lease_lost(self, epoch: int) -> str | None:
        """Why we may no longer act as leader of ``epoch`` (None: we may): a higher
        epoch was seen, or a majority has not answered within `election.leader_lease`
        (when the polls' answers are too old, the peers are asked once more now)."""
        h = self.host
        if h.votes.epoch > epoch:
            return f"epoch {h.votes.epoch} started meanwhile (ours {epoch})"
        for pid, op in h.snapshot().opinions.items():
            self._heard[pid] = max(self._heard.get(pid, op.at), op.at)
            if op.epoch > epoch:
                h.note_epoch(op.epoch)
        if h.votes.epoch > epoch:
            return f"epoch {h.votes.epoch} started meanwhile (ours {epoch})"
        n, quorum, timing = len(h.all_ids), h.quorum, h.timing
        if election.lease_holds(self.clock(), self._heard, n, quorum, timing):
            return None
        if h.client is not None:  # renew: ask every peer now (bounded wait)
            ids = list(h.peers)
            timeout = max(2 * timing.probe_interval, 0.25)
            answers = await asyncio.gather(*(h.client.opinion(h.peers[p], timeout) for p in ids))
            now = self.clock()
            for pid, ans in zip(ids, answers, strict=True):
                if ans is not None:
                    self._heard[pid] = now
                    if isinstance(ans.get("epoch"), int) and ans["epoch"] > epoch:
                        h.note_epoch(ans["epoch"])
        if h.votes.epoch > epoch:
            return f"epoch {h.votes.epoch} started meanwhile (ours {epoch})"
        if election.lease_holds(self.clock(), self._heard, n, quorum, timing):
            return None
        lease = election.leader_lease(timing)
        return f"leader lease lost: no majority answered within {lease * 1000:.0f} ms"

    async def _elect(
        self,
        shards: list[str],
        *,
        planned: bool = False,
        to: Address | None = None,
        reconfigure: bool = False,
        force: bool = False,
    ) -> Outcome:
        try:
            if not planned:
                await asyncio.sleep(election.start_jitter(self.rng, self.host.timing))
                if self._held(self.clock(), self.host.snapshot()):
                    return {"ok": False, "reason": "voted for another candidate meanwhile"}
                if reconfigure and not (
                    self._reconfigure_pending or self._finishing or self._advancing
                ):
                    return {"ok": False, "reason": "the edit was published meanwhile"}
            outcome = await self._win_then_lead(shards, planned, to, reconfigure, force)
            epoch = outcome.get("epoch")
            if self._role is ElectionRole.LEADER and isinstance(epoch, int):
                if reconfigure or outcome.get("ok"):
                    # our term is over and nothing of it is in flight: our voters, who
                    # see this in our opinion, need not wait failover_timeout for a
                    # publication that may never come (an edit with nothing to publish)
                    self.led_epoch = max(self.led_epoch, epoch)
            return outcome
        finally:
            if self._role is ElectionRole.CANDIDATE:
                self._role = election.next_role(self._role, ElectionInput.LOST)
            elif self._role is ElectionRole.LEADER:
                self._role = election.next_role(self._role, ElectionInput.FINISHED)

    async def _win_then_lead(
        self,
        shards: list[str],
        planned: bool,
        to: Address | None,
        reconf: bool = False,
        force: bool = False,
    ) -> Outcome:
        h = self.host
        client = h.client
        assert client is not None
        started = self.clock()
        h.save_votes(election.start_election(h.votes, self.me))
        self.stats.votes_cast[self.me] += 1
        epoch = h.votes.epoch
        current = {sh.name: sh.master for sh in h.topology.shards}
        masters = ", ".join(f"{name} (master {current.get(name)})" for name in shards)
        action = f"fail over {masters}"
        if reconf:
            parts = ["publish the edited cluster.yaml layout"] if self._reconfigure_pending else []
            parts += [
                f"start moving the keys of slots {m.ranges()} {m.source} -> {m.target}"
                for m in self._advancing
            ]
            parts += [
                f"end the migration of slots {m.ranges()} {m.source} -> {m.target}"
                for m in self._finishing
            ]
            action = " and ".join(parts) or "publish the edited cluster.yaml layout"
        self.events.emit(
            Event("new-epoch", f"epoch {epoch}: {self.me} asks to {action}", epoch=epoch)
        )
        timeout = max(3 * h.timing.probe_interval, 0.5)
        ids = list(h.peers)
        answers = await asyncio.gather(
            *(client.vote(h.peers[p], epoch, self.me, timeout) for p in ids)
        )
        grants = [self.me]
        answered_at = self.clock()
        self._heard = {}
        split = False  # a peer answered that it voted for another candidate in our epoch
        for pid, ans in zip(ids, answers, strict=True):
            if ans is None:
                continue
            self._heard[pid] = answered_at
            topo = ans.get("topology")
            if isinstance(topo, dict):
                with contextlib.suppress(TopologyRefused):
                    h.adopt(parse_topology(topo), f"peer {pid} (vote reply)")
            if ans.get("granted") is True:
                grants.append(pid)
            elif isinstance(ans.get("epoch"), int) and ans["epoch"] > epoch:
                h.note_epoch(ans["epoch"])  # it is ahead of us: not a split of our epoch
            elif ans.get("voted_for") not in (None, self.me):
                split = True
        if self._role is not ElectionRole.CANDIDATE:
            return {"ok": False, "epoch": epoch, "reason": "a higher epoch arrived meanwhile"}
        need = election.votes_needed(len(h.all_ids), h.quorum)
        if h.votes.epoch != epoch or not election.has_won(grants, len(h.all_ids), h.quorum):
            if split and None not in answers:
                delay = election.split_retry_delay(self.rng, h.timing)
            else:
                delay = election.retry_delay(self.rng, h.timing)
            self._hold_off(delay)
            reason = f"election lost with {len(grants)}/{need} votes ({', '.join(grants)})"
            reason += " (split vote)" if split else ""
            self.events.emit(
                Event(
                    "abort",
                    f"epoch {epoch}: {reason}; retrying in {delay * 1000:.0f} ms",
                    epoch=epoch,
                )
            )
            return {"ok": False, "epoch": epoch, "reason": reason}
        self._role = election.next_role(self._role, ElectionInput.WON)
        self.events.emit(
            Event(
                "elected",
                f"epoch {epoch}: {self.me} elected leader with {len(grants)}/{need} votes "
                f"({', '.join(grants)}) to " + (action if not planned else f"hand over {masters}"),
                epoch=epoch,
            )
        )
        if reconf:
            return await self._publish_edit(epoch)
        if force:
            return await self._fail_over(epoch, shards, False, to, started, force=True)
        return await self._fail_over(epoch, shards, planned, to, started)

    # -- as leader of an epoch --------------------------------------------------------

    async def _refresh(self) -> None:
        """Adopt the newest topology any peer has (bounded wait), before we publish."""
        h = self.host
        assert h.client is not None
        timeout = max(2 * h.timing.probe_interval, 0.25)
        ids = list(h.peers)
        answers = await asyncio.gather(*(h.client.topology(h.peers[p], timeout) for p in ids))
        for pid, topo in zip(ids, answers, strict=True):
            if topo is not None:
                h.adopt(topo, f"peer {pid} (before publishing)")

    async def _push_peers(self, topology: SlotMap) -> None:
        """Tell every peer sentinel about a topology we published (they also poll)."""
        h = self.host
        assert h.client is not None
        await asyncio.gather(*(h.client.push(a, topology, 1.0) for a in h.peers.values()))

    async def _publish_edit(self, epoch: int) -> Outcome:
        """As leader of ``epoch``: publish the file's layout merged with the latest topology,
        and end the migrations the mover emptied (`sentinel.run.publish`)."""
        h = self.host
        await self._refresh()
        # the file as it is now, not as the last poll of the file watch saw it: a leader
        # whose watch lags would publish an edit the operator has replaced since
        h.reload_if_changed()
        latest = h.topology
        if latest.epoch >= epoch:
            reason = f"topology epoch {latest.epoch} was published meanwhile (ours {epoch})"
            text = f"epoch {epoch}: cluster.yaml edit not published: {reason}"
            self.events.emit(Event("abort", text, epoch=epoch))
            self._back_off_after_abort([])
            return {"ok": False, "epoch": epoch, "reason": reason}
        ahead = publish.peers_ahead(latest, h.snapshot().opinions)
        if ahead:  # on a map older than a peer's we would drop its migrations: never
            reason = f"{ahead}; it did not take it (see 'refused' in its log)"
            text = f"epoch {epoch}: cluster.yaml edit not published: {reason}"
            self.events.emit(Event("abort", text, epoch=epoch))
            self._back_off_after_abort([])
            return {"ok": False, "epoch": epoch, "reason": reason}
        edit, finishing = self._reconfigure_pending, list(self._finishing)
        advancing = tuple(self._advancing)
        plan = await publish.plan_publication(
            latest, h.config, finishing, edit, epoch,
            timeout=h.timing.step_timeout, name=f"slotwarden-sentinel-{self.me}",
            routes=self.actuator.routes, advancing=advancing,
        )  # fmt: skip
        fenced = await self._lease_lost(epoch)  # the room check took time: still leader?
        if fenced is not None or h.topology is not latest:
            reason = fenced or f"topology epoch {h.topology.epoch} was adopted meanwhile"
            text = f"epoch {epoch}: cluster.yaml edit not published: {reason}"
            self.events.emit(Event("abort", text, epoch=epoch))
            self._back_off_after_abort([])
            return {"ok": False, "epoch": epoch, "reason": reason}
        self._finishing = [m for m in self._finishing if m not in finishing]
        self._advancing = [m for m in self._advancing if m not in advancing]
        if edit:
            self._reconfigure_pending = False  # published, or refused: dropped either way
        for event in plan.refused:
            self.events.emit(replace(event, epoch=epoch))
        merged = plan.layout
        if reconfigure.same_layout(merged, latest):
            if edit and not plan.refused:
                self.events.emit(
                    Event(
                        "reconfigure",
                        f"epoch {epoch}: nothing to publish, topology epoch {latest.epoch} "
                        "already has the edited cluster.yaml layout",
                        epoch=epoch,
                    )
                )
            ok = not plan.refused
            return {"ok": ok, "epoch": epoch, **({} if ok else {"reason": "edit refused"})}
        what = reconfigure.describe(latest, merged, h.config)
        h.adopt(merged, f"{self.me}, leader of epoch {epoch} (cluster.yaml edit)", check=False)
        h.spawn(self._push_peers(merged))
        for m in plan.advanced:
            text = (
                f"slots {m.ranges()} {m.source} -> {m.target}: every router holds them; "
                f"keys start moving (epoch {epoch})"
            )
            self.events.emit(Event("migration-moving", text, epoch=epoch))
        for m in plan.ended:
            text = f"slots {m.ranges()} moved {m.source} -> {m.target} (epoch {epoch})"
            self.events.emit(Event("migration-done", text, epoch=epoch))
        if edit and not plan.refused:
            self.events.emit(
                Event(
                    "reconfigure",
                    f"epoch {epoch}: published the edited cluster.yaml layout: {'; '.join(what)}",
                    epoch=epoch,
                )
            )
        return {"ok": not plan.refused, "epoch": epoch}

    async def _fail_over(
        self,
        epoch: int,
        shards: list[str],
        planned: bool = False,
        to: Address | None = None,
        started: float | None = None,
        force: bool = False,
    ) -> Outcome:
        h = self.host
        started = self.clock() if started is None else started
        snap = h.snapshot()
        # never promote (nor repoint) a node cluster.yaml does not list for its shard
        snap = replace(snap, topology=restrict(snap.topology, h.config))
        plans: list[Failover] = []
        reasons: list[str] = []
        for name in shards:
            if force and to is not None:
                plan = failover.start_forced(name, epoch, snap, h.timing, to)
                if not isinstance(plan, Abort):
                    why = failover.refusal(name, snap, h.timing) or "none refused"
                    text = f"shard {name}: operator forces the promotion of {to} ({why})"
                    self.events.emit(Event("failover-forced", text, shard=name, epoch=epoch))
            elif planned:
                plan = failover.start_planned(name, epoch, snap, h.timing, to)
            else:
                plan = failover.start(name, epoch, snap, h.timing)
            if isinstance(plan, Abort):
                self.events.emit(
                    Event("abort", f"epoch {epoch}: {plan.reason}", shard=name, epoch=epoch)
                )
                if plan.refused:
                    old = h.topology.shards[h.topology.shard_index(name)].master
                    self.refusals.refuse(name, old, plan.reason, epoch)
                self.stats.failover_ended(name, planned, False, self.clock() - started)
                reasons.append(plan.reason)
            else:
                plans.append(plan)
        if not plans:
            self._back_off_after_abort(shards)
            return {"ok": False, "epoch": epoch, "reason": "; ".join(reasons)}
        self._busy |= {p.shard for p in plans}
        paused_at: dict[str, float] = {}
        published: Publish | Abort | None = None
        try:
            driven = await asyncio.gather(*(self._drive(p, paused_at) for p in plans))
            fenced = await self._lease_lost(epoch)
            if fenced is not None:
                driven = [failover.abort(p, fenced) for p in driven]
            ready = [p for p in driven if p.step is Step.PUBLISH]
            failed = [p for p in driven if p.step is not Step.PUBLISH]
            if ready:
                await self._refresh()
                published = failover.publish_round(h.topology, ready)
                if isinstance(published, Publish):
                    # only replicas cluster.yaml lists: what routers with it accept
                    published = Publish(restrict(published.topology, h.config))
                    h.adopt(published.topology, f"{self.me}, leader of epoch {epoch}", check=False)
                    h.spawn(self._push_peers(published.topology))
        finally:
            # A planned switchover paused writes on the old master: resume them,
            # whatever happened (it also resumes by itself at the deadline).
            pauses = {}
            for p in plans:
                if p.shard in paused_at:
                    await self.actuator.unpause(p.old_master)
                    pauses[p.shard] = self.clock() - paused_at[p.shard]
            self._busy -= {p.shard for p in plans}
        switched: list[dict[str, object]] = []
        for p in ready:
            if not isinstance(published, Publish):
                assert isinstance(published, Abort)
                failed.append(failover.abort(p, published.reason))
                continue
            p = failover.on_result(p, published, True, self.clock(), h.timing)
            self.stats.failover_ended(p.shard, planned, True, self.clock() - started)
            self._backoff.reset(p.shard)
            pause = pauses.get(p.shard)
            how = f" (planned; writes paused {pause * 1000:.0f} ms)" if pause is not None else ""
            switched.append(
                {
                    "shard": p.shard,
                    "from": str(p.old_master),
                    "to": str(p.candidate),
                    "pause_ms": round(pause * 1000) if pause is not None else None,
                }
            )
            self.events.emit(
                Event(
                    "switch",
                    f"shard {p.shard} switched from {p.old_master} to {p.candidate} "
                    f"at epoch {epoch}{how}",
                    shard=p.shard,
                    addr=str(p.candidate),
                    epoch=epoch,
                )
            )
        for p in failed:
            reasons.append(p.reason)
            self.stats.failover_ended(p.shard, planned, False, self.clock() - started)
            self.events.emit(
                Event(
                    "abort",
                    f"epoch {epoch}: failover of shard {p.shard} ({p.old_master} -> "
                    f"{p.candidate}) aborted: {p.reason}",
                    shard=p.shard,
                    epoch=epoch,
                )
            )
        if failed:
            self._back_off_after_abort([p.shard for p in failed])
        return {
            "ok": not reasons,
            "epoch": epoch,
            "switched": switched,
            "reason": "; ".join(reasons),
        }

    def _back_off_after_abort(self, shards: list[str]) -> None:
        """Hold off after an aborted attempt, longer with each one in a row for a shard."""
        failures = self._backoff.failed(shards)
        self._hold_off(election.abort_backoff(self.rng, self.host.timing, failures))

    async def _drive(self, plan: Failover, paused_at: dict[str, float]) -> Failover:
        """Run one failover up to (not including) publication, or to its abort.

        For a planned one, ``paused_at[shard]`` records when the master's writes
        were paused (the caller resumes them and reports the pause).
        """
        h = self.host
        while True:
            plan, actions = failover.next_actions(plan, self.clock(), h.timing, h.topology)
            if plan.step in (Step.PUBLISH, Step.ABORTED, Step.DONE):
                return plan
            fenced = await self._lease_lost(plan.epoch)
            if fenced is not None:  # another leader may act by now: not one more step
                return failover.abort(plan, fenced)
            results = await asyncio.gather(*(steps.perform(self.actuator, a) for a in actions))
            before = plan.step
            for action, ok in zip(actions, results, strict=True):
                plan = failover.on_result(plan, action, ok, self.clock(), h.timing)
                if isinstance(action, PauseWrites) and ok:
                    paused_at[plan.shard] = self.clock()
                if ok:
                    self.events.emit_if(steps.step_event(plan, action))
                elif isinstance(action, Repoint):
                    self.events.emit_if(steps.step_event(plan, action, failed=True))
            if plan.step is before and before in (Step.VERIFY, Step.CATCHUP):
                await asyncio.sleep(h.timing.probe_interval / 4)
            elif self.step_pause and plan.step is not before:
                await asyncio.sleep(self.step_pause)
