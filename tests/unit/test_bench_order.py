"""The benches' peer order per repetition (bench/throughput.py `rotated`, which
bench/latency.py uses too): no peer always first, or always right after the same other one."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "throughput.py"


def load_throughput():  # bench/ is not a package: the script, loaded by path
    spec = importlib.util.spec_from_file_location("bench_throughput", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_throughput", module)
    spec.loader.exec_module(module)
    return module


def test_every_peer_goes_first_once_in_three_runs_and_six_runs_make_every_order() -> None:
    from itertools import permutations

    tp = load_throughput()
    peers = ("direct", "twemproxy", "router")
    orders = [tuple(tp.rotated(peers, rep)) for rep in range(6)]
    assert sorted(o[0] for o in orders[:3]) == sorted(peers)
    assert sorted(orders) == sorted(permutations(peers))
    assert tp.rotated(peers, 6) == list(peers) and tp.rotated((), 3) == []
