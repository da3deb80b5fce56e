"""failover: replica selection, the step machine (interrupted at every step), reconcile."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from sentinel.decide.detector import Flags, detect
from sentinel.decide.failover import (
    STEPS,
    Failover,
    Result,
    Step,
    _go,
    next_actions,
    on_result,
    publish_round,
    reconcile,
    select_replica,
    start,
    start_planned,
)
from sentinel.decide.model import (
    Abort,
    CheckCaughtUp,
    CheckRole,
    NodeObs,
    NodeRole,
    PauseWrites,
    Promote,
    Publish,
    Repoint,
    Snapshot,
)
from sentinel.decide.model import Timing as _Timing
from sentinel.errors import FailoverError
from slotwarden.cluster.topology import Address, Shard, SlotMap

T = _Timing.from_ms(500, 100, 3000)
M = Address("127.0.0.1", 7001)
R1 = Address("127.0.0.1", 7101)
R2 = Address("127.0.0.1", 7201)
R3 = Address("127.0.0.1", 7301)
B = Address("127.0.0.1", 7002)
TOPO = SlotMap.build(
    0, [Shard("a", M, (R1, R2, R3)), Shard("b", B, ())], [[(0, 99)], [(100, 16383)]]
)
NOW = 1000.0


def replica(addr, offset=100, priority=100, *, last_ok=NOW, info_at=NOW, link_down=0.0, master=M):
    return NodeObs(
        addr,
        last_ok=last_ok,
        role=NodeRole.REPLICA,
        master=master,
        link_up=False,
        link_down_s=link_down,
        offset=offset,
        priority=priority,
        info_at=info_at,
        role_since=NOW - 100,
    )


def dead_master(addr=M):
    return NodeObs(
        addr, last_ok=NOW - 1, role=NodeRole.MASTER, info_at=NOW - 1, role_since=NOW - 100
    )


def nodes(*obs):
    return {o.addr: o for o in obs}


# -- selection ---------------------------------------------------------------


def test_prefers_larger_offset():
    chosen, skipped = select_replica(
        TOPO.shards[0], nodes(replica(R1, 10), replica(R2, 30), replica(R3, 20)), NOW, T
    )
    assert chosen == R2 and skipped == []


def test_prefers_lower_priority_over_offset():
    chosen, _ = select_replica(
        TOPO.shards[0], nodes(replica(R1, 10, 50), replica(R2, 30, 100)), NOW, T
    )
    assert chosen == R1


def test_ties_go_to_the_smaller_address():
    chosen, _ = select_replica(
        TOPO.shards[0], nodes(replica(R3, 10), replica(R2, 10), replica(R1, 10)), NOW, T
    )
    assert chosen == R1


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (replica(R2, 999, last_ok=NOW - 0.6), "down"),
        (replica(R2, 999, info_at=NOW - 5), "stale"),
        (replica(R2, 999, priority=0), "priority 0"),
        (replica(R2, 999, link_down=60.0), "link down"),
    ],
)
def test_skips_unfit_replicas(bad, why):
    chosen, skipped = select_replica(
        TOPO.shards[0], nodes(dead_master(), replica(R1, 1), bad), NOW, T
    )
    assert chosen == R1
    assert any(s.startswith(f"{R2} {why}") for s in skipped), skipped
    assert f"{R3} never observed" in skipped


def test_link_down_as_long_as_the_master_is_fine():
    # the master died 1 s ago; a replica whose link went down with it is fine
    chosen, _ = select_replica(
        TOPO.shards[0], nodes(dead_master(), replica(R1, 5, link_down=1.0)), NOW, T
    )
    assert chosen == R1


def test_already_promoted_replica_is_selectable():
    promoted = replace(replica(R1, 50), role=NodeRole.MASTER, master=None)
    chosen, _ = select_replica(TOPO.shards[0], nodes(promoted, replica(R2, 40)), NOW, T)
    assert chosen == R1


def test_start_aborts_without_good_replica():
    snap = Snapshot(NOW, "s1", TOPO, nodes(dead_master(), replica(R1, priority=0)))
    out = start("a", 1, snap, T)
    assert isinstance(out, Abort)
    assert "no replica of shard a" in out.reason and "priority 0" in out.reason


def test_start_aborts_when_master_answers_again():
    alive = replace(dead_master(), last_ok=NOW)
    out = start("a", 1, Snapshot(NOW, "s1", TOPO, nodes(alive, replica(R1))), T)
    assert isinstance(out, Abort) and "answers again" in out.reason


def test_start_aborts_on_stale_epoch():
    topo = replace(TOPO, epoch=3)
    out = start("a", 3, Snapshot(NOW, "s1", topo, nodes(dead_master(), replica(R1))), T)
    assert isinstance(out, Abort) and "not older" in out.reason


def test_start_and_start_planned_check_shard_then_master_then_epoch():
    """Both plans share one lookup; the first failed check is the reason given."""
    stale = replace(TOPO, epoch=3)
    alive = replace(dead_master(), last_ok=NOW)
    for plan in (start, start_planned):
        out = plan("zz", 3, Snapshot(NOW, "s1", stale, nodes(alive, replica(R1))), T)
        assert isinstance(out, Abort) and out.reason == "shard zz is not in the topology"
    out = start("a", 3, Snapshot(NOW, "s1", stale, nodes(alive, replica(R1))), T)
    assert isinstance(out, Abort) and out.reason == f"shard a master {M} answers again"
    out = start_planned("a", 3, Snapshot(NOW, "s1", stale, nodes(dead_master(), replica(R1))), T)
    assert isinstance(out, Abort) and out.reason == f"shard a master {M} is not a healthy master"


# -- the step machine over a simulated world ---------------------------------


@dataclass
class Node:
    role: str
    master: Address | None
    offset: int
    alive: bool = True


class World:
    """Plain-data stand-in for the nodes' replication state (for the pure planner only)."""

    def __init__(self) -> None:
        self.nodes = {
            # R2 has all of the dead master's stream; R1 and R3 lag (not eligible)
            M: Node("master", None, 95, alive=False),
            R1: Node("replica", M, 90),
            R2: Node("replica", M, 95),
            R3: Node("replica", M, 80),
            B: Node("master", None, 10),
        }
        self.topology = TOPO
        self.unreachable: set[Address] = set()

    def observe(self, now):
        out = {}
        for addr, n in self.nodes.items():
            ok = n.alive and addr not in self.unreachable
            out[addr] = NodeObs(
                addr,
                last_ok=now if ok else NOW - 1,
                role=NodeRole.MASTER if n.role == "master" else NodeRole.REPLICA,
                master=n.master,
                offset=n.offset,
                info_at=now if ok else NOW - 1,
                role_since=now - 10,
            )
        return out

    def perform(self, action) -> bool:
        if isinstance(action, Publish):
            if action.topology.epoch <= self.topology.epoch:
                return False
            self.topology = action.topology
            return True
        n = self.nodes[action.addr]
        if not n.alive or action.addr in self.unreachable:
            return False
        if isinstance(action, Promote):
            n.role, n.master = "master", None
        elif isinstance(action, CheckRole):
            return n.role == "master"
        elif isinstance(action, Repoint):
            n.role, n.master = "replica", action.master
        return True


def drive(world, fo, now, limit=None):
    """Run ``fo`` against ``world``; stop (the leader dies) after ``limit`` actions."""
    done = 0
    while fo.step not in (Step.DONE, Step.ABORTED):
        fo, actions = next_actions(fo, now, T, world.topology)
        for action in actions:
            if isinstance(action, Abort):
                return fo, done
            if limit is not None and done >= limit:
                return fo, done
            ok = world.perform(action)
            done += 1
            fo = on_result(fo, action, ok, now, T)
        now += 0.01
    return fo, done


def settle(world, now):
    for _ in range(5):
        snap = Snapshot(now, "s2", world.topology, world.observe(now))
        fixes = reconcile(snap, T)
        if not fixes:
            return
        for action, _event in fixes:
            world.perform(action)


def assert_one_master(world):
    shard = world.topology.shards[0]
    alive = {a: n for a, n in world.nodes.items() if n.alive and a != B}
    masters = [a for a, n in alive.items() if n.role == "master"]
    assert masters == [shard.master]
    for a, n in alive.items():
        if a != shard.master:
            assert n.master == shard.master, (a, n)
    assert set(shard.replicas) | {shard.master} == {M, R1, R2, R3}


def test_full_failover():
    world = World()
    snap = Snapshot(NOW, "s1", TOPO, world.observe(NOW))
    fo = start("a", 1, snap, T)
    assert isinstance(fo, Failover) and fo.candidate == R2
    fo, done = drive(world, fo, NOW)
    assert fo.step is Step.DONE
    assert done == 5  # promote, check role, repoint x2, publish
    assert world.topology.epoch == 1
    assert world.topology.shards[0] == Shard("a", R2, (R1, R3, M))
    assert world.topology.shards[1] == TOPO.shards[1]
    assert world.topology.owner == TOPO.owner
    # the old master comes back as a master: reconcile turns it into a replica
    world.nodes[M].alive = True
    settle(world, NOW + 5)
    assert_one_master(world)


@pytest.mark.parametrize("interrupt_after", range(6))
def test_interrupted_at_every_step_then_another_leader_finishes(interrupt_after):
    world = World()
    fo = start("a", 1, Snapshot(NOW, "s1", TOPO, world.observe(NOW)), T)
    fo, done = drive(world, fo, NOW, limit=interrupt_after)
    assert done == min(interrupt_after, 5)
    now = NOW + 3  # another sentinel gives up waiting and wins epoch 2
    snap = Snapshot(now, "s2", world.topology, world.observe(now))
    if world.topology.epoch == 0:
        fo2 = start("a", 2, snap, T)
        assert isinstance(fo2, Failover), fo2
        assert fo2.candidate == R2  # the promoted one, or the best again
        fo2, _ = drive(world, fo2, now)
        assert fo2.step is Step.DONE
        assert world.topology.epoch == 2
    else:
        assert isinstance(start("a", 2, snap, T), Abort)  # new master answers: nothing to do
    settle(world, now + 1)
    assert_one_master(world)
    world.nodes[M].alive = True
    settle(world, now + 2)
    assert_one_master(world)


def test_promotion_refused_aborts_with_reason():
    world = World()
    fo = start("a", 1, Snapshot(NOW, "s1", TOPO, world.observe(NOW)), T)
    world.unreachable.add(R2)
    fo, _ = drive(world, fo, NOW)
    assert fo.step is Step.ABORTED and "promote of 127.0.0.1:7201 failed" in fo.reason
    assert world.topology.epoch == 0


def test_verify_timeout_aborts():
    world = World()
    fo = start("a", 1, Snapshot(NOW, "s1", TOPO, world.observe(NOW)), T)
    fo, [action] = next_actions(fo, NOW, T, TOPO)
    fo = on_result(fo, action, True, NOW, T)  # promote "ok" but the node never turns master
    now = NOW
    while fo.step is Step.VERIFY:
        fo, actions = next_actions(fo, now, T, TOPO)
        for a in actions:
            if not isinstance(a, Abort):
                fo = on_result(fo, a, False, now, T)
        now += 0.1
    assert fo.step is Step.ABORTED and "step verify timed out" in fo.reason
    assert now - NOW <= T.step_timeout + 0.2


def test_unreachable_replica_does_not_block_publish():
    world = World()
    fo = start("a", 1, Snapshot(NOW, "s1", TOPO, world.observe(NOW)), T)
    world.unreachable.add(R3)
    fo, _ = drive(world, fo, NOW)
    assert fo.step is Step.DONE and fo.failed == (R3,)
    assert world.topology.epoch == 1


def test_repoint_hanging_past_deadline_still_publishes():
    world = World()
    fo = start("a", 1, Snapshot(NOW, "s1", TOPO, world.observe(NOW)), T)
    for _ in range(2):
        fo, [a] = next_actions(fo, NOW, T, TOPO)
        fo = on_result(fo, a, world.perform(a), NOW, T)
    fo, actions = next_actions(fo, NOW, T, TOPO)
    assert {type(a) for a in actions} == {Repoint}
    later = NOW + T.step_timeout + 0.01  # no repoint answered in time
    fo, [a] = next_actions(fo, later, T, TOPO)
    assert isinstance(a, Publish) and a.topology.epoch == 1


def test_newer_epoch_meanwhile_aborts_publish():
    world = World()
    fo = start("a", 1, Snapshot(NOW, "s1", TOPO, world.observe(NOW)), T)
    newer = replace(TOPO, epoch=1)
    fo, _done = drive(world, fo, NOW, limit=4)
    fo, [a] = next_actions(fo, NOW, T, newer)
    assert isinstance(a, Abort) and "published meanwhile" in a.reason
    assert fo.step is Step.ABORTED


def test_publish_round_applies_two_shards_onto_latest():
    topo = SlotMap.build(
        0, [Shard("a", M, (R1,)), Shard("b", B, (R3,))], [[(0, 99)], [(100, 16383)]]
    )
    fa = Failover("a", 4, M, R1, (), Step.PUBLISH, NOW, NOW + 3, NOW + 1)
    fb = Failover("b", 4, B, R3, (), Step.PUBLISH, NOW, NOW + 3, NOW + 1)
    out = publish_round(replace(topo, epoch=2), [fa, fb])
    assert isinstance(out, Publish) and out.topology.epoch == 4
    assert out.topology.shards == (Shard("a", R1, (M,)), Shard("b", R3, (B,)))
    moved = replace(topo, epoch=3, shards=(Shard("a", R1, (M,)), topo.shards[1]))
    assert isinstance(publish_round(moved, [fa]), Abort)


def test_step_table_is_closed():
    fo = Failover("a", 1, M, R1, (), Step.DONE, NOW, NOW + 3, NOW + 1)
    with pytest.raises(FailoverError):
        _go(fo, Result.OK, NOW, T)
    for (step, _), nxt in STEPS.items():
        assert step not in (Step.DONE, Step.ABORTED) and isinstance(nxt, Step)


# -- reconcile ---------------------------------------------------------------


def test_reconcile_waits_for_a_sane_master_and_convert_wait():
    world = World()
    world.nodes[M].alive = True
    world.topology = replace(TOPO, epoch=1, shards=(Shard("a", R2, (R1, R3, M)), TOPO.shards[1]))
    world.nodes[R2].role, world.nodes[R2].master = "master", None
    snap = Snapshot(NOW + 1, "s1", world.topology, world.observe(NOW + 1))
    fixes = reconcile(snap, T)
    kinds = sorted((a.addr, e.kind) for a, e in fixes)
    assert kinds == [(M, "convert-to-replica"), (R1, "repoint"), (R3, "repoint")]
    assert all(a.master == R2 for a, _ in fixes)
    assert reconcile(snap, T, busy=["a"]) == []
    # the role change is too recent: wait
    fresh = {a: replace(o, role_since=NOW + 1) for a, o in snap.nodes.items()}
    assert reconcile(replace(snap, nodes=fresh), T) == []
    # the topology's master is down: touch nothing
    world.nodes[R2].alive = False
    snap = Snapshot(NOW + 1, "s1", world.topology, world.observe(NOW + 1))
    assert reconcile(snap, T) == []


# -- planned switchover ------------------------------------------------------


class LiveWorld(World):
    """The master is alive: a planned switchover."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes[M].alive = True
        self.nodes[M].offset = 100
        self.paused = False
        self.caught_up_after = 2  # CheckCaughtUp fails this many times first

    def observe(self, now):
        out = super().observe(now)
        return {
            a: replace(o, link_up=o.role is NodeRole.REPLICA and o.master == M)
            for a, o in out.items()
        }

    def perform(self, action) -> bool:
        if isinstance(action, PauseWrites):
            self.paused = True
            return self.nodes[action.addr].alive
        if isinstance(action, CheckCaughtUp):
            if self.caught_up_after > 0:
                self.caught_up_after -= 1
                return False
            self.nodes[action.replica].offset = self.nodes[action.master].offset
            return True
        return super().perform(action)


def test_planned_switchover_full_run():
    world = LiveWorld()
    snap = Snapshot(NOW, "s1", TOPO, world.observe(NOW))
    assert isinstance(start("a", 1, snap, T), Abort)  # unplanned: the master answers
    fo = start_planned("a", 1, snap, T)
    assert isinstance(fo, Failover) and fo.step is Step.PAUSE and fo.planned
    assert fo.candidate == R2 and fo.others == (R1, R3, M)
    fo, done = drive(world, fo, NOW)
    assert fo.step is Step.DONE, fo.reason
    assert world.paused
    assert done == 1 + 3 + 1 + 1 + 3 + 1  # pause, catch-up x3, promote, verify, repoint x3, publish
    assert world.topology.shards[0] == Shard("a", R2, (R1, R3, M))
    assert world.nodes[M].role == "replica" and world.nodes[M].master == R2
    assert_one_master(world)


def test_planned_catchup_never_reached_aborts():
    world = LiveWorld()
    world.caught_up_after = 10**6
    fo = start_planned("a", 1, Snapshot(NOW, "s1", TOPO, world.observe(NOW)), T)
    now = NOW
    while fo.step not in (Step.DONE, Step.ABORTED):
        fo, actions = next_actions(fo, now, T, world.topology)
        for a in actions:
            if not isinstance(a, Abort):
                fo = on_result(fo, a, world.perform(a), now, T)
        now += 0.05
    assert fo.step is Step.ABORTED and "step catchup timed out" in fo.reason
    assert world.nodes[R2].role == "replica"  # nothing was promoted
    assert world.topology.epoch == 0


@pytest.mark.parametrize(
    ("to", "why"),
    [
        (Address("127.0.0.1", 1), "is not a replica of shard a"),
        (R3, "is not up and replicating"),
    ],
)
def test_planned_refusals(to, why):
    world = LiveWorld()
    world.nodes[R3].master = B  # replicating from elsewhere
    out = start_planned("a", 1, Snapshot(NOW, "s1", TOPO, world.observe(NOW)), T, to)
    assert isinstance(out, Abort) and why in out.reason


def test_planned_needs_a_healthy_master():
    world = World()  # the master is dead
    out = start_planned("a", 1, Snapshot(NOW, "s1", TOPO, world.observe(NOW)), T)
    assert isinstance(out, Abort) and "not a healthy master" in out.reason


@pytest.mark.parametrize("interrupt_after", range(11))
def test_planned_interrupted_at_every_step_settles_to_one_master(interrupt_after):
    world = LiveWorld()
    fo = start_planned("a", 1, Snapshot(NOW, "s1", TOPO, world.observe(NOW)), T, R1)
    fo, _ = drive(world, fo, NOW, limit=interrupt_after)
    # the leader died; the pause runs out by itself; others reconcile what they see
    settle(world, NOW + 5)
    shard = world.topology.shards[0]
    assert shard.master in (M, R1)
    if world.topology.epoch == 0:
        assert shard.master == M  # not published: the old master stays (its writes resume)
    if world.nodes[shard.master].role == "master":
        assert_one_master(world)
        return
    # Demoted but never published (the leader died between repointing the old
    # master and publishing): the topology's master is a replica. Once it has
    # been so for down_after it counts as down, and a new epoch repairs it.
    assert world.nodes[M].role == "replica" and world.topology.epoch == 0
    now = NOW + 10
    snap = Snapshot(
        now,
        "s2",
        world.topology,
        {a: replace(o, role_since=now - 1) for a, o in world.observe(now).items()},
    )
    flags, events = detect(Flags(), snap, T, quorum=1)
    assert flags.odown == {"a"} and "demoted" in [e.kind for e in events]
    fo2 = start("a", 2, snap, T)
    assert isinstance(fo2, Failover) and fo2.candidate == R1
    fo2, _ = drive(world, fo2, now)
    assert fo2.step is Step.DONE
    settle(world, now + 1)
    assert world.topology.shards[0].master == R1
    assert_one_master(world)
