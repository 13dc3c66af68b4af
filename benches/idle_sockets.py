#!/usr/bin/env python3
"""Idle-socket flood: what K client sockets that connect and send nothing do to a gateway.

Starts `ballast serve` (a release binary) on a free loopback port with a mock provider,
opens K sockets to it that send nothing, and reports:

  (a) whether a normal request (POST /v1/chat/completions) made during the flood is answered,
      and how long it took;
  (b) how many of the K sockets the gateway closed, and when (it should, header_timeout after
      accepting them), with the gateway's open file descriptors and CPU time along the way.

It is a measurement, not a test: it exits 0 whatever the numbers, non-zero only when it cannot
measure (no binary, the gateway does not start). Everything it starts it stops, by PID; every
wait is bounded. Only 127.0.0.1 is contacted.

  benches/idle_sockets.py --binary target/release/ballast              # K = 20000
  benches/idle_sockets.py --binary /tmp/old-ballast --sockets 5000 --label before
  benches/idle_sockets.py --binary target/release/ballast --max-connections 30000 \\
      --gateway-nofile 1024 --header-timeout 10s

--gateway-nofile sets the gateway's soft open-file limit (its hard one is this script's),
1024 by default: systemd's and many shells' default, the case the start-up raise is for.
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

CONFIG = """\
server:
  listen: 127.0.0.1:{port}
  header_timeout: {header_timeout}
  shutdown_grace: 2s
  workers: 2
{extra}
cache: {{ backend: none }}
providers:
  mock: {{ kind: mock }}
models:
  m: {{ targets: [ {{ provider: mock, model: x }} ] }}
"""
CHAT = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hello"}]})


def seconds(text):
    if text.endswith("ms"):
        return float(text[:-2]) / 1000
    if text.endswith("s"):
        return float(text[:-1])
    raise ValueError(f"a duration such as 10s or 500ms: {text}")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def raise_own_limit(wanted):
    """This process's open-file limit, raised towards `wanted` as far as it may."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limit in ((wanted, max(wanted, hard)), (min(wanted, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limit)
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)


class Gateway:
    def __init__(self, binary, config_text, nofile, log_path):
        self.port = None
        self.config = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        self.config.write(config_text)
        self.config.close()
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        soft = min(nofile, hard)
        self.log = open(log_path, "w")
        env = dict(os.environ, BALLAST_LOG="info")
        self.process = subprocess.Popen(
            [binary, "serve", "--config", self.config.name, "--log-format", "json"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)),
        )

    def wait_ready(self, port, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                status, _ = request(port, "GET", "/healthz", None, 1.0)
                if status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def fds(self):
        try:
            return len(os.listdir(f"/proc/{self.process.pid}/fd"))
        except OSError:
            return None

    def cpu_seconds(self):
        try:
            with open(f"/proc/{self.process.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    def soft_limit(self):
        try:
            with open(f"/proc/{self.process.pid}/limits") as limits:
                for line in limits:
                    if line.startswith("Max open files"):
                        return int(line.split()[3])
        except (OSError, ValueError):
            pass
        return None

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.log.close()
        os.unlink(self.config.name)


def request(port, method, path, body, timeout):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"content-type": "application/json"} if body else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, None
    finally:
        connection.close()


def timed_request(port, timeout):
    """(status or error text, seconds) of one chat request on a new connection."""
    started = time.monotonic()
    try:
        status, _ = request(port, "POST", "/v1/chat/completions", CHAT, timeout)
        return status, time.monotonic() - started
    except (OSError, http.client.HTTPException) as err:
        return f"no answer ({type(err).__name__})", time.monotonic() - started


class Flood:
    """Idle sockets to the gateway, and what became of each: connected, then closed by the
    gateway (a FIN or RST: it sends nothing else to a client that sent nothing)."""

    WATCH = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR

    def __init__(self, port):
        self.port = port
        self.poller = select.epoll()
        self.sockets, self.pending, self.connected, self.closed = {}, set(), set(), set()
        self.failed = 0
        self.started = time.monotonic()
        self.first_close = None
        self.timeline, self.next_mark = [], self.started + 1

    def open(self, count, batch, batch_wait, at=None, then=None):
        """`count` sockets, `batch` at a time, each batch's handshakes awaited at most
        `batch_wait` s: a burst far beyond the listen backlog is dropped by the kernel (or
        completed with SYN cookies the gateway never sees) rather than waiting in it.
        `then()` is called once `at` sockets are open."""
        linger = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT for the script's ports
        while len(self.sockets) + self.failed < count:
            if then is not None and len(self.sockets) >= at:
                then()
                then = None
            for _ in range(min(batch, count - len(self.sockets) - self.failed)):
                try:
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                except OSError:
                    self.failed += 1
                    continue
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                sock.setblocking(False)
                if sock.connect_ex(("127.0.0.1", self.port)) not in (0, 115):  # EINPROGRESS
                    sock.close()
                    self.failed += 1
                    continue
                self.sockets[sock.fileno()] = sock
                self.pending.add(sock.fileno())
                self.poller.register(sock.fileno(), select.EPOLLOUT)
            deadline = time.monotonic() + batch_wait
            while self.pending and time.monotonic() < deadline:
                self.pump(0.1)
        if then is not None:
            then()

    def pump(self, timeout):
        for fd, _ in self.poller.poll(timeout, 4096):
            if fd in self.pending:
                self.pending.discard(fd)
                error = self.sockets[fd].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    self.failed += 1
                    self.poller.unregister(fd)
                else:
                    self.connected.add(fd)
                    self.poller.modify(fd, self.WATCH)
            elif fd in self.connected and fd not in self.closed:
                self.closed.add(fd)
                self.poller.unregister(fd)
                self.first_close = self.first_close or time.monotonic() - self.started
        now = time.monotonic()
        while now >= self.next_mark:
            self.timeline.append((round(self.next_mark - self.started), len(self.closed)))
            self.next_mark += 1

    def all_closed(self):
        return not self.pending and len(self.closed) == len(self.connected)

    def close(self):
        for sock in self.sockets.values():
            sock.close()
        self.poller.close()


def run(args):
    header_timeout = seconds(args.header_timeout)
    soft, hard = raise_own_limit(max(args.sockets + 4096, 65536))
    sockets_wanted = min(args.sockets, soft - 256)
    port = free_port()
    extra = "" if args.max_connections is None else f"  max_connections: {args.max_connections}"
    config = CONFIG.format(port=port, header_timeout=args.header_timeout, extra=extra)
    log_path = args.log or os.path.join(tempfile.gettempdir(), f"idle-sockets-{port}.log")
    gateway = Gateway(args.binary, config, args.gateway_nofile, log_path)
    report = {
        "label": args.label or os.path.basename(args.binary),
        "sockets_wanted": sockets_wanted,
        "header_timeout_s": header_timeout,
        "max_connections": args.max_connections or "default",
        "client_nofile": soft,
        "gateway_soft_nofile_given": min(args.gateway_nofile, hard),
    }
    try:
        if not gateway.wait_ready(port):
            print(f"the gateway did not start; its log: {log_path}", file=sys.stderr)
            return 2
        report["gateway_soft_nofile_running"] = gateway.soft_limit()
        cpu_before = gateway.cpu_seconds()
        flood = Flood(port)
        # A normal request on a new connection once `request_at` sockets are open, in a thread
        # while the main one goes on flooding and watching.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            during = []

            def send_request():
                report["request_sent_at_s"] = round(time.monotonic() - flood.started, 2)
                report["request_sent_with_open"] = len(flood.sockets)
                report["gateway_fds_when_sent"] = gateway.fds()
                during.append(pool.submit(timed_request, port, args.request_timeout))

            request_at = min(args.request_at or sockets_wanted, sockets_wanted)
            flood.open(sockets_wanted, args.batch, 1.0, request_at, send_request)
            during = during[0]
            flooded = time.monotonic()
            report["flood_open_s"] = round(flooded - flood.started, 2)
            report["sockets_opened"] = len(flood.sockets)
            report["connected_at_flood_end"] = len(flood.connected)
            report["gateway_fds_at_flood_end"] = gateway.fds()
            # Watch the gateway close them: all closed, or 2 header timeouts and 5 s after.
            deadline = flooded + 2 * header_timeout + 5
            while not (during.done() and flood.all_closed()) and time.monotonic() < deadline:
                flood.pump(0.2)
            status, took = during.result(timeout=args.request_timeout + 5)
        report["request_during_flood"] = status
        report["request_during_flood_s"] = round(took, 3)
        report["connected"] = len(flood.connected)
        report["connect_failed_or_pending"] = flood.failed + len(flood.pending)
        report["closed_by_gateway"] = len(flood.closed)
        report["first_close_s"] = round(flood.first_close, 2) if flood.first_close else None
        report["watched_s"] = round(time.monotonic() - flood.started, 1)
        marks = flood.timeline[args.every - 1 :: args.every]
        report["closed_timeline"] = " ".join(f"{at}s:{count}" for at, count in marks)
        report["gateway_fds_after"] = gateway.fds()
        cpu_after = gateway.cpu_seconds()
        if cpu_before is not None and cpu_after is not None:
            report["gateway_cpu_s"] = round(cpu_after - cpu_before, 2)
        status, took = timed_request(port, 5.0)
        report["request_after"] = status
        report["request_after_s"] = round(took, 3)
        flood.close()
    finally:
        gateway.stop()
    with open(log_path) as log:
        lines = log.readlines()
    report["log_accept_failures"] = sum("accepting a connection failed" in line for line in lines)
    report["log_limit_reached"] = sum("connection limit reached" in line for line in lines)
    report["log_open_file_limit"] = next(
        (json.loads(line)["fields"] for line in lines if '"open-file limit"' in line), None
    )
    print(json.dumps(report, indent=2))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", required=True, help="the ballast binary to serve with")
    parser.add_argument("--sockets", type=int, default=20000, help="K idle sockets")
    parser.add_argument("--header-timeout", default="10s")
    parser.add_argument("--max-connections", type=int, help="server.max_connections (new)")
    parser.add_argument("--gateway-nofile", type=int, default=1024, help="its soft limit")
    parser.add_argument("--request-timeout", type=float, default=30.0, help="seconds")
    parser.add_argument("--request-at", type=int, help="sockets open when the request goes")
    parser.add_argument("--batch", type=int, default=256, help="sockets opened at a time")
    parser.add_argument("--every", type=int, default=2, help="timeline: one mark per N s")
    parser.add_argument("--label", help="a name for the report")
    parser.add_argument("--log", help="where the gateway's log goes")
    args = parser.parse_args()
    if not os.access(args.binary, os.X_OK):
        print(f"not an executable: {args.binary}", file=sys.stderr)
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
