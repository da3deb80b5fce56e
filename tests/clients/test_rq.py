"""rq: jobs enqueued through the router, run by a real worker, results read back."""

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
    q = Queue("clients", connection=conn)
    jobs = [q.enqueue(add, i, 100) for i in range(8)]
    assert q.count == 8
    assert SimpleWorker([q], connection=conn).work(burst=True) is True
    for i, job in enumerate(jobs):
        job.refresh()
        assert job.get_status() == "finished"
        assert job.return_value() == i + 100
    assert q.count == 0


def test_rq_worker_process(target: Target) -> None:
    """`rq worker --burst` as its own process (fork per job), results read back."""
    from rq import Queue
    from rq.job import Job

    conn = target.client()
    q = Queue("clients-proc", connection=conn)
    ids = [q.enqueue("clients.jobs.add", i, 1).id for i in range(3)]
    env = {**os.environ, "PYTHONPATH": TESTS + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(
        [sys.executable, "-m", "rq.cli", "worker", "--burst", "--url", target.url, "clients-proc"],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    results = [Job.fetch(i, connection=conn).return_value() for i in ids]
    assert results == [1, 2, 3]
