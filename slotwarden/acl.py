"""Backend ACL users: the lines that create the router's and the sentinels' users on a node.

Owns how a user's rule is written (``user NAME reset on #<sha256> RULES`` for
an aclfile or redis.conf, ``ACL SETUSER NAME ...`` for redis-cli) and which
users a cluster.yaml asks for: the router's (``backend:``, rule from
`router.commands.acl`), the sentinels' (``sentinel.backend``, rule from
`sentinel.act.acl`), and, for `slotwarden up`, the replication user replicas
authenticate as (`REPLICATION_RULE`). ``slotwarden acl FILE`` prints them;
`setup_for_up` makes the node config lines and passwords of `slotwarden up`
(generated ones written to files of mode 0600).

Invariant: a password is never written out in clear: a rule carries its
SHA-256 (``#<hex>``), which Redis accepts in place of the password and which
reveals nothing usable about a random one; a password that cannot be read
gives the placeholder ``#<sha256-of-...>``, which Redis refuses, never a
guessable password.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from router.commands import acl as router_acl
from sentinel.act import acl as sentinel_acl
from slotwarden.cluster.config import BackendAuthConfig, ClusterConfig
from slotwarden.cluster.errors import SecretError
from slotwarden.cluster.secrets import read_secret_ref

# What a replica needs on its master (masteruser): the handshake and the stream.
REPLICATION_RULE = ("-@all", "+psync", "+replconf", "+ping")
REPLICATION_USER = "slotwarden-replication"


@dataclass(frozen=True)
class AclUser:
    name: str
    rules: tuple[str, ...]  # keys, channels, commands; no password, no on/off
    password_hash: str | None  # "#<sha256 hex>", or None if unknown
    what: str  # who uses it, for the operator

    def rule_words(self) -> list[str]:
        password = self.password_hash or f"#<sha256-of-{self.name}-password>"
        return ["reset", "on", password, *self.rules]

    def aclfile_line(self) -> str:
        """The line for an aclfile or redis.conf."""
        return " ".join(["user", self.name, *self.rule_words()])

    def setuser_line(self) -> str:
        """The ``ACL SETUSER`` command, as redis-cli takes it."""
        return " ".join(["ACL", "SETUSER", self.name, *self.rule_words()])


def password_hash(password: bytes) -> str:
    """Redis's ``#<hash>`` form of a password: SHA-256, lower-case hex."""
    return "#" + hashlib.sha256(password).hexdigest()


def router_rule(config: ClusterConfig | None = None) -> tuple[str, ...]:
    """The router user's rule (CONFIG SET/RESETSTAT allowed with router.allow_config_set;
    MIGRATE to the hosts of ``config``'s nodes, for online resharding)."""
    if config is None:
        return tuple(router_acl.rule())
    hosts = [a.host for s in config.shards for a in (s.master, *s.replicas)]
    return tuple(router_acl.rule(config.router.allow_config_set, hosts))


def sentinel_rule() -> tuple[str, ...]:
    return tuple(sentinel_acl.rule())


def known_only(rules: tuple[str, ...], known: Collection[str] | None) -> tuple[str, ...]:
    """``rules`` less the command rules (``+cmd``, ``-cmd``, ``+cmd|arg``) naming a
    command the server does not have (``known``: its command names, lower case; None:
    keep all). The rules are written for Redis 7.0's commands, and a server refuses to
    start on a rule for a command it does not know (Redis 6.2: ``+blmpop``); a command
    it does not have cannot be called through it either, so dropping the rule changes
    nothing the user may do."""
    if known is None:
        return rules
    return tuple(
        word
        for word in rules
        if word[:1] not in "+-" or word[1:2] == "@" or word[1:].split("|", 1)[0] in known
    )


def _hash_of(section: BackendAuthConfig, environ: Mapping[str, str]) -> str | None:
    try:
        return password_hash(read_secret_ref(section.password, "backend", environ))
    except SecretError:
        return None


def users_of(
    config: ClusterConfig, environ: Mapping[str, str] = os.environ
) -> tuple[list[AclUser], list[str]]:
    """The ACL users ``config`` names (router's, then sentinels'; a shard with its own
    ``backend:`` adds its router user), and notes for the operator about what is missing."""
    users: list[AclUser] = []
    notes: list[str] = []
    sections: list[tuple[str, BackendAuthConfig]] = []
    if config.backend is not None:
        sections.append(("backend", config.backend))
    for shard in config.shards:
        if shard.backend is not None:
            sections.append((f"shards[{shard.name}].backend", shard.backend))
    if not sections:
        notes.append("backend: is not set: the router authenticates as nobody (no ACL user)")
    seen: set[str] = set()
    for where, section in sections:
        if not section.username:
            notes.append(
                f"{where}: no username: the router authenticates as the default user; "
                "give it a username to restrict it with the rule below"
            )
        name = section.username or "default"
        if name in seen:
            continue
        seen.add(name)
        hashed = _hash_of(section, environ)
        if hashed is None:
            notes.append(f"{where}: the password ({section.password.describe()}) is not readable")
        users.append(AclUser(name, router_rule(config), hashed, f"the router ({where})"))
    own = config.sentinel.backend if config.sentinel is not None else None
    if own is None:
        if config.sentinel is not None:
            notes.append(
                "sentinel.backend is not set: the sentinels use the router's user, "
                "whose rule denies ROLE, REPLICAOF and CLIENT PAUSE; set sentinel.backend"
            )
    else:
        hashed = _hash_of(own, environ)
        if hashed is None:
            notes.append(
                f"sentinel.backend: the password ({own.password.describe()}) is not readable"
            )
        users.append(AclUser(own.username or "default", sentinel_rule(), hashed, "the sentinels"))
    return users, notes


def replication_user(password: bytes) -> AclUser:
    return AclUser(
        REPLICATION_USER, REPLICATION_RULE, password_hash(password), "replicas (masteruser)"
    )


# ---------------------------------------------------------------------------
# `slotwarden up`: the users of the nodes it starts.


class AclSetupError(Exception):
    """`up` cannot set up ACL users for this config; ``str(exc)`` says why."""


@dataclass
class UpAcl:
    node_conf: list[str]  # lines of every node's config file (users, masteruser/masterauth)
    admin_password: str  # the default user's (full rights), for up's own checks
    router_env: dict[str, str]  # generated passwords, by variable: the router's process only
    sentinel_env: dict[str, str]  # ... the sentinels' only
    users: list[str]  # the users' names, for the log


def setup_problem(config: ClusterConfig) -> str | None:
    """Why `up` cannot create ACL users for ``config``, or None."""
    backend = config.backend
    own = config.sentinel.backend if config.sentinel is not None else None
    if backend is None or not backend.username:
        return "backend.username must be set: up gives the router an ACL user of its own"
    if config.sentinel is not None and (own is None or not own.username):
        return (
            "sentinel.backend.username must be set: the router's ACL user may not run "
            "what the sentinels send (ROLE, REPLICAOF ...)"
        )
    if any(shard.backend is not None for shard in config.shards):
        return "shards[].backend is not supported by up (one router user for every node)"
    return None


def setup_for_up(
    config: ClusterConfig,
    secrets_dir: Path,
    environ: Mapping[str, str] = os.environ,
    known: Collection[str] | None = None,
) -> UpAcl | None:
    """The users and passwords `up` gives every node of ``config``: None when it names
    no ``backend:`` (nodes without ACL users, as before); `AclSetupError` when it
    cannot. Creates ``secrets_dir`` (0700) with the generated passwords (0600).
    ``known``: the commands the nodes' redis-server has (`known_only`)."""
    backend = config.backend
    own = config.sentinel.backend if config.sentinel is not None else None
    if backend is None and own is None:
        return None
    problem = setup_problem(config)
    if problem:
        raise AclSetupError(problem)
    assert backend is not None and backend.username
    secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    router_env: dict[str, str] = {}
    sentinel_env: dict[str, str] = {}
    router_pw = _password_for(backend, secrets_dir, router_env, environ)
    users = [
        AclUser(
            backend.username,
            known_only(router_rule(config), known),
            password_hash(router_pw),
            "the router",
        )
    ]
    if own is not None:
        assert own.username
        sentinel_pw = _password_for(own, secrets_dir, sentinel_env, environ)
        users.append(
            AclUser(
                own.username,
                known_only(sentinel_rule(), known),
                password_hash(sentinel_pw),
                "the sentinels",
            )
        )
    replication_pw = secrets.token_urlsafe(32)
    write_private(secrets_dir / f"{REPLICATION_USER}.password", replication_pw + "\n")
    users.append(replication_user(replication_pw.encode()))
    admin_pw = secrets.token_urlsafe(32)
    write_private(secrets_dir / "default.password", admin_pw + "\n")
    conf = node_conf(admin_pw, users, replication_pw)
    return UpAcl(conf, admin_pw, router_env, sentinel_env, [u.name for u in users])


def node_conf(admin_password: str, users: list[AclUser], replication_password: str) -> list[str]:
    """A node's config lines: the default user (the admin, full rights) with a password,
    ``users``, and the replication user's credentials for when the node is a replica."""
    return [
        f"user default on {password_hash(admin_password.encode())} ~* &* +@all",
        *(user.aclfile_line() for user in users),
        f"masteruser {REPLICATION_USER}",
        f"masterauth {replication_password}",
    ]


def as_server_args(conf: list[str]) -> list[str]:
    """``conf`` lines as redis-server command-line options (``--user NAME ...``), for
    tests: the command line is visible to every local user, a file of mode 0600 is not."""
    args: list[str] = []
    for line in conf:
        directive, *words = line.split(" ")
        args += [f"--{directive}", *words]
    return args


def _password_for(
    section: BackendAuthConfig,
    secrets_dir: Path,
    child_env: dict[str, str],
    environ: Mapping[str, str],
) -> bytes:
    """The password ``section`` names; one generated into ``child_env`` (and a file in
    ``secrets_dir``) when it names an environment variable that is not set."""
    try:
        return read_secret_ref(section.password, "backend", environ)
    except SecretError as exc:
        if section.password.env is None:
            raise AclSetupError(str(exc)) from None
    password = secrets.token_urlsafe(32)
    child_env[section.password.env] = password
    write_private(secrets_dir / f"{section.username}.password", password + "\n")
    return password.encode()


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (mode 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
