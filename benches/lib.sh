# Shell helpers shared by the benchmark scripts (run.sh, outage-drill.sh, cache-hits.sh).
# Sourced, not run. The caller defines `log`, and OHA, OHA_VERSION and TOOLS for ensure_oha.

# A free TCP port on 127.0.0.1 (free when asked; bind soon after).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Waits (bounded, ~10 s) until GET $1 answers 2xx while process $2 lives.
wait_http() { # URL PID
    local url=$1 pid=$2
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 1
        curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# SIGTERM to one process this script started, SIGKILL if it is still there after 5 s.
# shellcheck disable=SC2317  # (called from EXIT traps)
stop_pid() { # PID (empty: nothing to do)
    local pid=$1
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Installs the pinned load generator into $TOOLS the first time.
ensure_oha() {
    if [[ ! -x "$OHA" ]]; then
        log "installing oha $OHA_VERSION into $TOOLS (once; a few minutes)"
        cargo install oha --locked --version "$OHA_VERSION" --root "$TOOLS"
    fi
}
