"""The cluster.yaml slots editor (slotwarden.slots_edit): comments and layout kept,
the result validated, unknown layouts refused. Pure: files are strings here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from slotwarden.cluster.config import ConfigError, load
from slotwarden.procs import write_cluster_yaml
from slotwarden.slots_edit import LayoutError, ownership, rewrite, slots_spans

BUNDLED = Path(__file__).resolve().parents[2] / "cluster.yaml"


def rng(lo: int, hi: int) -> set[int]:
    return set(range(lo, hi + 1))


def test_bundled_file_only_the_slots_values_change():
    text = BUNDLED.read_text()
    new = rewrite(text, {"a": rng(0, 4999), "c": rng(5000, 5460) | rng(10923, 16383)})
    old_lines, new_lines = text.splitlines(), new.splitlines()
    assert len(old_lines) == len(new_lines)
    changed = [(o, n) for o, n in zip(old_lines, new_lines, strict=True) if o != n]
    assert changed == [
        ("    slots: 0-5460", "    slots: 0-4999"),
        ("    slots: 10923-16383", "    slots: 5000-5460,10923-16383"),
    ]
    # every comment survives, and the result loads as a valid config
    assert [x for x in old_lines if x.lstrip().startswith("#")] == [
        x for x in new_lines if x.lstrip().startswith("#")
    ]
    data = yaml.safe_load(new)
    assert [s["slots"] for s in data["shards"]] == [
        "0-4999",
        "5461-10922",
        "5000-5460,10923-16383",
    ]


def test_round_trip_through_the_loader(tmp_path: Path):
    path = tmp_path / "cluster.yaml"
    path.write_text(BUNDLED.read_text())
    before = ownership(load(path))
    path.write_text(rewrite(path.read_text(), {"a": rng(0, 5461), "b": rng(5462, 10922)}))
    after = ownership(load(path))
    assert after["a"] == before["a"] | {5461}
    assert after["b"] == before["b"] - {5461}
    assert after["c"] == before["c"]


def test_fixture_files_written_by_safe_dump(tmp_path: Path):
    class Fake:
        def __init__(self, port: int) -> None:
            self.addr = f"127.0.0.1:{port}"

    path = str(tmp_path / "c.yaml")
    write_cluster_yaml(path, [Fake(7001), Fake(7002)], [[Fake(7101)], []])  # type: ignore[list-item]
    text = Path(path).read_text()
    new = rewrite(text, {"a": rng(0, 99), "b": rng(100, 16383)})
    assert ownership(load_text(tmp_path, new)) == {"a": rng(0, 99), "b": rng(100, 16383)}
    # nothing but the two values changed
    assert new.replace("0-99", "X").replace("100-16383", "Y") == text.replace(
        "0-8191", "X"
    ).replace("8192-16383", "Y")


def load_text(tmp_path: Path, text: str):
    p = tmp_path / "check.yaml"
    p.write_text(text)
    return load(p)


QUOTED = """\
name: q  # trailing comment
router:
  listen: 127.0.0.1:7777
shards:
  # the first shard
  - name: a
    slots: "0-8191"   # half
    master: 127.0.0.1:7001
  - {name: b, slots: '8192-16383', master: 127.0.0.1:7002}
"""


def test_quoting_and_flow_mappings_kept():
    new = rewrite(QUOTED, {"a": rng(0, 99) | rng(200, 299), "b": rng(100, 199) | rng(300, 16383)})
    assert 'slots: "0-99,200-299"   # half' in new
    assert "{name: b, slots: '100-199,300-16383', master: 127.0.0.1:7002}" in new
    assert "# the first shard" in new and "# trailing comment" in new


def test_empty_slots_are_quoted():
    spans = slots_spans(QUOTED)
    assert set(spans) == {"a", "b"}
    # a shard kept with no slots (drained): `slots: ""`, valid since the plan's change
    new = rewrite(QUOTED, {"a": set(), "b": rng(0, 16383)})
    assert 'slots: ""   # half' in new
    assert "{name: b, slots: '0-16383', master: 127.0.0.1:7002}" in new


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("name: x\nshards: 3\n", "no 'shards:' list"),
        (
            "name: x\ndefaults: &d {slots: 0-16383}\nshards:\n  - <<: *d\n    name: a\n",
            "anchors",
        ),
        ("name: x\nshards:\n  - name: a\n    slots: |\n      0-16383\n", "block scalar"),
        ("name: x\nshards:\n  - name: a\n    master: 127.0.0.1:1\n", "no literal 'slots:'"),
        ("name: x\nshards:\n  - name: a\n    slots: &s 0-16383\n", "anchor"),
        ("- just a list\n", "not a YAML mapping"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_unknown_layouts_are_refused(text: str, why: str):
    with pytest.raises(LayoutError, match=why) as info:
        rewrite(text, {"a": rng(0, 16383)})
    assert str(info.value).startswith("edit slots by hand: ")


def test_unknown_shard_and_invalid_results_are_refused():
    text = BUNDLED.read_text()
    with pytest.raises(LayoutError, match="no shard named zz"):
        rewrite(text, {"zz": rng(0, 1)})
    # a gap: slots 0-9 owned by nobody -> the config check refuses, nothing returned
    with pytest.raises(ConfigError) as info:
        rewrite(text, {"a": rng(10, 5460)})
    assert any("not assigned to any shard" in p for p in info.value.problems)


def test_bundled_copies_identical():
    packaged = BUNDLED.parent / "slotwarden" / "cluster.yaml"
    assert os.path.exists(packaged)
    assert packaged.read_text() == BUNDLED.read_text()
