"""rq: jobs enqueued through the router, run by a real worker, results read back.

Queue names follow the hash-tag recipe of docs/compatibility.md: rq >= 2 dequeues
a single queue with ``LMOVE rq:queue:NAME rq:queue:NAME:intermediate`` (``BLMOVE``
when not in burst mode), a move that fails with CROSSSLOT when the two keys are on
different shards, and a worker on several queues BLPOPs them in one call. Names
sharing one tag (``{rq}:high``, ``{rq}:low``) keep every queue key in one slot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

rq = pytest.importorskip("rq")

from .conftest import Target  # noqa: E402
from .jobs import add  # noqa: E402

TESTS = str(Path(__file__).resolve().parent.parent)


def test_rq_enqueue_and_simple_worker(target: Target) -> None:
    from rq import Queue, SimpleWorker

    conn = target.client()
    high = Queue("{rq}:high", connection=conn)
    low = Queue("{rq}:low", connection=conn)
    jobs = [(high if i % 2 else low).enqueue(add, i, 100) for i in range(8)]
    assert (high.count, low.count) == (4, 4)
    assert SimpleWorker([high, low], connection=conn).work(burst=True) is True
    for i, job in enumerate(jobs):
        job.refresh()
        assert job.get_status() == "finished"
        assert job.return_value() == i + 100
    assert (high.count, low.count) == (0, 0)


def test_rq_worker_process(target: Target) -> None:
    """`rq worker --burst` as its own process (fork per job), results read back."""
    from rq import Queue
    from rq.job import Job

    conn = target.client()
    q = Queue("{rq}:proc", connection=conn)
    ids = [q.enqueue("clients.jobs.add", i, 1).id for i in range(3)]
    env = {**os.environ, "PYTHONPATH": TESTS + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(
        [sys.executable, "-m", "rq.cli", "worker", "--burst", "--url", target.url, "{rq}:proc"],
        env=env,
        capture_output=True,
        timeout=60,
    )
    log = done.stderr.decode()[-3000:]
    # rq's worker exits 0 even after "found an unhandled exception, quitting..."
    assert done.returncode == 0, log
    assert "unhandled exception" not in log, log
    results = [Job.fetch(i, connection=conn).return_value() for i in ids]
    assert results == [1, 2, 3]
