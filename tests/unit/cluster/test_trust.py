"""slotwarden.cluster.trust: what a topology from outside may name (issue 10, item 7)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slotwarden.cluster.config import ClusterConfig, parse
from slotwarden.cluster.topology import Address, Shard, SlotMap
from slotwarden.cluster.trust import (
    MAX_EPOCH_JUMP,
    EpochJump,
    TopologyRefused,
    check_epoch,
    check_nodes,
    parse_topology,
    restrict,
)

BUNDLED = Path(__file__).resolve().parents[3] / "cluster.yaml"
FOREIGN = Address("10.0.0.9", 6379)


def bundled() -> ClusterConfig:
    return parse(yaml.safe_load(BUNDLED.read_text()))


def with_shard(slotmap: SlotMap, index: int, shard: Shard) -> SlotMap:
    shards = list(slotmap.shards)
    shards[index] = shard
    return SlotMap(slotmap.epoch + 1, tuple(shards), slotmap.owner)


def test_the_files_own_layout_and_a_failover_inside_it_pass() -> None:
    config = bundled()
    slotmap = config.slotmap(3)
    check_nodes(slotmap, config)
    a = slotmap.shards[0]
    check_nodes(with_shard(slotmap, 0, Shard("a", a.replicas[0], (a.master,))), config)


def test_a_node_of_another_shard_or_outside_the_file_is_refused() -> None:
    config = bundled()
    slotmap = config.slotmap(3)
    a, b = slotmap.shards[0], slotmap.shards[1]
    with pytest.raises(TopologyRefused, match=r"^shard a: node 10\.0\.0\.9:6379 is not in cluster"):
        check_nodes(with_shard(slotmap, 0, Shard("a", FOREIGN, a.replicas)), config)
    with pytest.raises(TopologyRefused, match=r"shard a: node 127\.0\.0\.1:7002"):
        check_nodes(with_shard(slotmap, 0, Shard("a", b.master, a.replicas)), config)
    with pytest.raises(TopologyRefused, match=r"shard a: node 10\.0\.0\.9:6379"):
        check_nodes(with_shard(slotmap, 0, Shard("a", a.master, (FOREIGN,))), config)
    with pytest.raises(TopologyRefused, match=r"shard x is not in cluster\.yaml"):
        check_nodes(with_shard(slotmap, 0, Shard("x", a.master, a.replicas)), config)


def test_epoch_bound() -> None:
    check_epoch(5 + MAX_EPOCH_JUMP, 5)
    with pytest.raises(EpochJump, match="more than 1000 above the current epoch 5"):
        check_epoch(6 + MAX_EPOCH_JUMP, 5)


@pytest.mark.parametrize("epoch", [True, 1.5, "7", None, -1, 1 << 63, 10**30])
def test_parse_refuses_epochs_that_are_not_64_bit_integers(epoch: object) -> None:
    data = bundled().slotmap(0).to_dict()
    data["epoch"] = epoch
    with pytest.raises(TopologyRefused, match="epoch must be an integer"):
        parse_topology(data)


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"epoch": 1, "shards": [{"name": "s", "slots": "0-16383", "master": "h:1"}] * 300},
        {"epoch": 1, "shards": [{"name": "a", "slots": "0-16383", "master": 5}]},
        {"epoch": 1, "shards": [{"name": "a", "slots": 5, "master": "h:1"}]},
        {"epoch": 1, "shards": [{"name": "a", "slots": "0-16383"}]},
        {"epoch": 1, "shards": [{"name": "a", "slots": "0-16383", "master": "h:1", "replicas": 3}]},
    ],
)
def test_parse_raises_only_topology_refused(data: object) -> None:
    with pytest.raises(TopologyRefused):
        parse_topology(data)


def test_restrict_drops_unlisted_replicas_only() -> None:
    config = bundled()
    slotmap = config.slotmap(3)
    assert restrict(slotmap, config) is slotmap
    a = slotmap.shards[0]
    odd = with_shard(slotmap, 0, Shard("a", a.master, (FOREIGN, *a.replicas)))
    assert restrict(odd, config).shards[0] == a
