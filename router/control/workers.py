"""One worker of a router with ``router.workers`` > 1: its role, and what it does differently.

The supervisor (router.control.supervisor) starts every worker as
``python -m slotwarden router --config FILE --listen HOST:PORT --log-level L`` with
``SLOTWARDEN_ROUTER_WORKER`` set to a JSON object (`WorkerRole`): its index, the
worker count, its generation (how many times this index was started before),
the run's private directory (mode 0700), the public admin address, the file
descriptor to report readiness on and the supervisor's pid. A worker is a whole
`router.app.Router` (its own event loop, backend connections, client table,
topology watcher and config watch) and differs from a single router only in:

- it listens on ``router.listen`` with SO_REUSEPORT, beside the other workers
  (the kernel spreads new connections over them);
- its admin API is served on the unix socket ``<dir>/worker-<index>.sock``, which
  only the supervisor talks to; the sentinels are given the supervisor's public
  admin address (their pushes reach every worker through it);
- client ids are strided (`client_ids`), so CLIENT ID / CLIENT LIST / CLIENT
  KILL ID never name two clients alike across workers and restarts;
- it starts from ``<dir>/topology.json`` when there is one (`initial_slotmap`:
  the latest slot map the workers had, written by the supervisor before a
  start) and cluster.yaml's nodes admit it, else from the file's layout;
- it writes ``ready`` to its readiness descriptor once it listens (`announce`);
- it never outlives the supervisor: PR_SET_PDEATHSIG turns the supervisor's
  death into a SIGTERM (a drain), and a worker whose supervisor is already gone
  when it starts exits (`watch_supervisor`).

Invariant: with no ``SLOTWARDEN_ROUTER_WORKER`` in the environment nothing here
runs: a router with ``workers: 1`` is the single process it always was.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from slotwarden.cluster.config import ClusterConfig
from slotwarden.cluster.topology import Address, SlotMap
from slotwarden.cluster.trust import TopologyRefused, check_nodes, parse_topology

log = logging.getLogger("slotwarden.router")

ENV = "SLOTWARDEN_ROUTER_WORKER"
TOPOLOGY_FILE = "topology.json"  # in the run directory: the seed of a (re)started worker
PR_SET_PDEATHSIG = 1  # linux/prctl.h
ID_GENERATION_SPAN = 1 << 32  # client ids one start of a worker may hand out


def socket_path(run_dir: str, index: int) -> str:
    """The unix socket worker ``index`` serves its admin API on."""
    return os.path.join(run_dir, f"worker-{index}.sock")


@dataclass(frozen=True, slots=True)
class WorkerRole:
    index: int  # 0..count-1
    count: int  # router.workers
    generation: int  # starts of this index before this one
    run_dir: str  # the supervisor's private directory
    admin: Address  # the public admin address (the supervisor's)
    ready_fd: int  # "ready\n" is written here once the client listener is up
    supervisor: int  # the supervisor's pid

    def to_env(self) -> str:
        return json.dumps(
            {
                "index": self.index,
                "count": self.count,
                "generation": self.generation,
                "run_dir": self.run_dir,
                "admin": str(self.admin),
                "ready_fd": self.ready_fd,
                "supervisor": self.supervisor,
            }
        )

    @classmethod
    def from_env(cls) -> WorkerRole | None:
        raw = os.environ.get(ENV)
        if not raw:
            return None
        data = json.loads(raw)
        return cls(
            index=int(data["index"]),
            count=int(data["count"]),
            generation=int(data["generation"]),
            run_dir=str(data["run_dir"]),
            admin=Address.parse(str(data["admin"])),
            ready_fd=int(data["ready_fd"]),
            supervisor=int(data["supervisor"]),
        )

    @property
    def admin_socket(self) -> str:
        return socket_path(self.run_dir, self.index)

    def client_ids(self) -> tuple[int, int]:
        """(stride, base) of this worker's client ids: id = k * count + base for k = 1, 2 ...;
        base = index + generation * 2**32 * count: no two workers, and no two starts of
        one worker (before 2**32 connections), hand out the same id."""
        return self.count, self.index + self.generation * ID_GENERATION_SPAN * self.count

    def announce(self) -> None:
        """Tell the supervisor this worker listens (once)."""
        try:
            os.write(self.ready_fd, b"ready\n")
            os.close(self.ready_fd)
        except OSError:
            pass  # the supervisor is gone: PR_SET_PDEATHSIG stops us


def watch_supervisor(role: WorkerRole) -> bool:
    """Ask for SIGTERM when the supervisor dies; False if it is already gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    return os.getppid() == role.supervisor


def tag_logs(role: WorkerRole) -> None:
    """Every log line of this process starts with ``worker N:``."""

    def tag(record: logging.LogRecord) -> bool:
        if not getattr(record, "worker_tagged", False):
            record.msg = f"worker {role.index}: {record.msg}"
            record.worker_tagged = True
        return True

    for handler in logging.getLogger().handlers:
        handler.addFilter(tag)


def initial_slotmap(role: WorkerRole | None, config: ClusterConfig) -> SlotMap:
    """The slot map to start from: the supervisor's latest, if cluster.yaml admits it and
    it is newer than the file's; else the file's."""
    from_file = config.slotmap(0)
    if role is None:
        return from_file
    path = Path(role.run_dir) / TOPOLOGY_FILE
    try:
        seed = parse_topology(json.loads(path.read_bytes()))
        check_nodes(seed, config, seed)  # a draining shard's nodes: as the workers had them
    except FileNotFoundError:
        return from_file
    except (OSError, ValueError, TopologyRefused) as exc:
        log.warning("not starting from the workers' latest topology: %s", exc)
        return from_file
    return seed if seed.supersedes(from_file) else from_file


async def start_admin(runner: web.AppRunner, role: WorkerRole) -> None:
    """Serve this worker's admin API on its unix socket (the supervisor's only)."""
    path = role.admin_socket
    if os.path.exists(path):
        os.unlink(path)  # a previous start of this index
    await web.UnixSite(runner, path).start()
