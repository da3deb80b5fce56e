"""Commands the router answers itself (router.decide.builtins), from a client's Session.

Pure: no server, no sockets. Where a reply mirrors Redis, the expected bytes
are what redis-server 7.0.15 answered to the same request on a server with no
password set (the router has no users either); the same requests are compared
live against a real server in tests/protocol/router/test_client_protocol.py.
"""

from __future__ import annotations

import time

import hiredis
import pytest

from router.commands.spec import TABLE, Shape, lookup
from router.decide import builtins
from router.decide.builtins import COMPAT_REDIS_VERSION, Session
from router.wire.client_ctl import CONTROL


def session(**kw) -> Session:
    return Session(id=kw.pop("id", 7), addr="10.0.0.9:51000", laddr="127.0.0.1:7777", **kw)


def req(*args: bytes | str) -> list[bytes]:
    return [a.encode() if isinstance(a, str) else a for a in args]


def decode(raw: bytes) -> object:
    r = hiredis.Reader()
    r.feed(raw)
    got = r.gets()
    assert got is not False, raw
    assert r.gets() is False, raw
    return got


def answer(s: Session, *args: bytes | str) -> bytes:
    """Dispatch as the frontend does: CLIENT subcommands, then the handler table."""
    argv = req(*args)
    spec = lookup(argv)
    assert spec is not None and spec.shape is Shape.LOCAL, argv
    if spec.name.startswith("client|"):
        return builtins.client(s, argv, lambda: [s])
    return builtins.HANDLERS[spec.name](s, argv)


# ---------------------------------------------------------------- PING ECHO QUIT TIME


def test_ping():
    s = session()
    assert answer(s, "PING") == b"+PONG\r\n"
    assert answer(s, "PING", "hi\r\nthere") == b"$9\r\nhi\r\nthere\r\n"
    assert answer(s, "ping", "") == b"$0\r\n\r\n"
    assert answer(s, "PING", "a", "b") == b"-ERR wrong number of arguments for 'ping' command\r\n"


def test_echo_is_binary_safe():
    s = session()
    assert answer(s, "ECHO", b"\x00\xff\r\n") == b"$4\r\n\x00\xff\r\n\r\n"
    assert answer(s, "ECHO", "") == b"$0\r\n\r\n"


def test_quit_answers_ok_and_marks_the_session_closing():
    s = session()
    assert not s.closing
    assert answer(s, "QUIT") == b"+OK\r\n"
    assert s.closing


def test_time_is_now_in_seconds_and_microseconds():
    before = time.time()
    got = decode(answer(session(), "TIME"))
    after = time.time()
    assert isinstance(got, list) and len(got) == 2
    seconds, micros = int(got[0]), int(got[1])
    assert 0 <= micros < 1_000_000
    assert before - 1e-6 <= seconds + micros / 1e6 <= after + 1e-6


def test_readonly_readwrite_asking_answer_as_a_standalone_redis():
    # what redis-server 7.0.15 without cluster support answers each of them
    for name in ("READONLY", "READWRITE", "ASKING"):
        assert answer(session(), name) == b"-ERR This instance has cluster support disabled\r\n"


# ---------------------------------------------------------------- SELECT


def test_select_zero_is_ok_and_others_are_refused():
    assert answer(session(), "SELECT", "0") == b"+OK\r\n"
    got = answer(session(), "SELECT", "1")
    assert got.startswith(b"-ERR SELECT is not allowed through the router")
    assert b"only database 0 exists" in got


@pytest.mark.parametrize("arg", ["abc", "", "1.0", " 0", "0x1", "--1", "00", "-0"])
def test_select_non_integer_is_refused_as_redis_does(arg):
    # redis-server 7.0.15 (string2ll: no repeated sign, no leading zeros, no "-0")
    assert answer(session(), "SELECT", arg) == (b"-ERR value is not an integer or out of range\r\n")


# ---------------------------------------------------------------- AUTH

NO_PASSWORD = (
    b"-ERR AUTH <password> called without any password configured for the default user. "
    b"Are you sure your configuration is correct?\r\n"
)


def test_auth_with_a_password_only():
    assert answer(session(), "AUTH", "secret") == NO_PASSWORD


def test_auth_with_too_many_arguments_is_a_syntax_error():
    assert answer(session(), "AUTH", "a", "b", "c") == b"-ERR syntax error\r\n"


def test_auth_as_default_user_succeeds_without_a_password_configured():
    # redis-server 7.0.15 with no password (default user "nopass"): +OK
    assert answer(session(), "AUTH", "default", "anything") == b"+OK\r\n"


def test_auth_as_another_user_is_wrongpass():
    assert answer(session(), "AUTH", "bob", "pw") == (
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    )


# ---------------------------------------------------------------- HELLO

HELLO_FIELDS = [b"server", b"version", b"proto", b"id", b"mode", b"role", b"modules"]


def hello_map(raw: bytes) -> dict[bytes, object]:
    value = decode(raw)
    if isinstance(value, list):  # RESP2: flat key/value array
        return dict(zip(value[::2], value[1::2], strict=True))
    assert isinstance(value, dict)
    return value


def test_hello_without_version_keeps_resp2():
    s = session(id=42)
    raw = answer(s, "HELLO")
    assert raw.startswith(b"*14\r\n")
    assert s.proto == 2
    got = hello_map(raw)
    assert list(got) == HELLO_FIELDS
    assert got == {
        b"server": b"redis",
        b"version": COMPAT_REDIS_VERSION.encode(),
        b"proto": 2,
        b"id": 42,
        b"mode": b"standalone",
        b"role": b"master",
        b"modules": [],
    }


def test_hello_2():
    s = session(proto=3)
    raw = answer(s, "HELLO", "2")
    assert raw.startswith(b"*14\r\n")
    assert s.proto == 2
    assert hello_map(raw)[b"proto"] == 2


def test_hello_3_switches_to_resp3_and_answers_a_map():
    s = session()
    raw = answer(s, "HELLO", "3")
    assert raw.startswith(b"%7\r\n")
    assert s.proto == 3
    got = hello_map(raw)
    assert list(got) == HELLO_FIELDS
    assert got[b"proto"] == 3 and got[b"id"] == 7
    # HELLO without a version answers in the protocol already chosen
    assert answer(s, "HELLO").startswith(b"%7\r\n")


def test_hello_setname_sets_the_name():
    s = session()
    answer(s, "HELLO", "3", "setname", "worker-1")
    assert s.name == b"worker-1"
    assert s.proto == 3


@pytest.mark.parametrize(
    ("args", "error"),
    [
        # each as redis-server 7.0.15 answers it
        (["abc"], b"-ERR Protocol version is not an integer or out of range\r\n"),
        (["03"], b"-ERR Protocol version is not an integer or out of range\r\n"),
        (["SETNAME", "x"], b"-ERR Protocol version is not an integer or out of range\r\n"),
        (["4"], b"-NOPROTO unsupported protocol version\r\n"),
        (["1"], b"-NOPROTO unsupported protocol version\r\n"),
        (["2", "badopt"], b"-ERR Syntax error in HELLO option 'badopt'\r\n"),
        (["2", "BADOPT"], b"-ERR Syntax error in HELLO option 'BADOPT'\r\n"),
        (["3", "SETNAME"], b"-ERR Syntax error in HELLO option 'SETNAME'\r\n"),
        (["3", "AUTH", "x"], b"-ERR Syntax error in HELLO option 'AUTH'\r\n"),
        (
            ["2", "SETNAME", "a b"],
            b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
        ),
        (
            ["2", "SETNAME", "a\tb"],
            b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
        ),
        (
            ["2", "SETNAME", "caf\xe9"],
            b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
        ),
        (
            ["3", "AUTH", "bob", "pw"],
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        ),
    ],
)
def test_hello_errors_mirror_redis(args, error):
    s = session()
    assert answer(s, "HELLO", *args) == error


def test_a_failed_hello_does_not_switch_protocol():
    # (whether SETNAME before the bad option sticks is left open: redis-server
    # 7.0.15 keeps the name, the router does not set it)
    s = session()
    got = answer(s, "HELLO", "3", "SETNAME", "after", "BADOPT")
    assert got == b"-ERR Syntax error in HELLO option 'BADOPT'\r\n"
    assert s.proto == 2


def test_hello_auth_as_default_user_succeeds_without_a_password_configured():
    s = session()
    raw = answer(s, "HELLO", "3", "AUTH", "default", "anything")
    assert raw.startswith(b"%7\r\n"), raw
    assert s.proto == 3


# ---------------------------------------------------------------- RESET


def test_reset_answers_reset_and_clears_the_name():
    s = session(name=b"old")
    assert answer(s, "RESET") == b"+RESET\r\n"
    assert s.name == b""


def test_reset_returns_to_resp2():
    # Redis's RESET (clearClientConnectionState) sets resp = 2: after
    # HELLO 3 + RESET, CLIENT GETNAME answers the RESP2 nil $-1.
    s = session()
    answer(s, "HELLO", "3")
    answer(s, "RESET")
    assert s.proto == 2
    assert answer(s, "CLIENT", "GETNAME") == b"$-1\r\n"


# ---------------------------------------------------------------- CLIENT


def test_client_setname_getname():
    s = session()
    assert answer(s, "CLIENT", "GETNAME") == b"$-1\r\n"
    assert answer(s, "CLIENT", "SETNAME", "conn-1") == b"+OK\r\n"
    assert answer(s, "CLIENT", "GETNAME") == b"$6\r\nconn-1\r\n"
    assert answer(s, "client", "setname", "") == b"+OK\r\n"  # clears it
    assert answer(s, "CLIENT", "GETNAME") == b"$-1\r\n"


def test_client_getname_without_a_name_is_the_resp3_null_for_resp3_clients():
    s = session(proto=3)
    assert answer(s, "CLIENT", "GETNAME") == b"_\r\n"


@pytest.mark.parametrize("name", ["a b", "a\nb", "a\tb", "\x7f", "caf\xe9", "a\x00"])
def test_client_setname_refuses_what_redis_refuses(name):
    s = session(name=b"kept")
    assert answer(s, "CLIENT", "SETNAME", name) == (
        b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
    )
    assert s.name == b"kept"


def test_client_id():
    assert answer(session(id=12345), "CLIENT", "ID") == b":12345\r\n"


def test_client_setinfo():
    s = session()
    assert answer(s, "CLIENT", "SETINFO", "lib-name", "redis-py") == b"+OK\r\n"
    assert answer(s, "CLIENT", "SETINFO", "LIB-VER", "5.0.1") == b"+OK\r\n"
    assert (s.lib_name, s.lib_ver) == (b"redis-py", b"5.0.1")


def test_client_setinfo_errors():
    s = session()
    assert answer(s, "CLIENT", "SETINFO", "lib-name", "a b") == (
        b"-ERR lib-name cannot contain spaces, newlines or special characters.\r\n"
    )
    assert answer(s, "CLIENT", "SETINFO", "colour", "blue") == (
        b"-ERR Unrecognized option 'colour'\r\n"
    )
    assert (s.lib_name, s.lib_ver) == (b"", b"")


def fields(line: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in line.split(" "))


def test_client_info_describes_this_client():
    s = session(id=9)
    answer(s, "HELLO", "3", "SETNAME", "me")
    answer(s, "CLIENT", "SETINFO", "lib-name", "redis-py")
    s.last_cmd = "client|info"
    text = decode(answer(s, "CLIENT", "INFO")).decode()
    assert text.endswith("\n") and text.count("\n") == 1
    got = fields(text.rstrip("\n"))
    assert got["id"] == "9"
    assert got["addr"] == "10.0.0.9:51000"
    assert got["laddr"] == "127.0.0.1:7777"
    assert got["name"] == "me"
    assert got["resp"] == "3"
    assert got["db"] == "0"
    assert got["cmd"] == "client|info"
    assert got["lib-name"] == "redis-py"


def test_client_list_has_one_line_per_client():
    me, other = session(id=1), session(id=2)
    other.name = b"other"
    text = decode(builtins.client(me, req("CLIENT", "LIST"), lambda: [me, other])).decode()
    lines = text.splitlines()
    assert [fields(line)["id"] for line in lines] == ["1", "2"]
    assert fields(lines[1])["name"] == "other"


def test_client_list_type_normal_lists_the_clients():
    # CLIENT LIST TYPE normal is valid Redis (arity -2 in the table); every
    # router client is a normal client
    me = session(id=1)
    got = builtins.client(me, req("CLIENT", "LIST", "TYPE", "normal"), lambda: [me])
    assert got.startswith(b"$"), got
    assert fields(decode(got).decode().rstrip("\n"))["id"] == "1"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["SETNAME", "a", "b"], b"-ERR wrong number of arguments for 'client|setname' command\r\n"),
        (["GETNAME", "x"], b"-ERR wrong number of arguments for 'client|getname' command\r\n"),
        (["ID", "x"], b"-ERR wrong number of arguments for 'client|id' command\r\n"),
    ],
)
def test_client_wrong_arity_mirrors_redis(args, error):
    assert builtins.client(session(), req("CLIENT", *args), list) == error


# ---------------------------------------------------------------- the LOCAL rows

VALID_LOCAL_REQUESTS = {
    "acl|whoami": req("ACL", "WHOAMI"),
    "asking": req("ASKING"),
    "auth": req("AUTH", "pw"),
    "client|getname": req("CLIENT", "GETNAME"),
    "client|id": req("CLIENT", "ID"),
    "client|info": req("CLIENT", "INFO"),
    "client|kill": req("CLIENT", "KILL", "ID", "1"),
    "client|no-touch": req("CLIENT", "NO-TOUCH", "off"),
    "client|pause": req("CLIENT", "PAUSE", "10"),
    "client|unpause": req("CLIENT", "UNPAUSE"),
    "client|list": req("CLIENT", "LIST"),
    "client|no-evict": req("CLIENT", "NO-EVICT", "on"),
    "client|reply": req("CLIENT", "REPLY", "ON"),
    "client|setname": req("CLIENT", "SETNAME", "x"),
    "client|setinfo": req("CLIENT", "SETINFO", "lib-name", "x"),
    "echo": req("ECHO", "x"),
    "hello": req("HELLO"),
    "ping": req("PING"),
    "quit": req("QUIT"),
    "readonly": req("READONLY"),
    "readwrite": req("READWRITE"),
    "reset": req("RESET"),
    "select": req("SELECT", "0"),
    "time": req("TIME"),
    "role": req("ROLE"),
    "cluster|keyslot": req("CLUSTER", "KEYSLOT", "k"),
    **{
        f"cluster|{p}": req("CLUSTER", p.upper(), *(["1"] * extra))
        for p, extra in (
            ("countkeysinslot", 1),
            ("getkeysinslot", 2),
            ("help", 0),
            ("info", 0),
            ("links", 0),
            ("myid", 0),
            ("nodes", 0),
            ("replicas", 1),
            ("shards", 0),
            ("slaves", 1),
            ("slots", 0),
        )
    },
}


def test_every_local_row_has_a_valid_request_here():
    local_rows = {
        spec.name
        for top in TABLE.values()
        for spec in ([top] if top.subcommands is None else top.subcommands.values())
        if spec.shape is Shape.LOCAL
    }
    assert local_rows == set(VALID_LOCAL_REQUESTS)


@pytest.mark.parametrize("name", sorted(VALID_LOCAL_REQUESTS))
def test_every_local_row_is_answered_by_the_router(name):
    # Shape LOCAL means "answered by the router itself"; a LOCAL row without a
    # handler would answer "not supported by the router", which is what PINNED is for.
    argv = VALID_LOCAL_REQUESTS[name]
    assert lookup(argv).name == name
    s = session()
    if name in CONTROL:
        return  # they act on other connections: router.wire.client_ctl (integration tests)
    if name.startswith("client|"):
        got = builtins.client(s, argv, lambda: [s])
    else:
        assert name in builtins.HANDLERS, f"no handler for LOCAL command {name!r}"
        got = builtins.HANDLERS[name](s, argv)
    assert b"not supported" not in got, got


def test_acl_whoami_is_the_default_user():
    # redis-server 7.0.15 without users: "default"
    s = session()
    assert "acl|whoami" in builtins.HANDLERS, "ACL WHOAMI (shape LOCAL) has no handler"
    assert builtins.HANDLERS["acl|whoami"](s, req("ACL", "WHOAMI")) == b"$7\r\ndefault\r\n"


def test_client_no_evict_is_ok():
    # router.commands.table: "the router has no client eviction, so the flag is trivially honoured"
    for arg in ("on", "OFF"):
        assert builtins.client(session(), req("CLIENT", "NO-EVICT", arg), list) == b"+OK\r\n"
