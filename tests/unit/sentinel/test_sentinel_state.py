"""state: atomic persistence, resume after restart, vote persisted before the reply."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

from sentinel.act.state import Persisted, StateStore, answer_vote
from sentinel.decide.election import VoteState
from sentinel.errors import StateError
from slotwarden.cluster.topology import Address, Shard, SlotMap

TOPO = SlotMap.build(3, [Shard("a", Address("127.0.0.1", 1), ())], [[(0, 16383)]])


def test_fresh_store_is_epoch_zero(tmp_path):
    st = StateStore(tmp_path, "s1").load()
    assert st == Persisted(VoteState(), None)


def test_roundtrip_and_no_tmp_left(tmp_path):
    store = StateStore(tmp_path, "s1")
    store.save(Persisted(VoteState(4, 4, "s2"), TOPO))
    back = StateStore(tmp_path, "s1").load()
    assert back.votes == VoteState(4, 4, "s2")
    assert back.topology == TOPO
    assert os.listdir(tmp_path / "s1") == ["state.json"]


def test_vote_is_on_disk_before_the_answer(tmp_path):
    store = StateStore(tmp_path, "s1")
    _st, granted = answer_vote(store, store.load(), 7, "s2")
    assert granted
    # a "restart": a new store reading the same directory
    restarted = StateStore(tmp_path, "s1").load()
    assert restarted.votes == VoteState(7, 7, "s2")
    _, granted = answer_vote(store, restarted, 7, "s3")
    assert not granted
    _, granted = answer_vote(store, restarted, 6, "s3")
    assert not granted


def test_failed_save_grants_nothing(tmp_path):
    (tmp_path / "s1").write_text("a file where the state directory should be")
    store = StateStore(tmp_path, "s1")
    with pytest.raises(OSError):
        answer_vote(store, Persisted(VoteState(), None), 1, "s2")


def test_refused_vote_does_not_rewrite(tmp_path):
    store = StateStore(tmp_path, "s1")
    st, _ = answer_vote(store, store.load(), 2, "s2")
    before = store.path.stat().st_mtime_ns
    os.utime(store.path, ns=(1, 1))
    st2, granted = answer_vote(store, st, 2, "s3")
    assert not granted and st2 == st
    assert store.path.stat().st_mtime_ns == 1 != before


def test_corrupt_file_is_an_error_not_a_reset(tmp_path):
    store = StateStore(tmp_path, "s1")
    store.save(Persisted(VoteState(2, 2, "s1"), None))
    data = json.loads(store.path.read_text())
    del data["voted_epoch"]
    store.path.write_text(json.dumps(data))
    with pytest.raises(StateError):
        store.load()


PURE = (
    "decide/detector",
    "decide/election",
    "decide/eligible",
    "decide/failover",
    "decide/model",
    "errors",
)
FORBIDDEN = {"asyncio", "aiohttp", "socket", "redis", "selectors", "ssl"}


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_import_no_io(name):
    path = Path(__file__).resolve().parents[3] / "sentinel" / f"{name}.py"
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
            if node.module.startswith("sentinel."):
                mods = [node.module]
                if node.module == "sentinel.decide":  # `from sentinel.decide import election`
                    mods = [f"{node.module}.{a.name}" for a in node.names]
                for mod in mods:
                    assert mod.removeprefix("sentinel.").replace(".", "/") in PURE, (
                        f"{name} imports {mod}"
                    )
    assert not imported & FORBIDDEN, imported & FORBIDDEN
