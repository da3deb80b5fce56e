"""Failover planning: replica selection, the failover step machine, and reconciliation.

Pure. `select_replica` ranks a shard's replicas as Redis Sentinel does,
skipping those that are not eligible for their data
(`sentinel.decide.eligible`); with none left, `start` refuses (an `Abort`
with ``refused``: the shard stays down) and `refusal` says so before an
election is even started; `start_forced` promotes an operator's choice
anyway. A `Failover` is an immutable record moved through `STEPS` - promote the chosen
replica, verify it reports the master role, repoint the other replicas,
publish the new topology at the failover's epoch - by `next_actions` (what to
do now) and `on_result` (what happened). Every step has a deadline; a missed
deadline or a failed promotion/publication ends in ABORTED with a reason,
never a silent half-done state. A failover interrupted anywhere (its leader
died) leaves a state that a fresh `start` on a new snapshot completes: a
replica already promoted is simply selected again (its offset is the
highest) and `reconcile` repoints whatever is left. No asyncio, aiohttp or
socket here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from enum import Enum

from sentinel.decide.detector import is_demoted, is_sdown
from sentinel.decide.eligible import why_not_eligible
from sentinel.decide.model import (
    Abort,
    Action,
    CheckCaughtUp,
    CheckRole,
    Event,
    NodeObs,
    NodeRole,
    PauseWrites,
    Promote,
    Publish,
    Repoint,
    Snapshot,
    Timing,
)
from sentinel.errors import FailoverError
from slotwarden.cluster.topology import Address, Shard, SlotMap


class Step(Enum):
    PAUSE = "pause"  # planned switchover: hold writes on the (healthy) master
    CATCHUP = "catchup"  # planned switchover: wait until the candidate has every write
    PROMOTE = "promote"
    VERIFY = "verify"
    REPOINT = "repoint"
    PUBLISH = "publish"
    DONE = "done"
    ABORTED = "aborted"


class Result(Enum):
    OK = "ok"
    FAILED = "failed"
    DRAINED = "drained"  # REPOINT: nothing left to repoint
    TIMEOUT = "timeout"


STEPS: dict[tuple[Step, Result], Step] = {
    (Step.PAUSE, Result.OK): Step.CATCHUP,
    (Step.PAUSE, Result.FAILED): Step.ABORTED,
    (Step.PAUSE, Result.TIMEOUT): Step.ABORTED,
    (Step.CATCHUP, Result.OK): Step.PROMOTE,
    (Step.CATCHUP, Result.FAILED): Step.CATCHUP,  # not yet: ask again until the deadline
    (Step.CATCHUP, Result.TIMEOUT): Step.ABORTED,
    (Step.PROMOTE, Result.OK): Step.VERIFY,
    (Step.PROMOTE, Result.FAILED): Step.ABORTED,
    (Step.PROMOTE, Result.TIMEOUT): Step.ABORTED,
    (Step.VERIFY, Result.OK): Step.REPOINT,
    (Step.VERIFY, Result.FAILED): Step.VERIFY,  # not master yet: ask again until the deadline
    (Step.VERIFY, Result.TIMEOUT): Step.ABORTED,
    (Step.REPOINT, Result.OK): Step.REPOINT,
    (Step.REPOINT, Result.FAILED): Step.REPOINT,  # left to `reconcile`; not worth an abort
    (Step.REPOINT, Result.DRAINED): Step.PUBLISH,
    (Step.REPOINT, Result.TIMEOUT): Step.PUBLISH,  # the promotion stands; publish it
    (Step.PUBLISH, Result.OK): Step.DONE,
    (Step.PUBLISH, Result.FAILED): Step.ABORTED,
    (Step.PUBLISH, Result.TIMEOUT): Step.ABORTED,
}

TERMINAL = frozenset({Step.DONE, Step.ABORTED})


@dataclass(frozen=True, slots=True)
class Failover:
    shard: str
    epoch: int
    old_master: Address
    candidate: Address
    others: tuple[Address, ...]  # the shard's other replicas, to repoint
    step: Step
    started_at: float
    deadline: float  # the whole failover
    step_deadline: float
    pending: tuple[Address, ...] = ()  # REPOINT: replicas not answered yet
    failed: tuple[Address, ...] = ()  # REPOINT: replicas that could not be repointed
    reason: str = ""  # ABORTED: why
    planned: bool = False  # a switchover from a healthy master (writes paused on it)

    def apply(self, topology: SlotMap, epoch: int | None = None) -> SlotMap:
        """``topology`` with this shard switched to the candidate (old master last
        among its replicas, so it is watched and converted when it returns)."""
        index = topology.shard_index(self.shard)
        shard = topology.shards[index]
        replicas = [r for r in shard.replicas if r != self.candidate]
        if shard.master != self.candidate and shard.master not in replicas:
            replicas.append(shard.master)
        shards = list(topology.shards)
        shards[index] = Shard(shard.name, self.candidate, tuple(replicas))
        return topology.derive(epoch=epoch, shards=tuple(shards))


def select_replica(
    shard: Shard, nodes: dict[Address, NodeObs], now: float, timing: Timing
) -> tuple[Address | None, list[str]]:
    """The replica to promote and, for the log, why each other one was skipped.

    Skipped: never observed, down, stale info, priority 0, or not eligible for
    its data (`sentinel.decide.eligible.why_not_eligible`: never synced, link
    down too long, offset below the down master's at its last reply, offset too far
    behind the master's). Ranked: lower priority,
    then larger replication offset, then smaller address.
    """
    master = nodes.get(shard.master)
    good: list[NodeObs] = []
    skipped: list[str] = []
    for addr in shard.replicas:
        obs = nodes.get(addr)
        why = None
        if obs is None:
            why = "never observed"
        elif is_sdown(obs, now, timing):
            why = "down"
        elif (
            obs.info_at is None
            or now - obs.info_at > timing.info_max_age
            or (obs.role is NodeRole.UNKNOWN)
        ):
            why = "stale"
        elif obs.priority == 0:
            why = "priority 0"
        else:
            why = why_not_eligible(obs, master, now, timing)
        if why:
            skipped.append(f"{addr} {why}")
        else:
            assert obs is not None
            good.append(obs)
    if not good:
        return None, skipped
    best = min(good, key=lambda o: (o.priority, -o.offset, o.addr))
    return best.addr, skipped


def refusal(shard_name: str, snap: Snapshot, timing: Timing) -> str:
    """Why no replica of ``shard_name`` may be promoted now ("" if one may): what a
    sentinel checks before it stands for an epoch to fail the shard over."""
    try:
        shard = snap.topology.shards[snap.topology.shard_index(shard_name)]
    except KeyError:
        return ""
    candidate, skipped = select_replica(shard, snap.nodes, snap.now, timing)
    if candidate is not None:
        return ""
    return _refused_text(shard_name, skipped)


def _refused_text(shard_name: str, skipped: list[str]) -> str:
    why = "; ".join(skipped) or "the shard has no replicas"
    return f"no replica of shard {shard_name} can be promoted ({why})"


# Why a shard's master does not fit a kind of failover ("" if it does).
MasterCheck = Callable[[NodeObs | None, float, Timing], str]


def _answers_again(master: NodeObs | None, now: float, timing: Timing) -> str:
    """A failover replaces a master that is down: silent, demoted to replica, or
    restarted without its data (`NodeObs.restart`; which replica, if any, still holds
    more is for the eligibility rules to say)."""
    if (
        master is not None
        and not is_sdown(master, now, timing)
        and not is_demoted(master, now, timing)
        and master.restart is None  # restarted without its data: the replicas decide
    ):
        return "answers again"
    return ""


def _not_healthy(master: NodeObs | None, now: float, timing: Timing) -> str:
    """A switchover hands over from a master that answers and reports the master role."""
    if master is None or is_sdown(master, now, timing) or master.role is not NodeRole.MASTER:
        return "is not a healthy master"
    return ""


def _promote(
    shard_name: str, epoch: int, shard: Shard, candidate: Address, now: float, timing: Timing
) -> Failover:
    """A failover of ``shard`` at its first step: promote ``candidate``, repoint the rest."""
    return Failover(
        shard=shard_name,
        epoch=epoch,
        old_master=shard.master,
        candidate=candidate,
        others=tuple(r for r in shard.replicas if r != candidate),
        step=Step.PROMOTE,
        started_at=now,
        deadline=now + timing.failover_timeout,
        step_deadline=now + timing.step_timeout,
    )


def _shard_to_plan(
    shard_name: str, epoch: int, snap: Snapshot, timing: Timing, unfit: MasterCheck
) -> Shard | Abort:
    """The shard a leader of ``epoch`` may plan for, or why not, in this order: the
    shard is in the topology, its master passes ``unfit``, the topology is older than
    ``epoch`` (shared by `start` and `start_planned`)."""
    try:
        shard = snap.topology.shards[snap.topology.shard_index(shard_name)]
    except KeyError:
        return Abort(f"shard {shard_name} is not in the topology")
    problem = unfit(snap.nodes.get(shard.master), snap.now, timing)
    if problem:
        return Abort(f"shard {shard_name} master {shard.master} {problem}")
    if snap.topology.epoch >= epoch:
        return Abort(f"topology epoch {snap.topology.epoch} is not older than epoch {epoch}")
    return shard


def start(shard_name: str, epoch: int, snap: Snapshot, timing: Timing) -> Failover | Abort:
    """Plan the failover of ``shard_name`` (its master down) as leader of ``epoch``."""
    now = snap.now
    shard = _shard_to_plan(shard_name, epoch, snap, timing, _answers_again)
    if isinstance(shard, Abort):
        return shard
    candidate, skipped = select_replica(shard, snap.nodes, now, timing)
    if candidate is None:
        return Abort(_refused_text(shard_name, skipped), refused=True)
    return _promote(shard_name, epoch, shard, candidate, now, timing)


def start_forced(
    shard_name: str, epoch: int, snap: Snapshot, timing: Timing, to: Address
) -> Failover | Abort:
    """Promote ``to`` although it is not eligible (an operator's ``--force``): the
    master must be down and ``to`` a replica of the shard that answers. The data
    rules of `select_replica` are not applied - that is the point."""
    now = snap.now
    shard = _shard_to_plan(shard_name, epoch, snap, timing, _answers_again)
    if isinstance(shard, Abort):
        if shard.reason.endswith("answers again"):
            return Abort(f"{shard.reason}: use a planned switchover (without --force)")
        return shard
    if to not in shard.replicas:
        return Abort(f"{to} is not a replica of shard {shard_name}")
    obs = snap.nodes.get(to)
    if obs is None or is_sdown(obs, now, timing):
        return Abort(f"{to} does not answer: it cannot be promoted")
    return _promote(shard_name, epoch, shard, to, now, timing)


def start_planned(
    shard_name: str, epoch: int, snap: Snapshot, timing: Timing, to: Address | None = None
) -> Failover | Abort:
    """Plan a switchover of a *healthy* master to ``to`` (or the best linked replica).

    Steps: pause writes on the master, wait until the candidate has processed
    the master's whole replication offset, promote it, verify, repoint the
    other replicas *and the old master*, publish. Writes acknowledged before
    the pause are all on the candidate; writes sent during the pause are held
    and then refused (-READONLY), never acknowledged and lost. The caller
    unpauses the old master at the end, whatever happened.
    """
    now = snap.now
    shard = _shard_to_plan(shard_name, epoch, snap, timing, _not_healthy)
    if isinstance(shard, Abort):
        return shard
    linked = {
        a: o
        for a in shard.replicas
        if (o := snap.nodes.get(a)) is not None
        and o.role is NodeRole.REPLICA
        and o.master == shard.master
        and o.link_up
    }
    if to is None:
        to, skipped = select_replica(
            Shard(shard.name, shard.master, tuple(linked)), snap.nodes, now, timing
        )
        if to is None:
            why = "; ".join(skipped) or "no replica is linked to the master"
            return Abort(f"no replica of shard {shard_name} can take over ({why})")
    elif to not in shard.replicas:
        return Abort(f"{to} is not a replica of shard {shard_name}")
    elif to not in linked or is_sdown(linked[to], now, timing):
        return Abort(f"{to} is not up and replicating from {shard.master}")
    return Failover(
        shard=shard_name,
        epoch=epoch,
        old_master=shard.master,
        candidate=to,
        others=(*(r for r in shard.replicas if r != to), shard.master),
        step=Step.PAUSE,
        started_at=now,
        deadline=now + timing.failover_timeout,
        step_deadline=now + timing.step_timeout,
        planned=True,
    )


def _go(fo: Failover, result: Result, now: float, timing: Timing, reason: str = "") -> Failover:
    try:
        step = STEPS[(fo.step, result)]
    except KeyError:
        raise FailoverError(f"no step from {fo.step.value} on {result.value}") from None
    if step is fo.step:
        return fo
    changes: dict[str, object] = {
        "step": step,
        "step_deadline": min(fo.deadline, now + timing.step_timeout),
    }
    if step is Step.REPOINT:
        changes["pending"] = fo.others
    if step is Step.ABORTED:
        changes["reason"] = reason or f"{fo.step.value} {result.value}"
    return replace(fo, **changes)


def next_actions(
    fo: Failover, now: float, timing: Timing, latest: SlotMap
) -> tuple[Failover, list[Action]]:
    """What to do now; ``latest`` is the newest topology known at this moment."""
    if fo.step in TERMINAL:
        return fo, []
    if now >= fo.step_deadline:
        limit = "failover" if now >= fo.deadline else f"step {fo.step.value}"
        fo = _go(fo, Result.TIMEOUT, now, timing, f"{limit} timed out")
        if fo.step is Step.ABORTED:
            return fo, [Abort(fo.reason)]
    if fo.step is Step.PROMOTE:
        return fo, [Promote(fo.candidate)]
    if fo.step is Step.PAUSE:
        # Until the whole failover's deadline: if we die, the master resumes alone.
        return fo, [PauseWrites(fo.old_master, max(int((fo.deadline - now) * 1000), 1))]
    if fo.step is Step.CATCHUP:
        return fo, [CheckCaughtUp(fo.old_master, fo.candidate)]
    if fo.step is Step.VERIFY:
        return fo, [CheckRole(fo.candidate)]
    if fo.step is Step.REPOINT:
        if fo.pending:
            return fo, [Repoint(a, fo.candidate) for a in fo.pending]
        fo = _go(fo, Result.DRAINED, now, timing)
    assert fo.step is Step.PUBLISH
    action = publish_round(latest, [fo])
    if isinstance(action, Abort):
        fo = _go(fo, Result.FAILED, now, timing, action.reason)
    return fo, [action]


def on_result(fo: Failover, action: Action, ok: bool, now: float, timing: Timing) -> Failover:
    """Feed back the outcome of one action returned by `next_actions`."""
    if fo.step in TERMINAL:
        return fo
    result = Result.OK if ok else Result.FAILED
    if isinstance(action, Repoint):
        if fo.step is not Step.REPOINT or action.addr not in fo.pending:
            return fo
        fo = replace(
            fo,
            pending=tuple(a for a in fo.pending if a != action.addr),
            failed=fo.failed if ok else (*fo.failed, action.addr),
        )
        return fo if fo.pending else _go(fo, Result.DRAINED, now, timing)
    expected = {
        Promote: Step.PROMOTE,
        PauseWrites: Step.PAUSE,
        CheckCaughtUp: Step.CATCHUP,
        CheckRole: Step.VERIFY,
        Publish: Step.PUBLISH,
    }
    if expected.get(type(action)) is not fo.step:
        return fo  # a late answer to an earlier step
    reason = f"{fo.step.value} of {fo.candidate} failed" if not ok else ""
    return _go(fo, result, now, timing, reason)


def abort(fo: Failover, reason: str) -> Failover:
    """End ``fo`` from outside (e.g. a newer epoch took over the shard)."""
    return fo if fo.step in TERMINAL else replace(fo, step=Step.ABORTED, reason=reason)


def publish_round(latest: SlotMap, ready: Sequence[Failover]) -> Publish | Abort:
    """One topology at the round's epoch with every ready failover applied."""
    epoch = ready[0].epoch
    if latest.epoch >= epoch:
        return Abort(f"topology epoch {latest.epoch} was published meanwhile (ours {epoch})")
    topology = latest
    names = {s.name for s in latest.shards}
    for fo in ready:
        if fo.shard not in names:
            return Abort(f"shard {fo.shard} was removed from the topology meanwhile (ours {epoch})")
        current = latest.shards[latest.shard_index(fo.shard)]
        if current.master != fo.old_master:
            return Abort(
                f"shard {fo.shard} master changed to {current.master} meanwhile (ours {epoch})"
            )
        if fo.candidate not in current.replicas:
            return Abort(
                f"{fo.candidate} is no longer a replica of shard {fo.shard} (ours {epoch})"
            )
        topology = fo.apply(topology)
    return Publish(topology.derive(epoch=epoch))


def reconcile(
    snap: Snapshot, timing: Timing, busy: Iterable[str] = ()
) -> list[tuple[Repoint, Event]]:
    """Repoint every replica of a healthy master that reports another role or master.

    Only once the master looks sane (answers, reports the master role, fresh
    info) and the wrong role has been reported for `Timing.convert_wait`, and
    never for shards in ``busy`` (a failover of ours is running there). This
    turns a returning old master into a replica and finishes the repointing
    of a failover whose leader died.
    """
    now = snap.now
    out: list[tuple[Repoint, Event]] = []
    skip = set(busy)
    for shard in snap.topology.shards:
        if shard.name in skip:
            continue
        master = snap.nodes.get(shard.master)
        if master is None or not _fresh(master, now, timing) or master.role is not NodeRole.MASTER:
            continue
        for addr in shard.replicas:
            obs = snap.nodes.get(addr)
            if obs is None or not _fresh(obs, now, timing):
                continue
            if obs.role_since is None or now - obs.role_since < timing.convert_wait:
                continue
            if obs.role is NodeRole.MASTER:
                kind, what = "convert-to-replica", "reports the master role; making it a replica"
            elif obs.role is NodeRole.REPLICA and obs.master != shard.master:
                kind, what = "repoint", f"replicates from {obs.master}; repointing it"
            else:
                continue
            out.append(
                (
                    Repoint(addr, shard.master),
                    Event(
                        kind,
                        f"shard {shard.name} node {addr} {what} of {shard.master} "
                        f"at epoch {snap.topology.epoch}",
                        shard=shard.name,
                        addr=str(addr),
                        epoch=snap.topology.epoch,
                    ),
                )
            )
    return out


def _fresh(obs: NodeObs, now: float, timing: Timing) -> bool:
    return (
        not is_sdown(obs, now, timing)
        and obs.info_at is not None
        and now - obs.info_at <= timing.info_max_age
    )
