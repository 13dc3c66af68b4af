#!/usr/bin/env bash
# Cache hits against the upstream, in one run: oha sends the same request as fast as a fixed
# number of connections allows (closed loop) to the fast fake upstream directly, to a gateway
# that forwards it (no cache), and to two gateways whose caches hold the answer: one with the
# memory backend, one with Redis; then the same for an embeddings request (a 1536-dimension
# base64 vector) against the direct upstream, forwarded, and a memory-cache hit. It prints requests/s and p50/p99 for each, interleaved over rounds, and writes
# benches/cache-hits.md. A measurement: exits 0 whatever the numbers, non-zero only when it
# cannot measure.
#
#   benches/cache-hits.sh                       # about 2 minutes once built
#   DURATION=10 ROUNDS=3 CONNECTIONS=8 benches/cache-hits.sh
#
# Loopback only; it starts the fake upstream, a redis-server and two gateways, and stops exactly
# those, by PID, on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-8}
OHA_THREADS=${OHA_THREADS:-1}
OHA_VERSION=${OHA_VERSION:-1.16.0}
TOOLS=benches/out/tools
OHA=${OHA:-$TOOLS/bin/oha}
RUN=benches/out/cache-hits
OUT=benches/cache-hits.md

log() { printf '[cache-hits] %s\n' "$*" >&2; }
# shellcheck source=benches/lib.sh
source benches/lib.sh

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

for tool in cargo python3 curl redis-server; do
    command -v "$tool" >/dev/null || { log "needs $tool (tests/run.sh installs redis-server)"; exit 2; }
done
ensure_oha
log "building ballast and the bench upstream (release)"
cargo build --release --quiet --bin ballast --example bench_upstream
rm -rf "$RUN" && mkdir -p "$RUN"


# The fake upstream.
target/release/examples/bench_upstream --listen 127.0.0.1:0 --threads 1 >"$RUN/upstream.out" 2>"$RUN/upstream.err" &
PIDS+=($!)
UP_ADDR=""
for _ in $(seq 1 100); do
    UP_ADDR=$(sed -n 's/^listening //p' "$RUN/upstream.out" 2>/dev/null || true)
    [[ -n "$UP_ADDR" ]] && break
    sleep 0.1
done
wait_http "http://$UP_ADDR/health" "${PIDS[0]}" || { log "the upstream did not start"; exit 1; }

# Redis.
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$RUN/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
    (echo PING >/dev/tcp/127.0.0.1/"$REDIS_PORT") 2>/dev/null && break
    sleep 0.05
done

# Two gateways, one per cache backend. Sets GATEWAY_URL (no $(...): a subshell would lose the
# PID and run the cleanup trap on its way out).
start_gateway() { # NAME CACHE-YAML
    local port config=$RUN/$1.yaml
    port=$(free_port)
    cat >"$config" <<EOF
server: { listen: 127.0.0.1:$port, request_timeout: 30s, shutdown_grace: 1s }
cache: $2
providers:
  up: { kind: openai, base_url: 'http://$UP_ADDR/v1', api_key: bench-key }
models:
  bench: { targets: [ { provider: up, model: bench-upstream-model } ] }
  bench-embed: { targets: [ { provider: up, model: bench-embedding-model } ] }
EOF
    BALLAST_LOG=warn target/release/ballast serve --config "$config" --log-format json 2>"$RUN/$1.log" &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$port/healthz" "$!" || { log "gateway $1 did not start"; cat "$RUN/$1.log" >&2; exit 1; }
    GATEWAY_URL="http://127.0.0.1:$port/v1/chat/completions"
}
start_gateway forwarded "{ backend: none }"
FORWARDED_URL=$GATEWAY_URL
start_gateway memory "{ backend: memory }"
MEMORY_URL=$GATEWAY_URL
start_gateway redis "{ backend: redis, redis_url: 'redis://127.0.0.1:$REDIS_PORT' }"
REDIS_URL=$GATEWAY_URL
DIRECT_URL="http://$UP_ADDR/v1/chat/completions"
BODY='{"model":"bench","messages":[{"role":"user","content":"hello"}]}'
# The embeddings targets: the same gateways, another route and model.
EMBED_DIRECT_URL="http://$UP_ADDR/v1/embeddings"
EMBED_FORWARDED_URL=${FORWARDED_URL%/chat/completions}/embeddings
EMBED_MEMORY_URL=${MEMORY_URL%/chat/completions}/embeddings
EMBED_BODY='{"model":"bench-embed","input":"hello","encoding_format":"base64"}'
body_of() { [[ $1 == embed_* ]] && echo "$EMBED_BODY" || echo "$BODY"; }

# Prime both caches and check that the next request is a hit.
for url in "$MEMORY_URL" "$REDIS_URL"; do
    curl -fsS -o /dev/null -H 'content-type: application/json' -d "$BODY" "$url"
    sleep 0.2
    cache=$(curl -fsS -o /dev/null -D - -H 'content-type: application/json' -d "$BODY" "$url" | tr -d '\r' | sed -n 's/^x-ballast-cache: //ip')
    [[ $cache == hit ]] || { log "expected a cache hit from $url, got '$cache'"; exit 1; }
done
curl -fsS -o /dev/null -H 'content-type: application/json' -d "$EMBED_BODY" "$EMBED_MEMORY_URL"
sleep 0.2
cache=$(curl -fsS -o /dev/null -D - -H 'content-type: application/json' -d "$EMBED_BODY" "$EMBED_MEMORY_URL" | tr -d '\r' | sed -n 's/^x-ballast-cache: //ip')
[[ $cache == hit ]] || { log "expected an embeddings cache hit, got '$cache'"; exit 1; }
TARGETS=(direct forwarded memory redis embed_direct embed_forwarded embed_memory)

run_oha() { # URL SECONDS OUT BODY
    "$OHA" --no-tui --output-format json -o "$3" -z "${2}s" -c "$CONNECTIONS" \
        --worker-threads "$OHA_THREADS" -t 10s -m POST -H 'content-type: application/json' -d "$4" "$1" >/dev/null
}
log "warm-up"
for target in "${TARGETS[@]}"; do
    url_var="${target^^}_URL"
    run_oha "${!url_var}" 2 "$RUN/warmup-$target.json" "$(body_of "$target")"
done
for round in $(seq 1 "$ROUNDS"); do
    for target in "${TARGETS[@]}"; do
        url_var="${target^^}_URL"
        log "round $round: $target"
        run_oha "${!url_var}" "$DURATION" "$RUN/$target-$round.json" "$(body_of "$target")"
    done
done

python3 - "$RUN" "$ROUNDS" "$CONNECTIONS" "$DURATION" >"$RUN/table.md" <<'PY'
import json, statistics, sys
run, rounds, connections, duration = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = {}
for target in ("direct", "forwarded", "memory", "redis", "embed_direct", "embed_forwarded", "embed_memory"):
    results = [json.load(open(f"{run}/{target}-{r}.json")) for r in range(1, rounds + 1)]
    rps = statistics.median(r["summary"]["requestsPerSec"] for r in results)
    p50 = statistics.median(r["latencyPercentiles"]["p50"] for r in results) * 1000
    p99 = statistics.median(r["latencyPercentiles"]["p99"] for r in results) * 1000
    ok = min(r["summary"]["successRate"] for r in results) * 100
    rows[target] = (rps, p50, p99, ok)
names = {
    "direct": "upstream, direct",
    "forwarded": "ballast, no cache (forwarded upstream)",
    "memory": "ballast, memory-cache hit",
    "redis": "ballast, Redis-cache hit",
    "embed_direct": "embeddings: upstream, direct",
    "embed_forwarded": "embeddings: ballast, no cache (forwarded upstream)",
    "embed_memory": "embeddings: ballast, memory-cache hit",
}
print(f"{connections} connections, closed loop, {duration} s per run, median of {rounds} interleaved rounds.\n")
print("| target | req/s | p50 (ms) | p99 (ms) | success |")
print("| --- | ---: | ---: | ---: | ---: |")
for target, (rps, p50, p99, ok) in rows.items():
    print(f"| {names[target]} | {rps:,.0f} | {p50:.3f} | {p99:.3f} | {ok:.2f} % |")
print()
for target, base in (("memory", "forwarded"), ("redis", "forwarded"), ("embed_memory", "embed_forwarded")):
    forwarded = rows[base]
    rps, p50, p99, _ = rows[target]
    verdict = "faster" if p50 < forwarded[1] else "slower"
    print(f"- {names[target]}: {rps / forwarded[0]:.2f}x the requests/s of a call forwarded through ballast; "
          f"p50 {p50:.3f} ms vs {forwarded[1]:.3f} ms, p99 {p99:.3f} ms vs {forwarded[2]:.3f} ms ({verdict}).")
print()
print("The direct upstream answers a fixed body at once (zero work), so it bounds what any HTTP")
print("round trip on this machine costs; a real LLM call takes 100 ms to minutes. A hit is to be")
print("compared with a call forwarded through ballast: that is what the cache saves.")
PY

{
    echo "# Cache hits against the upstream"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(nproc) cores, Linux $(uname -r); ballast commit $(git rev-parse --short HEAD)"
    echo "- load generator: oha $("$OHA" --version | awk '{print $2}'), ${OHA_THREADS} worker thread(s)"
    echo "- upstream: examples/bench_upstream.rs (answers at once, so it is the fastest upstream there can be)"
    echo
    cat "$RUN/table.md"
} | tee "$OUT"
