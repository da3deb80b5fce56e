"""What `slotwarden status` and `slotwarden reshard` make of the sentinels' reports.

Pure, no I/O: the caller gathers the JSON (`sentinel.status.gather`). Owns

- `migration_rows`: one row per migration of the newest topology, the best of
  what the sentinels' ``GET /status`` ``"migrations"`` say about it (the
  mover's own report first; contract in README *Resharding*), else just
  slots/from/to with state "moving" and no counts;
- `progress_line`: a migration as one line with a progress bar (keys moved /
  keys left, rate, ETA, state);
- `verdict`: the exit code of ``status`` and why - 0 healthy, 1 degraded,
  2 unreachable (no sentinel answers; without sentinels, no node answers).
  Degraded: a node of the topology down or in the wrong role, a sentinel not
  answering, a failover refused, a router behind the topology or not ready,
  a migration blocked. (3, usage and config errors, is the command line's.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from slotwarden.cluster.slots import format_ranges, parse_ranges
from slotwarden.cluster.topology import Migration

HEALTHY, DEGRADED, UNREACHABLE, USAGE = 0, 1, 2, 3
STATES = {HEALTHY: "healthy", DEGRADED: "degraded", UNREACHABLE: "unreachable"}
BAR_WIDTH = 24


def _key(slots: object, source: object, target: object) -> tuple[str, str, str] | None:
    try:
        text = format_ranges(s for lo, hi in parse_ranges(str(slots)) for s in range(lo, hi + 1))
    except ValueError:
        return None
    return text, str(source), str(target)


def _rank(entry: dict[str, Any], reporter: str) -> tuple[int, int, int]:
    own = 1 if entry.get("mover") == reporter else 0
    counted = 1 if entry.get("keys_total") is not None or entry.get("keys_left") is not None else 0
    moved = entry.get("keys_moved")
    return own, counted, moved if isinstance(moved, int) else -1


def migration_rows(
    topology: Iterable[Migration], reports: Iterable[tuple[str, object]]
) -> list[dict[str, Any]]:
    """Rows for the topology's migrations; ``reports`` are (sentinel id, its
    ``"migrations"`` field) pairs, any shape (bad entries are skipped)."""
    best: dict[tuple[str, str, str], tuple[tuple[int, int, int], dict[str, Any]]] = {}
    for reporter, listed in reports:
        if not isinstance(listed, list):
            continue
        for entry in listed:
            if not isinstance(entry, dict):
                continue
            key = _key(entry.get("slots"), entry.get("from"), entry.get("to"))
            if key is None:
                continue
            rank = _rank(entry, reporter)
            if key not in best or rank > best[key][0]:
                best[key] = (rank, entry)
    rows = []
    for m in topology:
        key = (m.ranges(), m.source, m.target)
        row: dict[str, Any] = {
            "slots": m.ranges(),
            "from": m.source,
            "to": m.target,
            "slot_count": m.count(),
            "state": "moving",
            "keys_total": None,
            "keys_moved": None,
            "keys_left": None,
            "rate_keys_per_s": None,
            "eta_s": None,
        }
        if key in best:
            row.update({k: v for k, v in best[key][1].items() if k not in ("slots", "from", "to")})
        rows.append(row)
    return rows


def fraction(row: dict[str, Any]) -> float | None:
    moved, left, total = row.get("keys_moved"), row.get("keys_left"), row.get("keys_total")
    if not isinstance(moved, int):
        return None
    if isinstance(left, int) and moved + left > 0:
        return moved / (moved + left)
    if isinstance(total, int) and total > 0:
        return min(moved / total, 1.0)
    if isinstance(left, int) and left == 0:
        return 1.0
    return None


def bar(part: float | None, width: int = BAR_WIDTH) -> str:
    if part is None:
        return "[" + "?" * width + "]"
    full = round(max(0.0, min(part, 1.0)) * width)
    return "[" + "#" * full + "." * (width - full) + "]"


def _duration(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def progress_line(row: dict[str, Any]) -> str:
    """``slots 0-99 (100) a -> d  [####....]  41%  8200 moved / 11800 left  2000 keys/s
    ETA 6s  moving (mover s1)`` (one line)."""
    head = f"slots {row['slots']} ({row.get('slot_count', '?')}) {row['from']} -> {row['to']}"
    part = fraction(row)
    text = f"{head}  {bar(part)}"
    text += f" {part * 100:3.0f}%" if part is not None else "    ?"
    moved, left = row.get("keys_moved"), row.get("keys_left")
    if isinstance(moved, int):
        text += f"  {moved} moved / {left if isinstance(left, int) else '?'} left"
    rate = row.get("rate_keys_per_s")
    if isinstance(rate, (int, float)):
        text += f"  {rate:.0f} keys/s"
    eta = row.get("eta_s")
    if isinstance(eta, (int, float)):
        text += f"  ETA {_duration(eta)}"
    text += f"  {row.get('state', 'moving')}"
    if row.get("mover"):
        text += f" (mover {row['mover']})"
    return text


def detail_lines(row: dict[str, Any]) -> list[str]:
    out = []
    waiting = row.get("waiting_for") or []
    if waiting:
        out.append("waiting for routers: " + ", ".join(str(w) for w in waiting))
    if row.get("state") == "blocked" or row.get("reason"):
        out.append(f"BLOCKED: {row.get('reason') or 'no reason given'}")
    errors = row.get("errors")
    if isinstance(errors, int) and errors:
        out.append(f"{errors} MIGRATE error(s) so far")
    return out


def verdict(report: dict[str, Any], has_sentinels: bool) -> tuple[int, list[str]]:
    """(exit code, one sentence per problem) for a `sentinel.status.gather` report."""
    sentinels = report.get("sentinels") or []
    nodes = [(s["name"], n) for s in report.get("shards") or [] for n in s.get("nodes") or []]
    if has_sentinels and sentinels and not any(s.get("up") for s in sentinels):
        listed = ", ".join(f"{s['id']} ({s['listen']})" for s in sentinels)
        return UNREACHABLE, [f"no sentinel answers: {listed}"]
    if not has_sentinels and nodes and not any(n.get("up") for _, n in nodes):
        return UNREACHABLE, ["no Redis node answers"]
    problems: list[str] = []
    for shard, n in nodes:
        if not n.get("up"):
            problems.append(f"shard {shard}: {n['expected']} {n['addr']} is down")
        elif n.get("role") != n.get("expected"):
            problems.append(
                f"shard {shard}: {n['addr']} is a {n.get('role')}, the topology says "
                f"{n['expected']}"
            )
    refusals: dict[tuple[str, str], list[str]] = {}
    for s in sentinels:
        if not s.get("up"):
            problems.append(f"sentinel {s['id']} ({s['listen']}) is not answering")
        for shard, reason in (s.get("refused") or {}).items():
            refusals.setdefault((shard, str(reason)), []).append(s["id"])
    for (shard, reason), ids in refusals.items():
        problems.append(f"sentinel(s) {', '.join(ids)} refuse to fail shard {shard} over: {reason}")
    epoch = report.get("topology_epoch")
    for r in report.get("routers") or []:
        if not r.get("up"):
            continue
        if isinstance(r.get("epoch"), int) and isinstance(epoch, int) and r["epoch"] < epoch:
            problems.append(f"router {r['admin']} is at epoch {r['epoch']}, behind {epoch}")
        if not r.get("ready"):
            down = ", ".join(r.get("shards_down") or []) or "?"
            problems.append(f"router {r['admin']} is not ready (shards down: {down})")
    for m in report.get("migrations") or []:
        if m.get("state") == "blocked":
            problems.append(
                f"migration of slots {m['slots']} {m['from']} -> {m['to']} is blocked: "
                f"{m.get('reason') or 'no reason given'}"
            )
    return (DEGRADED if problems else HEALTHY), problems
