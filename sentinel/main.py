"""``slotwarden sentinel``: load the config and the secret, run one sentinel until SIGTERM.

Owns process concerns only: the secret (read by `slotwarden.cluster.secrets.read_secret`,
the one rule shared with the router: the file ``sentinel.secret_file`` or
the env var named by ``sentinel.secret_env``, printable ASCII, never
logged; a sentinel refuses to start without one), the probe routes given on
the command line, signal handling (SIGTERM/SIGINT stop, SIGHUP reloads
cluster.yaml, see `sentinel.run.reload`), and the exit status (0 after
SIGTERM/SIGINT, 1 on a startup problem reported in one sentence).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping, Sequence

from sentinel.act.probe import set_backend_auth
from sentinel.errors import SetupError, StateError
from sentinel.http.api import serve
from sentinel.run.loop import Sentinel
from slotwarden.cluster.config import ClusterConfig, load
from slotwarden.cluster.errors import SecretError
from slotwarden.cluster.secrets import read_secret as read_shared_secret
from slotwarden.cluster.topology import Address

log = logging.getLogger("sentinel")


def require_secret(config: ClusterConfig, environ: Mapping[str, str] = os.environ) -> str:
    """The shared secret (`slotwarden.cluster.secrets.read_secret`); a sentinel needs one."""
    sc = config.sentinel
    assert sc is not None
    try:
        secret = read_shared_secret(config, environ)
    except SecretError as exc:
        raise SetupError(str(exc)) from None
    if secret is None:
        raise SetupError(
            f"no shared secret: set the environment variable {sc.secret_env} "
            "(sentinel.secret_env) or sentinel.secret_file"
        )
    return secret


def parse_routes(items: Sequence[str]) -> dict[Address, Address]:
    """``NODE=VIA`` pairs: probe and command NODE at address VIA."""
    routes = {}
    for item in items:
        node, sep, via = item.partition("=")
        if not sep:
            raise SetupError(f"--probe-via {item!r}: want NODE=VIA (two host:port addresses)")
        try:
            routes[Address.parse(node)] = Address.parse(via)
        except ValueError as exc:
            raise SetupError(f"--probe-via {item!r}: {exc}") from None
    return routes


async def _run(sentinel: Sentinel) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloader = sentinel.reloader
    if reloader is not None:
        loop.add_signal_handler(signal.SIGHUP, lambda: reloader.reload("SIGHUP"))
    else:
        loop.add_signal_handler(signal.SIGHUP, lambda: log.info("SIGHUP: no file to reload"))
    main = asyncio.create_task(sentinel.run(serve), name=f"sentinel {sentinel.me}")
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({main, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (main, waiter):
            task.cancel()
        try:
            await main
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # the sentinel died on its own: say why, exit 1
            log.error("sentinel %s failed: %s", sentinel.me, _describe(exc))
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
    if stop.is_set():
        log.info("sentinel %s stopped", sentinel.me)
        return 0
    return 1


def main(
    config_path: str,
    sentinel_id: str,
    probe_via: Sequence[str] = (),
    step_pause_ms: int = 0,
) -> int:
    config = load(config_path)  # ConfigError is reported by the CLI
    if config.sentinel is None:
        print(f"{config_path}: no sentinel section; nothing to run")
        return 1
    try:
        secret = require_secret(config)
        set_backend_auth(config)
        routes = parse_routes(probe_via)
        sentinel = Sentinel(
            config, sentinel_id, secret, routes=routes, step_pause=step_pause_ms / 1000
        )
    except (SetupError, StateError, ValueError, SecretError) as exc:
        log.error("sentinel %s cannot start: %s", sentinel_id, exc)
        return 1
    return asyncio.run(_run(sentinel))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"
