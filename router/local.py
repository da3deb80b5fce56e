"""Commands the router answers itself, from the client's own state (shape LOCAL).

Pure: each handler takes the client's `Session` and the arguments and returns
a raw reply; nothing here touches sockets. PING, ECHO, QUIT, TIME, SELECT,
HELLO, AUTH, RESET, READONLY/READWRITE/ASKING and CLIENT SETNAME/GETNAME/ID/
SETINFO/INFO/LIST live here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from router import __version__
from router.errors import NOT_SUPPORTED_YET, error_reply, wrong_arity
from router.resp import NIL, NULL3, OK, PONG, encode_array, encode_bulk, encode_int, encode_simple

# What HELLO/INFO report as redis_version: the Redis feature level the router
# speaks (its command table is Redis 7.0's), not a Redis build.
COMPAT_REDIS_VERSION = "7.0.0"


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

    def info_line(self) -> str:
        now = time.time()
        return (
            f"id={self.id} addr={self.addr} laddr={self.laddr} fd=-1 "
            f"name={self.name.decode('utf-8', 'replace')} age={int(now - self.created)} "
            f"idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 "
            f"argv-mem=0 multi-mem=0 obl=0 oll=0 omem=0 tot-mem=0 events=r "
            f"cmd={self.last_cmd} user=default redir=-1 resp={self.proto} "
            f"lib-name={self.lib_name.decode('utf-8', 'replace')} "
            f"lib-ver={self.lib_ver.decode('utf-8', 'replace')}\n"
        )


Handler = Callable[[Session, list[bytes]], bytes]


def nil(s: Session) -> bytes:
    return NULL3 if s.proto == 3 else NIL


def ping(s: Session, args: list[bytes]) -> bytes:
    if len(args) > 2:
        return wrong_arity("ping")
    return PONG if len(args) == 1 else encode_bulk(args[1])


def echo(s: Session, args: list[bytes]) -> bytes:
    return encode_bulk(args[1])


def quit_(s: Session, args: list[bytes]) -> bytes:
    s.closing = True
    return OK


def time_(s: Session, args: list[bytes]) -> bytes:
    now = time.time_ns() // 1000
    return encode_array(
        [encode_bulk(b"%d" % (now // 1_000_000)), encode_bulk(b"%d" % (now % 1_000_000))]
    )


def select(s: Session, args: list[bytes]) -> bytes:
    if not args[1].lstrip(b"-").isdigit():
        return error_reply("ERR value is not an integer or out of range")
    if int(args[1]) != 0:
        return error_reply(
            "ERR SELECT is not allowed through the router: only database 0 exists "
            "(as in Redis Cluster)"
        )
    return OK


def auth(s: Session, args: list[bytes]) -> bytes:
    if len(args) > 3:
        return error_reply("ERR syntax error")
    return error_reply(
        "ERR AUTH <password> called without any password configured for the default user. "
        "Are you sure your configuration is correct?"
    )


def hello(s: Session, args: list[bytes]) -> bytes:
    i = 1
    if len(args) > 1:
        ver = args[1]
        if not ver.isdigit():
            return error_reply("ERR Protocol version is not an integer or out of range")
        if int(ver) not in (2, 3):
            return error_reply("NOPROTO sorry, this protocol version is not supported")
        i = 2
    name: bytes | None = None
    while i < len(args):
        opt = args[i].upper()
        if opt == b"AUTH" and i + 2 < len(args):
            return auth(s, [b"AUTH", args[i + 1], args[i + 2]])
        if opt == b"SETNAME" and i + 1 < len(args):
            name = args[i + 1]
            if b" " in name or b"\n" in name:
                return error_reply(
                    "ERR Client names cannot contain spaces, newlines or special characters."
                )
            i += 2
        else:
            return error_reply(
                f"ERR Syntax error in HELLO option '{opt.decode('utf-8', 'replace')}'"
            )
    if name is not None:
        s.name = name
    if len(args) > 1:
        s.proto = int(args[1])
    fields = [
        encode_bulk(b"server"), encode_bulk(b"redis"),
        encode_bulk(b"version"), encode_bulk(COMPAT_REDIS_VERSION.encode()),
        encode_bulk(b"proto"), encode_int(s.proto),
        encode_bulk(b"id"), encode_int(s.id),
        encode_bulk(b"mode"), encode_bulk(b"standalone"),
        encode_bulk(b"role"), encode_bulk(b"master"),
        encode_bulk(b"modules"), encode_array([]),
    ]  # fmt: skip
    if s.proto == 3:
        return b"%%%d\r\n" % (len(fields) // 2) + b"".join(fields)
    return encode_array(fields)


def reset(s: Session, args: list[bytes]) -> bytes:
    s.name = b""
    return encode_simple("RESET")


def ok(s: Session, args: list[bytes]) -> bytes:
    return OK


def client(s: Session, args: list[bytes], list_clients: Callable[[], list[Session]]) -> bytes:
    sub = args[1].lower()
    if sub == b"setname" and len(args) == 3:
        if any(c < 33 or c > 126 for c in args[2]):
            return error_reply(
                "ERR Client names cannot contain spaces, newlines or special characters."
            )
        s.name = args[2]
        return OK
    if sub == b"getname" and len(args) == 2:
        return encode_bulk(s.name) if s.name else nil(s)
    if sub == b"id" and len(args) == 2:
        return encode_int(s.id)
    if sub == b"setinfo" and len(args) == 4:
        attr = args[2].lower()
        if any(c < 33 or c > 126 for c in args[3]):
            return error_reply(
                f"ERR {attr.decode()} cannot contain spaces, newlines or special characters."
            )
        if attr == b"lib-name":
            s.lib_name = args[3]
        elif attr == b"lib-ver":
            s.lib_ver = args[3]
        else:
            return error_reply(f"ERR Unrecognized option '{args[2].decode('utf-8', 'replace')}'")
        return OK
    if sub == b"info" and len(args) == 2:
        return encode_bulk(s.info_line().encode())
    if sub == b"list" and len(args) == 2:
        return encode_bulk("".join(c.info_line() for c in list_clients()).encode())
    if sub in (b"setname", b"getname", b"id", b"setinfo", b"info", b"list"):
        return error_reply(f"ERR wrong number of arguments for 'client|{sub.decode()}' command")
    return error_reply(NOT_SUPPORTED_YET.format(name=f"client {sub.decode('utf-8', 'replace')}"))


HANDLERS: dict[str, Handler] = {
    "ping": ping,
    "echo": echo,
    "quit": quit_,
    "time": time_,
    "select": select,
    "auth": auth,
    "hello": hello,
    "reset": reset,
    "readonly": ok,
    "readwrite": ok,
    "asking": ok,
}


def router_info_section(fields: dict[str, object]) -> str:
    """The ``# Server`` and ``# Router`` sections of INFO."""
    lines = [
        "# Server",
        f"redis_version:{COMPAT_REDIS_VERSION}",
        "redis_mode:standalone",
        f"slotwarden_version:{__version__}",
        "",
        "# Router",
    ]
    lines += [f"{k}:{v}" for k, v in fields.items()]
    return "\r\n".join(lines) + "\r\n"
