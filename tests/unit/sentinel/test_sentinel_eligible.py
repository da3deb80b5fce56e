"""Replica eligibility (issue 11 item 1): a replica without the shard's data is never promoted.

Pure: `sentinel.decide.eligible`, `failover.select_replica` / `start` / `refusal` /
`start_forced`, `probe.parse_replication`'s sync fields, and the backoff after aborts.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import pytest

from sentinel.act.probe import parse_replication
from sentinel.decide.election import abort_backoff
from sentinel.decide.eligible import (
    HISTORY_STEPS,
    behind_last_reply,
    offset_back_then,
    remember_offset,
    why_not_eligible,
)
from sentinel.decide.failover import (
    Failover,
    Step,
    refusal,
    select_replica,
    start,
    start_forced,
)
from sentinel.decide.model import Abort, NodeObs, NodeRole, Snapshot, Timing
from slotwarden.cluster.topology import Address, Shard, SlotMap

T = Timing.from_ms(500, 100, 3000)  # replica_lag: 10 x down_after = 5 s
M = Address("127.0.0.1", 7001)
R1 = Address("127.0.0.1", 7101)
R2 = Address("127.0.0.1", 7201)
TOPO = SlotMap.build(0, [Shard("a", M, (R1, R2))], [[(0, 16383)]])
NOW = 1000.0


HISTORY = ((NOW - 30, 1_000), (NOW - 6, 50_000), (NOW - 1, 60_000))


def dead_master(offsets: tuple[tuple[float, int], ...] = HISTORY) -> NodeObs:
    return NodeObs(
        M,
        last_ok=NOW - 1,
        role=NodeRole.MASTER,
        offset=offsets[-1][1] if offsets else 0,
        info_at=NOW - 1,
        role_since=NOW - 100,
        offsets=offsets,
    )


def replica(addr, offset=60_000, **kw):
    base = NodeObs(
        addr,
        last_ok=NOW,
        role=NodeRole.REPLICA,
        master=M,
        link_up=False,
        link_down_s=1.0,
        offset=offset,
        info_at=NOW,
        role_since=NOW - 100,
    )
    return replace(base, **kw)


def unsynced(addr):
    """A fresh replica in its initial sync, as INFO shows it (the issue's case)."""
    return replica(addr, offset=1, link_down_s=0.0, never_synced=True, sync_in_progress=True)


def snap(*obs):
    return Snapshot(NOW, "s1", TOPO, {o.addr: o for o in obs})


# -- the rules -----------------------------------------------------------------------


def test_a_replica_that_never_synced_is_not_eligible():
    why = why_not_eligible(unsynced(R1), dead_master(), NOW, T)
    assert why == "never completed a sync with its master (initial sync in progress)"


def test_a_synced_replica_is_eligible():
    assert why_not_eligible(replica(R1), dead_master(), NOW, T) is None


def test_link_down_longer_than_the_bound_is_not_eligible():
    # master down 1 s; bound 5 s: a link down 7 s is too long, 5.5 s is fine
    assert "link down for 7 s" in (
        why_not_eligible(replica(R1, link_down_s=7.0), dead_master(), NOW, T) or ""
    )
    assert why_not_eligible(replica(R1, link_down_s=5.5), dead_master(), NOW, T) is None


def test_max_replica_lag_ms_sets_the_bound():
    strict = Timing.from_ms(500, 100, 3000, max_replica_lag_ms=1000)
    assert strict.replica_lag == 1.0 and T.replica_lag == 5.0
    assert why_not_eligible(replica(R1, link_down_s=2.5), dead_master(), NOW, strict)
    assert why_not_eligible(replica(R1, link_down_s=2.5), dead_master(), NOW, T) is None


def test_offset_far_behind_the_master_is_not_eligible():
    # a master that still answers (its last reply at NOW-1 < down_after ago, so the
    # last-reply rule is off); 5 s before that reply (NOW-6) it had offset 50_000
    live = replace(dead_master(), last_ok=NOW - 0.1, info_at=NOW - 0.1)
    why = why_not_eligible(replica(R1, offset=49_999), live, NOW - 0.1 + 0.2, T)
    assert why is not None and "offset 49999 is behind 50000" in why
    assert why_not_eligible(replica(R1, offset=50_000), live, NOW - 0.1 + 0.2, T) is None


def test_no_old_enough_master_offset_means_no_offset_rule():
    young = dead_master(((NOW - 3, 50_000), (NOW - 1, 60_000)))
    young = replace(young, last_ok=NOW - 0.1, info_at=NOW - 0.1)
    assert why_not_eligible(replica(R1, offset=10), young, NOW, T) is None


# -- behind the dead master's last reply (issue 11: acknowledged writes lost) ----------


def test_behind_the_dead_masters_last_offset_is_not_eligible():
    # the master answered last at NOW-1 with offset 60_000: a replica at 59_000 lacks
    # 1,000 bytes of writes the master had acknowledged by then
    why = why_not_eligible(replica(R1, offset=59_000), dead_master(), NOW, T)
    assert why == (
        "offset 59000 is 1000 bytes behind 60000, the master's offset at its last reply "
        "(writes it acknowledged would be lost)"
    )
    assert behind_last_reply(replica(R1, offset=59_000), dead_master(), NOW, T) == 1000
    # caught up (or ahead: the master wrote more after its last probe) -> eligible
    assert why_not_eligible(replica(R1, offset=60_000), dead_master(), NOW, T) is None
    assert why_not_eligible(replica(R1, offset=60_014), dead_master(), NOW, T) is None


def test_the_last_reply_rule_needs_a_down_master_that_said_master():
    behind = replica(R1, offset=59_000)
    # still answering (down for less than down_after): a live master is always ahead
    live = replace(dead_master(), last_ok=NOW - 0.2)
    assert behind_last_reply(behind, live, NOW, T) == 0
    # its last INFO said replica (a demoted master): its offset is another stream
    demoted = replace(dead_master(), role=NodeRole.REPLICA)
    assert behind_last_reply(behind, demoted, NOW, T) == 0
    # never read its INFO, or no master observation at all
    assert behind_last_reply(behind, replace(dead_master(), info_at=None), NOW, T) == 0
    assert behind_last_reply(behind, None, NOW, T) == 0


def test_a_lagging_replica_is_skipped_and_with_none_caught_up_the_shard_is_refused():
    lagging = replica(R1, offset=59_000, priority=1)  # the better rank, but lacks writes
    chosen, skipped = select_replica(
        TOPO.shards[0], snap(dead_master(), lagging, replica(R2)).nodes, NOW, T
    )
    assert chosen == R2 and len(skipped) == 1 and "1000 bytes behind 60000" in skipped[0]
    why = refusal("a", snap(dead_master(), lagging, replace(lagging, addr=R2)), T)
    assert why.startswith("no replica of shard a can be promoted") and "bytes behind" in why


# -- selection and start ----------------------------------------------------------------


def test_the_unsynced_replica_is_never_chosen_even_with_the_best_rank():
    best_rank = replace(unsynced(R1), priority=1)
    chosen, skipped = select_replica(
        TOPO.shards[0], snap(dead_master(), best_rank, replica(R2)).nodes, NOW, T
    )
    assert chosen == R2
    assert skipped == [f"{R1} never completed a sync with its master (initial sync in progress)"]


def test_no_eligible_replica_is_a_refusal_not_a_promotion():
    s = snap(dead_master(), unsynced(R1), unsynced(R2))
    out = start("a", 1, s, T)
    assert isinstance(out, Abort) and out.refused
    assert "no replica of shard a can be promoted" in out.reason
    assert "never completed a sync" in out.reason
    assert refusal("a", s, T) == out.reason
    assert refusal("a", snap(dead_master(), unsynced(R1), replica(R2)), T) == ""


def test_other_aborts_are_not_refusals():
    alive = replace(dead_master(), last_ok=NOW)
    out = start("a", 1, snap(alive, replica(R1)), T)
    assert isinstance(out, Abort) and not out.refused


def test_a_shard_wide_outage_is_refused_before_any_election():
    down = replace(replica(R1), last_ok=NOW - 5)
    why = refusal("a", snap(dead_master(), down, replace(down, addr=R2)), T)
    assert why == f"no replica of shard a can be promoted ({R1} down; {R2} down)"


# -- forcing ----------------------------------------------------------------------------


def test_force_promotes_the_named_replica_anyway():
    out = start_forced("a", 1, snap(dead_master(), unsynced(R1), unsynced(R2)), T, R1)
    assert isinstance(out, Failover)
    assert out.candidate == R1 and out.others == (R2,) and out.step is Step.PROMOTE
    assert not out.planned


@pytest.mark.parametrize(
    ("master", "to", "text"),
    [
        (replace(dead_master(), last_ok=NOW), R1, "answers again: use a planned switchover"),
        (dead_master(), Address("127.0.0.1", 1), "is not a replica of shard a"),
        (dead_master(), R2, "does not answer"),
    ],
)
def test_force_refuses_what_it_cannot_do(master, to, text):
    r2_down = replace(unsynced(R2), last_ok=NOW - 5)
    out = start_forced("a", 1, snap(master, unsynced(R1), r2_down), T, to)
    assert isinstance(out, Abort) and text in out.reason


# -- the probe's side ---------------------------------------------------------------------


def test_probe_reads_the_initial_sync():
    info = {
        "role": "slave",
        "master_host": "127.0.0.1",
        "master_port": 7001,
        "master_link_status": "down",
        "master_sync_in_progress": 1,
        "slave_repl_offset": 1,
        "master_link_down_since_seconds": -1,
    }
    o = parse_replication(info, NodeObs(R1, last_ok=1.0), 5.0)
    assert o.never_synced and o.sync_in_progress and o.link_down_s == 0.0
    later = dict(info, master_sync_in_progress=0, master_link_down_since_seconds=3)
    o = parse_replication(later, o, 6.0)
    assert not o.never_synced and not o.sync_in_progress and o.link_down_s == 3.0
    up = dict(info, master_link_status="up", master_sync_in_progress=0)
    del up["master_link_down_since_seconds"]
    o = parse_replication(up, o, 7.0)
    assert o.link_up and not o.never_synced


def test_offset_history_is_thinned_bounded_and_reset_by_a_lower_offset():
    keep = 5.0
    h: tuple[tuple[float, int], ...] = ()
    for i in range(200):  # every 0.1 s for 20 s, offset growing
        h = remember_offset(h, i * 0.1, i * 10, keep)
    step = keep / HISTORY_STEPS
    assert len(h) <= HISTORY_STEPS + 2
    assert all(b[0] - a[0] >= step - 1e-9 for a, b in itertools.pairwise(h))
    assert h[-1][0] - h[0][0] >= keep  # one sample at least `keep` old is kept
    assert offset_back_then(h, h[-1][0] - keep) is not None
    assert offset_back_then(h, h[0][0] - 1) is None
    assert remember_offset(h, 20.0, 5, keep) == ((20.0, 5),)  # restarted empty


def test_abort_backoff_grows_and_is_capped():
    rng = random.Random(1)
    delays = [abort_backoff(random.Random(1), T, n) for n in range(1, 8)]
    assert delays[1] > delays[0] and delays[2] > delays[1]
    assert max(delays) <= T.failover_timeout
    assert abort_backoff(rng, T, 50) <= T.failover_timeout
