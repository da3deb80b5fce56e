"""`sentinel.run.publish.plan_publication`: what a leader publishes over the newest topology
(the paths that read no node: no new migration to check room for)."""

from __future__ import annotations

from sentinel.decide import reconfigure
from sentinel.run.publish import plan_publication
from slotwarden.cluster.config import ClusterConfig, parse
from slotwarden.cluster.topology import Address, Migration

A, B, C = (Address("127.0.0.1", p) for p in (7001, 7002, 7003))


def config(**slots: str) -> ClusterConfig:
    nodes = {"a": A, "b": B, "c": C}
    shards = [{"name": n, "slots": s, "master": str(nodes[n])} for n, s in slots.items()]
    return parse({"name": "t", "router": {"listen": "127.0.0.1:7777"}, "shards": shards})


MOVING = config(a="100-8191", b="0-99,8192-16383")
TO_B = Migration(((0, 99),), "a", "b")


def moving(epoch: int = 4):
    return reconfigure.merge(MOVING, config(a="0-8191", b="8192-16383").slotmap(3), epoch)


async def plan(latest, cfg, finishing, edit, epoch=9):
    return await plan_publication(latest, cfg, finishing, edit, epoch, timeout=0.5, name="t")


async def test_an_edit_redirecting_a_migration_seen_only_now_is_refused_whole():
    # this sentinel validated the file against a map without the migration; a peer had it
    back = config(a="0-8191", b="8192-16383")
    out = await plan(moving(), back, [], True)
    assert reconfigure.same_layout(out.layout, moving()) and out.layout.epoch == 9
    assert [e.kind for e in out.refused] == ["reconfigure-refused"]
    assert "slots 0-99 are still moving from shard a to shard b" in out.refused[0].text


async def test_a_finish_is_published_even_when_the_edit_is_refused():
    back = config(a="0-8191", b="8192-16383")
    three = config(a="100-8191", b="0-99,8192-16000", c="16001-16383")
    with_c = reconfigure.merge(three, moving(), 5)
    to_c = with_c.migrations[1]
    out = await plan(with_c, three, [TO_B], False)
    assert out.ended == [TO_B] and out.layout.migrations == (to_c,) and not out.refused
    out = await plan(with_c, back, [to_c], True)
    assert out.ended == [to_c] and out.layout.migrations == (TO_B,)
    assert [e.kind for e in out.refused] == ["reconfigure-refused"]


async def test_a_finish_for_a_migration_already_gone_is_dropped():
    done = reconfigure.finished(moving(), TO_B, MOVING, 5)
    out = await plan(done, MOVING, [TO_B], False)
    assert out.ended == [] and reconfigure.same_layout(out.layout, done)
