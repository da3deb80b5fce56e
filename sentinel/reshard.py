"""``slotwarden reshard`` and ``slotwarden rebalance``: edit cluster.yaml, reload, follow.

Owns the operator's side of a resharding (README *Resharding*):

1. read the sentinels' ``GET /status``: the newest topology and its running
   migrations (no sentinel answering: nothing is changed);
2. plan the new slot ownership (`slotwarden.reshard_plan`; slots still
   migrating are never moved by ``rebalance``/``--drain``, and an explicit
   ``--to/--slots`` that touches one is refused whole);
3. rewrite only the ``slots:`` values of the shards that change
   (`slotwarden.slots_edit`: comments and layout kept, the result validated
   before anything is written) and replace the file atomically (a temporary
   file in the same directory, the same mode, then rename);
4. ``POST /reload`` to every sentinel (the shared secret, as ``failover``
   sends it). If none applies it, the original file is put back and their
   reasons printed;
5. follow: poll ``GET /status`` until the newest topology gives every moved
   slot to its new shard, then until no migration of those slots is left,
   printing a progress line per migration (`sentinel.report.progress_line`).

Exit codes: 0 done (or nothing to do, or ``--dry-run``/``--no-wait``), 1 refused,
failed or timed out (the reason printed), 2 usage errors and a file layout
the editor does not handle ("edit slots by hand: ...").
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentinel.act.peers import PeerClient, parse_topology
from sentinel.errors import SetupError
from sentinel.main import require_secret
from sentinel.report import detail_lines, migration_rows, progress_line
from slotwarden.cluster.config import ClusterConfig, SentinelPeer, load
from slotwarden.cluster.errors import ConfigError
from slotwarden.cluster.slots import format_ranges
from slotwarden.cluster.topology import Migration, SlotMap
from slotwarden.reshard_plan import Move, Ownership, PlanError, describe, moves
from slotwarden.slots_edit import LayoutError, ownership, rewrite

OK, FAILED, USAGE = 0, 1, 2
STATUS_TIMEOUT = 2.0
RELOAD_TIMEOUT = 10.0
POLL_S = 1.0
QUIET_PRINT_S = 5.0  # without a terminal, a progress line at most this often (or on change)

Planner = Callable[[Ownership, set[int]], Ownership]  # (file's ownership, migrating slots)


def _say(text: str) -> None:
    print(text, flush=True)


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def _views(
    client: PeerClient, peers: tuple[SentinelPeer, ...]
) -> list[tuple[SentinelPeer, dict[str, Any] | None]]:
    answers = await asyncio.gather(
        *(client.call("GET", p.listen, "/status", STATUS_TIMEOUT) for p in peers)
    )
    return [(p, a if isinstance(a, dict) else None) for p, a in zip(peers, answers, strict=True)]


def newest(views: list[tuple[SentinelPeer, dict[str, Any] | None]]) -> SlotMap | None:
    best: SlotMap | None = None
    for _, view in views:
        topo = parse_topology(view.get("topology")) if view else None
        if topo is not None and (best is None or topo.epoch > best.epoch):
            best = topo
    return best


def touched(plan: list[Move], topology: SlotMap) -> list[str]:
    """One sentence per running migration that the planned moves would change."""
    out = []
    for m in topology.migrations:
        common = m.slot_set() & {s for move in plan for s in move.slots}
        if common:
            out.append(
                f"slots {format_ranges(common)} are still moving {m.source} -> {m.target} "
                f"(migration of {m.ranges()}): wait until it ends (slotwarden status), "
                "then try again"
            )
    return out


def write_atomically(path: str, text: str) -> None:
    """Replace ``path``'s content: a temp file beside it (same mode and owner), fsync,
    rename - a reader sees the old file or the new one, never half of one."""
    real = os.path.realpath(path)  # a symlinked cluster.yaml stays a symlink
    directory = os.path.dirname(real) or "."
    st = os.stat(real)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(real)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, stat.S_IMODE(st.st_mode))
        with contextlib.suppress(OSError):  # same owner when we may (root editing)
            os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


async def _reload(
    client: PeerClient, peers: tuple[SentinelPeer, ...]
) -> list[tuple[SentinelPeer, dict[str, Any] | None]]:
    answers = await asyncio.gather(
        *(client.call_any("POST", p.listen, "/reload", RELOAD_TIMEOUT) for p in peers)
    )
    return list(zip(peers, answers, strict=True))


def _published(topology: SlotMap, plan: list[Move]) -> bool:
    names = [s.name for s in topology.shards]
    for move in plan:
        if move.target not in names:
            return False
        index = names.index(move.target)
        if any(topology.owner[s] != index for s in move.slots):
            return False
    return True


def _ours(topology: SlotMap, plan: list[Move]) -> list[Migration]:
    moved = {s for move in plan for s in move.slots}
    return [m for m in topology.migrations if m.slot_set() & moved]


class Progress:
    """Prints migration rows: redrawn in place on a terminal, else on change or every 5 s."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.last: dict[str, tuple[str, str, float]] = {}  # slots -> (state, line, at)
        self.drawn = False

    def show(self, rows: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        if self.tty and len(rows) == 1 and not detail_lines(rows[0]):
            sys.stdout.write("\r" + progress_line(rows[0])[:200] + "\x1b[K")
            sys.stdout.flush()
            self.drawn = True
            return
        self.end()
        for row in rows:
            line, state = progress_line(row), str(row.get("state"))
            before = self.last.get(row["slots"])
            due = before is None or before[0] != state or now - before[2] >= QUIET_PRINT_S
            if due and (before is None or before[1] != line):
                _say(line)
                for d in detail_lines(row):
                    _say(f"  {d}")
                self.last[row["slots"]] = (state, line, now)

    def end(self) -> None:
        if self.drawn:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self.drawn = False


async def follow(
    client: PeerClient,
    peers: tuple[SentinelPeer, ...],
    plan: list[Move],
    timeout: float | None,
    publish_timeout: float,
) -> int:
    """Wait until the sentinels publish the moves, then until their migrations end."""
    started = time.monotonic()
    progress = Progress()
    published_at: float | None = None
    try:
        while True:
            elapsed = time.monotonic() - started
            views = await _views(client, peers)
            topology = newest(views)
            if topology is not None and published_at is None and _published(topology, plan):
                published_at = elapsed
                mine = _ours(topology, plan)
                _say(
                    f"published at topology epoch {topology.epoch}: "
                    + (
                        ", ".join(f"{m.ranges()} {m.source} -> {m.target}" for m in mine)
                        if mine
                        else "routing only, no migration"
                    )
                )
            if topology is not None and published_at is not None:
                mine = _ours(topology, plan)
                if not mine:
                    progress.end()
                    _say(f"done: every slot is on its new shard (topology epoch {topology.epoch})")
                    return OK
                reports = [(p.id, v.get("migrations")) for p, v in views if v]
                progress.show(migration_rows(mine, reports))
            elif elapsed > publish_timeout:
                _err(
                    f"the sentinels took the edit but published no topology with it within "
                    f"{publish_timeout:.0f} s; see their logs and GET /events (a target "
                    "without room for the keys is refused: [migration-refused]). "
                    "cluster.yaml keeps the edit."
                )
                return FAILED
            if timeout is not None and elapsed > timeout:
                progress.end()
                _err(
                    f"timed out after {timeout:.0f} s; the migration goes on in the background "
                    "(follow it with slotwarden status)"
                )
                return FAILED
            await asyncio.sleep(POLL_S)
    except asyncio.CancelledError:
        progress.end()
        raise


@dataclass
class Edit:
    """A planned edit of cluster.yaml: the moves, the old and the new text."""

    plan: list[Move]
    changed: list[str]
    text: str
    new_text: str


def prepare(
    config: ClusterConfig, path: str, planner: Planner, topology: SlotMap | None
) -> Edit | int:
    """Plan and rewrite (nothing written); an exit code when there is nothing to do or
    it cannot be done. ``topology``: the sentinels' newest, for running migrations."""
    migrating = {s for m in topology.migrations for s in m.slot_set()} if topology else set()
    before = ownership(config)
    try:
        after = planner(before, migrating)
    except PlanError as exc:
        _err(str(exc))
        return USAGE
    plan = moves(before, after)
    for line in describe(plan):
        _say(line)
    if not plan:
        return OK
    refused = touched(plan, topology) if topology else []
    if refused:
        for line in refused:
            _err(f"refused: {line}")
        return FAILED
    text = Path(path).read_text(encoding="utf-8")
    changed = {name: after[name] for name in after if after[name] != before[name]}
    try:
        new_text = rewrite(text, changed, path)
    except LayoutError as exc:
        _err(f"{path}: {exc}")
        return USAGE
    except ConfigError as exc:
        _err(f"{path}: the edited file would not be valid, nothing written:")
        for problem in exc.problems:
            _err(f"  - {problem}")
        return FAILED
    return Edit(plan, list(changed), text, new_text)


async def run(
    config: ClusterConfig,
    path: str,
    secret: str | None,
    planner: Planner,
    dry_run: bool,
    wait: bool,
    timeout: float | None,
) -> int:
    assert config.sentinel is not None
    peers = config.sentinel.peers
    async with PeerClient(secret or "", config.tls) as client:
        topology = newest(await _views(client, peers)) if secret else None
        if topology is None:
            listed = ", ".join(f"{p.id} ({p.listen})" for p in peers)
            if not dry_run:
                _err(f"no sentinel answers ({listed}): nothing changed")
                return FAILED
            _err(f"note: no sentinel answers ({listed}): running migrations not known")
        edit = prepare(config, path, planner, topology)
        if isinstance(edit, int):
            return edit
        if dry_run:
            _say(f"dry run: {path} not changed")
            return OK
        assert secret is not None
        write_atomically(path, edit.new_text)
        _say(f"{path}: slots of shard(s) {', '.join(edit.changed)} rewritten")
        answers = await _reload(client, peers)
        applied = []
        for peer, answer in answers:
            if answer is None:
                _err(f"sentinel {peer.id} ({peer.listen}) did not answer the reload")
            elif answer.get("applied"):
                applied.append(peer.id)
            else:
                reasons = answer.get("problems") or [answer.get("error") or "no reason given"]
                for reason in reasons:
                    _err(f"sentinel {peer.id} refused the edit: {reason}")
        if not applied:
            write_atomically(path, edit.text)
            _err(f"no sentinel took the edit: {path} is back as it was")
            return FAILED
        _say(f"reloaded by sentinel(s) {', '.join(applied)}")
        if not wait:
            _say("not waiting: follow the migration with slotwarden status")
            return OK
        publish_timeout = max(30.0, 3 * config.sentinel.failover_timeout_ms / 1000)
        return await follow(client, peers, edit.plan, timeout, publish_timeout)


def main(
    path: str,
    planner: Planner,
    dry_run: bool = False,
    wait: bool = True,
    timeout: float | None = None,
) -> int:
    config = load(path)  # ConfigError: reported by the command line
    if config.sentinel is None:
        _err(
            "the config has no sentinel section: without sentinels keys are not moved "
            "(README Resharding); edit slots: by hand to move routing only"
        )
        return FAILED
    try:
        secret: str | None = require_secret(config)
    except SetupError as exc:
        if not dry_run:
            _err(str(exc))
            return FAILED
        _err(f"note: {exc}")
        secret = None
    try:
        return asyncio.run(run(config, path, secret, planner, dry_run, wait, timeout))
    except KeyboardInterrupt:
        _err("stopped following; a migration already published goes on (slotwarden status)")
        return 130
