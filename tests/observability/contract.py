"""The metric contract of SPEC §5, as data: the names, types and labels ballast exposes.

Used by check_dashboard.py (static checks of the dashboard and the alert rules) and by
prometheus_e2e.py (checks against a real scrape). Python 3 standard library only.
"""

import re

# name -> (type, labels, {label: allowed values} for the labels with a fixed set)
METRICS = {
    "ballast_requests_total": (
        "counter",
        {"api", "model", "route", "status"},
        {
            "api": {"chat", "messages", "responses", "embeddings"},
            "route": {"cache", "primary", "failover", "stale", "degraded", "error"},
        },
    ),
    "ballast_request_duration_seconds": (
        "histogram",
        {"api", "model", "route", "stream"},
        {
            "api": {"chat", "messages", "responses", "embeddings"},
            "route": {"cache", "primary", "failover", "stale", "degraded", "error"},
            "stream": {"true", "false"},
        },
    ),
    "ballast_time_to_first_token_seconds": ("histogram", {"model", "provider"}, {}),
    "ballast_upstream_requests_total": (
        "counter",
        {"provider", "outcome"},
        {
            "outcome": {
                "ok",
                "rate_limit",
                "server_error",
                "timeout",
                "connect",
                "auth",
                "client_error",
                "bad_answer",
                "context_overflow",
            }
        },
    ),
    "ballast_upstream_duration_seconds": ("histogram", {"provider"}, {}),
    "ballast_retries_total": ("counter", {"provider"}, {}),
    "ballast_failovers_total": ("counter", {"model", "from", "to"}, {}),
    "ballast_cache_requests_total": (
        "counter",
        {"result"},
        {"result": {"hit", "miss", "stale", "bypass", "error"}},
    ),
    "ballast_tokens_total": (
        "counter",
        {"model", "provider", "kind"},
        {"kind": {"prompt", "completion"}},
    ),
    "ballast_cost_usd_total": ("counter", {"model", "provider"}, {}),
    "ballast_response_quality_total": (
        "counter",
        {"model", "provider", "flag"},
        {"flag": {"ok", "empty", "truncated", "content_filter"}},
    ),
    "ballast_circuit_state": ("gauge", {"provider"}, {}),
    "ballast_inflight_requests": ("gauge", set(), {}),
    "ballast_coalesced_requests_total": ("counter", {"model"}, {}),
    "ballast_cache_saved_usd_total": ("counter", {"model"}, {}),
    "ballast_overhead_seconds": ("histogram", set(), {}),
    "ballast_translation_drops_total": (
        "counter",
        {"api", "provider", "field"},
        {"api": {"chat", "messages", "responses", "embeddings"}},
    ),
    "ballast_stream_endings_total": (
        "counter",
        {"api", "model", "ending"},
        {
            "api": {"chat", "messages", "responses"},
            "ending": {"complete", "upstream_error", "client_gone", "shutdown"},
        },
    ),
    "ballast_answer_check_failures_total": (
        "counter",
        {"model", "provider", "check"},
        {"check": {"empty", "invalid_json", "refusal"}},
    ),
    "ballast_context_skips_total": ("counter", {"model", "provider"}, {}),
    "ballast_hedges_total": (
        "counter",
        {"model", "outcome"},
        {"outcome": {"won", "lost", "failed"}},
    ),
    "ballast_config_reloads_total": ("counter", {"result"}, {"result": {"ok", "error"}}),
    "ballast_config_last_reload_success_timestamp_seconds": ("gauge", set(), {}),
    # Not in SPEC §5's table: SPEC asks that dropped spans be counted (docs/metrics.md).
    "ballast_trace_spans_dropped_total": (
        "counter",
        {"reason"},
        {"reason": {"queue_full", "export_failed"}},
    ),
    # Not in SPEC §5's table: the JSON log writer counts the lines it drops (docs/metrics.md).
    "ballast_log_lines_dropped_total": ("counter", set(), {}),
}

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# Labels every scraped series gets from Prometheus.
TARGET_LABELS = {"job", "instance"}

METRIC_RE = re.compile(r"\bballast_[a-z_]+")


def resolve(name):
    """Maps a series name to (contract metric, suffix), or None when it is not in the contract.

    `ballast_request_duration_seconds_bucket` -> ("ballast_request_duration_seconds", "_bucket").
    """
    if name in METRICS:
        return name, ""
    for suffix in HISTOGRAM_SUFFIXES:
        base = name[: -len(suffix)]
        if name.endswith(suffix) and METRICS.get(base, ("",))[0] == "histogram":
            return base, suffix
    return None


def labels_of(name):
    """The labels a series of this (possibly suffixed) name may carry."""
    base, suffix = resolve(name)
    labels = set(METRICS[base][1]) | TARGET_LABELS
    if suffix == "_bucket":
        labels.add("le")
    return labels
