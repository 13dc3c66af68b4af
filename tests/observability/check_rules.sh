#!/usr/bin/env bash
# Static checks of the monitoring files (no gateway, no network):
#   promtool check config deploy/prometheus/prometheus.yml   (and the rule file it names)
#   promtool check rules  deploy/prometheus/alerts.yml
#   promtool test rules   deploy/prometheus/alerts_test.yml  (every alert fires / does not fire)
#   tests/observability/check_dashboard.py                   (dashboard JSON, metric names, labels)
#
#   bash tests/observability/check_rules.sh
#
# Installs promtool (Debian package `prometheus`) when it is missing, without leaving a
# Prometheus service running. Takes about a second once promtool is there.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=tests/observability/ensure_prometheus.sh
. tests/observability/ensure_prometheus.sh
ensure_prometheus

failed=()
run() {
    printf '\n--> %s\n' "$*"
    if ! "$@"; then
        failed+=("$*")
    fi
}

# `promtool check config` also checks the rule files it names, relative to the config file.
run promtool check config deploy/prometheus/prometheus.yml
run promtool check rules deploy/prometheus/alerts.yml
run promtool test rules deploy/prometheus/alerts_test.yml
run python3 tests/observability/check_dashboard.py .

if [ "${#failed[@]}" -gt 0 ]; then
    printf '\nobservability checks FAILED: %s\n' "$(printf '[%s] ' "${failed[@]}")" >&2
    exit 1
fi
printf '\nobservability checks passed\n'
