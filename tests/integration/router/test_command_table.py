"""The routing table against a real redis-server 7.0: the server is the oracle.

1. Every command and subcommand the server knows (COMMAND, COMMAND INFO,
   COMMAND LIST) is in `TABLE` with the server's arity, write flag and legacy
   key range, and the table invents nothing.
2. For sample requests covering every keyed command (several variants for the
   movable-key ones), `key_positions` names the keys `COMMAND GETKEYS` names;
   for keyless commands it names none. Commands not compared are listed in
   `NOT_COMPARED` with the reason.
3. Requests whose keys cannot be found raise `KeySpecError` with the very
   error text the server answers when it runs them.
4. Shapes agree with the server's flags where they must (blocking, pubsub,
   write).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from router.commands.spec import (
    TABLE,
    CommandSpec,
    KeySpecError,
    Shape,
    arity_ok,
    is_blocking,
    key_positions,
    lookup,
)

# ---------------------------------------------------------------------------
# Helpers


def raw(client: redis.Redis, *args: Any) -> Any:
    """Send a command and return the raw reply (no redis-py response callback:
    its COMMAND parser mangles COMMAND GETKEYS and COMMAND INFO)."""
    conn = client.connection_pool.get_connection()
    try:
        conn.send_command(*args)
        return conn.read_response()
    finally:
        client.connection_pool.release(conn)


def table_spec(name: str) -> CommandSpec | None:
    parent, _, sub = name.partition("|")
    spec = TABLE.get(parent.upper().encode())
    if spec is None or not sub:
        return spec
    return (spec.subcommands or {}).get(sub)


def table_names() -> set[str]:
    names = set()
    for spec in TABLE.values():
        names.add(spec.name)
        names.update(sub.name for sub in (spec.subcommands or {}).values())
    return names


class ServerCommand:
    """One entry of the raw COMMAND reply."""

    def __init__(self, entry: list[Any]) -> None:
        self.name: str = entry[0].decode()
        self.arity: int = entry[1]
        self.flags: set[str] = {f.decode() for f in entry[2]}
        self.first, self.last, self.step = entry[3], entry[4], entry[5]
        self.key_specs: list[Any] = entry[8]
        self.subcommands = [ServerCommand(sub) for sub in entry[9] or []]

    @property
    def keyed(self) -> bool:
        return bool(self.first or self.key_specs or "movablekeys" in self.flags)


def flatten(commands: list[ServerCommand]) -> Iterator[ServerCommand]:
    for cmd in commands:
        yield cmd
        yield from flatten(cmd.subcommands)


@pytest.fixture(scope="module")
def client(redis_plain) -> Iterator[redis.Redis]:
    c = redis.Redis(port=redis_plain.port)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def server_commands(client) -> dict[str, ServerCommand]:
    top = [ServerCommand(entry) for entry in raw(client, "COMMAND")]
    return {cmd.name: cmd for cmd in flatten(top)}


def server_keys(client: redis.Redis, args: list[str]) -> list[bytes]:
    """What COMMAND GETKEYS says; [] where it says the command has no keys."""
    try:
        return list(raw(client, "COMMAND", "GETKEYS", *args))
    except redis.ResponseError as exc:
        if "no key arguments" in str(exc):
            return []
        raise


def encode(args: list[str]) -> list[bytes]:
    return [a.encode() for a in args]


def our_keys(args: list[str]) -> list[bytes]:
    argv = encode(args)
    spec = lookup(argv)
    assert spec is not None, args
    assert arity_ok(spec, len(argv)), f"sample fails arity: {args}"
    return [argv[i] for i in key_positions(spec, argv)]


# ---------------------------------------------------------------------------
# 1 + 3: the same commands, arities, write flags and key ranges as the server


def test_every_server_command_is_in_the_table(server_commands):
    wrong = []
    for name, cmd in server_commands.items():
        spec = table_spec(name)
        if spec is None:
            wrong.append(f"{name}: missing")
            continue
        ours = (spec.arity, spec.write, spec.first, spec.last, spec.step)
        theirs = (cmd.arity, "write" in cmd.flags, cmd.first, cmd.last, cmd.step)
        if ours != theirs:
            wrong.append(f"{name}: (arity, write, first, last, step) {ours} != server {theirs}")
    assert not wrong, "\n".join(wrong)


# Rows the router answers itself although a 7.0 server does not know them.
ROUTER_ONLY = {"client|setinfo", "client|no-touch"}  # Redis 7.2 (SETINFO: redis-py sends it)


def test_table_invents_no_command(server_commands):
    assert table_names() - set(server_commands) == ROUTER_ONLY
    for name in ROUTER_ONLY:
        spec = table_spec(name)
        assert spec is not None and spec.shape is Shape.LOCAL


def test_command_info_and_list_agree(client, server_commands):
    top = [name for name in server_commands if "|" not in name]
    assert raw(client, "COMMAND", "COUNT") == len(top) == len(TABLE)
    info = [ServerCommand(entry) for entry in raw(client, "COMMAND", "INFO", *top)]
    assert {cmd.name for cmd in flatten(info)} == table_names() - ROUTER_ONLY
    listed = {name.decode() for name in raw(client, "COMMAND", "LIST")}
    assert listed == table_names() - ROUTER_ONLY


def test_lookup_resolves_every_command_in_any_case(server_commands):
    for name in server_commands:
        parent, _, sub = name.partition("|")
        for spelled in (parent, parent.upper(), parent.capitalize()):
            args = [spelled.encode()] + ([sub.upper().encode()] if sub else [])
            spec = lookup(args)
            assert spec is not None and spec.name == name, (spelled, sub)


# ---------------------------------------------------------------------------
# 2: key positions against COMMAND GETKEYS

# Sample requests: name -> requests. Keys are named k1, k2 ... where possible;
# "" is an empty argument (MIGRATE's key placeholder).
SAMPLES: dict[str, list[str]] = {
    "append": ["APPEND k1 v"],
    "bitcount": ["BITCOUNT k1", "BITCOUNT k1 0 -1 BYTE"],
    "bitfield": ["BITFIELD k1 GET u8 0 INCRBY u8 0 1"],
    "bitfield_ro": ["BITFIELD_RO k1 GET u8 0"],
    "bitop": ["BITOP AND k1 k2 k3", "BITOP NOT k1 k2"],
    "bitpos": ["BITPOS k1 1 0"],
    "blmove": ["BLMOVE k1 k2 LEFT RIGHT 0"],
    "blmpop": ["BLMPOP 0 2 k1 k2 LEFT COUNT 2", "BLMPOP 1.5 1 k1 RIGHT"],
    "blpop": ["BLPOP k1 k2 0", "BLPOP k1 1.5"],
    "brpop": ["BRPOP k1 k2 k3 0"],
    "brpoplpush": ["BRPOPLPUSH k1 k2 0"],
    "bzmpop": ["BZMPOP 0 2 k1 k2 MIN", "BZMPOP 1 1 k1 MAX COUNT 3"],
    "bzpopmax": ["BZPOPMAX k1 k2 0"],
    "bzpopmin": ["BZPOPMIN k1 0"],
    "copy": ["COPY k1 k2", "COPY k1 k2 DB 0 REPLACE"],
    "decr": ["DECR k1"],
    "decrby": ["DECRBY k1 2"],
    "del": ["DEL k1", "DEL k1 k2 k3"],
    "dump": ["DUMP k1"],
    "eval": ["EVAL s 2 k1 k2 a1", "EVAL s 0", "EVAL s 0 a1 a2", "EVAL s 1 k1"],
    "eval_ro": ["EVAL_RO s 1 k1 a1", "EVAL_RO s 0 a1"],
    "evalsha": ["EVALSHA sha 3 k1 k2 k3", "EVALSHA sha 0"],
    "evalsha_ro": ["EVALSHA_RO sha 1 k1 a1 a2"],
    "exists": ["EXISTS k1 k2"],
    "expire": ["EXPIRE k1 10", "EXPIRE k1 10 NX"],
    "expireat": ["EXPIREAT k1 1700000000"],
    "expiretime": ["EXPIRETIME k1"],
    "fcall": ["FCALL f 2 k1 k2 a1", "FCALL f 0 a1"],
    "fcall_ro": ["FCALL_RO f 1 k1", "FCALL_RO f 0"],
    "geoadd": ["GEOADD k1 13.3 38.1 m1"],
    "geodist": ["GEODIST k1 m1 m2 km"],
    "geohash": ["GEOHASH k1 m1 m2"],
    "geopos": ["GEOPOS k1 m1"],
    "georadius": [
        "GEORADIUS k1 15 37 200 km WITHDIST",
        "GEORADIUS k1 15 37 200 km STORE k2",
        "GEORADIUS k1 15 37 200 km STOREDIST k2",
        "GEORADIUS k1 15 37 200 km STORE k2 STOREDIST k3",
        "GEORADIUS k1 15 37 200 km STOREDIST k3 STORE k2",
        "GEORADIUS k1 15 37 200 km COUNT 5 ASC STORE k2 STORE k3",
        "GEORADIUS k1 15 37 200 store STORE k2",
        "GEORADIUS k1 15 37 200 km STORE",
    ],
    "georadius_ro": ["GEORADIUS_RO k1 15 37 200 km WITHCOORD"],
    "georadiusbymember": [
        "GEORADIUSBYMEMBER k1 m1 100 km",
        "GEORADIUSBYMEMBER k1 m1 100 km STORE k2",
        "GEORADIUSBYMEMBER k1 store 100 km STOREDIST k2",
        "GEORADIUSBYMEMBER k1 m1 100 store k2",
    ],
    "georadiusbymember_ro": ["GEORADIUSBYMEMBER_RO k1 m1 100 km"],
    "geosearch": ["GEOSEARCH k1 FROMMEMBER m1 BYRADIUS 10 km"],
    "geosearchstore": ["GEOSEARCHSTORE k1 k2 FROMLONLAT 15 37 BYBOX 400 400 km STOREDIST"],
    "get": ["GET k1"],
    "getbit": ["GETBIT k1 7"],
    "getdel": ["GETDEL k1"],
    "getex": ["GETEX k1", "GETEX k1 EX 10"],
    "getrange": ["GETRANGE k1 0 3"],
    "getset": ["GETSET k1 v"],
    "hdel": ["HDEL k1 f1 f2"],
    "hexists": ["HEXISTS k1 f1"],
    "hget": ["HGET k1 f1"],
    "hgetall": ["HGETALL k1"],
    "hincrby": ["HINCRBY k1 f1 1"],
    "hincrbyfloat": ["HINCRBYFLOAT k1 f1 1.5"],
    "hkeys": ["HKEYS k1"],
    "hlen": ["HLEN k1"],
    "hmget": ["HMGET k1 f1 f2"],
    "hmset": ["HMSET k1 f1 v1 f2 v2"],
    "hrandfield": ["HRANDFIELD k1 2 WITHVALUES"],
    "hscan": ["HSCAN k1 0 MATCH * COUNT 10"],
    "hset": ["HSET k1 f1 v1 f2 v2"],
    "hsetnx": ["HSETNX k1 f1 v1"],
    "hstrlen": ["HSTRLEN k1 f1"],
    "hvals": ["HVALS k1"],
    "incr": ["INCR k1"],
    "incrby": ["INCRBY k1 2"],
    "incrbyfloat": ["INCRBYFLOAT k1 1.5"],
    "lcs": ["LCS k1 k2", "LCS k1 k2 IDX MINMATCHLEN 2 WITHMATCHLEN"],
    "lindex": ["LINDEX k1 0"],
    "linsert": ["LINSERT k1 BEFORE p v"],
    "llen": ["LLEN k1"],
    "lmove": ["LMOVE k1 k2 LEFT RIGHT"],
    "lmpop": ["LMPOP 2 k1 k2 LEFT COUNT 3", "LMPOP 1 k1 RIGHT"],
    "lpop": ["LPOP k1", "LPOP k1 2"],
    "lpos": ["LPOS k1 e RANK 1 COUNT 2"],
    "lpush": ["LPUSH k1 a b"],
    "lpushx": ["LPUSHX k1 a"],
    "lrange": ["LRANGE k1 0 -1"],
    "lrem": ["LREM k1 0 e"],
    "lset": ["LSET k1 0 e"],
    "ltrim": ["LTRIM k1 0 1"],
    "memory|usage": ["MEMORY USAGE k1", "MEMORY USAGE k1 SAMPLES 5"],
    "mget": ["MGET k1", "MGET k1 k2 k3"],
    "migrate": [
        "MIGRATE h 6379 k1 0 1000",
        "MIGRATE h 6379 k1 0 1000 COPY REPLACE",
        'MIGRATE h 6379 "" 0 1000',
        'MIGRATE h 6379 "" 0 1000 KEYS k1 k2 k3',
        'MIGRATE h 6379 "" 0 1000 COPY REPLACE AUTH pw KEYS k1 k2',
        'MIGRATE h 6379 "" 0 1000 AUTH keys KEYS k1 k2',
        'MIGRATE h 6379 "" 0 1000 AUTH2 keys keys KEYS k1',
        'MIGRATE h 6379 "" 0 1000 KEYS k1 keys k2',
        "MIGRATE h 6379 k1 0 1000 AUTH keys pw",
    ],
    "move": ["MOVE k1 1"],
    "mset": ["MSET k1 v1", "MSET k1 v1 k2 v2 k3 v3"],
    "msetnx": ["MSETNX k1 v1 k2 v2"],
    "object|encoding": ["OBJECT ENCODING k1"],
    "object|freq": ["OBJECT FREQ k1"],
    "object|idletime": ["OBJECT IDLETIME k1"],
    "object|refcount": ["OBJECT REFCOUNT k1"],
    "persist": ["PERSIST k1"],
    "pexpire": ["PEXPIRE k1 100 XX"],
    "pexpireat": ["PEXPIREAT k1 1700000000000"],
    "pexpiretime": ["PEXPIRETIME k1"],
    "pfadd": ["PFADD k1", "PFADD k1 a b"],
    "pfcount": ["PFCOUNT k1", "PFCOUNT k1 k2"],
    "pfdebug": ["PFDEBUG GETREG k1"],
    # (not "PFMERGE k1": GETKEYS fails on it, its second key-spec finds no source)
    "pfmerge": ["PFMERGE k1 k2", "PFMERGE k1 k2 k3"],
    "psetex": ["PSETEX k1 100 v"],
    "pttl": ["PTTL k1"],
    "rename": ["RENAME k1 k2"],
    "renamenx": ["RENAMENX k1 k2"],
    "restore": ["RESTORE k1 0 payload REPLACE ABSTTL"],
    "restore-asking": ["RESTORE-ASKING k1 0 payload"],
    "rpop": ["RPOP k1 2"],
    "rpoplpush": ["RPOPLPUSH k1 k2"],
    "rpush": ["RPUSH k1 a b"],
    "rpushx": ["RPUSHX k1 a"],
    "sadd": ["SADD k1 a b"],
    "scard": ["SCARD k1"],
    "sdiff": ["SDIFF k1 k2"],
    "sdiffstore": ["SDIFFSTORE k1 k2 k3"],
    "set": ["SET k1 v", "SET k1 v EX 10 GET"],
    "setbit": ["SETBIT k1 7 1"],
    "setex": ["SETEX k1 10 v"],
    "setnx": ["SETNX k1 v"],
    "setrange": ["SETRANGE k1 0 v"],
    "sinter": ["SINTER k1 k2"],
    "sintercard": ["SINTERCARD 2 k1 k2 LIMIT 5", "SINTERCARD 1 k1"],
    "sinterstore": ["SINTERSTORE k1 k2 k3"],
    "sismember": ["SISMEMBER k1 m"],
    "smembers": ["SMEMBERS k1"],
    "smismember": ["SMISMEMBER k1 a b"],
    "smove": ["SMOVE k1 k2 m"],
    "sort": [
        "SORT k1",
        "SORT k1 STORE k2",
        "SORT k1 BY w_* GET o_* GET # STORE k2",
        "SORT k1 LIMIT 0 10 ALPHA DESC",
        "SORT k1 STORE k2 STORE k3",
        "SORT k1 LIMIT 0 store STORE k2",
        "SORT k1 GET store k2",
        "SORT k1 store",
    ],
    "sort_ro": ["SORT_RO k1", "SORT_RO k1 BY w_* GET o_* LIMIT 0 1"],
    "spop": ["SPOP k1 2"],
    "srandmember": ["SRANDMEMBER k1 -2"],
    "srem": ["SREM k1 a"],
    "sscan": ["SSCAN k1 0"],
    "strlen": ["STRLEN k1"],
    "substr": ["SUBSTR k1 0 3"],
    "sunion": ["SUNION k1 k2"],
    "sunionstore": ["SUNIONSTORE k1 k2 k3"],
    "touch": ["TOUCH k1 k2"],
    "ttl": ["TTL k1"],
    "type": ["TYPE k1"],
    "unlink": ["UNLINK k1 k2"],
    "watch": ["WATCH k1", "WATCH k1 k2"],
    "xack": ["XACK k1 g 1-0 2-0"],
    "xadd": ["XADD k1 * f v", "XADD k1 NOMKSTREAM MAXLEN ~ 10 * f v"],
    "xautoclaim": ["XAUTOCLAIM k1 g c 10 0-0 COUNT 5 JUSTID"],
    "xclaim": ["XCLAIM k1 g c 10 1-0 FORCE"],
    "xdel": ["XDEL k1 1-0"],
    "xgroup|create": ["XGROUP CREATE k1 g $ MKSTREAM"],
    "xgroup|createconsumer": ["XGROUP CREATECONSUMER k1 g c"],
    "xgroup|delconsumer": ["XGROUP DELCONSUMER k1 g c"],
    "xgroup|destroy": ["XGROUP DESTROY k1 g"],
    "xgroup|setid": ["XGROUP SETID k1 g $"],
    "xinfo|consumers": ["XINFO CONSUMERS k1 g"],
    "xinfo|groups": ["XINFO GROUPS k1"],
    "xinfo|stream": ["XINFO STREAM k1", "XINFO STREAM k1 FULL COUNT 5"],
    "xlen": ["XLEN k1"],
    "xpending": ["XPENDING k1 g", "XPENDING k1 g IDLE 10 - + 5 c"],
    "xrange": ["XRANGE k1 - +"],
    "xread": [
        "XREAD STREAMS k1 0",
        "XREAD COUNT 2 BLOCK 100 STREAMS k1 k2 0 $",
        "XREAD STREAMS streams 0",
        "XREAD count 1 streams streams streams 0 0",
    ],
    "xreadgroup": [
        "XREADGROUP GROUP g c STREAMS k1 >",
        "XREADGROUP GROUP g c COUNT 1 BLOCK 0 NOACK STREAMS k1 k2 > >",
        "XREADGROUP GROUP streams c STREAMS k1 >",
        "XREADGROUP GROUP g streams STREAMS k1 >",
    ],
    "xrevrange": ["XREVRANGE k1 + - COUNT 1"],
    "xsetid": ["XSETID k1 5-0"],
    "xtrim": ["XTRIM k1 MAXLEN 10"],
    "zadd": ["ZADD k1 1 a", "ZADD k1 NX CH 1 a 2 b"],
    "zcard": ["ZCARD k1"],
    "zcount": ["ZCOUNT k1 0 1"],
    "zdiff": ["ZDIFF 2 k1 k2 WITHSCORES", "ZDIFF 1 k1"],
    "zdiffstore": ["ZDIFFSTORE k1 2 k2 k3"],
    "zincrby": ["ZINCRBY k1 1 a"],
    "zinter": ["ZINTER 2 k1 k2 WEIGHTS 1 2"],
    "zintercard": ["ZINTERCARD 2 k1 k2 LIMIT 1", "ZINTERCARD 1 k1"],
    "zinterstore": ["ZINTERSTORE k1 2 k2 k3 AGGREGATE MAX"],
    "zlexcount": ["ZLEXCOUNT k1 - +"],
    "zmpop": ["ZMPOP 2 k1 k2 MIN COUNT 1", "ZMPOP 1 k1 MAX"],
    "zmscore": ["ZMSCORE k1 a b"],
    "zpopmax": ["ZPOPMAX k1"],
    "zpopmin": ["ZPOPMIN k1 2"],
    "zrandmember": ["ZRANDMEMBER k1 2 WITHSCORES"],
    "zrange": ["ZRANGE k1 0 -1", "ZRANGE k1 (1 5 BYSCORE REV LIMIT 0 1"],
    "zrangebylex": ["ZRANGEBYLEX k1 - +"],
    "zrangebyscore": ["ZRANGEBYSCORE k1 0 1 WITHSCORES"],
    "zrangestore": ["ZRANGESTORE k1 k2 0 -1"],
    "zrank": ["ZRANK k1 a"],
    "zrem": ["ZREM k1 a b"],
    "zremrangebylex": ["ZREMRANGEBYLEX k1 - +"],
    "zremrangebyrank": ["ZREMRANGEBYRANK k1 0 1"],
    "zremrangebyscore": ["ZREMRANGEBYSCORE k1 0 1"],
    "zrevrange": ["ZREVRANGE k1 0 -1"],
    "zrevrangebylex": ["ZREVRANGEBYLEX k1 + -"],
    "zrevrangebyscore": ["ZREVRANGEBYSCORE k1 1 0"],
    "zrevrank": ["ZREVRANK k1 a"],
    "zscan": ["ZSCAN k1 0"],
    "zscore": ["ZSCORE k1 a"],
    "zunion": ["ZUNION 3 k1 k2 k3", "ZUNION 1 k1 WITHSCORES"],
    "zunionstore": ["ZUNIONSTORE k1 2 k2 k3 WEIGHTS 1 2", "ZUNIONSTORE k1 1 k2"],
}

# Keyed commands whose keys are deliberately not compared with COMMAND GETKEYS.
NOT_COMPARED: dict[str, str] = {
    # Sharded pub/sub: Redis 7 flags the channels `not_key`, so GETKEYS answers
    # "no key arguments"; but a channel hashes to a slot exactly like a key, so
    # the table keeps COMMAND's legacy range (1 -1 1 / 1 1 1) to route by it.
    # test_sharded_channels_route_like_keys checks them instead.
    "ssubscribe": "channels are not_key for GETKEYS, yet pick the shard",
    "sunsubscribe": "channels are not_key for GETKEYS, yet pick the shard",
    "spublish": "channel is not_key for GETKEYS, yet picks the shard",
}

SAMPLE_CASES = [(name, request) for name, requests in SAMPLES.items() for request in requests]


def test_every_keyed_command_is_sampled(server_commands):
    keyed = {name for name, cmd in server_commands.items() if cmd.keyed}
    assert keyed - set(NOT_COMPARED) == set(SAMPLES)
    assert set(NOT_COMPARED) <= keyed


@pytest.mark.parametrize(("name", "request_"), SAMPLE_CASES, ids=[r for _, r in SAMPLE_CASES])
def test_keys_match_command_getkeys(client, name, request_):
    args = shlex.split(request_)
    spec = lookup([a.encode() for a in args])
    assert spec is not None and spec.name == name
    assert our_keys(args) == server_keys(client, args)


def filler_request(cmd: ServerCommand) -> list[str]:
    """The shortest request that passes ``cmd``'s arity, filled with "x"."""
    words = [w.upper() for w in cmd.name.split("|")]
    return words + ["x"] * (abs(cmd.arity) - len(words))


def test_keyless_commands_have_no_keys(client, server_commands):
    checked = 0
    for cmd in server_commands.values():
        if cmd.keyed or cmd.subcommands:
            continue
        args = filler_request(cmd)
        assert our_keys(args) == [], cmd.name
        if len(args) >= 2:  # COMMAND GETKEYS needs the command and an argument
            assert server_keys(client, args) == [], cmd.name
            checked += 1
    assert checked > 100


def test_sharded_channels_route_like_keys(client, server_commands):
    for name, request_ in [
        ("ssubscribe", "SSUBSCRIBE c1 c2"),
        ("sunsubscribe", "SUNSUBSCRIBE c1 c2"),
        ("spublish", "SPUBLISH c1 message"),
    ]:
        cmd = server_commands[name]
        assert all(b"not_key" in spec[b"flags"] for spec in _key_specs(cmd)), name
        args = shlex.split(request_)
        assert server_keys(client, args) == []
        last = len(args) - 1 if cmd.last == -1 else cmd.last
        assert our_keys(args) == [a.encode() for a in args[cmd.first : last + 1]]


def _key_specs(cmd: ServerCommand) -> list[dict[bytes, Any]]:
    specs = []
    for spec in cmd.key_specs:  # RESP2: a flat list of alternating names and values
        if isinstance(spec, dict):
            specs.append(spec)
        else:
            specs.append(dict(zip(spec[::2], spec[1::2], strict=True)))
    return specs


# ---------------------------------------------------------------------------
# 3: requests whose keys cannot be found: the server's own error text

SCRIPT = "return 1"
SCRIPT_SHA = "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
LIBRARY = """#!lua name=tablelib
redis.register_function('f', function(keys, args) return 1 end)
redis.register_function{function_name='g', callback=function(keys, args) return 1 end,
                        flags={'no-writes'}}
"""

BAD_REQUESTS: list[tuple[str, str]] = [
    (f"EVAL '{SCRIPT}' x k1", "ERR value is not an integer or out of range"),
    (f"EVAL '{SCRIPT}' 01 k1", "ERR value is not an integer or out of range"),
    (f"EVAL '{SCRIPT}' 99999999999999999999 k1", "ERR value is not an integer or out of range"),
    (f"EVAL '{SCRIPT}' -1 k1", "ERR Number of keys can't be negative"),
    (f"EVAL '{SCRIPT}' 3 k1 k2", "ERR Number of keys can't be greater than number of args"),
    (f"EVAL_RO '{SCRIPT}' 2 k1", "ERR Number of keys can't be greater than number of args"),
    (f"EVALSHA {SCRIPT_SHA} 3 k1", "ERR Number of keys can't be greater than number of args"),
    (f"EVALSHA_RO {SCRIPT_SHA} -2", "ERR Number of keys can't be negative"),
    ("FCALL f x k1", "ERR Bad number of keys provided"),
    ("FCALL f -1 k1", "ERR Number of keys can't be negative"),
    ("FCALL f 3 k1", "ERR Number of keys can't be greater than number of args"),
    ("FCALL_RO g 2 k1", "ERR Number of keys can't be greater than number of args"),
    ("ZUNIONSTORE k1 0 k2", "ERR at least 1 input key is needed for 'zunionstore' command"),
    ("ZUNIONSTORE k1 -1 k2", "ERR at least 1 input key is needed for 'zunionstore' command"),
    ("ZUNIONSTORE k1 x k2", "ERR value is not an integer or out of range"),
    ("ZUNIONSTORE k1 3 k2 k3", "ERR syntax error"),
    ("ZINTERSTORE k1 0 k2", "ERR at least 1 input key is needed for 'zinterstore' command"),
    ("zdiffstore k1 0 k2", "ERR at least 1 input key is needed for 'zdiffstore' command"),
    ("ZUNION 0 k1", "ERR at least 1 input key is needed for 'zunion' command"),
    ("ZINTER -0 k1", "ERR value is not an integer or out of range"),
    ("ZDIFF 3 k1", "ERR syntax error"),
    ("ZINTERCARD 0 k1", "ERR at least 1 input key is needed for 'zintercard' command"),
    ("SINTERCARD 0 k1", "ERR numkeys should be greater than 0"),
    ("SINTERCARD x k1", "ERR numkeys should be greater than 0"),
    ("SINTERCARD 99999999999999999999 k1", "ERR numkeys should be greater than 0"),
    ("SINTERCARD 3 k1", "ERR Number of keys can't be greater than number of args"),
    ("LMPOP 0 k1 LEFT", "ERR numkeys should be greater than 0"),
    ("LMPOP x k1 LEFT", "ERR numkeys should be greater than 0"),
    ("LMPOP 2 k1 LEFT", "ERR syntax error"),
    ("ZMPOP 3 k1 MIN", "ERR syntax error"),
    ("BLMPOP 0 0 k1 LEFT", "ERR numkeys should be greater than 0"),
    ("BLMPOP 0 2 k1 LEFT", "ERR syntax error"),
    ("BZMPOP 0 -1 k1 MIN", "ERR numkeys should be greater than 0"),
    (
        "XREAD STREAMS k1 k2 0",
        "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
    ),
    ("XREAD COUNT 1 k1 0", "ERR syntax error"),
    ("XREAD COUNT 1 STREAMS", "ERR syntax error"),
    (
        "XREADGROUP GROUP g c STREAMS k1 k2 >",
        "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
    ),
    ("XREADGROUP GROUP g c COUNT 1 k1 >", "ERR syntax error"),
    (
        "MIGRATE 127.0.0.1 1 k1 0 1000 KEYS k2 k3",
        "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string",
    ),
    ("MSET k1 v1 k2", "ERR wrong number of arguments for 'mset' command"),
    ("MSETNX k1 v1 k2 v2 k3", "ERR wrong number of arguments for 'msetnx' command"),
]


@pytest.fixture(scope="module")
def scratch(session_farm) -> Iterator[redis.Redis]:
    """A server of our own, with a script and a function loaded, to run bad requests on."""
    proc = session_farm.start()
    c = redis.Redis(port=proc.port)
    assert c.script_load(SCRIPT) == SCRIPT_SHA
    c.function_load(LIBRARY)
    try:
        yield c
    finally:
        c.close()


@pytest.mark.parametrize(("request_", "error"), BAD_REQUESTS, ids=[r for r, _ in BAD_REQUESTS])
def test_unfindable_keys_raise_the_servers_error(scratch, request_, error):
    args = shlex.split(request_)
    argv = [a.encode() for a in args]
    spec = lookup(argv)
    assert spec is not None and arity_ok(spec, len(argv))
    with pytest.raises(KeySpecError) as caught:
        key_positions(spec, argv)
    assert str(caught.value) == error
    with pytest.raises(redis.ResponseError) as answered:
        raw(scratch, *args)
    assert "ERR " + str(answered.value) == error


# ---------------------------------------------------------------------------
# 4: shapes consistent with the server's flags


def test_blocking_commands_are_pinned_or_detected(server_commands):
    blocking = {name for name, cmd in server_commands.items() if "blocking" in cmd.flags}
    assert blocking >= {"blpop", "xread", "xreadgroup"}
    for name in blocking | {"wait"}:
        spec = table_spec(name)
        assert spec is not None
        if name in ("xread", "xreadgroup"):
            assert spec.shape is Shape.SINGLE
            assert not is_blocking(encode(shlex.split(SAMPLES[name][0])))
            assert is_blocking(encode(shlex.split(SAMPLES[name][1])))
        else:
            assert spec.shape is Shape.PINNED, name
            assert is_blocking(encode(filler_request(server_commands[name]))), name
    for name, cmd in server_commands.items():
        if name not in blocking | {"wait"}:
            assert not is_blocking(encode(filler_request(cmd))), name


def test_pubsub_commands_are_pinned(server_commands):
    for name, cmd in server_commands.items():
        if "pubsub" in cmd.flags:
            spec = table_spec(name)
            assert spec is not None and spec.shape is Shape.PINNED, name


def test_writes_are_never_sent_to_any_one_shard_or_answered_locally(server_commands):
    for name, cmd in server_commands.items():
        spec = table_spec(name)
        assert spec is not None
        if "write" in cmd.flags:
            assert spec.shape not in (Shape.ANY, Shape.LOCAL), name
