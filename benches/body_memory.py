#!/usr/bin/env python3
"""Peak memory of ballast under the most expensive request bodies we can build (issue #18, item 5).

For each hostile body (all within the default 10 MiB `max_body_size`), a fresh gateway is
started (mock provider, memory cache, a key with a token limit, so the cache key, the token
estimate and the mock all read the body), CONCURRENCY copies are sent at once, ROUNDS times, and
the process's peak RSS (VmHWM) is read from /proc. Prints one Markdown table row per body.

    benches/body_memory.py [BINARY ...]      # default: target/release/ballast

Bounded: every request has a 60 s timeout, every gateway is stopped (by its PID) at the end.
Loopback only.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

CONCURRENCY = int(os.environ.get("CONCURRENCY", "4"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
SIZE = 10 * 1024 * 1024 - 1024  # just under the default max_body_size
KEY = "bench-key-0123456789abcdef"

CONFIG = """
server: {{ listen: 127.0.0.1:{port}, max_body_size: 10MiB, request_timeout: 60s }}
auth:
  keys:
    - {{ name: bench, key: '{key}', rate_limit: {{ tokens_per_minute: 100000000000 }} }}
providers:
  mock: {{ kind: mock, latency: 1ms }}
models:
  chat: {{ targets: [ {{ provider: mock, model: m }} ] }}
cache: {{ backend: memory }}
"""


def head(rest_of_member):
    return '{"model":"chat","messages":[{"role":"user","content":"hi"}]' + rest_of_member


def fill(prefix, unit, suffix):
    count = (SIZE - len(prefix) - len(suffix)) // len(unit)
    return (prefix + unit * count + suffix).encode()


def bodies():
    base = head("")
    return {
        "ordinary text (10 MiB of content)": fill(
            '{"model":"chat","messages":[{"role":"user","content":"', "a", '"}]}'
        ),
        "duplicate top-level keys": fill(base, ',"a":0', "}"),
        "an array of zeros": fill(base + ',"x":[', "0,", "0]}"),
        "an array of empty objects": fill(base + ',"x":[', "{},", "{}]}"),
        "an array of empty strings": fill(base + ',"x":[', '"",', '""]}'),
        # The worst bodies within the bounds (500,000 values, 10,000 members per object).
        "499,000 zeros (within the bounds)": (base + ',"x":[' + "0," * 498_999 + "0]}").encode(),
        "499,000 empty objects (within the bounds)": (
            base + ',"x":[' + "{}," * 498_999 + "{}]}"
        ).encode(),
        "9,990 duplicate keys (within the bounds)": (base + ',"a":0' * 9_990 + "}").encode(),
        "many messages": fill(
            '{"model":"chat","messages":[', '{"role":"user","content":"a"},', '{"role":"user","content":"a"}]}'
        ),
    }


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wait_ready(port, deadline):
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def send(port, body, statuses):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=body,
        headers={"content-type": "application/json", "authorization": f"Bearer {KEY}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            statuses.append(response.status)
    except urllib.error.HTTPError as err:
        err.read()
        statuses.append(err.code)
    except OSError as err:
        statuses.append(type(err).__name__)


def measure(binary, name, body):
    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as config:
        config.write(CONFIG.format(port=port, key=KEY))
    env = dict(os.environ, BALLAST_LOG="error")
    process = subprocess.Popen(
        [binary, "serve", "--config", config.name],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_ready(port, time.monotonic() + 20):
            return f"| {name} | gateway did not start | | |"
        idle = peak_rss_mib(process.pid)
        statuses = []
        for _ in range(ROUNDS):
            threads = [
                threading.Thread(target=send, args=(port, body, statuses))
                for _ in range(CONCURRENCY)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=90)
        peak = peak_rss_mib(process.pid)
        statuses = [str(status) for status in statuses]
        seen = ", ".join(f"{s}×{statuses.count(s)}" for s in sorted(set(statuses)))
        return f"| {name} | {len(body) / 2**20:.1f} MiB | {idle:.0f} | {peak:.0f} | {seen} |"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        os.unlink(config.name)


def main():
    binaries = sys.argv[1:] or ["target/release/ballast"]
    for binary in binaries:
        print(f"\n{binary}: {CONCURRENCY} concurrent × {ROUNDS} rounds, peak RSS (VmHWM) in MiB\n")
        print("| body | size | RSS idle | RSS peak | statuses |")
        print("| --- | --- | --- | --- | --- |")
        for name, body in bodies().items():
            print(measure(binary, name, body), flush=True)


if __name__ == "__main__":
    main()
