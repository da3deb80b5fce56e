"""slotwarden.cluster.trust: a draining shard the file no longer lists (README *Resharding*)."""

from __future__ import annotations

import re

import pytest

from slotwarden.cluster.config import ClusterConfig, parse
from slotwarden.cluster.topology import Address, Migration, Shard, SlotMap
from slotwarden.cluster.trust import TopologyRefused, check_nodes, restrict

A, B, C, C2, X = (Address("127.0.0.1", p) for p in (7001, 7002, 7003, 7013, 7999))


def config(*shards: tuple[str, str, Address, tuple[Address, ...]]) -> ClusterConfig:
    return parse(
        {
            "name": "t",
            "router": {"listen": "127.0.0.1:7777"},
            "shards": [
                {"name": n, "slots": s, "master": str(m), "replicas": [str(r) for r in rs]}
                for n, s, m, rs in shards
            ],
        }
    )


BEFORE = config(("a", "0-8191", A, ()), ("b", "8192-12287", B, ()), ("c", "12288-16383", C, (C2,)))
NOT_LISTED = re.escape("shard c is not in cluster.yaml")
AFTER = config(("a", "0-8191", A, ()), ("b", "8192-16383", B, ()))  # c removed: it drains


def draining(epoch: int = 5, c: Shard | None = None) -> SlotMap:
    shards = [Shard("a", A), Shard("b", B), c or Shard("c", C, (C2,))]
    ranges = [[(0, 8191)], [(8192, 16383)], []]
    return SlotMap.build(epoch, shards, ranges, [Migration(((12288, 16383),), "c", "b")])


def test_a_draining_shard_passes_with_the_nodes_the_receiver_knows():
    known = BEFORE.slotmap(4)
    check_nodes(draining(), AFTER, known)
    check_nodes(draining(c=Shard("c", C2, (C,))), AFTER, known)  # failed over: same nodes
    check_nodes(draining(c=Shard("c", C)), AFTER, known)  # a replica dropped


def test_a_draining_shard_the_receiver_never_knew_is_refused():
    with pytest.raises(TopologyRefused, match=NOT_LISTED):
        check_nodes(draining(), AFTER)
    with pytest.raises(TopologyRefused, match=NOT_LISTED):
        check_nodes(draining(), AFTER, AFTER.slotmap(4))


def test_a_draining_shard_with_a_foreign_node_is_refused():
    with pytest.raises(
        TopologyRefused, match=re.escape(f"shard c: node {X} is not in cluster.yaml")
    ):
        check_nodes(draining(c=Shard("c", C, (X,))), AFTER, BEFORE.slotmap(4))


def test_an_unlisted_shard_that_owns_slots_or_moves_nothing_is_refused():
    known = BEFORE.slotmap(4)
    with pytest.raises(TopologyRefused, match=NOT_LISTED):
        check_nodes(BEFORE.slotmap(5), AFTER, known)  # owns slots
    idle = draining().derive(migrations=())
    with pytest.raises(TopologyRefused, match=NOT_LISTED):
        check_nodes(idle, AFTER, known)  # no slots, but no migration either


def test_restrict_keeps_a_draining_shards_replicas():
    assert restrict(draining(), AFTER) == draining()
