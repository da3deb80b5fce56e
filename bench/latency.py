#!/usr/bin/env python3
"""Open-loop latency of the slotwarden router next to twemproxy and one bare shard.

Owns one run: the same peers as bench/throughput.py (3 redis-server shards, twemproxy over
them, the router over them, and "direct" = shard 0 alone), started and probed by that
script's own code (imported, not copied); then, per case and peer, interleaved (the peers'
order changing from one repetition to the next: `tp.rotated`), a fixed request rate is sent
and every request's latency is taken from its SCHEDULED send time:

- case "1 client": one connection at --rate1 requests/s;
- case "N clients": --clients connections sharing --rate requests/s (each at rate/N).

Open loop, and why: a closed-loop tool (redis-benchmark) sends the next request only when
the previous reply came, so a 50 ms stall delays the requests that should have been sent
during it instead of measuring them ("coordinated omission"): one slow sample instead of
hundreds. Here request k of connection c is due at t0 + c/rate + k*(N/rate) whatever
happened before. Pipelining is off (one request in flight per connection, like a typical
application): a connection whose reply is late sends its next request as soon as the reply
comes, and that request's latency still counts from its due time, so the stall shows in
every request it held back (the correction wrk2 makes).

The generator is a single thread: raw non-blocking sockets, epoll for readiness and
`select()` on the epoll fd for timed waits (microseconds; epoll's own timeout has millisecond
steps), the thread's timer slack set to 1 ns (prctl), gc off while measuring, requests
pre-encoded. Its own cost is shown, not assumed: per run the "send lag" (actual send time -
the time the request could go: its due time, or its connection's previous reply if that
came later; the generator's own delay, part of every latency, so the direct row is the floor
of generator + loopback + redis-server) and the generator's CPU per request.

Requests: GET (probability 1 - --sets) or SET of a --value-size byte value, on a key drawn
uniformly from key:0 .. key:<--keyspace - 1>, all keys loaded beforehand. The first
--warmup seconds of each run are sent but not counted.

Per cell: p50 / p99 / p99.9 / max (ms, median over --repeat runs), achieved rate, send-lag
p99, the peer process's CPU per request; then per case the ratios router/direct,
router/twemproxy, and the added latency (peer p50 - direct p50) of router over twemproxy.
A cell is marked OVERLOADED when the peer did not keep up (achieved < 95% of the rate, or
requests still unsent 10 s after the last due time, where a run stops): its latencies then
grow with the run's length and mean "cannot sustain this rate" (lower bounds when requests
went unsent: those are in no percentile).

Exit status: 0 when every available peer ran cleanly; 1 when a peer failed (start, probe,
error reply, closed connection, unanswered requests), the report is still printed with a
PROBLEMS list; 2 when the shards cannot run at all. A peer that is not installed is
"not available" and not a failure.

Usage: python bench/latency.py [--seconds 10] [--rate1 1000] [--rate 5000] [--clients 50]
                               [--repeat 1] [--peers direct,twemproxy,router] [--json FILE]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import heapq
import random
import resource
import select
import socket
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput as tp  # bench/ is not a package: its sibling script, found by path

from slotwarden.cluster.slots import key_hash_slot

PEERS = tp.PEERS
DRAIN_S = 10.0  # after the last due time, how long replies still owed are waited for
OVERLOAD = 0.95  # achieved / wanted rate below this: the peer did not sustain the rate
QUANTILES = (("p50", 0.50), ("p99", 0.99), ("p99.9", 0.999))


@dataclass
class Result:
    """One open-loop run against one peer. Times in seconds; latencies only of requests due
    after the warm-up."""

    wanted_rps: float
    conns: int
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    sent: int = 0
    answered: int = 0
    errors: int = 0
    first_error: str | None = None
    unanswered: int = 0  # sent, no reply DRAIN_S after the last due time: the peer hung
    unsent: int = 0  # due, never sent by then: the peer was too slow (overloaded)
    achieved_rps: float = 0.0
    gen_cpu_us: float | None = None  # the generator's own CPU per request
    peer_cpu_us: float | None = None  # the peer process's CPU per request
    wall: float = 0.0


def set_timer_slack_ns(ns: int) -> None:
    """Linux's default 50 µs timer slack would be added to every timed wake-up (and so to
    every latency measured from a due time); 1 ns asks for the exact time. No-op elsewhere."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(29, ctypes.c_ulong(ns), 0, 0, 0)  # 29 = PR_SET_TIMERSLACK
    except (OSError, AttributeError):
        pass


def encode(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


def reply_length(buf: bytes) -> int:
    """Bytes of the complete RESP2 reply at the start of `buf` (+, -, :, $), 0 if incomplete.
    GET and SET answer nothing else; anything else raises ValueError."""
    end = buf.find(b"\r\n")
    if end < 0:
        return 0
    kind = buf[:1]
    if kind in (b"+", b"-", b":"):
        return end + 2
    if kind == b"$":
        size = int(buf[1:end])
        total = end + 2 if size < 0 else end + 4 + size
        return total if len(buf) >= total else 0
    raise ValueError(f"unexpected reply {buf[:40]!r}")


def key_name(i: int) -> bytes:
    return b"key:%d" % i


def run_open_loop(
    host: str,
    port: int,
    conns: int,
    rate: float,
    seconds: float,
    warmup: float,
    sets: float,
    keyspace: int,
    value: bytes,
    seed: int,
    peer_pid: int | None = None,
) -> Result:
    """Send `rate` requests/s for `warmup + seconds` over `conns` connections, one request in
    flight per connection, each due on a fixed schedule; time every reply from its due time."""
    gets = [encode(b"GET", key_name(i)) for i in range(keyspace)]
    setcmds = [encode(b"SET", key_name(i), value) for i in range(keyspace)]
    rng = random.Random(seed)
    res = Result(wanted_rps=rate, conns=conns)
    socks = []
    try:
        for _ in range(conns):
            s = socket.create_connection((host, port), timeout=5)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            socks.append(s)
        interval = conns / rate  # each connection's own period
        clock = time.perf_counter
        t0 = clock() + 0.05
        end_due = t0 + warmup + seconds  # nothing is due at or after this
        counted_from = t0 + warmup
        due = [(t0 + c / rate, c) for c in range(conns)]  # idle connections by next due time
        heapq.heapify(due)
        owed: dict[int, float] = {}  # busy connections: index -> due time of its request
        bufs = [b""] * conns
        freed = [t0] * conns  # when each connection's previous reply came
        latencies, lags = res.latencies, res.lags
        ep = select.epoll()
        by_fd = {}
        for c, s in enumerate(socks):
            ep.register(s.fileno(), select.EPOLLIN)
            by_fd[s.fileno()] = c
        waiting = [ep.fileno()]
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        peer_cpu0 = tp.process_cpu_seconds(peer_pid)
        gc.disable()
        last_reply = t0
        while due or owed:
            now = clock()
            if now > end_due + DRAIN_S:  # far behind, or a reply never came: stop here
                break
            while due and due[0][0] <= now:
                when, c = heapq.heappop(due)
                cmd = setcmds if rng.random() < sets else gets
                socks[c].send(cmd[rng.randrange(keyspace)])  # ~40 bytes, empty socket buffer
                now = clock()
                res.sent += 1
                if when >= counted_from:  # the generator's own delay, not the peer's
                    lags.append(now - max(when, freed[c]))
                owed[c] = when
            if due:
                wait = max(0.0, due[0][0] - now)
            else:
                wait = end_due + DRAIN_S - now
                if wait <= 0:
                    break
            # epoll's timeout has millisecond steps; select() on the epoll fd has microseconds
            if wait and not select.select(waiting, (), (), wait)[0]:
                continue
            for fd, _ in ep.poll(0):
                c = by_fd[fd]
                data = socks[c].recv(65536)
                now = clock()
                if not data:
                    raise ConnectionError("the peer closed a connection")
                buf = bufs[c] + data
                size = reply_length(buf)
                if not size:
                    bufs[c] = buf
                    continue
                if len(buf) != size or c not in owed:
                    raise ValueError(f"a reply to no request: {buf[:80]!r}")
                bufs[c] = b""
                when = owed.pop(c)
                freed[c] = now
                res.answered += 1
                last_reply = now
                if buf[:1] == b"-":
                    res.errors += 1
                    res.first_error = res.first_error or buf.decode(errors="replace").strip()
                if when >= counted_from:
                    latencies.append(now - when)
                nxt = when + interval
                if nxt < end_due:
                    heapq.heappush(due, (nxt, c))
        ep.close()
        gc.enable()
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        peer_cpu1 = tp.process_cpu_seconds(peer_pid)
        res.unanswered = len(owed)
        res.unsent = sum(
            1 + int((end_due - when) / interval - 1e-9) for when, _ in due if when < end_due
        )
        res.wall = last_reply - t0
        res.achieved_rps = res.answered / res.wall if res.wall > 0 else 0.0
        if res.sent:
            used = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
            res.gen_cpu_us = used / res.sent * 1e6
            if peer_cpu0 is not None and peer_cpu1 is not None:
                res.peer_cpu_us = (peer_cpu1 - peer_cpu0) / res.sent * 1e6
    finally:
        gc.enable()
        for s in socks:
            s.close()
    return res


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of sorted values (the smallest value with >= q of all at or
    below it), as HdrHistogram and wrk2 report it."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 1))
    return sorted_values[min(len(sorted_values), int(rank)) - 1]


def summarise(res: Result) -> dict[str, object]:
    lat = sorted(res.latencies)
    lags = sorted(res.lags)
    out: dict[str, object] = {name: quantile(lat, q) * 1e3 for name, q in QUANTILES}
    out["max"] = lat[-1] * 1e3 if lat else float("nan")
    out["lag_p50"] = quantile(lags, 0.5) * 1e3
    out["lag_p99"] = quantile(lags, 0.99) * 1e3
    out["counted"] = len(lat)
    out["achieved_rps"] = res.achieved_rps
    out["sustained"] = res.achieved_rps >= OVERLOAD * res.wanted_rps and not res.unsent
    out["unsent"] = res.unsent
    out["gen_cpu_us"] = res.gen_cpu_us
    out["peer_cpu_us"] = res.peer_cpu_us
    return out


# ---------------------------------------------------------------- peers


def start_peers(h: tp.Harness, wanted: Sequence[str], problems: list[str]) -> dict[str, tp.Peer]:
    """bench/throughput.py's peers over 3 new shards, each probed; failures go to `problems`."""
    shards = [h.farm.start() for _ in range(tp.SHARDS)]
    ranges = tp.slot_ranges(tp.SHARDS)

    def owner(key: bytes) -> int:
        slot = key_hash_slot(key)
        return next(i for i, (lo, hi) in enumerate(ranges) if lo <= slot <= hi)

    first = shards[0]
    direct = tp.Peer("direct", port=first.port, what=f"redis-server {first.addr} (no proxy)")
    direct.cpu_pid = first.proc.pid if first.proc is not None else None
    make = {
        "direct": lambda: direct,
        "twemproxy": lambda: tp.start_twemproxy(h, shards),
        "router": lambda: tp.start_router(h, shards),
    }
    peers = {
        n: make[n]() if n in wanted else tp.Peer(n, unavailable="not selected (--peers)")
        for n in PEERS
    }
    for peer in peers.values():
        if peer.usable:
            try:
                tp.probe(
                    peer,
                    [first] if peer.name == "direct" else shards,
                    owner if peer.name == "router" else None,
                )
            except tp.PeerError as e:
                peer.failed = f"correctness probe: {e}"
        if peer.failed:
            problems.append(f"{peer.name}: {peer.failed}")
    return peers


def preload(peer: tp.Peer, keyspace: int, value: bytes) -> None:
    """Every key of the keyspace SET through the peer, so GETs find values."""
    with tp.client(peer.host, peer.port) as c:
        for lo in range(0, keyspace, 1000):
            pipe = c.pipeline(transaction=False)
            for i in range(lo, min(keyspace, lo + 1000)):
                pipe.set(key_name(i), value)
            pipe.execute()


# ---------------------------------------------------------------- report


def fmt(x: object, digits: int = 3) -> str:
    return "n/a" if x is None or x != x else f"{x:.{digits}f}"  # x != x: nan


def ratio(a: object, b: object) -> float | None:
    if isinstance(a, float) and isinstance(b, float) and b > 0 and a == a:
        return a / b
    return None


def render(report: dict[str, object]) -> str:
    env = report["environment"]
    out = [
        f"slotwarden latency, open loop: {report['seconds']} s per run after "
        f"{report['warmup']} s warm-up, median of {report['repeat']} run(s) per cell, "
        f"GET/SET {1 - report['sets']:.0%}/{report['sets']:.0%}, {report['value_size']} B "
        f"values, {report['keyspace']} keys, no pipelining, latency from each request's due time",
        f"machine: {env['cores']} cores ({env['usable_cores']} usable), load {env['loadavg']}; "
        f"redis-server {env['redis_server']}, nutcracker {env['nutcracker']}, "
        f"python {env['python']}, {env['uvloop']}, slotwarden {env['slotwarden']}",
    ]
    for name, p in report["peers"].items():
        if p["unavailable"]:
            out.append(f"{name} not available: {p['unavailable']}")
        elif p["failed"]:
            out.append(f"{name} FAILED: {p['failed']}")
        else:
            out.append(f"{name}: {p['what']}")
    head = ["case", "peer", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "achieved rps",
            "send lag p99 ms", "peer CPU µs/req", "gen CPU µs/req"]  # fmt: skip
    body = []
    for case in report["cases"]:
        for name in PEERS:
            cell = case["peers"][name]
            if "p50" not in cell:
                state = "ERROR" if cell.get("error") else "n/a"
                body.append([case["case"], name, *[state] * (len(head) - 2)])
                continue
            rps = f"{cell['achieved_rps']:.0f}"
            if not cell["sustained"]:
                rps += " OVERLOADED"
            body.append([
                case["case"], name,
                *(fmt(cell[k]) for k in ("p50", "p99", "p99.9", "max")),
                rps, fmt(cell["lag_p99"]),
                fmt(cell["peer_cpu_us"], 1), fmt(cell["gen_cpu_us"], 1),
            ])  # fmt: skip
    out.append("")
    out.extend(tp.table(head, body))
    out.append("")
    out.append("ratios (of the medians; added = peer p50 - direct p50):")
    for case in report["cases"]:
        r = case["ratios"]
        parts = [
            f"router/direct p50 {fmt(r['router/direct p50'], 2)} "
            f"p99 {fmt(r['router/direct p99'], 2)} p99.9 {fmt(r['router/direct p99.9'], 2)}",
            f"router/twemproxy p50 {fmt(r['router/twemproxy p50'], 2)} "
            f"p99 {fmt(r['router/twemproxy p99'], 2)} p99.9 {fmt(r['router/twemproxy p99.9'], 2)}",
            f"added p50 router {fmt(r['router added p50 ms'])} ms vs twemproxy "
            f"{fmt(r['twemproxy added p50 ms'])} ms",
        ]
        out.append(f"  {case['case']}: " + "; ".join(parts))
    out.append(
        "  send lag = actual send - when it could go (due, or the previous reply if later): "
        "the generator's own delay, inside every latency (the direct row's too)."
    )
    out.append("target (issue 15): the router's added p50 at one client <= twemproxy's")
    for case in report["cases"]:
        if case["case"] != "1 client":
            continue
        r = case["ratios"]
        ours, theirs = r["router added p50 ms"], r["twemproxy added p50 ms"]
        word = "N/A" if ours is None or theirs is None else "PASS" if ours <= theirs else "MISS"
        out.append(f"  {word:<4} 1 client: router {fmt(ours)} ms vs twemproxy {fmt(theirs)} ms")
    if report["problems"]:
        out.append("")
        out.append(f"PROBLEMS ({len(report['problems'])}):")
        out.extend(f"  - {p}" for p in report["problems"])
    out.append(f"total {report['total_seconds']:.0f}s")
    return "\n".join(out)


def case_ratios(cells: dict[str, dict[str, object]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for other in ("direct", "twemproxy"):
        for q in ("p50", "p99", "p99.9"):
            out[f"router/{other} {q}"] = ratio(cells["router"].get(q), cells[other].get(q))
    base = cells["direct"].get("p50")
    for name in ("router", "twemproxy"):
        p50 = cells[name].get("p50")
        ok = isinstance(p50, float) and isinstance(base, float)
        out[f"{name} added p50 ms"] = p50 - base if ok else None
    return out


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="counted seconds per run")
    ap.add_argument("--warmup", type=float, default=1.0, help="uncounted seconds first")
    ap.add_argument("--rate1", type=float, default=1000, help="requests/s of the 1-client case")
    ap.add_argument("--rate", type=float, default=5000, help="total requests/s of N clients")
    ap.add_argument("--clients", type=int, default=50, help="N of the N-clients case")
    ap.add_argument("--sets", type=float, default=0.2, help="share of SETs (rest: GETs)")
    ap.add_argument("--value-size", type=int, default=16, help="bytes per value")
    ap.add_argument("--keyspace", type=int, default=10000, help="keys key:0 .. key:<n-1>")
    ap.add_argument("--repeat", type=int, default=1, help="runs per cell; the median is shown")
    ap.add_argument("--peers", default=",".join(PEERS), help="subset of " + ",".join(PEERS))
    ap.add_argument("--seed", type=int, default=1, help="of the request mix")
    ap.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = ap.parse_args(argv)
    args.peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    if not args.peers or any(p not in PEERS for p in args.peers):
        ap.error(f"--peers takes names from {','.join(PEERS)}")
    if min(args.seconds, args.rate1, args.rate, args.clients, args.repeat, args.keyspace) <= 0:
        ap.error("--seconds, --rate1, --rate, --clients, --repeat, --keyspace must be positive")
    if args.warmup < 0 or not 0 <= args.sets <= 1 or args.value_size < 0:
        ap.error("--warmup >= 0, 0 <= --sets <= 1, --value-size >= 0")
    return args


def measure(args: argparse.Namespace, h: tp.Harness) -> dict[str, object]:
    started = time.monotonic()
    env = tp.environment()
    problems: list[str] = []
    peers = start_peers(h, args.peers, problems)
    value = b"v" * args.value_size
    for peer in peers.values():
        if peer.usable:
            try:
                preload(peer, args.keyspace, value)
            except redis.RedisError as e:
                peer.failed = f"preload: {e}"
                problems.append(f"{peer.name}: {peer.failed}")
    set_timer_slack_ns(1)
    cases = []
    for label, conns, rate in (
        ("1 client", 1, args.rate1),
        (f"{args.clients} clients", args.clients, args.rate),
    ):
        runs: dict[str, list[Result]] = {p: [] for p in PEERS}
        errors: dict[str, str] = {}
        for rep in range(args.repeat):
            for name in tp.rotated(PEERS, rep):
                peer = peers[name]
                if not peer.usable or name in errors:
                    continue
                try:
                    res = run_open_loop(
                        peer.host, peer.port, conns, rate, args.seconds, args.warmup,
                        args.sets, args.keyspace, value, args.seed + rep, peer.pid,
                    )  # fmt: skip
                except (OSError, ValueError) as e:
                    errors[name] = f"{type(e).__name__}: {e}"
                    problems.append(f"{name} {label}: {errors[name]}")
                    continue
                if res.errors or res.unanswered:
                    errors[name] = (
                        f"{res.errors} error replies (first: {res.first_error}), "
                        f"{res.unanswered} unanswered after {DRAIN_S:.0f} s"
                    )
                    problems.append(f"{name} {label}: {errors[name]}")
                runs[name].append(res)
                s = summarise(res)
                tp.progress(
                    f"[{label} #{rep + 1}] {name}: p50 {fmt(s['p50'])} p99 {fmt(s['p99'])} "
                    f"p99.9 {fmt(s['p99.9'])} max {fmt(s['max'])} ms, "
                    f"{s['achieved_rps']:.0f}/{rate:.0f} rps, lag p99 {fmt(s['lag_p99'])} ms"
                )
        cells: dict[str, dict[str, object]] = {}
        for name in PEERS:
            summaries = [summarise(r) for r in runs[name]]
            cell: dict[str, object] = {"runs": summaries}
            if name in errors:
                cell["error"] = errors[name]
            elif summaries:
                for key in summaries[0]:
                    values = [s[key] for s in summaries if s[key] is not None]
                    if key == "sustained":
                        cell[key] = all(values)
                    elif values:
                        cell[key] = statistics.median(values)
                    else:
                        cell[key] = None
            cells[name] = cell
        cases.append(
            {"case": label, "conns": conns, "rate": rate, "peers": cells,
             "ratios": case_ratios(cells)}
        )  # fmt: skip
    return {
        **{k: getattr(args, k) for k in ("seconds", "warmup", "repeat", "sets", "keyspace")},
        "value_size": args.value_size,
        "environment": env,
        "peers": {
            n: {"what": p.what, "unavailable": p.unavailable, "failed": p.failed}
            for n, p in peers.items()
        },
        "cases": cases,
        "problems": problems,
        "total_seconds": time.monotonic() - started,
    }


def main(argv: Sequence[str] | None = None) -> int:
    return tp.run_main(parse_args(argv), measure, render, ("redis-server",))


if __name__ == "__main__":
    sys.exit(main())
