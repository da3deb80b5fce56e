"""CONFIG SET through the router (router.decide.config_set): what is refused, the one
reply made from every node's, and the backend ACL rule that allows it only by choice."""

from __future__ import annotations

from router.commands.acl import command_rules, rule
from router.decide.config_set import NodeReply, check, pairs, refused, verdict
from slotwarden.resp.encode import OK


def test_secrets_files_network_tls_and_replication_are_refused() -> None:
    for name in (b"requirepass", b"MASTERAUTH", b"masteruser", b"dir", b"dbfilename",
                 b"logfile", b"aclfile", b"tls-key-file", b"tls-auth-clients", b"port",
                 b"bind", b"replicaof", b"replica-read-only", b"slave-read-only",
                 b"cluster-enabled", b"enable-debug-command", b"rename-command"):  # fmt: skip
        assert refused(name), name
    for name in (b"hz", b"maxmemory-policy", b"maxmemory", b"slowlog-log-slower-than",
                 b"notify-keyspace-events", b"save", b"appendonly"):  # fmt: skip
        assert not refused(name), name
    error = check([b"CONFIG", b"SET", b"hz", b"20", b"requirepass", b"x"])
    assert error is not None and error.startswith(
        b"-ERR CONFIG SET failed (possibly related to argument 'requirepass') - not allowed "
        b"through the router"
    )
    assert check([b"CONFIG", b"SET", b"hz", b"20"]) is None
    assert check([b"CONFIG", b"SET", b"hz", b"20", b"x"]) == (
        b"-ERR wrong number of arguments for 'config|set' command\r\n"
    )
    assert pairs([b"CONFIG", b"SET", b"HZ", b"20", b"Save", b""]) == [
        (b"hz", b"20"),
        (b"save", b""),
    ]


def test_verdict() -> None:
    a = NodeReply("127.0.0.1:1 (shard a master)", OK)
    b = NodeReply("127.0.0.1:2 (shard a replica)", OK)
    bad = b"-ERR CONFIG SET failed (possibly related to argument 'hz') - argument must be...\r\n"
    assert verdict("CONFIG SET", [a, b]) == OK
    assert verdict("CONFIG SET", [NodeReply("x", bad), NodeReply("y", bad)]) == bad
    down = NodeReply("127.0.0.1:2 (shard a replica)", b"-ERR unreachable (Connection refused)\r\n")
    assert verdict("CONFIG RESETSTAT", [a, down]) == (
        b"-ERR CONFIG RESETSTAT failed on 1 of 2 nodes: 127.0.0.1:2 (shard a replica): "
        b"unreachable (Connection refused); applied on the other 1\r\n"
    )


def test_backend_acl_allows_config_writes_only_by_choice() -> None:
    assert "+config|set" not in rule() and "+config|resetstat" not in rule()
    words = rule(config_set=True)
    assert "+config|set" in words and "+config|resetstat" in words
    assert "+config|rewrite" not in words
    assert command_rules(True)[: len(command_rules())] == command_rules()
