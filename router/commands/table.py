"""The data of the routing table: one row per Redis 7.0 command and subcommand.

Pure data, no imports from the rest of the package (``router.commands.spec`` turns
the rows into `CommandSpec` objects, checks them, and owns the lookup
functions). Arity, write flag and the legacy key range (first, last, step)
are exactly what ``COMMAND`` reports on redis-server 7.0.15; the shape is our
routing decision, and the comments beside the rows say why where it was a
judgement call. One row is not a 7.0 command: CLIENT SETINFO (7.2), which
clients send on connect and the router answers itself.
``tests/integration/test_command_table.py`` checks every row against a real
server (names, arity, write flag, key range, and the keys ``COMMAND GETKEYS``
finds).

Row: ``(name, arity, shape, write, first, last, step, keys)``

- ``name``: lower case; a subcommand is ``"container|sub"`` (``"object|encoding"``).
- ``arity``: N means exactly N arguments (name included), -N at least N.
- ``shape``: the value of a ``router.commands.spec.Shape`` member (constants below).
- ``first, last, step``: first key index (0: no fixed keys), last key index
  (-1 is the last argument, -2 the one before ...), step between keys.
- ``keys``: name of a key finder in ``router.commands.key_finders.KEY_FINDERS`` for movable keys
  (numkeys arguments, keywords such as STORE or STREAMS), else None.

Invariant: SINGLE and FANOUT_* rows have keys; ALL_MASTERS, ANY and LOCAL rows
have none (``commands`` refuses to import otherwise).
"""

from __future__ import annotations

Row = tuple[str, int, str, bool, int, int, int, str | None]

SINGLE = "single"
FANOUT_SUM = "fanout-sum"
FANOUT_ORDERED = "fanout-ordered"
FANOUT_OK = "fanout-ok"
ALL_MASTERS = "all-masters"
ANY = "any"
LOCAL = "local"
PINNED = "pinned"
REJECTED = "rejected"

W = True  # the command writes (COMMAND flags contain "write")
R = False

# Container commands. Their own row is used only when no subcommand follows,
# which arity -2 refuses for all but COMMAND (whose bare form lists commands).
# fmt: off
CONTAINERS: tuple[Row, ...] = (
    # (name, arity, shape, write, first, last, step, keys)
    ("command",                       -1, ANY,            R, 0,  0, 0, None),
    ("acl",                           -2, REJECTED,       R, 0,  0, 0, None),
    ("client",                        -2, REJECTED,       R, 0,  0, 0, None),
    ("cluster",                       -2, REJECTED,       R, 0,  0, 0, None),
    ("config",                        -2, REJECTED,       R, 0,  0, 0, None),
    ("function",                      -2, REJECTED,       R, 0,  0, 0, None),
    ("latency",                       -2, REJECTED,       R, 0,  0, 0, None),
    ("memory",                        -2, REJECTED,       R, 0,  0, 0, None),
    ("module",                        -2, REJECTED,       R, 0,  0, 0, None),
    ("object",                        -2, REJECTED,       R, 0,  0, 0, None),
    ("pubsub",                        -2, REJECTED,       R, 0,  0, 0, None),
    ("script",                        -2, REJECTED,       R, 0,  0, 0, None),
    ("slowlog",                       -2, REJECTED,       R, 0,  0, 0, None),
    ("xgroup",                        -2, REJECTED,       R, 0,  0, 0, None),
    ("xinfo",                         -2, REJECTED,       R, 0,  0, 0, None),
)

ROWS: tuple[Row, ...] = (
    # (name, arity, shape, write, first, last, step, keys)
    # ---- SINGLE: keyed; forwarded as the original bytes to the shard owning every
    # key (the planner answers CROSSSLOT if the keys span slots of several shards).
    # Multi-key commands here (RENAME, SMOVE, SUNIONSTORE, MSETNX, PFCOUNT ...) are
    # SINGLE, not fan-out: their semantics need every key on one shard.
    ("append",                         3, SINGLE,         W, 1,  1, 1, None),
    ("bitcount",                      -2, SINGLE,         R, 1,  1, 1, None),
    ("bitfield",                      -2, SINGLE,         W, 1,  1, 1, None),
    ("bitfield_ro",                   -2, SINGLE,         R, 1,  1, 1, None),
    ("bitop",                         -4, SINGLE,         W, 2, -1, 1, None),
    ("bitpos",                        -3, SINGLE,         R, 1,  1, 1, None),
    ("copy",                          -3, SINGLE,         W, 1,  2, 1, None),
    ("decr",                           2, SINGLE,         W, 1,  1, 1, None),
    ("decrby",                         3, SINGLE,         W, 1,  1, 1, None),
    ("dump",                           2, SINGLE,         R, 1,  1, 1, None),
    ("expire",                        -3, SINGLE,         W, 1,  1, 1, None),
    ("expireat",                      -3, SINGLE,         W, 1,  1, 1, None),
    ("expiretime",                     2, SINGLE,         R, 1,  1, 1, None),
    ("geoadd",                        -5, SINGLE,         W, 1,  1, 1, None),
    ("geodist",                       -4, SINGLE,         R, 1,  1, 1, None),
    ("geohash",                       -2, SINGLE,         R, 1,  1, 1, None),
    ("geopos",                        -2, SINGLE,         R, 1,  1, 1, None),
    # GEORADIUS*/SORT: a STORE/STOREDIST destination is a key too (movable).
    ("georadius",                     -6, SINGLE,         W, 1,  1, 1, "georadius"),
    ("georadius_ro",                  -6, SINGLE,         R, 1,  1, 1, None),
    ("georadiusbymember",             -5, SINGLE,         W, 1,  1, 1, "georadiusbymember"),
    ("georadiusbymember_ro",          -5, SINGLE,         R, 1,  1, 1, None),
    ("geosearch",                     -7, SINGLE,         R, 1,  1, 1, None),
    ("geosearchstore",                -8, SINGLE,         W, 1,  2, 1, None),
    ("get",                            2, SINGLE,         R, 1,  1, 1, None),
    ("getbit",                         3, SINGLE,         R, 1,  1, 1, None),
    ("getdel",                         2, SINGLE,         W, 1,  1, 1, None),
    ("getex",                         -2, SINGLE,         W, 1,  1, 1, None),
    ("getrange",                       4, SINGLE,         R, 1,  1, 1, None),
    ("getset",                         3, SINGLE,         W, 1,  1, 1, None),
    ("hdel",                          -3, SINGLE,         W, 1,  1, 1, None),
    ("hexists",                        3, SINGLE,         R, 1,  1, 1, None),
    ("hget",                           3, SINGLE,         R, 1,  1, 1, None),
    ("hgetall",                        2, SINGLE,         R, 1,  1, 1, None),
    ("hincrby",                        4, SINGLE,         W, 1,  1, 1, None),
    ("hincrbyfloat",                   4, SINGLE,         W, 1,  1, 1, None),
    ("hkeys",                          2, SINGLE,         R, 1,  1, 1, None),
    ("hlen",                           2, SINGLE,         R, 1,  1, 1, None),
    ("hmget",                         -3, SINGLE,         R, 1,  1, 1, None),
    ("hmset",                         -4, SINGLE,         W, 1,  1, 1, None),
    ("hrandfield",                    -2, SINGLE,         R, 1,  1, 1, None),
    ("hscan",                         -3, SINGLE,         R, 1,  1, 1, None),
    ("hset",                          -4, SINGLE,         W, 1,  1, 1, None),
    ("hsetnx",                         4, SINGLE,         W, 1,  1, 1, None),
    ("hstrlen",                        3, SINGLE,         R, 1,  1, 1, None),
    ("hvals",                          2, SINGLE,         R, 1,  1, 1, None),
    ("incr",                           2, SINGLE,         W, 1,  1, 1, None),
    ("incrby",                         3, SINGLE,         W, 1,  1, 1, None),
    ("incrbyfloat",                    3, SINGLE,         W, 1,  1, 1, None),
    ("lcs",                           -3, SINGLE,         R, 1,  2, 1, None),
    ("lindex",                         3, SINGLE,         R, 1,  1, 1, None),
    ("linsert",                        5, SINGLE,         W, 1,  1, 1, None),
    ("llen",                           2, SINGLE,         R, 1,  1, 1, None),
    ("lmove",                          5, SINGLE,         W, 1,  2, 1, None),
    # numkeys-prefixed key lists (LMPOP, ZMPOP, SINTERCARD, ZUNION ...): movable.
    ("lmpop",                         -4, SINGLE,         W, 0,  0, 0, "mpop"),
    ("lpop",                          -2, SINGLE,         W, 1,  1, 1, None),
    ("lpos",                          -3, SINGLE,         R, 1,  1, 1, None),
    ("lpush",                         -3, SINGLE,         W, 1,  1, 1, None),
    ("lpushx",                        -3, SINGLE,         W, 1,  1, 1, None),
    ("lrange",                         4, SINGLE,         R, 1,  1, 1, None),
    ("lrem",                           4, SINGLE,         W, 1,  1, 1, None),
    ("lset",                           4, SINGLE,         W, 1,  1, 1, None),
    ("ltrim",                          4, SINGLE,         W, 1,  1, 1, None),
    # OBJECT <sub> key, MEMORY USAGE key, XINFO/XGROUP <sub> key: key at index 2.
    ("memory|usage",                  -3, SINGLE,         R, 2,  2, 1, None),
    # MSETNX must stay atomic: SINGLE (CROSSSLOT across shards), unlike MSET.
    ("msetnx",                        -3, SINGLE,         W, 1, -1, 2, None),
    ("object|encoding",                3, SINGLE,         R, 2,  2, 1, None),
    ("object|freq",                    3, SINGLE,         R, 2,  2, 1, None),
    ("object|idletime",                3, SINGLE,         R, 2,  2, 1, None),
    ("object|refcount",                3, SINGLE,         R, 2,  2, 1, None),
    ("persist",                        2, SINGLE,         W, 1,  1, 1, None),
    ("pexpire",                       -3, SINGLE,         W, 1,  1, 1, None),
    ("pexpireat",                     -3, SINGLE,         W, 1,  1, 1, None),
    ("pexpiretime",                    2, SINGLE,         R, 1,  1, 1, None),
    ("pfadd",                         -2, SINGLE,         W, 1,  1, 1, None),
    ("pfcount",                       -2, SINGLE,         R, 1, -1, 1, None),
    ("pfmerge",                       -2, SINGLE,         W, 1, -1, 1, None),
    ("psetex",                         4, SINGLE,         W, 1,  1, 1, None),
    ("pttl",                           2, SINGLE,         R, 1,  1, 1, None),
    ("rename",                         3, SINGLE,         W, 1,  2, 1, None),
    ("renamenx",                       3, SINGLE,         W, 1,  2, 1, None),
    ("restore",                       -4, SINGLE,         W, 1,  1, 1, None),
    ("rpop",                          -2, SINGLE,         W, 1,  1, 1, None),
    ("rpoplpush",                      3, SINGLE,         W, 1,  2, 1, None),
    ("rpush",                         -3, SINGLE,         W, 1,  1, 1, None),
    ("rpushx",                        -3, SINGLE,         W, 1,  1, 1, None),
    ("sadd",                          -3, SINGLE,         W, 1,  1, 1, None),
    ("scard",                          2, SINGLE,         R, 1,  1, 1, None),
    ("sdiff",                         -2, SINGLE,         R, 1, -1, 1, None),
    ("sdiffstore",                    -3, SINGLE,         W, 1, -1, 1, None),
    ("set",                           -3, SINGLE,         W, 1,  1, 1, None),
    ("setbit",                         4, SINGLE,         W, 1,  1, 1, None),
    ("setex",                          4, SINGLE,         W, 1,  1, 1, None),
    ("setnx",                          3, SINGLE,         W, 1,  1, 1, None),
    ("setrange",                       4, SINGLE,         W, 1,  1, 1, None),
    ("sinter",                        -2, SINGLE,         R, 1, -1, 1, None),
    ("sintercard",                    -3, SINGLE,         R, 0,  0, 0, "sintercard"),
    ("sinterstore",                   -3, SINGLE,         W, 1, -1, 1, None),
    ("sismember",                      3, SINGLE,         R, 1,  1, 1, None),
    ("smembers",                       2, SINGLE,         R, 1,  1, 1, None),
    ("smismember",                    -3, SINGLE,         R, 1,  1, 1, None),
    ("smove",                          4, SINGLE,         W, 1,  2, 1, None),
    # SORT ... BY/GET patterns name other keys Redis cannot declare (GETKEYS
    # omits them too); only the sorted key and the STORE destination count.
    ("sort",                          -2, SINGLE,         W, 1,  1, 1, "sort"),
    ("sort_ro",                       -2, SINGLE,         R, 1,  1, 1, None),
    ("spop",                          -2, SINGLE,         W, 1,  1, 1, None),
    ("srandmember",                   -2, SINGLE,         R, 1,  1, 1, None),
    ("srem",                          -3, SINGLE,         W, 1,  1, 1, None),
    ("sscan",                         -3, SINGLE,         R, 1,  1, 1, None),
    ("strlen",                         2, SINGLE,         R, 1,  1, 1, None),
    ("substr",                         4, SINGLE,         R, 1,  1, 1, None),
    ("sunion",                        -2, SINGLE,         R, 1, -1, 1, None),
    ("sunionstore",                   -3, SINGLE,         W, 1, -1, 1, None),
    ("ttl",                            2, SINGLE,         R, 1,  1, 1, None),
    ("type",                           2, SINGLE,         R, 1,  1, 1, None),
    ("xack",                          -4, SINGLE,         W, 1,  1, 1, None),
    ("xadd",                          -5, SINGLE,         W, 1,  1, 1, None),
    ("xautoclaim",                    -6, SINGLE,         W, 1,  1, 1, None),
    ("xclaim",                        -6, SINGLE,         W, 1,  1, 1, None),
    ("xdel",                          -3, SINGLE,         W, 1,  1, 1, None),
    ("xgroup|create",                 -5, SINGLE,         W, 2,  2, 1, None),
    ("xgroup|createconsumer",          5, SINGLE,         W, 2,  2, 1, None),
    ("xgroup|delconsumer",             5, SINGLE,         W, 2,  2, 1, None),
    ("xgroup|destroy",                 4, SINGLE,         W, 2,  2, 1, None),
    ("xgroup|setid",                  -5, SINGLE,         W, 2,  2, 1, None),
    ("xinfo|consumers",                4, SINGLE,         R, 2,  2, 1, None),
    ("xinfo|groups",                   3, SINGLE,         R, 2,  2, 1, None),
    ("xinfo|stream",                  -3, SINGLE,         R, 2,  2, 1, None),
    ("xlen",                           2, SINGLE,         R, 1,  1, 1, None),
    ("xpending",                      -3, SINGLE,         R, 1,  1, 1, None),
    ("xrange",                        -4, SINGLE,         R, 1,  1, 1, None),
    # XREAD/XREADGROUP stay SINGLE; with BLOCK they block, which the router
    # detects with commands.is_blocking() and treats like the PINNED ones.
    ("xread",                         -4, SINGLE,         R, 0,  0, 0, "xread"),
    ("xreadgroup",                    -7, SINGLE,         W, 0,  0, 0, "xreadgroup"),
    ("xrevrange",                     -4, SINGLE,         R, 1,  1, 1, None),
    ("xsetid",                        -3, SINGLE,         W, 1,  1, 1, None),
    ("xtrim",                         -4, SINGLE,         W, 1,  1, 1, None),
    ("zadd",                          -4, SINGLE,         W, 1,  1, 1, None),
    ("zcard",                          2, SINGLE,         R, 1,  1, 1, None),
    ("zcount",                         4, SINGLE,         R, 1,  1, 1, None),
    ("zdiff",                         -3, SINGLE,         R, 0,  0, 0, "zset"),
    ("zdiffstore",                    -4, SINGLE,         W, 1,  1, 1, "zset-store"),
    ("zincrby",                        4, SINGLE,         W, 1,  1, 1, None),
    ("zinter",                        -3, SINGLE,         R, 0,  0, 0, "zset"),
    ("zintercard",                    -3, SINGLE,         R, 0,  0, 0, "zset"),
    ("zinterstore",                   -4, SINGLE,         W, 1,  1, 1, "zset-store"),
    ("zlexcount",                      4, SINGLE,         R, 1,  1, 1, None),
    ("zmpop",                         -4, SINGLE,         W, 0,  0, 0, "mpop"),
    ("zmscore",                       -3, SINGLE,         R, 1,  1, 1, None),
    ("zpopmax",                       -2, SINGLE,         W, 1,  1, 1, None),
    ("zpopmin",                       -2, SINGLE,         W, 1,  1, 1, None),
    ("zrandmember",                   -2, SINGLE,         R, 1,  1, 1, None),
    ("zrange",                        -4, SINGLE,         R, 1,  1, 1, None),
    ("zrangebylex",                   -4, SINGLE,         R, 1,  1, 1, None),
    ("zrangebyscore",                 -4, SINGLE,         R, 1,  1, 1, None),
    ("zrangestore",                   -5, SINGLE,         W, 1,  2, 1, None),
    ("zrank",                          3, SINGLE,         R, 1,  1, 1, None),
    ("zrem",                          -3, SINGLE,         W, 1,  1, 1, None),
    ("zremrangebylex",                 4, SINGLE,         W, 1,  1, 1, None),
    ("zremrangebyrank",                4, SINGLE,         W, 1,  1, 1, None),
    ("zremrangebyscore",               4, SINGLE,         W, 1,  1, 1, None),
    ("zrevrange",                     -4, SINGLE,         R, 1,  1, 1, None),
    ("zrevrangebylex",                -4, SINGLE,         R, 1,  1, 1, None),
    ("zrevrangebyscore",              -4, SINGLE,         R, 1,  1, 1, None),
    ("zrevrank",                       3, SINGLE,         R, 1,  1, 1, None),
    ("zscan",                         -3, SINGLE,         R, 1,  1, 1, None),
    ("zscore",                         3, SINGLE,         R, 1,  1, 1, None),
    ("zunion",                        -3, SINGLE,         R, 0,  0, 0, "zset"),
    ("zunionstore",                   -4, SINGLE,         W, 1,  1, 1, "zset-store"),
    # EVAL*/FCALL*: numkeys at index 2; forwarded to the shard of their keys like
    # any SINGLE command (CROSSSLOT across shards). numkeys 0: shard 0, the
    # documented shard for keyless scripts (the planner's keyless SINGLE rule).
    ("eval",                          -3, SINGLE,         R, 0,  0, 0, "script"),
    ("eval_ro",                       -3, SINGLE,         R, 0,  0, 0, "script"),
    ("evalsha",                       -3, SINGLE,         R, 0,  0, 0, "script"),
    ("evalsha_ro",                    -3, SINGLE,         R, 0,  0, 0, "script"),
    ("fcall",                         -3, SINGLE,         R, 0,  0, 0, "function"),
    ("fcall_ro",                      -3, SINGLE,         R, 0,  0, 0, "function"),
    # ---- FANOUT_SUM: split by shard, the integer replies are summed.
    ("del",                           -2, FANOUT_SUM,     W, 1, -1, 1, None),
    ("exists",                        -2, FANOUT_SUM,     R, 1, -1, 1, None),
    ("touch",                         -2, FANOUT_SUM,     R, 1, -1, 1, None),
    ("unlink",                        -2, FANOUT_SUM,     W, 1, -1, 1, None),
    # ---- FANOUT_ORDERED: split by shard, replies put back in key order.
    ("mget",                          -2, FANOUT_ORDERED, R, 1, -1, 1, None),
    # ---- FANOUT_OK: split by shard (key/value pairs, step 2), +OK if every part is.
    ("mset",                          -3, FANOUT_OK,      W, 1, -1, 2, None),
    # ---- ALL_MASTERS: keyless, sent to every master, replies merged.
    # MEMORY PURGE is here rather than ANY: it is harmless, and purging one
    # arbitrary shard would be a surprising answer to 'purge'.
    ("dbsize",                         1, ALL_MASTERS,    R, 0,  0, 0, None),
    ("flushall",                      -1, ALL_MASTERS,    W, 0,  0, 0, None),
    ("flushdb",                       -1, ALL_MASTERS,    W, 0,  0, 0, None),
    ("info",                          -1, ALL_MASTERS,    R, 0,  0, 0, None),
    ("keys",                           2, ALL_MASTERS,    R, 0,  0, 0, None),
    ("memory|purge",                   2, ALL_MASTERS,    R, 0,  0, 0, None),
    ("randomkey",                      1, ALL_MASTERS,    R, 0,  0, 0, None),
    ("scan",                          -2, ALL_MASTERS,    R, 0,  0, 0, None),
    # SCRIPT LOAD/EXISTS/FLUSH/KILL and FUNCTION LOAD/DELETE/FLUSH/RESTORE/LIST/KILL:
    # every master, so EVALSHA and FCALL work wherever the keys land. EXISTS is
    # an AND across masters; LOAD must give the same sha/library name everywhere;
    # KILL is OK if one master had something to kill; LIST is shard 0's answer
    # (every master holds the same libraries).
    ("function|delete",                3, ALL_MASTERS,    W, 0,  0, 0, None),
    ("function|flush",                -2, ALL_MASTERS,    W, 0,  0, 0, None),
    ("function|kill",                  2, ALL_MASTERS,    R, 0,  0, 0, None),
    ("function|list",                 -2, ALL_MASTERS,    R, 0,  0, 0, None),
    ("function|load",                 -3, ALL_MASTERS,    W, 0,  0, 0, None),
    ("function|restore",              -3, ALL_MASTERS,    W, 0,  0, 0, None),
    ("script|exists",                 -3, ALL_MASTERS,    R, 0,  0, 0, None),
    ("script|flush",                  -2, ALL_MASTERS,    R, 0,  0, 0, None),
    ("script|kill",                    2, ALL_MASTERS,    R, 0,  0, 0, None),
    ("script|load",                    3, ALL_MASTERS,    R, 0,  0, 0, None),
    # ---- ANY: keyless and read-only, forwarded to one master. The diagnostics
    # here (LATENCY, SLOWLOG, MEMORY STATS/DOCTOR, LASTSAVE, CONFIG GET) describe
    # that one shard only; operators who need every shard ask the shards.
    # HELP subcommands are ANY except under containers rejected as a whole.
    # ACL: only the pure helpers. The user database of the shards (LIST, USERS,
    # GETUSER, LOG, DRYRUN) is the router's backend credentials, not the
    # client's: see REJECTED.
    ("acl|cat",                       -2, ANY,            R, 0,  0, 0, None),
    ("acl|genpass",                   -2, ANY,            R, 0,  0, 0, None),
    ("acl|help",                       2, ANY,            R, 0,  0, 0, None),
    ("client|help",                    2, ANY,            R, 0,  0, 0, None),
    ("command|count",                  2, ANY,            R, 0,  0, 0, None),
    ("command|docs",                  -2, ANY,            R, 0,  0, 0, None),
    ("command|getkeys",               -4, ANY,            R, 0,  0, 0, None),
    ("command|getkeysandflags",       -4, ANY,            R, 0,  0, 0, None),
    ("command|help",                   2, ANY,            R, 0,  0, 0, None),
    ("command|info",                  -2, ANY,            R, 0,  0, 0, None),
    ("command|list",                  -2, ANY,            R, 0,  0, 0, None),
    ("config|get",                    -3, ANY,            R, 0,  0, 0, None),
    ("config|help",                    2, ANY,            R, 0,  0, 0, None),
    ("function|help",                  2, ANY,            R, 0,  0, 0, None),
    ("lastsave",                       1, ANY,            R, 0,  0, 0, None),
    ("latency|doctor",                 2, ANY,            R, 0,  0, 0, None),
    ("latency|graph",                  3, ANY,            R, 0,  0, 0, None),
    ("latency|help",                   2, ANY,            R, 0,  0, 0, None),
    ("latency|histogram",             -2, ANY,            R, 0,  0, 0, None),
    ("latency|history",                3, ANY,            R, 0,  0, 0, None),
    ("latency|latest",                 2, ANY,            R, 0,  0, 0, None),
    ("lolwut",                        -1, ANY,            R, 0,  0, 0, None),
    ("memory|doctor",                  2, ANY,            R, 0,  0, 0, None),
    ("memory|help",                    2, ANY,            R, 0,  0, 0, None),
    ("memory|malloc-stats",            2, ANY,            R, 0,  0, 0, None),
    ("memory|stats",                   2, ANY,            R, 0,  0, 0, None),
    ("object|help",                    2, ANY,            R, 0,  0, 0, None),
    ("pubsub|help",                    2, ANY,            R, 0,  0, 0, None),
    ("script|help",                    2, ANY,            R, 0,  0, 0, None),
    ("slowlog|get",                   -2, ANY,            R, 0,  0, 0, None),
    ("slowlog|help",                   2, ANY,            R, 0,  0, 0, None),
    ("slowlog|len",                    2, ANY,            R, 0,  0, 0, None),
    ("xgroup|help",                    2, ANY,            R, 0,  0, 0, None),
    ("xinfo|help",                     2, ANY,            R, 0,  0, 0, None),
    # FUNCTION DUMP/STATS: shard 0 (the libraries are the same on every master;
    # STATS describes that shard's running function).
    ("function|dump",                  2, ANY,            R, 0,  0, 0, None),
    ("function|stats",                 2, ANY,            R, 0,  0, 0, None),
    # ---- LOCAL: answered by the router itself; backend connections are shared,
    # so per-connection state (name, id, RESP version, db, reply mode) lives in
    # the router.
    # AUTH is answered by the router, so only the router knows who the client is.
    ("acl|whoami",                     2, LOCAL,          R, 0,  0, 0, None),
    ("asking",                         1, LOCAL,          R, 0,  0, 0, None),
    ("auth",                          -2, LOCAL,          R, 0,  0, 0, None),
    ("client|getname",                 2, LOCAL,          R, 0,  0, 0, None),
    ("client|id",                      2, LOCAL,          R, 0,  0, 0, None),
    ("client|info",                    2, LOCAL,          R, 0,  0, 0, None),
    ("client|list",                   -2, LOCAL,          R, 0,  0, 0, None),
    # CLIENT NO-EVICT: the router has no client eviction, so the flag is
    # trivially honoured; a shard's flag would protect a shared connection.
    ("client|no-evict",                3, LOCAL,          R, 0,  0, 0, None),
    ("client|reply",                   3, LOCAL,          R, 0,  0, 0, None),
    ("client|setname",                 3, LOCAL,          R, 0,  0, 0, None),
    # CLIENT SETINFO is Redis 7.2, unknown to a 7.0 server; clients (redis-py >= 5)
    # send it on connect and the router answers it: the one row beyond 7.0.
    ("client|setinfo",                 4, LOCAL,          R, 0,  0, 0, None),
    ("echo",                           2, LOCAL,          R, 0,  0, 0, None),
    ("hello",                         -1, LOCAL,          R, 0,  0, 0, None),
    ("ping",                          -1, LOCAL,          R, 0,  0, 0, None),
    ("quit",                          -1, LOCAL,          R, 0,  0, 0, None),
    # READONLY/READWRITE (cluster-mode client handshake): +OK from the router.
    ("readonly",                       1, LOCAL,          R, 0,  0, 0, None),
    ("readwrite",                      1, LOCAL,          R, 0,  0, 0, None),
    ("reset",                          1, LOCAL,          R, 0,  0, 0, None),
    ("select",                         2, LOCAL,          R, 0,  0, 0, None),
    ("time",                           1, LOCAL,          R, 0,  0, 0, None),
    # ---- PINNED: stateful; the client connection handles them through its mode
    # (router.decide.modes) and dedicated backend connections (router.wire.pinned): blocking
    # commands, transactions and WATCH, pub/sub (channels route by their slot;
    # PUBLISH's channel is not a key for GETKEYS, so router.decide.plan finds it).
    # Client-side caching (CLIENT TRACKING/CACHING/GETREDIR/TRACKINGINFO), CLIENT
    # UNBLOCK (backend client ids are the router's) and SCRIPT DEBUG (an
    # interactive debugger session) answer a clear "not supported" error.
    ("blmove",                         6, PINNED,         W, 1,  2, 1, None),
    ("blmpop",                        -5, PINNED,         W, 0,  0, 0, "blocking-mpop"),
    ("blpop",                         -3, PINNED,         W, 1, -2, 1, None),
    ("brpop",                         -3, PINNED,         W, 1, -2, 1, None),
    ("brpoplpush",                     4, PINNED,         W, 1,  2, 1, None),
    ("bzmpop",                        -5, PINNED,         W, 0,  0, 0, "blocking-mpop"),
    ("bzpopmax",                      -3, PINNED,         W, 1, -2, 1, None),
    ("bzpopmin",                      -3, PINNED,         W, 1, -2, 1, None),
    # Client-side caching needs the invalidations of a dedicated connection;
    # CLIENT UNBLOCK needs router-to-backend client id translation.
    ("client|caching",                 3, PINNED,         R, 0,  0, 0, None),
    ("client|getredir",                2, PINNED,         R, 0,  0, 0, None),
    ("client|tracking",               -3, PINNED,         R, 0,  0, 0, None),
    ("client|trackinginfo",            2, PINNED,         R, 0,  0, 0, None),
    ("client|unblock",                -3, PINNED,         R, 0,  0, 0, None),
    ("discard",                        1, PINNED,         R, 0,  0, 0, None),
    ("exec",                           1, PINNED,         R, 0,  0, 0, None),
    ("multi",                          1, PINNED,         R, 0,  0, 0, None),
    ("psubscribe",                    -2, PINNED,         R, 0,  0, 0, None),
    ("publish",                        3, PINNED,         R, 0,  0, 0, None),
    ("pubsub|channels",               -2, PINNED,         R, 0,  0, 0, None),
    ("pubsub|numpat",                  2, PINNED,         R, 0,  0, 0, None),
    ("pubsub|numsub",                 -2, PINNED,         R, 0,  0, 0, None),
    ("pubsub|shardchannels",          -2, PINNED,         R, 0,  0, 0, None),
    ("pubsub|shardnumsub",            -2, PINNED,         R, 0,  0, 0, None),
    ("punsubscribe",                  -1, PINNED,         R, 0,  0, 0, None),
    ("script|debug",                   3, PINNED,         R, 0,  0, 0, None),
    # SPUBLISH/SSUBSCRIBE/SUNSUBSCRIBE: Redis flags their channels not_key (GETKEYS
    # shows none) but hashes them to a slot like keys; we keep the legacy range
    # so the channel picks the shard.
    ("spublish",                       3, PINNED,         R, 1,  1, 1, None),
    ("ssubscribe",                    -2, PINNED,         R, 1, -1, 1, None),
    ("subscribe",                     -2, PINNED,         R, 0,  0, 0, None),
    ("sunsubscribe",                  -1, PINNED,         R, 1, -1, 1, None),
    ("unsubscribe",                   -1, PINNED,         R, 0,  0, 0, None),
    ("unwatch",                        1, PINNED,         R, 0,  0, 0, None),
    ("wait",                           3, PINNED,         R, 0,  0, 0, None),
    ("watch",                         -2, PINNED,         R, 1, -1, 1, None),
    # ---- REJECTED: never pass through the router: server administration,
    # persistence, replication and cluster topology belong to the operator and the
    # sentinel; the router exposes db 0 only (MOVE, SWAPDB).
    # ACL writes change a shard's users; ACL reads describe the router's own
    # backend user (ACL LIST/GETUSER show password hashes).
    ("acl|deluser",                   -3, REJECTED,       R, 0,  0, 0, None),
    ("acl|dryrun",                    -4, REJECTED,       R, 0,  0, 0, None),
    ("acl|getuser",                    3, REJECTED,       R, 0,  0, 0, None),
    ("acl|list",                       2, REJECTED,       R, 0,  0, 0, None),
    ("acl|load",                       2, REJECTED,       R, 0,  0, 0, None),
    ("acl|log",                       -2, REJECTED,       R, 0,  0, 0, None),
    ("acl|save",                       2, REJECTED,       R, 0,  0, 0, None),
    ("acl|setuser",                   -3, REJECTED,       R, 0,  0, 0, None),
    ("acl|users",                      2, REJECTED,       R, 0,  0, 0, None),
    ("bgrewriteaof",                   1, REJECTED,       R, 0,  0, 0, None),
    ("bgsave",                        -1, REJECTED,       R, 0,  0, 0, None),
    # CLIENT KILL/PAUSE/UNPAUSE act on a shard's connections, i.e. on the router's
    # shared pool: KILL would cut other clients' pipelines and PAUSE would stall
    # one shard for every client (the sentinel pauses shards itself).
    ("client|kill",                   -3, REJECTED,       R, 0,  0, 0, None),
    ("client|pause",                  -3, REJECTED,       R, 0,  0, 0, None),
    ("client|unpause",                 2, REJECTED,       R, 0,  0, 0, None),
    # CLUSTER *: the router is a standalone endpoint; the topology is the sentinel's.
    ("cluster|addslots",              -3, REJECTED,       R, 0,  0, 0, None),
    ("cluster|addslotsrange",         -4, REJECTED,       R, 0,  0, 0, None),
    ("cluster|bumpepoch",              2, REJECTED,       R, 0,  0, 0, None),
    ("cluster|count-failure-reports",  3, REJECTED,       R, 0,  0, 0, None),
    ("cluster|countkeysinslot",        3, REJECTED,       R, 0,  0, 0, None),
    ("cluster|delslots",              -3, REJECTED,       R, 0,  0, 0, None),
    ("cluster|delslotsrange",         -4, REJECTED,       R, 0,  0, 0, None),
    ("cluster|failover",              -2, REJECTED,       R, 0,  0, 0, None),
    ("cluster|flushslots",             2, REJECTED,       R, 0,  0, 0, None),
    ("cluster|forget",                 3, REJECTED,       R, 0,  0, 0, None),
    ("cluster|getkeysinslot",          4, REJECTED,       R, 0,  0, 0, None),
    ("cluster|help",                   2, REJECTED,       R, 0,  0, 0, None),
    ("cluster|info",                   2, REJECTED,       R, 0,  0, 0, None),
    ("cluster|keyslot",                3, REJECTED,       R, 0,  0, 0, None),
    ("cluster|links",                  2, REJECTED,       R, 0,  0, 0, None),
    ("cluster|meet",                  -4, REJECTED,       R, 0,  0, 0, None),
    ("cluster|myid",                   2, REJECTED,       R, 0,  0, 0, None),
    ("cluster|nodes",                  2, REJECTED,       R, 0,  0, 0, None),
    ("cluster|replicas",               3, REJECTED,       R, 0,  0, 0, None),
    ("cluster|replicate",              3, REJECTED,       R, 0,  0, 0, None),
    ("cluster|reset",                 -2, REJECTED,       R, 0,  0, 0, None),
    ("cluster|saveconfig",             2, REJECTED,       R, 0,  0, 0, None),
    ("cluster|set-config-epoch",       3, REJECTED,       R, 0,  0, 0, None),
    ("cluster|setslot",               -4, REJECTED,       R, 0,  0, 0, None),
    ("cluster|shards",                 2, REJECTED,       R, 0,  0, 0, None),
    ("cluster|slaves",                 3, REJECTED,       R, 0,  0, 0, None),
    ("cluster|slots",                  2, REJECTED,       R, 0,  0, 0, None),
    ("config|resetstat",               2, REJECTED,       R, 0,  0, 0, None),
    ("config|rewrite",                 2, REJECTED,       R, 0,  0, 0, None),
    ("config|set",                    -4, REJECTED,       R, 0,  0, 0, None),
    ("debug",                         -2, REJECTED,       R, 0,  0, 0, None),
    ("failover",                      -1, REJECTED,       R, 0,  0, 0, None),
    ("latency|reset",                 -2, REJECTED,       R, 0,  0, 0, None),
    # MIGRATE moves keys behind the router's back; its keys are still exact.
    ("migrate",                       -6, REJECTED,       W, 3,  3, 1, "migrate"),
    ("module|help",                    2, REJECTED,       R, 0,  0, 0, None),
    ("module|list",                    2, REJECTED,       R, 0,  0, 0, None),
    ("module|load",                   -3, REJECTED,       R, 0,  0, 0, None),
    ("module|loadex",                 -3, REJECTED,       R, 0,  0, 0, None),
    ("module|unload",                  3, REJECTED,       R, 0,  0, 0, None),
    ("monitor",                        1, REJECTED,       R, 0,  0, 0, None),
    ("move",                           3, REJECTED,       W, 1,  1, 1, None),
    ("pfdebug",                        3, REJECTED,       W, 2,  2, 1, None),
    ("pfselftest",                     1, REJECTED,       R, 0,  0, 0, None),
    ("psync",                         -3, REJECTED,       R, 0,  0, 0, None),
    ("replconf",                      -1, REJECTED,       R, 0,  0, 0, None),
    ("replicaof",                      3, REJECTED,       R, 0,  0, 0, None),
    # RESTORE-ASKING is cluster-internal (MIGRATE in a real cluster).
    ("restore-asking",                -4, REJECTED,       W, 1,  1, 1, None),
    # ROLE of one arbitrary shard would mislead (and leaks replica addresses).
    ("role",                           1, REJECTED,       R, 0,  0, 0, None),
    ("save",                           1, REJECTED,       R, 0,  0, 0, None),
    ("shutdown",                      -1, REJECTED,       R, 0,  0, 0, None),
    ("slaveof",                        3, REJECTED,       R, 0,  0, 0, None),
    ("slowlog|reset",                  2, REJECTED,       R, 0,  0, 0, None),
    ("swapdb",                         3, REJECTED,       W, 0,  0, 0, None),
    ("sync",                           1, REJECTED,       R, 0,  0, 0, None),
)
# fmt: on
