"""cluster.yaml: ``slots: ""`` keeps a shard that owns no slots (README *Resharding*)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slotwarden.cluster import config as cfg
from slotwarden.cluster.errors import ConfigError

BUNDLED = Path(__file__).resolve().parents[3] / "cluster.yaml"


def base() -> dict:
    return yaml.safe_load(BUNDLED.read_text())


def test_a_shard_with_empty_slots_is_kept_and_owns_nothing():
    data = base()
    data["shards"][1]["slots"] = "5461-16383"
    data["shards"][2]["slots"] = ""
    c = cfg.parse(data)
    assert [s.name for s in c.shards] == ["a", "b", "c"]
    assert c.shards[2].slots == () and c.shards[2].slot_count == 0
    assert c.shards[2].slots_text == ""
    slotmap = c.slotmap(0)
    assert slotmap.slots_of(2) == [] and slotmap.to_dict()["shards"][2]["slots"] == ""


@pytest.mark.parametrize("value", ["", "  "])
def test_empty_slots_still_need_every_slot_owned_once(value: str):
    data = base()
    data["shards"][2]["slots"] = value  # c's 10923-16383 now belong to nobody
    with pytest.raises(ConfigError) as info:
        cfg.parse(data)
    assert info.value.problems == ["shards: slots 10923-16383 are not assigned to any shard"]


def test_missing_slots_are_still_a_problem():
    data = base()
    del data["shards"][0]["slots"]
    with pytest.raises(ConfigError) as info:
        cfg.parse(data)
    assert info.value.problems == [
        "shards[0].slots: missing (want slot ranges like '0-5460' or '0-100,200-300', "
        "or '' for a shard that owns no slots)"
    ]
