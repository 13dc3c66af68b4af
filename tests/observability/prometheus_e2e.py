#!/usr/bin/env python3
"""End-to-end: a real Prometheus scrapes the real gateway binary; its API sees the contract.

    python3 tests/observability/prometheus_e2e.py            # against ${BALLAST_BIN:-target/debug/ballast}
    python3 tests/observability/prometheus_e2e.py --selftest # against a stand-in exposition server

1. Starts the gateway (`serve --listen 127.0.0.1:0 --log-format json`, address read from its
   `listening` log line) on a config with the offline mock provider: model `demo` (one healthy
   target) and `flaky-first` (a target that always fails, then a healthy one).
2. Starts `prometheus` (Debian package; `tests/observability/ensure_prometheus.sh` installs
   it) on a free loopback port, scraping the gateway every second, with a temporary TSDB and
   the real deploy/prometheus/alerts.yml as its rule file.
3. Sends a few dozen non-streamed and streamed chat completions for both models (and one for
   an unknown model), then polls Prometheus's HTTP API (bounded) and checks what it holds.

`--selftest` replaces the gateway with a stdlib HTTP server serving a hand-written exposition
of the contract's metrics: it checks this harness and Prometheus itself, not ballast.

Everything is on loopback; every wait and loop is bounded; only the processes started here are
stopped, by their own Popen handle. Prints `N passed, M failed`; exits 1 on any failure.
Python 3 standard library only.
"""

import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, HERE)
from contract import METRICS, resolve  # noqa: E402

GATEWAY_CONFIG = """\
server: { listen: 127.0.0.1:0, request_timeout: 10s, shutdown_grace: 1s }
providers:
  mock: { kind: mock, latency: 5ms }
  flaky: { kind: mock, latency: 5ms, failure_rate: 1.0, retry: { max_retries: 0 } }
models:
  demo: { targets: [ { provider: mock, model: m } ] }
  flaky-first: { targets: [ { provider: flaky, model: f }, { provider: mock, model: m } ] }
"""

STARTUP_TIMEOUT_S = 20.0
PROMETHEUS_READY_TIMEOUT_S = 30.0
QUERY_DEADLINE_S = 30.0
STOP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 10.0
REQUESTS_PER_KIND = 6  # per model x {non-streamed, streamed} x burst
BURSTS = 2


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


class Results:
    def __init__(self):
        self.items = []

    def record(self, name, ok, detail=""):
        self.items.append((name, bool(ok), detail))
        print(f"{'PASSED' if ok else 'FAILED'} {name}" + (f": {detail}" if detail and not ok else ""))
        sys.stdout.flush()

    def summary(self):
        passed = sum(1 for _, ok, _ in self.items if ok)
        failed = len(self.items) - passed
        return passed, failed


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=HTTP_TIMEOUT_S):
    """Returns (status, headers, body bytes); never raises for an HTTP status."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers or {}), e.read()


def stop(proc, name):
    """SIGTERM, bounded wait, then SIGKILL: only this Popen's own process."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print(f"{name} (pid {proc.pid}) did not stop within {STOP_TIMEOUT_S}s of SIGTERM: killing it")
        proc.kill()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    except ProcessLookupError:
        pass


def parse_exposition(text):
    """Prometheus text format -> (types {family: type}, samples [(name, labels dict, value)])."""
    types = {}
    samples = []
    line_re = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$")
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3].strip()
            continue
        m = line_re.match(line)
        if not m:
            samples.append((None, {"_unparsed": line}, None))
            continue
        labels = dict(label_re.findall(m.group(3) or ""))
        try:
            value = float(m.group(4))
        except ValueError:
            value = None
        samples.append((m.group(1), labels, value))
    return types, samples


# --------------------------------------------------------------------------------------------
# The gateway, or the self-test's stand-in
# --------------------------------------------------------------------------------------------


class Gateway:
    def __init__(self, binary, workdir):
        self.binary = binary
        self.workdir = workdir
        self.proc = None
        self.addr = None
        self.log_lines = []
        self._reader = None

    def start(self):
        config = os.path.join(self.workdir, "ballast.yaml")
        with open(config, "w") as f:
            f.write(GATEWAY_CONFIG)
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--config", config, "--listen", "127.0.0.1:0", "--log-format", "json"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
        )
        ready = threading.Event()
        found = {}

        def drain():
            for line in self.proc.stderr:
                line = line.rstrip("\n")
                self.log_lines.append(line)
                if not ready.is_set():
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    fields = rec.get("fields") if isinstance(rec, dict) else None
                    if isinstance(fields, dict) and fields.get("message") == "listening":
                        found["addr"] = fields.get("addr")
                        ready.set()
            ready.set()

        self._reader = threading.Thread(target=drain, daemon=True)
        self._reader.start()
        ready.wait(timeout=STARTUP_TIMEOUT_S)
        if not found.get("addr"):
            raise RuntimeError(
                "gateway did not log `listening` within %ss; stderr tail:\n%s"
                % (STARTUP_TIMEOUT_S, "\n".join(self.log_lines[-30:]))
            )
        self.addr = found["addr"]

    def stop(self):
        stop(self.proc, "gateway")
        if self._reader:
            self._reader.join(timeout=5)


class StandIn:
    """Serves a hand-written exposition of the contract's metrics; counters grow per scrape."""

    def __init__(self):
        self.server = None
        self.addr = None
        self.scrapes = 0
        self.lock = threading.Lock()

    def exposition(self):
        with self.lock:
            self.scrapes += 1
            n = self.scrapes
        lines = []

        def fam(name, typ, help_):
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {typ}")

        latency_buckets = ("0.005", "0.05", "0.5", "5", "30", "300", "+Inf")
        overhead_buckets = ("0.0005", "0.005", "0.05", "0.1", "+Inf")

        def hist(name, labels, count, le_hit, buckets=latency_buckets):
            # `count` observations, all in the bucket `le_hit`.
            lab = ",".join(f'{k}="{v}"' for k, v in labels.items())
            sep = "," if lab else ""
            for le in buckets:
                val = count if le == "+Inf" or float(le) >= le_hit else 0
                lines.append(f'{name}_bucket{{{lab}{sep}le="{le}"}} {val}')
            lines.append(f"{name}_sum{{{lab}}} {count * le_hit / 2}" if lab else f"{name}_sum {count * le_hit / 2}")
            lines.append(f"{name}_count{{{lab}}} {count}" if lab else f"{name}_count {count}")

        fam("ballast_requests_total", "counter", "Requests.")
        lines.append(f'ballast_requests_total{{model="demo",route="primary",status="200"}} {10 * n}')
        lines.append(f'ballast_requests_total{{model="flaky-first",route="failover",status="200"}} {5 * n}')
        lines.append(f'ballast_requests_total{{model="nope",route="error",status="404"}} {n}')
        fam("ballast_request_duration_seconds", "histogram", "Request duration.")
        hist("ballast_request_duration_seconds", {"model": "demo", "route": "primary", "stream": "false"}, 5 * n, 0.05)
        hist("ballast_request_duration_seconds", {"model": "demo", "route": "primary", "stream": "true"}, 5 * n, 0.05)
        fam("ballast_time_to_first_token_seconds", "histogram", "TTFT.")
        hist("ballast_time_to_first_token_seconds", {"model": "demo", "provider": "mock"}, 5 * n, 0.05)
        fam("ballast_upstream_requests_total", "counter", "Upstream attempts.")
        lines.append(f'ballast_upstream_requests_total{{provider="mock",outcome="ok"}} {15 * n}')
        lines.append(f'ballast_upstream_requests_total{{provider="flaky",outcome="server_error"}} {5 * n}')
        fam("ballast_failovers_total", "counter", "Failovers.")
        lines.append(f'ballast_failovers_total{{model="flaky-first",from="flaky",to="mock"}} {5 * n}')
        fam("ballast_tokens_total", "counter", "Tokens.")
        lines.append(f'ballast_tokens_total{{model="demo",provider="mock",kind="prompt"}} {100 * n}')
        lines.append(f'ballast_tokens_total{{model="demo",provider="mock",kind="completion"}} {200 * n}')
        fam("ballast_circuit_state", "gauge", "Breaker state.")
        lines.append('ballast_circuit_state{provider="mock"} 0')
        lines.append('ballast_circuit_state{provider="flaky"} 2')
        fam("ballast_inflight_requests", "gauge", "Inflight.")
        lines.append("ballast_inflight_requests 0")
        fam("ballast_overhead_seconds", "histogram", "Overhead.")
        hist("ballast_overhead_seconds", {}, 15 * n, 0.005, overhead_buckets)
        return "\n".join(lines) + "\n"

    def start(self):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                if self.path != "/metrics":
                    self.send_response(404)
                    self.end_headers()
                    return
                body = outer.exposition().encode()
                self.send_response(200)
                self.send_header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.addr = "127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()


# --------------------------------------------------------------------------------------------
# Prometheus
# --------------------------------------------------------------------------------------------


class Prometheus:
    def __init__(self, binary, workdir, target):
        self.binary = binary
        self.workdir = workdir
        self.target = target
        self.proc = None
        self.port = None
        self.log_path = os.path.join(workdir, "prometheus.log")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        rules = os.path.join(REPO_ROOT, "deploy", "prometheus", "alerts.yml")
        config = os.path.join(self.workdir, "prometheus.yml")
        with open(config, "w") as f:
            f.write(
                "global: { scrape_interval: 1s, evaluation_interval: 1s }\n"
                f"rule_files: [ {json.dumps(rules)} ]\n"
                "scrape_configs:\n"
                "  - job_name: ballast\n"
                "    scrape_interval: 1s\n"
                "    scrape_timeout: 1s\n"
                "    metrics_path: /metrics\n"
                f"    static_configs: [ {{ targets: [ {json.dumps(self.target)} ] }} ]\n"
            )
        tsdb = os.path.join(self.workdir, "tsdb")
        os.makedirs(tsdb, exist_ok=True)
        last_error = None
        for _ in range(3):  # the free port may be taken between probe and bind: bounded retries
            self.port = free_port()
            log = open(self.log_path, "w")
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tsdb}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
            log.close()
            deadline = time.monotonic() + PROMETHEUS_READY_TIMEOUT_S
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    status, _, _ = http("GET", self.url + "/-/ready", timeout=2)
                    if status == 200:
                        return
                except (OSError, urllib.error.URLError) as e:
                    last_error = e
                time.sleep(0.25)
            last_error = last_error or f"exit code {self.proc.poll()}"
            stop(self.proc, "prometheus")
        raise RuntimeError(f"prometheus did not become ready ({last_error}); log:\n{self.log_tail()}")

    def log_tail(self, n=30):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def query(self, expr):
        """Returns (status, result list or error string)."""
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            _, _, body = http("GET", url, timeout=5)
            doc = json.loads(body)
        except (OSError, ValueError, urllib.error.URLError) as e:
            return "error", str(e)
        if doc.get("status") != "success":
            return "error", f"{doc.get('errorType')}: {doc.get('error')}"
        return "success", doc["data"]["result"]

    def api(self, path):
        try:
            _, _, body = http("GET", self.url + path, timeout=5)
            return json.loads(body)
        except (OSError, ValueError, urllib.error.URLError) as e:
            return {"status": "error", "error": str(e)}

    def stop(self):
        stop(self.proc, "prometheus")


# --------------------------------------------------------------------------------------------
# Traffic
# --------------------------------------------------------------------------------------------


def drive_traffic(addr):
    """Bounded: BURSTS x 2 models x 2 kinds x REQUESTS_PER_KIND requests, plus one unknown model.

    Returns {(model, stream): [statuses]}.
    """
    url = f"http://{addr}/v1/chat/completions"
    statuses = {}
    for burst in range(BURSTS):
        for model in ("demo", "flaky-first"):
            for stream in (False, True):
                for i in range(REQUESTS_PER_KIND):
                    body = {"model": model, "messages": [{"role": "user", "content": f"hi {burst} {i}"}]}
                    if stream:
                        body["stream"] = True
                    try:
                        status, _, _ = http("POST", url, body=body)
                    except (OSError, urllib.error.URLError) as e:
                        status = f"exception: {e}"
                    statuses.setdefault((model, stream), []).append(status)
        if burst + 1 < BURSTS:
            time.sleep(2.5)  # so that rate() sees the counters grow between scrapes
    try:
        status, _, _ = http("POST", url, body={"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]})
    except (OSError, urllib.error.URLError) as e:
        status = f"exception: {e}"
    statuses[("no-such-model", False)] = [status]
    return statuses


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def check_exposition(results, addr):
    """GET /metrics directly: format and contract conformance of every ballast_* family."""
    try:
        status, headers, body = http("GET", f"http://{addr}/metrics")
    except (OSError, urllib.error.URLError) as e:
        results.record("gateway serves /metrics", False, str(e))
        return None
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    ok = status == 200 and ctype.startswith("text/plain")
    results.record("gateway serves /metrics", ok, f"status {status}, content-type {ctype!r}")
    if not ok:
        return None
    types, samples = parse_exposition(body.decode("utf-8", "replace"))
    problems = []
    for name, labels, value in samples:
        if name is None:
            problems.append(f"unparsable line {labels['_unparsed']!r}")
            continue
        if not name.startswith("ballast_"):
            continue
        r = resolve(name)
        if r is None:
            problems.append(f"{name} is not in the contract")
            continue
        base, suffix = r
        typ, allowed, fixed = METRICS[base]
        if types.get(base) != typ:
            problems.append(f"{base} has # TYPE {types.get(base)!r}, contract says {typ}")
        extra = set(labels) - set(allowed) - ({"le"} if suffix == "_bucket" else set())
        if extra:
            problems.append(f"{name} has labels {sorted(extra)} not in the contract {sorted(allowed)}")
        missing = set(allowed) - set(labels)
        if missing:
            problems.append(f"{name} lacks labels {sorted(missing)}")
        for k, vals in fixed.items():
            if k in labels and labels[k] not in vals:
                problems.append(f"{name}{{{k}={labels[k]!r}}} is not one of {sorted(vals)}")
        if base == "ballast_requests_total" and "status" in labels and not re.fullmatch(r"[1-5][0-9][0-9]", labels["status"]):
            problems.append(f"{name} status={labels['status']!r} is not a 3-digit HTTP status (alerts use status=~\"5..\")")
        if value is None or math.isnan(value):
            problems.append(f"{name} has value {value!r}")
        elif base.endswith("_total") and value < 0:
            problems.append(f"{name} is a counter with a negative value {value}")
    check_histogram_thresholds(results, samples)
    families = sorted({resolve(n)[0] for n, _, _ in samples if n and n.startswith("ballast_") and resolve(n)})
    results.record(
        "exposition conforms to the contract (names, types, labels, label values)",
        not problems,
        "; ".join(problems[:12]) + (f" (+{len(problems) - 12} more)" if len(problems) > 12 else ""),
    )
    print(f"       families exposed: {', '.join(families) or '(none)'}")
    absent = sorted(set(METRICS) - set(families))
    if absent:
        print(f"       not (yet) exposed: {', '.join(absent)}")
    return types, samples


def histogram_alert_thresholds():
    """[(alert, histogram, threshold)] for the `histogram_quantile(...) > N` alerts of alerts.yml."""
    path = os.path.join(REPO_ROOT, "deploy", "prometheus", "alerts.yml")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    out = []
    for block in re.split(r"\n\s*- alert:\s*", text)[1:]:
        name = block.split(None, 1)[0]
        m = re.search(r"expr:\s*\|?([\s\S]*?)\n\s*for:", block)
        if not m or "histogram_quantile" not in m.group(1):
            continue
        expr = m.group(1)
        hist = re.search(r"(ballast_[a-z_]+)_bucket", expr)
        thr = re.search(r"\)\s*>\s*([0-9.eE+-]+)\s*$", expr.strip())
        if hist and thr:
            out.append((name, hist.group(1), float(thr.group(1))))
    return out


def check_histogram_thresholds(results, samples):
    """A histogram_quantile never exceeds the highest finite bucket bound: an alert threshold at
    or above it can never fire. Checked against the buckets the gateway really exposes."""
    bounds = {}
    for name, labels, _ in samples:
        if name and name.endswith("_bucket") and labels.get("le") not in (None, "+Inf"):
            base = name[: -len("_bucket")]
            bounds[base] = max(bounds.get(base, 0.0), float(labels["le"]))
    problems = []
    rules = histogram_alert_thresholds()
    for alert, hist, thr in rules:
        if hist not in bounds:
            continue  # not exposed yet: nothing to compare with
        if thr >= bounds[hist]:
            problems.append(f"{alert}: threshold {thr} >= highest finite bucket {bounds[hist]} of {hist}")
    results.record(
        "histogram alert thresholds are below each histogram's highest finite bucket",
        bool(rules) and not problems,
        "; ".join(problems) or "no histogram_quantile alerts found in alerts.yml",
    )


def series_of(prom, expr):
    status, res = prom.query(expr)
    return res if status == "success" else []


def wait_for(prom, checks, deadline_s):
    """Polls every check (name, fn(prom) -> (ok, detail)) until all pass or the deadline."""
    deadline = time.monotonic() + deadline_s
    outcome = {}
    while True:
        for name, fn in checks:
            if outcome.get(name, (False,))[0]:
                continue
            try:
                outcome[name] = fn(prom)
            except Exception as e:  # noqa: BLE001 - a check's bug is that check's failure
                outcome[name] = (False, f"{type(e).__name__}: {e}")
        if all(outcome[n][0] for n, _ in checks) or time.monotonic() >= deadline:
            return outcome
        time.sleep(1.0)


def has_series(expr, want_labels=None):
    def fn(prom):
        res = series_of(prom, expr)
        if want_labels:
            for key, values in want_labels.items():
                got = {s["metric"].get(key) for s in res}
                missing = set(values) - got
                if missing:
                    return False, f"{expr}: no series with {key} in {sorted(missing)} (got {sorted(x for x in got if x)})"
        return bool(res), f"{expr}: no series"

    return fn


def is_number(expr):
    def fn(prom):
        status, res = prom.query(expr)
        if status != "success":
            return False, f"{expr}: {res}"
        if not res:
            return False, f"{expr}: empty result"
        v = float(res[0]["value"][1])
        return math.isfinite(v), f"{expr} = {v}"

    return fn


def up_is_one(prom):
    res = series_of(prom, 'up{job="ballast"}')
    vals = [s["value"][1] for s in res]
    return vals == ["1"], f"up{{job=\"ballast\"}} = {vals}"


def rules_healthy(prom):
    doc = prom.api("/api/v1/rules")
    if doc.get("status") != "success":
        return False, f"/api/v1/rules: {doc.get('error')}"
    rules = [r for g in doc["data"]["groups"] for r in g["rules"]]
    bad = [f"{r['name']}: {r.get('health')} {r.get('lastError', '')}".strip() for r in rules if r.get("health") != "ok"]
    return bool(rules) and not bad, f"{len(rules)} rules loaded; not ok: {bad[:5]}"


def active_alerts(prom):
    doc = prom.api("/api/v1/alerts")
    if doc.get("status") != "success":
        return None
    return doc["data"]["alerts"]


def circuit_alert_for_flaky(prom):
    alerts = active_alerts(prom)
    if alerts is None:
        return False, "/api/v1/alerts failed"
    hits = [a for a in alerts if a["labels"].get("alertname") == "BallastCircuitOpen" and a["labels"].get("provider") == "flaky"]
    names = sorted({a["labels"].get("alertname") + "/" + a.get("state", "?") for a in alerts})
    return bool(hits), f"no BallastCircuitOpen{{provider=\"flaky\"}}; active: {names}"


def no_alert_for_healthy(prom):
    alerts = active_alerts(prom)
    if alerts is None:
        return False, "/api/v1/alerts failed"
    bad = [
        f"{a['labels'].get('alertname')}{{{', '.join(f'{k}={v}' for k, v in a['labels'].items() if k != 'alertname')}}}"
        for a in alerts
        if a["labels"].get("provider") == "mock" or a["labels"].get("model") == "demo" or a["labels"].get("alertname") == "BallastDown"
    ]
    return not bad, f"active alerts about healthy parts: {bad}"


def dashboard_queries():
    path = os.path.join(REPO_ROOT, "deploy", "grafana", "dashboards", "ballast.json")
    with open(path, encoding="utf-8") as f:
        dash = json.load(f)
    out = []
    panels = []
    for p in dash.get("panels", []):
        panels.append(p)
        panels.extend(p.get("panels", []))
    for p in panels:
        for t in p.get("targets", []):
            expr = t.get("expr", "")
            # What Grafana would substitute for "All" and its interval macros.
            expr = (
                expr.replace("$__rate_interval", "1m")
                .replace("$__range", "5m")
                .replace("$__interval", "15s")
                .replace("$model", ".*")
                .replace("$provider", ".*")
            )
            out.append((f"{p.get('title')} [{t.get('refId')}]", expr))
    return out


def dashboard_queries_run(prom):
    errors = []
    with_data = 0
    queries = dashboard_queries()
    for name, expr in queries:
        status, res = prom.query(expr)
        if status != "success":
            errors.append(f"{name}: {res}")
        elif res:
            with_data += 1
    dashboard_queries_run.with_data = (with_data, len(queries))
    return not errors, "; ".join(errors[:5])


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--selftest", action="store_true", help="scrape a stand-in exposition server instead of the gateway")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (Prometheus log, TSDB)")
    args = ap.parse_args()

    results = Results()
    prom_bin = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not os.path.isfile(prom_bin):
        print("prometheus not found: run `bash tests/observability/ensure_prometheus.sh` first")
        print("0 passed, 1 failed")
        return 1
    binary = os.environ.get("BALLAST_BIN", "target/debug/ballast")
    if not os.path.isabs(binary):
        binary = os.path.join(REPO_ROOT, binary)
    if not args.selftest and not os.path.isfile(binary):
        print(f"gateway binary not found at {binary}: run `cargo build` first (or set BALLAST_BIN)")
        print("0 passed, 1 failed")
        return 1

    workdir = tempfile.mkdtemp(prefix="ballast-prom-e2e-")
    target = None
    prom = None
    started = time.monotonic()
    try:
        target = StandIn() if args.selftest else Gateway(binary, workdir)
        try:
            target.start()
            results.record("target starts" if args.selftest else "gateway starts", True)
        except RuntimeError as e:
            results.record("gateway starts", False, str(e))
            return finish(results, started)
        print(f"       {'stand-in' if args.selftest else 'gateway'} on {target.addr}")

        try:
            prom = Prometheus(prom_bin, workdir, target.addr)
            prom.start()
            results.record("prometheus starts", True)
            print(f"       prometheus on {prom.url} (workdir {workdir})")
        except RuntimeError as e:
            results.record("prometheus starts", False, str(e))
            return finish(results, started)

        # First scrape before any traffic, so rate() sees the counters grow.
        first = wait_for(prom, [("first scrape", lambda p: (bool(series_of(p, 'up{job="ballast"}')), "no up series"))], 15)
        if not first["first scrape"][0]:
            print("       warning: no scrape recorded within 15s; driving traffic anyway")

        if not args.selftest:
            statuses = drive_traffic(target.addr)
            summary = {f"{m}{' stream' if s else ''}": sorted(set(v), key=str) for (m, s), v in statuses.items()}
            print(f"       traffic statuses: {summary}")
            all_ok = all(st == 200 for (m, _), v in statuses.items() if m != "no-such-model" for st in v)
            results.record(
                "chat completions through the gateway answer 200 (demo and flaky-first, streamed and not)",
                all_ok,
                json.dumps(summary),
            )

        check_exposition(results, target.addr)

        checks = [
            ('up{job="ballast"} == 1', up_is_one),
            (
                "ballast_requests_total has route primary and failover",
                has_series("ballast_requests_total", {"route": ["primary", "failover"]}),
            ),
            (
                'ballast_upstream_requests_total{outcome="server_error"} exists',
                has_series('ballast_upstream_requests_total{outcome="server_error"}'),
            ),
            ("ballast_failovers_total exists", has_series("ballast_failovers_total")),
            ("ballast_tokens_total exists", has_series("ballast_tokens_total")),
            (
                "ballast_time_to_first_token_seconds exists (streamed requests)",
                has_series("ballast_time_to_first_token_seconds_count"),
            ),
            (
                'ballast_request_duration_seconds has stream="true" and stream="false"',
                has_series("ballast_request_duration_seconds_count", {"stream": ["true", "false"]}),
            ),
            (
                "histogram_quantile(0.5, ...ballast_request_duration_seconds_bucket[1m]...) is a number",
                is_number("histogram_quantile(0.5, sum(rate(ballast_request_duration_seconds_bucket[1m])) by (le))"),
            ),
            ("alert rules of deploy/prometheus/alerts.yml load and evaluate without errors", rules_healthy),
            ("every dashboard query runs without a PromQL error", dashboard_queries_run),
            (
                'alert BallastCircuitOpen{provider="flaky"} is pending or firing (the always-failing provider)',
                circuit_alert_for_flaky,
            ),
        ]
        outcome = wait_for(prom, checks, QUERY_DEADLINE_S)
        for name, _ in checks:
            ok, detail = outcome[name]
            results.record(name, ok, detail)
        # Negative check last, once the positive ones had their time: nothing about the healthy
        # provider `mock`, the healthy model `demo`, or the gateway being down.
        ok, detail = no_alert_for_healthy(prom)
        results.record("no alert is active for provider mock, model demo, or BallastDown", ok, detail)
        dashboard_queries_run(prom)  # again, now that more rate windows hold data
        if hasattr(dashboard_queries_run, "with_data"):
            d, n = dashboard_queries_run.with_data
            print(f"       dashboard queries with data: {d} of {n}")
        if not all(ok for _, ok, _ in results.items):
            tail = prom.log_tail()
            if tail.strip():
                print("--- prometheus log tail ---\n" + tail)
            if isinstance(target, Gateway):
                print("--- gateway log tail ---\n" + "\n".join(target.log_lines[-20:]))
        return finish(results, started)
    finally:
        if prom is not None:
            prom.stop()
        if target is not None:
            target.stop()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def finish(results, started):
    passed, failed = results.summary()
    print(f"prometheus e2e took {time.monotonic() - started:.1f}s")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
