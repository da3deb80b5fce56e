"""arq: jobs enqueued through the router, run by a real (burst) worker, results read
back. arq 0.28 pins ``redis<6`` while slotwarden needs redis-py 8, so it is not a test
extra: the test installs it with ``pip install --no-deps --target`` into the cache dir
(it needs only redis-py and click, both present) and runs ``arq_program.py`` in its
own process with that dir on PYTHONPATH.

Default key names, no hash tag: ``enqueue_job`` WATCHes ``arq:job:<id>`` and then
writes it and the queue ``arq:queue`` (another shard) in one MULTI, which the router
allows because the watched shard's part runs first (README, *Transactions*)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Target
from .redis_py_suite import PIP, cache_dir

ARQ = "0.28.0"
PROGRAM = str(Path(__file__).resolve().parent / "arq_program.py")


@pytest.fixture(scope="module")
def arq_path() -> str:
    target = cache_dir() / f"arq-{ARQ}"
    if not (target / "arq" / "__init__.py").exists():
        subprocess.run(
            [*PIP, "install", "-q", "--no-deps", "--target", str(target), f"arq=={ARQ}"],
            check=True,
            timeout=300,
        )
    return str(target)


def test_arq_enqueue_and_worker(arq_path: str, target: Target) -> None:
    env = {**os.environ, "PYTHONPATH": arq_path}
    done = subprocess.run(
        [sys.executable, PROGRAM, str(target.port), "arq:queue", ""],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    out = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert out == {"complete": 5, "failed": 0, "results": [10, 11, 12, 13, 14]}
    results_keys = [k for k in target.all_keys() if k.startswith(b"arq:result:")]
    assert len(results_keys) == 5  # kept for arq's default keep_result (1 h)
