"""Client modes: which commands a client may send in which state, declared as one table.

Pure, no I/O. A client is in one of four modes (Redis's client flags, in small):

    NORMAL ──MULTI──► MULTI ──EXEC/DISCARD/RESET──► NORMAL
      │ ▲                 (commands are queued, +QUEUED)
      │ └──────────────── BLOCKED ◄──BLPOP & co. (no more input read until the reply)
      └──(P|S)SUBSCRIBE──► SUBSCRIBED ──last unsubscribe / RESET──► NORMAL

`TRANSITIONS` maps ``(mode, input)`` to the next mode; `step` looks an input
up and answers the error Redis 7.0 gives for a pair that is not in the table
(``ERR MULTI calls can not be nested``, ``ERR EXEC without MULTI``, ...).
Invariant: router.wire.client_state changes a client's mode only through `step` (or the
two events `UNBLOCKED` and `NO_SUBSCRIPTIONS`, also in the table).

RESP3 clients may send any command while subscribed (Redis 7 restricts only
RESP2 clients); `step` then looks the input up as if the client were NORMAL
and keeps it SUBSCRIBED.
"""

from __future__ import annotations

import enum

from slotwarden.resp.encode import error_reply


class Mode(enum.Enum):
    NORMAL = "normal"
    MULTI = "multi"  # between MULTI and EXEC/DISCARD: commands are queued
    SUBSCRIBED = "subscribed"  # at least one channel, pattern or shard channel
    BLOCKED = "blocked"  # a blocking command is waiting for its reply


class ModeInput(enum.Enum):
    MULTI = "multi"
    EXEC = "exec"
    DISCARD = "discard"
    WATCH = "watch"
    UNWATCH = "unwatch"
    SUBSCRIBE = "subscribe"  # SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE
    UNSUBSCRIBE = "unsubscribe"  # UNSUBSCRIBE, PUNSUBSCRIBE, SUNSUBSCRIBE
    PING = "ping"
    QUIT = "quit"
    RESET = "reset"
    BLOCKING = "blocking"  # BLPOP & co., XREAD ... BLOCK, WAIT
    COMMAND = "command"  # anything else
    # events, not commands
    UNBLOCKED = "unblocked"  # the blocking command was answered
    NO_SUBSCRIPTIONS = "no-subscriptions"  # the last subscription went away


NORMAL, MULTI, SUBSCRIBED, BLOCKED = Mode.NORMAL, Mode.MULTI, Mode.SUBSCRIBED, Mode.BLOCKED
In = ModeInput

TRANSITIONS: dict[tuple[Mode, ModeInput], Mode] = {
    (NORMAL, In.MULTI): MULTI,
    (NORMAL, In.WATCH): NORMAL,
    (NORMAL, In.UNWATCH): NORMAL,
    (NORMAL, In.SUBSCRIBE): SUBSCRIBED,
    (NORMAL, In.UNSUBSCRIBE): NORMAL,  # answered "0 subscriptions left"
    (NORMAL, In.PING): NORMAL,
    (NORMAL, In.QUIT): NORMAL,
    (NORMAL, In.RESET): NORMAL,
    (NORMAL, In.BLOCKING): BLOCKED,
    (NORMAL, In.COMMAND): NORMAL,
    (NORMAL, In.NO_SUBSCRIPTIONS): NORMAL,
    # MULTI: everything but EXEC/DISCARD/MULTI/WATCH/QUIT/RESET is queued
    # (blocking commands do not block inside a transaction).
    (MULTI, In.EXEC): NORMAL,
    (MULTI, In.DISCARD): NORMAL,
    (MULTI, In.UNWATCH): MULTI,
    (MULTI, In.SUBSCRIBE): MULTI,  # queued by Redis; the router refuses it at queue time
    (MULTI, In.UNSUBSCRIBE): MULTI,
    (MULTI, In.PING): MULTI,
    (MULTI, In.QUIT): MULTI,
    (MULTI, In.RESET): NORMAL,
    (MULTI, In.BLOCKING): MULTI,
    (MULTI, In.COMMAND): MULTI,
    (SUBSCRIBED, In.SUBSCRIBE): SUBSCRIBED,
    (SUBSCRIBED, In.UNSUBSCRIBE): SUBSCRIBED,
    (SUBSCRIBED, In.PING): SUBSCRIBED,
    (SUBSCRIBED, In.QUIT): SUBSCRIBED,
    (SUBSCRIBED, In.RESET): NORMAL,
    (SUBSCRIBED, In.NO_SUBSCRIPTIONS): NORMAL,
    (BLOCKED, In.UNBLOCKED): NORMAL,
}

# Errors for the pairs not in the table that Redis answers with a fixed text.
_ERRORS: dict[tuple[Mode, ModeInput], str] = {
    (NORMAL, In.EXEC): "ERR EXEC without MULTI",
    (NORMAL, In.DISCARD): "ERR DISCARD without MULTI",
    (MULTI, In.MULTI): "ERR MULTI calls can not be nested",
    (MULTI, In.WATCH): "ERR WATCH inside MULTI is not allowed",
}
_SUBSCRIBED_ONLY = (
    "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
    "RESET are allowed in this context"
)

_BY_NAME: dict[str, ModeInput] = {
    "multi": In.MULTI,
    "exec": In.EXEC,
    "discard": In.DISCARD,
    "watch": In.WATCH,
    "unwatch": In.UNWATCH,
    "subscribe": In.SUBSCRIBE,
    "psubscribe": In.SUBSCRIBE,
    "ssubscribe": In.SUBSCRIBE,
    "unsubscribe": In.UNSUBSCRIBE,
    "punsubscribe": In.UNSUBSCRIBE,
    "sunsubscribe": In.UNSUBSCRIBE,
    "ping": In.PING,
    "quit": In.QUIT,
    "reset": In.RESET,
}


def classify(name: str, blocking: bool) -> ModeInput:
    """The input a command is, by its spec name (``blocking``: `commands.is_blocking`)."""
    found = _BY_NAME.get(name)
    if found is not None:
        return found
    return In.BLOCKING if blocking else In.COMMAND


def step(mode: Mode, event: ModeInput, name: str = "", resp3: bool = False) -> Mode | bytes:
    """The next mode after ``event`` in ``mode``, or the error reply Redis gives.

    ``name`` is the command's full name for the error text (``get``, ``client|setname``); ``resp3``:
    the client speaks RESP3 (then any command is allowed while subscribed).
    """
    nxt = TRANSITIONS.get((mode, event))
    if nxt is not None:
        return nxt
    if mode is SUBSCRIBED and resp3:
        nxt = TRANSITIONS.get((NORMAL, event))
        if nxt is not None:
            return SUBSCRIBED if nxt is NORMAL else nxt
        mode = NORMAL
    fixed = _ERRORS.get((mode, event))
    if fixed is not None:
        return error_reply(fixed)
    if mode is SUBSCRIBED:
        return error_reply(_SUBSCRIBED_ONLY.format(name=name))
    return error_reply(f"ERR '{name}' is not allowed while the client is {mode.value}")
