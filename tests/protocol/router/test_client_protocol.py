"""router.wire.client.ClientConn over a recording fake transport, a real Router, real shards.

The protocol tier: the client side is a fake asyncio transport (it records
what the router writes and whether it paused, resumed or closed), so the tests
control exactly how request bytes are cut and when they arrive. Everything
behind the client is real: a `router.app.Router` built from a parsed
config, its route set with `RouteTable.apply_slotmap` inside a TaskGroup, and backend
connections to real redis-server processes (``farm``). To hold a shard's
replies back, its redis-server is stopped with SIGSTOP and resumed with
SIGCONT; nothing of Redis is faked.

Where the router answers like Redis does (local commands, request errors,
protocol errors), the same bytes are also sent to a real redis-server and the
two answers compared byte for byte.

One test needs no Router and no shard: it builds a client connection from its
ports alone (`router.wire.client.ClientPorts`) and talks to it with commands
the router answers itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import SimpleNamespace

import hiredis
import pytest

from router.app import Router
from router.control.clients import Clients
from router.control.metrics import RouterStats
from router.control.running import RunningConfig
from router.wire.client import ClientConn, ClientPorts
from router.wire.node import Node, Route
from router.wire.turn import LoopTurn
from slotwarden.cluster.config import parse
from slotwarden.cluster.slots import key_hash_slot

pytestmark = pytest.mark.timeout(60)

# Uneven ranges; shard 0 owns both ends.
RANGES = ["0-99,15000-16383", "100-4000", "4001-14999"]


def owner_of(key: bytes) -> int:
    slot = key_hash_slot(key)
    for index, text in enumerate(RANGES):
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            if int(lo) <= slot <= int(hi):
                return index
    raise AssertionError(slot)


def keys_on(shard: int, count: int, prefix: str = "k") -> list[bytes]:
    out: list[bytes] = []
    i = 0
    while len(out) < count:
        key = f"{prefix}{i}".encode()
        if owner_of(key) == shard:
            out.append(key)
        i += 1
    return out


A, B, C = keys_on(0, 1)[0], keys_on(1, 1)[0], keys_on(2, 1)[0]
MISSING = keys_on(1, 1, "missing-")[0]


def cmd(*args: bytes | str) -> bytes:
    raw = [a.encode() if isinstance(a, str) else a for a in args]
    return b"*%d\r\n" % len(raw) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in raw)


def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def count_replies(data: bytes) -> int:
    """Complete replies in ``data``, counted by hiredis (not by our own scanner)."""
    reader = hiredis.Reader()
    reader.feed(data)
    n = 0
    while reader.gets() is not False:
        n += 1
    return n


# ---------------------------------------------------------------- the fake transport


class RecordingTransport:
    """The transport side of a client socket: records writes, pauses and the close.

    As asyncio's socket transports do: ``close()``/``abort()`` make the
    protocol's ``connection_lost(None)`` run soon after, and output the peer
    has not read yet counts against the high-water mark set with
    ``set_write_buffer_limits``, calling the protocol's ``pause_writing()``
    above it and ``resume_writing()`` once drained. By default the peer reads
    everything at once; ``stall()`` makes it stop reading, ``drain()`` reads
    what piled up.
    """

    def __init__(self, protocol: ClientConn) -> None:
        self.protocol = protocol
        self.data = bytearray()
        self.writes: list[bytes] = []
        self.events: list[str] = []  # "pause", "resume", "close", "abort", in order
        self.closed = False
        self.paused = False
        self.written_after_close = b""
        self.high_water: int | None = None
        self.stalled = False
        self.unread = 0  # bytes written that the peer has not read
        self.writing_paused = False

    def write(self, data: bytes) -> None:
        if self.closed:
            self.written_after_close += bytes(data)
            return
        self.writes.append(bytes(data))
        self.data += data
        if self.stalled:
            self.unread += len(data)
            if self.high_water is not None and self.unread > self.high_water:
                if not self.writing_paused:
                    self.writing_paused = True
                    self.protocol.pause_writing()

    def get_write_buffer_size(self) -> int:
        return self.unread

    def stall(self) -> None:
        self.stalled = True

    def drain(self) -> None:
        self.stalled = False
        self.unread = 0
        if self.writing_paused:
            self.writing_paused = False
            self.protocol.resume_writing()

    def close(self) -> None:
        self._lose("close")

    def abort(self) -> None:
        self._lose("abort")

    def _lose(self, how: str) -> None:
        if not self.closed:
            self.closed = True
            self.events.append(how)
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        assert not self.paused, "pause_reading() while already paused"
        self.paused = True
        self.events.append("pause")

    def resume_reading(self) -> None:
        assert self.paused, "resume_reading() while not paused"
        self.paused = False
        self.events.append("resume")

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("10.1.2.3", 50123), "sockname": ("127.0.0.1", 7777)}.get(name, default)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.high_water = high


async def wait_until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


# ---------------------------------------------------------------- the harness


@dataclass
class Harness:
    router: Router
    masters: list  # RedisProc

    def connect(self) -> tuple[ClientConn, RecordingTransport]:
        conn = self.router.new_client()
        transport = RecordingTransport(conn)
        conn.connection_made(transport)
        assert not transport.closed
        return conn, transport

    async def replies(self, transport: RecordingTransport, n: int) -> bytes:
        await wait_until(lambda: count_replies(bytes(transport.data)) >= n, f"{n} replies")
        await asyncio.sleep(0.02)  # nothing more may follow
        return bytes(transport.data)

    async def request(self, *raws: bytes, n: int | None = None) -> bytes:
        """Send ``raws`` on a new client in one read; the replies of ``n`` (default: one
        per raw) requests."""
        conn, transport = self.connect()
        conn.data_received(b"".join(raws))
        return await self.replies(transport, len(raws) if n is None else n)

    @contextlib.contextmanager
    def stopped(self, shard: int):
        """The shard's redis-server is frozen (SIGSTOP) for the block: it answers nothing."""
        proc = self.masters[shard]
        proc.kill(signal.SIGSTOP)
        try:
            yield
        finally:
            proc.kill(signal.SIGCONT)


@contextlib.asynccontextmanager
async def serving(farm, **router_options: int) -> AsyncIterator[Harness]:
    masters = [farm.start() for _ in RANGES]
    config = parse(
        {
            "name": "protocol-test",
            "router": {"listen": "127.0.0.1:1", "admin": "127.0.0.1:2", **router_options},
            "shards": [
                {"name": name, "slots": slots, "master": m.addr}
                for name, slots, m in zip("abc", RANGES, masters, strict=True)
            ],
        }
    )
    router = Router(config)
    failure: Exception | None = None
    async with asyncio.TaskGroup() as tg:
        router.routes.attach(tg)
        router.routes.apply_slotmap(config.slotmap(1))
        try:
            await wait_until(
                lambda: all(
                    c.state == "up"
                    for node in router.routes.route.masters
                    for c in node.all_conns()
                ),
                "backend connections",
            )
            # let each connection task finish its connect call before the test body
            await asyncio.sleep(0.05)
            yield Harness(router, masters)
        except Exception as exc:  # re-raised below, outside the TaskGroup
            failure = exc
        finally:
            await stop_nodes(list(router.routes.nodes.values()))
    if failure is not None:
        raise failure


async def stop_nodes(nodes: list[Node], grace: float = 2.0) -> list[str]:
    """Stop ``nodes``; names of the tasks that survived one cancel (they are cancelled
    again, so teardown never hangs)."""
    tasks = [task for node in nodes for task in node.tasks]
    for node in nodes:
        node.stop()
    _, pending = await asyncio.wait(tasks, timeout=grace) if tasks else (set(), set())
    survivors = sorted(task.get_name() for task in pending)
    for _ in range(10):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1)
    return survivors


async def ask_redis(port: int, data: bytes, timeout: float = 0.15) -> tuple[bytes, bool]:
    """What a real redis-server answers to ``data``, and whether it closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    out = b""
    closed = False
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                closed = True
                break
            out += chunk
    except TimeoutError:
        pass
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    return out, closed


async def ask_router(
    h: Harness, data: bytes, replies: int, closes: bool = False
) -> tuple[bytes, bool]:
    """What the router answers to ``data``, once ``replies`` replies (and the
    close, if ``closes``) are out or a second has passed, and whether it closed."""
    conn, transport = h.connect()
    conn.data_received(data)
    with contextlib.suppress(AssertionError):
        await wait_until(
            lambda: (
                count_replies(bytes(transport.data)) >= replies and (transport.closed or not closes)
            ),
            "the router's answer",
            timeout=1,
        )
    await asyncio.sleep(0.02)  # nothing more may follow
    assert transport.written_after_close == b""
    return bytes(transport.data), transport.closed


async def compare_with_redis(h: Harness, port: int, data: bytes) -> None:
    redis_answer, redis_closed = await ask_redis(port, data)
    router_answer, router_closed = await ask_router(
        h, data, count_replies(redis_answer), redis_closed
    )
    assert _without_hello_reply(router_answer) == _without_hello_reply(redis_answer)
    assert router_closed == redis_closed


# ---------------------------------------------------------------- byte splits

SETUP = cmd("MSET", A, "1", B, "two", C, b"3\r\n3")
PIPELINE = (
    cmd("GET", A)  # single key, fast path
    + cmd("MGET", C, MISSING, A, B)  # fan-out, replies merged back in key order
    + b"PING\r\n"  # inline, answered by the router
    + cmd("ECHO", b"x\r\ny")
    + cmd("EXISTS", A, B, C, MISSING)  # fan-out sum
    + cmd("DEL", MISSING)
    + cmd("GET", C)
)
EXPECTED = (
    bulk(b"1")
    + b"*4\r\n" + bulk(b"3\r\n3") + b"$-1\r\n" + bulk(b"1") + bulk(b"two")
    + b"+PONG\r\n"
    + bulk(b"x\r\ny")
    + b":3\r\n"
    + b":0\r\n"
    + bulk(b"3\r\n3")
)  # fmt: skip
EXPECTED_COUNT = 7


async def test_whole_pipeline_in_one_read(farm):
    async with serving(farm) as h:
        assert await h.request(SETUP) == b"+OK\r\n"
        conn, transport = h.connect()
        conn.data_received(PIPELINE)
        assert await h.replies(transport, EXPECTED_COUNT) == EXPECTED
        assert not transport.closed and transport.events == []


async def test_pipeline_split_at_every_byte_boundary(farm):
    async with serving(farm) as h:
        assert await h.request(SETUP) == b"+OK\r\n"
        for cut in range(1, len(PIPELINE)):
            conn, transport = h.connect()
            conn.data_received(PIPELINE[:cut])
            await asyncio.sleep(0.001)  # earlier requests may be answered before the rest
            conn.data_received(PIPELINE[cut:])
            got = await h.replies(transport, EXPECTED_COUNT)
            assert got == EXPECTED, f"split at byte {cut}"
            assert not transport.closed


async def test_pipeline_one_byte_per_read(farm):
    async with serving(farm) as h:
        assert await h.request(SETUP) == b"+OK\r\n"
        conn, transport = h.connect()
        for i in range(len(PIPELINE)):
            conn.data_received(PIPELINE[i : i + 1])
            if i % 7 == 0:
                await asyncio.sleep(0)
        assert await h.replies(transport, EXPECTED_COUNT) == EXPECTED


# ---------------------------------------------------------------- ordering


async def test_local_replies_wait_behind_a_slow_shard(farm):
    async with serving(farm) as h:
        assert await h.request(SETUP) == b"+OK\r\n"
        conn, transport = h.connect()
        with h.stopped(1):
            conn.data_received(
                cmd("GET", A)  # shard 0: answers
                + cmd("GET", B)  # shard 1: frozen
                + cmd("PING")
                + cmd("GET", C)  # shard 2: answers, but must wait for B
                + cmd("ECHO", "e")
                + cmd("MGET", A, B)  # fan-out touching the frozen shard
                + cmd("CLIENT", "ID")
            )
            await wait_until(lambda: bytes(transport.data) == bulk(b"1"), "GET A")
            await asyncio.sleep(0.2)  # shards 0 and 2 have long answered
            assert bytes(transport.data) == bulk(b"1")
            assert len(conn.fifo) == 6
        got = await h.replies(transport, 7)
        assert got == (
            bulk(b"1")
            + bulk(b"two")
            + b"+PONG\r\n"
            + bulk(b"3\r\n3")
            + bulk(b"e")
            + b"*2\r\n" + bulk(b"1") + bulk(b"two")
            + b":%d\r\n" % conn.session.id
        )  # fmt: skip
        # what was ready was written together once the head completed
        assert transport.writes[0] == bulk(b"1")
        assert len(transport.writes) == 2


async def test_resp3_client_gets_resp3_nulls(farm):
    async with serving(farm) as h:
        assert await h.request(SETUP) == b"+OK\r\n"
        conn, transport = h.connect()
        conn.data_received(cmd("HELLO", "3"))
        hello = await h.replies(transport, 1)
        assert hello.startswith(b"%7\r\n")
        conn.data_received(cmd("GET", MISSING) + cmd("MGET", A, MISSING) + cmd("GET", B))
        got = await h.replies(transport, 4)
        assert got[len(hello) :] == (b"_\r\n" + b"*2\r\n" + bulk(b"1") + b"_\r\n" + bulk(b"two"))


# ---------------------------------------------------------------- QUIT and protocol errors


async def test_quit_closes_after_the_replies_before_it(farm):
    async with serving(farm) as h:
        assert await h.request(SETUP) == b"+OK\r\n"
        conn, transport = h.connect()
        with h.stopped(1):
            conn.data_received(cmd("GET", B) + cmd("PING") + cmd("QUIT") + cmd("GET", A))
            await asyncio.sleep(0.2)
            assert bytes(transport.data) == b""
            assert not transport.closed
            assert transport.events == ["pause"]  # nothing is read after QUIT
        await wait_until(lambda: transport.closed, "the close")
        await asyncio.sleep(0.05)
        assert bytes(transport.data) == bulk(b"two") + b"+PONG\r\n+OK\r\n"
        assert transport.written_after_close == b""
        assert conn.session.id not in h.router.clients.by_id  # connection_lost ran


async def test_quit_matches_redis(farm):
    async with serving(farm) as h:
        await compare_with_redis(h, h.masters[0].port, cmd("PING") + cmd("QUIT") + cmd("PING"))


async def test_protocol_error_after_a_pending_reply(farm):
    async with serving(farm) as h:
        assert await h.request(SETUP) == b"+OK\r\n"
        conn, transport = h.connect()
        with h.stopped(1):
            conn.data_received(cmd("GET", B) + b"*1\r\n$x\r\n" + cmd("PING"))
            await asyncio.sleep(0.2)
            assert bytes(transport.data) == b""
            assert not transport.closed
        await wait_until(lambda: transport.closed, "the close")
        assert bytes(transport.data) == bulk(b"two") + (
            b"-ERR Protocol error: invalid bulk length\r\n"
        )
        assert transport.written_after_close == b""


@pytest.mark.parametrize(
    "data",
    [
        b"PING\r\n*1\r\n$x\r\n",
        b"*a\r\n",
        b"*1\r\n$4\r\nPING\r\n*2\r\n:1\r\n",
        b'PING "a\r\n',
        b"*1\r\n$4\r\nPING\r\n*-5\r\n*0\r\n\r\nPING\r\n",  # empty requests are skipped
        cmd("GET", MISSING) + b"*1\r\n$01\r\nx\r\n",
    ],
    ids=["bad bulk length", "bad count", "not a bulk", "unbalanced quotes", "empty", "after get"],
)
async def test_protocol_errors_match_redis(farm, data):
    async with serving(farm) as h:
        # the same bytes to a real redis-server: same reply bytes, same close
        await compare_with_redis(h, h.masters[1].port, data)


# ---------------------------------------------------------------- replies that mirror Redis

MIRRORED = {
    "ping arity": cmd("PING", "a", "b"),
    "echo arity": cmd("ECHO"),
    "unknown command": cmd("FOO", "bar", "baz"),
    "unknown subcommand": cmd("CLIENT", "FOO"),
    "client getname arity": cmd("CLIENT", "GETNAME", "x"),
    "client getname nil": cmd("CLIENT", "GETNAME"),
    "client setname": cmd("CLIENT", "SETNAME", "a b")
    + cmd("CLIENT", "SETNAME", "ok")
    + cmd("CLIENT", "GETNAME")
    + cmd("CLIENT", "SETNAME", "")
    + cmd("CLIENT", "GETNAME"),
    "client setname special": cmd("CLIENT", "SETNAME", "a\x01b"),
    "select": cmd("SELECT", "abc") + cmd("SELECT", "0"),
    "select bad integers": cmd("SELECT", "00") + cmd("SELECT", "-0"),
    "select repeated sign": cmd("SELECT", "--1"),
    "auth password": cmd("AUTH", "pw"),
    "auth syntax": cmd("AUTH", "a", "b", "c"),
    "auth default user": cmd("AUTH", "default", "pw"),
    "auth other user": cmd("AUTH", "bob", "pw"),
    "hello version": cmd("HELLO", "abc") + cmd("HELLO", "SETNAME", "x"),
    "hello leading zero": cmd("HELLO", "03"),
    "hello noproto": cmd("HELLO", "4"),
    "hello option": cmd("HELLO", "2", "badopt"),
    "hello option missing value": cmd("HELLO", "2", "AUTH", "x") + cmd("HELLO", "2", "SETNAME"),
    "hello setname space": cmd("HELLO", "2", "SETNAME", "a b"),
    "hello setname tab": cmd("HELLO", "2", "SETNAME", "a\tb"),
    "hello 3 then reset": cmd("HELLO", "3") + cmd("RESET") + cmd("CLIENT", "GETNAME"),
    "reset name": cmd("CLIENT", "SETNAME", "x") + cmd("RESET") + cmd("CLIENT", "GETNAME"),
    "acl whoami": cmd("ACL", "WHOAMI"),
    "client no-evict": cmd("CLIENT", "NO-EVICT", "on"),
    "mset arity": cmd("MSET", "a", "1", "b"),
    "numkeys syntax": cmd("ZUNIONSTORE", "d", "5", "a"),
    "numkeys integer": cmd("ZUNIONSTORE", "d", "x", "a"),
    "numkeys positive": cmd("LMPOP", "0", "a", "LEFT"),
    "xread unbalanced": cmd("XREAD", "STREAMS", "a", "b", "c"),
    "scan cursor": cmd("SCAN", "abc"),
}


def _without_hello_reply(data: bytes) -> bytes:
    """Drop a leading HELLO reply (its id and version differ by design)."""
    if data.startswith((b"%7\r\n", b"*14\r\n")):
        end = next(e for e in range(len(data) + 1) if count_replies(data[:e]) == 1)
        return data[end:]
    return data


@pytest.mark.parametrize("name", sorted(MIRRORED))
async def test_router_answers_like_redis(farm, name):
    async with serving(farm) as h:
        await compare_with_redis(h, h.masters[2].port, MIRRORED[name])


# ---------------------------------------------------------------- flow control


async def test_reading_pauses_at_max_pending_and_resumes_when_replies_drain(farm):
    async with serving(farm, max_pending_per_client=4) as h:
        keys = keys_on(0, 6, "fc")
        values = [b"v%d" % i for i in range(6)]
        assert await h.request(
            cmd("MSET", *[x for kv in zip(keys, values, strict=True) for x in kv])
        ) == (b"+OK\r\n")
        conn, transport = h.connect()
        with h.stopped(0):
            conn.data_received(b"".join(cmd("GET", k) for k in keys))
            assert transport.events == ["pause"]
            assert len(conn.fifo) == 4  # no more than the bound is in flight
            assert conn.reader.buffered() > 0  # the other two wait, unparsed
            await asyncio.sleep(0.2)
            assert transport.events == ["pause"]
            assert bytes(transport.data) == b""
        got = await h.replies(transport, 6)
        assert got == b"".join(bulk(v) for v in values)
        assert transport.events[:2] == ["pause", "resume"]
        assert not transport.paused
        assert not transport.closed


async def test_reading_pauses_for_local_replies_too(farm):
    async with serving(farm, max_pending_per_client=3) as h:
        conn, transport = h.connect()
        conn.data_received(b"".join(cmd("ECHO", str(i)) for i in range(8)))
        assert transport.events == ["pause"]
        assert len(conn.fifo) == 3
        got = await h.replies(transport, 8)
        assert got == b"".join(bulk(str(i).encode()) for i in range(8))
        # 3 in flight: pause; drained: resume; 3 more: pause; resume; the last 2 fit
        assert transport.events == ["pause", "resume"] * 2
        assert not transport.paused


async def test_write_pressure_pauses_reading_until_the_client_reads(farm):
    big = b"x" * 600_000
    async with serving(farm) as h:
        conn, transport = h.connect()
        assert transport.high_water is not None
        transport.stall()  # the client stops reading its replies
        sent = 0
        while not transport.writing_paused:  # until output passes the high-water mark
            conn.data_received(cmd("ECHO", big))
            sent += 1
            await h.replies(transport, sent)
        assert transport.events == ["pause"]
        assert not transport.closed  # 64 MiB default client_output_limit_bytes: far away
        transport.drain()
        assert transport.events == ["pause", "resume"]
        conn.data_received(cmd("PING"))
        assert (await h.replies(transport, sent + 1)).endswith(b"+PONG\r\n")


async def test_client_not_reading_past_the_output_limit_is_dropped(farm):
    big = b"x" * 600_000
    async with serving(farm, client_output_limit_bytes=1_500_000) as h:
        conn, transport = h.connect()
        transport.stall()
        for i in range(10):
            conn.data_received(cmd("ECHO", big))
            await asyncio.sleep(0.01)
            if transport.closed:
                break
            assert transport.unread <= 1_500_000, f"over the limit after {i + 1} replies"
        assert "abort" in transport.events
        assert transport.unread > 1_500_000
        await asyncio.sleep(0.01)
        assert conn.session.id not in h.router.clients.by_id


async def test_write_pressure_pauses_reading(farm):
    async with serving(farm) as h:
        conn, transport = h.connect()
        conn.pause_writing()  # the socket's write buffer went above its high-water mark
        assert transport.events == ["pause"]
        conn.data_received(cmd("PING"))
        await asyncio.sleep(0.05)
        assert bytes(transport.data) == b"+PONG\r\n"  # replies still go out
        conn.resume_writing()
        assert transport.events == ["pause", "resume"]


# ---------------------------------------------------------------- from its ports alone


class _NoParking:
    """A Parker that never holds a write (as a router that watches no sentinel)."""

    def park(self, pending: object, error: bytes, request: bytes) -> bool:
        return False


async def test_a_client_connection_is_built_from_its_ports_alone():
    # No Router, no redis-server: ClientConn takes each thing it needs from above
    # as a port (router.wire.client.ClientPorts); the commands the router answers
    # itself need nothing more. The route has no master at all.
    config = parse(
        {
            "name": "ports-only",
            "router": {"listen": "127.0.0.1:1", "admin": "127.0.0.1:2", "max_clients": 1},
            "shards": [{"name": "a", "slots": "0-16383", "master": "127.0.0.1:3"}],
        }
    )
    running = RunningConfig.load(config)
    clients = Clients(running)
    stats = RouterStats()
    routes = SimpleNamespace(route=Route(config.slotmap(0), ()))
    ports = ClientPorts(
        routes=routes,
        running=running,
        turn=LoopTurn(),
        stats=stats,
        parker=_NoParking(),
        clients=clients,
        info_head=lambda: "",
    )
    conn = ClientConn(ports)
    transport = RecordingTransport(conn)
    conn.connection_made(transport)
    conn.data_received(
        cmd("PING")
        + cmd("ECHO", "hi")
        + cmd("CLIENT", "SETNAME", "me")
        + cmd("CLIENT", "GETNAME")
        + cmd("GET")
        + cmd("NOSUCH", "x")
        + cmd("CLIENT", "TRACKING", "on")
    )
    await wait_until(lambda: count_replies(bytes(transport.data)) == 7, "7 replies")
    assert bytes(transport.data) == (
        b"+PONG\r\n"
        + bulk(b"hi")
        + b"+OK\r\n"
        + bulk(b"me")
        + b"-ERR wrong number of arguments for 'get' command\r\n"
        + b"-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n"
        + b"-ERR 'client tracking' is not supported by the router\r\n"
    )
    assert [s.name for s in clients.sessions()] == [b"me"]
    assert stats.commands["ping"][0] == 1  # outcome ok
    assert stats.commands["client|tracking"][5] == 1  # outcome unsupported
    # the registry's bound applies: a second client is refused
    other = ClientConn(ports)
    other_transport = RecordingTransport(other)
    other.connection_made(other_transport)
    assert bytes(other_transport.data) == b"-ERR max number of clients reached\r\n"
    assert clients.rejected == 1
    transport.close()
    await wait_until(lambda: not clients.by_id, "connection_lost")


# ---------------------------------------------------------------- backend task ownership


async def test_stopping_a_node_right_after_it_connects_ends_its_tasks(farm):
    # Every background task has an owner that can end it (architecture rule 8):
    # Node.stop() must end the connection tasks whatever they are doing, also
    # in the loop turns right after a connection came up (on Python 3.11,
    # asyncio.wait_for around create_connection can swallow that cancel).
    master = farm.start()
    config = parse(
        {
            "name": "stop-test",
            "router": {"listen": "127.0.0.1:1", "admin": "127.0.0.1:2"},
            "shards": [{"name": "a", "slots": "0-16383", "master": master.addr}],
        }
    )
    router = Router(config)
    survivors: list[str] = []
    for _ in range(5):
        tasks: list[asyncio.Task[None]] = []

        def spawn(coro, name: str, tasks: list[asyncio.Task[None]] = tasks) -> asyncio.Task[None]:
            task = asyncio.get_running_loop().create_task(coro, name=name)
            tasks.append(task)
            return task

        node = Node(config.shards[0].master, "a", router.running.backend, router.routes.ports)
        node.start(spawn)
        deadline = asyncio.get_running_loop().time() + 10
        while not all(c.state == "up" for c in node.all_conns()):  # every loop turn
            assert asyncio.get_running_loop().time() < deadline, "backends never came up"
            await asyncio.sleep(0)
        survivors += await stop_nodes([node], grace=0.5)
    assert survivors == [], "tasks still running after Node.stop()"


@pytest.mark.parametrize("kind", ["c", "python"])
async def test_a_backend_read_writes_a_client_at_once_only_when_every_reply_is_in(kind):
    # LoopTurn.flush_replies (the C turn's own check, or the reference's
    # ClientConn.replies_all_in): a client owed a reply by another shard is left for
    # the turn's end; once every slot of its FIFO is answered it is written at once
    from router.wire.client import Pending
    from router.wire.turn import PyLoopTurn

    if kind == "c" and LoopTurn is PyLoopTurn:
        pytest.skip("the C hot path is not built here")
    config = parse(
        {
            "name": "replies",
            "router": {"listen": "127.0.0.1:1", "admin": "127.0.0.1:2"},
            "shards": [{"name": "a", "slots": "0-16383", "master": "127.0.0.1:3"}],
        }
    )
    running = RunningConfig.load(config)
    turn = LoopTurn() if kind == "c" else PyLoopTurn()
    ports = ClientPorts(
        routes=SimpleNamespace(route=Route(config.slotmap(0), ())),
        running=running,
        turn=turn,
        stats=RouterStats(),
        parker=_NoParking(),
        clients=Clients(running),
        info_head=lambda: "",
    )
    conn = ClientConn(ports)
    transport = RecordingTransport(conn)
    conn.connection_made(transport)
    slots = [Pending(conn, "get") for _ in range(40)]  # past 32: the iterator's way too
    conn.fifo.extend(slots)
    for n_answered in (1, 39):
        for p in slots[:n_answered]:
            p.reply = b"$1\r\nx\r\n"
        conn.dirty = True
        turn.dirty_clients.append(conn)
        turn.flush_replies()
        assert turn.dirty_clients == [conn] and bytes(transport.data) == b""
        turn.dirty_clients.clear()
    slots[-1].reply = b"$1\r\ny\r\n"
    turn.dirty_clients.append(conn)
    turn.flush_replies()
    assert turn.dirty_clients == [] and not conn.fifo
    assert bytes(transport.data) == b"$1\r\nx\r\n" * 39 + b"$1\r\ny\r\n"
    await asyncio.sleep(0)  # the turn's end finds nothing left to write
    assert bytes(transport.data) == b"$1\r\nx\r\n" * 39 + b"$1\r\ny\r\n"


async def test_a_request_to_an_idle_backend_leaves_within_its_read_callback(farm):
    # LoopTurn.flush_requests, Nagle's rule for requests: a lone client's request to a
    # backend with nothing in flight is written before data_received returns (no loop
    # pass: the latency of one client); the next one, with a request in flight there,
    # waits for the turn's end (where many clients' requests share one write); both
    # replies come back in order
    async with serving(farm) as h:
        key = keys_on(1, 1)[0]
        conn, transport = h.connect()
        backend = conn.conn(1)
        for _ in range(3):
            await asyncio.sleep(0)  # whatever connecting scheduled has run
        conn.data_received(cmd("GET", key))
        assert backend.out == [] and len(backend.waiting) == 1
        assert conn.turn._scheduled is False
        assert await h.replies(transport, 1) == b"$-1\r\n"
        with h.stopped(1):  # nothing is answered: the first request stays in flight
            conn.data_received(cmd("SET", key, "v"))
            assert backend.out == [] and len(backend.waiting) == 1
            conn.data_received(cmd("GET", key))
            assert backend.out == [cmd("GET", key)] and conn.turn._scheduled is True
            await asyncio.sleep(0)  # the turn's end
            assert backend.out == [] and len(backend.waiting) == 2
        assert await h.replies(transport, 3) == b"$-1\r\n+OK\r\n$1\r\nv\r\n"
