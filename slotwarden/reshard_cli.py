"""Arguments of ``slotwarden reshard`` and ``slotwarden rebalance`` (README *Resharding*).

Owns their argparse definitions and turns them into a planner for
`sentinel.reshard.main` (imported when the command runs): ``--to SHARD
--slots RANGES``, ``--drain SHARD`` and ``rebalance [--weights a=1,b=2]``.
The file edited is ``--config FILE`` or ./cluster.yaml, never the packaged
demo file. Exit codes: 0 done, 1 refused/failed/timed out, 2 usage errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from slotwarden.cluster.slots import format_ranges, parse_ranges
from slotwarden.reshard_plan import Ownership, assign, drain, rebalance

Handler = Callable[[argparse.Namespace], int]
AddParser = Callable[[str, Handler, str], argparse.ArgumentParser]
USAGE = 2


def _slots(text: str) -> set[int]:
    try:
        return {s for lo, hi in parse_ranges(text) for s in range(lo, hi + 1)}
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _weights(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if not sep or not name or weight < 0:
            raise argparse.ArgumentTypeError(f"bad weight {part!r} (want SHARD=NUMBER, >= 0)")
        out[name] = weight
    return out


def _config_path(args: argparse.Namespace) -> str | None:
    if args.config:
        return str(args.config)
    if Path("cluster.yaml").is_file():
        return "cluster.yaml"
    print(
        f"slotwarden {args.command}: no ./cluster.yaml here: give --config FILE "
        "(the packaged demo file is never edited)",
        file=sys.stderr,
    )
    return None


def _run(args: argparse.Namespace, planner: Callable[[Ownership, set[int]], Ownership]) -> int:
    from sentinel.reshard import main

    path = _config_path(args)
    if path is None:
        return USAGE
    timeout = args.timeout if args.timeout and args.timeout > 0 else None
    return main(path, planner, dry_run=args.dry_run, wait=not args.no_wait, timeout=timeout)


def cmd_reshard(args: argparse.Namespace) -> int:
    if (args.drain is None) == (args.to is None):
        print("slotwarden reshard: give either --to SHARD --slots RANGES or --drain SHARD",
              file=sys.stderr)  # fmt: skip
        return USAGE
    if args.to is not None and args.slots is None:
        print("slotwarden reshard: --to needs --slots RANGES", file=sys.stderr)
        return USAGE
    if args.drain is not None and args.slots is not None:
        print("slotwarden reshard: --drain takes no --slots", file=sys.stderr)
        return USAGE
    if args.drain is not None:
        return _run(args, _drainer(args.drain))
    to, slots = args.to, args.slots
    return _run(args, lambda owners, fixed: assign(owners, to, slots))


def _drainer(shard: str) -> Callable[[Ownership, set[int]], Ownership]:
    def plan(owners: Ownership, fixed: set[int]) -> Ownership:
        out = drain(owners, shard, fixed=fixed)
        if out[shard]:
            print(
                f"note: slots {format_ranges(out[shard])} are still migrating into shard "
                f"{shard}: drain it again once that migration ends",
                file=sys.stderr,
            )
        return out

    return plan


def cmd_rebalance(args: argparse.Namespace) -> int:
    weights = args.weights or {}
    return _run(args, lambda owners, fixed: rebalance(owners, weights, fixed=fixed))


def _common(p: argparse.ArgumentParser, log_help: str) -> None:
    p.add_argument(
        "--config", metavar="FILE", help="the cluster.yaml to edit (default ./cluster.yaml)"
    )
    p.add_argument("--dry-run", action="store_true", help="print the moves, change nothing")
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="return once the sentinels took the edit (follow with slotwarden status)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=0,
        metavar="S",
        help="give up following after S seconds, exit 1 (the move goes on); default 0: no limit",
    )
    p.add_argument(
        "--log-level", type=str.upper, choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default="WARNING", help=log_help,
    )  # fmt: skip


def add_reshard_parsers(add: AddParser, log_help: str) -> None:
    epilog = "exit codes: 0 done, 1 refused, failed or timed out, 2 usage or file layout error"
    p = add(
        "reshard",
        cmd_reshard,
        "move slots to a shard (or empty a shard) by editing cluster.yaml, then follow "
        "the migration until the keys are moved",
    )
    p.epilog = epilog
    p.add_argument("--to", metavar="SHARD", help="the shard that gets the slots")
    p.add_argument("--slots", type=_slots, metavar="RANGES", help="e.g. 0-1000,2000-2100")
    p.add_argument(
        "--drain",
        metavar="SHARD",
        help='give all of SHARD\'s slots to the others, evenly (the shard stays, slots: "")',
    )
    _common(p, log_help)
    p = add(
        "rebalance",
        cmd_rebalance,
        "even the slots over the shards (or by --weights), moving as few as possible; "
        "then as reshard",
    )
    p.epilog = epilog
    p.add_argument(
        "--weights",
        type=_weights,
        metavar="A=W,...",
        help="relative shares, e.g. a=1,b=2 (unnamed shards weigh 1; 0 empties a shard)",
    )
    _common(p, log_help)
