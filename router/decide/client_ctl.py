"""CLIENT KILL / UNBLOCK / PAUSE / UNPAUSE / REPLY on the router's own clients: the pure part.

Pure, no I/O: the argument parsing with Redis 7.0's error texts, the CLIENT
KILL filter, the pause rule (which commands wait while the router is
paused) and the reply-mode rule. `router.wire.client_ctl` acts on the client
connections with what these return.

Who may act on whom: without router users every client may kill, unblock
and pause (as Redis's default user, who has ``+@all``). With router users
(``router.users``) a client sees only the clients authenticated as its own
user for CLIENT KILL and CLIENT UNBLOCK (one user cannot close or disturb
another user's connections: the others are as if they did not exist), and
CLIENT PAUSE/UNPAUSE, which act on the whole router, are allowed to every
user (operators who share the router between tenants should know that).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from router.commands.spec import CommandSpec
from router.decide.session import Session
from slotwarden.resp.encode import error_reply

_INTEGER = re.compile(rb"0|-?[1-9][0-9]{0,18}")
SYNTAX = error_reply("ERR syntax error")
NO_SUCH_CLIENT = error_reply("ERR No such client")
# Commands that replicate without the write flag (Redis 7.0's MAY_REPLICATE):
# CLIENT PAUSE WRITE holds them too.
MAY_REPLICATE = frozenset(
    {"eval", "evalsha", "fcall", "publish", "spublish", "pfcount", "script|load", "script|flush"}
)
# Never held by a pause, so that an operator can always end it.
PAUSE_EXEMPT = frozenset({"client|unpause", "client|pause"})


def _int(raw: bytes) -> int | None:
    return int(raw) if _INTEGER.fullmatch(raw) is not None else None


def visible(me: Session, other: Session) -> bool:
    """Whether ``me`` may kill or unblock ``other`` (see the module docstring)."""
    users = me.users
    return users is None or not users.required or other.user == me.user


@dataclass(slots=True)
class KillFilter:
    """The filters of ``CLIENT KILL <filter> <value> ...`` (every one must match)."""

    me: Session
    old_form: bool = False  # CLIENT KILL addr:port
    ids: int | None = None
    addr: str | None = None
    laddr: str | None = None
    user: str | None = None
    kind: str | None = None  # normal | pubsub | master | replica
    maxage: int | None = None  # seconds
    skipme: bool = True

    def matches(self, s: Session, now: float | None = None) -> bool:
        if not visible(self.me, s):
            return False
        if self.skipme and s.id == self.me.id:
            return False
        if self.ids is not None and s.id != self.ids:
            return False
        if self.addr is not None and s.addr != self.addr:
            return False
        if self.laddr is not None and s.laddr != self.laddr:
            return False
        if self.user is not None and s.user != self.user:
            return False
        if self.kind is not None:
            pubsub = "P" in s.flags
            if self.kind == "pubsub" and not pubsub:
                return False
            if self.kind == "normal" and pubsub:
                return False
            if self.kind in ("master", "replica"):
                return False  # the router has no replication clients
        if self.maxage is not None:
            age = (now if now is not None else time.time()) - s.created
            if age < self.maxage:
                return False
        return True


_KINDS = {b"normal": "normal", b"pubsub": "pubsub", b"master": "master"}
_KINDS |= {b"replica": "replica", b"slave": "replica"}


def parse_kill(me: Session, args: list[bytes]) -> KillFilter | bytes:
    """``CLIENT KILL addr:port`` or ``CLIENT KILL <filter> <value> ...``: the filter, or
    Redis 7.0's error reply. MAXAGE (Redis 7.4) is accepted too."""
    if len(args) == 3:
        return KillFilter(me, old_form=True, addr=args[2].decode("utf-8", "replace"), skipme=False)
    f = KillFilter(me)
    i = 2
    while i < len(args):
        if i + 1 >= len(args):
            return SYNTAX
        opt = args[i].lower()
        value = args[i + 1]
        text = value.decode("utf-8", "replace")
        if opt == b"id":
            n = _int(value)
            if n is None or n <= 0:
                return error_reply("ERR client-id should be greater than 0")
            f.ids = n
        elif opt == b"type":
            kind = _KINDS.get(value.lower())
            if kind is None:
                return error_reply(f"ERR Unknown client type '{text}'")
            f.kind = kind
        elif opt == b"addr":
            f.addr = text
        elif opt == b"laddr":
            f.laddr = text
        elif opt == b"user":
            users = me.users
            known = users.known(text) if users is not None and users.required else text == "default"
            if not known:
                return error_reply(f"ERR No such user '{text}'")
            f.user = text
        elif opt == b"skipme":
            if value.lower() == b"yes":
                f.skipme = True
            elif value.lower() == b"no":
                f.skipme = False
            else:
                return SYNTAX
        elif opt == b"maxage":
            n = _int(value)
            if n is None:
                return error_reply("ERR value is not an integer or out of range")
            f.maxage = n
        else:
            return SYNTAX
        i += 2
    return f


def parse_unblock(args: list[bytes]) -> tuple[int, bool] | bytes:
    """``CLIENT UNBLOCK id [TIMEOUT|ERROR]``: (id, error?) or Redis's error reply."""
    if len(args) > 4:
        return SYNTAX
    n = _int(args[2])
    if n is None:
        return error_reply("ERR value is not an integer or out of range")
    error = False
    if len(args) == 4:
        how = args[3].lower()
        if how == b"error":
            error = True
        elif how != b"timeout":
            return error_reply("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
    return n, error


def parse_pause(args: list[bytes]) -> tuple[int, bool] | bytes:
    """``CLIENT PAUSE ms [WRITE|ALL]``: (milliseconds, all?) or Redis's error reply."""
    if len(args) > 4:
        return SYNTAX
    ms = _int(args[2])
    if ms is None:
        return error_reply("ERR timeout is not an integer or out of range")
    if ms < 0:
        return error_reply("ERR timeout is negative")
    everything = True
    if len(args) == 4:
        mode = args[3].lower()
        if mode == b"write":
            everything = False
        elif mode != b"all":
            return error_reply("ERR CLIENT PAUSE mode must be WRITE or ALL")
    return ms, everything


class Pause:
    """The router's CLIENT PAUSE state: until when (monotonic seconds; 0: not paused)
    and whether every command waits (ALL) or only the writes (WRITE)."""

    __slots__ = ("everything", "until")

    def __init__(self) -> None:
        self.until = 0.0
        self.everything = False

    def start(self, now: float, ms: int, everything: bool) -> None:
        """Redis's rule: a new pause never shortens nor weakens one in force."""
        until = now + ms / 1000
        if self.until > now:
            self.everything = self.everything or everything
            self.until = max(self.until, until)
        else:
            self.everything = everything
            self.until = until

    def end(self) -> None:
        self.until = 0.0
        self.everything = False

    def holds(self, spec: CommandSpec | None, now: float) -> bool:
        """Whether a request of ``spec`` (None: unknown, answered with an error) must wait."""
        if not self.until:
            return False
        if now >= self.until:
            self.end()
            return False
        if spec is None:
            return self.everything
        name = spec.name
        if name in PAUSE_EXEMPT:
            return False
        if self.everything:
            return True
        return spec.write or name in MAY_REPLICATE or name == "exec"


def reply_dropped(session: Session, name: str) -> bool:
    """CLIENT REPLY ON|OFF|SKIP: whether the reply of the command ``name`` the client
    just sent is dropped, updating ``session.reply`` (SKIP drops one reply). Called
    after the command ran (CLIENT REPLY itself has set the new mode)."""
    mode = session.reply
    if name == "client|reply":
        if mode == "skip-set":  # CLIENT REPLY SKIP: itself and the next reply dropped
            session.reply = "skip"
            return True
        return mode == "off"
    if mode == "skip":
        session.reply = "on"
        return True
    return mode == "off"
