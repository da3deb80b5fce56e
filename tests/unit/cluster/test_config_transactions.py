"""router.transactions in cluster.yaml: split (default) or single-shard, anything else refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slotwarden.cluster import config as cfg
from slotwarden.cluster.errors import ConfigError

BUNDLED = Path(__file__).resolve().parents[3] / "cluster.yaml"


def base() -> dict:
    return yaml.safe_load(BUNDLED.read_text())


def test_default_is_split_and_the_bundled_file_says_so() -> None:
    data = base()
    assert data["router"]["transactions"] == "split"
    del data["router"]["transactions"]
    assert cfg.parse(data).router.transactions == "split"


def test_single_shard_is_accepted() -> None:
    data = base()
    data["router"]["transactions"] = "single-shard"
    assert cfg.parse(data).router.transactions == "single-shard"


@pytest.mark.parametrize("bad", ["both", "SPLIT", 1, True, None, ["split"]])
def test_anything_else_is_refused_with_the_choices(bad: object) -> None:
    data = base()
    data["router"]["transactions"] = bad
    with pytest.raises(ConfigError) as info:
        cfg.parse(data)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(
        "router.transactions: must be one of split, single-shard, got "
    )
