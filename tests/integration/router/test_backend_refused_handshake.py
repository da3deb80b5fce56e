"""A backend that refuses the router's handshake answers each queued request once.

Requests queued while a connection is being made go out right behind its AUTH. When
the node refuses the AUTH, its -WRONGPASS and their -NOAUTH come back in one read:
the handshake's refusal answers every queued request with the reason (fail_all) and
the rest of that read must answer nobody again (a fan-out part counted twice would
merge its fan-out early, and a reply slot answered twice is overwritten). Real
redis-server with requirepass, a real BackendConn on a real loop (C hot path or the
Python reference, as built); the waiters count their answers.
"""

from __future__ import annotations

import asyncio

import pytest

from router.control.metrics import RouterStats
from router.wire.backend import BackendConn, BackendSettings
from router.wire.ports import BackendPorts
from router.wire.turn import LoopTurn
from slotwarden.cluster.secrets import BackendCredentials
from slotwarden.cluster.topology import Address
from slotwarden.procs import RedisFarm
from slotwarden.resp.encode import encode_command


class Hints:
    """The topology-hint port (the route table in the router): counts the hints."""

    def __init__(self) -> None:
        self.count = 0

    def hint_topology(self) -> None:
        self.count += 1


class Answers:
    """A waiter (router.wire.ports.Waiter) that keeps every answer it gets."""

    def __init__(self) -> None:
        self.got: list[bytes] = []

    def on_reply(self, raw: bytes) -> None:
        self.got.append(raw)


@pytest.fixture(scope="module")
def guarded():
    farm = RedisFarm()
    try:
        yield farm.start(["--requirepass", "the-real-one"])
    finally:
        farm.close()


def test_requests_queued_behind_a_refused_handshake_are_answered_once(guarded) -> None:
    async def scenario() -> list[Answers]:
        settings = BackendSettings(credentials=BackendCredentials(b"not-the-password"))
        ports = BackendPorts(LoopTurn(), RouterStats(), Hints())
        conn = BackendConn(Address("127.0.0.1", guarded.port), "a", settings, ports)
        waiters = [Answers() for _ in range(5)]
        for i, waiter in enumerate(waiters):  # queued while connecting: behind the AUTH
            conn.send(encode_command([b"GET", b"k%d" % i]), waiter)
        task = asyncio.get_running_loop().create_task(conn.maintain())
        try:
            for _ in range(100):
                if all(w.got for w in waiters):
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)  # any second answer would have come by now
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return waiters

    waiters = asyncio.run(scenario())
    for waiter in waiters:
        assert len(waiter.got) == 1, waiter.got
        assert waiter.got[0].startswith(b"-CLUSTERDOWN shard a refused the router's"), waiter.got
