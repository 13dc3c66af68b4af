#!/usr/bin/env bash
# Instructions per request under callgrind: a measure that does not move with the neighbours on
# a shared machine, for ranking changes on the request path (benches/README, "Instruction
# counts"). Counts user space only; benches/hop.py gives the time.
#
#   benches/instructions.sh [BINARY] [plain|stream] [REQUESTS]
#
# Defaults: target/release/ballast, plain (whole answers), 2000 requests. Needs valgrind
# (`apt-get install valgrind`), a release build of examples/bench_upstream and oha (run.sh
# installs it). ballast runs with `workers: 1` and its default logging (BALLAST_LOG passes
# through: `BALLAST_LOG=warn` leaves the per-request line out). Loopback only; it stops the two
# processes it started, by PID.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
BINARY=${1:-$ROOT/target/release/ballast}
MODE=${2:-plain}
REQUESTS=${3:-2000}
OHA=${OHA:-$ROOT/benches/out/tools/bin/oha}
UPSTREAM=$ROOT/target/release/examples/bench_upstream
for tool in "$BINARY" "$OHA" "$UPSTREAM"; do
    [[ -x "$tool" ]] || { echo "missing $tool (see the header)" >&2; exit 1; }
done
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 1; }
OUT=$ROOT/benches/out/instructions
rm -rf "$OUT" && mkdir -p "$OUT"

UP_PID='' BALLAST_PID=''
trap 'stop_pid "$BALLAST_PID"; stop_pid "$UP_PID"' EXIT
"$UPSTREAM" --listen 127.0.0.1:0 >"$OUT/upstream.out" 2>/dev/null &
UP_PID=$!
for _ in $(seq 1 50); do [[ -s "$OUT/upstream.out" ]] && break; sleep 0.1; done
UP_ADDR=$(awk '{print $2; exit}' "$OUT/upstream.out")
PORT=$(free_port)
cat >"$OUT/ballast.yaml" <<YAML
server: { listen: 127.0.0.1:0, request_timeout: 60s, shutdown_grace: 2s, workers: 1 }
cache: { backend: none }
providers:
  up: { kind: openai, base_url: 'http://$UP_ADDR/v1', api_key: bench-key }
models:
  bench: { targets: [ { provider: up, model: bench-upstream-model } ] }
YAML
BALLAST_LOG=${BALLAST_LOG:-} RUST_LOG='' valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$OUT/callgrind.out" "$BINARY" serve --config "$OUT/ballast.yaml" \
    --listen "127.0.0.1:$PORT" --log-format json >/dev/null 2>"$OUT/ballast.err" &
BALLAST_PID=$!
# Under valgrind the start takes a few seconds.
for _ in $(seq 1 300); do
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/healthz" 2>/dev/null && break
    kill -0 "$BALLAST_PID" 2>/dev/null || { echo "ballast did not start ($OUT/ballast.err)" >&2; exit 1; }
    sleep 0.2
done

STREAM=false
[[ "$MODE" == stream ]] && STREAM=true
BODY="{\"model\":\"bench\",\"stream\":$STREAM,\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}"
load() { # REQUESTS
    "$OHA" --no-tui --output-format json -n "$1" -c 8 --worker-threads 1 -t 30s -m POST \
        -H 'content-type: application/json' -d "$BODY" "http://127.0.0.1:$PORT/v1/chat/completions"
}
load 300 >/dev/null
callgrind_control -i on "$BALLAST_PID" >/dev/null 2>&1
load "$REQUESTS" >"$OUT/oha.json"
callgrind_control -d "$BALLAST_PID" >/dev/null 2>&1
# The dump is the largest profile file (the rest is what runs at exit).
TOTAL=$(grep -h '^totals:' "$OUT"/callgrind.out* | awk '{print $2}' | sort -n | tail -1)
python3 - "$OUT/oha.json" "$TOTAL" "$MODE" <<'PY'
import json, sys
ok = json.load(open(sys.argv[1]))["statusCodeDistribution"].get("200", 0)
print(f"{sys.argv[3]}: {ok} answered, {int(sys.argv[2]) // max(ok, 1):,} instructions per request")
PY
