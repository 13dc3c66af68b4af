#!/usr/bin/env bash
# Runs every test of the project: the Rust tests (`cargo test`) and the official `openai` and
# `anthropic` Python SDKs against the real gateway binary (tests/sdk).
#
#   bash tests/run.sh
#
# On a fresh Debian machine it installs what is missing without asking (python3-venv through
# apt-get when `python3 -m venv` cannot work, the pinned SDK into .venv). Re-running it is cheap:
# the venv is reused and pip runs only when tests/sdk/requirements.txt changed or openai is
# missing. Exits non-zero when any step fails; the Rust tests and the SDK tests both run even
# if the other one failed, so one run shows every failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT="$(pwd)"
VENV="$REPO_ROOT/.venv"
REQUIREMENTS="tests/sdk/requirements.txt"
STAMP="$VENV/.sdk-requirements.sha256"

step() {
    printf '\n==> %s\n' "$*"
}

# --------------------------------------------------------------------------------------------
step "Python environment for the SDK tests (.venv)"

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: need $* but apt-get is not available; install them and re-run" >&2
        exit 1
    fi
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    echo "installing with apt-get: $*"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

if ! command -v python3 >/dev/null 2>&1; then
    apt_install python3 python3-venv
fi

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV"; then
        # Debian's python3 ships venv without ensurepip unless python3-venv is installed.
        rm -rf "$VENV"
        apt_install python3-venv
        python3 -m venv "$VENV"
    fi
    echo "created $VENV"
fi

wanted="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
installed="$(cat "$STAMP" 2>/dev/null || true)"
versions='import anthropic, openai, pytest; print("openai", openai.__version__, "anthropic", anthropic.__version__, "pytest", pytest.__version__)'
if [ "$wanted" != "$installed" ] || ! "$VENV/bin/python" -c "$versions" >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQUIREMENTS"
    echo "$wanted" >"$STAMP"
    echo "installed: $("$VENV/bin/python" -c "$versions")"
else
    echo "up to date: $("$VENV/bin/python" -c "$versions")"
fi

# --------------------------------------------------------------------------------------------
step "redis-server (the cache tests start their own on free ports)"
if ! command -v redis-server >/dev/null 2>&1; then
    # The package would start a system instance; the tests start their own, so forbid it.
    created_policy=""
    if [ "$(id -u)" -eq 0 ] && [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    install_status=0
    apt_install redis-server || install_status=$?
    if [ -n "$created_policy" ]; then
        rm -f /usr/sbin/policy-rc.d
    fi
    [ "$install_status" -eq 0 ] || exit "$install_status"
fi
redis-server --version

# --------------------------------------------------------------------------------------------
step "cargo build (debug binary for the SDK, deploy and observability tests)"
cargo build
export BALLAST_BIN="${BALLAST_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/ballast}"

# --------------------------------------------------------------------------------------------
failed=()

step "cargo test (Rust tests)"
if ! cargo test; then
    failed+=("cargo test")
fi

step "pytest tests/sdk (openai and anthropic Python SDKs against the gateway binary)"
if ! "$VENV/bin/python" -m pytest -q tests/sdk; then
    failed+=("pytest tests/sdk")
fi

step "tests/deploy/check_deploy.py (Dockerfile, compose, Kubernetes manifests, configs)"
if ! "$VENV/bin/python" tests/deploy/check_deploy.py; then
    failed+=("tests/deploy/check_deploy.py")
fi

step "monitoring: promtool rule tests, dashboard checks, Prometheus end-to-end"
if ! bash tests/observability/run.sh; then
    failed+=("tests/observability/run.sh")
fi

# --------------------------------------------------------------------------------------------
if [ "${#failed[@]}" -gt 0 ]; then
    printf '\n==> FAILED: %s\n' "$(IFS=,; echo "${failed[*]}" | sed 's/,/, /g')" >&2
    exit 1
fi
printf '\n==> all tests passed\n'
