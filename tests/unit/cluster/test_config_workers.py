"""router.workers in cluster.yaml: 1 (default), a count, or "auto" (the usable cores)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from slotwarden.cluster import config as cfg
from slotwarden.cluster.errors import ConfigError

BUNDLED = Path(__file__).resolve().parents[3] / "cluster.yaml"


def base() -> dict:
    return yaml.safe_load(BUNDLED.read_text())


def test_default_is_one_and_the_bundled_file_says_so() -> None:
    data = base()
    assert data["router"]["workers"] == 1
    del data["router"]["workers"]
    assert cfg.parse(data).router.workers == 1


def test_a_count_and_auto() -> None:
    data = base()
    data["router"]["workers"] = 4
    assert cfg.parse(data).router.workers == 4
    data["router"]["workers"] = "auto"
    assert cfg.parse(data).router.workers == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("bad", [0, -1, 257, "junk", "4", True, 1.5, None, [2]])
def test_anything_else_is_refused_in_one_line(bad: object) -> None:
    data = base()
    data["router"]["workers"] = bad
    with pytest.raises(ConfigError) as info:
        cfg.parse(data)
    assert info.value.problems == [
        f'router.workers: must be an integer 1..256 or "auto", got {cfg._describe(bad)}'
    ]
