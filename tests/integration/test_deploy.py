"""deploy/: every file parses, says how it is used, and agrees with the CLI and its cluster.yaml.

Static checks, since no docker engine, Kubernetes cluster or promtool is
needed: YAML/JSON parse; alert rules have the Prometheus rule structure; every
`slotwarden` subcommand and flag used anywhere under deploy/ exists in the
real CLI (``python -m slotwarden SUB --help``); hosts, ports and ids in the
compose file, the Kubernetes manifests and the Prometheus targets agree with
the cluster.yaml each of them uses, and those pass `slotwarden.cluster.config.load`; the
systemd units have the sections and options they promise; every metric name
and label matcher in alerts.yml, its promtool tests and the Grafana dashboard
is declared in deploy/prometheus/METRICS.md. Two runtime checks back the units'
``ExecReload=/bin/kill -HUP $MAINPID``: a real router and a real sentinel must
survive SIGHUP.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from slotwarden.cluster.config import ClusterConfig, load
from slotwarden.procs import free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKER = DEPLOY / "docker"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"
PROM = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "slotwarden-dashboard.json"
METRICS_MD = PROM / "METRICS.md"

PROM_LABELS = {"job", "instance"}  # attached by Prometheus, never by our processes
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
ALL_INTERFACES = {"0.0.0.0", "::"}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# --------------------------------------------------------------------------- helpers


def deploy_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def yaml_files() -> list[Path]:
    return [p for p in deploy_files() if p.suffix in (".yml", ".yaml")]


def docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "slotwarden", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@functools.cache
def subcommands() -> frozenset[str]:
    """Subcommands listed by ``slotwarden --help`` (argparse: 4-space indented names)."""
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    return frozenset(re.findall(r"^ {4}([a-z][\w-]*)(?: {2,}|$)", result.stdout, re.M))


@functools.cache
def flags_of(sub: str) -> frozenset[str]:
    """Options in ``slotwarden SUB --help``; empty if the subcommand does not exist."""
    result = run_cli(sub, "--help")
    if result.returncode != 0:
        return frozenset()
    return frozenset(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", result.stdout))


def cli_problems(argv: list[str], where: str) -> list[str]:
    """What is wrong with running ``slotwarden *argv`` (empty if nothing)."""
    if not argv:
        return [f"{where}: `slotwarden` without a subcommand"]
    sub, rest = argv[0], argv[1:]
    if sub not in subcommands():
        return [f"{where}: subcommand {sub!r} does not exist (have: {sorted(subcommands())})"]
    problems = []
    for token in rest:
        if token.startswith("-") and token != "-":
            flag = token.split("=", 1)[0]
            if flag not in flags_of(sub):
                problems.append(f"{where}: `slotwarden {sub}` has no option {flag}")
    return problems


def option(argv: list[str], flag: str) -> str | None:
    """The value after ``flag`` in argv (``--flag VALUE`` or ``--flag=VALUE``)."""
    for i, token in enumerate(argv):
        if token == flag and i + 1 < len(argv):
            return argv[i + 1]
        if token.startswith(flag + "="):
            return token.split("=", 1)[1]
    return None


# -- slotwarden invocations in every kind of deploy file ----------------------------

SHELL_STOP = {"|", "||", "&&", ";", ">", ">>", "2>&1", "&"}
PROGRAMS = {"slotwarden", "docker", "kubectl", "sudo"}


def _is_slotwarden(token: str) -> bool:
    return token == "slotwarden" or token.endswith("/slotwarden")


def shell_invocations(text: str, where: str) -> Iterator[tuple[list[str], str]]:
    """`slotwarden ...` argv lists in command lines of a comment block or code block.

    A command line starts with a program (slotwarden, docker, kubectl, sudo or
    a path to slotwarden); continuation backslashes are joined. Prose never
    starts with one of these, so it is not mistaken for a command.
    """
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        line = line.lstrip("#").strip() if line.startswith("#") else line
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    for line in logical:
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            continue
        if not tokens or not (tokens[0] in PROGRAMS or _is_slotwarden(tokens[0])):
            continue
        for i, token in enumerate(tokens):
            image = (
                tokens[0] == "docker" and "run" in tokens[:i] and token.startswith("slotwarden:")
            )
            # `kubectl -n slotwarden ...`: an option's value, not the program
            value = i > 0 and tokens[i - 1].startswith("-") and tokens[i - 1] != "--"
            if (_is_slotwarden(token) or image) and not value:
                argv = []
                for t in tokens[i + 1 :]:
                    if t in SHELL_STOP:
                        break
                    argv.append(t)
                if argv or not image:  # `docker run IMAGE` alone runs the default CMD
                    yield argv, f"{where}: {line}"
                break


def comment_text(path: Path) -> str:
    return "\n".join(line for line in path.read_text().splitlines() if line.strip().startswith("#"))


def markdown_code(path: Path) -> str:
    return "\n".join(re.findall(r"```[a-z]*\n(.*?)```", path.read_text(), re.S))


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        instr, _, rest = line.partition(" ")
        out.append((instr.upper(), rest.strip()))
    return out


def compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


def is_slotwarden_image(image: object) -> bool:
    return isinstance(image, str) and image.split("/")[-1].split(":")[0] == "slotwarden"


def k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (p, d)
        for p in sorted(K8S.glob("*.yaml"))
        if p.name != "kustomization.yaml"
        for d in docs(p)
    ]


def k8s_get(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for _, d in k8s_objects() if d["kind"] == kind and name in (None, d["metadata"]["name"])
    ]
    assert len(found) == 1, f"want exactly one {kind} {name or ''} in deploy/k8s, got {len(found)}"
    return found[0]


def pod_containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def k8s_invocations() -> Iterator[tuple[list[str], str, dict[str, Any], dict[str, Any]]]:
    """(argv, where, container, workload) for every container running the slotwarden image."""
    for path, obj in k8s_objects():
        if obj["kind"] not in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            continue
        for c in pod_containers(obj):
            if not is_slotwarden_image(c.get("image")):
                continue
            command = c.get("command")
            if command:
                assert _is_slotwarden(command[0]), f"{rel(path)}: {c['name']} runs {command[0]}"
                argv = [*command[1:], *c.get("args", [])]
            else:
                argv = list(c.get("args", []))
            yield argv, f"{rel(path)}: {obj['metadata']['name']}/{c['name']}", c, obj


def k8s_cluster_config(tmp_path: Path) -> ClusterConfig:
    configmap = k8s_get("ConfigMap", "slotwarden-config")
    path = tmp_path / "k8s-cluster.yaml"
    path.write_text(configmap["data"]["cluster.yaml"])
    return load(path)


def systemd_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections -> (key, value) in order; keys may repeat (ExecReload=, ExecStartPre=)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections.setdefault(current, [])
            continue
        assert current is not None, f"{rel(path)}: {line!r} before any [Section]"
        key, sep, value = line.partition("=")
        assert sep, f"{rel(path)}: not key=value: {line!r}"
        sections[current].append((key.strip(), value.strip()))
    return sections


def unit_values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def all_invocations() -> list[tuple[list[str], str]]:
    found: list[tuple[list[str], str]] = []
    # Dockerfile: ENTRYPOINT ["slotwarden"] + CMD
    instructions = dockerfile_instructions(DOCKER / "Dockerfile")
    cmd = [json.loads(rest) for instr, rest in instructions if instr == "CMD"]
    if cmd:
        found.append((cmd[-1], "deploy/docker/Dockerfile: CMD"))
    # compose services running the slotwarden image
    for name, svc in compose()["services"].items():
        if is_slotwarden_image(svc.get("image")):
            found.append((list(svc.get("command") or cmd[-1]), f"docker-compose.yml: {name}"))
    # Kubernetes containers running the slotwarden image
    found.extend((argv, where) for argv, where, _, _ in k8s_invocations())
    # systemd Exec*= lines
    for unit_path in sorted(SYSTEMD.glob("*.service")):
        for section in systemd_unit(unit_path).values():
            for key, value in section:
                if key.startswith("Exec"):
                    tokens = shlex.split(value.lstrip("-+!@:"))
                    if tokens and _is_slotwarden(tokens[0]):
                        found.append((tokens[1:], f"{rel(unit_path)}: {key}={value}"))
    # command lines in comments and in the README's code blocks
    for path in deploy_files():
        if path.suffix == ".md":
            found.extend(shell_invocations(markdown_code(path), rel(path)))
        elif path.suffix != ".json":
            found.extend(shell_invocations(comment_text(path), rel(path)))
    return found


# -- METRICS.md ---------------------------------------------------------------------


@functools.cache
def declared_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (type, labels) from the tables of METRICS.md."""
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for line in METRICS_MD.read_text().splitlines():
        m = re.match(r"^\|\s*`(slotwarden_\w+)`\s*\|\s*(\w+)\s*\|([^|]*)\|", line)
        if m:
            name, kind, labels = m.groups()
            assert name not in out, f"METRICS.md declares {name} twice"
            out[name] = (kind, frozenset(re.findall(r"`(\w+)`", labels)))
    return out


def base_metric(name: str) -> str | None:
    declared = declared_metrics()
    if name in declared:
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and declared.get(base, ("",))[0] == "histogram":
            return base
    return None


def promql_sources() -> list[tuple[str, str]]:
    """(where, PromQL text) of every expression in alerts.yml, its tests and the dashboard."""
    out = []
    for group in docs(PROM / "alerts.yml")[0]["groups"]:
        for rule in group["rules"]:
            out.append((f"alerts.yml {rule['alert']}", rule["expr"]))
    for case in docs(PROM / "alerts_test.yml")[0]["tests"]:
        for series in case.get("input_series", []):
            out.append(("alerts_test.yml input_series", series["series"]))
    dash = json.loads(DASHBOARD.read_text())
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            out.append((f"dashboard panel {panel['title']!r}", target["expr"]))
    for ann in dash.get("annotations", {}).get("list", []):
        if "expr" in ann:
            out.append((f"dashboard annotation {ann['name']!r}", ann["expr"]))
    for var in dash.get("templating", {}).get("list", []):
        query = var.get("definition") or var.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if var.get("type") == "query" and isinstance(query, str):
            out.append((f"dashboard variable {var['name']}", query))
    return out


def without_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def balanced(text: str) -> bool:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for ch in without_strings(text):
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack


# --------------------------------------------------------------------------- files


def test_deploy_has_every_part():
    for path in [
        DOCKER / "Dockerfile",
        DOCKER / "docker-compose.yml",
        DOCKER / "cluster.yaml",
        K8S / "kustomization.yaml",
        SYSTEMD / "slotwarden-router.service",
        SYSTEMD / "slotwarden-sentinel@.service",
        PROM / "prometheus.yml",
        PROM / "alerts.yml",
        METRICS_MD,
        DASHBOARD,
        DEPLOY / "README.md",
    ]:
        assert path.is_file(), f"missing {rel(path)}"


@pytest.mark.parametrize("path", yaml_files(), ids=rel)
def test_yaml_parses(path):
    documents = docs(path)  # k8s files hold several documents
    assert documents, f"{rel(path)} has no YAML document"
    for d in documents:
        assert isinstance(d, dict), f"{rel(path)}: a document is {type(d).__name__}, not a mapping"


@pytest.mark.parametrize("path", deploy_files(), ids=rel)
def test_file_says_how_it_is_used(path):
    if path.suffix == ".md":
        assert path.read_text().startswith("# "), f"{rel(path)} should start with a title"
        return
    if path.suffix == ".json":
        description = json.loads(path.read_text()).get("description", "")
        assert "how it is used" in description.lower(), f"{rel(path)}: no usage in description"
        assert "description" in (DEPLOY / "README.md").read_text()
        return
    lines = path.read_text().splitlines()
    block = []
    for line in lines:
        if not line.startswith("#"):
            break
        block.append(line)
    prose = [line for line in block if not line.startswith("# syntax=")]
    assert len(prose) >= 2, f"{rel(path)} should start with a comment saying how it is used"


# --------------------------------------------------------------------------- CLI


def test_cli_invocations_exist():
    """Every `slotwarden` subcommand and --flag used under deploy/ is in the CLI's --help."""
    invocations = all_invocations()
    used = {argv[0] for argv, _ in invocations if argv}
    # The extraction must actually see the commands the deploy files are built on.
    for sub in ("router", "sentinel", "check", "status"):
        assert sub in used, f"no deploy file runs `slotwarden {sub}` (extraction broken?)"
    problems = [p for argv, where in invocations for p in cli_problems(argv, where)]
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- cluster.yaml files


def test_deploy_cluster_yamls_are_valid(tmp_path):
    root = load(REPO / "cluster.yaml")
    for config in (load(DOCKER / "cluster.yaml"), k8s_cluster_config(tmp_path)):
        # Same layout as the example cluster.yaml: only hosts (and ids) differ.
        assert [(s.name, s.slots_text) for s in config.shards] == [
            (s.name, s.slots_text) for s in root.shards
        ], config.path
        assert config.router.listen.port == root.router.listen.port
        assert config.router.admin.port == root.router.admin.port
        assert config.sentinel is not None and root.sentinel is not None
        assert config.sentinel.quorum == root.sentinel.quorum
        assert len(config.sentinel.peers) == len(root.sentinel.peers)
        assert config.sentinel.secret_env == root.sentinel.secret_env
    compose_config = load(DOCKER / "cluster.yaml")
    assert compose_config.sentinel is not None and root.sentinel is not None
    assert [(p.id, p.listen.port) for p in compose_config.sentinel.peers] == [
        (p.id, p.listen.port) for p in root.sentinel.peers
    ]
    for mine, theirs in zip(compose_config.shards, root.shards, strict=True):
        assert mine.master.port == theirs.master.port
        assert [r.port for r in mine.replicas] == [r.port for r in theirs.replicas]


# --------------------------------------------------------------------------- docker


def test_dockerfile():
    instructions = dockerfile_instructions(DOCKER / "Dockerfile")
    args = {}
    stages: list[list[tuple[str, str]]] = []
    for instr, rest in instructions:
        if instr == "ARG" and not stages and "=" in rest:
            key, value = rest.split("=", 1)
            args[key] = value
        if instr == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instr, rest))
    final = stages[-1]
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], final[0][1].split()[0])
    assert base == "python:3.11-slim"
    runs = [rest for stage in stages for instr, rest in stage if instr == "RUN"]
    # the wheels are built in a build stage (test_docker_wheel.py replays it)
    assert any(re.search(r"pip wheel (?:\S+ )*\.$", r) for r in runs), "no `pip wheel ... .`"
    users = [rest for instr, rest in final if instr == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must not run as root"
    entrypoint = [json.loads(rest) for instr, rest in final if instr == "ENTRYPOINT"]
    assert entrypoint == [["slotwarden"]]
    assert [instr for instr, _ in final].count("CMD") == 1
    root = load(REPO / "cluster.yaml")
    assert root.sentinel is not None
    exposed = {
        int(p.split("/")[0]) for instr, rest in final if instr == "EXPOSE" for p in rest.split()
    }
    assert {
        root.router.listen.port,
        root.router.admin.port,
        root.sentinel.peers[0].listen.port,
    } <= (exposed)
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    for instr, rest in instructions:
        if instr == "COPY" and not rest.startswith("--from"):
            *sources, _dest = rest.split()
            for src in sources:
                assert (REPO / src).exists(), f"COPY {src}: not in the repository"
                assert f"!{src}" in ignore or f"!{src}/**" in ignore, (
                    f"Dockerfile.dockerignore excludes {src}, which the Dockerfile copies"
                )


def _ports(service: dict[str, Any]) -> set[int]:
    return {int(str(p).split(":")[-1].split("/")[0]) for p in service.get("ports", [])}


def _mount_target(service: dict[str, Any], source: str) -> str | None:
    for volume in service.get("volumes", []):
        src, dst, *_ = str(volume).split(":")
        if src == source:
            return dst
    return None


def _healthcheck_urls(service: dict[str, Any]) -> list[str]:
    test = service.get("healthcheck", {}).get("test", [])
    return re.findall(r"http://[^'\"\s]+", " ".join(test))


def test_compose_matches_its_cluster_yaml():
    config = load(DOCKER / "cluster.yaml")
    assert config.sentinel is not None
    services = compose()["services"]
    problems = []

    # Redis: one service per node, named as the node's host, on the node's port.
    redis_services = {
        n for n, s in services.items() if str(s.get("image", "")).startswith("redis:")
    }
    nodes = {a.host for s in config.shards for a in (s.master, *s.replicas)}
    assert redis_services == nodes, "redis services and cluster.yaml nodes differ"
    for shard in config.shards:
        for addr in (shard.master, *shard.replicas):
            svc = services[addr.host]
            argv = svc["command"]
            if option(argv, "--port") != str(addr.port):
                problems.append(f"{addr.host}: --port is not {addr.port}")
            if addr == shard.master:
                if "--replicaof" in argv:
                    problems.append(f"{addr.host}: the master must not start with --replicaof")
            else:
                i = argv.index("--replicaof") if "--replicaof" in argv else -1
                if i < 0 or argv[i + 1 : i + 3] != [shard.master.host, str(shard.master.port)]:
                    problems.append(
                        f"{addr.host}: want --replicaof {shard.master.host} {shard.master.port}"
                    )
            test = svc.get("healthcheck", {}).get("test", [])
            if option(test, "-p") != str(addr.port):
                problems.append(f"{addr.host}: the healthcheck pings another port")

    # Sentinels: one service per peer, named as its listen host.
    runs = {n: s["command"] for n, s in services.items() if is_slotwarden_image(s.get("image"))}
    sentinel_services = {n for n, argv in runs.items() if argv[0] == "sentinel"}
    assert sentinel_services == {p.listen.host for p in config.sentinel.peers}
    for peer in config.sentinel.peers:
        svc = services[peer.listen.host]
        argv = svc["command"]
        if option(argv, "--id") != peer.id:
            problems.append(f"{peer.listen.host}: --id is not {peer.id}")
        if option(argv, "--config") != _mount_target(svc, "./cluster.yaml"):
            problems.append(f"{peer.listen.host}: --config is not where ./cluster.yaml is mounted")
        targets = {str(v).split(":")[1] for v in svc.get("volumes", [])}
        if config.sentinel.state_dir not in targets:
            problems.append(f"{peer.listen.host}: nothing mounted at {config.sentinel.state_dir}")
        if _healthcheck_urls(svc) != [f"http://{peer.listen}/health"]:
            problems.append(f"{peer.listen.host}: healthcheck is not http://{peer.listen}/health")

    # The router: binds all interfaces for clients; its admin address is its
    # service name, because sentinels dial it to push topologies.
    routers = [n for n, argv in runs.items() if argv[0] == "router"]
    assert len(routers) == 1
    name = routers[0]
    svc = services[name]
    assert config.router.listen.host in ALL_INTERFACES
    assert config.router.admin.host == name
    assert {config.router.listen.port, config.router.admin.port} <= _ports(svc)
    assert option(svc["command"], "--config") == _mount_target(svc, "./cluster.yaml")
    assert _healthcheck_urls(svc) == [f"http://{config.router.admin}/health"]
    assert not problems, "\n".join(problems)


def test_compose_secret_comes_from_the_environment():
    config = load(DOCKER / "cluster.yaml")
    assert config.sentinel is not None
    env_name = config.sentinel.secret_env
    for name, svc in compose()["services"].items():
        if not is_slotwarden_image(svc.get("image")):
            continue
        value = svc.get("environment", {}).get(env_name)
        assert value == f"${{{env_name}:?set {env_name}}}", f"{name}: {env_name} = {value!r}"
    example = (DOCKER / ".env.example").read_text()
    assert re.search(rf"^{env_name}=$", example, re.M), ".env.example must leave the secret empty"


def test_compose_paths_exist():
    for name, svc in compose()["services"].items():
        build = svc.get("build")
        if build:
            context = (DOCKER / build["context"]).resolve()
            assert (context / build["dockerfile"]).is_file(), f"{name}: no Dockerfile"
            assert (context / "pyproject.toml").is_file(), f"{name}: context is not the repo root"
        for volume in svc.get("volumes", []):
            src = str(volume).split(":")[0]
            if src.startswith("."):
                assert (DOCKER / src).exists(), f"{name}: bind mount source {src} does not exist"


def test_prometheus_targets_match_compose():
    config = load(DOCKER / "cluster.yaml")
    assert config.sentinel is not None
    prom = docs(PROM / "prometheus.yml")[0]
    jobs = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in prom["scrape_configs"]
    }
    assert jobs["slotwarden-router"] == [str(config.router.admin)]
    assert jobs["slotwarden-sentinel"] == [str(p.listen) for p in config.sentinel.peers]
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in prom["scrape_configs"])
    assert prom["rule_files"] == ["alerts.yml"]
    mounts = {str(v).split(":")[0] for v in compose()["services"]["prometheus"]["volumes"]}
    assert {"../prometheus/prometheus.yml", "../prometheus/alerts.yml"} <= mounts


# --------------------------------------------------------------------------- kubernetes


def _port_number(container: dict[str, Any], port: object) -> int:
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    assert port in named, f"{container['name']}: no port named {port!r}"
    return named[port]


def _mount_path_of_configmap(workload: dict[str, Any], container: dict[str, Any], cm: str) -> str:
    volumes = workload["spec"]["template"]["spec"].get("volumes", [])
    names = {v["name"] for v in volumes if v.get("configMap", {}).get("name") == cm}
    paths = [m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] in names]
    assert len(paths) == 1, f"{container['name']}: ConfigMap {cm} is not mounted once"
    assert not any(m.get("subPath") for m in container["volumeMounts"] if m["name"] in names), (
        "a subPath mount never sees ConfigMap updates (live reload)"
    )
    return paths[0]


def _secret_env(container: dict[str, Any], env_name: str) -> tuple[str, str]:
    for env in container.get("env", []):
        if env["name"] == env_name:
            ref = env["valueFrom"]["secretKeyRef"]
            return ref["name"], ref["key"]
    raise AssertionError(f"{container['name']}: no {env_name} from a Secret")


def test_k8s_namespaces_and_kustomization():
    kustomization = docs(K8S / "kustomization.yaml")[0]
    namespace = k8s_get("Namespace")["metadata"]["name"]
    assert kustomization["namespace"] == namespace
    resources = kustomization["resources"]
    for resource in resources:
        assert (K8S / resource).is_file(), f"kustomization.yaml lists missing {resource}"
    files = {p.name for p in K8S.glob("*.yaml")}
    # secret.yaml holds a placeholder: applying it would overwrite the real Secret.
    assert "secret.yaml" not in resources
    assert files - set(resources) == {"kustomization.yaml", "secret.yaml"}
    for path, obj in k8s_objects():
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == namespace, f"{rel(path)} {obj['kind']}"


def test_k8s_secret_is_a_marked_placeholder(tmp_path):
    config = k8s_cluster_config(tmp_path)
    assert config.sentinel is not None
    secret = k8s_get("Secret")
    values = {**secret.get("stringData", {}), **secret.get("data", {})}
    assert len(values) == 1
    key, value = next(iter(values.items()))
    assert "CHANGE-ME" in value and "placeholder" in value
    text = (K8S / "secret.yaml").read_text()
    assert "kubectl" in text and "create secret generic" in text
    # every slotwarden container takes sentinel.secret_env from exactly this Secret and key
    for _, where, container, _ in k8s_invocations():
        ref = _secret_env(container, config.sentinel.secret_env)
        assert ref == (secret["metadata"]["name"], key), where


def test_k8s_sentinels_match_configmap(tmp_path):
    config = k8s_cluster_config(tmp_path)
    assert config.sentinel is not None
    sts = k8s_get("StatefulSet", "slotwarden-sentinel")
    name, ns = sts["metadata"]["name"], sts["metadata"]["namespace"]
    service = k8s_get("Service", sts["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None", "the sentinels' Service must be headless"
    assert service["spec"].get("publishNotReadyAddresses") is True
    replicas = sts["spec"]["replicas"]
    # ids are the pod names; hosts are the pods' DNS names under the headless Service
    expected = [
        (f"{name}-{i}", f"{name}-{i}.{service['metadata']['name']}.{ns}.svc.cluster.local")
        for i in range(replicas)
    ]
    assert [(p.id, p.listen.host) for p in config.sentinel.peers] == expected
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    argv = container["args"]
    assert argv[0] == "sentinel"
    assert option(argv, "--id") == "$(POD_NAME)"
    pod_name = {e["name"]: e.get("valueFrom", {}) for e in container["env"]}["POD_NAME"]
    assert pod_name == {"fieldRef": {"fieldPath": "metadata.name"}}
    mount = _mount_path_of_configmap(sts, container, "slotwarden-config")
    assert option(argv, "--config") == f"{mount}/cluster.yaml"
    state = [m for m in container["volumeMounts"] if m["mountPath"] == config.sentinel.state_dir]
    assert len(state) == 1, "no volume at sentinel.state_dir"
    claims = {c["metadata"]["name"] for c in sts["spec"].get("volumeClaimTemplates", [])}
    assert state[0]["name"] in claims, "sentinel state must be on a PersistentVolumeClaim"
    for peer in config.sentinel.peers:
        assert _port_number(container, "http") == peer.listen.port
        assert service["spec"]["ports"][0]["port"] == peer.listen.port
    for probe in ("livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/health"  # the only path without the secret
        assert _port_number(container, get["port"]) == config.sentinel.peers[0].listen.port
    assert config.sentinel.quorum <= replicas


def test_k8s_router_sidecar_matches_configmap(tmp_path):
    config = k8s_cluster_config(tmp_path)
    routers = [(c, w) for argv, _, c, w in k8s_invocations() if argv[0] == "router"]
    assert len(routers) == 1
    container, deployment = routers[0]
    assert deployment["kind"] == "Deployment"
    spec = deployment["spec"]["template"]["spec"]
    if container in spec.get("initContainers", []):
        assert container.get("restartPolicy") == "Always", "an init container must be a sidecar"
    argv = container["args"]
    mount = _mount_path_of_configmap(deployment, container, "slotwarden-config")
    assert option(argv, "--config") == f"{mount}/cluster.yaml"
    listen, admin = config.router.listen, config.router.admin
    assert listen.host in LOOPBACK, "a sidecar router serves its own pod only"
    assert admin.host in ALL_INTERFACES, "kubelet probes and Prometheus come to the pod IP"
    assert _port_number(container, "admin") == admin.port
    probes = {
        "livenessProbe": "/health",
        "readinessProbe": "/ready",
        "startupProbe": "/health",
    }
    for probe, path in probes.items():
        if probe == "startupProbe" and probe not in container:
            continue
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert _port_number(container, get["port"]) == admin.port, probe
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    assert annotations.get("prometheus.io/port") == str(admin.port)
    app_env = [e.get("value", "") for c in spec["containers"] for e in c.get("env", [])]
    assert any(f"{listen.host}:{listen.port}" in v for v in app_env), "the app must use the sidecar"
    assert str(listen.port) in app_env


def test_k8s_redis_matches_configmap(tmp_path):
    config = k8s_cluster_config(tmp_path)
    for shard in config.shards:
        hosts = [a.host for a in (shard.master, *shard.replicas)]
        pods = [h.split(".")[0] for h in hosts]
        sts_name = pods[0].rsplit("-", 1)[0]
        sts = k8s_get("StatefulSet", sts_name)
        service = k8s_get("Service", sts["spec"]["serviceName"])
        assert service["spec"]["clusterIP"] == "None"
        ns = sts["metadata"]["namespace"]
        suffix = f".{service['metadata']['name']}.{ns}.svc.cluster.local"
        assert hosts == [f"{sts_name}-{i}{suffix}" for i in range(sts["spec"]["replicas"])]
        (container,) = sts["spec"]["template"]["spec"]["containers"]
        script = " ".join(container["args"])
        for addr in (shard.master, *shard.replicas):
            assert _port_number(container, "redis") == addr.port
            assert f"--port {addr.port}" in script
        # replicas start replicating from pod 0, named with cluster.yaml's exact host string
        assert f'--replicaof "${{HOSTNAME%-*}}-0{suffix}" {shard.master.port}' in script


# --------------------------------------------------------------------------- systemd


def test_systemd_units():
    units = {p.name: systemd_unit(p) for p in sorted(SYSTEMD.glob("*.service"))}
    assert set(units) == {"slotwarden-router.service", "slotwarden-sentinel@.service"}
    for name, unit in units.items():
        assert {"Unit", "Service", "Install"} <= set(unit), name
        service = dict(unit["Service"])
        assert service.get("Restart") == "on-failure", name
        assert service.get("User") not in (None, "root", "0"), name
        assert service.get("EnvironmentFile"), name
        assert "/bin/kill -HUP $MAINPID" in unit_values(unit, "Service", "ExecReload"), name
        assert service.get("NoNewPrivileges") == "yes", name
        assert service.get("ProtectSystem") == "strict", name
        assert unit_values(unit, "Install", "WantedBy") == ["multi-user.target"], name
        (start,) = unit_values(unit, "Service", "ExecStart")
        argv = shlex.split(start)
        assert _is_slotwarden(argv[0]), name
        assert argv[1] == ("router" if "router" in name else "sentinel"), name
        configs = {option(argv, "--config")}
        for key in ("ExecStartPre", "ExecReload"):
            for value in unit_values(unit, "Service", key):
                tokens = shlex.split(value)
                if _is_slotwarden(tokens[0]):
                    assert tokens[1] == "check", f"{name}: {key} runs {tokens[1]}"
                    configs.add(tokens[2])
        assert len(configs) == 1, f"{name}: several config paths {configs}"
    sentinel = units["slotwarden-sentinel@.service"]
    argv = shlex.split(unit_values(sentinel, "Service", "ExecStart")[0])
    assert option(argv, "--id") == "%i", "the instance name is the sentinel id"
    (state,) = unit_values(sentinel, "Service", "StateDirectory")
    assert unit_values(sentinel, "Service", "WorkingDirectory") == [f"/var/lib/{state}"]


# --------------------------------------------------------------------------- prometheus, grafana


def test_alert_rules_structure():
    rules_doc = docs(PROM / "alerts.yml")[0]
    assert set(rules_doc) == {"groups"}
    names: set[str] = set()
    group_names: set[str] = set()
    duration = re.compile(r"^(?:\d+(?:ms|s|m|h|d|w|y))+$")
    for group in rules_doc["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"}, group.get("name")
        assert group["name"] not in group_names
        group_names.add(group["name"])
        assert group["rules"], f"group {group['name']} has no rules"
        for rule in group["rules"]:
            alert = rule.get("alert")
            assert isinstance(alert, str) and re.match(r"^[A-Z][A-Za-z0-9]+$", alert), rule
            assert "record" not in rule, alert
            assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
            assert alert not in names, f"alert {alert} defined twice"
            names.add(alert)
            assert isinstance(rule["expr"], str) and rule["expr"].strip(), alert
            assert balanced(rule["expr"]), f"{alert}: unbalanced brackets"
            assert duration.match(str(rule["for"])), f"{alert}: for: {rule['for']!r}"
            assert rule["labels"]["severity"] in ("critical", "warning", "info"), alert
            for key in ("summary", "description"):
                text = rule["annotations"][key]
                assert isinstance(text, str) and text.strip(), f"{alert}: no {key}"
                assert text.count("{{") == text.count("}}"), f"{alert}: {key} template"
    for required in ("MasterDown", "FailoverHappened", "RouterBackendErrors", "SentinelQuorumLost"):
        assert f"Slotwarden{required}" in names
    # every alert has a promtool unit test and is listed in METRICS.md
    tests_doc = docs(PROM / "alerts_test.yml")[0]
    assert tests_doc["rule_files"] == ["alerts.yml"]
    tested = {t["alertname"] for case in tests_doc["tests"] for t in case["alert_rule_test"]}
    assert tested == names
    metrics_md = METRICS_MD.read_text()
    for alert in names:
        assert alert in metrics_md, f"METRICS.md does not say what {alert} reads"


def test_dashboard_structure():
    dash = json.loads(DASHBOARD.read_text())
    for key in ("title", "uid", "description", "panels", "schemaVersion", "templating"):
        assert key in dash, key
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    cells: set[tuple[int, int]] = set()
    for panel in dash["panels"]:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not area & cells, f"panel {panel['title']!r} overlaps another"
        cells |= area
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and balanced(target["expr"]), panel["title"]


def test_metrics_md_table():
    declared = declared_metrics()
    assert len(declared) >= 20
    for name, (kind, _labels) in declared.items():
        assert kind in ("counter", "gauge", "histogram"), name
        assert re.match(r"^slotwarden_(router|sentinel)_[a-z0-9_]+$", name), name
        assert name.endswith("_total") == (kind == "counter"), f"{name}: counters end in _total"
    for metric in ("router_backend_errors_total", "sentinel_node_state", "sentinel_failovers_total",
                   "sentinel_peer_up", "router_topology_epoch", "router_commands_total",
                   "router_command_seconds", "router_client_connections"):  # fmt: skip
        assert f"slotwarden_{metric}" in declared, metric


def test_metric_names_and_labels_are_declared():
    declared = declared_metrics()
    problems = []
    for where, expr in promql_sources():
        text = without_strings(expr)
        used_labels: set[str] = set(PROM_LABELS | {"le"})
        for name in re.findall(r"\bslotwarden_\w+", text):
            base = base_metric(name)
            if base is None:
                problems.append(f"{where}: {name} is not declared in METRICS.md")
            else:
                used_labels |= declared[base][1]
        # label matchers on a metric must be labels of that metric
        for name, matchers in re.findall(r"\b(slotwarden_\w+)\s*\{([^}]*)\}", expr):
            base = base_metric(name)
            if base is None:
                continue
            allowed = (
                declared[base][1] | PROM_LABELS | ({"le"} if name.endswith("_bucket") else set())
            )
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", without_strings(matchers)):
                if label not in allowed:
                    problems.append(f"{where}: {name} has no label {label!r}")
        # by/on/... clauses may only name labels some metric of the expression has
        for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", text):
            for label in filter(None, (x.strip() for x in group.split(","))):
                if label not in used_labels:
                    problems.append(f"{where}: grouping by {label!r}, which no metric here has")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- SIGHUP (ExecReload)


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _start(args: list[str], health: str, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    full_env = dict(os.environ, **env)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "slotwarden", *args], cwd=log.parent, env=full_env,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 20
    while _get(health) != 200:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"slotwarden {args[0]} did not come up:\n{log.read_text()}")
        time.sleep(0.1)
    return proc


def _survives_sighup(proc: subprocess.Popen[bytes], health: str, log: Path) -> None:
    try:
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert proc.poll() is None, (
            f"SIGHUP (systemd ExecReload) killed the process (status {proc.returncode}); "
            f"it must reload cluster.yaml instead:\n{log.read_text()}"
        )
        assert _get(health) == 200
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _small_cluster(tmp_path: Path, sentinel: bool) -> tuple[Path, int, int]:
    admin, peer = free_port(), free_port()
    text = (
        "name: hup\n"
        f"router: {{listen: 127.0.0.1:{free_port()}, admin: 127.0.0.1:{admin}}}\n"
        f"shards: [{{name: a, slots: 0-16383, master: 127.0.0.1:{free_port()}}}]\n"
    )
    if sentinel:
        text += (
            "sentinel: {quorum: 1, down_after_ms: 1000, failover_timeout_ms: 5000,"
            f" state_dir: {tmp_path / 'state'}, peers: [{{id: s1, listen: 127.0.0.1:{peer}}}]}}\n"
        )
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    return path, admin, peer


def test_router_survives_sighup(tmp_path):
    config, admin, _ = _small_cluster(tmp_path, sentinel=False)
    health = f"http://127.0.0.1:{admin}/health"
    log = tmp_path / "router.log"
    proc = _start(["router", "--config", str(config)], health, log, {})
    _survives_sighup(proc, health, log)


def test_sentinel_survives_sighup(tmp_path):
    config, _, peer = _small_cluster(tmp_path, sentinel=True)
    health = f"http://127.0.0.1:{peer}/health"
    log = tmp_path / "sentinel.log"
    env = {"SLOTWARDEN_SECRET": "test-secret"}
    proc = _start(["sentinel", "--config", str(config), "--id", "s1"], health, log, env)
    _survives_sighup(proc, health, log)
