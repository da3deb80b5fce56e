"""Issue 15, the router's log lines found by using it: one line per shard per event, not
one per client; a hung shard is "back" only when it answers."""

from __future__ import annotations

import signal
import socket
import time

import redis
from conftest import own_cluster

CLIENTS = 100


def channel_on(c, shard: int) -> str:
    return next(f"ch{i}" for i in range(10_000) if c.owner(f"ch{i}") == shard)


def subscribed_clients(c, channel: str, n: int) -> list[socket.socket]:
    """``n`` raw RESP connections SUBSCRIBEd to ``channel`` through the router."""
    socks = []
    cmd = f"*2\r\n$9\r\nSUBSCRIBE\r\n${len(channel)}\r\n{channel}\r\n".encode()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", c.port), timeout=10)
        s.sendall(cmd)
        socks.append(s)
    for s in socks:
        got = b""
        while not got.endswith(b":1\r\n"):
            chunk = s.recv(4096)
            assert chunk, "router closed a subscriber"
            got += chunk
    return socks


def published(r: redis.Redis, channel: str) -> int:
    try:
        return r.publish(channel, "hi")
    except redis.RedisError:  # the shard is not back yet
        return 0


def lines_with(log: str, *words: str) -> list[str]:
    return [line for line in log.splitlines() if all(w in line for w in words)]


def test_a_shard_restart_logs_one_line_for_all_its_subscribers() -> None:
    # 100 subscribed clients, their shard restarts: one INFO line per client per retry
    # ("subscription connection ... lost; resubscribing") made 500 lines in 1.2 s.
    extra = {"reconnect_min_ms": 50, "reconnect_max_ms": 400}
    with own_cluster(extra_router=extra) as c:
        channel = channel_on(c, 0)
        socks = subscribed_clients(c, channel, CLIENTS)
        try:
            shard = c.masters[0]
            shard.kill(signal.SIGKILL)
            time.sleep(1.5)  # the subscribers retry meanwhile (50 ms, doubling)
            shard.start()
            publisher = c.client()
            deadline = time.monotonic() + 15
            while published(publisher, channel) < CLIENTS:  # every one resubscribed
                assert time.monotonic() < deadline, c.router.log()[-3000:]
                time.sleep(0.1)
            time.sleep(1.5)  # let the aggregated lines be written
            log = c.router.log()
            lost = lines_with(log, "subscription", "lost")
            assert 1 <= len(lost) <= 3, "\n".join(lost[:10])
            assert f"{CLIENTS} subscription connections lost" in lost[0], lost[0]
            assert "shard a" in lost[0], lost[0]
            back = lines_with(log, "resubscribed")
            assert 1 <= len(back) <= 3, "\n".join(back[:10])
            assert sum(int(line.split(": ")[-1].split()[0]) for line in back) == CLIENTS, back
        finally:
            for s in socks:
                s.close()


def test_a_hung_shard_is_back_only_when_it_answers() -> None:
    # A SIGSTOPped redis-server's kernel still accepts TCP connections: every reconnect
    # after a timeout logged "is back" (and the timeout again), for as long as it hung;
    # a RESP3 connection's HELLO that timed out was logged as a refused handshake.
    extra = {"command_timeout_ms": 300, "reconnect_min_ms": 50, "reconnect_max_ms": 200}
    with own_cluster(extra_router=extra) as c:
        r = c.client()
        key = next(f"k{i}" for i in range(10_000) if c.owner(f"k{i}") == 0)
        r.set(key, "v")
        shard = c.masters[0]
        back = f"backend {shard.addr} (shard a) is back"
        shard.kill(signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 3  # about 8 timeout-and-reconnect rounds
            while time.monotonic() < deadline:
                try:
                    r.get(key)
                except redis.RedisError:
                    pass
            log = c.router.log()
            assert len(lines_with(log, "no reply for 300 ms")) == 1, log[-3000:]
            assert back not in log, log[-3000:]
            assert not lines_with(log, shard.addr, "connection lost"), log[-3000:]
            # a handshake that timed out is not a refusal of the router's credentials
            assert not lines_with(log, "refused the router's handshake"), log[-3000:]
        finally:
            shard.kill(signal.SIGCONT)
        deadline = time.monotonic() + 10
        while True:
            try:
                assert r.get(key) == b"v"
                break
            except redis.RedisError:
                assert time.monotonic() < deadline, c.router.log()[-3000:]
                time.sleep(0.05)
        deadline = time.monotonic() + 5
        while back not in c.router.log():
            assert time.monotonic() < deadline, c.router.log()[-3000:]
            time.sleep(0.05)
        assert len(lines_with(c.router.log(), back)) == 1
