"""A client's session: the per-connection state the router keeps (Redis's ``client``, in small).

Pure, no I/O. Backend connections are shared by many clients, so what Redis
keeps per connection (name, id, RESP version, authentication, the last
command, what CLIENT INFO/LIST show) lives here, in the router.

Invariant: with router users configured (``users.required``) a session
starts unauthenticated; only AUTH/HELLO (router.decide.builtins) set
``authenticated``, and RESET clears it again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from router.decide.tracking import ClientTracking
from router.decide.users import Users


@dataclass(slots=True)
class Session:
    """Per-client state the router keeps (a Redis client's ``client`` struct, in small)."""

    id: int
    addr: str
    laddr: str
    created: float = field(default_factory=time.time)
    name: bytes = b""
    lib_name: bytes = b""
    lib_ver: bytes = b""
    proto: int = 2  # RESP version this client speaks (HELLO 3 switches to RESP3)
    closing: bool = False  # QUIT: close once the replies before it are written
    last_cmd: str = "NULL"
    users: Users | None = None  # the router's users (None: no authentication)
    authenticated: bool = True  # False until AUTH when users.required
    user: str = "default"
    # what CLIENT INFO/LIST show of the client's mode (kept by router.wire.client_state)
    flags: str = "N"
    subs: tuple[int, int, int] = (0, 0, 0)  # channels, patterns, shard channels
    multi: int = -1  # commands queued in MULTI, -1 outside MULTI
    # CLIENT REPLY: "on", "off", "skip-set" (CLIENT REPLY SKIP itself), "skip" (the next)
    reply: str = "on"
    # what CLIENT INFO/LIST show of the connection (refreshed by router.control.clients):
    # last read from the client (monotonic seconds), bytes buffered unparsed, replies
    # owed (the reply FIFO), bytes written but not yet sent
    last_at: float = 0.0
    qbuf: int = 0
    oll: int = 0
    omem: int = 0
    # CLIENT TRACKING's options while tracking is on (router.decide.tracking), else None
    tracking: ClientTracking | None = None

    def __post_init__(self) -> None:
        if self.users is not None and self.users.required:
            self.authenticated = False

    def _flags(self) -> str:
        """CLIENT LIST flags=: the mode's, then Redis's t (tracking), R (broken
        redirect), B (BCAST); N alone when there is none."""
        t = self.tracking
        if t is None:
            return self.flags
        out = ("" if self.flags == "N" else self.flags) + "t"
        return out + ("R" if t.broken else "") + ("B" if t.bcast else "")

    def info_line(self) -> str:
        """The client's line of CLIENT INFO/LIST: Redis 7.0.15's fields in its order
        (then 7.2's lib-name and lib-ver, which CLIENT SETINFO sets). ``fd`` is -1
        (the router's socket is not the shard's), ``obl`` 0 (no fixed buffer)."""
        now = time.time()
        idle = int(time.monotonic() - self.last_at) if self.last_at else 0
        events = "rw" if self.omem else "r"
        redir = self.tracking.redirect if self.tracking is not None else -1
        return (
            f"id={self.id} addr={self.addr} laddr={self.laddr} fd=-1 "
            f"name={self.name.decode('utf-8', 'replace')} age={int(now - self.created)} "
            f"idle={max(idle, 0)} flags={self._flags()} db=0 sub={self.subs[0]} "
            f"psub={self.subs[1]} ssub={self.subs[2]} multi={self.multi} qbuf={self.qbuf} "
            f"qbuf-free=0 argv-mem=0 multi-mem=0 rbs={self.qbuf} rbp={self.qbuf} obl=0 "
            f"oll={self.oll} omem={self.omem} tot-mem={self.qbuf + self.omem} events={events} "
            f"cmd={self.last_cmd} user={self.user} redir={redir} resp={self.proto} "
            f"lib-name={self.lib_name.decode('utf-8', 'replace')} "
            f"lib-ver={self.lib_ver.decode('utf-8', 'replace')}\n"
        )
