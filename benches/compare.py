#!/usr/bin/env python3
"""Interleaved A/B of gateway builds: which of two changes adds less latency and CPU?

benches/run.sh checks one build against the budget; this script puts several side by side in
one run, so that drift of a shared machine hits them all alike. It starts the fast fake
upstream (examples/bench_upstream.rs), then every target below in front of it, and sends the
same open-loop load (oha, 500 req/s by default) to the upstream directly and to each target,
round after round. It prints, per target, the median over rounds of its p50 minus the direct
p50 ("added"), every round's p50/p99, and its CPU time per request.

    benches/compare.py --ballast now=target/release/ballast \\
        --ballast old=/tmp/ballast-old --ballast one=target/release/ballast,workers=1 \\
        --bare bare=target/release/examples/bare_proxy [--rounds 4 --seconds 10 --stream]

A target is NAME=BINARY: `--ballast` runs `BINARY serve` on a generated config (one openai
provider, cache off; `,workers=N` sets server.workers), `--bare` runs the floor proxy
(examples/bare_proxy.rs). Build them first, e.g. `cargo build --release --bin ballast
--example bench_upstream --example bare_proxy`; oha comes from benches/run.sh's install.

Loopback only. It stops exactly the processes it started, by PID. Bounded: rounds x targets
runs of --seconds each, plus a 2 s warm-up per target.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

from proc_util import cpu_ticks, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OHA = os.path.join(ROOT, "benches/out/tools/bin/oha")
UPSTREAM = os.path.join(ROOT, "target/release/examples/bench_upstream")


def wait_listening(process, what):
    line = process.stdout.readline()
    if not line.startswith("listening "):
        sys.exit(f"{what} did not start: {line!r}")
    return line.split()[1]


def wait_accepting(port, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ballast", action="append", default=[], metavar="NAME=BINARY[,workers=N]")
    parser.add_argument("--bare", action="append", default=[], metavar="NAME=BINARY")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--stream", action="store_true", help="streamed requests (time to first byte)")
    parser.add_argument("--prompt-bytes", type=int, default=5, help="size of the one user message")
    args = parser.parse_args()
    if not args.ballast and not args.bare:
        parser.error("name at least one target")
    for tool in (OHA, UPSTREAM):
        if not os.access(tool, os.X_OK):
            sys.exit(f"missing {tool}: run benches/run.sh once, or build it")

    started = []

    def start(command, env=None):
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   text=True, env={**os.environ, **(env or {})})
        started.append(process)
        return process

    workdir = tempfile.mkdtemp(prefix="ballast-compare-")
    try:
        upstream = wait_listening(start([UPSTREAM, "--listen", "127.0.0.1:0", "--threads", "1"]), "the upstream")
        direct = f"http://{upstream}/v1/chat/completions"
        targets = {"direct": (direct, None)}
        for spec in args.ballast:
            name, _, rest = spec.partition("=")
            binary, *options = rest.split(",")
            workers = dict(o.split("=", 1) for o in options).get("workers")
            config = os.path.join(workdir, f"{name}.yaml")
            with open(config, "w") as f:
                f.write(
                    "server: { listen: 127.0.0.1:0, request_timeout: 30s, shutdown_grace: 2s"
                    + (f", workers: {int(workers)}" if workers else "") + " }\n"
                    "cache: { backend: none }\n"
                    f"providers:\n  up: {{ kind: openai, base_url: 'http://{upstream}/v1', api_key: bench-key }}\n"
                    "models:\n  bench: { targets: [ { provider: up, model: bench-upstream-model } ] }\n")
            port = free_port()
            process = start([binary, "serve", "--config", config, "--listen", f"127.0.0.1:{port}"],
                            env={"BALLAST_LOG": "warn"})
            if not wait_accepting(port):
                sys.exit(f"{name} did not start")
            targets[name] = (f"http://127.0.0.1:{port}/v1/chat/completions", process.pid)
        for spec in args.bare:
            name, _, binary = spec.partition("=")
            process = start([binary, "127.0.0.1:0", direct])
            targets[name] = (f"http://{wait_listening(process, name)}/v1/chat/completions", process.pid)

        words = ("hello " * (args.prompt_bytes // 6 + 1))[: max(args.prompt_bytes, 1)]
        body = {"model": "bench", "messages": [{"role": "user", "content": words}]}
        if args.stream:
            body["stream"] = True
        results = {name: [] for name in targets}
        cpu = {name: 0 for name in targets}
        for round_ in range(args.rounds + 1):
            seconds = args.seconds if round_ else 2  # round 0 warms every target up
            for name, (url, pid) in targets.items():
                before = cpu_ticks(pid) if pid else 0
                out = subprocess.run(
                    [OHA, "--no-tui", "--output-format", "json", "-z", f"{seconds}s", "-q", str(args.rate),
                     "-c", str(args.connections), "--worker-threads", "1", "-w", "-t", "10s", "-m", "POST",
                     "-H", "content-type: application/json", "-d", json.dumps(body), url],
                    capture_output=True, text=True, check=True, timeout=seconds + 60)
                if not round_:
                    continue
                if pid:
                    cpu[name] += cpu_ticks(pid) - before
                report = json.loads(out.stdout)
                latency = report["latencyPercentiles"]
                results[name].append((latency["p50"] * 1000, latency["p99"] * 1000,
                                      report["summary"]["successRate"]))

        ticks = os.sysconf("SC_CLK_TCK")
        requests = args.rounds * args.seconds * args.rate
        print(f"{args.rounds} rounds x {args.seconds} s at {args.rate} req/s, {args.connections} connections, "
              f"{'streamed (first byte)' if args.stream else 'whole answers'}, a {args.prompt_bytes}-byte prompt")
        for name, rounds in results.items():
            added = sorted(p50 - direct_p50 for (p50, _, _), (direct_p50, _, _) in zip(rounds, results["direct"]))
            per_round = " ".join(f"{p50:.3f}/{p99:.3f}" for p50, p99, _ in rounds)
            cost = f", CPU {cpu[name] * 1e6 / ticks / requests:.0f} us/request" if targets[name][1] else ""
            print(f"{name:>10}: added p50 {added[len(added) // 2]:+.3f} ms{cost}, "
                  f"success {min(s for _, _, s in rounds):.2%}; p50/p99 ms per round: {per_round}")
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
