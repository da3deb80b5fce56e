"""The `slotwarden` command line: check, acl, router, up, sentinel, status, failover, slot,
reshard, rebalance.

Owns argument parsing, config-file resolution and logging setup; every
subcommand handler returns the process exit code. The heavy modules
(`router.main`, `slotwarden.launcher`) are imported inside their handlers so
`slotwarden check` works without them. Invariant: an invalid cluster.yaml is
reported the same way by every subcommand (``FILE: N problem(s):`` and one
``  - problem`` line each, on stderr, exit status 1; 3 for ``status``, whose
exit codes say healthy 0 / degraded 1 / unreachable 2, so usage and config
errors are 3 there).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from slotwarden import __version__
from slotwarden.cluster.config import ClusterConfig, load
from slotwarden.cluster.errors import ConfigError
from slotwarden.cluster.topology import Address
from slotwarden.reshard_cli import add_reshard_parsers

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_CONFIG = "cluster.yaml"
PACKAGED_CONFIG = Path(__file__).with_name("cluster.yaml")

# Imported by handlers only when needed; their absence is reported, not a traceback.
_LAZY_MODULES = (
    "router.main",
    "slotwarden.launcher",
    "sentinel.main",
    "sentinel.status",
    "sentinel.manual",
    "sentinel.reshard",
    "slotwarden.acl",
    "slotwarden.keyslot",
)

_logging_ready = False


def resolve_config(path: str | None) -> str:
    """The config file to use: ``path`` if given, else ./cluster.yaml if it
    exists, else the demo cluster.yaml shipped inside the package."""
    if path:
        return path
    if Path(DEFAULT_CONFIG).is_file():
        return DEFAULT_CONFIG
    return str(PACKAGED_CONFIG)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg (and exc when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "INFO", as_json: bool = False) -> None:
    """Logging to stderr, plain text by default, JSON lines with ``--log-json``
    (or ``SLOTWARDEN_LOG_FORMAT=json``, which `slotwarden up` passes to the
    processes it starts); configured once per process, later calls only change
    the level."""
    global _logging_ready
    root = logging.getLogger()
    if not _logging_ready:
        as_json = as_json or os.environ.get("SLOTWARDEN_LOG_FORMAT") == "json"
        if as_json:
            os.environ["SLOTWARDEN_LOG_FORMAT"] = "json"  # for child processes
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter() if as_json else logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
        _logging_ready = True
    root.setLevel(level.upper())


def report_problems(error: ConfigError) -> None:
    print(f"{error.source}: {len(error.problems)} problem(s):", file=sys.stderr)
    for problem in error.problems:
        print(f"  - {problem}", file=sys.stderr)


def summary(config: ClusterConfig, source: str) -> str:
    """A human-readable description of a valid cluster config."""
    lines = [f"{source}: OK", f"cluster {config.name!r}: {len(config.shards)} shard(s)"]
    width = max(len(s.name) for s in config.shards)
    for shard in config.shards:
        replicas = ", ".join(str(r) for r in shard.replicas) or "none"
        lines.append(
            f"  shard {shard.name:<{width}}  slots {shard.slots_text} ({shard.slot_count} slots)"
            f"  master {shard.master}  replicas {replicas}"
        )
    workers = f", {config.router.workers} workers" if config.router.workers > 1 else ""
    lines.append(f"router: listen {config.router.listen}, admin {config.router.admin}{workers}")
    sentinel = config.sentinel
    if sentinel is None:
        lines.append("sentinels: none (no automatic failover)")
    else:
        peers = ", ".join(f"{p.id} {p.listen}" for p in sentinel.peers)
        lines.append(f"sentinels: {len(sentinel.peers)}, quorum {sentinel.quorum}: {peers}")
    return "\n".join(lines)


def _address(text: str) -> str:
    """argparse type for HOST:PORT: validated here, passed on as the original text."""
    try:
        Address.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def cmd_check(args: argparse.Namespace) -> int:
    source = resolve_config(args.file)
    config = load(source)  # ConfigError is reported by main
    print(summary(config, source))
    return 0


def cmd_acl(args: argparse.Namespace) -> int:
    from slotwarden.acl import users_of

    config = load(resolve_config(args.file))
    users, notes = users_of(config)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for user in users:
        print(user.setuser_line() if args.setuser else user.aclfile_line())
    return 0


def cmd_router(args: argparse.Namespace) -> int:
    from router.main import main as router_main

    return int(router_main(resolve_config(args.config), args.listen) or 0)


def cmd_up(args: argparse.Namespace) -> int:
    from slotwarden.launcher import up

    return int(up(resolve_config(args.config), tls=args.tls) or 0)


def cmd_sentinel(args: argparse.Namespace) -> int:
    from sentinel.main import main as sentinel_main

    return sentinel_main(
        resolve_config(args.config), args.id, args.probe_via or (), args.step_pause_ms
    )


def cmd_status(args: argparse.Namespace) -> int:
    from sentinel.status import main as status_main

    try:
        config = load(resolve_config(args.config))
    except ConfigError as exc:
        report_problems(exc)
        return STATUS_USAGE
    return status_main(config, as_json=args.json)


def cmd_failover(args: argparse.Namespace) -> int:
    from sentinel.manual import main as failover_main

    return failover_main(load(resolve_config(args.config)), args.shard, args.to, args.force)


def cmd_slot(args: argparse.Namespace) -> int:
    from slotwarden.keyslot import main as slot_main

    return slot_main(load(resolve_config(args.config)), args.keys, as_json=args.json)


def add_slot_parser(add: Callable[..., argparse.ArgumentParser], config_help: str) -> None:
    p = add("slot", cmd_slot, "which slot, shard and master hold each KEY (router, else file)")
    p.add_argument("keys", nargs="+", metavar="KEY")
    p.add_argument("--config", metavar="FILE", help=config_help)
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, default="WARNING")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slotwarden",
        description="Hash-slot router and failover manager for standalone Redis shards.",
    )
    parser.add_argument("--version", action="version", version=f"slotwarden {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(
        name: str, handler: Callable[[argparse.Namespace], int], help_text: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    config_help = (
        f"cluster description (default: ./{DEFAULT_CONFIG}, or the packaged demo if there is none)"
    )
    log_help = "log level (default INFO)"
    json_help = "log JSON lines instead of plain text"

    p = add("check", cmd_check, "validate a cluster.yaml and summarise it")
    p.add_argument("file", nargs="?", metavar="FILE", help=config_help)

    p = add(
        "acl",
        cmd_acl,
        "print the backend ACL users (router, sentinels) for an aclfile or redis.conf; "
        "passwords as SHA-256 (#hex), never in clear",
    )
    p.add_argument("file", nargs="?", metavar="FILE", help=config_help)
    p.add_argument(
        "--setuser", action="store_true", help="print ACL SETUSER commands instead of user lines"
    )

    p = add("router", cmd_router, "run the router (the client-facing Redis endpoint)")
    p.add_argument("--config", metavar="FILE", help=config_help)
    p.add_argument("--listen", metavar="HOST:PORT", type=_address, help="override router.listen")
    p.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, default="INFO", help=log_help)
    p.add_argument("--log-json", action="store_true", help=json_help)

    p = add("up", cmd_up, "start a whole local cluster (redis, sentinels, router)")
    p.add_argument("--config", metavar="FILE", help=config_help)
    p.add_argument(
        "--tls",
        action="store_true",
        help="every hop over TLS, with a throwaway CA and certificate made by openssl",
    )
    p.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, default="INFO", help=log_help)
    p.add_argument("--log-json", action="store_true", help=json_help)

    p = add("sentinel", cmd_sentinel, "run one sentinel (failure detection and failover)")
    p.add_argument("--config", metavar="FILE", help=config_help)
    p.add_argument("--id", required=True, help="this sentinel's id among sentinel.peers")
    p.add_argument(
        "--probe-via",
        action="append",
        metavar="NODE=VIA",
        help=argparse.SUPPRESS,  # tests: reach node NODE at address VIA (repeatable)
    )
    p.add_argument(
        "--step-pause-ms",
        type=int,
        default=0,
        metavar="MS",
        help=argparse.SUPPRESS,  # tests: pause between failover steps (interrupted failovers)
    )
    p.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, default="INFO", help=log_help)
    p.add_argument("--log-json", action="store_true", help=json_help)

    p = add("status", cmd_status, "show shards, sentinels, routers and migrations as they are now")
    p.epilog = STATUS_CODES
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.error = _status_usage_error(p)  # type: ignore[method-assign]
    p.add_argument("--config", metavar="FILE", help=config_help)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS, default="WARNING", help=log_help
    )

    p = add("failover", cmd_failover, "planned switchover of one shard, losing no write")
    p.add_argument("--config", metavar="FILE", help=config_help)
    p.add_argument("shard", metavar="SHARD", help="the shard to switch over")
    p.add_argument("--to", metavar="HOST:PORT", type=_address, help="the replica to promote")
    p.add_argument(
        "--force",
        action="store_true",
        help="with --to, while the master is down: promote that replica even though the "
        "sentinels refused it (never synced, or too far behind): its missing data is lost",
    )
    p.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS, default="WARNING", help=log_help
    )
    add_slot_parser(add, config_help)
    add_reshard_parsers(add, log_help)
    return parser


STATUS_USAGE = 3
STATUS_CODES = """exit codes:
  0  healthy: every node, sentinel and router as the topology says, nothing blocked
  1  degraded: a node down or in the wrong role, a sentinel not answering, a failover
     refused, a router behind the topology or not ready, a migration blocked
  2  unreachable: no sentinel answers (without sentinels: no Redis node answers)
  3  usage or configuration error"""


def _status_usage_error(p: argparse.ArgumentParser) -> Callable[[str], NoReturn]:
    def error(message: str) -> NoReturn:
        p.print_usage(sys.stderr)
        p.exit(STATUS_USAGE, f"{p.prog}: error: {message}\n")

    return error


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "command", None) == "status":  # its exit codes: 3 for usage
            print(f"slotwarden status: unrecognized arguments: {' '.join(extra)}", file=sys.stderr)
            return STATUS_USAGE
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    setup_logging(getattr(args, "log_level", "INFO"), getattr(args, "log_json", False))
    try:
        return handler(args)
    except ConfigError as exc:
        report_problems(exc)
        return 1
    except ModuleNotFoundError as exc:
        if exc.name not in _LAZY_MODULES:
            raise
        print(f"slotwarden {args.command}: module {exc.name} is not available", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
