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

    def __post_init__(self) -> None:
        if self.users is not None and self.users.required:
            self.authenticated = False

    def info_line(self) -> str:
        now = time.time()
        return (
            f"id={self.id} addr={self.addr} laddr={self.laddr} fd=-1 "
            f"name={self.name.decode('utf-8', 'replace')} age={int(now - self.created)} "
            f"idle=0 flags={self.flags} db=0 sub={self.subs[0]} psub={self.subs[1]} "
            f"ssub={self.subs[2]} multi={self.multi} qbuf=0 qbuf-free=0 "
            f"argv-mem=0 multi-mem=0 obl=0 oll=0 omem=0 tot-mem=0 events=r "
            f"cmd={self.last_cmd} user={self.user} redir=-1 resp={self.proto} "
            f"lib-name={self.lib_name.decode('utf-8', 'replace')} "
            f"lib-ver={self.lib_ver.decode('utf-8', 'replace')}\n"
        )
