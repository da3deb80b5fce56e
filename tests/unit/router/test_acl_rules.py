"""router.commands.acl: the router user's ACL rule follows the command table and the planner.

Pure: no server (tests/integration/router/test_router_acl.py runs the rule on
one). The PINNED rows are checked against what the planner and the client
modes actually do with them, so the rule cannot grant a command the router
never sends, nor deny one it does.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from router.commands.acl import (
    FIRST_ARG_ONLY,
    INFO_SENT,
    SCRIPT_SAFE_LOCAL,
    allowed_names,
    pinned_reaches_shard,
    rule,
    shard_may_run,
)
from router.commands.spec import TABLE, CommandSpec
from router.commands.table import Shape
from router.decide import modes
from router.decide import plan as planner
from router.decide.info import RouterFacts
from router.decide.plan import Fanout
from router.errors import is_not_supported
from slotwarden.cluster.topology import Address, Shard, SlotMap
from slotwarden.resp.encode import encode_command

MAP = SlotMap.build(1, [Shard("a", Address("127.0.0.1", 7000))], [[(0, 16383)]])
FORWARDED = {Shape.SINGLE, Shape.FANOUT_SUM, Shape.FANOUT_ORDERED, Shape.FANOUT_OK,
             Shape.ALL_MASTERS, Shape.ANY}  # fmt: skip


def rows() -> list[CommandSpec]:
    out = []
    for spec in TABLE.values():
        out.extend(spec.subcommands.values() if spec.subcommands else [spec])
    return out


def args_for(spec: CommandSpec) -> list[bytes]:
    args = [part.encode() for part in spec.name.split("|")]
    return args + [b"1"] * (abs(spec.arity) - len(args))


def test_forwarded_rows_are_allowed_and_rejected_ones_denied() -> None:
    for spec in rows():
        if spec.shape in FORWARDED:
            assert shard_may_run(spec), spec.name
        if spec.shape is Shape.REJECTED:
            assert not shard_may_run(spec), spec.name


def test_local_rows_are_denied_but_for_what_scripts_use() -> None:
    local = [spec for spec in rows() if spec.shape is Shape.LOCAL]
    assert SCRIPT_SAFE_LOCAL <= {spec.name for spec in local}
    # CLIENT ID: the router asks it on its own pinned connections (ROUTER_SENT)
    assert {spec.name for spec in local if shard_may_run(spec)} == SCRIPT_SAFE_LOCAL | {"client|id"}


def test_pinned_rows_match_what_the_router_does_with_them() -> None:
    """Denied PINNED rows are exactly those the planner answers 'not supported'; the
    allowed ones are served through the client's mode (stateful, blocking) or planned
    to shards (PUBLISH, SPUBLISH, PUBSUB ...)."""
    for spec in rows():
        if spec.shape is not Shape.PINNED:
            continue
        stateful = modes.classify(spec.name, spec.blocks is not None) is not modes.ModeInput.COMMAND
        planned = None if stateful else planner.plan_pinned(spec, args_for(spec), MAP)
        if pinned_reaches_shard(spec):
            assert stateful or not (isinstance(planned, bytes) and is_not_supported(planned)), (
                spec.name
            )
        else:
            assert not stateful, spec.name
            assert isinstance(planned, bytes) and is_not_supported(planned), spec.name


def test_info_is_granted_only_for_the_sections_the_planner_sends() -> None:
    info = TABLE[b"INFO"]
    plan = planner.plan(info, [b"INFO", b"server"], MAP, FACTS)
    assert isinstance(plan, Fanout)
    assert {piece for _, piece in plan.parts} == {encode_command([b"INFO", *INFO_SENT])}
    for section in INFO_SENT:
        assert f"+info|{section.decode()}" in rule()
    assert "+info" not in rule()
    assert "+info|clients" not in rule() and "+info|replication" not in rule()


FACTS = RouterFacts(server={}, clients={}, stats={}, replication={}, cpu={})


def test_rule_shape() -> None:
    words = rule()
    assert words[:3] == ["~*", "&*", "-@all"]
    assert len(words) == len(set(words))
    names = allowed_names()
    for refused in ("migrate", "swapdb", "move", "pfselftest", "pfdebug", "restore-asking",
                    "select", "info", "debug", "config|set", "client|kill",
                    "client|setinfo", "role", "replicaof", "shutdown", "acl|setuser",
                    "cluster|nodes", "cluster|keyslot"):  # fmt: skip
        assert refused not in names, refused
        assert f"+{refused}" not in words, refused
    for name, arg in FIRST_ARG_ONLY.items():
        assert f"+{name}|{arg}" in words
    assert "+select|0" in words
    # a container is granted whole only when every subcommand is (COMMAND)
    assert "+command" in words and "+config" not in words and "+config|get" in words


def test_migrate_only_to_the_cluster_hosts() -> None:
    from slotwarden.acl import router_rule
    from slotwarden.cluster.config import parse

    assert not any(word.startswith("+migrate") for word in rule())
    words = rule(migrate_hosts=["10.0.0.2", "10.0.0.1", "10.0.0.2"])
    assert [w for w in words if "migrate" in w] == ["+migrate|10.0.0.1", "+migrate|10.0.0.2"]
    bundled = Path(__file__).resolve().parents[3] / "cluster.yaml"
    config = parse(yaml.safe_load(bundled.read_text()))
    assert "+migrate|127.0.0.1" in router_rule(config)
