"""The C speedups end to end: a router with them and one without answer byte for byte alike.

Two real routers over their own real shards: one as installed (with
`slotwarden.resp._speedups` when it is built) and one started with
``SLOTWARDEN_PURE_PYTHON=1`` (the pure-Python reference). The same pipelined
byte stream — single-key commands, cross-shard MGET/MSET/DEL/EXISTS, hash tags,
binary and large values, inline commands, empty requests — sent in random
chunks to each must get identical reply bytes; INFO says which implementation
each router runs.
"""

from __future__ import annotations

import random
import socket
import time
import urllib.request

import pytest
from conftest import Cluster, own_cluster

from slotwarden.cluster.slots import key_hash_slot
from slotwarden.resp.accel import C
from slotwarden.resp.encode import encode_command
from slotwarden.resp.replies import ReplyScanner


@pytest.fixture(scope="module")
def pure() -> Cluster:
    with own_cluster(env={"SLOTWARDEN_PURE_PYTHON": "1"}) as c:
        yield c


def workload(seed: int) -> tuple[bytes, int]:
    """A pipelined request stream and the number of replies it asks for."""
    rnd = random.Random(seed)
    keys = [f"k{i}" for i in range(30)] + [f"{{tag}}{i}" for i in range(5)] + ["a{}b", "{{x}}"]
    out: list[bytes] = []
    count = 0
    for i in range(600):
        k = rnd.choice(keys).encode()
        op = rnd.randrange(16)
        if op == 0:
            value = bytes(rnd.randrange(256) for _ in range(rnd.randrange(40))) + b"\r\n"
            out.append(encode_command([b"SET", k, value]))
        elif op == 1:
            out.append(encode_command([b"SET", k, b"v" * rnd.choice([1, 1000, 70000])]))
        elif op == 2:
            out.append(encode_command([b"GET", k]))
        elif op == 3:
            out.append(encode_command([b"MGET", *(rnd.choice(keys).encode() for _ in range(10))]))
        elif op == 4:
            pairs = [x for _ in range(5) for x in (rnd.choice(keys).encode(), str(i).encode())]
            out.append(encode_command([b"MSET", *pairs]))
        elif op == 5:
            out.append(encode_command([b"DEL", *(rnd.choice(keys).encode() for _ in range(4))]))
        elif op == 6:
            out.append(encode_command([b"EXISTS", *(rnd.choice(keys).encode() for _ in range(4))]))
        elif op == 7:
            out.append(encode_command([b"INCR", b"ctr" + k]))
        elif op == 8:
            out.append(b"PING\r\n")  # inline: the reference parser's part
            count += 1
            continue
        elif op == 9:
            out.append(b"*0\r\n")  # empty request: no reply
            continue
        elif op == 10:
            out.append(encode_command([b"HSET", b"h" + k, b"f", str(i).encode()]))
        elif op == 11:
            out.append(encode_command([b"ECHO", b"e" * rnd.randrange(5)]))
        elif op == 12:  # the C hot path's edges: spellings, arities, unknown commands
            name = rnd.choice([b"get", b"GeT", b"incr", b"STRLEN", b"NOPE"])
            out.append(encode_command([name, k, *[b"x"] * rnd.choice([0, 0, 1])]))
        elif op == 13:  # a transaction between single-key requests: plain mode ends mid-read
            out.append(encode_command([b"MULTI"]))
            out.append(encode_command([b"SET", k, b"in-multi"]))
            out.append(encode_command([b"GET", k]))
            out.append(encode_command([b"EXEC"]))
            count += 3
        elif op == 14:  # a key at index 2 and a wrong arity for a single-key command
            out.append(encode_command([b"SET", k]))
        else:
            out.append(encode_command([b"PEXPIRE", k, b"100000"]))
        count += 1
    return b"".join(out), count


def exchange(port: int, data: bytes, replies: int, seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    scanner = ReplyScanner()
    got: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        pos = 0
        while pos < len(data):  # random chunks, so requests straddle reads
            step = rnd.choice([1, 7, 100, 4096, 65536])
            s.sendall(data[pos : pos + step])
            pos += step
        while len(got) < replies:
            chunk = s.recv(1 << 16)
            assert chunk, f"router closed after {len(got)} of {replies} replies"
            scanner.feed(chunk)
            got += scanner.replies()
    return got


def info_field(cluster: Cluster, field: str) -> str:
    return str(cluster.client().info()[field])


def test_routers_with_and_without_speedups_answer_alike(fresh, pure) -> None:
    assert info_field(pure, "speedups") == "python"
    assert info_field(fresh, "speedups") == ("c" if C is not None else "python")
    pure.flush()
    for seed in range(3):
        data, count = workload(seed)
        with_c = exchange(fresh.port, data, count, seed)
        reference = exchange(pure.port, data, count, seed)
        assert len(with_c) == len(reference) == count
        for i, (a, b) in enumerate(zip(with_c, reference, strict=True)):
            assert a == b, f"seed {seed}, reply {i}: {a[:80]!r} != {b[:80]!r}"
        # the shards hold the same data too
        for shard in range(3):
            ours = fresh.shard_client(shard)
            theirs = pure.shard_client(shard)
            assert sorted(ours.keys()) == sorted(theirs.keys())
            for k in ours.keys():
                if ours.type(k) == b"string":
                    assert ours.get(k) == theirs.get(k), k


def test_protocol_errors_are_the_same_with_and_without_speedups(fresh, pure) -> None:
    cases = [
        b"*2\r\n$3\r\nGET\r\nfoo\r\n",
        b"*x\r\n",
        b"*1\r\n$abc\r\n",
        b"*1\r\n$01\r\na\r\n",
        b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n*1\r\n$-5\r\n",  # a good request, then a bad one
    ]
    for data in cases:
        answers = []
        for port in (fresh.port, pure.port):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(data)
                out = b""
                while chunk := s.recv(4096):  # the router closes after a protocol error
                    out += chunk
            answers.append(out)
        assert answers[0] == answers[1], data
        assert b"-ERR Protocol error" in answers[0], (data, answers[0])


def test_a_pipeline_past_max_pending_is_answered_alike() -> None:
    """max_pending_per_client 8: the C hot path stops at the bound, reading pauses and
    resumes, and the replies are the reference's, in order."""
    small = {"max_pending_per_client": 8}
    with (
        own_cluster(extra_router=small) as hot,
        own_cluster(extra_router=small, env={"SLOTWARDEN_PURE_PYTHON": "1"}) as ref,
    ):
        assert info_field(ref, "speedups") == "python"
        for seed in (11, 12):
            data, count = workload(seed)
            got = exchange(hot.port, data, count, seed)
            want = exchange(ref.port, data, count, seed)
            assert got == want, seed


def fanout_latency_count(cluster: Cluster, shape: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{cluster.admin_port}/metrics") as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith(f'slotwarden_router_command_seconds_count{{shape="{shape}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_fanouts_answered_at_once_by_a_down_shard_are_timed_alike() -> None:
    """A fan-out whose shard is down is answered during its send; like the reference
    (which times a fan-out once it is sent), the C path does not sample that one."""
    with own_cluster() as hot, own_cluster(env={"SLOTWARDEN_PURE_PYTHON": "1"}) as ref:
        tag = next(t for t in range(1000) if 5461 <= key_hash_slot(b"{%d}" % t) <= 10922)
        keys = [b"{%d}k%d" % (tag, i) for i in range(10)]  # all on shard 1 (b), stopped below
        replies = []
        for c in (hot, ref):
            c.masters[1].stop()
            with socket.create_connection(("127.0.0.1", c.port), timeout=10) as s:
                for _ in range(3):  # the router has seen the shard go down by now
                    s.sendall(encode_command([b"MGET", *keys]))
                    replies.append(s.recv(65536))
                    time.sleep(0.3)
        assert replies[:3] == replies[3:] and all(r.startswith(b"-CLUSTERDOWN") for r in replies)
        for shape in ("fanout-ordered", "single"):
            assert fanout_latency_count(hot, shape) == fanout_latency_count(ref, shape), shape
