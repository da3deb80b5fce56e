"""arq: jobs enqueued through the router, run by a real (burst) worker, results read
back. arq 0.28 pins ``redis<6`` while slotwarden needs redis-py 8, so it is not a test
extra: the test installs it with ``pip install --no-deps --target`` into the cache dir
(it needs only redis-py and click, both present) and imports it from there."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable

import pytest

from .conftest import Target
from .redis_py_suite import PIP, cache_dir

ARQ = "0.28.0"
QUEUE = "{arq}:queue"  # the hash-tag recipe: the queue, and every job id below, in one slot


@pytest.fixture(scope="module")
def arq_path() -> None:
    target = cache_dir() / f"arq-{ARQ}"
    if not (target / "arq" / "__init__.py").exists():
        subprocess.run(
            [*PIP, "install", "-q", "--no-deps", "--target", str(target), f"arq=={ARQ}"],
            check=True,
            timeout=300,
        )
    if str(target) not in sys.path:
        sys.path.append(str(target))
    pytest.importorskip("arq")


async def add(ctx: dict, a: int, b: int) -> int:
    return a + b


async def run_jobs(target: Target, queue: str, job_id: Callable[[], str]) -> list[int]:
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.worker import Worker, func

    settings = RedisSettings(host="127.0.0.1", port=target.port, conn_timeout=5)
    pool = await create_pool(settings, default_queue_name=queue)
    try:
        jobs = [await pool.enqueue_job("add", i, 10, _job_id=job_id()) for i in range(5)]
        assert all(j is not None for j in jobs)
        worker = Worker(
            functions=[func(add, name="add")],
            redis_pool=pool,
            queue_name=queue,
            burst=True,
            poll_delay=0.05,
            handle_signals=False,
        )
        await worker.main()
        assert (worker.jobs_complete, worker.jobs_failed) == (5, 0)
        return [await j.result(timeout=5) for j in jobs]
    finally:
        await pool.aclose()


async def test_arq_enqueue_and_worker_with_hash_tag(arq_path: None, target: Target) -> None:
    results = await run_jobs(target, QUEUE, lambda: "{arq}" + uuid.uuid4().hex)
    assert results == [10, 11, 12, 13, 14]
    results_keys = [k for k in target.all_keys() if k.startswith(b"arq:result:")]
    assert len(results_keys) == 5  # kept for arq's default keep_result (1 h)
