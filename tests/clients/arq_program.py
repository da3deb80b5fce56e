"""A small arq program (run by test_arq.py in its own process, with arq on PYTHONPATH):
enqueue jobs, run a burst worker over them, print the results as JSON.

    python arq_program.py PORT QUEUE JOB_ID_PREFIX
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid


async def add(ctx: dict, a: int, b: int) -> int:
    return a + b


async def main(port: int, queue: str, prefix: str) -> dict[str, object]:
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.worker import Worker, func

    settings = RedisSettings(host="127.0.0.1", port=port, conn_timeout=5)
    pool = await create_pool(settings, default_queue_name=queue)
    try:
        jobs = [
            await pool.enqueue_job("add", i, 10, _job_id=prefix + uuid.uuid4().hex)
            for i in range(5)
        ]
        worker = Worker(
            functions=[func(add, name="add")],
            redis_pool=pool,
            queue_name=queue,
            burst=True,
            poll_delay=0.05,
            handle_signals=False,
        )
        await worker.main()
        return {
            "complete": worker.jobs_complete,
            "failed": worker.jobs_failed,
            "results": [await j.result(timeout=5) for j in jobs if j is not None],
        }
    finally:
        await pool.aclose()


if __name__ == "__main__":
    out = asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
    print(json.dumps(out))
