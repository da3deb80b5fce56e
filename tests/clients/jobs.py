"""Job and task functions the rq, celery and arq workers import (``clients.jobs``)."""

from __future__ import annotations

import os


def add(a: int, b: int) -> int:
    return a + b


def whoami() -> str:
    return f"pid {os.getpid()}"


def make_celery(broker: str, backend: str):
    """The celery app both the test and its worker process build (same config)."""
    from celery import Celery

    app = Celery("clients", broker=broker, backend=backend)
    # The hash-tag recipe of docs/compatibility.md: every kombu key (the queue lists the
    # worker BRPOPs, bindings, unacked) and every result key in one slot.
    app.conf.broker_transport_options = {"global_keyprefix": "{celery}"}
    app.conf.result_backend_transport_options = {"global_keyprefix": "{celery}"}
    app.conf.broker_connection_retry_on_startup = True
    app.conf.worker_hijack_root_logger = False
    app.conf.task_default_queue = "clients"

    @app.task(name="clients.add")
    def add_task(a: int, b: int) -> int:
        return a + b

    return app


celery_app = (
    make_celery(os.environ["CLIENTS_CELERY_BROKER"], os.environ["CLIENTS_CELERY_BACKEND"])
    if "CLIENTS_CELERY_BROKER" in os.environ
    else None
)
