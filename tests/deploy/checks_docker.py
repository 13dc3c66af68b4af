"""Checks of Dockerfile and .dockerignore."""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
from functools import cache
from pathlib import Path, PurePosixPath

from checks_common import REPO, ballast_check, check, check_output_problem, listen_problems, yaml

BUILD_COMMAND = "cargo build --release --locked"


class Stage:
    def __init__(self, image: str, name: str | None):
        self.image = image
        self.name = name
        self.instructions: list[tuple[str, str]] = []

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


@cache
def dockerfile() -> list[Stage]:
    stages: list[Stage] = []
    logical = ""
    for raw in (REPO / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not logical):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        keyword, _, args = logical.strip().partition(" ")
        keyword, args, logical = keyword.upper(), args.strip(), ""
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(words[0], name))
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return stages


def exec_form(args: str) -> list[str]:
    if args.startswith("["):
        return yaml.safe_load(args)
    return shlex.split(args)


def copy_parts(args: str) -> tuple[dict[str, str], list[str], str]:
    words = exec_form(args)
    flags = dict(w[2:].partition("=")[::2] for w in words if w.startswith("--"))
    paths = [w for w in words if not w.startswith("--")]
    return flags, paths[:-1], paths[-1]


def image_env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.all("ENV"):
        words = shlex.split(args)
        if words and "=" not in words[0]:
            env[words[0]] = " ".join(words[1:])
        else:
            env.update(w.partition("=")[::2] for w in words)
    return env


def image_file_source(stage: Stage, image_path: str) -> Path | None:
    """The repository file a path of the final image comes from (via COPY), if any."""
    target = PurePosixPath(image_path)
    for args in stage.all("COPY"):
        flags, sources, dest = copy_parts(args)
        if "from" in flags:
            continue
        for source in sources:
            local = REPO / source
            if local.is_dir():
                base = PurePosixPath(dest)
                if target.is_relative_to(base):
                    return local / target.relative_to(base)
            else:
                copied = (
                    PurePosixPath(dest) / local.name if dest.endswith("/") else PurePosixPath(dest)
                )
                if copied == target:
                    return local
    return None


def run_segments(stage: Stage) -> list[str]:
    return [seg.strip() for args in stage.all("RUN") for seg in re.split(r"&&|;|\|\|", args)]


@check("Dockerfile: multi-stage, built in rust:*-bookworm, run in debian:bookworm-slim")
def docker_stages():
    stages = dockerfile()
    problems = []
    if len(stages) < 2:
        problems.append(f"{len(stages)} stage(s), expected a build stage and a runtime stage")
    elif not stages[0].image.startswith("rust:"):
        problems.append(f"the build stage is FROM {stages[0].image}, expected a rust: image")
    if stages and stages[-1].image != "debian:bookworm-slim":
        problems.append(f"the runtime stage is FROM {stages[-1].image}")
    elif len(stages) >= 2 and not stages[0].image.endswith("-bookworm"):
        # The binary links against the build image's glibc: the runtime must be as new.
        problems.append(
            f"the build stage {stages[0].image} is not on Debian bookworm like the runtime"
        )
    return problems


@check(f"Dockerfile: every cargo build is `{BUILD_COMMAND}`, the binary copied from it")
def docker_build_command():
    stages = dockerfile()
    problems = []
    builds = [seg for seg in run_segments(stages[0]) if "cargo build" in seg]
    if not builds:
        problems.append("the build stage runs no `cargo build`")
    for seg in builds:
        if not seg.startswith(BUILD_COMMAND):
            problems.append(f"`{seg}` is not `{BUILD_COMMAND} ...`")
    workdir = (stages[0].all("WORKDIR") or ["/"])[-1]
    expected = f"{workdir.rstrip('/')}/target/release/ballast"
    copied = [copy_parts(a) for a in stages[-1].all("COPY")]
    from_build = [(f, s) for f, s, _ in copied if f.get("from") in (stages[0].name, "0")]
    if not any(expected in s for _, s in from_build):
        problems.append(f"the runtime stage does not COPY {expected} from the build stage")
    return problems


@check("Dockerfile: the dependency layer builds with Cargo.toml's targets")
def docker_cargo_targets():
    """The cached layer builds with only Cargo.toml, Cargo.lock and placeholder files; the
    final build with src/ alone. A target declared elsewhere (a [[bench]] in benches/, a
    build.rs) would break `docker build` although `cargo build` passes."""
    stages = dockerfile()
    manifest = tomllib.loads((REPO / "Cargo.toml").read_text())
    runs = " ".join(stages[0].all("RUN"))
    placeholders = set(re.findall(r"\bsrc/[\w/]+\.rs\b", runs))
    problems = []
    declared = []
    if "lib" in manifest:
        declared.append(manifest["lib"].get("path", "src/lib.rs"))
    for kind in ("bin", "example", "test", "bench"):
        for target in manifest.get(kind, []):
            declared.append(target.get("path", f"<default path of [[{kind}]] {target['name']}>"))
    for path in declared:
        if path not in placeholders:
            problems.append(
                f"Cargo.toml declares a target at {path}, which the dependency layer "
                f"does not create ({', '.join(sorted(placeholders))})"
            )
    build_script = manifest.get("package", {}).get("build", "build.rs")
    if build_script and (REPO / str(build_script)).exists():
        problems.append(f"{build_script} exists but the Dockerfile does not copy it")
    return problems


@check("Dockerfile: COPY sources exist and .dockerignore lets them in (and keeps .env out)")
def docker_copy_sources():
    problems = []
    for stage in dockerfile():
        for args in stage.all("COPY") + stage.all("ADD"):
            flags, sources, _ = copy_parts(args)
            if "from" in flags:
                continue
            for source in sources:
                if not (REPO / source).exists():
                    problems.append(f"COPY {source}: no such file in the repository")
                elif dockerignored(source):
                    problems.append(f"COPY {source}: excluded by .dockerignore")
    for secret in (".env", ".git", "target"):
        if not dockerignored(secret):
            problems.append(f"{secret} is sent in the build context (.dockerignore)")
    return problems


def dockerignored(path: str) -> bool:
    """Docker's rule: the last matching pattern wins, `!` re-includes; a match on a directory
    covers what is below it."""
    ignore = REPO / ".dockerignore"
    patterns = [line.strip() for line in ignore.read_text().splitlines()] if ignore.exists() else []
    excluded = False
    parts = PurePosixPath(path).parts
    for pattern in patterns:
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        pattern = pattern[3:] if pattern.startswith("**/") else pattern
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            excluded = not negate
    return excluded


@check("Dockerfile: runs as a non-root USER, health check on /healthz, `ballast serve`")
def docker_runtime():
    final = dockerfile()[-1]
    problems = []
    users = final.all("USER")
    if not users:
        problems.append("the runtime stage has no USER (runs as root)")
    elif users[-1].split(":")[0] in ("0", "root"):
        problems.append(f"USER {users[-1]} is root")
    env = image_env(final)
    port = env.get("BALLAST_LISTEN", "").rpartition(":")[2]
    health = final.all("HEALTHCHECK")
    if not health:
        problems.append("no HEALTHCHECK")
    elif (
        f"127.0.0.1:{port}/healthz" not in health[-1]
        and f"localhost:{port}/healthz" not in health[-1]
    ):
        problems.append(f"HEALTHCHECK `{health[-1]}` does not poll /healthz on port {port}")
    if [port] != [p.split("/")[0] for p in final.all("EXPOSE")]:
        problems.append(f"EXPOSE {final.all('EXPOSE')} differs from BALLAST_LISTEN's port {port}")
    command = exec_form((final.all("ENTRYPOINT") or [""])[-1]) + exec_form(
        (final.all("CMD") or [""])[-1]
    )
    if [PurePosixPath(command[0]).name if command else "", *command[1:2]] != ["ballast", "serve"]:
        problems.append(f"the container runs {command}, expected `ballast serve`")
    return problems


@check("Dockerfile: the image's default config is copied in and serves on the exposed port")
def docker_default_config():
    final = dockerfile()[-1]
    env = image_env(final)
    image_path = env.get("BALLAST_CONFIG")
    if not image_path:
        return ["no ENV BALLAST_CONFIG"]
    source = image_file_source(final, image_path)
    if source is None or not source.is_file():
        return [f"BALLAST_CONFIG={image_path} is not a file the Dockerfile copies"]
    result = ballast_check(source.read_text(), env, dummies=False)
    port = int(env.get("BALLAST_LISTEN", "0.0.0.0:8080").rpartition(":")[2])
    return check_output_problem(
        f"{image_path} (from {source.relative_to(REPO)})", result
    ) or listen_problems(image_path, result, port)
