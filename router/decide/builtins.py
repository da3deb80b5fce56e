"""Commands the router answers itself, from the client's own state (shape LOCAL).

Pure: each handler takes the client's `Session` and the arguments and returns
a raw reply; nothing here touches sockets. PING, ECHO, QUIT, TIME, SELECT,
HELLO, AUTH, RESET, ACL WHOAMI and CLIENT SETNAME/GETNAME/ID/SETINFO/INFO/
LIST/NO-EVICT/NO-TOUCH/REPLY live here (CLIENT REPLY sets the session's reply
mode; the client connection drops the replies); ROLE, READONLY/READWRITE/
ASKING and CLUSTER KEYSLOT/INFO/... in `router.decide.standalone`. CLIENT
KILL/PAUSE/UNPAUSE act on other connections: `router.wire.client_ctl`.

Authentication: with router users configured (``Session.users.required``) a
session starts unauthenticated; AUTH and HELLO ... AUTH check the password
(constant time, `router.decide.users`), a failure leaves the session as it
was (as Redis does) and is counted; RESET logs the client out again.

`answer` is the entry point: a LOCAL command by its spec name, to its handler;
anything the router cannot honour (CLIENT TRACKING ...) gets the one
`router.errors.not_supported` reply.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from router.decide import standalone
from router.decide.session import Session
from router.errors import not_supported, wrong_arity
from slotwarden.resp.encode import (
    NIL,
    NULL3,
    OK,
    PONG,
    encode_array,
    encode_bulk,
    encode_int,
    encode_simple,
    error_reply,
)

# What HELLO reports as redis_version (INFO reports the lowest of the masters'):
# the Redis feature level the router speaks (its command table is Redis 7.0's).
COMPAT_REDIS_VERSION = "7.0.0"


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


# Redis's string2ll: an optional '-', no leading zeros, no spaces, no "-0".
_INTEGER = re.compile(rb"0|-?[1-9][0-9]{0,18}")

WRONGPASS = error_reply("WRONGPASS invalid username-password pair or user is disabled.")
NOAUTH = error_reply("NOAUTH Authentication required.")
HELLO_NOAUTH = error_reply(
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
    "HELLO AUTH <user> <pass> option can be used to authenticate the client and select "
    "the RESP protocol version at the same time"
)
# What a client may send before it authenticates (Redis's no-auth commands).
NO_AUTH_COMMANDS = frozenset({"auth", "hello", "quit", "reset"})


def select(s: Session, args: list[bytes]) -> bytes:
    if _INTEGER.fullmatch(args[1]) is None:
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
    return _authenticate(s, args[1] if len(args) == 3 else None, args[-1])


def _authenticate(s: Session, user: bytes | None, password: bytes) -> bytes:
    """AUTH [user] password: +OK, or the error Redis gives (the session is unchanged)."""
    users = s.users
    if users is None or not users.required:
        # as a Redis whose only user is "default" without a password
        if user is None:
            return error_reply(
                "ERR AUTH <password> called without any password configured for the "
                "default user. Are you sure your configuration is correct?"
            )
        return OK if user == b"default" else WRONGPASS
    name = user if user is not None else b"default"
    if not users.check(name, password):
        return WRONGPASS
    s.authenticated = True
    s.user = name.decode("utf-8", "replace")
    return OK


def _bad_name(name: bytes) -> bool:
    return any(c < 33 or c > 126 for c in name)


def hello(s: Session, args: list[bytes], version: str = COMPAT_REDIS_VERSION) -> bytes:
    """HELLO; ``version``: the shards' lowest redis_version (router.wire.client), so a
    client library's version checks see the servers' truth."""
    i = 1
    if len(args) > 1:
        ver = args[1]
        if _INTEGER.fullmatch(ver) is None:
            return error_reply("ERR Protocol version is not an integer or out of range")
        if int(ver) not in (2, 3):
            return error_reply("NOPROTO unsupported protocol version")
        i = 2
    name: bytes | None = None
    credentials: tuple[bytes, bytes] | None = None
    while i < len(args):
        opt = args[i].upper()
        if opt == b"AUTH" and i + 2 < len(args):
            credentials = (args[i + 1], args[i + 2])
            i += 3
        elif opt == b"SETNAME" and i + 1 < len(args):
            name = args[i + 1]
            if _bad_name(name):
                return error_reply(
                    "ERR Client names cannot contain spaces, newlines or special characters."
                )
            i += 2
        else:
            return error_reply(
                f"ERR Syntax error in HELLO option '{args[i].decode('utf-8', 'replace')}'"
            )
    if credentials is not None:
        answer = _authenticate(s, *credentials)
        if answer != OK:
            return answer
    if not s.authenticated:
        return HELLO_NOAUTH
    if name is not None:
        s.name = name
    if len(args) > 1:
        s.proto = int(args[1])
    fields = [
        encode_bulk(b"server"), encode_bulk(b"redis"),
        encode_bulk(b"version"), encode_bulk(version.encode()),
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
    """The session part of RESET (the client state drops MULTI, WATCH and subscriptions)."""
    s.name = b""
    s.proto = 2
    s.reply = "on"  # RESET discards CLIENT REPLY OFF/SKIP, as Redis does
    s.user = "default"
    s.authenticated = s.users is None or not s.users.required
    return encode_simple("RESET")


def acl_whoami(s: Session, args: list[bytes]) -> bytes:
    return encode_bulk(s.user.encode())


def client(s: Session, args: list[bytes], list_clients: Callable[[], list[Session]]) -> bytes:
    sub = args[1].lower()
    if sub == b"setname" and len(args) == 3:
        if _bad_name(args[2]):
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
    if sub == b"list":
        return client_list(args, list_clients)
    if sub == b"no-evict" and len(args) == 3:
        # the router has no client eviction: the flag is trivially honoured
        return OK if args[2].lower() in (b"on", b"off") else error_reply("ERR syntax error")
    if sub == b"reply" and len(args) == 3:
        # the client connection drops the replies (router.decide.client_ctl.reply_dropped)
        mode = args[2].lower()
        if mode == b"on":
            s.reply = "on"
        elif mode == b"off":
            s.reply = "off"
        elif mode == b"skip":
            s.reply = "skip-set"
        else:
            return error_reply("ERR syntax error")
        return OK
    if sub == b"no-touch" and len(args) == 3:
        if args[2].lower() not in (b"on", b"off"):
            return error_reply("ERR syntax error")
        if args[2].lower() == b"off":
            return OK  # the shards touch keys: that is the OFF behaviour
        return error_reply(
            "ERR CLIENT NO-TOUCH is not supported by the router: it is a Redis 7.2 "
            "feature and the router's commands reach the shards on shared connections, "
            "so it cannot stop them from updating the keys' access time for this client"
        )
    if sub in (b"setname", b"getname", b"id", b"setinfo", b"info"):
        return error_reply(f"ERR wrong number of arguments for 'client|{sub.decode()}' command")
    return not_supported(f"client {sub.decode('utf-8', 'replace')}")


_CLIENT_TYPES = (b"normal", b"master", b"replica", b"slave", b"pubsub")


def client_list(args: list[bytes], list_clients: Callable[[], list[Session]]) -> bytes:
    """CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id ...]"""
    sessions = list_clients()
    i = 2
    while i < len(args):
        opt = args[i].lower()
        if opt == b"type" and i + 1 < len(args):
            kind = args[i + 1].lower()
            if kind not in _CLIENT_TYPES:
                shown = args[i + 1].decode("utf-8", "replace")
                return error_reply(f"ERR Unknown client type '{shown}'")
            pubsub = kind == b"pubsub"
            if kind in (b"normal", b"pubsub"):
                sessions = [c for c in sessions if ("P" in c.flags) == pubsub]
            else:
                sessions = []
            i += 2
        elif opt == b"id" and i + 1 < len(args):
            ids: set[int] = set()
            for raw in args[i + 1 :]:
                if _INTEGER.fullmatch(raw) is None or int(raw) <= 0:
                    return error_reply("ERR Invalid client ID")
                ids.add(int(raw))
            sessions = [c for c in sessions if c.id in ids]
            i = len(args)
        else:
            return error_reply("ERR syntax error")
    return encode_bulk("".join(c.info_line() for c in sessions).encode())


def answer(
    s: Session, name: str, args: list[bytes], list_clients: Callable[[], list[Session]]
) -> bytes:
    """The reply to the LOCAL command ``name`` (its spec name, ``client|setname``) from
    ``s``; ``list_clients`` gives every client's session (CLIENT LIST)."""
    s.last_cmd = name
    if name.startswith("client|"):
        return client(s, args, list_clients)
    handler = HANDLERS.get(name)
    if handler is None:
        return not_supported(name.replace("|", " "))
    return handler(s, args)


HANDLERS: dict[str, Handler] = {
    "ping": ping,
    "echo": echo,
    "quit": quit_,
    "time": time_,
    "select": select,
    "auth": auth,
    "hello": hello,
    "reset": reset,
    "acl|whoami": acl_whoami,
}
# ROLE, CLUSTER KEYSLOT/INFO/..., READONLY/READWRITE/ASKING: as a standalone master
HANDLERS.update(standalone.HANDLERS)
