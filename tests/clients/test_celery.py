"""celery + kombu: a real worker process (solo pool) runs tasks sent through the
router, with the redis broker and the redis result backend, and the results come
back. Uses the hash-tag recipe (``global_keyprefix: "{celery}"``) of
docs/compatibility.md: the worker BRPOPs its priority queues in one call."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("celery")

from .conftest import Target
from .jobs import make_celery

TESTS = str(Path(__file__).resolve().parent.parent)


def test_celery_worker_runs_tasks(target: Target, tmp_path: Path) -> None:
    app = make_celery(target.url, target.url)
    env = {
        **os.environ,
        "PYTHONPATH": TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "CLIENTS_CELERY_BROKER": target.url,
        "CLIENTS_CELERY_BACKEND": target.url,
    }
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "clients.jobs:celery_app",
                "worker",
                "--pool=solo",
                "--concurrency=1",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel=INFO",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        results = [app.send_task("clients.add", (i, 1000)) for i in range(5)]
        got = [r.get(timeout=30) for r in results]
        assert got == [1000, 1001, 1002, 1003, 1004], log.read_text()
        assert worker.poll() is None, log.read_text()
        keys = target.all_keys()
        assert keys and all(k.startswith(b"{celery}") for k in keys), keys
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=5)
        app.close()
    assert worker.returncode == 0, log.read_text()[-3000:]
