"""The webhook's own metrics (base units, ``ecopulse_`` prefix)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from core.metrics import BoundedLabelValues

# Namespaces come from the reviews: at most this many get their own series (those the watch cache
# knows exist, first come), the rest are counted as "other". 500 namespaces x a few regions keeps
# /metrics in the low thousands of series.
MAX_NAMESPACE_LABEL_VALUES = 500
NAMESPACE_LABEL_VALUES = BoundedLabelValues(cap=MAX_NAMESPACE_LABEL_VALUES)

ADMISSION_REQUESTS = Counter(
    "ecopulse_admission_requests_total",
    "AdmissionReviews answered, by outcome (mutated, skipped, failed_open, malformed).",
    ["outcome"],
)
ADMISSION_DURATION = Histogram(
    "ecopulse_admission_duration_seconds",
    "Time from request received to response ready for /mutate.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
ADMISSION_FAIL_OPEN = Counter(
    "ecopulse_admission_fail_open_total",
    "Pods admitted unchanged because we could not decide, by reason.",
    ["reason"],
)
ADMISSION_SKIPPED = Counter(
    "ecopulse_admission_skipped_total",
    "Pods deliberately left unchanged, by reason (opted-out, user-constrained, ...).",
    ["reason"],
)
PLACEMENT_DECISIONS = Counter(
    "ecopulse_placement_decisions_total",
    "Pods given region affinity, by namespace and preferred region.",
    ["namespace", "region"],
)
# Gauges, not counters: a placement can project a loss (a region dearer than the baseline),
# and an honest running sum must be able to go down.
PROJECTED_NET_BENEFIT = Gauge(
    "ecopulse_projected_net_benefit_usd",
    "Running sum of the net benefit against the baseline projected at admission over each pod's horizon.",
    ["namespace", "region"],
)
PROJECTED_AVOIDED = Gauge(
    "ecopulse_projected_carbon_avoided_grams",
    "Running sum of emissions avoided against the baseline, projected at admission over each pod horizon.",
    ["namespace", "region"],
)
TLS_RELOADS = Counter(
    "ecopulse_tls_reloads_total",
    "Serving certificate reloads by result (applied, invalid).",
    ["result"],
)
EXTENDER_REQUESTS = Counter(
    "ecopulse_extender_requests_total",
    "Scheduler extender calls by verb and outcome (decided, skipped, failed_open, malformed).",
    ["verb", "outcome"],
)
EXTENDER_DURATION = Histogram(
    "ecopulse_extender_duration_seconds",
    "Time to answer a scheduler extender call, by verb.",
    ["verb"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
EXTENDER_FAIL_OPEN = Counter(
    "ecopulse_extender_fail_open_total",
    "Extender calls answered with all nodes and neutral scores because we could not decide.",
    ["verb", "reason"],
)
EXTENDER_NODES_FILTERED = Counter(
    "ecopulse_extender_nodes_filtered_total",
    "Nodes removed by /filter, by reason (not-allowed, too-far, below-floor).",
    ["reason"],
)
for _result in ("applied", "invalid"):
    TLS_RELOADS.labels(result=_result)
# What the HTTPS edge refuses before any decision (bodies, headers, connections): a fixed set of
# reasons, never a value taken from the caller. docs/hardening.md says what each one means.
REFUSAL_REASONS = (
    "body-too-large",
    "body-budget",
    "headers-too-large",
    "header-timeout",
    "body-timeout",
    "connection-limit",
)
REFUSED = Counter(
    "ecopulse_webhook_refused_total",
    "Requests and connections refused at the HTTPS edge, by reason (" + ", ".join(REFUSAL_REASONS) + ").",
    ["reason"],
)
for _reason in REFUSAL_REASONS:
    REFUSED.labels(reason=_reason)
BODY_MEMORY_BYTES = Gauge(
    "ecopulse_webhook_body_memory_bytes",
    "Memory charged for request bodies being read right now, all requests (14 bytes per body byte).",
)
OPEN_CONNECTIONS = Gauge(
    "ecopulse_webhook_open_connections",
    "HTTPS connections open right now (after the TLS handshake), against ECOPULSE_MAX_CONNECTIONS.",
)
