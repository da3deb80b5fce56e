"""``slotwarden router``: load the config, build the `Router`, run it until SIGTERM/SIGINT.

Owns the process edges: exit codes (1: a bad config, an unreadable secret
or a socket that cannot be bound, said in one line: ``slotwarden router: cannot
listen on HOST:PORT: address already in use``; 2: a bad ``--listen``), the signal
handlers (SIGTERM/SIGINT stop and drain, SIGHUP reloads cluster.yaml), and
the event loop (uvloop when installed); with ``router.workers`` > 1 it runs the
supervisor (router.control.supervisor) instead, and in a worker (started by
it) a Router in its worker role (router.control.workers). Invariant: nothing here decides
anything about routing; it only starts and stops `router.app.Router`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from router.app import Router
from router.control.running import RunningConfig
from router.control.supervisor import Supervisor
from router.control.workers import WorkerRole, tag_logs, watch_supervisor
from router.errors import ListenError
from slotwarden.cluster.config import ClusterConfig, load
from slotwarden.cluster.errors import ConfigError, SecretError
from slotwarden.cluster.secrets import read_secret
from slotwarden.cluster.topology import Address

log = logging.getLogger("slotwarden.router")


def _install_uvloop() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


async def _run(router: Router) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_stop(sig: signal.Signals) -> None:
        if not stop.is_set():
            log.info(
                "%s: draining %d client connection(s), up to %d ms (router.drain_timeout_ms)",
                sig.name, len(router.clients.by_id),
                router.running.config.router.drain_timeout_ms,
            )  # fmt: skip
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_stop, sig)
    if router.reloader is not None:
        reloader = router.reloader
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGHUP, lambda: reloader.reload("SIGHUP"))
    await router.serve(stop)


def main(config_path: str, listen: str | None = None) -> int:
    """Run the router in the foreground until SIGTERM/SIGINT. Returns the exit code."""
    try:
        config = load(config_path)
        listen_addr = Address.parse(listen) if listen else None
    except ConfigError as exc:
        print(f"{exc.source}: {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"--listen: {exc}", file=sys.stderr)
        return 2
    role = WorkerRole.from_env()  # set by the supervisor of router.workers > 1
    try:
        secret = read_secret(config)
        if role is None and config.router.workers > 1:
            RunningConfig.load(config)  # the workers' SecretError, said once, here
            return _supervise(config, listen_addr or config.router.listen, secret)
        router = Router(config, listen_addr, secret, role)
    except SecretError as exc:
        print(f"router: {exc}", file=sys.stderr)
        return 1
    if role is not None:
        if not watch_supervisor(role):
            return 0  # the supervisor is gone already
        tag_logs(role)
    impl = _install_uvloop()
    log.info("event loop: %s", impl)
    try:
        asyncio.run(_run(router))
    except (ListenError, BaseExceptionGroup) as exc:
        cause = _listen_error(exc)
        if cause is None:
            raise
        print(f"slotwarden router: {cause}", file=sys.stderr)
        return 1
    return 0


def _supervise(config: ClusterConfig, listen: Address, secret: str | None) -> int:
    """``router.workers`` > 1: run the supervisor (router.control.supervisor)."""
    supervisor = Supervisor(config, listen, secret, config.router.workers)

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_stop(sig: signal.Signals) -> None:
            if not stop.is_set():
                log.info(
                    "%s: draining %d worker(s), up to %d ms (router.drain_timeout_ms)",
                    sig.name, supervisor.count, config.router.drain_timeout_ms,
                )  # fmt: skip
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, supervisor.forward, signal.SIGHUP)
        return await supervisor.serve(stop)

    try:
        return asyncio.run(run())
    except (ListenError, BaseExceptionGroup) as exc:
        cause = _listen_error(exc)
        if cause is None:
            raise
        print(f"slotwarden router: {cause}", file=sys.stderr)
        return 1


def _listen_error(exc: BaseException) -> ListenError | None:
    """The `ListenError` that ended the router, also from inside its TaskGroup's group."""
    if isinstance(exc, ListenError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _listen_error(inner)
            if found is not None:
                return found
    return None
