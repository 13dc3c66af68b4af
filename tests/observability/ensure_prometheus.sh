#!/usr/bin/env bash
# Makes sure `promtool` and `prometheus` (Debian package `prometheus`, /usr/bin/*) are installed.
# Sourced by check_rules.sh and run.sh; also runnable on its own:
#
#   bash tests/observability/ensure_prometheus.sh
#
# The package's maintainer scripts would start a Prometheus service. To keep a test machine
# clean, a policy-rc.d that forbids service starts is put in place for the install (unless the
# machine already has one, as Docker images do) and removed afterwards. If a service was started
# anyway (a systemd machine ignores policy-rc.d for `deb-systemd-invoke`), it is stopped again:
# only a `prometheus` process that did not exist before the install, runs /usr/bin/prometheus
# as the package's `prometheus` user, and is therefore the package's service.

ensure_prometheus() {
    if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: promtool/prometheus missing and apt-get is not available" >&2
        return 1
    fi
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi

    echo "installing Debian package 'prometheus' (provides promtool and prometheus)"
    if ! apt-cache policy prometheus 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
    fi

    # pgrep is in procps, which a slim image may lack: then only policy-rc.d guards.
    local before="" created_policy=0 have_pgrep=0
    if command -v pgrep >/dev/null 2>&1; then
        have_pgrep=1
        before="$(pgrep -x prometheus || true)"
    fi
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
        $sudo chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi

    local rc=0
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        prometheus || rc=$?
    if [ "$rc" -ne 0 ]; then
        # Without an init system a postinst may fail on starting the service even though the
        # files are unpacked; finish configuring and carry on if the binaries are there.
        $sudo env DEBIAN_FRONTEND=noninteractive dpkg --configure -a || true
    fi

    if [ "$created_policy" -eq 1 ]; then
        $sudo rm -f /usr/sbin/policy-rc.d
    fi

    # Stop a service the package may have started all the same (see the header).
    local pid pids=""
    if [ "$have_pgrep" -eq 1 ]; then
        pids="$(pgrep -x prometheus || true)"
    fi
    for pid in $pids; do
        if printf '%s\n' "$before" | grep -qx "$pid"; then
            continue
        fi
        if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "/usr/bin/prometheus" ] &&
            [ "$(ps -o user= -p "$pid" 2>/dev/null | tr -d ' ')" = "prometheus" ]; then
            echo "stopping the Prometheus service the package started (pid $pid)"
            if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
                $sudo systemctl stop prometheus.service || $sudo kill "$pid" || true
            else
                $sudo kill "$pid" || true
            fi
        fi
    done

    if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
        echo "error: installing 'prometheus' did not provide promtool and prometheus" >&2
        return 1
    fi
    echo "installed: $(promtool --version 2>&1 | head -n1)"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    ensure_prometheus
fi
