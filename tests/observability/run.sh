#!/usr/bin/env bash
# Every monitoring check: the static ones (check_rules.sh: promtool check config / check rules /
# test rules, dashboard JSON and metric names) and the end-to-end one (prometheus_e2e.py: a real
# Prometheus scraping the real gateway binary, queried through its HTTP API).
#
#   bash tests/observability/run.sh            # ~1 s static + ~11 s end-to-end
#   BALLAST_BIN=/path/to/ballast bash tests/observability/run.sh
#
# Installs the Debian package `prometheus` when promtool/prometheus are missing (no service left
# running). Builds the debug binary with `cargo build` unless BALLAST_BIN is set. Both parts run
# even if the other failed; exits non-zero if either did.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
# shellcheck source=tests/observability/ensure_prometheus.sh
. tests/observability/ensure_prometheus.sh
ensure_prometheus

failed=()

printf '\n==> monitoring files: promtool and dashboard checks\n'
if ! bash tests/observability/check_rules.sh; then
    failed+=("check_rules.sh")
fi

if [ -z "${BALLAST_BIN:-}" ]; then
    printf '\n==> cargo build (the gateway binary for the end-to-end check)\n'
    cargo build
    BALLAST_BIN="${CARGO_TARGET_DIR:-$(pwd)/target}/debug/ballast"
fi
export BALLAST_BIN

printf '\n==> Prometheus end-to-end: scrape %s, query the API\n' "$BALLAST_BIN"
if ! python3 tests/observability/prometheus_e2e.py; then
    failed+=("prometheus_e2e.py")
fi

if [ "${#failed[@]}" -gt 0 ]; then
    printf '\n==> observability FAILED: %s\n' "${failed[*]}" >&2
    exit 1
fi
printf '\n==> observability checks passed\n'
