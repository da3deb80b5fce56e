"""The supervisor of a router with ``router.workers`` > 1: N worker processes, one admin endpoint.

    slotwarden router (supervisor: no client traffic, no backend connection)
      ├─ holds router.listen bound (SO_REUSEPORT, not listening): the port stays ours
      ├─ serves router.admin (router.control.workers_admin): /metrics merged,
      │   POST /topology and /reload sent to every worker, the rest from one worker
      └─ worker 0 … worker N-1: `python -m slotwarden router` with SLOTWARDEN_ROUTER_WORKER
          (router.control.workers), each a whole Router listening on router.listen
          with SO_REUSEPORT: the kernel spreads connections over the workers

- A worker that dies is started again (log line with its exit code or signal),
  after a backoff that doubles from `MIN_BACKOFF` to `MAX_BACKOFF` while the
  worker keeps dying within `STABLE_AFTER` seconds of its start, so a crash
  loop does not spin. Before every start the supervisor writes the latest slot
  map the running workers have (the highest epoch, from their ``/topology``) to
  the run directory: a restarted worker starts from it, not from the file's
  epoch 0. A worker that dies before its FIRST start is ready ends the run
  (exit 1, as a single router that cannot start).
- Topology updates reach every worker: each worker watches the sentinels and
  cluster.yaml itself; a push to the admin address is sent to every worker;
  SIGHUP is passed to every worker.
- SIGTERM / SIGINT: every worker is sent SIGTERM and drains as a single router
  does (stops accepting, releases blocked clients, answers what it owes within
  ``drain_timeout_ms``); the supervisor waits for them (SIGKILL after the drain
  timeout plus `KILL_GRACE`), then exits 0.
- A worker never outlives the supervisor: PR_SET_PDEATHSIG (router.control.workers).

Invariant: while the supervisor runs and is not stopping, every worker index
has a process or a restart pending; nothing here routes a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time

from aiohttp import web

from router.control.listen import bind_tcp, cannot_listen
from router.control.workers import ENV, WorkerRole
from router.control.workers_admin import WorkersAdmin, WorkerSlot, make_workers_app
from slotwarden import __version__
from slotwarden.cluster.config import ClusterConfig
from slotwarden.cluster.tls import http_scheme, http_server_context
from slotwarden.cluster.topology import Address

log = logging.getLogger("slotwarden.router")

MIN_BACKOFF = 0.1  # seconds before restarting a dead worker ...
MAX_BACKOFF = 10.0  # ... doubling up to this while it keeps dying young
STABLE_AFTER = 10.0  # a worker that lived this long resets its backoff
KILL_GRACE = 5.0  # seconds past drain_timeout_ms before a draining worker is killed


def hold_port(addr: Address) -> tuple[socket.socket, Address]:
    """Bind ``addr`` as the workers will (SO_REUSEPORT) without listening, after checking
    nothing else holds it (a bind without SO_REUSEPORT fails on any holder, another
    router's workers included). Port 0: the port the kernel chose."""
    probe = bind_tcp(addr)
    port, family = probe.getsockname()[1], probe.family
    probe.close()
    hold = socket.socket(family, socket.SOCK_STREAM)
    try:
        hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        hold.bind((addr.host, port))
    except OSError as exc:
        hold.close()
        raise cannot_listen(addr, exc) from None
    return hold, Address(addr.host, port)


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    def __init__(
        self, config: ClusterConfig, listen: Address, secret: str | None, count: int
    ) -> None:
        self.config = config
        self.listen = listen
        self.count = count
        self.slots = [WorkerSlot(i) for i in range(count)]
        self.run_dir = tempfile.mkdtemp(prefix="slotwarden-router-")  # mode 0700
        self.admin = WorkersAdmin(self.slots, self.run_dir, secret, config)
        self.stopping = False
        self.failed: str | None = None  # why the run ended (a worker could not start)
        self._stop: asyncio.Event | None = None
        self._tg: asyncio.TaskGroup | None = None  # serve's: every task of the run
        self._all_ready = asyncio.Event()

    # ------------------------------------------------------------ run

    async def serve(self, stop: asyncio.Event) -> int:
        """Run the workers until ``stop`` is set, then drain them. The exit code."""
        self._stop = stop
        holder: socket.socket | None = None
        runner = web.AppRunner(make_workers_app(self.admin), access_log=None)
        await runner.setup()
        try:
            holder, self.listen = hold_port(self.listen)
            admin_bound = await self._start_admin(runner)
            self.admin.public = admin_bound
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                for slot in self.slots:
                    tg.create_task(self._keep(slot, admin_bound), name=f"worker {slot.index}")
                announce = tg.create_task(self._announce(admin_bound), name="workers ready")
                await stop.wait()
                self.stopping = True
                announce.cancel()
                await self._drain()
        finally:
            await runner.cleanup()
            await self.admin.close()
            if holder is not None:
                holder.close()
            shutil.rmtree(self.run_dir, ignore_errors=True)
        if self.failed is not None:
            log.error("%s", self.failed)
            return 1
        log.info("router stopped (%d workers)", self.count)
        return 0

    async def _start_admin(self, runner: web.AppRunner) -> Address:
        addr = self.config.router.admin
        sock = bind_tcp(addr, " (router.admin)")
        await web.SockSite(runner, sock, ssl_context=http_server_context(self.config.tls)).start()
        return Address(addr.host, sock.getsockname()[1])

    async def _announce(self, admin: Address) -> None:
        await self._all_ready.wait()
        log.info(
            "slotwarden router %s listening on %s with %d workers (pids %s; admin %s://%s), "
            "config %s",
            __version__, self.listen, self.count,
            " ".join(str(s.proc.pid) for s in self.slots if s.proc is not None),
            http_scheme(self.config.tls), admin, self.config.path,
        )  # fmt: skip

    # ------------------------------------------------------------ one worker index

    async def _keep(self, slot: WorkerSlot, admin: Address) -> None:
        """Start worker ``slot.index``, and again whenever it dies, until stopping."""
        while not self.stopping:
            await self._start(slot, admin)
            assert slot.proc is not None
            if self.stopping:  # the drain began while this worker was being started
                with contextlib.suppress(ProcessLookupError):
                    slot.proc.send_signal(signal.SIGTERM)
            code = await slot.proc.wait()
            was_ready, slot.ready = slot.ready, False
            if self.stopping:
                log.info("worker %d (pid %d) %s", slot.index, slot.proc.pid, describe_exit(code))
                return
            if slot.generation == 0 and not was_ready:
                self.failed = (
                    f"worker {slot.index} (pid {slot.proc.pid}) {describe_exit(code)} "
                    "before it was ready; stopping"
                )
                assert self._stop is not None
                self._stop.set()
                return
            lived = time.monotonic() - slot.started
            slot.failures = 0 if lived >= STABLE_AFTER else slot.failures + 1
            delay = min(MAX_BACKOFF, MIN_BACKOFF * 2 ** max(0, slot.failures - 1))
            log.warning(
                "worker %d (pid %d) %s after %.1f s; starting it again in %.1f s",
                slot.index, slot.proc.pid, describe_exit(code), lived, delay,
            )  # fmt: skip
            slot.restarts += 1
            self.admin.restarts += 1
            with contextlib.suppress(TimeoutError):
                assert self._stop is not None
                await asyncio.wait_for(self._stop.wait(), delay)

    async def _start(self, slot: WorkerSlot, admin: Address) -> None:
        await self.admin.write_seed()
        slot.generation += 1
        slot.ready = False
        read_fd, write_fd = os.pipe()
        role = WorkerRole(
            index=slot.index,
            count=self.count,
            generation=slot.generation,
            run_dir=self.run_dir,
            admin=admin,
            ready_fd=write_fd,
            supervisor=os.getpid(),
        )
        try:
            slot.proc = await asyncio.create_subprocess_exec(
                *self._argv(),
                env={**os.environ, ENV: role.to_env()},
                pass_fds=(write_fd,),
            )
        finally:
            os.close(write_fd)
        slot.started = time.monotonic()
        assert self._tg is not None
        self._tg.create_task(self._wait_ready(slot, read_fd, slot.generation))

    async def _wait_ready(self, slot: WorkerSlot, read_fd: int, generation: int) -> None:
        """Mark the worker ready when it says so (EOF: it died first)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
        )
        try:
            line = await reader.readline()
        finally:
            transport.close()
        if line.startswith(b"ready") and slot.generation == generation:
            slot.ready = True
            if all(s.ready for s in self.slots):
                self._all_ready.set()
            await self.admin.catch_up(slot)

    def _argv(self) -> list[str]:
        """The worker's command line: this router's, with the port the supervisor holds."""
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        argv = [sys.executable, "-m", "slotwarden", "router", "--listen", str(self.listen)]
        if self.config.path:
            argv += ["--config", str(self.config.path)]
        return [*argv, "--log-level", level]  # --log-json: SLOTWARDEN_LOG_FORMAT, inherited

    # ------------------------------------------------------------ signals, drain

    def forward(self, sig: signal.Signals) -> None:
        """Send ``sig`` to every running worker (SIGHUP: reload cluster.yaml)."""
        for slot in self.slots:
            if slot.running and slot.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    slot.proc.send_signal(sig)

    async def _drain(self) -> None:
        running = [s for s in self.slots if s.running]  # main() logged the drain's start
        self.forward(signal.SIGTERM)
        deadline = self.config.router.drain_timeout_ms / 1000 + KILL_GRACE
        waits = [s.proc.wait() for s in running if s.proc is not None]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), deadline)
        except TimeoutError:
            for slot in running:
                if slot.running and slot.proc is not None:
                    log.warning(
                        "worker %d (pid %d) still draining: killed", slot.index, slot.proc.pid
                    )
                    with contextlib.suppress(ProcessLookupError):
                        slot.proc.kill()
