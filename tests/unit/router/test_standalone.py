"""ROLE and CLUSTER answered by the router as a standalone master (router.decide.standalone)."""

from __future__ import annotations

from router.commands.spec import lookup
from router.decide import builtins, standalone
from router.decide.session import Session
from slotwarden.cluster.slots import key_hash_slot


def test_role_is_a_master_without_replicas() -> None:
    assert (
        builtins.answer(Session(id=1, addr="a:1", laddr="b:2"), "role", [b"ROLE"], list)
        == b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n"
    )


def test_cluster_keyslot_and_the_probes() -> None:
    s = Session(id=1, addr="a:1", laddr="b:2")
    for key in (b"foo", b"{a}b", b""):
        args = [b"CLUSTER", b"KEYSLOT", key]
        assert lookup(args).name == "cluster|keyslot"
        assert builtins.answer(s, "cluster|keyslot", args, list) == b":%d\r\n" % key_hash_slot(key)
    for probe in standalone.PROBES:
        got = builtins.answer(s, f"cluster|{probe}", [b"CLUSTER", probe.encode()], list)
        assert got == b"-ERR This instance has cluster support disabled\r\n"
