"""The data of the routing table: one row per Redis 7.0 command and subcommand.

Pure data, no imports from the rest of the package (``router.commands.spec``
turns the rows into `CommandSpec` objects, checks them, and owns the lookup
functions). Arity, write flag and the legacy key range (first, last, step)
are exactly what ``COMMAND`` reports on redis-server 7.0.15; the shape, the
merger and the blocking rule are our routing decisions, and the comments
beside the rows say why where it was a judgement call. Two rows are not 7.0
commands: CLIENT SETINFO (7.2), which clients send on connect and the router
answers itself, and CLIENT NO-TOUCH (7.2), which it refuses with the reason.
``tests/integration/router/test_command_table.py`` checks every row against a
real server (names, arity, write flag, key range, the keys ``COMMAND GETKEYS``
finds, and which commands block).

Row: ``(name, arity, shape, write, first, last, step, keys, merger, blocks)``

- ``name``: lower case; a subcommand is ``"container|sub"`` (``"object|encoding"``).
- ``arity``: N means exactly N arguments (name included), -N at least N.
- ``shape``: how the router answers the command, a `Shape` (short names below).
- ``first, last, step``: first key index (0: no fixed keys), last key index
  (-1 is the last argument, -2 the one before ...), step between keys.
- ``keys``: name of a key finder in ``router.commands.key_finders.KEY_FINDERS``
  for movable keys (numkeys arguments, keywords such as STORE or STREAMS), else NO.
- ``merger``: for a command answered by several shards (fan-outs, ALL_MASTERS,
  PUBSUB introspection, WAIT), the name of the merger in
  ``router.decide.merge.MERGERS`` that makes their replies one; for an ANY
  command, a filter its one reply goes through (CONFIG GET: no secrets);
  for a SINGLE multi-key command the router may compute when its keys span
  shards (``router.cross_shard: compute``), how: `READ`, `STORE`, `SORTSTORE`,
  `GEOSTORE`
  (``router.decide.algebra``); else NO.
- ``blocks``: for a command that can block on the server, where its timeout is
  (`LAST`, `FIRST`, `WAIT`, `BLOCK` below), else NO.

Invariants: SINGLE and FANOUT_* rows have keys; ALL_MASTERS, ANY and LOCAL rows
have none; FANOUT_* and ALL_MASTERS rows name a merger (``router.commands.spec``
refuses to import otherwise).
"""

from __future__ import annotations

import enum


class Shape(enum.Enum):
    """How the router answers a command (one planner branch per shape). The values are
    the ``shape`` label of the latency metric."""

    SINGLE = "single"  # keyed: every key on one shard -> forward original bytes
    FANOUT_SUM = "fanout-sum"  # DEL/UNLINK/EXISTS/TOUCH: split by shard, sum integers
    FANOUT_ORDERED = "fanout-ordered"  # MGET: split by shard, replies back in key order
    FANOUT_OK = "fanout-ok"  # MSET: split by shard, +OK only if every part is +OK
    ALL_MASTERS = "all-masters"  # keyless, sent to every master, merged (FLUSHALL, DBSIZE)
    ANY = "any"  # keyless, read-only, forwarded to one master (COMMAND, CONFIG GET)
    LOCAL = "local"  # answered by the router itself (PING, ECHO, SELECT, CLIENT ...)
    PINNED = "pinned"  # stateful: the client's mode and dedicated backend connections
    REJECTED = "rejected"  # never passes through the router (SHUTDOWN, DEBUG, ...)


Row = tuple[str, int, Shape, bool, int, int, int, str | None, str | None, str | None]

SINGLE = Shape.SINGLE
FANOUT_SUM = Shape.FANOUT_SUM
FANOUT_ORDERED = Shape.FANOUT_ORDERED
FANOUT_OK = Shape.FANOUT_OK
ALL_MASTERS = Shape.ALL_MASTERS
ANY = Shape.ANY
LOCAL = Shape.LOCAL
PINNED = Shape.PINNED
REJECTED = Shape.REJECTED

W = True  # the command writes (COMMAND flags contain "write")
R = False
NO = None  # no key finder / no merger / never blocks

# Where a blocking command's timeout is (the ``blocks`` column):
LAST = "last"  # the last argument, in seconds (BLPOP, BRPOP, BLMOVE, BZPOPMIN ...)
FIRST = "first"  # the first argument, in seconds (BLMPOP, BZMPOP: timeout numkeys key ...)
WAIT = "wait"  # WAIT numreplicas timeout: the second argument, in milliseconds
BLOCK = "block"  # only with a BLOCK option, in milliseconds (XREAD, XREADGROUP)

# SINGLE commands computed across shards (the ``merger`` column; router.decide.algebra):
READ = "computed"  # read-only: runs on the shard holding most of its keys
STORE = "computed-store"  # writes its first key (the destination): runs on its shard
SORTSTORE = "computed-sort"  # SORT ... STORE dst: runs on dst's shard
GEOSTORE = "computed-geo"  # GEORADIUS* ... STORE|STOREDIST dst: runs on dst's shard

# Container commands. Their own row is used only when no subcommand follows,
# which arity -2 refuses for all but COMMAND (whose bare form lists commands).
# fmt: off
CONTAINERS: tuple[Row, ...] = (
    # (name, arity, shape, write, first, last, step, keys, merger, blocks)
    ("command",                       -1, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("acl",                           -2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("client",                        -2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("cluster",                       -2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("config",                        -2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("function",                      -2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("latency",                       -2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("memory",                        -2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("module",                        -2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("object",                        -2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("pubsub",                        -2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("script",                        -2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("slowlog",                       -2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("xgroup",                        -2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("xinfo",                         -2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
)

ROWS: tuple[Row, ...] = (
    # (name, arity, shape, write, first, last, step, keys, merger, blocks)
    # ---- SINGLE: keyed; forwarded as the original bytes to the shard owning every
    # key (the planner answers CROSSSLOT if the keys span slots of several shards).
    # Multi-key commands here (RENAME, SMOVE, SUNIONSTORE, MSETNX, PFCOUNT ...) are
    # SINGLE, not fan-out: their semantics need every key on one shard. Those whose
    # merger column says READ/STORE/SORTSTORE/GEOSTORE are computed by the router when their
    # keys span shards (copies of the foreign keys, on one shard: router.decide.algebra);
    # the moves between shards (RENAME, COPY, SMOVE, LMOVE, RPOPLPUSH, MSETNX) stay
    # CROSSSLOT: no design could never lose or duplicate a value on a failure half-way.
    ("append",                         3, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("bitcount",                      -2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("bitfield",                      -2, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("bitfield_ro",                   -2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("bitop",                         -4, SINGLE,         W, 2, -1, 1, NO, STORE, NO),
    ("bitpos",                        -3, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("copy",                          -3, SINGLE,         W, 1,  2, 1, NO, NO, NO),
    ("decr",                           2, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("decrby",                         3, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("dump",                           2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("expire",                        -3, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("expireat",                      -3, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("expiretime",                     2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("geoadd",                        -5, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("geodist",                       -4, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("geohash",                       -2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("geopos",                        -2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    # GEORADIUS*/SORT: a STORE/STOREDIST destination is a key too (movable).
    ("georadius",                     -6, SINGLE,         W, 1,  1, 1, "georadius", GEOSTORE, NO),
    ("georadius_ro",                  -6, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("georadiusbymember",             -5, SINGLE,         W, 1,  1, 1, "georadiusbymember", GEOSTORE, NO),  # noqa: E501
    ("georadiusbymember_ro",          -5, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("geosearch",                     -7, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("geosearchstore",                -8, SINGLE,         W, 1,  2, 1, NO, STORE, NO),
    ("get",                            2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("getbit",                         3, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("getdel",                         2, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("getex",                         -2, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("getrange",                       4, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("getset",                         3, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("hdel",                          -3, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("hexists",                        3, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("hget",                           3, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("hgetall",                        2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("hincrby",                        4, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("hincrbyfloat",                   4, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("hkeys",                          2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("hlen",                           2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("hmget",                         -3, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("hmset",                         -4, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("hrandfield",                    -2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("hscan",                         -3, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("hset",                          -4, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("hsetnx",                         4, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("hstrlen",                        3, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("hvals",                          2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("incr",                           2, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("incrby",                         3, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("incrbyfloat",                    3, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("lcs",                           -3, SINGLE,         R, 1,  2, 1, NO, READ, NO),
    ("lindex",                         3, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("linsert",                        5, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("llen",                           2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("lmove",                          5, SINGLE,         W, 1,  2, 1, NO, NO, NO),
    # numkeys-prefixed key lists (LMPOP, ZMPOP, SINTERCARD, ZUNION ...): movable.
    ("lmpop",                         -4, SINGLE,         W, 0,  0, 0, "mpop", NO, NO),
    ("lpop",                          -2, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("lpos",                          -3, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("lpush",                         -3, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("lpushx",                        -3, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("lrange",                         4, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("lrem",                           4, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("lset",                           4, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("ltrim",                          4, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    # OBJECT <sub> key, MEMORY USAGE key, XINFO/XGROUP <sub> key: key at index 2.
    ("memory|usage",                  -3, SINGLE,         R, 2,  2, 1, NO, NO, NO),
    # MSETNX must stay atomic: SINGLE (CROSSSLOT across shards), unlike MSET.
    ("msetnx",                        -3, SINGLE,         W, 1, -1, 2, NO, NO, NO),
    ("object|encoding",                3, SINGLE,         R, 2,  2, 1, NO, NO, NO),
    ("object|freq",                    3, SINGLE,         R, 2,  2, 1, NO, NO, NO),
    ("object|idletime",                3, SINGLE,         R, 2,  2, 1, NO, NO, NO),
    ("object|refcount",                3, SINGLE,         R, 2,  2, 1, NO, NO, NO),
    ("persist",                        2, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("pexpire",                       -3, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("pexpireat",                     -3, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("pexpiretime",                    2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("pfadd",                         -2, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("pfcount",                       -2, SINGLE,         R, 1, -1, 1, NO, READ, NO),
    ("pfmerge",                       -2, SINGLE,         W, 1, -1, 1, NO, STORE, NO),
    ("psetex",                         4, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("pttl",                           2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("rename",                         3, SINGLE,         W, 1,  2, 1, NO, NO, NO),
    ("renamenx",                       3, SINGLE,         W, 1,  2, 1, NO, NO, NO),
    ("restore",                       -4, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("rpop",                          -2, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("rpoplpush",                      3, SINGLE,         W, 1,  2, 1, NO, NO, NO),
    ("rpush",                         -3, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("rpushx",                        -3, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("sadd",                          -3, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("scard",                          2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("sdiff",                         -2, SINGLE,         R, 1, -1, 1, NO, READ, NO),
    ("sdiffstore",                    -3, SINGLE,         W, 1, -1, 1, NO, STORE, NO),
    ("set",                           -3, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("setbit",                         4, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("setex",                          4, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("setnx",                          3, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("setrange",                       4, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("sinter",                        -2, SINGLE,         R, 1, -1, 1, NO, READ, NO),
    ("sintercard",                    -3, SINGLE,         R, 0,  0, 0, "sintercard", READ, NO),
    ("sinterstore",                   -3, SINGLE,         W, 1, -1, 1, NO, STORE, NO),
    ("sismember",                      3, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("smembers",                       2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("smismember",                    -3, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("smove",                          4, SINGLE,         W, 1,  2, 1, NO, NO, NO),
    # SORT ... BY/GET patterns name other keys Redis cannot declare (GETKEYS
    # omits them too); only the sorted key and the STORE destination count. The
    # patterns are checked by router.decide.sort_patterns (SORT_RO has a finder so
    # that it is planned, not sent by the fast path).
    ("sort",                          -2, SINGLE,         W, 1,  1, 1, "sort", SORTSTORE, NO),
    ("sort_ro",                       -2, SINGLE,         R, 1,  1, 1, "sort-ro", NO, NO),
    ("spop",                          -2, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("srandmember",                   -2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("srem",                          -3, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("sscan",                         -3, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("strlen",                         2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("substr",                         4, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("sunion",                        -2, SINGLE,         R, 1, -1, 1, NO, READ, NO),
    ("sunionstore",                   -3, SINGLE,         W, 1, -1, 1, NO, STORE, NO),
    ("ttl",                            2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("type",                           2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("xack",                          -4, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("xadd",                          -5, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("xautoclaim",                    -6, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("xclaim",                        -6, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("xdel",                          -3, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("xgroup|create",                 -5, SINGLE,         W, 2,  2, 1, NO, NO, NO),
    ("xgroup|createconsumer",          5, SINGLE,         W, 2,  2, 1, NO, NO, NO),
    ("xgroup|delconsumer",             5, SINGLE,         W, 2,  2, 1, NO, NO, NO),
    ("xgroup|destroy",                 4, SINGLE,         W, 2,  2, 1, NO, NO, NO),
    ("xgroup|setid",                  -5, SINGLE,         W, 2,  2, 1, NO, NO, NO),
    ("xinfo|consumers",                4, SINGLE,         R, 2,  2, 1, NO, NO, NO),
    ("xinfo|groups",                   3, SINGLE,         R, 2,  2, 1, NO, NO, NO),
    ("xinfo|stream",                  -3, SINGLE,         R, 2,  2, 1, NO, NO, NO),
    ("xlen",                           2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("xpending",                      -3, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("xrange",                        -4, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    # XREAD/XREADGROUP stay SINGLE; with BLOCK they block, which the router
    # detects with router.commands.spec.is_blocking() and treats like the PINNED ones.
    ("xread",                         -4, SINGLE,         R, 0,  0, 0, "xread", NO, BLOCK),
    ("xreadgroup",                    -7, SINGLE,         W, 0,  0, 0, "xreadgroup", NO, BLOCK),
    ("xrevrange",                     -4, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("xsetid",                        -3, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("xtrim",                         -4, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("zadd",                          -4, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("zcard",                          2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("zcount",                         4, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("zdiff",                         -3, SINGLE,         R, 0,  0, 0, "zset", READ, NO),
    ("zdiffstore",                    -4, SINGLE,         W, 1,  1, 1, "zset-store", STORE, NO),
    ("zincrby",                        4, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("zinter",                        -3, SINGLE,         R, 0,  0, 0, "zset", READ, NO),
    ("zintercard",                    -3, SINGLE,         R, 0,  0, 0, "zset", READ, NO),
    ("zinterstore",                   -4, SINGLE,         W, 1,  1, 1, "zset-store", STORE, NO),
    ("zlexcount",                      4, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("zmpop",                         -4, SINGLE,         W, 0,  0, 0, "mpop", NO, NO),
    ("zmscore",                       -3, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("zpopmax",                       -2, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("zpopmin",                       -2, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("zrandmember",                   -2, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("zrange",                        -4, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("zrangebylex",                   -4, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("zrangebyscore",                 -4, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("zrangestore",                   -5, SINGLE,         W, 1,  2, 1, NO, STORE, NO),
    ("zrank",                          3, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("zrem",                          -3, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("zremrangebylex",                 4, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("zremrangebyrank",                4, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("zremrangebyscore",               4, SINGLE,         W, 1,  1, 1, NO, NO, NO),
    ("zrevrange",                     -4, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("zrevrangebylex",                -4, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("zrevrangebyscore",              -4, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("zrevrank",                       3, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("zscan",                         -3, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("zscore",                         3, SINGLE,         R, 1,  1, 1, NO, NO, NO),
    ("zunion",                        -3, SINGLE,         R, 0,  0, 0, "zset", READ, NO),
    ("zunionstore",                   -4, SINGLE,         W, 1,  1, 1, "zset-store", STORE, NO),
    # EVAL*/FCALL*: numkeys at index 2; forwarded to the shard of their keys like
    # any SINGLE command (CROSSSLOT across shards). numkeys 0: shard 0, the
    # documented shard for keyless scripts (the planner's keyless SINGLE rule).
    ("eval",                          -3, SINGLE,         R, 0,  0, 0, "script", NO, NO),
    ("eval_ro",                       -3, SINGLE,         R, 0,  0, 0, "script", NO, NO),
    ("evalsha",                       -3, SINGLE,         R, 0,  0, 0, "script", NO, NO),
    ("evalsha_ro",                    -3, SINGLE,         R, 0,  0, 0, "script", NO, NO),
    ("fcall",                         -3, SINGLE,         R, 0,  0, 0, "function", NO, NO),
    ("fcall_ro",                      -3, SINGLE,         R, 0,  0, 0, "function", NO, NO),
    # ---- FANOUT_SUM: split by shard, the integer replies are summed.
    ("del",                           -2, FANOUT_SUM,     W, 1, -1, 1, NO, "sum", NO),
    ("exists",                        -2, FANOUT_SUM,     R, 1, -1, 1, NO, "sum", NO),
    ("touch",                         -2, FANOUT_SUM,     R, 1, -1, 1, NO, "sum", NO),
    ("unlink",                        -2, FANOUT_SUM,     W, 1, -1, 1, NO, "sum", NO),
    # ---- FANOUT_ORDERED: split by shard, replies put back in key order.
    ("mget",                          -2, FANOUT_ORDERED, R, 1, -1, 1, NO, "ordered", NO),
    # ---- FANOUT_OK: split by shard (key/value pairs, step 2), +OK if every part is.
    ("mset",                          -3, FANOUT_OK,      W, 1, -1, 2, NO, "all-ok", NO),
    # ---- ALL_MASTERS: keyless, sent to every master, replies merged.
    # MEMORY PURGE is here rather than ANY: it is harmless, and purging one
    # arbitrary shard would be a surprising answer to 'purge'.
    ("dbsize",                         1, ALL_MASTERS,    R, 0,  0, 0, NO, "sum", NO),
    ("flushall",                      -1, ALL_MASTERS,    W, 0,  0, 0, NO, "all-ok", NO),
    ("flushdb",                       -1, ALL_MASTERS,    W, 0,  0, 0, NO, "all-ok", NO),
    ("info",                          -1, ALL_MASTERS,    R, 0,  0, 0, NO, "info", NO),
    ("keys",                           2, ALL_MASTERS,    R, 0,  0, 0, NO, "concat", NO),
    ("memory|purge",                   2, ALL_MASTERS,    R, 0,  0, 0, NO, "all-ok", NO),
    ("randomkey",                      1, ALL_MASTERS,    R, 0,  0, 0, NO, "random", NO),
    ("scan",                          -2, ALL_MASTERS,    R, 0,  0, 0, NO, "scan", NO),
    # SCRIPT LOAD/EXISTS/FLUSH/KILL and FUNCTION LOAD/DELETE/FLUSH/RESTORE/LIST/KILL:
    # every master, so EVALSHA and FCALL work wherever the keys land. EXISTS is
    # an AND across masters; LOAD must give the same sha/library name everywhere;
    # KILL is OK if one master had something to kill; LIST is shard 0's answer
    # (every master holds the same libraries).
    ("function|delete",                3, ALL_MASTERS,    W, 0,  0, 0, NO, "all-ok", NO),
    ("function|flush",                -2, ALL_MASTERS,    W, 0,  0, 0, NO, "all-ok", NO),
    ("function|kill",                  2, ALL_MASTERS,    R, 0,  0, 0, NO, "any-ok", NO),
    ("function|list",                 -2, ALL_MASTERS,    R, 0,  0, 0, NO, "first", NO),
    ("function|load",                 -3, ALL_MASTERS,    W, 0,  0, 0, NO, "same", NO),
    ("function|restore",              -3, ALL_MASTERS,    W, 0,  0, 0, NO, "all-ok", NO),
    ("script|exists",                 -3, ALL_MASTERS,    R, 0,  0, 0, NO, "and", NO),
    ("script|flush",                  -2, ALL_MASTERS,    R, 0,  0, 0, NO, "all-ok", NO),
    ("script|kill",                    2, ALL_MASTERS,    R, 0,  0, 0, NO, "any-ok", NO),
    ("script|load",                    3, ALL_MASTERS,    R, 0,  0, 0, NO, "same", NO),
    # SLOWLOG, LATENCY LATEST/HISTORY/RESET/DOCTOR, MEMORY STATS/DOCTOR: the whole
    # cluster's, every master's reply merged (router.decide.diag; LEN and RESET
    # add up, RESET is OK only if every master reset).
    ("latency|doctor",                 2, ALL_MASTERS,    R, 0,  0, 0, NO, "doctor", NO),
    ("latency|history",                3, ALL_MASTERS,    R, 0,  0, 0, NO, "latency-history", NO),
    ("latency|latest",                 2, ALL_MASTERS,    R, 0,  0, 0, NO, "latency-latest", NO),
    ("latency|reset",                 -2, ALL_MASTERS,    R, 0,  0, 0, NO, "sum", NO),
    ("memory|doctor",                  2, ALL_MASTERS,    R, 0,  0, 0, NO, "doctor", NO),
    ("memory|stats",                   2, ALL_MASTERS,    R, 0,  0, 0, NO, "memory-stats", NO),
    ("slowlog|get",                   -2, ALL_MASTERS,    R, 0,  0, 0, NO, "slowlog-get", NO),
    ("slowlog|len",                    2, ALL_MASTERS,    R, 0,  0, 0, NO, "sum", NO),
    ("slowlog|reset",                  2, ALL_MASTERS,    R, 0,  0, 0, NO, "all-ok", NO),
    # ---- ANY: keyless and read-only, forwarded to one master. The diagnostics
    # here (LATENCY GRAPH/HISTOGRAM, MEMORY MALLOC-STATS, LASTSAVE, CONFIG GET)
    # describe that one shard only; operators who need every shard ask the shards.
    # HELP subcommands are ANY except under containers rejected as a whole.
    # ACL: only the pure helpers. The user database of the shards (LIST, USERS,
    # GETUSER, LOG, DRYRUN) is the router's backend credentials, not the
    # client's: see REJECTED.
    ("acl|cat",                       -2, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("acl|genpass",                   -2, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("acl|help",                       2, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("client|help",                    2, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("command|count",                  2, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("command|docs",                  -2, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("command|getkeys",               -4, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("command|getkeysandflags",       -4, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("command|help",                   2, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("command|info",                  -2, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("command|list",                  -2, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("config|get",                    -3, ANY,            R, 0,  0, 0, NO, "config-get", NO),
    ("config|help",                    2, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("function|help",                  2, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("lastsave",                       1, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("latency|graph",                  3, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("latency|help",                   2, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("latency|histogram",             -2, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("lolwut",                        -1, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("memory|help",                    2, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("memory|malloc-stats",            2, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("object|help",                    2, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("pubsub|help",                    2, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("script|help",                    2, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("slowlog|help",                   2, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("xgroup|help",                    2, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("xinfo|help",                     2, ANY,            R, 0,  0, 0, NO, NO, NO),
    # FUNCTION DUMP/STATS: shard 0 (the libraries are the same on every master;
    # STATS describes that shard's running function).
    ("function|dump",                  2, ANY,            R, 0,  0, 0, NO, NO, NO),
    ("function|stats",                 2, ANY,            R, 0,  0, 0, NO, NO, NO),
    # ---- LOCAL: answered by the router itself; backend connections are shared,
    # so per-connection state (name, id, RESP version, db, reply mode) lives in
    # the router.
    # AUTH is answered by the router, so only the router knows who the client is.
    ("acl|whoami",                     2, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("asking",                         1, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("auth",                          -2, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("client|getname",                 2, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("client|id",                      2, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("client|info",                    2, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("client|list",                   -2, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    # CLIENT NO-EVICT: the router has no client eviction, so the flag is
    # trivially honoured; a shard's flag would protect a shared connection.
    ("client|no-evict",                3, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    # CLIENT KILL/PAUSE/UNPAUSE/REPLY act on the router's own clients
    # (router.wire.client_ctl); CLIENT NO-TOUCH (7.2) is refused with the reason
    # (7.0 shards always touch keys): a second row beyond 7.0.
    ("client|kill",                   -3, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("client|no-touch",                3, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("client|pause",                  -3, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("client|reply",                   3, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("client|unpause",                 2, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("client|setname",                 3, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    # CLIENT SETINFO is Redis 7.2, unknown to a 7.0 server; clients (redis-py >= 5)
    # send it on connect and the router answers it: the one row beyond 7.0.
    ("client|setinfo",                 4, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("echo",                           2, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("hello",                         -1, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("ping",                          -1, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("quit",                          -1, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    # READONLY/READWRITE (cluster-mode client handshake): +OK from the router.
    ("readonly",                       1, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("readwrite",                      1, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("reset",                          1, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("select",                         2, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("time",                           1, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    # The router is one standalone master (router.decide.standalone): ROLE says
    # master without replicas; CLUSTER KEYSLOT is computed; the CLUSTER probes get
    # a standalone Redis's "cluster support disabled".
    ("cluster|countkeysinslot",        3, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("cluster|getkeysinslot",          4, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("cluster|help",                   2, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("cluster|info",                   2, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("cluster|keyslot",                3, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("cluster|links",                  2, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("cluster|myid",                   2, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("cluster|nodes",                  2, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("cluster|replicas",               3, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("cluster|shards",                 2, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("cluster|slaves",                 3, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("cluster|slots",                  2, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    ("role",                           1, LOCAL,          R, 0,  0, 0, NO, NO, NO),
    # ---- PINNED: stateful; the client connection handles them through its mode
    # (router.decide.modes) and dedicated backend connections (router.wire.pinned): blocking
    # commands, transactions and WATCH, pub/sub (channels route by their slot;
    # PUBLISH's channel is not a key for GETKEYS, so router.decide.plan finds it).
    # Client-side caching (CLIENT TRACKING/CACHING/GETREDIR/TRACKINGINFO) and SCRIPT
    # DEBUG (an interactive debugger session) answer a clear "not supported" error.
    ("blmove",                         6, PINNED,         W, 1,  2, 1, NO, NO, LAST),
    ("blmpop",                        -5, PINNED,         W, 0,  0, 0, "blocking-mpop", NO, FIRST),
    ("blpop",                         -3, PINNED,         W, 1, -2, 1, NO, NO, LAST),
    ("brpop",                         -3, PINNED,         W, 1, -2, 1, NO, NO, LAST),
    ("brpoplpush",                     4, PINNED,         W, 1,  2, 1, NO, NO, LAST),
    ("bzmpop",                        -5, PINNED,         W, 0,  0, 0, "blocking-mpop", NO, FIRST),
    ("bzpopmax",                      -3, PINNED,         W, 1, -2, 1, NO, NO, LAST),
    ("bzpopmin",                      -3, PINNED,         W, 1, -2, 1, NO, NO, LAST),
    # Client-side caching needs the invalidations of a dedicated connection.
    # CLIENT UNBLOCK releases a router client blocked on its pinned connections
    # (router.wire.client_ctl: CLIENT UNBLOCK <the shard's id> on a side connection).
    ("client|caching",                 3, PINNED,         R, 0,  0, 0, NO, NO, NO),
    ("client|getredir",                2, PINNED,         R, 0,  0, 0, NO, NO, NO),
    ("client|tracking",               -3, PINNED,         R, 0,  0, 0, NO, NO, NO),
    ("client|trackinginfo",            2, PINNED,         R, 0,  0, 0, NO, NO, NO),
    ("client|unblock",                -3, PINNED,         R, 0,  0, 0, NO, NO, NO),
    ("discard",                        1, PINNED,         R, 0,  0, 0, NO, NO, NO),
    ("exec",                           1, PINNED,         R, 0,  0, 0, NO, NO, NO),
    ("multi",                          1, PINNED,         R, 0,  0, 0, NO, NO, NO),
    ("psubscribe",                    -2, PINNED,         R, 0,  0, 0, NO, NO, NO),
    ("publish",                        3, PINNED,         R, 0,  0, 0, NO, NO, NO),
    ("pubsub|channels",               -2, PINNED,         R, 0,  0, 0, NO, "union", NO),
    ("pubsub|numpat",                  2, PINNED,         R, 0,  0, 0, NO, "max", NO),
    ("pubsub|numsub",                 -2, PINNED,         R, 0,  0, 0, NO, "numsub", NO),
    ("pubsub|shardchannels",          -2, PINNED,         R, 0,  0, 0, NO, "union", NO),
    ("pubsub|shardnumsub",            -2, PINNED,         R, 0,  0, 0, NO, "numsub", NO),
    ("punsubscribe",                  -1, PINNED,         R, 0,  0, 0, NO, NO, NO),
    ("script|debug",                   3, PINNED,         R, 0,  0, 0, NO, NO, NO),
    # SPUBLISH/SSUBSCRIBE/SUNSUBSCRIBE: Redis flags their channels not_key (GETKEYS
    # shows none) but hashes them to a slot like keys; we keep the legacy range
    # so the channel picks the shard.
    ("spublish",                       3, PINNED,         R, 1,  1, 1, NO, NO, NO),
    ("ssubscribe",                    -2, PINNED,         R, 1, -1, 1, NO, NO, NO),
    ("subscribe",                     -2, PINNED,         R, 0,  0, 0, NO, NO, NO),
    ("sunsubscribe",                  -1, PINNED,         R, 1, -1, 1, NO, NO, NO),
    ("unsubscribe",                   -1, PINNED,         R, 0,  0, 0, NO, NO, NO),
    ("unwatch",                        1, PINNED,         R, 0,  0, 0, NO, NO, NO),
    ("wait",                           3, PINNED,         R, 0,  0, 0, NO, "min", WAIT),
    ("watch",                         -2, PINNED,         R, 1, -1, 1, NO, NO, NO),
    # ---- REJECTED: never pass through the router: server administration,
    # persistence, replication and cluster topology belong to the operator and the
    # sentinel; the router exposes db 0 only (MOVE, SWAPDB).
    # ACL writes change a shard's users; ACL reads describe the router's own
    # backend user (ACL LIST/GETUSER show password hashes).
    ("acl|deluser",                   -3, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("acl|dryrun",                    -4, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("acl|getuser",                    3, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("acl|list",                       2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("acl|load",                       2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("acl|log",                       -2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("acl|save",                       2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("acl|setuser",                   -3, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("acl|users",                      2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("bgrewriteaof",                   1, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("bgsave",                        -1, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    # CLUSTER writes: the router is a standalone endpoint; the topology is the
    # sentinel's (CLUSTER KEYSLOT and the probes are LOCAL).
    ("cluster|addslots",              -3, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("cluster|addslotsrange",         -4, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("cluster|bumpepoch",              2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("cluster|count-failure-reports",  3, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("cluster|delslots",              -3, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("cluster|delslotsrange",         -4, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("cluster|failover",              -2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("cluster|flushslots",             2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("cluster|forget",                 3, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("cluster|meet",                  -4, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("cluster|replicate",              3, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("cluster|reset",                 -2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("cluster|saveconfig",             2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("cluster|set-config-epoch",       3, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("cluster|setslot",               -4, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("config|resetstat",               2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("config|rewrite",                 2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("config|set",                    -4, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("debug",                         -2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("failover",                      -1, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    # MIGRATE moves keys behind the router's back; its keys are still exact.
    ("migrate",                       -6, REJECTED,       W, 3,  3, 1, "migrate", NO, NO),
    ("module|help",                    2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("module|list",                    2, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("module|load",                   -3, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("module|loadex",                 -3, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("module|unload",                  3, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("monitor",                        1, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("move",                           3, REJECTED,       W, 1,  1, 1, NO, NO, NO),
    ("pfdebug",                        3, REJECTED,       W, 2,  2, 1, NO, NO, NO),
    ("pfselftest",                     1, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("psync",                         -3, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("replconf",                      -1, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("replicaof",                      3, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    # RESTORE-ASKING is cluster-internal (MIGRATE in a real cluster).
    ("restore-asking",                -4, REJECTED,       W, 1,  1, 1, NO, NO, NO),
    ("save",                           1, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("shutdown",                      -1, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("slaveof",                        3, REJECTED,       R, 0,  0, 0, NO, NO, NO),
    ("swapdb",                         3, REJECTED,       W, 0,  0, 0, NO, NO, NO),
    ("sync",                           1, REJECTED,       R, 0,  0, 0, NO, NO, NO),
)
# fmt: on
