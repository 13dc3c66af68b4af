#!/usr/bin/env python3
"""Static checks of the Grafana dashboard and the Prometheus rules against the metric contract.

    python3 tests/observability/check_dashboard.py [REPO_ROOT]

- deploy/grafana/dashboards/*.json parse; every panel but rows has targets with a PromQL expr
  and the `prometheus` datasource uid; the template variables model and provider exist;
  panels do not overlap.
- every `ballast_*` name in a dashboard expr or variable query, in deploy/prometheus/alerts.yml
  and in alerts_test.yml is a metric of SPEC §5 (histograms also with _bucket/_sum/_count,
  _bucket only on histograms);
- every label in a selector `ballast_x{label=...}` or a `by (...)` / `without (...)` clause is
  one the metrics of that expression carry, and fixed-set labels (route, outcome, result, kind,
  flag, stream) only name values of their set.

Prints one line per problem and `N passed, M failed`; exits 1 on any problem. Stdlib only.
"""

import json
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from contract import METRIC_RE, METRICS, labels_of, resolve  # noqa: E402

SELECTOR_RE = re.compile(r"\b(ballast_[a-z_]+)\s*\{([^}]*)\}")
MATCHER_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
GROUPING_RE = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
# on (...) / ignoring (...) / group_left (...) name labels of both sides; they are checked the
# same way as by (...).
MATCHING_RE = re.compile(r"\b(?:on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


class Checker:
    """Counts cases (a panel, a variable, a rule, the file itself), not single assertions: a
    case passes when none of its checks failed."""

    def __init__(self):
        self.passed = 0
        self.failed = 0
        self._current = None
        self._current_failed = False

    def case(self, name):
        self.end_case()
        self._current = name
        self._current_failed = False

    def end_case(self):
        if self._current is not None:
            if self._current_failed:
                self.failed += 1
            else:
                self.passed += 1
        self._current = None

    def check(self, ok, what):
        if not ok:
            if self._current is None:
                self.failed += 1
            self._current_failed = True
            print(f"FAIL {what}")
        return ok


def check_expr(c, where, expr, extra_labels=()):
    """Checks the ballast_* names and labels of one PromQL expression (or any text)."""
    names = METRIC_RE.findall(expr)
    resolved = []
    for name in names:
        r = resolve(name)
        if c.check(r is not None, f"{where}: `{name}` is not a metric of the contract (SPEC §5)"):
            resolved.append(name)
    allowed = set(extra_labels)
    for name in resolved:
        allowed |= labels_of(name)

    for name, body in SELECTOR_RE.findall(expr):
        if resolve(name) is None:
            continue
        base, _ = resolve(name)
        fixed = METRICS[base][2]
        own = labels_of(name)
        for label, op, value in MATCHER_RE.findall(body):
            c.check(label in own, f"{where}: `{name}` has no label `{label}`")
            if label in fixed:
                if op in ("=", "!="):
                    values = [value]
                elif re.fullmatch(r"[a-z_]+(\|[a-z_]+)*", value):
                    values = value.split("|")
                else:
                    values = []  # a real regex: not checked value by value
                for v in values:
                    c.check(
                        v in fixed[label],
                        f"{where}: {label}=\"{v}\" is not one of {sorted(fixed[label])}",
                    )

    if resolved:
        for group in GROUPING_RE.findall(expr) + MATCHING_RE.findall(expr):
            for label in [x.strip() for x in group.split(",") if x.strip()]:
                c.check(label in allowed, f"{where}: grouping label `{label}` is not carried by {sorted(set(resolved))}")
    return names


def check_dashboard(c, path):
    c.case(f"{path} parses")
    try:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        c.check(False, f"{path}: does not parse as JSON: {e}")
        return
    c.check(True, f"{path} parses")
    c.check(isinstance(dash.get("schemaVersion"), int) and dash["schemaVersion"] >= 36,
            f"{path}: schemaVersion {dash.get('schemaVersion')!r} (want >= 36)")
    c.check(bool(dash.get("uid")) and bool(dash.get("title")), f"{path}: uid and title set")

    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    for var in ("model", "provider"):
        c.case(f"{path} variable {var}")
        if c.check(var in variables, f"{path}: template variable `{var}` missing"):
            v = variables[var]
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else (q or "")
            c.check(q.startswith("label_values(") and f", {var})" in q,
                    f"{path}: variable `{var}` query {q!r} is not label_values(..., {var})")
            c.check(v.get("datasource", {}).get("uid") == "prometheus",
                    f"{path}: variable `{var}` datasource uid is not `prometheus`")
            check_expr(c, f"{path} variable {var}", q)

    c.case(f"{path} panel list")
    panels = []
    for p in dash.get("panels", []):
        panels.append(p)
        panels.extend(p.get("panels", []))  # collapsed rows keep theirs inside
    c.check(len(panels) > 0, f"{path}: has panels")
    ids = [p.get("id") for p in panels]
    c.check(len(ids) == len(set(ids)), f"{path}: panel ids are unique")

    boxes = []
    for p in panels:
        title = p.get("title", "?")
        where = f"{path} panel {p.get('id')} `{title}`"
        c.case(where)
        g = p.get("gridPos", {})
        c.check(all(isinstance(g.get(k), int) for k in "hwxy") and g.get("x", 0) + g.get("w", 0) <= 24,
                f"{where}: bad gridPos {g}")
        boxes.append((g.get("x", 0), g.get("y", 0), g.get("w", 0), g.get("h", 0), where))
        if p.get("type") == "row":
            continue
        c.check(p.get("datasource", {}).get("uid") == "prometheus",
                f"{where}: panel datasource uid is not `prometheus`")
        targets = p.get("targets") or []
        if not c.check(len(targets) > 0, f"{where}: has no targets"):
            continue
        for t in targets:
            expr = t.get("expr", "")
            c.check(bool(expr.strip()), f"{where} target {t.get('refId')}: empty expr")
            c.check(t.get("datasource", {}).get("uid") == "prometheus",
                    f"{where} target {t.get('refId')}: datasource uid is not `prometheus`")
            names = check_expr(c, f"{where} target {t.get('refId')}", expr)
            c.check(len(names) > 0, f"{where} target {t.get('refId')}: references no ballast_ metric")
    c.case(f"{path} layout")
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            overlap = a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]
            c.check(not overlap, f"{a[4]} overlaps {b[4]}")
    c.end_case()
    return dash


def check_text_file(c, path):
    """Rule files are YAML, which the stdlib cannot parse: every ballast_* name and selector in
    the text is checked (alert names are CamelCase and do not match)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    # One expression per rule / per test series: split on YAML keys so `by (...)` clauses are
    # checked against the metrics of their own expression.
    chunks = re.split(r"\n\s*-?\s*(?:alert|expr|series|record|expr_test|eval_time):", text)
    c.case(f"{path} references ballast_ metrics")
    c.check(len(METRIC_RE.findall(text)) > 0, f"{path}: references ballast_ metrics")
    for n, chunk in enumerate(chunks):
        if not METRIC_RE.search(chunk):
            continue
        c.case(f"{path} part {n}")
        check_expr(c, f"{path} (part {n})", chunk)
    c.end_case()


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    root = os.path.abspath(root)
    c = Checker()
    dash_dir = os.path.join(root, "deploy", "grafana", "dashboards")
    dashboards = sorted(f for f in os.listdir(dash_dir) if f.endswith(".json"))
    c.case("dashboards exist")
    c.check(len(dashboards) > 0, f"{dash_dir}: no dashboards")
    for f in dashboards:
        check_dashboard(c, os.path.join(dash_dir, f))
    for f in ("alerts.yml", "alerts_test.yml"):
        check_text_file(c, os.path.join(root, "deploy", "prometheus", f))
    c.end_case()
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
