"""Leadership: run an election for the shards that are ODOWN, and the failover if won.

Owns the leader's side of a failover: bump the epoch (persisted) and ask
every peer for its vote, then - with a majority of all sentinels and at
least the quorum - plan each shard's failover with `sentinel.decide.failover`, drive
it through the actuator, and publish one topology at the won epoch. The same
election publishes a cluster.yaml edit (a "reconfigure" action, see
`sentinel.run.reload`): failovers and reconfigures take turns when both wait.
Every outcome is one logged event (new-epoch, elected, promoted, repoint,
switch, reconfigure, abort); a loss or an abort sets a randomized time before
the next attempt. Tasks run in the owning `Sentinel`'s TaskGroup.

Before publishing, the leader asks every peer for its topology and adopts the
newest (`refresh`), then applies its result on top of that: a failover or an
edit published by another leader at a lower epoch meanwhile is kept (or, if
it touched the same shard, ours aborts), not overwritten.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sentinel.decide import election, failover, reconfigure
from sentinel.decide.election import ElectionInput, ElectionRole
from sentinel.decide.failover import Failover, Step
from sentinel.decide.model import (
    Abort,
    Action,
    CheckCaughtUp,
    CheckRole,
    Event,
    PauseWrites,
    Promote,
    Publish,
    Repoint,
)
from slotwarden.cluster.topology import Address, SlotMap

if TYPE_CHECKING:
    from sentinel.run.loop import Sentinel


def maybe_elect(s: Sentinel, now: float) -> None:
    if s.role is not ElectionRole.FOLLOWER or now < s.not_before:
        return
    if s.election_task is not None and not s.election_task.done():
        return
    shards = sorted(s.flags.odown - s.busy)
    if not shards and not s.reconfigure_pending:
        return
    assert s.tg is not None
    if s.reconfigure_pending and (not shards or s.last_election == "failover"):
        s.last_election = "reconfigure"
        s.role = election.next_role(s.role, ElectionInput.RECONFIGURE)
        s.election_task = s.tg.create_task(elect(s, [], reconfigure=True), name="reconfigure")
        return
    s.last_election = "failover"
    s.role = election.next_role(s.role, ElectionInput.ODOWN)
    s.election_task = s.tg.create_task(elect(s, shards), name="election")


Outcome = dict[str, Any]  # the answer to ``POST /failover``: ok, epoch, switched, reason


async def elect(
    s: Sentinel,
    shards: list[str],
    *,
    planned: bool = False,
    to: Address | None = None,
    reconfigure: bool = False,
) -> Outcome:
    try:
        if not planned:
            await asyncio.sleep(election.start_jitter(s.rng, s.timing))
            if s.clock() < s.not_before:
                return {"ok": False, "reason": "voted for another candidate meanwhile"}
            if reconfigure and not s.reconfigure_pending:
                return {"ok": False, "reason": "the edit was published meanwhile"}
        return await _elect(s, shards, planned, to, reconfigure)
    finally:
        if s.role is ElectionRole.CANDIDATE:
            s.role = election.next_role(s.role, ElectionInput.LOST)
        elif s.role is ElectionRole.LEADER:
            s.role = election.next_role(s.role, ElectionInput.FINISHED)


async def manual(s: Sentinel, shard: str, to: Address | None) -> Outcome:
    """A planned switchover asked for by an operator: win an epoch, then hand over."""
    running = s.election_task is not None and not s.election_task.done()
    if s.role is not ElectionRole.FOLLOWER or running or shard in s.busy:
        return {"ok": False, "reason": f"sentinel {s.me} is busy ({s.role.value})"}
    assert s.tg is not None
    s.role = election.next_role(s.role, ElectionInput.MANUAL)
    task = s.tg.create_task(elect(s, [shard], planned=True, to=to), name="manual failover")
    s.election_task = task
    return await asyncio.shield(task)  # a client hanging up does not stop it half-way


async def _elect(
    s: Sentinel, shards: list[str], planned: bool, to: Address | None, reconf: bool = False
) -> Outcome:
    assert s.client is not None
    started = s.clock()
    s.save(replace(s.state, votes=election.start_election(s.votes, s.me)))
    s.stats.votes_cast[s.me] += 1
    epoch = s.votes.epoch
    current = {sh.name: sh.master for sh in s.topology.shards}
    masters = ", ".join(f"{name} (master {current.get(name)})" for name in shards)
    action = "publish the edited cluster.yaml layout" if reconf else f"fail over {masters}"
    s.emit(Event("new-epoch", f"epoch {epoch}: {s.me} asks to {action}", epoch=epoch))
    timeout = max(3 * s.timing.probe_interval, 0.5)
    ids = list(s.peers)
    answers = await asyncio.gather(*(s.client.vote(s.peers[p], epoch, s.me, timeout) for p in ids))
    grants = [s.me]
    for pid, ans in zip(ids, answers, strict=True):
        if ans is None:
            continue
        topo = ans.get("topology")
        if isinstance(topo, dict):
            with contextlib.suppress(ValueError, KeyError, TypeError):
                s.adopt(SlotMap.from_dict(topo), f"peer {pid} (vote reply)")
        if ans.get("granted") is True:
            grants.append(pid)
        elif isinstance(ans.get("epoch"), int) and ans["epoch"] > epoch:
            s.state = replace(s.state, votes=election.observe_epoch(s.votes, ans["epoch"]))
    if s.role is not ElectionRole.CANDIDATE:
        return {"ok": False, "epoch": epoch, "reason": "a higher epoch arrived meanwhile"}
    need = election.votes_needed(len(s.all_ids), s.quorum)
    if s.votes.epoch != epoch or not election.has_won(grants, len(s.all_ids), s.quorum):
        delay = election.retry_delay(s.rng, s.timing)
        s.not_before = max(s.not_before, s.clock() + delay)
        reason = f"election lost with {len(grants)}/{need} votes ({', '.join(grants)})"
        s.emit(
            Event(
                "abort",
                f"epoch {epoch}: {reason}; retrying in {delay * 1000:.0f} ms",
                epoch=epoch,
            )
        )
        return {"ok": False, "epoch": epoch, "reason": reason}
    s.role = election.next_role(s.role, ElectionInput.WON)
    s.emit(
        Event(
            "elected",
            f"epoch {epoch}: {s.me} elected leader with {len(grants)}/{need} votes "
            f"({', '.join(grants)}) to " + (action if not planned else f"hand over {masters}"),
            epoch=epoch,
        )
    )
    if reconf:
        return await publish_edit(s, epoch)
    return await fail_over(s, epoch, shards, planned, to, started)


async def refresh(s: Sentinel) -> None:
    """Adopt the newest topology any peer has (bounded wait), before we publish."""
    assert s.client is not None
    timeout = max(2 * s.timing.probe_interval, 0.25)
    ids = list(s.peers)
    answers = await asyncio.gather(*(s.client.topology(s.peers[p], timeout) for p in ids))
    for pid, topo in zip(ids, answers, strict=True):
        if topo is not None:
            s.adopt(topo, f"peer {pid} (before publishing)")


async def publish_edit(s: Sentinel, epoch: int) -> Outcome:
    """As leader of ``epoch``: publish the file's layout merged with the latest topology."""
    await refresh(s)
    latest = s.topology
    if latest.epoch >= epoch:
        reason = f"topology epoch {latest.epoch} was published meanwhile (ours {epoch})"
        s.emit(Event("abort", f"epoch {epoch}: cluster.yaml edit not published: {reason}",
                     epoch=epoch))  # fmt: skip
        backoff_after_abort(s)
        return {"ok": False, "epoch": epoch, "reason": reason}
    merged = reconfigure.merge(s.config, latest, epoch)
    if reconfigure.same_layout(merged, latest):
        s.reconfigure_pending = False
        s.emit(
            Event(
                "reconfigure",
                f"epoch {epoch}: nothing to publish, topology epoch {latest.epoch} already "
                "has the edited cluster.yaml layout",
                epoch=epoch,
            )
        )
        return {"ok": True, "epoch": epoch}
    what = reconfigure.describe(latest, merged, s.config)
    s.adopt(merged, f"{s.me}, leader of epoch {epoch} (cluster.yaml edit)")
    s.reconfigure_pending = False
    assert s.tg is not None
    s.tg.create_task(s.push_peers(merged))
    s.emit(
        Event(
            "reconfigure",
            f"epoch {epoch}: published the edited cluster.yaml layout: {'; '.join(what)}",
            epoch=epoch,
        )
    )
    return {"ok": True, "epoch": epoch}


async def fail_over(
    s: Sentinel,
    epoch: int,
    shards: list[str],
    planned: bool = False,
    to: Address | None = None,
    started: float | None = None,
) -> Outcome:
    started = s.clock() if started is None else started
    snap = s.snapshot()
    plans: list[Failover] = []
    reasons: list[str] = []
    for name in shards:
        if planned:
            plan = failover.start_planned(name, epoch, snap, s.timing, to)
        else:
            plan = failover.start(name, epoch, snap, s.timing)
        if isinstance(plan, Abort):
            s.emit(Event("abort", f"epoch {epoch}: {plan.reason}", shard=name, epoch=epoch))
            s.stats.failover_ended(name, planned, False, s.clock() - started)
            reasons.append(plan.reason)
        else:
            plans.append(plan)
    if not plans:
        backoff_after_abort(s)
        return {"ok": False, "epoch": epoch, "reason": "; ".join(reasons)}
    s.busy |= {p.shard for p in plans}
    paused_at: dict[str, float] = {}
    published: Publish | Abort | None = None
    try:
        driven = await asyncio.gather(*(drive(s, p, paused_at) for p in plans))
        ready = [p for p in driven if p.step is Step.PUBLISH]
        failed = [p for p in driven if p.step is not Step.PUBLISH]
        if ready:
            await refresh(s)
            published = failover.publish_round(s.topology, ready)
            if isinstance(published, Publish):
                s.adopt(published.topology, f"{s.me}, leader of epoch {epoch}")
                assert s.tg is not None
                s.tg.create_task(s.push_peers(published.topology))
    finally:
        # A planned switchover paused writes on the old master: resume them,
        # whatever happened (it also resumes by itself at the deadline).
        pauses = {}
        for p in plans:
            if p.shard in paused_at:
                await s.actuator.unpause(p.old_master)
                pauses[p.shard] = s.clock() - paused_at[p.shard]
        s.busy -= {p.shard for p in plans}
    switched: list[dict[str, object]] = []
    for p in ready:
        if not isinstance(published, Publish):
            assert isinstance(published, Abort)
            failed.append(failover.abort(p, published.reason))
            continue
        p = failover.on_result(p, published, True, s.clock(), s.timing)
        s.stats.failover_ended(p.shard, planned, True, s.clock() - started)
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
        s.emit(
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
        s.stats.failover_ended(p.shard, planned, False, s.clock() - started)
        s.emit(
            Event(
                "abort",
                f"epoch {epoch}: failover of shard {p.shard} ({p.old_master} -> "
                f"{p.candidate}) aborted: {p.reason}",
                shard=p.shard,
                epoch=epoch,
            )
        )
    if failed:
        backoff_after_abort(s)
    return {"ok": not reasons, "epoch": epoch, "switched": switched, "reason": "; ".join(reasons)}


def backoff_after_abort(s: Sentinel) -> None:
    delay = election.retry_delay(s.rng, s.timing) + s.timing.probe_interval * 5
    s.not_before = max(s.not_before, s.clock() + delay)


async def drive(s: Sentinel, plan: Failover, paused_at: dict[str, float]) -> Failover:
    """Run one failover up to (not including) publication, or to its abort.

    For a planned one, ``paused_at[shard]`` records when the master's writes
    were paused (the caller resumes them and reports the pause).
    """
    while True:
        plan, actions = failover.next_actions(plan, s.clock(), s.timing, s.topology)
        if plan.step in (Step.PUBLISH, Step.ABORTED, Step.DONE):
            return plan
        results = await asyncio.gather(*(perform(s, a) for a in actions))
        before = plan.step
        for action, ok in zip(actions, results, strict=True):
            plan = failover.on_result(plan, action, ok, s.clock(), s.timing)
            if isinstance(action, PauseWrites) and ok:
                paused_at[plan.shard] = s.clock()
            if ok:
                _log_step(s, plan, action)
            elif isinstance(action, Repoint):
                _log_step(s, plan, action, failed=True)
        if plan.step is before and before in (Step.VERIFY, Step.CATCHUP):
            await asyncio.sleep(s.timing.probe_interval / 4)
        elif s.step_pause and plan.step is not before:
            await asyncio.sleep(s.step_pause)


def _log_step(s: Sentinel, plan: Failover, action: Action, failed: bool = False) -> None:
    if isinstance(action, Repoint):
        what = "could not be repointed" if failed else "repointed"
        kind, text = "repoint", f"replica {action.addr} {what} to {action.master}"
    elif isinstance(action, Promote):
        kind = "promoted"
        text = f"{plan.candidate} promoted to master (REPLICAOF NO ONE) replacing {plan.old_master}"
    elif isinstance(action, PauseWrites):
        kind, text = "pause", f"writes paused on {action.addr} to hand over to {plan.candidate}"
    elif isinstance(action, CheckCaughtUp):
        kind, text = "caught-up", f"{plan.candidate} has every write of {plan.old_master}"
    else:
        return
    s.emit(
        Event(
            kind,
            f"shard {plan.shard}: {text} at epoch {plan.epoch}",
            shard=plan.shard,
            addr=str(getattr(action, "addr", plan.candidate)),
            epoch=plan.epoch,
        )
    )


async def perform(s: Sentinel, action: Action) -> bool:
    if isinstance(action, Promote):
        return await s.actuator.promote(action.addr)
    if isinstance(action, CheckRole):
        return await s.actuator.check_master(action.addr)
    if isinstance(action, Repoint):
        return await s.actuator.repoint(action.addr, action.master)
    if isinstance(action, PauseWrites):
        return await s.actuator.pause_writes(action.addr, action.ms)
    if isinstance(action, CheckCaughtUp):
        return await s.actuator.caught_up(action.master, action.replica)
    raise AssertionError(f"not performed here: {action!r}")
