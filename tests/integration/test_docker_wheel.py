"""The Docker image's install path has the C speedups, checked without a Docker engine.

Replays deploy/docker/Dockerfile's two install steps on this machine: the
build stage's COPY instructions (through Dockerfile.dockerignore, with
Docker's last-match-wins rule) into a temporary root, its ENV, and its RUN
that builds the wheels (``pip wheel``); then the runtime stage's RUN that
makes the venv from them (its ``--mount=type=bind,from=build``). Container
paths are mapped under the temporary root, ``python``/``pip`` are this
interpreter (the image's Python minor version is checked to be the same).
Then the venv's Python must report ``speedups c`` (what INFO router says), and
the venv must hold no sources besides the installed package.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "deploy" / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
IGNORE = DOCKER / "Dockerfile.dockerignore"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) with continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
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


def stages() -> list[tuple[str | None, list[tuple[str, str]]]]:
    """(stage name, its instructions), in order; the ARGs before the first FROM applied."""
    args: dict[str, str] = {}
    found: list[tuple[str | None, list[tuple[str, str]]]] = []
    for instr, rest in instructions():
        if instr == "ARG" and not found:
            key, _, value = rest.partition("=")
            args[key] = value
            continue
        if instr == "FROM":
            words = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest).split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            found.append((name, [(instr, words[0])]))
        else:
            found[-1][1].append((instr, rest))
    return found


def _pattern(text: str) -> re.Pattern[str]:
    regex = ""
    i = 0
    while i < len(text):
        if text.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif text.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif text[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif text[i] == "?":
            regex, i = regex + "[^/]", i + 1
        else:
            regex, i = regex + re.escape(text[i]), i + 1
    return re.compile(regex + r"\Z")


def ignored(rel: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negated, pattern in rules:
        if any(pattern.match(p) for p in prefixes):
            excluded = not negated
    return excluded


def context_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in IGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, _pattern(line.lstrip("!").lstrip("/"))))
    return rules


def in_root(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def copy_into(
    root: Path, workdir: str, rest: str, rules: list[tuple[bool, re.Pattern[str]]]
) -> None:
    """COPY SRC... DEST from the build context (the repo, filtered) into the root."""
    *sources, dest = rest.split()
    target = in_root(root, dest if dest.startswith("/") else f"{workdir}/{dest}")
    for src in sources:
        path = REPO / src
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            rel = f.relative_to(REPO).as_posix()
            if ignored(rel, rules):
                continue
            out = target / f.relative_to(path) if path.is_dir() else target / f.name
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, out)


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instr, rest in stage:
        if instr == "ENV":
            for token in shlex.split(rest):
                key, _, value = token.partition("=")
                if "$" not in value:  # PATH=/opt/...:$PATH: the commands use full paths
                    env[key] = value
    return env


def run_shell(command: str, root: Path, cwd: Path, env: dict[str, str]) -> None:
    """An ``a && b && c`` RUN line, each command's container paths mapped under root."""
    for part in command.split("&&"):
        argv = [str(in_root(root, a)) if a.startswith("/") else a for a in shlex.split(part)]
        if argv[0] == "python":
            argv = [sys.executable, *argv[1:]]
        elif argv[0] == "pip":
            argv = [sys.executable, "-m", "pip", *argv[1:]]
        result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{part.strip()}:\n{result.stdout}\n{result.stderr}"


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("PYTHONPATH", "SLOTWARDEN_PURE_PYTHON", "VIRTUAL_ENV"):
        env.pop(name, None)
    return env


def test_dockerfile_installs_a_wheel_with_the_c_speedups(tmp_path):
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("no C compiler here (the image's build stage installs gcc)")
    found = stages()
    assert len(found) >= 2, "want a build stage and a runtime stage"
    (build_name, build), (_, runtime) = found[0], found[-1]
    assert build_name, "the build stage needs a name (FROM ... AS build)"
    image = runtime[0][1]
    assert re.fullmatch(rf"python:{sys.version_info[0]}\.{sys.version_info[1]}(-\S+)?", image), (
        f"the image's Python ({image}) is not this one ({sys.version_info[:2]})"
    )

    root = tmp_path / "root"
    rules = context_rules()
    workdir = "/"
    wheel_runs = []
    for instr, rest in build:
        if instr == "WORKDIR":
            workdir = rest
            in_root(root, workdir).mkdir(parents=True, exist_ok=True)
        elif instr == "COPY":
            assert not rest.startswith("--"), f"COPY {rest}: not replayed by this test"
            copy_into(root, workdir, rest, rules)
        elif instr == "RUN" and "pip wheel" in rest:
            wheel_runs.append((rest, workdir))
    assert len(wheel_runs) == 1, "the build stage must build the wheels with one `pip wheel`"
    assert (in_root(root, workdir) / "setup.py").is_file(), "setup.py (the C speedups) not copied"
    command, cwd = wheel_runs[0]
    run_shell(command, root, in_root(root, cwd), {**base_env(), **env_of(build)})
    wheels = sorted(p.name for p in root.rglob("slotwarden-*.whl"))
    assert len(wheels) == 1 and "-cp3" in wheels[0], f"not a compiled slotwarden wheel: {wheels}"

    installs = [rest for instr, rest in runtime if instr == "RUN" and "pip install" in rest]
    assert len(installs) == 1, "the runtime stage must install the wheels with one RUN"
    command = installs[0]
    while command.startswith("--mount="):
        mount, _, command = command.partition(" ")
        opts = dict(o.split("=", 1) for o in mount.removeprefix("--mount=").split(","))
        assert opts.get("from") == build_name, f"{mount}: not from the build stage"
        if opts["source"] != opts["target"]:
            shutil.copytree(in_root(root, opts["source"]), in_root(root, opts["target"]))
        command = command.strip()
    assert "--no-index" in command, "the runtime stage must install only the built wheels"
    run_shell(command, root, tmp_path, {**base_env(), **env_of(runtime)})

    entry = next(json.loads(rest) for instr, rest in runtime if instr == "ENTRYPOINT")
    venvs = [p.parent.parent for p in root.rglob("bin/python") if (p.parent / entry[0]).exists()]
    assert len(venvs) == 1, f"want one venv with bin/{entry[0]}, got {venvs}"
    venv = venvs[0]
    check = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import router.wire.hot as a, slotwarden.resp._speedups as c, router.wire._hot as h;"
            "print(a.implementation(), c.__file__, h.__file__)",
        ],
        cwd=tmp_path,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    kind, *where = check.stdout.split()
    assert kind == "c"
    for path in where:  # both C extensions: the byte work and the router's hot path
        assert Path(path).is_relative_to(venv), f"speedups loaded from {path}, not the venv"
    version = subprocess.run(
        [str(venv / "bin" / entry[0]), "--version"], capture_output=True, text=True, timeout=60
    )
    assert version.returncode == 0 and version.stdout.startswith("slotwarden "), version
