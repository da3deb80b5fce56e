"""The sentinels' backend ACL rules: exactly the commands `probe`, `actuator` and
`redisconf` send.

Pure data, no I/O. The sentinels authenticate to the nodes as a user of their
own (cluster.yaml ``sentinel.backend``), separate from the router's, with
these rights and no others: no keys, no channels, no scripts. Each command
is listed with the call that sends it; ``tests/integration/sentinel/
test_sentinel_acl.py`` runs every one of those calls against a redis-server
whose only non-admin user has this rule, so the list cannot fall behind.
"""

from __future__ import annotations

# (ACL command name, who sends it)
COMMANDS: tuple[tuple[str, str], ...] = (
    ("ping", "probe.Prober.probe_once"),
    # a first-argument grant (Redis 7.0 ``+info|replication``): INFO replication only
    ("info|replication", "probe.Prober.probe_once, actuator.caught_up, slotwarden status"),
    ("role", "actuator.check_master"),
    ("replicaof", "actuator.promote (REPLICAOF NO ONE), actuator.repoint"),
    ("client|pause", "actuator.pause_writes (planned switchover)"),
    ("client|unpause", "actuator.unpause"),
    ("client|setname", "probe.connect: every connection names itself"),
    # cluster.yaml redis: blocks (no key rights either; Redis 7 refuses CONFIG SET of
    # its protected configs: dir, dbfilename ...)
    ("config|get", "redisconf.read"),
    ("config|set", "redisconf.RedisConfigApplier.set"),
)


def rule() -> list[str]:
    """The command part of the sentinel user's ACL rule (no keys, no channels)."""
    return ["-@all", *(f"+{name}" for name, _ in COMMANDS)]
