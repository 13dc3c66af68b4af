#!/usr/bin/env bash
# The latency ballast adds, measured: oha drives a fast fake upstream (examples/bench_upstream.rs)
# directly and through the gateway, in interleaved rounds at a fixed request rate, and the
# difference is checked against the budget. See benches/README.md.
#
#   benches/run.sh                      # 3-5 minutes once built (plus `cargo install oha` once)
#   RATE=500 DURATION=12 ROUNDS=3 CONNECTIONS=8 benches/run.sh
#
# Loopback only. It starts two processes (the fake upstream and the gateway) and stops exactly
# those, by PID, on exit. It is a measurement: it exits 0 whether the budget is met or not, and
# non-zero only when it cannot measure (a build, an install or a start failed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RATE=${RATE:-500}                 # requests per second, per oha run
DURATION=${DURATION:-12}          # seconds per measured run
ROUNDS=${ROUNDS:-3}               # direct/ballast pairs per mode
CONNECTIONS=${CONNECTIONS:-8}     # oha keep-alive connections (the same for both targets)
WARMUP=${WARMUP:-3}               # seconds of warm-up per target and mode
QUIET_MAX=${QUIET_MAX:-10}        # before each run, wait for other processes to use at most this %...
QUIET_WAIT=${QUIET_WAIT:-30}      # ...for at most this many seconds (then run anyway, noted)
NOISY_MAX=${NOISY_MAX:-10}        # a round whose runs saw more foreign CPU load (%) than this...
NOISY_RETRIES=${NOISY_RETRIES:-2} # ...is run again, at most this many times
OHA_THREADS=${OHA_THREADS:-1}     # oha's tokio workers (2 cores are shared by all three)
UPSTREAM_THREADS=${UPSTREAM_THREADS:-1}
GATEWAY_WORKERS=${GATEWAY_WORKERS:-}  # ballast's server.workers; empty: its default (one per core)
CACHE_BACKEND=${CACHE_BACKEND:-none}  # ballast's response cache (none: measure forwarding)
OHA_VERSION=${OHA_VERSION:-1.16.0}
RESULTS=${RESULTS:-benches/results.md}

# Budget: ballast's added latency (median over rounds of ballast minus direct) and its peak RSS.
BUDGET_P50_MS=0.2
BUDGET_P99_MS=1.0
BUDGET_RSS_MIB=50

TOOLS=benches/out/tools
RUN=benches/out/run
OHA=${OHA:-$TOOLS/bin/oha}

log() { printf '[bench] %s\n' "$*" >&2; }
# shellcheck source=benches/lib.sh
source benches/lib.sh

# --- processes we start, and only those, are stopped on exit ------------------------------------
UP_PID=""
GW_PID=""
cleanup() {
    stop_pid "$GW_PID"
    stop_pid "$UP_PID"
}
trap cleanup EXIT

# --- tools and builds ----------------------------------------------------------------------------
for tool in cargo python3 curl flock; do
    command -v "$tool" >/dev/null || { log "needs $tool"; exit 2; }
done
ensure_oha
log "building ballast and the bench upstream (release)"
cargo build --release --quiet --bin ballast --example bench_upstream --example bare_proxy

# One run at a time: a second one would clobber $RUN and disturb this one's numbers.
mkdir -p benches/out
exec 9>benches/out/run.lock
if ! flock -w 600 9; then
    log "another benches/run.sh still holds benches/out/run.lock after 10 minutes"; exit 3
fi
rm -rf "$RUN"
mkdir -p "$RUN"


# --- the fake upstream ---------------------------------------------------------------------------
# (9>&-: the servers must not inherit, and so hold, the run lock.)
target/release/examples/bench_upstream --listen 127.0.0.1:0 --threads "$UPSTREAM_THREADS" \
    >"$RUN/upstream.out" 2>"$RUN/upstream.err" 9>&- &
UP_PID=$!
UP_ADDR=""
for _ in $(seq 1 100); do
    UP_ADDR=$(sed -n 's/^listening //p' "$RUN/upstream.out" 2>/dev/null || true)
    [[ -n "$UP_ADDR" ]] && break
    kill -0 "$UP_PID" 2>/dev/null || break
    sleep 0.1
done
if [[ -z "$UP_ADDR" ]] || ! wait_http "http://$UP_ADDR/health" "$UP_PID"; then
    log "the bench upstream did not start:"; cat "$RUN/upstream.err" >&2; exit 1
fi
UP_PORT=${UP_ADDR##*:}
log "bench upstream on $UP_ADDR (pid $UP_PID, $UPSTREAM_THREADS worker thread(s))"

# --- the gateway ---------------------------------------------------------------------------------
# The response cache is off by default here: every request repeats the same body, so with the
# cache on ballast would answer nearly all of them itself and the forwarding path would go
# unmeasured. CACHE_BACKEND=memory measures cache hits instead (the upstream check then reports
# a mismatch, as it should).
cat >"$RUN/ballast.yaml" <<EOF
server: { listen: 127.0.0.1:0, request_timeout: 30s, shutdown_grace: 2s${GATEWAY_WORKERS:+, workers: $GATEWAY_WORKERS} }
cache: { backend: $CACHE_BACKEND }
providers:
  up: { kind: openai, base_url: http://127.0.0.1:$UP_PORT/v1, api_key: bench-key }
models:
  bench: { targets: [ { provider: up, model: bench-upstream-model } ] }
EOF
GW_PORT=""
for attempt in 1 2 3; do
    GW_PORT=$(free_port)
    # warn: no per-request log lines (the info line per response would cost throughput).
    env BALLAST_LOG=warn \
        target/release/ballast serve --config "$RUN/ballast.yaml" \
        --listen "127.0.0.1:$GW_PORT" --log-format json 2>"$RUN/gateway.log" 9>&- &
    GW_PID=$!
    if wait_http "http://127.0.0.1:$GW_PORT/healthz" "$GW_PID"; then
        break
    fi
    log "gateway start attempt $attempt failed:"; cat "$RUN/gateway.log" >&2
    stop_pid "$GW_PID"; GW_PID=""
done
[[ -n "$GW_PID" ]] || exit 1
log "ballast on 127.0.0.1:$GW_PORT (pid $GW_PID)"

DIRECT_URL="http://127.0.0.1:$UP_PORT/v1/chat/completions"
GATEWAY_URL="http://127.0.0.1:$GW_PORT/v1/chat/completions"
BODY_PLAIN='{"model":"bench","messages":[{"role":"user","content":"hello"}]}'
BODY_STREAM='{"model":"bench","messages":[{"role":"user","content":"hello"}],"stream":true}'

# One request of each kind through the gateway, checked, before any load.
check_one() {
    local body=$1 want=$2 out
    out=$(curl -sS --max-time 5 -H 'content-type: application/json' -d "$body" "$GATEWAY_URL")
    if [[ "$out" != *"$want"* ]]; then
        log "unexpected answer through the gateway: ${out:0:300}"; exit 1
    fi
}
check_one "$BODY_PLAIN" '"object":"chat.completion"'
check_one "$BODY_STREAM" 'data: [DONE]'

run_oha() { # MODE TARGET SECONDS OUTFILE
    local body=$BODY_PLAIN url=$DIRECT_URL
    [[ $1 == stream ]] && body=$BODY_STREAM
    [[ $2 == ballast ]] && url=$GATEWAY_URL
    "$OHA" --no-tui --output-format json -o "$4" \
        -z "${3}s" -q "$RATE" -c "$CONNECTIONS" --worker-threads "$OHA_THREADS" \
        -w -t 10s -m POST -H 'content-type: application/json' -d "$body" "$url"
}

# CPU time (user+system, clock ticks) of a process.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# CPU time (clock ticks) of every other process on the machine: user + system + the children's
# it has reaped, summed over /proc, leaving out this script (whose children's time includes
# oha's) and the two servers. The machine-wide line of /proc/stat is no good for this: it is
# sampled at timer ticks, and on an otherwise idle tickless machine it misses most of the short
# bursts of work a proxy at 500 req/s is made of.
others_ticks() {
    python3 - "$$" "$GW_PID" "$UP_PID" <<'PY'
import os, sys
skip = set(sys.argv[1:])
total = 0
for pid in os.listdir("/proc"):
    if not pid.isdigit() or pid in skip or int(pid) == os.getpid():
        continue
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        continue  # gone meanwhile
    if fields[1] in skip:  # a child of this script (its time goes to the script on exit)
        continue
    total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
print(total)
PY
}
# The machine is shared (builds, tests): wait, bounded, until other processes use at most
# QUIET_MAX % of all cores. Prints how long it waited and the last share seen.
wait_quiet() {
    local waited=0 before pct
    while true; do
        before=$(others_ticks)
        sleep 1
        pct=$(( ($(others_ticks) - before) * 100 / (CLK_TCK * NCPU) ))
        if ((pct <= QUIET_MAX || waited >= QUIET_WAIT)); then
            echo "$waited $pct"
            return 0
        fi
        waited=$((waited + 1))
    done
}
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)

log "warm-up: ${WARMUP}s per target and mode"
for mode in plain stream; do
    for target in direct ballast; do
        run_oha "$mode" "$target" "$WARMUP" "$RUN/warmup-$mode-$target.json"
    done
done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "measuring: $ROUNDS rounds x ${DURATION}s at $RATE req/s, $CONNECTIONS connections, interleaved"
# One measured run. Besides oha's JSON it writes NAME.ticks (raw CPU times) and NAME.busy: the
# share of all cores used during the run by oha, ballast and the upstream together, the share
# used by every other process ("foreign"), the foreign share seen just before the run, and how
# long the script waited for the machine to be quiet.
measured_run() { # MODE TARGET ROUND
    local name="$RUN/$1-$2-$3" waited quiet o0 g0 u0
    read -r waited quiet < <(wait_quiet)
    curl -fsS "http://$UP_ADDR/stats" >"$name.stats0"
    o0=$(others_ticks); g0=$(cpu_ticks "$GW_PID"); u0=$(cpu_ticks "$UP_PID")
    TIMEFORMAT='%R %U %S'
    { time run_oha "$1" "$2" "$DURATION" "$name.json" 2>"$name.err"; } 2>"$name.time"
    # others0 others1 gw0 gw1 up0 up1 (clock ticks), oha wall, oha user, oha system (seconds)
    echo "$o0 $(others_ticks) $g0 $(cpu_ticks "$GW_PID") $u0 $(cpu_ticks "$UP_PID")" \
        "$(cat "$name.time")" >"$name.ticks"
    awk -v tck="$CLK_TCK" -v ncpu="$NCPU" -v quiet="$quiet" -v waited="$waited" '{
            total = $7 * ncpu; if (total <= 0) total = 1
            # (A process that ended during the run, unreaped by a live one, takes its time out
            # of the sum; that can make the difference negative. It is no load: count 0.)
            foreign = ($2 - $1) / tck; if (foreign < 0) foreign = 0
            ours = ($4 - $3) / tck + ($6 - $5) / tck + $8 + $9
            printf "%.0f %.0f %s %s\n", 100 * ours / total, 100 * foreign / total, quiet, waited
        }' "$name.ticks" >"$name.busy"
    curl -fsS "http://$UP_ADDR/stats" >"$name.stats1"
}
for mode in plain stream; do
    for round in $(seq 1 "$ROUNDS"); do
        # A pair disturbed by something else on the machine is run again (bounded).
        for attempt in $(seq 1 $((NOISY_RETRIES + 1))); do
            for target in direct ballast; do
                measured_run "$mode" "$target" "$round"
            done
            read -r _ fd _ < "$RUN/$mode-direct-$round.busy"
            read -r _ fb _ < "$RUN/$mode-ballast-$round.busy"
            log "  $mode round $round (attempt $attempt): foreign CPU load ${fd}% / ${fb}% of all cores"
            if ((fd <= NOISY_MAX && fb <= NOISY_MAX)); then break; fi
        done
        echo "$attempt" >"$RUN/$mode-$round.attempts"
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
GW_HWM_KB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$GW_PID/status")
GW_RSS_KB=$(awk '/^VmRSS:/ { print $2 }' "/proc/$GW_PID/status")
GW_THREADS=$(awk '/^Threads:/ { print $2 }' "/proc/$GW_PID/status")
if ! kill -0 "$GW_PID" 2>/dev/null; then log "the gateway died during the run"; exit 1; fi

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]]; then
    COMMIT="$COMMIT (+ uncommitted changes in src/Cargo)"
fi

export RUN CACHE_BACKEND RATE DURATION ROUNDS CONNECTIONS WARMUP QUIET_MAX QUIET_WAIT NOISY_MAX NOISY_RETRIES OHA_THREADS UPSTREAM_THREADS \
    BUDGET_P50_MS BUDGET_P99_MS BUDGET_RSS_MIB COMMIT LOAD_BEFORE LOAD_AFTER \
    GATEWAY_WORKERS GW_HWM_KB GW_RSS_KB GW_THREADS CLK_TCK
BENCH_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
MACHINE="$(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(free -g | awk '/^Mem:/ { print $2 }') GiB, Linux $(uname -r)"
OHA_VER=$("$OHA" --version)
RUSTC_VER=$(rustc --version)
export BENCH_DATE MACHINE OHA_VER RUSTC_VER

python3 - >"$RUN/report.md" <<'PY'
import json, os, statistics

env = os.environ
run = env["RUN"]
rounds = int(env["ROUNDS"])
p50_budget = float(env["BUDGET_P50_MS"])
p99_budget = float(env["BUDGET_P99_MS"])
rss_budget = float(env["BUDGET_RSS_MIB"])


def load(mode, target, r):
    with open(f"{run}/{mode}-{target}-{r}.json") as f:
        d = json.load(f)
    statuses = {k: v for k, v in d.get("statusCodeDistribution", {}).items()}
    all_errors = d.get("errorDistribution", {})
    errors = {k: v for k, v in all_errors.items() if "deadline" not in k}
    aborted = sum(v for k, v in all_errors.items() if "deadline" in k)
    total = sum(statuses.values()) + sum(errors.values())
    ok = statuses.get("200", 0)
    with open(f"{run}/{mode}-{target}-{r}.busy") as f:
        ours, foreign, foreign_before, waited = (int(x) for x in f.read().split())
    with open(f"{run}/{mode}-{r}.attempts") as f:
        attempts = int(f.read())
    with open(f"{run}/{mode}-{target}-{r}.ticks") as f:
        t = f.read().split()
    tck = float(env["CLK_TCK"])
    with open(f"{run}/{mode}-{target}-{r}.stats0") as f:
        st0 = json.load(f)
    with open(f"{run}/{mode}-{target}-{r}.stats1") as f:
        st1 = json.load(f)
    lat = d["latencyPercentiles"]
    fb = d["firstBytePercentiles"]
    return {
        "rps": d["summary"]["requestsPerSec"],
        "ok_pct": 100.0 * ok / total if total else 0.0,
        "requests": total,
        "sent": total + aborted,  # requests cut off by oha's deadline are sent, not judged
        "full": (lat["p50"] * 1e3, lat["p99"] * 1e3),
        "ttfb": (fb["p50"] * 1e3, fb["p99"] * 1e3),
        "errors": errors,
        "ours": ours,
        "foreign": foreign,
        "attempts": attempts,
        "gw_cpu": (int(t[3]) - int(t[2])) / tck,
        "up_cpu": (int(t[5]) - int(t[4])) / tck,
        "upstream_seen": sum(st1[k] - st0[k] for k in ("completions", "streams")),
        "statuses": statuses,
    }


data = {(m, t): [load(m, t, r) for r in range(1, rounds + 1)]
        for m in ("plain", "stream") for t in ("direct", "ballast")}
med = statistics.median

# (label, mode, which latency)
rows = [
    ("non-stream", "plain", "full"),
    ("stream, first byte", "stream", "ttfb"),
    ("stream, whole body", "stream", "full"),
]
out = []
w = out.append
w(f"# ballast load benchmark\n")
w(f"- date: {env['BENCH_DATE']}")
w(f"- machine: {env['MACHINE']}")
w(f"- ballast: commit {env['COMMIT']}, release build, {env['RUSTC_VER']}")
w(f"- load generator: {env['OHA_VER']}, {env['OHA_THREADS']} worker thread(s), "
  f"{env['CONNECTIONS']} keep-alive connections, HTTP/1.1, no latency correction")
w(f"- ballast: {env['GATEWAY_WORKERS'] or 'default (one per core)'} worker(s) (`server.workers`: a thread and a single-threaded runtime each), "
  f"log level warn (no per-request lines), one OpenAI-kind provider, cache backend "
  f"`{env['CACHE_BACKEND']}`")
w(f"- upstream: examples/bench_upstream.rs, {env['UPSTREAM_THREADS']} worker thread(s), answers at once")
w(f"- load: {env['RATE']} req/s, {rounds} interleaved rounds of {env['DURATION']} s per target "
  f"and mode (after {env['WARMUP']} s of warm-up each); load average before/after: "
  f"{env['LOAD_BEFORE']} / {env['LOAD_AFTER']}")
w("")
w("## Latency (median over rounds)\n")
w("| mode | target | req/s | p50 (ms) | p99 (ms) | success |")
w("| --- | --- | ---: | ---: | ---: | ---: |")
summary = {}
for label, mode, kind in rows:
    for target in ("direct", "ballast"):
        rs = data[(mode, target)]
        p50 = med(r[kind][0] for r in rs)
        p99 = med(r[kind][1] for r in rs)
        rps = med(r["rps"] for r in rs)
        ok = min(r["ok_pct"] for r in rs)
        summary[(label, target)] = (p50, p99, rps, ok)
        w(f"| {label} | {target} | {rps:.1f} | {p50:.3f} | {p99:.3f} | {ok:.2f} % |")
w("")
w("## Against the budget\n")
w("| check | measured | budget | verdict |")
w("| --- | ---: | ---: | --- |")
verdicts = []


def check(name, value, budget, unit, info=False):
    ok = value < budget
    verdict = ("PASS" if ok else "MISS") + (" (info only)" if info else "")
    if not info:
        verdicts.append(ok)
    measured = f"{value:+.3f} ms" if unit == "ms" else f"{value:.1f} {unit}"
    w(f"| {name} | {measured} | < {budget:g} {unit} | {verdict} |")


for label, mode, kind in rows:
    info = kind == "full" and mode == "stream"
    d50 = summary[(label, "ballast")][0] - summary[(label, "direct")][0]
    d99 = summary[(label, "ballast")][1] - summary[(label, "direct")][1]
    check(f"{label}: added p50", d50, p50_budget, "ms", info)
    check(f"{label}: added p99", d99, p99_budget, "ms", info)
hwm_mib = int(env["GW_HWM_KB"]) / 1024
check("ballast peak RSS (VmHWM)", hwm_mib, rss_budget, "MiB")
for label, mode, kind in rows[:2]:
    p50, p99, rps, ok = summary[(label, "ballast")]
    good = ok >= 99.99 and rps >= 0.97 * float(env["RATE"])
    verdicts.append(good)
    w(f"| {label}: ballast rate and success | {rps:.1f} req/s, {ok:.2f} % | "
      f">= {0.97 * float(env['RATE']):.0f} req/s, 100 % | {'PASS' if good else 'MISS'} |")
w("")
w(f"Overall: {'PASS' if all(verdicts) else 'MISS'} "
  f"({sum(verdicts)} of {len(verdicts)} checks within budget; 'info only' rows not counted).")
w("")
w("## Per round\n")
w("p50 / p99 in ms, then [CPU used during the run by oha + ballast + the upstream / by every "
  "other process on the machine, in % of all cores].\n")
w("| mode | target | " + " | ".join(f"round {r}" for r in range(1, rounds + 1)) + " |")
w("| --- | --- | " + " | ".join("---:" for _ in range(rounds)) + " |")
for label, mode, kind in rows:
    for target in ("direct", "ballast"):
        cells = " | ".join(f"{r[kind][0]:.3f} / {r[kind][1]:.3f} [{r['ours']} / {r['foreign']} %]"
                           for r in data[(mode, target)])
        w(f"| {label} | {target} | {cells} |")
w("")
retried = sorted({(m, r + 1, rs[r]["attempts"]) for (m, t), rs in data.items()
                  for r in range(rounds) if rs[r]["attempts"] > 1})
noisy = [(m, t, r + 1) for (m, t), rs in data.items() for r in range(rounds)
         if rs[r]["foreign"] > int(env["NOISY_MAX"])]
w(f"Before each run the script waited (at most {env['QUIET_WAIT']} s) for other processes to "
  f"use at most {env['QUIET_MAX']} % of the CPU, and ran a round again (at most {env['NOISY_RETRIES']} times) "
  f"when more than {env['NOISY_MAX']} % of the CPU went to other processes during it. "
  + ("Rounds run again: " + ", ".join(f"{m} round {r} ({a} attempts)" for m, r, a in retried)
     + ". " if retried else "No round had to be run again. ")
  + ("Still noisy, take with care: " + ", ".join(f"{m}/{t} round {r}" for m, t, r in noisy) + "."
     if noisy else ""))
w("")
# Where the time goes: CPU per request, and whether every request reached the upstream.
runs = [r for rs in data.values() for r in rs]
ballast_runs = [r for m in ("plain", "stream") for r in data[(m, "ballast")]]
gw_cpu = sum(r["gw_cpu"] for r in ballast_runs)
gw_requests = sum(r["sent"] for r in ballast_runs)
up_cpu = sum(r["up_cpu"] for r in runs)
up_requests = sum(r["upstream_seen"] for r in runs)
lost = [(r["sent"], r["upstream_seen"]) for r in runs if r["sent"] != r["upstream_seen"]]
w("## Process figures (over the runs in the tables)\n")
w(f"- ballast peak RSS (VmHWM) {hwm_mib:.1f} MiB, RSS at the end {int(env['GW_RSS_KB']) / 1024:.1f} MiB, "
  f"{env['GW_THREADS']} threads")
w(f"- ballast CPU (user + system, kernel TCP work and wake-ups included): {gw_cpu:.2f} s for "
  f"{gw_requests} requests = {1e6 * gw_cpu / max(gw_requests, 1):.0f} µs per request")
w(f"- upstream CPU: {up_cpu:.2f} s for {up_requests} requests "
  f"= {1e6 * up_cpu / max(up_requests, 1):.0f} µs per request (direct and through ballast)")
w(f"- CPU used during the runs, in % of all cores: by oha + ballast + the upstream, median "
  f"{med(r['ours'] for r in runs):.0f} %; by other processes, median "
  f"{med(r['foreign'] for r in runs):.0f} %, max {max(r['foreign'] for r in runs)} %")
w("- every request oha sent reached the upstream exactly once" if not lost else
  f"- MISMATCH between requests sent and requests the upstream answered: {lost}")
bad = {(m, t, i + 1): (r["statuses"], r["errors"]) for (m, t), rs in data.items()
       for i, r in enumerate(rs) if r["ok_pct"] < 100.0}
if bad:
    w("- runs with failures: " + "; ".join(f"{k}: {v}" for k, v in bad.items()))
print("\n".join(out))
PY

cat "$RUN/report.md"
cp "$RUN/report.md" "$RESULTS"
log "written to $RESULTS (raw oha JSON and logs in $RUN)"
if grep -q '"level":"\(WARN\|ERROR\)"' "$RUN/gateway.log"; then
    log "the gateway logged warnings or errors: see $RUN/gateway.log"
fi

# --- against the floor: a plain nginx hop, closed-loop throughput and streams (benches/hop.py) ---
# HOP=0 skips it. It needs nginx (installed from apt here when missing) and two cores.
if [[ "${HOP:-1}" != 0 ]]; then
    if ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
        log "installing nginx-light from apt (the floor of benches/hop.py)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light; } >&2
    fi
    stop_pid "$GW_PID"; GW_PID=""
    stop_pid "$UP_PID"; UP_PID=""
    python3 benches/hop.py --seconds "${HOP_SECONDS:-8}" --rounds "${HOP_ROUNDS:-2}" \
        --results "${HOP_RESULTS:-benches/hop-results.md}" 9>&-
    log "written to ${HOP_RESULTS:-benches/hop-results.md}"
fi
