"""Shared by the deployment checks: the check registry, `${VAR}` handling, durations and
`ballast check` on a config text in a given environment."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# What the gateway serves (src/http/router.rs); probes and scrapes must name one of these.
SERVED_PATHS = {"/v1/chat/completions", "/v1/models", "/healthz", "/readyz", "/status", "/metrics"}

try:
    import yaml
except ImportError:
    print("FAIL  setup: PyYAML is not installed (pip install -r tests/sdk/requirements.txt)")
    print("0 passed, 1 failed")
    sys.exit(1)


class Skip(Exception):
    """A check that has nothing to look at (an optional file is absent)."""


CHECKS: list[tuple[str, object]] = []


def check(name: str):
    """Registers a check: a function returning a list of problems (empty when it passes)."""

    def register(function):
        CHECKS.append((name, function))
        return function

    return register


DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def seconds(text: str) -> float:
    """`250ms`, `30s`, `1m30s` (compose) or `7d` (ballast) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(us|ms|s|m|h|d)", str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text).strip():
        raise ValueError(f"`{text}` is not a duration")
    return sum(float(n) * DURATION_UNITS[u] for n, u in parts)


REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+][^}]*)?\}")


def references(text: str) -> list[tuple[str, bool]]:
    """The `${VAR}` references of a text: (name, has a default)."""
    text = text.replace("$${", "")
    return [
        (m.group(1), bool(m.group(2)) and m.group(2).lstrip(":").startswith("-"))
        for m in REFERENCE.finditer(text)
    ]


def interpolate(text: str) -> str:
    """Compose's interpolation with nothing set: defaults where given, else empty."""

    def replace(match: re.Match) -> str:
        suffix = match.group(2) or ""
        return suffix.lstrip(":")[1:] if suffix.lstrip(":").startswith("-") else ""

    return REFERENCE.sub(replace, str(text)).replace("$$", "$")


def yaml_strings(value) -> list[str]:
    """Every string of a parsed YAML tree (ballast expands ${VAR} in those only)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for child in value.values() for s in yaml_strings(child)]
    if isinstance(value, list):
        return [s for child in value for s in yaml_strings(child)]
    return []


def config_references(text: str) -> list[tuple[str, bool]]:
    return [ref for s in yaml_strings(yaml.safe_load(text)) for ref in references(s)]


def ballast_binary() -> Path:
    if os.environ.get("BALLAST_BIN"):
        return Path(os.environ["BALLAST_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    if not target.is_absolute():
        target = REPO / target
    return target / "debug" / "ballast"


class CheckResult:
    def __init__(self, code: int, output: str):
        self.code = code
        self.output = output
        listen = re.search(r"^server: listen (\S+),", output, re.M)
        grace = re.search(r"shutdown_grace ([^\s,]+)", output)
        self.listen = listen.group(1) if listen else None
        self.shutdown_grace = seconds(grace.group(1)) if grace else None


@cache
def _run_check(text: str, env_items: tuple) -> CheckResult:
    binary = ballast_binary()
    if not binary.exists():
        raise RuntimeError(f"{binary} not found: run `cargo build` first (or set BALLAST_BIN)")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **dict(env_items)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ballast.yaml"
        path.write_text(text)
        done = subprocess.run(
            [str(binary), "check", "--config", str(path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    return CheckResult(done.returncode, done.stdout + done.stderr)


def ballast_check(text: str, env: dict[str, str], dummies: bool) -> CheckResult:
    """`ballast check` on a config text in exactly `env` (plus, with `dummies`, a dummy value
    for each variable the config needs without a default)."""
    env = dict(env)
    if dummies:
        for name, has_default in config_references(text):
            if not has_default:
                env.setdefault(name, f"dummy-{name.lower()}")
    return _run_check(text, tuple(sorted(env.items())))


def listen_problems(where: str, result: CheckResult, port: int) -> list[str]:
    """The gateway must listen on all interfaces on the port the container exposes."""
    if result.listen is None:
        return [f"{where}: `ballast check` printed no listen address"]
    host, _, listen_port = result.listen.rpartition(":")
    problems = []
    if listen_port != str(port):
        problems.append(f"{where}: listens on port {listen_port}, the container port is {port}")
    if host in ("127.0.0.1", "localhost", "[::1]", "::1"):
        problems.append(
            f"{where}: listens on {result.listen}, unreachable from outside the " "container"
        )
    return problems


def check_output_problem(where: str, result: CheckResult) -> list[str]:
    if result.code == 0:
        return []
    lines = [line.strip() for line in result.output.splitlines() if line.strip()]
    return [f"{where}: `ballast check` exited {result.code}: " + " | ".join(lines[:6])]
