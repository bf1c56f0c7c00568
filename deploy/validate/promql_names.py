"""Metric names: the ones agentry and its neighbours export, and the ones a PromQL expression reads.

Used by check_monitoring.py (dashboards, alert rules) to catch a misspelt or invented metric name, which PromQL
itself accepts silently (the query just returns nothing).
"""
from __future__ import annotations

import re
from pathlib import Path

# prom-client's collectDefaultMetrics() (src/telemetry/metrics.ts createRegistry), prom-client 15.
PROM_CLIENT_DEFAULT = {
    "process_cpu_user_seconds_total", "process_cpu_system_seconds_total", "process_cpu_seconds_total",
    "process_start_time_seconds", "process_resident_memory_bytes", "process_virtual_memory_bytes",
    "process_heap_bytes", "process_open_fds", "process_max_fds",
    "nodejs_eventloop_lag_seconds", "nodejs_eventloop_lag_min_seconds", "nodejs_eventloop_lag_max_seconds",
    "nodejs_eventloop_lag_mean_seconds", "nodejs_eventloop_lag_stddev_seconds", "nodejs_eventloop_lag_p50_seconds",
    "nodejs_eventloop_lag_p90_seconds", "nodejs_eventloop_lag_p99_seconds", "nodejs_active_resources",
    "nodejs_active_resources_total", "nodejs_active_handles", "nodejs_active_handles_total",
    "nodejs_active_requests", "nodejs_active_requests_total", "nodejs_heap_size_total_bytes",
    "nodejs_heap_size_used_bytes", "nodejs_external_memory_bytes", "nodejs_heap_space_size_total_bytes",
    "nodejs_heap_space_size_used_bytes", "nodejs_heap_space_size_available_bytes", "nodejs_version_info",
    "nodejs_gc_duration_seconds",
}

# Temporal Core SDK metrics (sdk-core crates/sdk-core/src/telemetry/metrics.rs, common/src/telemetry/metrics.rs),
# as the TypeScript SDK's Prometheus exporter names them with its defaults: prefix temporal_, counters without
# _total, histograms in milliseconds without a unit suffix.
_TEMPORAL_SDK = [
    "worker_task_slots_available", "worker_task_slots_used", "num_pollers", "sticky_cache_size",
    "sticky_cache_hit", "sticky_cache_miss", "sticky_cache_total_forced_eviction", "worker_start",
    "workflow_completed", "workflow_failed", "workflow_canceled", "workflow_continue_as_new",
    "workflow_task_queue_poll_empty", "workflow_task_queue_poll_succeed", "workflow_task_execution_failed",
    "activity_poll_no_task", "activity_task_received", "activity_execution_failed", "activity_execution_cancelled",
    "local_activity_total", "local_activity_execution_failed", "local_activity_execution_cancelled",
    "request", "request_failure", "long_request", "long_request_failure",
]
_TEMPORAL_SDK_HISTOGRAMS = [
    "workflow_endtoend_latency", "workflow_task_schedule_to_start_latency", "workflow_task_replay_latency",
    "workflow_task_execution_latency", "activity_schedule_to_start_latency", "activity_execution_latency",
    "activity_succeed_endtoend_latency", "local_activity_execution_latency", "local_activity_succeed_endtoend_latency",
    "request_latency", "long_request_latency",
]
TEMPORAL_SDK = {f"temporal_{n}" for n in _TEMPORAL_SDK} | {
    f"temporal_{n}{s}" for n in _TEMPORAL_SDK_HISTOGRAMS for s in ("_bucket", "_count", "_sum")
}

# postgres_exporter (the compose stack's postgres-exporter), the ones the rules and dashboards use.
POSTGRES_EXPORTER = {"pg_up", "pg_stat_database_numbackends", "pg_settings_max_connections"}

# Prometheus itself.
PROMETHEUS = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}

# Gauges the alerts need that the code does not export yet (docs/runbook.md, "Metrics the alerts need"); empty
# while the code exports every one (approval_backlog_oldest_seconds and temporal_task_queue_backlog now come from
# src/telemetry/temporal-gauges.ts).
REQUIRED_NEW: set[str] = set()

_PROM_CLIENT_DEF = re.compile(r"new\s+(Counter|Gauge|Histogram|Summary)\s*\(\s*\{\s*name:\s*'([a-zA-Z_:][a-zA-Z0-9_:]*)'", re.S)


def agentry_metrics(repo: Path) -> dict[str, str]:
    """Metric names defined with prom-client anywhere under src/, mapped to their type."""
    found: dict[str, str] = {}
    for path in sorted((repo / "src").rglob("*.ts")):
        text = path.read_text(encoding="utf-8")
        if "prom-client" not in text:
            continue
        for kind, name in _PROM_CLIENT_DEF.findall(text):
            found[name] = kind
    return found


def known_series(repo: Path, recording_rules: set[str]) -> set[str]:
    names: set[str] = set()
    for name, kind in agentry_metrics(repo).items():
        if kind in ("Histogram", "Summary"):
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
            if kind == "Summary":
                names.add(name)
        else:
            names.add(name)
    return names | PROM_CLIENT_DEFAULT | TEMPORAL_SDK | POSTGRES_EXPORTER | PROMETHEUS | REQUIRED_NEW | recording_rules


_KEYWORDS = {
    # aggregations and their modifiers
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile",
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
    # functions
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "day_of_month",
    "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp", "floor", "histogram_quantile",
    "holt_winters", "hour", "idelta", "increase", "irate", "label_join", "label_replace", "ln", "log2", "log10",
    "minute", "month", "predict_linear", "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt",
    "time", "timestamp", "vector", "year", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
    "count_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time", "last_over_time",
    "present_over_time", "inf", "nan",
}


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (a small tokenizer: enough for the expressions in this repository)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    s = re.sub(r"\{[^}]*\}", "{}", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", "[]", s)  # ranges
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", s)
    names = set()
    for m in re.finditer(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)", s):
        token = m.group(1)
        if token in _KEYWORDS or re.fullmatch(r"\d+[smhdwy]", token):
            continue
        names.add(token)
    return names
