"""CLIENT KILL / UNBLOCK / PAUSE / UNPAUSE / REPLY at the client connection, and the pause gate.

The client connection (router.wire.client) calls in here for the CLIENT
commands that act on other connections or on the router as a whole; the
parsing is pure (`router.decide.client_ctl`), the acting is the client
registry's (router.control.clients, through the `Controls` port):

    CLIENT KILL ...      ─► parse_kill ─► controls.kill(filter)  ─► :n / +OK / -ERR No such client
    CLIENT UNBLOCK id .. ─► parse_unblock ─► controls.unblock    ─► :1 / :0 (after the shard said)
    CLIENT PAUSE ms ..   ─► parse_pause ─► controls.pause_for    ─► +OK
    CLIENT UNPAUSE       ─► controls.unpause                     ─► +OK

While a pause is in force the client connection processes its requests one
at a time through `process_paused` (instead of its fast loop): a request the
pause holds (`Pause.holds`: every command for ALL, the writes and
EVAL/FCALL/PUBLISH... for WRITE) stays first in ``held``, with everything the
client sent after it, until the registry wakes every client at the pause's
end; requests are never refused and never reordered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sized
from typing import Protocol

from router.commands.spec import CommandSpec, resolve
from router.decide.client_ctl import (
    NO_SUCH_CLIENT,
    KillFilter,
    Pause,
    parse_kill,
    parse_pause,
    parse_unblock,
    reply_dropped,
)
from router.decide.modes import Mode
from router.decide.session import Session
from router.wire.client_state import ClientState
from router.wire.ports import ConfigSource, Waiter
from router.wire.turn import LoopTurn
from slotwarden.resp.encode import OK, encode_int, error_reply
from slotwarden.resp.errors import ProtocolError
from slotwarden.resp.requests import Request, RequestReader

log = logging.getLogger("slotwarden.frontend")

__all__ = ["CONTROL", "Controls", "answer", "drop_replies", "process_paused", "unblock"]

# LOCAL rows answered here rather than by router.decide.builtins
CONTROL = frozenset({"client|kill", "client|pause", "client|unpause"})


class Controls(Protocol):
    """What these commands need of the client registry (router.control.clients.Clients)."""

    pause: Pause

    def kill(self, f: KillFilter) -> int: ...

    def unblock(
        self, me: Session, target: int, error: bool, waiter: Waiter, after: Callable[[], None]
    ) -> None: ...

    def pause_for(self, ms: int, everything: bool) -> None: ...

    def unpause(self) -> None: ...


class CtlClient(Protocol):
    """A client connection (router.wire.client.ClientConn), as seen from here."""

    session: Session | None
    state: ClientState
    running: ConfigSource
    fifo: Sized
    large: object | None
    gather: object | None
    held: list[Request]
    reader: RequestReader
    loop: asyncio.AbstractEventLoop
    turn: LoopTurn

    def dispatch(self, args: list[bytes], raw: bytes, spec: CommandSpec | None) -> None: ...

    def push(self, reply: bytes) -> None: ...

    def new_pending(self) -> Waiter: ...

    dropped: set | None

    def _update_reading(self) -> None: ...


def answer(controls: Controls, session: Session, name: str, args: list[bytes]) -> bytes:
    """The reply to CLIENT KILL, PAUSE or UNPAUSE from the client of ``session``."""
    session.last_cmd = name
    if name == "client|kill":
        f = parse_kill(session, args)
        if type(f) is bytes:
            return f
        killed = controls.kill(f)  # type: ignore[arg-type]
        if f.old_form:  # type: ignore[union-attr]
            return OK if killed else NO_SUCH_CLIENT
        return encode_int(killed)
    if name == "client|pause":
        parsed = parse_pause(args)
        if type(parsed) is bytes:
            return parsed
        ms, everything = parsed  # type: ignore[misc]
        controls.pause_for(ms, everything)
        return OK
    if name == "client|unpause":
        controls.unpause()
        return OK
    return error_reply(f"ERR unknown control command '{name}'")


def unblock(client: CtlClient, controls: Controls, args: list[bytes]) -> None:
    """CLIENT UNBLOCK id [TIMEOUT|ERROR]: its reply slot now, filled once the shards
    holding the blocked command have answered."""
    session = client.session
    assert session is not None
    parsed = parse_unblock(args)
    if type(parsed) is bytes:
        client.push(parsed)
        return
    target, error = parsed  # type: ignore[misc]
    controls.unblock(session, target, error, client.new_pending(), client.turn.flush)


def process_paused(client: CtlClient, pause: Pause) -> None:
    """`ClientConn.process` while CLIENT PAUSE is in force: one request at a time, each
    either dispatched or, if the pause holds it, kept first in ``held`` (with all that
    follows) until the registry wakes the client."""
    session = client.session
    assert session is not None
    state = client.state
    limit = client.running.config.router.max_pending_per_client
    while (
        not session.closing
        and len(client.fifo) < limit
        and state.mode is not Mode.BLOCKED
        and client.large is None
        and client.gather is None
    ):
        if not client.held:
            try:
                batch = client.reader.read(1)
            except ProtocolError as exc:
                log.info("client %s: protocol error: %s", session.addr, exc)
                client.push(error_reply(f"ERR Protocol error: {exc}"))
                session.closing = True
                break
            if not batch:
                break
            client.held.extend(batch)
        args, raw = client.held[0]
        spec: CommandSpec | None = resolve(args)
        if pause.holds(spec, client.loop.time()):
            break  # waits, in order, until the pause ends (Clients wakes every client)
        del client.held[0]
        client.dispatch(args, raw, spec)
    client._update_reading()


def drop_replies(client: CtlClient, session: Session, before: int, name: str) -> None:
    """CLIENT REPLY OFF/SKIP: the reply slots the request ``name`` added to the FIFO
    (from index ``before``) are marked dropped (``flush`` skips them)."""
    if reply_dropped(session, name):
        fifo: list = client.fifo  # type: ignore[assignment]  # a deque: indexable
        dropped = client.dropped if client.dropped is not None else set()
        for i in range(before, len(fifo)):
            dropped.add(fifo[i])
        client.dropped = dropped
    client.state.update_plain()  # the fast path is off while replies are dropped
