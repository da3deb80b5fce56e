"""The C hot path (router.wire._hot) against its Python reference, structurally.

Behaviour is compared end to end (`tests/integration/router/test_speedups_router.py`
runs a router with it and one without over the same byte streams); here: it is built
whenever the C speedups are, its C fields are exactly the attributes the Python bases
declare, its `Pending` has `PyPending`'s attributes and defaults, and every
single-key command of the command table is one its fast path takes.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from router.commands.spec import FAST
from router.wire import backend, client
from router.wire.hot import H, fast_table, implementation
from slotwarden.resp import accel

needs_hot = pytest.mark.skipif(H is None, reason="the C hot path is not built here")

MAX_KEY_INDEX = 8  # _hot.c: a fast_key past this would always go the Python way


def c_fields(cls: type) -> set[str]:
    return {name for name, v in vars(cls).items() if type(v).__name__ == "member_descriptor"}


def test_the_hot_path_is_built_whenever_the_speedups_are() -> None:
    """(SLOTWARDEN_PURE_PYTHON=1 turns both off: `test_pure_python_runs_the_reference_methods`.)"""
    assert (H is not None) == (accel.C is not None)
    assert implementation() == accel.implementation()


@needs_hot
def test_the_c_bases_hold_exactly_the_fields_the_python_bases_declare() -> None:
    assert c_fields(H.ClientBase) == set(client.CLIENT_FIELDS)
    assert c_fields(H.BackendBase) == set(backend.BACKEND_FIELDS)
    # and the subclasses do not shadow one of them with a slot of their own
    assert not set(client.ClientConn.__slots__) & set(client.CLIENT_FIELDS)
    assert not set(backend.BackendConn.__slots__) & set(backend.BACKEND_FIELDS)
    assert client.ClientConn.data_received is H.ClientBase.data_received
    assert backend.BackendConn.flush is H.BackendBase.flush


@needs_hot
def test_pending_has_the_reference_attributes_and_defaults() -> None:
    owner = object()
    for args in [(owner,), (owner, "get"), (owner, "set", b"raw", None)]:
        c_slot, py_slot = H.Pending(*args), client.PyPending(*args)
        for name in ("client", "cmd", "reply", "req", "sent", "t0"):
            assert getattr(c_slot, name) == getattr(py_slot, name), (args, name)
    slot = H.Pending(owner, cmd="get", req=b"r", sent=None)
    slot.t0 = 1.5
    slot.shape = "single"
    assert (slot.cmd, slot.req, slot.t0, slot.shape) == ("get", b"r", 1.5, "single")
    assert set(client.PyPending.__slots__) <= c_fields(H.Pending)
    assert client.Pending is H.Pending
    with pytest.raises(TypeError):  # on_reply needs a real client connection
        slot.on_reply(b"+OK\r\n")


@needs_hot
def test_the_c_loop_turn_has_the_reference_attributes() -> None:
    from router.wire import turn

    c_turn, py_turn = turn.LoopTurn(), turn.PyLoopTurn()
    assert turn.LoopTurn is H.LoopTurn
    names = ("dirty_backends", "dirty_clients", "sample_due", "_scheduled", "busy", "solo", "reads")
    for name in names:
        assert getattr(c_turn, name) == getattr(py_turn, name), name
    c_turn.sample_due = False
    assert c_turn.sample_due is False
    assert set(turn.PyLoopTurn.__slots__) == c_fields(H.LoopTurn)


def test_every_fast_command_is_in_the_c_table_as_the_spec_says() -> None:
    table = fast_table()
    assert set(table) == set(FAST)
    single = fanout = 0
    for name, (low, high, key, cmd, step, merger, shape) in table.items():
        spec = FAST[name]
        assert (low, high, cmd, shape) == (
            spec.min_args,
            spec.max_args,
            spec.name,
            spec.shape.value,
        )
        if spec.fast_key:  # single-key: the key's index, within what the C framer keeps
            single += 1
            assert key == spec.fast_key and 1 <= key <= MAX_KEY_INDEX and key < low, name
        else:  # MGET/MSET/DEL-like: split by shard, merged by a merger C knows or Python's
            fanout += 1
            assert key == 0 and step == spec.split_step >= 1 and merger == spec.merger, name
            assert merger in ("sum", "all-ok", "ordered"), name
    assert single and fanout
    assert table[b"GET"] == table[b"get"] and b"GeT" not in table  # other spellings: Python


def test_pure_python_runs_the_reference_methods() -> None:
    """SLOTWARDEN_PURE_PYTHON=1 turns the hot path off with the speedups: the
    connections' protocol methods are then the Python reference ones."""
    code = (
        "import router.wire.client as c, router.wire.backend as b, router.wire.hot as h;"
        "assert h.H is None and h.implementation() == 'python';"
        "assert c.ClientConn.data_received is c.ClientConn._data_received;"
        "assert c.ClientConn.flush is c.ClientConn._flush;"
        "assert b.BackendConn.data_received is b.BackendConn._data_received;"
        "assert b.BackendConn.flush is b.BackendConn._flush;"
        "assert b.BackendConn.send is b.BackendConn._send;"
        "import router.wire.turn as t; assert t.LoopTurn is t.PyLoopTurn;"
        "assert c.Pending is c.PyPending; print('ok')"
    )
    env = {**os.environ, "SLOTWARDEN_PURE_PYTHON": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr


@needs_hot
def test_a_backend_connection_works_before_the_client_module_is_imported() -> None:
    """The C module is usable from its import on (a tool may use BackendConn without
    router.wire.client, which calls H.setup): it crashed the interpreter before."""
    code = (
        "import asyncio, collections, router.wire._hot as h, router.wire.turn as t, sys;"
        "assert 'router.wire.client' not in sys.modules;"
        "b = h.BackendBase(); b.waiting = collections.deque(); b.out = [];"
        "b.state = 'up'; b.turn = t.LoopTurn(); b.dirty = False;"
        "b.loop = asyncio.new_event_loop(); w = object(); b.send(b'x', w);"
        "assert list(b.waiting) == [w] and b.out == [b'x'] and b.dirty is True; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr


class Flushes:
    """A connection (router.wire.turn.Flushable) that records its flush, or raises."""

    def __init__(self, log: list[str], name: str, fails: bool = False) -> None:
        self.log, self.name, self.fails = log, name, fails

    def flush(self) -> None:
        self.log.append(self.name)
        if self.fails:
            raise RuntimeError(f"{self.name} failed")


@pytest.mark.parametrize("kind", ["c", "python"])
def test_a_flush_that_raises_does_not_leave_the_others_unwritten(kind: str) -> None:
    from router.wire import turn as turns

    if kind == "c" and H is None:
        pytest.skip("the C hot path is not built here")
    turn = turns.LoopTurn() if kind == "c" else turns.PyLoopTurn()
    log: list[str] = []
    turn.dirty_backends.extend([Flushes(log, "b1", fails=True), Flushes(log, "b2")])
    turn.dirty_clients.extend([Flushes(log, "c1"), Flushes(log, "c2", fails=True)])
    with pytest.raises(RuntimeError, match="b1 failed"):  # the first one, once all ran
        turn._flush_now()
    assert log == ["b1", "b2", "c1", "c2"]
    assert turn.dirty_backends == [] and turn.dirty_clients == [] and turn.sample_due is True


class Answered(Flushes):
    """A client (Flushable) whose replies are all in, or not yet."""

    def __init__(self, log: list[str], name: str, all_in: bool, fails: bool = False) -> None:
        super().__init__(log, name, fails)
        self.all_in = all_in

    def replies_all_in(self) -> bool:
        return self.all_in


@pytest.mark.parametrize("kind", ["c", "python"])
def test_a_backend_read_writes_at_once_the_clients_with_every_reply_in(kind: str) -> None:
    """LoopTurn.flush_replies: a client owed nothing more is written now (no loop pass
    later); one still waiting for another shard's replies stays for the turn's end."""
    import asyncio

    from router.wire import turn as turns

    if kind == "c" and H is None:
        pytest.skip("the C hot path is not built here")

    async def run() -> list[str]:
        turn = turns.LoopTurn() if kind == "c" else turns.PyLoopTurn()
        log: list[str] = []
        done, waits = Answered(log, "done", True), Answered(log, "waits", False)
        broken = Answered(log, "broken", True, fails=True)
        turn.dirty_clients.extend([done, broken, waits])
        turn.flush_replies()  # never raises into the backend's read callback
        assert log == ["done", "broken"] and turn.dirty_clients == [broken, waits]
        waits.all_in = True
        with pytest.raises(RuntimeError, match="broken failed"):  # the turn's end raises it
            turn._flush_now()
        assert turn.dirty_clients == []
        await asyncio.sleep(0)  # the turn's end scheduled by flush_replies: nothing left
        return log

    assert asyncio.run(run()) == ["done", "broken", "broken", "waits"]


@pytest.mark.parametrize("kind", ["c", "python"])
def test_a_client_read_writes_idle_backends_at_once_and_batches_busy_ones(kind: str) -> None:
    """LoopTurn.flush_requests, Nagle's rule: after a turn of at most one client read,
    with nothing else waiting for the turn's end and no backend busy, the dirty backends
    are written now and the turn ends there (nothing scheduled, the next request
    sampled); a busy backend, a turn after one of several client reads, client output
    or a turn already scheduled leave everything for the turn's end; a backend whose
    flush raises stays for the turn's end, which raises it."""
    import asyncio

    from router.wire import turn as turns

    if kind == "c" and H is None:
        pytest.skip("the C hot path is not built here")

    async def run() -> list[str]:
        turn = turns.LoopTurn() if kind == "c" else turns.PyLoopTurn()
        log: list[str] = []
        turn.sample_due = False  # a request of this read was sampled
        turn.dirty_backends.extend([Flushes(log, "idle1"), Flushes(log, "idle2")])
        turn.flush_requests()
        assert log == ["idle1", "idle2"] and turn.dirty_backends == []
        assert turn._scheduled is False and turn.sample_due is True  # the turn ended here

        turn.busy = True  # a backend with requests in flight: batched to the turn's end
        turn.dirty_backends.append(Flushes(log, "busy"))
        turn.flush_requests()
        assert log == ["idle1", "idle2"] and turn._scheduled is True
        turn.dirty_backends.append(Flushes(log, "later"))  # another client's, same turn
        turn.flush_requests()  # scheduled already: waits too
        await asyncio.sleep(0)
        assert log[2:] == ["busy", "later"] and turn.busy is False and turn._scheduled is False
        assert turn.solo is False  # that turn carried two client reads: a busy loop
        turn.flush_replies()  # a turn of replies only (nothing dirty: it ends here) ...
        assert turn._scheduled is False and turn.solo is False  # ... says nothing new

        turn.dirty_backends.append(Flushes(log, "after a busy turn"))  # idle, but batched
        turn.flush_requests()
        assert log[4:] == [] and turn._scheduled is True
        await asyncio.sleep(0)
        assert log[4:] == ["after a busy turn"] and turn.solo is True  # one read: quiet

        turn.dirty_clients.append(Flushes(log, "client"))  # client output waits: all wait
        turn.dirty_backends.append(Flushes(log, "b"))
        turn.flush_requests()
        assert log[5:] == [] and turn._scheduled is True
        await asyncio.sleep(0)
        assert log[5:] == ["b", "client"]

        broken = Flushes(log, "broken", fails=True)
        turn.dirty_backends.extend([broken, Flushes(log, "fine")])
        turn.flush_requests()  # never raises into the client's read callback
        assert log[7:] == ["broken", "fine"] and turn.dirty_backends == [broken]
        assert turn._scheduled is True
        with pytest.raises(RuntimeError, match="broken failed"):  # the turn's end raises it
            turn._flush_now()
        return log[9:]

    assert asyncio.run(run()) == ["broken"]


@pytest.mark.parametrize("kind", ["c", "python"])
def test_reads_written_early_one_by_one_in_a_loop_pass_make_the_loop_busy(kind: str) -> None:
    """Each early write ends its turn in place, but the client reads keep counting until
    the loop's pass (`_flush_now`): two of them in one pass turn `solo` off, so the next
    reads are batched; a pass with one read turns it on again. A read that finds the
    turn already scheduled (with nothing busy), or that made nothing dirty, waits."""
    import asyncio

    from router.wire import turn as turns

    if kind == "c" and H is None:
        pytest.skip("the C hot path is not built here")

    async def run() -> list[str]:
        turn = turns.LoopTurn() if kind == "c" else turns.PyLoopTurn()
        log: list[str] = []
        for name in ("a", "b"):  # two clients' reads, each to an idle backend
            turn.dirty_backends.append(Flushes(log, name))
            turn.flush_requests()
        assert log == ["a", "b"] and turn._scheduled is False and turn.reads == 2
        turn.flush()  # something else (a local reply, say) asks for the loop's pass
        turn.dirty_backends.append(Flushes(log, "c"))
        turn.flush_requests()  # scheduled already: waits, though nothing is busy
        assert log == ["a", "b"]
        await asyncio.sleep(0)
        assert log == ["a", "b", "c"] and turn.solo is False  # three reads in that pass
        turn.dirty_backends.append(Flushes(log, "d"))
        turn.flush_requests()  # a busy loop: batched
        assert log[3:] == [] and turn._scheduled is True
        await asyncio.sleep(0)
        assert log[3:] == ["d"] and turn.solo is True  # one read in that pass: quiet again
        turn.flush_requests()  # a read that made nothing dirty (half a request)
        assert turn._scheduled is True
        await asyncio.sleep(0)
        return log

    assert asyncio.run(run()) == ["a", "b", "c", "d"]


@pytest.mark.parametrize("kind", ["c", "c-send-python-turn", "python"])
def test_a_backend_with_requests_in_flight_marks_the_turn_busy(kind: str) -> None:
    """BackendConn.send (C, with the C turn or the reference one) and its reference
    `_send`: the first request of a turn to a connection with none in flight leaves the
    turn free to write it at once (not busy); to one with a request in flight, the turn
    is busy (batched to its end)."""
    import asyncio
    from types import SimpleNamespace

    from router.control.metrics import RouterStats
    from router.wire.backend import BackendConn, BackendSettings
    from router.wire.ports import BackendPorts
    from router.wire.turn import LoopTurn, PyLoopTurn
    from slotwarden.cluster.config import Address

    if kind.startswith("c") and H is None:
        pytest.skip("the C hot path is not built here")

    async def run() -> list[tuple[bool, int]]:
        turn = LoopTurn() if kind == "c" else PyLoopTurn()
        hints = SimpleNamespace(hint_topology=lambda: None)
        ports = BackendPorts(turn, RouterStats(), hints)
        conn = BackendConn(Address("127.0.0.1", 1), "a", BackendSettings(), ports)
        send = conn.send if kind != "python" else (lambda raw, w: BackendConn._send(conn, raw, w))
        seen = []
        for raw in (b"first", b"second"):
            send(raw, object())
            seen.append((turn.busy, len(turn.dirty_backends)))
            conn.dirty, conn.out = False, []  # as its flush: written, the reply still owed
            turn.dirty_backends.clear()
            turn.busy = False
        return seen

    assert asyncio.run(run()) == [(False, 1), (True, 1)]


@needs_hot
def test_slots_read_in_place_follow_the_class_as_getattr_does() -> None:
    """The hot path reads and writes some __slots__ (Session.last_at, .closing, ...) at
    their offset, resolved once per class: it must still act as getattr/setattr for
    another class, a class changed since, an unset slot and an object with a __dict__."""

    class A:
        __slots__ = ("closing", "last_at")

    class B:  # same names, another layout
        __slots__ = ("a_pad", "closing", "last_at")

    a, b = A(), B()
    H._slot_set(a, "last_at", 1.5)
    H._slot_set(b, "last_at", 2.5)
    assert (a.last_at, b.last_at) == (1.5, 2.5)
    assert H._slot_get(a, "last_at") == 1.5 and H._slot_get(b, "last_at") == 2.5
    with pytest.raises(AttributeError):
        H._slot_get(a, "closing")  # unset
    a.closing = True
    assert H._slot_get(a, "closing") is True

    class C(A):  # a subclass that turns the slot into a property
        seen: list[float] = []

        @property
        def last_at(self) -> float:
            return -1.0

        @last_at.setter
        def last_at(self, v: float) -> None:
            C.seen.append(v)

    c = C()
    H._slot_set(c, "last_at", 3.5)
    assert C.seen == [3.5] and H._slot_get(c, "last_at") == -1.0
    H._slot_set(a, "last_at", 4.5)  # and back to A: its own offset again
    assert a.last_at == 4.5

    A.closing = property(lambda self: "patched")  # the class changed after first use
    assert H._slot_get(a, "closing") == "patched"

    class E:  # slots, but its own __setattr__: the in-place write would bypass it
        __slots__ = ("last_at",)
        seen: list[float] = []

        def __setattr__(self, name: str, v: object) -> None:
            E.seen.append(v)  # type: ignore[arg-type]
            object.__setattr__(self, name, v)

    e = E()
    H._slot_set(e, "last_at", 6.5)
    assert E.seen == [6.5] and e.last_at == 6.5

    class D:  # no slots
        pass

    d = D()
    H._slot_set(d, "last_at", 5.5)
    assert d.last_at == 5.5 and H._slot_get(d, "last_at") == 5.5


@needs_hot
def test_the_c_histogram_counts_as_the_reference() -> None:
    from router.control.metrics import BUCKETS
    from router.wire.hot import PyHistogram

    c, py = H.Histogram(BUCKETS), PyHistogram(BUCKETS)
    values = [0.0, 1e-9, *BUCKETS, *(b * 1.0001 for b in BUCKETS), *(b * 0.9999 for b in BUCKETS)]
    values += [BUCKETS[-1] * 10, 123.0]
    for v in values:
        c.observe(v)
        py.observe(v)
    assert c.counts == py.counts and sum(c.counts) == len(values)
    assert c.sum == pytest.approx(py.sum)
    assert c.counts[-1] >= 2  # above every bound
    with pytest.raises(TypeError):
        c.observe("1")


@needs_hot
def test_a_sampled_reply_is_observed_by_a_stats_sink_without_c_histograms() -> None:
    """The C path observes into RouterStats.latency's C histograms in place; a StatsSink
    without them gets its `observe` called, as the reference does."""
    from router.control.metrics import RouterStats

    class Sink:
        def __init__(self) -> None:
            self.seen: list[tuple[str, float]] = []

        def observe(self, shape: str, seconds: float) -> None:
            self.seen.append((shape, seconds))

    for stats in (Sink(), RouterStats()):
        client = H.ClientBase()
        client.stats = stats
        p = H.Pending(client, "get")
        p.t0, p.shape = 1.0, "single"  # perf_counter() is far past 1.0
        p.on_reply(b"+OK\r\n")
        if isinstance(stats, Sink):
            assert [shape for shape, _ in stats.seen] == ["single"] and stats.seen[0][1] > 0
        else:
            assert sum(stats.latency["single"].counts) == 1 and stats.latency["single"].sum > 0
