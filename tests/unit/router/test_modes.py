"""The client mode table (router.decide.modes) and the pure pieces of the stateful commands:
transaction splicing (router.decide.txn), pub/sub confirmations (router.wire.subscriber),
blocking timeouts (router.commands.spec), router users (router.decide.users) and the
backend handshake (router.wire.backend). Expected error texts
are what redis-server 7.0.15 answers; tests/integration/router/test_compat_*.py compare them
live."""

from __future__ import annotations

import pytest

from router.commands.spec import blocking_timeout
from router.decide import modes, txn
from router.decide.modes import Mode, ModeInput
from router.decide.users import Users
from router.wire.backend import handshake
from router.wire.subscriber import confirmation, pong
from slotwarden.cluster.config import SecretRef
from slotwarden.cluster.errors import SecretError
from slotwarden.cluster.secrets import BackendCredentials, read_secret_ref


def req(*args: str) -> list[bytes]:
    return [a.encode() for a in args]


# ---------------------------------------------------------------- the table


@pytest.mark.parametrize(
    ("mode", "event", "name", "error"),
    [
        (Mode.NORMAL, ModeInput.EXEC, "exec", b"-ERR EXEC without MULTI\r\n"),
        (Mode.NORMAL, ModeInput.DISCARD, "discard", b"-ERR DISCARD without MULTI\r\n"),
        (Mode.MULTI, ModeInput.MULTI, "multi", b"-ERR MULTI calls can not be nested\r\n"),
        (Mode.MULTI, ModeInput.WATCH, "watch", b"-ERR WATCH inside MULTI is not allowed\r\n"),
        (
            Mode.SUBSCRIBED,
            ModeInput.COMMAND,
            "get",
            b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
            b"RESET are allowed in this context\r\n",
        ),
        (
            Mode.SUBSCRIBED,
            ModeInput.MULTI,
            "multi",
            b"-ERR Can't execute 'multi': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
            b"RESET are allowed in this context\r\n",
        ),
    ],
)
def test_missing_pairs_answer_redis_errors(mode, event, name, error):
    assert modes.step(mode, event, name) == error


def test_subcommands_keep_their_full_name_in_the_subscribed_error():
    got = modes.step(Mode.SUBSCRIBED, ModeInput.COMMAND, "client|setname")
    assert b"Can't execute 'client|setname'" in got


@pytest.mark.parametrize(
    ("mode", "event", "nxt"),
    [
        (Mode.NORMAL, ModeInput.MULTI, Mode.MULTI),
        (Mode.MULTI, ModeInput.EXEC, Mode.NORMAL),
        (Mode.MULTI, ModeInput.DISCARD, Mode.NORMAL),
        (Mode.MULTI, ModeInput.COMMAND, Mode.MULTI),
        (Mode.MULTI, ModeInput.BLOCKING, Mode.MULTI),  # queued, does not block
        (Mode.MULTI, ModeInput.RESET, Mode.NORMAL),
        (Mode.NORMAL, ModeInput.BLOCKING, Mode.BLOCKED),
        (Mode.BLOCKED, ModeInput.UNBLOCKED, Mode.NORMAL),
        (Mode.NORMAL, ModeInput.SUBSCRIBE, Mode.SUBSCRIBED),
        (Mode.SUBSCRIBED, ModeInput.PING, Mode.SUBSCRIBED),
        (Mode.SUBSCRIBED, ModeInput.NO_SUBSCRIPTIONS, Mode.NORMAL),
        (Mode.SUBSCRIBED, ModeInput.RESET, Mode.NORMAL),
    ],
)
def test_allowed_pairs(mode, event, nxt):
    assert modes.step(mode, event, "x") is nxt


def test_resp3_subscribers_may_send_anything_and_stay_subscribed():
    assert modes.step(Mode.SUBSCRIBED, ModeInput.COMMAND, "get", resp3=True) is Mode.SUBSCRIBED
    assert modes.step(Mode.SUBSCRIBED, ModeInput.MULTI, "multi", resp3=True) is Mode.MULTI
    assert modes.step(Mode.SUBSCRIBED, ModeInput.EXEC, "exec", resp3=True) == (
        b"-ERR EXEC without MULTI\r\n"
    )


def test_every_mode_and_input_is_decided():
    # every pair is either in the table or answered with an error, never a crash
    for mode in Mode:
        for event in ModeInput:
            got = modes.step(mode, event, "cmd")
            assert type(got) is Mode or got.startswith(b"-ERR ")


@pytest.mark.parametrize(
    ("name", "blocking", "event"),
    [
        ("multi", False, ModeInput.MULTI),
        ("psubscribe", False, ModeInput.SUBSCRIBE),
        ("sunsubscribe", False, ModeInput.UNSUBSCRIBE),
        ("blpop", True, ModeInput.BLOCKING),
        ("xread", False, ModeInput.COMMAND),
        ("get", False, ModeInput.COMMAND),
    ],
)
def test_classify(name, blocking, event):
    assert modes.classify(name, blocking) is event


# ---------------------------------------------------------------- transactions


def test_transaction_pins_to_the_first_keyed_shard():
    tx = txn.Transaction()
    assert tx.queue(b"PING", None) == txn.QUEUED
    assert tx.queue(b"GET a", 2) == txn.QUEUED
    assert tx.shard == 2
    assert tx.queue(b"GET b", 1).startswith(b"-CROSSSLOT")
    assert tx.aborted


def test_splice_puts_local_replies_back_in_place():
    local = [b"+PONG\r\n", None, b"$1\r\nx\r\n", None]
    assert txn.splice(b"*2\r\n:1\r\n:2\r\n", local) == (b"*4\r\n+PONG\r\n:1\r\n$1\r\nx\r\n:2\r\n")
    for passthrough in (b"*-1\r\n", b"_\r\n", b"-EXECABORT x\r\n", b"*1\r\n:1\r\n"):
        assert txn.splice(passthrough, local) == passthrough


def test_execabort_names_the_reason_as_redis_does():
    assert txn.execabort_because(b"-ERR wrong number of arguments for 'exec' command\r\n") == (
        b"-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' "
        b"command\r\n"
    )
    assert txn.execabort_because(b"-NOAUTH Authentication required.\r\n") == (
        b"-EXECABORT Transaction discarded because of: NOAUTH Authentication required.\r\n"
    )


# ---------------------------------------------------------------- pub/sub


def test_confirmations_in_both_protocols():
    assert confirmation(b"subscribe", b"ch", 2, False) == (
        b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:2\r\n"
    )
    assert confirmation(b"unsubscribe", None, 0, True) == b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n"
    assert confirmation(b"unsubscribe", None, 0, False) == (
        b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
    )
    assert pong(req("PING")) == b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
    assert pong(req("PING", "hi")) == b"*2\r\n$4\r\npong\r\n$2\r\nhi\r\n"


# ---------------------------------------------------------------- blocking timeouts


@pytest.mark.parametrize(
    ("args", "seconds"),
    [
        (req("BLPOP", "a", "b", "1.5"), 1.5),
        (req("BLPOP", "a", "0"), None),
        (req("BLMOVE", "a", "b", "LEFT", "RIGHT", "2"), 2.0),
        (req("BLMPOP", "3", "1", "a", "LEFT"), 3.0),
        (req("BZMPOP", "0", "1", "a", "MIN"), None),
        (req("XREAD", "COUNT", "1", "BLOCK", "250", "STREAMS", "s", "$"), 0.25),
        (req("XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", ">"), None),
        (req("WAIT", "1", "100"), 0.1),
        (req("BLPOP", "a", "soon"), 0.0),  # the server refuses it at once
        (req("BLPOP", "a", "-1"), 0.0),
        (req("BLPOP", "a", "inf"), 0.0),
    ],
)
def test_blocking_timeout(args, seconds):
    assert blocking_timeout(args) == seconds


# ---------------------------------------------------------------- credentials


def test_users_check_in_constant_time_and_count_failures():
    users = Users({"default": b"pw", "alice": b"alicepw"})
    assert users.required
    assert users.check(b"alice", b"alicepw")
    assert not users.check(b"alice", b"pw")
    assert not users.check(b"nobody", b"pw")
    assert users.failures == 2
    assert "pw" not in repr(users)
    assert not Users().required


def test_backend_handshakes_and_secrets_stay_hidden(tmp_path):
    creds = BackendCredentials(b"s3cret", b"router")
    assert handshake(creds, 2) == b"*3\r\n$4\r\nAUTH\r\n$6\r\nrouter\r\n$6\r\ns3cret\r\n"
    assert handshake(creds, 3).startswith(b"*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n")
    assert handshake(None, 2) == b""
    assert handshake(None, 3) == b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n"
    assert "s3cret" not in repr(creds)
    with pytest.raises(SecretError, match="SW_UNSET_PW is not set"):
        read_secret_ref(SecretRef(env="SW_UNSET_PW"), "backend", {})
    path = tmp_path / "pw"
    path.write_text("from-file\n")
    assert read_secret_ref(SecretRef(file=str(path)), "backend", {}) == b"from-file"
    with pytest.raises(SecretError, match="cannot read password_file"):
        read_secret_ref(SecretRef(file=str(tmp_path / "missing")), "backend", {})


def test_a_transaction_is_bounded():
    tx = txn.Transaction()
    tx.items = [b"PING"] * txn.MAX_QUEUED
    assert tx.queue(b"PING", None) == txn.TOO_LONG
    assert tx.aborted and len(tx.items) == txn.MAX_QUEUED
