"""Which replicas may be promoted: the data rules, and the master's offset history they use.

Pure. A replica that the probes see answering is still *not eligible* when
promoting it could lose the shard's data:

- it never completed a sync with its master (``master_link_down_since_seconds:-1``,
  e.g. a fresh replica in its initial sync: it holds nothing, or a partial load);
- its link to the master has been down longer than the master has been down
  plus `Timing.replica_lag` (``sentinel.max_replica_lag_ms``);
- its replication offset is below the master's offset at the master's last
  reply, once the master no longer answers (`behind_last_reply`): it lacks
  writes the master had already acknowledged (e.g. a replica not scheduled
  under CPU load while the rest of the stream sat in the master's socket when
  the master died). It becomes eligible when it catches up (a hung master's
  kernel still delivers what it had sent) or the master answers again; an
  operator may force it;
- its replication offset is below what the master had `Timing.replica_lag`
  before the master's last reply (`offset_back_then`): it misses more than that
  much of the master's writes.

A master that restarted without its data (`NodeObs.restart`: it came back with
a lower replication offset) is judged, for a replica holding more
than it has now, as it was at its last reply before the restart
(`before_restart`): the stream ended there, and the emptied master's answers
do not clear a refusal.

`remember_offset` keeps the (time, offset) samples of a node that the offset
rule reads (`sentinel.act.probe` calls it on every valid INFO). No asyncio,
aiohttp or socket here.
"""

from __future__ import annotations

from dataclasses import replace

from sentinel.decide.model import NodeObs, NodeRole, Timing

HISTORY_STEPS = 16  # samples per `Timing.replica_lag`: the offset rule's time resolution


def remember_offset(
    history: tuple[tuple[float, int], ...], at: float, offset: int, keep: float
) -> tuple[tuple[float, int], ...]:
    """``history`` with ``(at, offset)`` added: at most one sample per ``keep / HISTORY_STEPS``,
    the newest sample at least ``keep`` old kept (older ones dropped). An offset below the
    last one (a restarted, emptied node) starts a new history."""
    if history and offset < history[-1][1]:
        return ((at, offset),)
    if history and at - history[-1][0] < keep / HISTORY_STEPS:
        return history
    out = (*history, (at, offset))
    cut = 0
    for i, (when, _) in enumerate(out):
        if at - when >= keep:
            cut = i
    return out[cut:]


def offset_back_then(history: tuple[tuple[float, int], ...], when: float) -> int | None:
    """The offset the node had at ``when`` (its newest sample not after it), or None."""
    found = None
    for at, offset in history:
        if at > when:
            break
        found = offset
    return found


def holds_more(obs: NodeObs, master: NodeObs) -> bool:
    """Whether replica ``obs`` holds more of the shard's stream than ``master`` has now
    (a higher offset: a replica following ``master`` is never ahead of it; one that
    resynchronised from the emptied master has its offset)."""
    return obs.offset > master.offset


def before_restart(obs: NodeObs, master: NodeObs | None) -> NodeObs | None:
    """The master as the rules must see it when judging replica ``obs``: a master that
    restarted without its data (`NodeObs.restart`) is judged as it was at its last reply
    before the restart - its stream ended there - as long as ``obs`` holds more than it
    has now. (The emptied master's own fresh replies must not count as "the master's
    last reply": they would clear the refusal of a replica that lacks acknowledged writes.)"""
    if master is None or master.restart is None or not holds_more(obs, master):
        return master
    r = master.restart
    return replace(master, offset=r.offset, last_ok=r.last_ok, offsets=r.offsets, replid=r.replid)


def behind_last_reply(obs: NodeObs, master: NodeObs | None, now: float, timing: Timing) -> int:
    """How many bytes of the master's replication stream ``obs`` lacks, against the
    master's offset at its last valid reply, once the master is down (0: none, or the
    master still answers - a live master is always a little ahead, and a planned
    switchover waits for its candidate to catch up instead). Only a master whose last
    INFO said "master" counts: its offset is the stream its replicas follow."""
    live = master
    master = before_restart(obs, master)
    restarted = master is not live  # its stream ended at its last reply before the restart
    if master is None or master.role is not NodeRole.MASTER or master.info_at is None:
        return 0
    if now - master.last_ok < timing.down_after and not restarted:
        return 0
    return max(master.offset - obs.offset, 0)


def why_not_eligible(
    obs: NodeObs, master: NodeObs | None, now: float, timing: Timing
) -> str | None:
    """Why promoting ``obs`` (answering, fresh info) could lose data, or None if it cannot."""
    bound = timing.replica_lag
    behind = behind_last_reply(obs, master, now, timing)
    master = before_restart(obs, master)
    if obs.role is NodeRole.REPLICA and not obs.link_up and obs.never_synced:
        during = " (initial sync in progress)" if obs.sync_in_progress else ""
        return f"never completed a sync with its master{during}"
    master_down_for = now - master.last_ok if master is not None else 0.0
    if obs.role is NodeRole.REPLICA and obs.link_down_s > master_down_for + bound:
        return (
            f"link down for {obs.link_down_s:.0f} s (more than the master's "
            f"{master_down_for:.1f} s + max_replica_lag_ms {bound * 1000:.0f})"
        )
    if behind and master is not None:
        return (
            f"offset {obs.offset} is {behind} bytes behind {master.offset}, the master's "
            "offset at its last reply (writes it acknowledged would be lost)"
        )
    if master is not None:
        needed = offset_back_then(master.offsets, master.last_ok - bound)
        if needed is not None and obs.offset < needed:
            return (
                f"offset {obs.offset} is behind {needed}, the master's offset "
                f"max_replica_lag_ms {bound * 1000:.0f} before its last reply"
            )
    return None
