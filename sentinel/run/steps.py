"""One failover step performed, and the event it is logged as.

Owns `perform` (a `sentinel.decide.model` action -> the `Actuator` call that
carries it out, True/False) and `step_event` (the sentence a successful - or,
for a repoint, failed - step is logged as). `sentinel.run.leader.Leader`
drives the steps; these two are the leaf of it, kept apart so the leader stays
about elections and ordering.
"""

from __future__ import annotations

from sentinel.act.actuator import Actuator
from sentinel.decide.failover import Failover
from sentinel.decide.model import (
    Action,
    CheckCaughtUp,
    CheckRole,
    Event,
    PauseWrites,
    Promote,
    Repoint,
)


def step_event(plan: Failover, action: Action, failed: bool = False) -> Event | None:
    """The event for ``action`` of ``plan`` (None: a step not worth one)."""
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
        return None
    return Event(
        kind,
        f"shard {plan.shard}: {text} at epoch {plan.epoch}",
        shard=plan.shard,
        addr=str(getattr(action, "addr", plan.candidate)),
        epoch=plan.epoch,
    )


async def perform(actuator: Actuator, action: Action) -> bool:
    """Carry out ``action`` (each actuator call has its own deadline)."""
    if isinstance(action, Promote):
        return await actuator.promote(action.addr)
    if isinstance(action, CheckRole):
        return await actuator.check_master(action.addr)
    if isinstance(action, Repoint):
        return await actuator.repoint(action.addr, action.master)
    if isinstance(action, PauseWrites):
        return await actuator.pause_writes(action.addr, action.ms)
    if isinstance(action, CheckCaughtUp):
        return await actuator.caught_up(action.master, action.replica)
    raise AssertionError(f"not performed here: {action!r}")
