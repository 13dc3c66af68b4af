#!/usr/bin/env python3
"""ballast against the physical floor of a proxy: a plain nginx hop, measured in the same run.

benches/run.sh calls this after its latency budget (or run it alone). One core (CPU 1) is the
proxy's: nginx with one worker, ballast with `server.workers: 1` and its default logging (one
JSON line per request, to a file), and examples/bare_proxy.rs (axum + reqwest and nothing else),
each pinned there with taskset. The load generator (oha) and the fake upstreams
(examples/bench_upstream.rs) share CPU 0. It measures, for each proxy:

- closed-loop throughput, 32 connections, whole answers and streams (10 chunks each), and the
  proxy's CPU time per request or stream;
- latency added to the direct path (upstream alone) at 500 req/s and when idle (25 req/s),
  with every process unpinned (as benches/run.sh measures);
- 512 concurrent slow streams (a chunk every 100 ms from a second upstream): the proxy's peak
  RSS and the gaps between chunks as the client sees them.

and prints the ratios the performance issue sets as targets, against nginx's numbers from the
same run. A measurement, not a test: it exits 0 whether the targets are met or not.

    benches/hop.py [--seconds 8] [--rounds 2] [--ballast now=target/release/ballast ...]
                   [--results benches/hop-results.md]

Several `--ballast NAME=BINARY` are measured side by side (before/after a change). Build first:
`cargo build --release --bin ballast --example bench_upstream --example bare_proxy`; oha comes
from benches/run.sh's install; nginx from apt (`apt-get install nginx-light`, which run.sh does
when it is missing). Loopback only; it stops exactly the processes it started, by PID. Bounded:
every oha run has its duration, the stream client its deadline.
"""

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from proc_util import cpu_ticks, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OHA = os.environ.get("OHA", os.path.join(ROOT, "benches/out/tools/bin/oha"))
UPSTREAM = os.path.join(ROOT, "target/release/examples/bench_upstream")
BARE = os.path.join(ROOT, "target/release/examples/bare_proxy")
NGINX_CONF = os.path.join(ROOT, "benches/nginx-hop.conf")
TICK = os.sysconf("SC_CLK_TCK")
PROXY_CPU, LOAD_CPU = "1", "0"
BODY = {"model": "bench", "messages": [{"role": "user", "content": "hello"}]}
SLOW_CHUNKS, SLOW_INTERVAL_MS, SLOW_STREAMS = 20, 100, 512

# The targets, as ratios to nginx or absolute numbers.
TARGETS = [
    ("non-streamed throughput / nginx", "plain_ratio", ">=", 0.6),
    ("streams/s / nginx", "stream_ratio", ">=", 0.5),
    ("CPU per request (ms)", "plain_cpu", "<=", 0.05),
    ("CPU per stream (ms)", "stream_cpu", "<=", 0.06),
    ("added p50 at 500 req/s (ms)", "added_p50", "<=", 0.1),
    ("added p99 at 500 req/s (ms)", "added_p99", "<=", 0.3),
    ("added p50 idle, 25 req/s (ms)", "idle_p50", "<=", 0.2),
    ("peak RSS, 512 streams (MiB)", "rss_mib", "<=", 30),
    ("worst chunk gap / upstream's, 512 streams", "gap_ratio", "<=", 2.0),
]


def tree_ticks(pids):
    return sum(cpu_ticks(pid) for pid in pids)


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def set_affinity(pids, cpus):
    """Moves every thread of the given processes onto `cpus`."""
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                os.sched_setaffinity(int(tid), cpus)
            except OSError:
                pass  # the thread ended meanwhile


def wait_accepting(port, process, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return True
        except OSError:
            time.sleep(0.1)
    return False


class Processes:
    """What this script started, stopped by PID on exit."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.started = []

    def start(self, name, command, cpu, env=None, stdout=subprocess.PIPE):
        err = open(os.path.join(self.workdir, f"{name}.err"), "w")
        process = subprocess.Popen(["taskset", "-c", cpu, *command], stdout=stdout, stderr=err,
                                   text=True, env={**os.environ, **(env or {})})
        self.started.append(process)
        return process

    def listening(self, name, command, cpu):
        process = self.start(name, command, cpu)
        line = process.stdout.readline()
        if not line.startswith("listening "):
            sys.exit(f"{name} did not start: {line!r}")
        return line.split()[1]

    def stop(self):
        for process in self.started:
            if process.poll() is None:
                process.terminate()
        for process in self.started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def ballast_config(workdir, name, upstream):
    path = os.path.join(workdir, f"{name}.yaml")
    with open(path, "w") as f:
        f.write("server: { listen: 127.0.0.1:0, request_timeout: 60s, shutdown_grace: 2s, workers: 1 }\n"
                "cache: { backend: none }\n"
                f"providers:\n  up: {{ kind: openai, base_url: 'http://{upstream}/v1', api_key: bench-key }}\n"
                "models:\n  bench: { targets: [ { provider: up, model: bench-upstream-model } ] }\n")
    return path


def start_ballast(procs, name, binary, upstream):
    config = ballast_config(procs.workdir, name, upstream)
    port = free_port()
    # The default log level (info: one line per request), JSON, to a file (NAME.err) as a
    # deployment's log collector would read it.
    process = procs.start(name, [binary, "serve", "--config", config, "--listen", f"127.0.0.1:{port}",
                                 "--log-format", "json"], PROXY_CPU, stdout=subprocess.DEVNULL,
                          env={"BALLAST_LOG": "", "RUST_LOG": ""})
    if not wait_accepting(port, process):
        sys.exit(f"{name} did not start (see {procs.workdir}/{name}.err)")
    return port, process


def oha(url, seconds, connections, stream, rate=None, cpus=LOAD_CPU):
    body = dict(BODY, stream=True) if stream else BODY
    command = ["taskset", "-c", cpus, OHA, "--no-tui", "--output-format", "json", "-z", f"{seconds}s",
               "-c", str(connections), "--worker-threads", "1", "-w", "-t", "10s", "-m", "POST",
               "-H", "content-type: application/json", "-d", json.dumps(body)]
    if rate:
        command += ["-q", str(rate)]
    command.append(url)
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60)
    report = json.loads(out.stdout)
    ok = report.get("statusCodeDistribution", {}).get("200", 0)
    latency = report["latencyPercentiles"]
    return {"ok": ok, "rps": ok / report["summary"]["total"],
            "success": report["summary"]["successRate"],
            "p50": latency["p50"] * 1e3, "p99": latency["p99"] * 1e3}


async def one_stream(port, gaps, deadline):
    body = json.dumps(dict(BODY, stream=True)).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                 b"content-type: application/json\r\ncontent-length: " + str(len(body)).encode()
                 + b"\r\n\r\n" + body)
    await writer.drain()
    last, seen, done = None, b"", False
    while not done:
        data = await asyncio.wait_for(reader.read(65536), max(deadline - time.monotonic(), 0.1))
        if not data:
            break
        now = time.monotonic()
        if b"data: " in data:
            if last is not None:
                gaps.append((now - last) * 1e3)
            last = now
        seen = (seen + data)[-64:]
        done = b"data: [DONE]" in seen
    writer.close()
    return done


async def many_streams(port, count, seconds):
    deadline = time.monotonic() + seconds
    gaps = []
    results = await asyncio.gather(*(one_stream(port, gaps, deadline) for _ in range(count)),
                                   return_exceptions=True)
    return sum(1 for r in results if r is True), gaps


def held_streams(port, pids):
    """512 slow streams at once through a proxy: completed, the chunk gaps, peak RSS (KiB)."""
    peak = [0]

    async def sample():
        while True:
            peak[0] = max(peak[0], sum(status_kib(pid, "VmRSS") for pid in pids))
            await asyncio.sleep(0.05)

    async def run():
        sampler = asyncio.create_task(sample())
        try:
            return await many_streams(port, SLOW_STREAMS, 30)
        finally:
            sampler.cancel()

    done, gaps = asyncio.run(run())
    hwm = sum(status_kib(pid, "VmHWM") for pid in pids)
    gaps.sort()
    return {"done": done, "max_gap": gaps[-1] if gaps else float("nan"),
            "p99_gap": gaps[int(len(gaps) * 0.99)] if gaps else float("nan"),
            "rss_kib": max(hwm, peak[0])}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ballast", action="append", default=[], metavar="NAME=BINARY")
    parser.add_argument("--seconds", type=int, default=8, help="per closed-loop and latency run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--results", default=None, help="also write the report here")
    args = parser.parse_args()
    ballasts = [spec.partition("=")[::2] for spec in args.ballast] or [("ballast", os.path.join(ROOT, "target/release/ballast"))]
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    for tool in (OHA, UPSTREAM, BARE, nginx, *(b for _, b in ballasts)):
        if not os.access(tool, os.X_OK):
            sys.exit(f"missing {tool}: build it (see --help)")
    if os.cpu_count() < 2:
        sys.exit("needs two cores: one for the proxy, one for the load")

    workdir = tempfile.mkdtemp(prefix="ballast-hop-")
    procs = Processes(workdir)
    try:
        fast = procs.listening("upstream", [UPSTREAM, "--listen", "127.0.0.1:0"], LOAD_CPU)
        slow = procs.listening("slow-upstream", [UPSTREAM, "--listen", "127.0.0.1:0", "--chunks", str(SLOW_CHUNKS),
                                                 "--chunk-interval-ms", str(SLOW_INTERVAL_MS)], LOAD_CPU)
        nginx_port, nginx_slow_port = free_port(), free_port()
        with open(NGINX_CONF) as f:
            conf = f.read()
        for key, value in {"RUN": workdir, "FAST_PORT": fast.rsplit(":", 1)[1], "SLOW_PORT": slow.rsplit(":", 1)[1],
                           "LISTEN_PORT": nginx_port, "SLOW_LISTEN_PORT": nginx_slow_port}.items():
            conf = conf.replace(f"@{key}@", str(value))
        with open(os.path.join(workdir, "nginx.conf"), "w") as f:
            f.write(conf)
        nginx_proc = procs.start("nginx", [nginx, "-c", os.path.join(workdir, "nginx.conf"), "-p", workdir],
                                 PROXY_CPU, stdout=subprocess.DEVNULL)
        if not wait_accepting(nginx_port, nginx_proc):
            sys.exit(f"nginx did not start (see {workdir}/nginx.err)")
        time.sleep(0.3)
        nginx_pids = [nginx_proc.pid, *children(nginx_proc.pid)]

        # 512 held streams first, on fresh processes, so that peak RSS is this test's own.
        held = {"nginx": held_streams(nginx_slow_port, nginx_pids)}
        for name, binary in ballasts:
            port, process = start_ballast(procs, f"{name}-slow", binary, slow)
            held[name] = held_streams(port, [process.pid])
            process.terminate()
            process.wait(timeout=10)

        targets = {"nginx": (nginx_port, nginx_pids, True)}
        for name, binary in ballasts:
            port, process = start_ballast(procs, name, binary, fast)
            targets[name] = (port, [process.pid], True)
        bare = procs.listening("bare", [BARE, "127.0.0.1:0", f"http://{fast}/v1/chat/completions"], PROXY_CPU)
        targets["bare_proxy"] = (int(bare.rsplit(":", 1)[1]), [procs.started[-1].pid], False)
        fast_port = int(fast.rsplit(":", 1)[1])
        url = lambda port: f"http://127.0.0.1:{port}/v1/chat/completions"

        for port, _, streams in targets.values():  # warm-up
            for stream in (False, True) if streams else (False,):
                oha(url(port), 2, 32, stream)

        closed = {(name, stream): [] for name in targets for stream in (False, True)}
        latency = {(name, rate): [] for name in ["direct", *targets] for rate in (500, 25)}
        for _ in range(args.rounds):
            for stream in (False, True):
                for name, (port, pids, streams) in targets.items():
                    if stream and not streams:
                        continue
                    before = tree_ticks(pids)
                    result = oha(url(port), args.seconds, 32, stream)
                    result["cpu_ms"] = (tree_ticks(pids) - before) * 1e3 / TICK / max(result["ok"], 1)
                    closed[(name, stream)].append(result)
        # Latency is measured unpinned, as run.sh does: with the proxy alone on its core, every
        # request would pay a cross-core wake-up that a real deployment's scheduler avoids.
        set_affinity([p.pid for p in procs.started if p.poll() is None] + nginx_pids, set(range(os.cpu_count())))
        every_cpu = ",".join(str(c) for c in range(os.cpu_count()))
        for _ in range(args.rounds):
            for rate in (500, 25):
                for name in latency_names(targets):
                    port = fast_port if name == "direct" else targets[name][0]
                    latency[(name, rate)].append(oha(url(port), args.seconds, 8, False, rate, every_cpu))

        report = render(args, ballasts, targets, closed, latency, held)
        print(report)
        if args.results:
            with open(args.results, "w") as f:
                f.write(report + "\n")
    finally:
        procs.stop()


def latency_names(targets):
    return ["direct", *(name for name in targets if name != "bare_proxy")]


def render(args, ballasts, targets, closed, latency, held):
    med = statistics.median
    out = []
    w = out.append
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    w("# ballast against a plain nginx hop\n")
    w(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}")
    w(f"- machine: {os.cpu_count()} cores; the proxy pinned to CPU {PROXY_CPU}, oha and the upstreams to CPU {LOAD_CPU}")
    w("- ballast: `server.workers: 1`, default logging (info, one JSON line per request, to a file), cache off")
    w(f"- {args.rounds} rounds of {args.seconds} s per run; medians over rounds\n")
    w("| proxy | req/s (32 conn.) | CPU ms/req | streams/s (32 conn.) | CPU ms/stream | "
      "added p50 / p99 at 500 req/s (ms) | added p50 at 25 req/s (ms) | 512 streams: done, peak RSS, worst / p99 gap (ms) |")
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    direct = {rate: (med(r["p50"] for r in latency[("direct", rate)]), med(r["p99"] for r in latency[("direct", rate)]))
              for rate in (500, 25)}
    numbers = {}
    for name in targets:
        plain = closed[(name, False)]
        stream = closed[(name, True)]
        n = {"rps": med(r["rps"] for r in plain), "cpu": med(r["cpu_ms"] for r in plain)}
        if stream:
            n.update(srps=med(r["rps"] for r in stream), scpu=med(r["cpu_ms"] for r in stream))
        if (name, 500) in latency and latency[(name, 500)]:
            n.update(p50=med(r["p50"] for r in latency[(name, 500)]) - direct[500][0],
                     p99=med(r["p99"] for r in latency[(name, 500)]) - direct[500][1],
                     idle=med(r["p50"] for r in latency[(name, 25)]) - direct[25][0])
        numbers[name] = n
        h = held.get(name)
        cells = [f"{n['rps']:,.0f}", f"{n['cpu']:.3f}",
                 f"{n['srps']:,.0f}" if "srps" in n else "–", f"{n['scpu']:.3f}" if "scpu" in n else "–",
                 f"{n['p50']:+.3f} / {n['p99']:+.3f}" if "p50" in n else "–",
                 f"{n['idle']:+.3f}" if "idle" in n else "–",
                 f"{h['done']}/{SLOW_STREAMS}, {h['rss_kib'] / 1024:.1f} MiB, {h['max_gap']:.0f} / {h['p99_gap']:.0f}" if h else "–"]
        w(f"| {name} | " + " | ".join(cells) + " |")
    w(f"\nDirect (oha to the upstream): p50 / p99 {direct[500][0]:.3f} / {direct[500][1]:.3f} ms at 500 req/s, "
      f"p50 {direct[25][0]:.3f} ms at 25 req/s. Slow streams: {SLOW_CHUNKS} chunks, one every {SLOW_INTERVAL_MS} ms. "
      "bare_proxy (axum + hyper-util's client, whole answers only) is the floor of ballast's own stack.\n")
    ng = numbers["nginx"]
    for name, _ in ballasts:
        n, h = numbers[name], held[name]
        measured = {
            "plain_ratio": n["rps"] / ng["rps"], "stream_ratio": n["srps"] / ng["srps"],
            "plain_cpu": n["cpu"], "stream_cpu": n["scpu"], "added_p50": n["p50"], "added_p99": n["p99"],
            "idle_p50": n["idle"], "rss_mib": h["rss_kib"] / 1024,
            "gap_ratio": h["max_gap"] / SLOW_INTERVAL_MS if h["done"] == SLOW_STREAMS else float("inf"),
        }
        w(f"## {name} against the targets\n")
        w("| target | measured | wanted | verdict |")
        w("| --- | ---: | ---: | --- |")
        met = 0
        for label, key, op, want in TARGETS:
            value = measured[key]
            ok = value >= want if op == ">=" else value <= want
            met += ok
            w(f"| {label} | {value:.3f} | {op} {want:g} | {'PASS' if ok else 'MISS'} |")
        w(f"\n{met} of {len(TARGETS)} targets met.\n")
    return "\n".join(out)


if __name__ == "__main__":
    main()
