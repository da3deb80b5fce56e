"""Large requests: router vs one bare redis-server, for one huge request and everyone else.

A 1,000,000-argument ``EXISTS`` (about 12.9 MB) is sent by one client, in 1 KB
writes (``--chunk``) paced at ``--rate`` MB/s (a client on a slower link: the
server sees small reads, as from a network), and then in one write, while
another client sends ``GET`` one at a time (no pipelining) and times each
reply. For each peer (``direct``: one redis-server alone; ``router``: the
router over 3 redis-server shards) it prints the peer process's CPU seconds
spent on the big request (utime + stime from ``/proc/<pid>/stat``, the
router's own process only, not its shards), the wall time of the big request,
and the other client's GET p50 / p99 / max while it was in progress; then
router/direct ratios.

    .venv/bin/python bench/large_requests.py [--args N] [--chunk 1024] [--rate 2] [--repeat 1]

Starts everything on free ports in a temp dir (slotwarden/procs.py) and stops
it afterwards. Needs redis-server.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from slotwarden.procs import RedisFarm, RouterProc, write_cluster_yaml

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def exists_request(nargs: int) -> bytes:
    keys = [b"k%d" % i for i in range(nargs)]
    parts = [b"*%d\r\n$6\r\nEXISTS\r\n" % (nargs + 1)]
    parts += [b"$%d\r\n%b\r\n" % (len(k), k) for k in keys]
    return b"".join(parts)


def read_reply_line(sock: socket.socket) -> bytes:
    """One integer/simple reply line (EXISTS answers ``:n``)."""
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed after {buf!r}")
        buf += chunk
    return buf


class GetLoop(threading.Thread):
    """GET a key that is never set, one request at a time, timing each reply, until stopped."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.lat: list[float] = []
        self.record = False
        self.stop = threading.Event()

    def run(self) -> None:
        req = b"*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n"
        while not self.stop.is_set():
            t0 = time.perf_counter()
            self.sock.sendall(req)
            buf = b""
            while not buf.endswith(b"\r\n"):  # a missing key: "$-1\r\n"
                chunk = self.sock.recv(4096)
                if not chunk:
                    return
                buf += chunk
            if self.record:
                self.lat.append(time.perf_counter() - t0)
            time.sleep(0.001)


def one_run(
    port: int, pid: int, request: bytes, chunk: int | None, rate: float
) -> dict[str, float]:
    getter = GetLoop(port)
    getter.start()
    time.sleep(0.2)
    big = socket.create_connection(("127.0.0.1", port))
    big.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    cpu0 = cpu_seconds(pid)
    t0 = time.perf_counter()
    getter.record = True
    if chunk is None:
        big.sendall(request)
    else:
        view = memoryview(request)
        for i in range(0, len(request), chunk):
            big.sendall(view[i : i + chunk])
            if rate:  # paced like a client on a slower link: the peer sees small reads
                ahead = t0 + (i + chunk) / rate - time.perf_counter()
                if ahead > 0.0002:
                    time.sleep(ahead)
    reply = read_reply_line(big)
    wall = time.perf_counter() - t0
    getter.record = False
    cpu = cpu_seconds(pid) - cpu0
    getter.stop.set()
    getter.join(timeout=10)
    big.close()
    getter.sock.close()
    if not reply.startswith(b":"):
        raise RuntimeError(f"unexpected reply {reply[:100]!r}")
    lat = sorted(getter.lat) or [float("nan")]
    return {
        "cpu": cpu,
        "wall": wall,
        "p50": statistics.median(lat) * 1e3,
        "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3,
        "max": lat[-1] * 1e3,
        "gets": len(getter.lat),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--args", type=int, default=1_000_000, help="keys in the EXISTS")
    ap.add_argument("--chunk", type=int, default=1024, help="bytes per write (the 'pieces' row)")
    ap.add_argument(
        "--rate", type=float, default=2.0, help="MB/s the pieces are sent at (0: at once)"
    )
    ap.add_argument("--repeat", type=int, default=1, help="runs per cell (median shown)")
    opts = ap.parse_args(argv)
    request = exists_request(opts.args)
    farm = RedisFarm()
    router = None
    try:
        direct = farm.start()
        shards = [farm.start() for _ in range(3)]
        tmp = tempfile.mkdtemp(prefix="slotwarden-large-", dir=farm.root)
        config = os.path.join(tmp, "cluster.yaml")
        port, _admin = write_cluster_yaml(config, shards)
        router = RouterProc(config, port, os.path.join(tmp, "router.log")).start()
        assert direct.proc is not None and router.proc is not None
        peers = {"direct": (direct.port, direct.proc.pid), "router": (port, router.proc.pid)}
        rows = {f"{opts.chunk} B writes": opts.chunk, "one write": None}
        pace = f"{opts.rate:g} MB/s" if opts.rate else "unpaced"
        print(
            f"EXISTS with {opts.args} keys, {len(request) / 1e6:.1f} MB; pieces {pace}; "
            f"repeat {opts.repeat}; load {os.getloadavg()[0]:.2f}; cores {os.cpu_count()}"
        )
        head = "CPU s | wall s | other GET p50 ms | p99 ms | max ms | GETs"
        print(f"{'row':16} | {'peer':6} | {head}")
        results: dict[tuple[str, str], dict[str, float]] = {}
        for row, chunk in rows.items():
            for peer, (p, pid) in peers.items():
                rate = opts.rate * 1e6
                runs = [one_run(p, pid, request, chunk, rate) for _ in range(opts.repeat)]
                cell = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                results[(row, peer)] = cell
                print(
                    f"{row:16} | {peer:6} | {cell['cpu']:5.2f} | {cell['wall']:6.2f} | "
                    f"{cell['p50']:16.2f} | {cell['p99']:6.2f} | {cell['max']:6.1f} | "
                    f"{int(cell['gets'])}"
                )
        print("router/direct ratios:")
        for row in rows:
            r, d = results[(row, "router")], results[(row, "direct")]

            def ratio(k: str, r: dict[str, float] = r, d: dict[str, float] = d) -> str:
                return f"{r[k] / d[k]:.2f}" if d[k] else "n/a"

            print(
                f"{row:16} | CPU x{ratio('cpu')} | wall x{ratio('wall')} | "
                f"GET p50 x{ratio('p50')} | p99 x{ratio('p99')}"
            )
    finally:
        if router is not None:
            router.stop()
        farm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
