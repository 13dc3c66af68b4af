#!/usr/bin/env bash
# Outage drill: the real gateway on loopback in front of two fake upstreams
# (examples/drill_upstream.rs), under a steady open-loop load, while the PRIMARY goes through
# nine phases: healthy -> 503 storm -> hangs -> 429 with Retry-After: 30 -> empty 200s ->
# streams that open with a role chunk and then fail in-band -> slow (every answer after 2 s) ->
# a latency tail (1 answer in 40 after 5 s) -> healthy again. The secondary stays healthy
# throughout. Per phase it reports the share of client requests answered 2xx (in the two phases
# whose failures are 200s, the share of GOOD answers, judged client-side by
# examples/drill_client.rs), client p50/p99, upstream calls per client request and hedges per
# client request, against the targets below. See benches/outage-drill.md for the last run with
# hedging and benches/outage-drill-nohedge.md for the same drill without.
#
#   benches/outage-drill.sh                        # hedging on; ~7 minutes once built
#   HEDGE=off RESULTS=benches/outage-drill-nohedge.md benches/outage-drill.sh
#   HEDGE=both benches/outage-drill.sh            # off then on, one gateway each: ~14 minutes
#   RATE=200 PHASE_SECONDS=12 CONNECTIONS=1500 SEQUENCES="chained isolated" benches/outage-drill.sh
#   SOURCE=HEAD benches/outage-drill.sh           # the last commit, not the working tree
#
# Loopback only. It starts the two upstreams, the gateway (one per run: two with HEDGE=both), a
# /status poller, oha and drill_client, and stops exactly those, by PID, on exit. It is a
# measurement: it exits 0 whether the targets are met or not, and non-zero only when it cannot
# measure (a build, an install or a start failed; a gateway without hedging refuses HEDGE=on).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RATE=${RATE:-200}                   # client requests per second (open loop)
PHASE_SECONDS=${PHASE_SECONDS:-12}  # per phase; 9 phases per sequence
# oha's HTTP/1 connections = the most requests it can have in flight. Before the primary's
# circuit opens in the hang phase, requests take 2-6 s (attempt timeouts and retries), so at
# 200 req/s over a thousand can be in flight at once; fewer connections would throttle the
# open-loop rate exactly when it matters.
CONNECTIONS=${CONNECTIONS:-1500}
LATENCY=${LATENCY:-40ms}            # the fake upstreams' own latency when healthy
WARMUP=${WARMUP:-3}                 # seconds of load through the gateway before phase 1
OHA_THREADS=${OHA_THREADS:-1}
CLIENT_THREADS=${CLIENT_THREADS:-1} # drill_client's tokio workers
OHA_VERSION=${OHA_VERSION:-1.16.0}
# Which phase sequences to run, in order:
#   chained:  the nine phases back to back, as an outage would go; the primary's circuit state
#             (and the retry budget) carries over from one phase to the next, so a failure
#             phase may start with the circuit already open;
#   isolated: the same nine phases, but before each failure phase the primary is made healthy
#             and load runs (unmeasured) until its circuit reads closed, so that each failure
#             mode is met from a closed circuit.
SEQUENCES=${SEQUENCES:-chained isolated}
INTERLUDE_SECONDS=${INTERLUDE_SECONDS:-7}   # > the primary's open_for (5 s)
# What to build: empty for the working tree as it is; a commit (e.g. HEAD) to build a clean
# export of it instead, under benches/out/drill-build (useful while the tree is mid-edit).
SOURCE=${SOURCE:-}
# Hedging on the drill model: `on` gives it `hedge: { delay: auto, max_share: 10% }` (HEDGE_YAML),
# `off` no hedge key; `both` runs the whole drill twice, off then on, on the same upstreams and
# the same build, restarting only the gateway with the other config in between.
HEDGE=${HEDGE:-on}
HEDGE_YAML=${HEDGE_YAML:-'{ delay: auto, max_share: 10% }'}
# Where the report goes (HEDGE=on or off); with HEDGE=both the run without hedging goes to
# RESULTS_NOHEDGE and the one with to RESULTS.
RESULTS=${RESULTS:-benches/outage-drill.md}
RESULTS_NOHEDGE=${RESULTS_NOHEDGE:-${RESULTS%.md}-nohedge.md}

# Targets.
TARGET_OK_PCT=99.9          # answered 2xx (oha phases) or good answers (drill_client phases), every phase
TARGET_HANG_P99_FACTOR=2    # hang-phase p99 once the circuit opened < factor x secondary's own p50
TARGET_CALLS_PER_REQ=1.25   # upstream calls (primary + secondary) per client request, every phase
# With hedging on only (with it off, the same figures are reported, with the verdict n/a):
TARGET_HEDGE_P99_MS=150         # p99 in the slow and the tail phases
TARGET_TAIL_CALLS_PER_REQ=1.15  # upstream calls per client request in the tail phase
TARGET_HANG_PHASE_P99_MS=150    # the hang phase's p99 over the whole phase (isolated sequence)

TOOLS=benches/out/tools
RUN=benches/out/drill
OHA=${OHA:-$TOOLS/bin/oha}
BODY='{"model":"drill","messages":[{"role":"user","content":"hi"}]}'
STREAM_BODY='{"model":"drill","stream":true,"messages":[{"role":"user","content":"hi"}]}'

# The phases, NAME:PRIMARY_MODE:LOAD. LOAD is how the phase is driven and judged: `oha` (BODY,
# success = answered 2xx), `client` (drill_client with BODY) or `client-stream` (drill_client
# with STREAM_BODY), where success = a GOOD answer (a 200 with content; for a stream, content,
# no in-band error event, and [DONE] last): the primary's failures in those two phases are 200s
# (an empty answer; a stream that opens with a role chunk, then sends an error event and ends),
# which a gateway without answer checks or stream holding would pass through as successes.
PHASES=("healthy:healthy:oha" "503-storm:503:oha" "hang:hang:oha" "429-retry-after-30:429:oha"
    "empty-200s:empty:client" "role-chunk-then-error:role_error:client-stream"
    "slow:slow:oha" "tail:tail:oha" "healthy-again:healthy:oha")

log() { printf '[drill] %s\n' "$*" >&2; }
now() { date +%s.%N; }
# shellcheck source=benches/lib.sh
source benches/lib.sh

# --- processes we start, and only those, are stopped on exit ------------------------------------
PIDS=()   # stopped in reverse order of start
# shellcheck disable=SC2317
cleanup() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[$i]}"
    done
    PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools and builds ----------------------------------------------------------------------------
case $HEDGE in
    on|off|both) ;;
    *) log "HEDGE=$HEDGE: expected on, off or both"; exit 2 ;;
esac
if [[ $HEDGE == both && $RESULTS_NOHEDGE == "$RESULTS" ]]; then
    log "HEDGE=both needs RESULTS_NOHEDGE other than RESULTS ($RESULTS)"; exit 2
fi
for tool in cargo python3 curl; do
    command -v "$tool" >/dev/null || { log "needs $tool"; exit 2; }
done
ensure_oha
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -z $SOURCE ]]; then
    log "building ballast, the drill upstream and the drill client from the working tree (release)"
    cargo build --release --quiet --bin ballast --example drill_upstream --example drill_client
    BIN=${CARGO_TARGET_DIR:-target}/release
    if [[ -n "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]]; then
        COMMIT="$COMMIT (+ uncommitted changes in src/Cargo)"
    fi
else
    # A clean export of one commit, built on its own (the working tree may be mid-edit); the
    # drill's own upstream and client are taken from the working tree.
    COMMIT=$(git rev-parse --short "$SOURCE^{commit}") || { log "no commit \`$SOURCE'"; exit 2; }
    SNAP=benches/out/drill-build
    log "building ballast $COMMIT ($SOURCE) in $SNAP (release)"
    rm -rf "$SNAP/src"
    mkdir -p "$SNAP/src"
    git archive "$COMMIT" | tar -x -C "$SNAP/src"
    mkdir -p "$SNAP/src/examples"
    cp examples/drill_upstream.rs examples/drill_client.rs "$SNAP/src/examples/"
    CARGO_TARGET_DIR="$PWD/$SNAP/target" cargo build --release --quiet \
        --manifest-path "$SNAP/src/Cargo.toml" --bin ballast --example drill_upstream \
        --example drill_client
    BIN=$SNAP/target/release
    COMMIT="$COMMIT (a clean export of it, not the working tree)"
fi

rm -rf "$RUN"
mkdir -p "$RUN"


# --- the fake upstreams --------------------------------------------------------------------------
primary_ADDR="" secondary_ADDR=""
start_upstream() { # NAME -> sets ${NAME}_ADDR
    local name=$1 pid addr=""
    "$BIN/examples/drill_upstream" --listen 127.0.0.1:0 --latency "$LATENCY" --threads 1 \
        >"$RUN/$name.out" 2>"$RUN/$name.err" &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 100); do
        addr=$(sed -n 's/^listening //p' "$RUN/$name.out" 2>/dev/null || true)
        [[ -n "$addr" ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z "$addr" ]] || ! wait_http "http://$addr/health" "$pid"; then
        log "the $name upstream did not start:"; cat "$RUN/$name.err" >&2; exit 1
    fi
    printf -v "${name}_ADDR" '%s' "$addr"
    log "$name upstream on $addr (pid $pid, latency $LATENCY)"
}
start_upstream primary
start_upstream secondary

set_mode() { # MODE
    curl -fsS --max-time 2 -H 'content-type: application/json' -d "{\"mode\":\"$1\"}" \
        "http://$primary_ADDR/control" >/dev/null
}
stats() { curl -fsS --max-time 2 "http://$1/stats"; }
calls() { # ADDR -> the upstream's calls so far
    stats "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["calls"])'
}

# Waits for a load generator started in the background (so that a signal reaches the EXIT trap
# at once); its failure ends the drill with its stderr.
await_load() { # PID NAME STDERR_FILE
    local pid=$1 rc=0
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    unset 'PIDS[${#PIDS[@]}-1]'
    if [[ $rc -ne 0 ]]; then log "$2 failed ($rc):"; cat "$3" >&2; exit 1; fi
}

# Takes a process that has been stopped out of PIDS.
forget_pid() { # PID
    local kept=() p
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || kept+=("$p"); done
    PIDS=("${kept[@]}")
}

run_client() { # URL SECONDS RATE BODY OUT_JSONL SUMMARY_JSON
    # It stops by itself after SECONDS and at most its timeout (15 s) + 1 s more for stragglers.
    "$BIN/examples/drill_client" --url "$1" --seconds "$2" --rate "$3" --body "$4" \
        --timeout 15s --threads "$CLIENT_THREADS" --out "$5" >"$6" 2>"$RUN/client.stderr" &
    await_load $! drill_client "$RUN/client.stderr"
}

run_oha() { # URL SECONDS RATE OUT_JSON [DB]
    local args=(--no-tui --output-format json -o "$4" -z "${2}s" -q "$3" -c "$CONNECTIONS"
        --worker-threads "$OHA_THREADS" -w --latency-correction -t 15s
        -m POST -H 'content-type: application/json' -d "$BODY")
    [[ $# -ge 5 ]] && args+=(--db-url "$5")
    "$OHA" "${args[@]}" "$1" >"$RUN/oha.stdout" 2>"$RUN/oha.stderr" &
    await_load $! oha "$RUN/oha.stderr"
}

# --- the gateway (one per run; OUT is the run's directory) ---------------------------------------
# No response cache: every drill request is the same, so with the (default) memory cache all but
# the first would be answered from it and no upstream would ever be called. `answer_checks:
# [empty]`: a 200 with no text, no tool call and no refusal is a failed attempt (bad_answer),
# retried and failed over like a 503 and counted by the circuit breaker (the empty-200s phase).
# With hedging on, `hedge:` on the drill model: once the first attempt has neither answered nor
# streamed content after the delay, one more starts on the next target (the secondary). Without
# it, the model's last line is empty.
write_config() { # HEDGE(on|off) -> $OUT/ballast.yaml
    local hedge=""
    if [[ $1 == on ]]; then hedge="    hedge: $HEDGE_YAML"; fi
    cat >"$OUT/ballast.yaml" <<EOF
server: { listen: 127.0.0.1:0, request_timeout: 10s, shutdown_grace: 2s }
cache: { backend: none }
providers:
  primary:
    kind: openai
    base_url: http://$primary_ADDR/v1
    api_key: drill-key
    timeouts: { connect: 500ms, first_byte: 2s, idle: 2s, total: 2s }
    retry: { max_retries: 2, base_delay: 50ms, max_delay: 1s }
    circuit_breaker: { consecutive_failures: 5, open_for: 5s }
  secondary:
    kind: openai
    base_url: http://$secondary_ADDR/v1
    api_key: drill-key
    retry: { max_retries: 1, base_delay: 50ms, max_delay: 1s }
models:
  drill:
    targets: [ { provider: primary, model: p }, { provider: secondary, model: s } ]
    answer_checks: [empty]
${hedge}
EOF
}

GW_PID="" GW="" GATEWAY_URL=""
start_gateway() { # HEDGE(on|off) -> GW_PID, GW, GATEWAY_URL
    local attempt port
    GW_PID=""
    for attempt in 1 2 3; do
        port=$(free_port)
        # warn: no per-request log lines (an info line per response would cost throughput), but
        # the breaker's "circuit opened" lines, whose timestamps the report uses.
        BALLAST_LOG=warn "$BIN/ballast" serve --config "$OUT/ballast.yaml" \
            --listen "127.0.0.1:$port" --log-format json 2>>"$OUT/gateway.log" &
        GW_PID=$!
        PIDS+=("$GW_PID")
        if wait_http "http://127.0.0.1:$port/healthz" "$GW_PID"; then
            break
        fi
        log "gateway start attempt $attempt failed:"; tail -5 "$OUT/gateway.log" >&2
        stop_pid "$GW_PID"; forget_pid "$GW_PID"; GW_PID=""
    done
    [[ -n "$GW_PID" ]] || exit 1
    GW="127.0.0.1:$port"
    GATEWAY_URL="http://$GW/v1/chat/completions"
    log "ballast on $GW (pid $GW_PID, hedging $1)"
}

stop_gateway() {
    stop_pid "$GW_PID"; forget_pid "$GW_PID"; GW_PID=""
}

# The gateway's hedges so far: sum(ballast_hedges_total) by outcome, as JSON (all 0 while it has
# none, as without hedging).
hedges() {
    curl -fsS --max-time 2 "http://$GW/metrics" | awk '
        /^ballast_hedges_total[{ ]/ {
            o = "other"
            if (match($0, /outcome="[^"]*"/)) o = substr($0, RSTART + 9, RLENGTH - 10)
            if (o != "won" && o != "lost" && o != "failed") o = "other"
            v = $0
            if (index(v, "}") > 0) v = substr(v, index(v, "}") + 1); else sub(/^[^ ]+/, "", v)
            split(v, f, " ")
            n[o] += f[1]
        }
        END {
            printf "{\"won\":%d,\"lost\":%d,\"failed\":%d,\"other\":%d}\n",
                n["won"], n["lost"], n["failed"], n["other"]
        }'
}

# Two identical requests: both must be answered by the primary itself (not a cache); and one
# streamed request, judged by drill_client: a good stream, from the primary.
check_gateway() {
    local n headers before
    before=$(calls "$primary_ADDR")
    for n in 1 2; do
        headers=$(curl -sS --max-time 5 -D - -o "$OUT/check.json" -H 'content-type: application/json' \
            -d "$BODY" "$GATEWAY_URL")
        if ! grep -qi '^x-ballast-provider: primary' <<<"$headers" \
            || ! grep -qi '^x-ballast-route: primary' <<<"$headers" \
            || ! grep -q '"object":"chat.completion"' "$OUT/check.json"; then
            log "unexpected answer $n through the gateway:"; printf '%s\n' "$headers" >&2
            head -c 300 "$OUT/check.json" >&2; exit 1
        fi
    done
    run_client "$GATEWAY_URL" 1 1 "$STREAM_BODY" "$OUT/check-stream.jsonl" "$OUT/check-stream.json"
    if ! grep -q '"good":1,' "$OUT/check-stream.json"; then
        log "the streamed check request through the gateway is not a good answer:"
        cat "$OUT/check-stream.jsonl" >&2; exit 1
    fi
    if [[ $(calls "$primary_ADDR") != $((before + 3)) ]]; then
        log "the primary did not see the three check requests: $(stats "$primary_ADDR")"; exit 1
    fi
}

# --- the poller (one per run): /status and the primary's held-open count every 100 ms, and every
# 500 ms one probe request through the gateway whose x-ballast-* headers are recorded -------------
cat >"$RUN/poller.py" <<'PY'
import json, os, sys, threading, time, urllib.error, urllib.request

gw, primary, out_path, stop_path, max_seconds = sys.argv[1:6]
parent = os.getppid()
lock = threading.Lock()
out = open(out_path, "a", buffering=1)
body = b'{"model":"drill","messages":[{"role":"user","content":"hi"}]}'
probes = threading.BoundedSemaphore(64)


def write(record):
    with lock:
        out.write(json.dumps(record) + "\n")


def get_json(url):
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return json.load(r)
    except Exception as err:  # noqa: BLE001 - a missed poll is recorded, not fatal
        return {"error": str(err)}


def probe():
    t = time.time()
    rec = {"kind": "probe", "t": t}
    req = urllib.request.Request(f"http://{gw}/v1/chat/completions", data=body,
                                 headers={"content-type": "application/json"})
    try:
        try:
            r = urllib.request.urlopen(req, timeout=15)
        except urllib.error.HTTPError as err:
            r = err
        with r:
            r.read()
            rec.update(status=r.status, route=r.headers.get("x-ballast-route"),
                       provider=r.headers.get("x-ballast-provider"),
                       attempts=r.headers.get("x-ballast-attempts"),
                       hedged=r.headers.get("x-ballast-hedged") == "true")
    except Exception as err:  # noqa: BLE001
        rec.update(status=None, error=str(err))
    rec["ms"] = (time.time() - t) * 1e3
    write(rec)
    probes.release()


deadline = time.time() + float(max_seconds)
tick = 0
while time.time() < deadline and not os.path.exists(stop_path) and os.getppid() == parent:
    t = time.time()
    status = get_json(f"http://{gw}/status")
    circuits = {name: p.get("circuit") for name, p in status.get("providers", {}).items()}
    up = get_json(f"http://{primary}/stats")
    write({"kind": "poll", "t": t, "circuits": circuits, "hanging": up.get("hanging")})
    if tick % 5 == 0 and probes.acquire(blocking=False):
        threading.Thread(target=probe, daemon=True).start()
    tick += 1
    time.sleep(max(0.0, 0.1 - (time.time() - t)))
PY
POLLER_PID="" POLL_SECONDS=0
start_poller() { # -> POLLER_PID
    local n=${#PHASES[@]} n_seq
    n_seq=$(wc -w <<<"$SEQUENCES")
    # The poller's own bound, whatever happens here: every sequence's phases (each phase, plus
    # the wait for its stragglers, at most 16 s, plus its mode switch and its /status, /stats and
    # /metrics reads, at most 2 s each), the interludes (at most 4 rounds, with a healthy
    # primary, each at most its length + 16 s, before each phase of the isolated sequence and
    # before the sequence), and a margin. It grows with the number of phases and sequences.
    POLL_SECONDS=$((n_seq * n * (PHASE_SECONDS + 16 + 16) + (n + 1) * 4 * (INTERLUDE_SECONDS + 16 + 2) + 300))
    rm -f "$OUT/poll.stop"
    python3 "$RUN/poller.py" "$GW" "$primary_ADDR" "$OUT/poll.jsonl" "$OUT/poll.stop" "$POLL_SECONDS" &
    POLLER_PID=$!
    PIDS+=("$POLLER_PID")
}

stop_poller() {
    touch "$OUT/poll.stop"
    sleep 0.5   # it sees the file within 100 ms
    stop_pid "$POLLER_PID"; forget_pid "$POLLER_PID"; POLLER_PID=""
}

# --- the phases (PHASES is at the top) ----------------------------------------------------------
primary_circuit() {
    curl -fsS --max-time 2 "http://$GW/status" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["providers"]["primary"]["circuit"])'
}

# Healthy primary and load at the drill's rate (unmeasured) until the primary's circuit reads
# closed: after open_for, the next request is the half-open trial, which now succeeds. The load
# also keeps the retry budget's 10 s window as full as during the phases. Bounded: 4 rounds.
close_primary_circuit() { # SEQ INDEX
    local k state
    set_mode healthy
    for k in 1 2 3 4; do
        state=$(primary_circuit)
        [[ $state == closed ]] && return 0
        log "  interlude: primary circuit $state; ${INTERLUDE_SECONDS}s of load with the primary healthy"
        run_oha "$GATEWAY_URL" "$INTERLUDE_SECONDS" "$RATE" "$OUT/interlude-$1-$2-$k.json"
    done
    log "  the primary's circuit is still $(primary_circuit); going on (the report shows its state)"
}

# Other load generators on this machine (another benchmark running at
# the same time shares the 2 cores and makes the figures noisier): listed in the report.
others() {
    local pid p mine
    for pid in $(pgrep -f -- 'benches/run.sh|bin/oha' || true); do
        mine=0
        for p in "${PIDS[@]}" "$$"; do [[ $pid == "$p" ]] && mine=1; done
        [[ $mine == 1 ]] || ps -o pid=,args= -p "$pid" 2>/dev/null | cut -c1-120 || true
    done
}

run_sequence() { # NAME ISOLATED(0|1)
    local seq=$1 isolated=$2 i=0 phase name mode load c0 tb t0 t1 ta p0 s0 h0 p1 s1 h1
    for phase in "${PHASES[@]}"; do
        i=$((i + 1))
        name=${phase%%:*}
        mode=${phase#*:}
        load=${mode#*:}
        mode=${mode%%:*}
        if [[ $isolated == 1 && $mode != healthy ]]; then
            close_primary_circuit "$seq" "$i"
        fi
        others | sed "s/^/$seq phase $i: /" >>"$OUT/others.txt"
        set_mode "$mode"
        c0=$(primary_circuit)
        tb=$(now)
        p0=$(stats "$primary_ADDR"); s0=$(stats "$secondary_ADDR"); h0=$(hedges)
        log "$seq phase $i/${#PHASES[@]}: $name (primary: $mode, its circuit $c0), ${PHASE_SECONDS}s at $RATE req/s ($load)"
        t0=$(now)
        case $load in
            oha) run_oha "$GATEWAY_URL" "$PHASE_SECONDS" "$RATE" "$OUT/$seq-$i.json" "$OUT/$seq-$i.db" ;;
            client) run_client "$GATEWAY_URL" "$PHASE_SECONDS" "$RATE" "$BODY" \
                "$OUT/$seq-$i.jsonl" "$OUT/$seq-$i.summary.json" ;;
            client-stream) run_client "$GATEWAY_URL" "$PHASE_SECONDS" "$RATE" "$STREAM_BODY" \
                "$OUT/$seq-$i.jsonl" "$OUT/$seq-$i.summary.json" ;;
            *) log "phase $name: unknown load \`$load' (oha, client, client-stream)"; exit 2 ;;
        esac
        t1=$(now)
        p1=$(stats "$primary_ADDR"); s1=$(stats "$secondary_ADDR"); h1=$(hedges)
        ta=$(now)
        printf '{"seq":"%s","index":%d,"name":"%s","mode":"%s","load":"%s","circuit0":"%s","tb":%s,"t0":%s,"t1":%s,"ta":%s,"p0":%s,"s0":%s,"h0":%s,"p1":%s,"s1":%s,"h1":%s}\n' \
            "$seq" "$i" "$name" "$mode" "$load" "$c0" "$tb" "$t0" "$t1" "$ta" "$p0" "$s0" "$h0" "$p1" "$s1" "$h1" >>"$OUT/phases.jsonl"
    done
}
# --- the report (run once per drill run, by drill below) -------------------------------------
cat >"$RUN/report.py" <<'PY'
import json, os, re, sqlite3
from datetime import datetime, timezone

env = os.environ
run = env["OUT"]   # this run's files; the secondary's direct latency is in env["RUN"]
ok_target = float(env["TARGET_OK_PCT"])
hang_factor = float(env["TARGET_HANG_P99_FACTOR"])
calls_target = float(env["TARGET_CALLS_PER_REQ"])
hedge_on = env["HEDGE_RUN"] == "on"
hedge_p99_ms = float(env["TARGET_HEDGE_P99_MS"])
tail_calls_target = float(env["TARGET_TAIL_CALLS_PER_REQ"])
hang_phase_p99_ms = float(env["TARGET_HANG_PHASE_P99_MS"])
OUTCOMES = ("won", "lost", "failed", "other")


def pct(values, q):
    """Nearest-rank percentile (q in 0..100) of a list; None when empty."""
    if not values:
        return None
    values = sorted(values)
    k = max(1, -(-len(values) * q // 100))  # ceil
    return values[int(k) - 1]


def rows(db):
    """(sent, scheduled, end, latency from scheduled send, status, success) of every HTTP answer;
    success: answered 2xx."""
    con = sqlite3.connect(db)
    try:
        return [r + (200 <= r[4] < 300,) for r in con.execute(
            "SELECT start, coalesce(start_latency_correction, start), end, duration, status FROM oha"
        ).fetchall()]
    finally:
        con.close()


def client(path, t0):
    """drill_client's records, and the same rows as rows() for those that ended (times from t0,
    the phase's start, like the gateway-log openings); success: a good answer."""
    with open(path) as f:
        recs = [json.loads(l) for l in f if l.strip()]
    rs = [(r["start"] - t0, r["scheduled"] - t0, r["end"] - t0, r["latency_s"], r["status"], r["good"])
          for r in recs if r["end"] is not None]
    return recs, rs


def oha(path):
    with open(path) as f:
        d = json.load(f)
    statuses = {int(k): v for k, v in d.get("statusCodeDistribution", {}).items()}
    errors = d.get("errorDistribution", {})
    aborted = sum(v for k, v in errors.items() if "deadline" in k)
    errors = {k: v for k, v in errors.items() if "deadline" not in k}
    return statuses, errors, aborted


def fmt_ms(v):
    return "n/a" if v is None else f"{v * 1e3:.1f}"


# The secondary's own latency, direct.
sec_lat = [r[3] for r in rows(f"{env['RUN']}/secondary-direct.db") if 200 <= r[4] < 300]
sec_p50, sec_p99 = pct(sec_lat, 50), pct(sec_lat, 99)
hang_limit = hang_factor * sec_p50 if sec_p50 else None

polls, probes = [], []
with open(f"{run}/poll.jsonl") as f:
    for line in f:
        rec = json.loads(line)
        (polls if rec["kind"] == "poll" else probes).append(rec)

# "circuit opened" lines of the gateway log (warn level), as wall-clock times.
opened = []
ts_re = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z")
warnings = 0
with open(f"{run}/gateway.log") as f:
    for line in f:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        fields = rec.get("fields", {})
        if fields.get("message") == "circuit opened":
            m = ts_re.match(rec.get("timestamp", ""))
            if m:
                t = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
                frac = float("0." + m.group(2)) if m.group(2) else 0.0
                opened.append((fields.get("provider"), t.timestamp() + frac))
        elif rec.get("level") in ("WARN", "ERROR"):
            warnings += 1


def analyse(ph):
    seq, i, t0, t1 = ph["seq"], ph["index"], ph["t0"], ph["t1"]
    judged = ph.get("load", "oha") != "oha"
    if judged:
        recs, rs = client(f"{run}/{seq}-{i}.jsonl", t0)
        statuses, errors, not_good = {}, {}, {}
        for rec in recs:
            if rec["status"] is None:
                errors[rec["why"]] = errors.get(rec["why"], 0) + 1
            else:
                statuses[rec["status"]] = statuses.get(rec["status"], 0) + 1
            if not rec["good"]:
                not_good[rec["why"]] = not_good.get(rec["why"], 0) + 1
        aborted = 0
        total = len(recs)
        ok = sum(1 for rec in recs if rec["good"])
    else:
        statuses, errors, aborted = oha(f"{run}/{seq}-{i}.json")
        rs = rows(f"{run}/{seq}-{i}.db")
        total = sum(statuses.values()) + sum(errors.values())
        ok = sum(v for k, v in statuses.items() if 200 <= k < 300)
        not_good = {}
    ok_2xx = sum(v for k, v in statuses.items() if 200 <= k < 300)
    lat = [r[3] for r in rs]
    # Probes sent between the two /stats reads also reached the upstreams: they count as
    # client requests of the phase for the calls-per-request figure.
    ph_probes = [p for p in probes if ph["tb"] <= p["t"] < ph["ta"]]
    calls_p = ph["p1"]["calls"] - ph["p0"]["calls"]
    calls_s = ph["s1"]["calls"] - ph["s0"]["calls"]
    delayed = ph["p1"].get("delayed", 0) - ph["p0"].get("delayed", 0)
    requests = total + len(ph_probes)
    # Hedges started in the phase, by outcome: sum(ballast_hedges_total) on the gateway's /metrics,
    # read right along with the /stats reads (so probes' hedges are in, as in calls per request).
    hedges = {o: ph["h1"].get(o, 0) - ph["h0"].get(o, 0) for o in OUTCOMES}
    hedged = sum(hedges.values())
    ph_polls = [p for p in polls if t0 <= p["t"] <= t1]
    seen = []
    for p in ph_polls:
        c = p.get("circuits", {}).get("primary")
        if c and (not seen or seen[-1] != c):
            seen.append(c)
    open_log = [t - t0 for prov, t in opened if prov == "primary" and t0 <= t <= t1]
    hanging = max((p.get("hanging") or 0 for p in ph_polls), default=0)
    # Peak client requests in flight, and sends oha made late (all its connections busy).
    events = sorted([(r[0], 1) for r in rs] + [(r[2], -1) for r in rs])
    inflight = peak = 0
    for _, d in events:
        inflight += d
        peak = max(peak, inflight)
    routes = {}
    for p in ph_probes:
        key = f"{p.get('status')} {p.get('route')}/{p.get('provider')} x{p.get('attempts')}"
        if p.get("hedged"):
            key += " hedged"
        routes[key] = routes.get(key, 0) + 1
    r = {
        "seq": seq, "i": i, "name": ph["name"], "mode": ph["mode"], "circuit0": ph["circuit0"],
        "judged": judged, "stream": ph.get("load") == "client-stream", "not_good": not_good,
        "ok_2xx_pct": 100.0 * ok_2xx / total if total else 0.0,
        "total": total, "ok": ok, "ok_pct": 100.0 * ok / total if total else 0.0,
        "statuses": statuses, "errors": errors, "aborted": aborted,
        "p50": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat, default=None),
        "calls_p": calls_p, "calls_s": calls_s, "requests": requests, "probes": len(ph_probes),
        "cpr": (calls_p + calls_s) / requests if requests else 0.0, "seen": seen,
        "delayed": delayed, "hedges": hedges, "hedged": hedged,
        "hpr": hedged / requests if requests else 0.0,
        "open_log": open_log, "hanging": hanging, "peak": peak,
        "late": sum(1 for x in rs if x[0] - x[1] > 0.05), "routes": routes, "seconds": t1 - t0,
    }
    # "Once the circuit has opened": the whole phase when it was already open (or half-open) at
    # its start; else the requests scheduled after its first opening in the phase (log time).
    first_open = 0.0 if ph["circuit0"] != "closed" else (open_log[0] if open_log else None)
    if first_open is not None:
        after = [x for x in rs if x[1] >= first_open]
        r.update(open_at=first_open, before_open=sum(1 for x in rs if x[1] < first_open),
                 after_n=len(after), after_ok=sum(1 for x in after if x[5]),
                 after_p50=pct([x[3] for x in after], 50), after_p99=pct([x[3] for x in after], 99),
                 after_slow=sum(1 for x in after if x[3] >= 1.0))
    return r


phases = [json.loads(l) for l in open(f"{run}/phases.jsonl")]
sequences = []
for ph in phases:
    if not sequences or sequences[-1][0] != ph["seq"]:
        sequences.append((ph["seq"], []))
    sequences[-1][1].append(analyse(ph))

N_PHASES = max((len(results) for _, results in sequences), default=0)
TITLES = {
    "chained": f"Sequence 1, chained: the {N_PHASES} phases back to back (as specified)",
    "isolated": "Sequence 2, isolated: each failure phase starts from a closed circuit",
}
BLURBS = {
    "chained": "The primary's circuit state and the retry budget carry over from one phase to "
               "the next, as in a real outage that changes shape: a failure phase can start with "
               "the circuit already open from the previous one.",
    "isolated": "Before each failure phase the primary is made healthy and the same load runs, "
                "unmeasured, until its circuit reads closed (the half-open trial succeeds), so "
                "each failure mode is met head-on by a closed circuit. The last phase still "
                "starts from whatever the failure phase before it left (that is the recovery "
                "being measured).",
}

out = []
w = out.append
all_verdicts, all_na = [], []
judged_names = ", ".join(dict.fromkeys(
    r["name"] for _, results in sequences for r in results if r["judged"]))
w(f"# Outage drill: primary fails, secondary answers (hedging {'on' if hedge_on else 'off'})\n")
w(f"- date: {env['DRILL_DATE']}")
if hedge_on:
    w(f"- hedging: **on**: the drill model has `hedge: {env['HEDGE_YAML']}`: once the first "
      "attempt (on the primary) has neither answered nor streamed its first content after the "
      "delay, one more attempt starts on the next target (the secondary); the first good answer "
      "wins and the other is cancelled, and an attempt that loses to a hedge counts as a failure "
      "for its provider's circuit breaker; at most max_share of the model's requests over the "
      "last 10 s start a hedge"
      + (f"; the same drill without hedging: `{env['COMPANION']}`" if env.get("COMPANION") else ""))
else:
    w("- hedging: **off**: no `hedge` key on the drill model (the same drill, for comparison with "
      "hedging on); the hedging targets are reported with their measured values and the verdict "
      "n/a"
      + (f"; the same drill with hedging: `{env['COMPANION']}`" if env.get("COMPANION") else ""))
w(f"- machine: {env['MACHINE']}; load average before/after the phases: "
  f"{env['LOAD_BEFORE']} / {env['LOAD_AFTER']}")
w(f"- ballast: commit {env['COMMIT']}, release build, {env['RUSTC_VER']}, log level warn")
w(f"- load: {env['OHA_VER']}, open loop at {env['RATE']} req/s, {env['PHASE_SECONDS']} s per phase, "
  f"at most {env['CONNECTIONS']} HTTP/1.1 connections, latency corrected (measured from the "
  "scheduled send), per-request timeout 15 s; one oha run per phase, which waits for its "
  "in-flight requests before the next phase starts"
  + ("; in the phases whose failures are 200s, examples/drill_client.rs instead (below)"
     if judged_names else ""))
w(f"- upstreams: examples/drill_upstream.rs x2, healthy latency {env['LATENCY']}; the secondary "
  "is healthy throughout; the primary's mode is switched right before each phase. In `slow` "
  "the primary answers every request after a flat 2 s (the length of its attempt timeout, "
  "`total: 2s`, in the config below); in `tail` it answers one call in 40 (every 40th counted "
  "from the phase's start) after a flat 5 s and the others after its healthy latency")
w(f"- the secondary's own latency (direct, 50 req/s, {len(sec_lat)} requests): "
  f"p50 {fmt_ms(sec_p50)} ms, p99 {fmt_ms(sec_p99)} ms")
w(f"- targets: answered 2xx >= {ok_target:g} % in every phase"
  + (f" driven by oha, good answers >= {ok_target:g} % in the others ({judged_names})"
     if judged_names else "")
  + f"; hang-phase p99 once the primary's "
  f"circuit has opened < {hang_factor:g} x the secondary's own p50 = {fmt_ms(hang_limit)} ms; "
  f"upstream calls (primary + secondary) per client request <= {calls_target:g} in every phase; "
  f"with hedging on: p99 <= {hedge_p99_ms:g} ms in slow and in tail, the hang phase's p99 over "
  f"the whole phase < {hang_phase_p99_ms:g} ms (isolated sequence), upstream calls per client "
  f"request <= {tail_calls_target:g} in tail"
  + ("" if hedge_on else " (reported, verdict n/a: hedging is off)"))
w("- client requests are those of the phase's load generator (oha, or drill_client): the 2xx "
  "(or good-answer) share and the latencies are over them. Calls per request also counts, in its "
  "denominator, the probe requests (2/s) the script sends through the gateway to record the "
  "`x-ballast-*` headers, since their upstream calls are in the numerator. The probes are always "
  "non-streamed: in a `role_error` phase the primary answers them 500 (its non-streamed failure "
  "in that mode). Hedges per request is the increase of `sum(ballast_hedges_total)` on the "
  "gateway's `/metrics`, read along with the upstreams' `/stats` right before and right after "
  "the phase, over the same denominator (client requests + probes); its outcomes (won: the hedge "
  "answered; lost: the first attempt did; failed: both failed) are in the notes under each "
  "table, and a probe whose answer had `x-ballast-hedged: true` is listed as `hedged`.")
if judged_names:
    w(f"- **good answers** ({judged_names}): the primary's failures there are 200s (an answer with "
      "no content; a stream that opens with a role-only chunk, then sends an in-band "
      "`data: {\"error\": ...}` event and ends without `[DONE]`), which a gateway without answer "
      "checks or held streams passes through as successes, so a 2xx says nothing. Those phases "
      "are driven by examples/drill_client.rs (open loop at the same rate, measured from the "
      "scheduled send, per-request timeout 15 s, waiting at most that long for stragglers), which "
      "reads every answer: GOOD is a 200 whose `choices[0].message` has a non-empty `content` or "
      "a tool call (non-streamed body), or a 200 event stream with at least one non-empty "
      "`choices[].delta.content` (or tool-call delta), no error event and `data: [DONE]` last "
      "(`\"stream\": true` body). Their share column and their first target are the share of "
      "good answers; their 2xx share is in the notes under each table.")
    w("- calls per request in those phases: the same <= "
      f"{calls_target:g} target applies, over the whole phase. Before the primary's circuit "
      "opens a request can cost a primary call, up to `max_retries` (2) more on the primary if "
      "the gateway retries the failure there, and a secondary call (up to 4), but the failure "
      "counts for the breaker as a 503 does (5 in a row open it for 5 s, then one half-open "
      "trial), so over a phase these are a few dozen extra calls on some "
      f"{round(float(env['RATE']) * float(env['PHASE_SECONDS']))} requests, as in the 503 "
      "storm. A figure well above the target means the breaker is not counting these "
      "failures (or the gateway retries them too much), which is what the target is there to "
      "show; it is no part of the good-answer requirement itself.")
w("")
for seq, results in sequences:
    w(f"## {TITLES.get(seq, seq)}\n")
    w(BLURBS.get(seq, ""))
    w("")
    w("| # | phase (primary mode) | circuit at start | client requests | answered 2xx | p50 (ms) "
      "| p99 (ms) | max (ms) | upstream calls (primary + secondary) | calls / request "
      "| hedges / request |")
    w("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        share = f"good answers: {r['ok_pct']:.2f} %" if r["judged"] else f"{r['ok_pct']:.2f} %"
        w(f"| {r['i']} | {r['name']} ({r['mode']}) | {r['circuit0']} | {r['total']} | "
          f"{share} | {fmt_ms(r['p50'])} | {fmt_ms(r['p99'])} | {fmt_ms(r['max'])} | "
          f"{r['calls_p']} + {r['calls_s']} = {r['calls_p'] + r['calls_s']} | {r['cpr']:.3f} | "
          f"{r['hpr']:.3f} |")
    w("")
    if any(r["judged"] for r in results):
        w("Where the share reads *good answers*, the load was drill_client and the share is of "
          "good answers (judged client-side, as above), not of 2xx.")
        w("")
    w("| target | phase | measured | target | verdict |")
    w("| --- | --- | ---: | ---: | --- |")
    verdicts, na = [], []

    def check(name, phase, measured, target, ok, hedging=False):
        """A target row; a hedging target without hedging is reported, not judged."""
        if hedging and not hedge_on:
            na.append(name)
            verdict = "n/a (no hedging)"
        else:
            verdicts.append(ok)
            verdict = "PASS" if ok else "MISS"
        w(f"| {name} | {phase} | {measured} | {target} | {verdict} |")

    def ms_check(name, phase, value, op, limit_ms):
        ok = value is not None and (value * 1e3 <= limit_ms if op == "<=" else value * 1e3 < limit_ms)
        check(name, phase, f"{fmt_ms(value)} ms", f"{op} {limit_ms:g} ms", ok, hedging=True)

    for r in results:
        check("good answers" if r["judged"] else "answered 2xx", r["name"],
              f"{r['ok_pct']:.2f} %", f">= {ok_target:g} %", r["ok_pct"] >= ok_target)
    for r in results:
        if r["mode"] != "hang":
            continue
        if r.get("after_p99") is not None and hang_limit:
            check("p99 once the circuit opened", r["name"], f"{fmt_ms(r['after_p99'])} ms",
                  f"< {fmt_ms(hang_limit)} ms", r["after_p99"] < hang_limit)
        else:
            check("p99 once the circuit opened", r["name"], "it never opened",
                  f"< {fmt_ms(hang_limit)} ms", False)
    for r in results:
        if r["mode"] in ("slow", "tail"):
            ms_check("p99 (hedging)", r["name"], r["p99"], "<=", hedge_p99_ms)
    for r in results:
        if r["mode"] == "hang" and seq == "isolated":
            ms_check("p99 over the whole phase (hedging)", r["name"], r["p99"], "<",
                     hang_phase_p99_ms)
    for r in results:
        check("upstream calls per request", r["name"], f"{r['cpr']:.3f}", f"<= {calls_target:g}",
              r["cpr"] <= calls_target)
    for r in results:
        if r["mode"] == "tail":
            check("upstream calls per request (hedging)", r["name"], f"{r['cpr']:.3f}",
                  f"<= {tail_calls_target:g}", r["cpr"] <= tail_calls_target, hedging=True)
    w("")
    w(f"{seq}: {sum(verdicts)} of {len(verdicts)} targets met"
      + (f" ({len(na)} hedging targets n/a: hedging is off)." if na else "."))
    w("")
    all_verdicts += verdicts
    all_na += na
    for r in results:
        tool = "drill_client" if r["judged"] else "oha"
        measure = "good" if r["judged"] else "2xx"
        bits = [f"**{r['name']}** ({r['seconds']:.1f} s with the wait for in-flight requests)"]
        bits.append("statuses " + ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items())))
        if r["judged"]:
            bits.append(f"{'streamed' if r['stream'] else 'non-streamed'} requests judged by "
                        f"drill_client: answered 2xx {r['ok_2xx_pct']:.2f} %, good answers "
                        f"{r['ok_pct']:.2f} %")
            if r["not_good"]:
                bits.append("not good (why: count) " + "; ".join(
                    f"{k}: {v}" for k, v in sorted(r["not_good"].items(), key=lambda kv: -kv[1])))
        elif r["errors"]:
            bits.append("client-side errors " + "; ".join(f"{k}: {v}" for k, v in r["errors"].items()))
        if r["aborted"]:
            bits.append(f"{r['aborted']} aborted at oha's deadline (not counted)")
        bits.append("primary circuit " + " -> ".join(r["seen"] or ["?"]) + " (polled every 100 ms)")
        if r["open_log"]:
            bits.append("opened at " + ", ".join(f"+{t:.2f} s" for t in r["open_log"])
                        + " (gateway log)")
        if "open_at" in r and (r["mode"] == "hang" or r["before_open"]):
            bits.append(f"{r['before_open']} requests scheduled before it was open; the "
                        f"{r['after_n']} after: {100.0 * r['after_ok'] / max(r['after_n'], 1):.2f} % {measure}, "
                        f"p50 {fmt_ms(r['after_p50'])} ms, p99 {fmt_ms(r['after_p99'])} ms, "
                        f"{r['after_slow']} took >= 1 s")
        bits.append(f"peak client requests in flight {r['peak']}, sends {tool} made > 50 ms late {r['late']}")
        h = r["hedges"]
        bits.append(f"hedges started {r['hedged']} ({r['hpr']:.3f} / request): won {h['won']}, "
                    f"lost {h['lost']}, failed {h['failed']}"
                    + (f", other outcomes {h['other']}" if h["other"] else ""))
        if r["delayed"]:
            bits.append(f"primary calls delayed by its mode (2 s slow, 5 s tail) {r['delayed']}")
        if r["hanging"]:
            bits.append(f"peak requests held open by the primary (hung, or waiting out a delay) "
                        f"{r['hanging']}")
        bits.append("probes (status route/provider x attempts): "
                    + (", ".join(f"{k}: {v}" for k, v in sorted(r["routes"].items())) or "none"))
        w("- " + "; ".join(bits))
    w("")
others = [l.strip() for l in open(f"{run}/others.txt") if l.strip()]
if others:
    w("Other benchmark processes running on the machine at phase starts (noise): "
      + "; ".join(f"`{l}`" for l in others[:10]) + (" ..." if len(others) > 10 else ""))
    w("")
w(f"Overall: {sum(all_verdicts)} of {len(all_verdicts)} targets met"
  + (f" ({len(all_na)} hedging targets n/a: hedging is off)" if all_na else "")
  + f". Gateway log lines at warn or above other than 'circuit opened': {warnings}.")
w("")
w("## Gateway config used\n")
w("```yaml")
w(open(f"{run}/ballast.yaml").read().rstrip())
w("```")
print("\n".join(out))
PY

# --- one run of the drill: a gateway with hedging on or off, the sequences, the report ------------
drill() { # HEDGE(on|off) OUT RESULTS [COMPANION: the other run's results file]
    local hedge=$1 seq
    OUT=$2
    mkdir -p "$OUT"
    : >"$OUT/phases.jsonl"
    : >"$OUT/others.txt"
    : >"$OUT/gateway.log"
    log "=== the drill with hedging $hedge (results: $3; raw files: $OUT)"
    set_mode healthy
    write_config "$hedge"
    start_gateway "$hedge"
    check_gateway
    log "warm-up through the gateway: ${WARMUP}s at $RATE req/s"
    run_oha "$GATEWAY_URL" "$WARMUP" "$RATE" "$OUT/warmup.json"
    start_poller
    sleep 1   # a few polls before the first phase
    LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
    for seq in $SEQUENCES; do
        case $seq in
            chained) run_sequence chained 0 ;;
            isolated) close_primary_circuit isolated 0; run_sequence isolated 1 ;;
            *) log "unknown sequence \`$seq' (chained, isolated)"; exit 2 ;;
        esac
    done
    LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
    stop_poller
    kill -0 "$GW_PID" 2>/dev/null || { log "the gateway died during the drill"; exit 1; }
    stop_gateway

    HEDGE_RUN=$hedge COMPANION=${4:-}
    DRILL_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
    export OUT HEDGE_RUN COMPANION DRILL_DATE LOAD_BEFORE LOAD_AFTER
    python3 "$RUN/report.py" >"$OUT/report.md"
    cat "$OUT/report.md"
    cp "$OUT/report.md" "$3"
    log "written to $3 (raw oha JSON/SQLite, drill_client JSONL, poll log and gateway log in $OUT)"
}

export RUN RATE PHASE_SECONDS CONNECTIONS LATENCY OHA_THREADS COMMIT HEDGE_YAML \
    TARGET_OK_PCT TARGET_HANG_P99_FACTOR TARGET_CALLS_PER_REQ \
    TARGET_HEDGE_P99_MS TARGET_TAIL_CALLS_PER_REQ TARGET_HANG_PHASE_P99_MS
MACHINE="nproc $(nproc), Linux $(uname -r), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
OHA_VER=$("$OHA" --version)
RUSTC_VER=$(rustc --version)
export MACHINE OHA_VER RUSTC_VER

# Every run's config is validated (`ballast check`, offline) before the first run starts, so that
# a gateway that refuses one (HEDGE=on or both with a build that has no hedging) fails the drill
# at once rather than after the run without hedging.
check_config() { # HEDGE(on|off) OUT
    OUT=$2
    mkdir -p "$OUT"
    write_config "$1"
    if ! "$BIN/ballast" check --config "$OUT/ballast.yaml" >"$OUT/config-check.txt" 2>&1; then
        log "the gateway refuses the drill's config with hedging $1:"; cat "$OUT/config-check.txt" >&2
        if [[ $1 == on ]]; then
            log "(a gateway without hedging refuses the \`hedge' key; HEDGE=off runs without it)"
        fi
        exit 1
    fi
}

case $HEDGE in
    on|off) check_config "$HEDGE" "$RUN" ;;
    both) check_config off "$RUN/hedge-off"; check_config on "$RUN/hedge-on" ;;
esac

# The secondary's own latency, direct, at a low rate: once (both runs of HEDGE=both share it).
log "secondary's own latency: direct, 50 req/s for 4 s"
run_oha "http://$secondary_ADDR/v1/chat/completions" 4 50 "$RUN/secondary-direct.json" \
    "$RUN/secondary-direct.db"

case $HEDGE in
    on|off) drill "$HEDGE" "$RUN" "$RESULTS" ;;
    both)
        drill off "$RUN/hedge-off" "$RESULTS_NOHEDGE" "$RESULTS"
        drill on "$RUN/hedge-on" "$RESULTS" "$RESULTS_NOHEDGE"
        ;;
esac
exit 0
