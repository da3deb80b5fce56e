"""The routing table's pure functions: lookup, arity, key positions, KeySpecError, is_blocking.

What the real server says is checked in tests/integration/router/test_command_table.py;
these tests pin the behaviour the router relies on, without a server.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from router.commands import key_finders, table
from router.commands.spec import (
    FAST,
    TABLE,
    CommandSpec,
    KeySpecError,
    Shape,
    arity_ok,
    is_blocking,
    key_positions,
    lookup,
    refusal,
    resolve,
)
from router.errors import RouterError


def argv(request: str) -> list[bytes]:
    return [word.encode() for word in request.split()]


def spec_of(request: str) -> CommandSpec:
    spec = lookup(argv(request))
    assert spec is not None, request
    return spec


def keys_of(request: str) -> list[bytes]:
    args = argv(request)
    spec = spec_of(request)
    assert arity_ok(spec, len(args)), request
    return [args[i] for i in key_positions(spec, args)]


def key_error(request: str) -> str:
    args = argv(request)
    with pytest.raises(KeySpecError) as caught:
        key_positions(spec_of(request), args)
    return str(caught.value)


# ---------------------------------------------------------------- lookup


@pytest.mark.parametrize("name", [b"GET", b"get", b"Get", b"gEt"])
def test_lookup_ignores_case(name):
    spec = lookup([name, b"k"])
    assert spec is TABLE[b"GET"]
    assert spec.name == "get" and spec.shape is Shape.SINGLE


@pytest.mark.parametrize(
    ("request_", "name"),
    [
        ("OBJECT ENCODING k", "object|encoding"),
        ("object encoding k", "object|encoding"),
        ("Object EnCoding k", "object|encoding"),
        ("CONFIG GET maxmemory", "config|get"),
        ("client no-evict on", "client|no-evict"),
        ("XINFO STREAM s", "xinfo|stream"),
        ("COMMAND COUNT", "command|count"),
        ("COMMAND", "command"),
    ],
)
def test_lookup_resolves_subcommands(request_, name):
    assert spec_of(request_).name == name


def test_a_container_without_subcommand_fails_arity_except_command():
    client = spec_of("CLIENT")
    assert client.subcommands is not None and not arity_ok(client, 1)
    command = spec_of("COMMAND")
    assert arity_ok(command, 1) and command.shape is Shape.ANY


@pytest.mark.parametrize("request_", ["NOSUCH", "nosuch a b", "CONFIG NOPE", "OBJECT", "GETX k"])
def test_unknown_commands_and_subcommands_are_none(request_):
    args = argv(request_)
    if request_ == "OBJECT":
        assert lookup(args) is TABLE[b"OBJECT"]  # the container; arity refuses it
    else:
        assert lookup(args) is None


# ---------------------------------------------------------------- resolve, refusal


@pytest.mark.parametrize(
    ("request_", "name"),
    [
        ("GET k", "get"),
        ("get k", "get"),
        ("gEt k", "get"),
        ("CONFIG GET maxmemory", "config|get"),
        ("config get maxmemory", "config|get"),
        ("COMMAND", "command"),
        ("MSET a 1 b", "mset"),  # arity -3 holds; the missing value is the planner's error
    ],
)
def test_resolve_serves_known_commands_with_a_good_arity(request_, name):
    spec = resolve(argv(request_))
    assert spec is not None and spec.name == name
    assert spec is lookup(argv(request_))


@pytest.mark.parametrize(
    ("request_", "reply"),
    [
        ("GET", b"-ERR wrong number of arguments for 'get' command\r\n"),
        ("get a b", b"-ERR wrong number of arguments for 'get' command\r\n"),
        ("CONFIG", b"-ERR wrong number of arguments for 'config' command\r\n"),
        ("CONFIG GET", b"-ERR wrong number of arguments for 'config|get' command\r\n"),
        ("CONFIG nope", b"-ERR unknown subcommand 'nope'. Try CONFIG HELP.\r\n"),
        (
            "NOSUCH a",
            b"-ERR unknown command 'NOSUCH', with args beginning with: 'a' \r\n",
        ),
    ],
)
def test_resolve_refuses_and_refusal_says_why(request_, reply):
    args = argv(request_)
    assert resolve(args) is None
    assert refusal(args, lookup(args)) == reply


def test_the_fast_paths_a_spec_offers():
    assert spec_of("GET k").fast_key == 1 and spec_of("GET k").split_step == 0
    assert spec_of("HSET h f v").fast_key == 1
    assert spec_of("MGET a b").split_step == 1 and spec_of("MGET a b").fast_key == 0
    assert spec_of("MSET a 1").split_step == 2
    assert spec_of("DEL a").split_step == 1
    # several keys, movable keys, subcommands and keyless commands take the slow path
    for request_ in ("RENAME a b", "EVAL s 0", "OBJECT ENCODING k", "PING", "BLPOP l 0"):
        assert spec_of(request_).fast_key == 0 == spec_of(request_).split_step, request_
    # the client loop's first lookup holds exactly those, by the names clients send
    assert FAST[b"GET"] is FAST[b"get"] is TABLE[b"GET"]
    assert FAST[b"mset"] is TABLE[b"MSET"]
    assert all(spec.fast_key or spec.split_step for spec in FAST.values())
    assert b"PING" not in FAST and b"Get" not in FAST and b"OBJECT" not in FAST


def test_rows_name_their_merger_and_how_they_block():
    assert spec_of("MGET a").merger == "ordered"
    assert spec_of("DBSIZE").merger == "sum"
    assert spec_of("PUBSUB NUMPAT").merger == "max"
    assert spec_of("GET k").merger is None
    assert spec_of("BLPOP l 0").blocks == table.LAST
    assert spec_of("BZMPOP 0 1 z MIN").blocks == table.FIRST
    assert spec_of("WAIT 1 0").blocks == table.WAIT and spec_of("WAIT 1 0").merger == "min"
    assert spec_of("XREAD STREAMS s 0").blocks == table.BLOCK
    assert spec_of("GET k").blocks is None


def test_lookup_of_odd_bytes():
    assert lookup([b""]) is None
    assert lookup([b"\xff\xfe"]) is None
    assert lookup([b"CLIENT", b"\xff"]) is None


def test_table_shape():
    for name, spec in TABLE.items():
        assert name == spec.name.upper().encode() and "|" not in spec.name
        for sub, sub_spec in (spec.subcommands or {}).items():
            assert sub == sub.lower() and sub_spec.name == f"{spec.name}|{sub}"
            assert sub_spec.subcommands is None


# ---------------------------------------------------------------- arity


@pytest.mark.parametrize(
    ("request_", "ok"),
    [
        ("GET k", True),
        ("GET", False),
        ("GET k extra", False),
        ("SET k v", True),
        ("SET k v EX 10", True),
        ("SET k", False),
        ("PING", True),
        ("PING hello", True),
        ("MSET k v", True),
        ("MSET k", False),
        ("OBJECT ENCODING k", True),
        ("OBJECT ENCODING", False),
        ("OBJECT ENCODING k more", False),
        ("XREADGROUP GROUP g c STREAMS", False),
    ],
)
def test_arity(request_, ok):
    args = argv(request_)
    assert arity_ok(spec_of(request_), len(args)) is ok


# ---------------------------------------------------------------- keys


@pytest.mark.parametrize(
    ("request_", "keys"),
    [
        ("GET k", ["k"]),
        ("SET k v EX 10", ["k"]),
        ("PING", []),
        ("MGET a b c", ["a", "b", "c"]),
        ("MSET a 1 b 2", ["a", "b"]),
        ("DEL a b", ["a", "b"]),
        ("BLPOP a b 0", ["a", "b"]),
        ("BITOP AND d a b", ["d", "a", "b"]),
        ("OBJECT ENCODING k", ["k"]),
        ("MEMORY USAGE k SAMPLES 5", ["k"]),
        ("XGROUP CREATE s g $", ["s"]),
        ("EVAL s 2 a b arg", ["a", "b"]),
        ("EVAL s 0", []),
        ("FCALL_RO f 1 a arg", ["a"]),
        ("ZUNIONSTORE d 2 a b WEIGHTS 1 2", ["d", "a", "b"]),
        ("ZINTERCARD 2 a b LIMIT 1", ["a", "b"]),
        ("SINTERCARD 1 a", ["a"]),
        ("LMPOP 2 a b LEFT", ["a", "b"]),
        ("BZMPOP 0.5 1 a MIN", ["a"]),
        ("XREAD COUNT 1 STREAMS a b 0 0", ["a", "b"]),
        ("XREADGROUP GROUP streams c STREAMS a >", ["a"]),
        ("SORT k BY w_* GET o_* STORE d", ["k", "d"]),
        ("SORT k STORE d STORE e", ["k", "e"]),
        ("SORT k GET store d", ["k"]),
        ("SORT_RO k STORE d", ["k"]),
        ("GEORADIUS k 1 2 3 km STORE d STOREDIST e", ["k", "d", "e"]),
        ("GEORADIUSBYMEMBER k m 3 km STORE", ["k"]),
        ("MIGRATE h 1 k 0 10", ["k"]),
        ("MIGRATE h 1 - 0 10", ["-"]),
        ("SPUBLISH channel message", ["channel"]),
    ],
)
def test_key_positions(request_, keys):
    assert keys_of(request_) == [k.encode() for k in keys]


def test_migrate_keys_option():
    args = [b"MIGRATE", b"h", b"1", b"", b"0", b"10", b"AUTH", b"keys", b"KEYS", b"a", b"b"]
    spec = lookup(args)
    assert spec is not None and key_positions(spec, args) == [9, 10]


def test_key_positions_returns_a_fresh_list():
    spec = spec_of("GET k")
    first = key_positions(spec, argv("GET k"))
    first.append(99)
    assert key_positions(spec, argv("GET k")) == [1]
    assert spec.fixed_keys == (1,)


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        ("EVAL s x a", "ERR value is not an integer or out of range"),
        ("EVAL s +1 a", "ERR value is not an integer or out of range"),
        ("EVAL s -0 a", "ERR value is not an integer or out of range"),
        ("EVALSHA s 9223372036854775808 a", "ERR value is not an integer or out of range"),
        ("EVAL s -1 a", "ERR Number of keys can't be negative"),
        ("EVAL s 2 a", "ERR Number of keys can't be greater than number of args"),
        ("FCALL f x a", "ERR Bad number of keys provided"),
        ("FCALL f 2 a", "ERR Number of keys can't be greater than number of args"),
        ("ZUNIONSTORE d 0 a", "ERR at least 1 input key is needed for 'zunionstore' command"),
        ("zinter 0 a", "ERR at least 1 input key is needed for 'zinter' command"),
        ("ZUNION x a", "ERR value is not an integer or out of range"),
        ("ZDIFF 2 a", "ERR syntax error"),
        ("SINTERCARD 0 a", "ERR numkeys should be greater than 0"),
        ("SINTERCARD 2 a", "ERR Number of keys can't be greater than number of args"),
        ("LMPOP 0 a LEFT", "ERR numkeys should be greater than 0"),
        ("LMPOP 2 a LEFT", "ERR syntax error"),
        ("BLMPOP 0 x a LEFT", "ERR numkeys should be greater than 0"),
        (
            "XREAD STREAMS a b 0",
            "ERR Unbalanced XREAD list of streams: for each stream key an "
            "ID or '$' must be specified.",
        ),
        ("XREAD COUNT 1 a 0", "ERR syntax error"),
        ("XREADGROUP GROUP g c COUNT 1 STREAMS", "ERR syntax error"),
        (
            "MIGRATE h 1 k 0 10 KEYS a",
            "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string",
        ),
        ("MSET a 1 b", "ERR wrong number of arguments for 'mset' command"),
        ("MSETNX a 1 b", "ERR wrong number of arguments for 'msetnx' command"),
    ],
)
def test_key_spec_errors(request_, error):
    assert key_error(request_) == error
    assert isinstance(KeySpecError(error), RouterError)


# ---------------------------------------------------------------- is_blocking


@pytest.mark.parametrize(
    ("request_", "blocking"),
    [
        ("XREAD BLOCK 0 STREAMS s 0", True),
        ("xread count 5 block 100 streams s $", True),
        ("XREADGROUP GROUP g c BLOCK 0 STREAMS s >", True),
        ("XREADGROUP GROUP g c NOACK COUNT 1 block 0 STREAMS s >", True),
        ("XREAD STREAMS s 0", False),
        ("XREAD COUNT 5 STREAMS block 0", False),  # a stream named "block"
        ("XREAD COUNT block STREAMS s 0", False),  # junk COUNT: the backend's error
        ("XREADGROUP GROUP block c STREAMS s >", False),
        ("XREADGROUP GROUP g block STREAMS s >", False),
        ("XREAD STREAMS s BLOCK", False),
        ("XREAD BLOCK", False),
        ("BLPOP l 0", True),
        ("bzmpop 0 1 z MIN", True),
        ("WAIT 1 0", True),
        ("GET k", False),
        ("LPOP l", False),
    ],
)
def test_is_blocking(request_, blocking):
    assert is_blocking(argv(request_)) is blocking


# ---------------------------------------------------------------- the module itself


def test_rows_are_well_formed():
    names = [row[0] for row in table.CONTAINERS + table.ROWS]
    assert len(names) == len(set(names))
    shapes = set(Shape)
    for name, arity, shape, write, first, last, step, keys, merger, blocks in table.ROWS:
        assert name == name.lower() and arity != 0 and shape in shapes, name
        assert isinstance(write, bool)
        assert (first, last, step) == (0, 0, 0) or (first > 0 and step > 0), name
        assert keys is None or keys in key_finders.KEY_FINDERS, name
        assert merger is None or isinstance(merger, str), name
        assert blocks in (None, table.LAST, table.FIRST, table.WAIT, table.BLOCK), name


def test_every_keyed_shape_has_keys_and_keyless_shapes_have_none():
    for spec in TABLE.values():
        for s in [spec, *(spec.subcommands or {}).values()]:
            keyed = s.keys is not None or s.first != 0
            if s.shape in (Shape.SINGLE, Shape.FANOUT_SUM, Shape.FANOUT_ORDERED, Shape.FANOUT_OK):
                assert keyed, s.name
            if s.shape in (Shape.ALL_MASTERS, Shape.ANY, Shape.LOCAL):
                assert not keyed, s.name


@pytest.mark.parametrize(
    "module", ["router.commands.spec", "router.commands.table", "router.commands.key_finders"]
)
def test_pure_no_io_imports(module):
    path = Path(__file__).resolve().parents[3] / (module.replace(".", "/") + ".py")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"asyncio", "socket", "aiohttp", "selectors", "ssl"}


@pytest.mark.parametrize("first", ["router.commands.table", "router.commands.spec"])
def test_imports_in_either_order(first):
    code = f"import {first}; import router.commands.spec as c; assert c.lookup([b'GET', b'k'])"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[3])
