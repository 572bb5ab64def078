"""Metrics owned by core (signals, prices, config), exported by whichever app runs them.

Base units and the ``ecopulse_`` prefix. App-specific metrics live in each app. Gauges that
describe the signal cache (age, freshness, intensity, prices) are computed at scrape time by
``core.signals.refresher.SignalMetricsCollector``, so an age never reads stale.
"""

from __future__ import annotations

from prometheus_client import Counter

SIGNAL_FETCH_ERRORS = Counter(
    "ecopulse_signal_fetch_errors_total",
    "Failed carbon-intensity fetches by provider, region and kind of failure.",
    ["provider", "region", "kind"],
)
SIGNAL_FETCHES = Counter(
    "ecopulse_signal_fetches_total",
    "Successful carbon-intensity fetches by provider and region.",
    ["provider", "region"],
)
CONFIG_RELOADS = Counter(
    "ecopulse_config_reloads_total",
    "Configuration file reloads by result (applied, invalid, unusable: valid but cannot work).",
    ["result"],
)
for _result in ("applied", "invalid", "unusable"):
    CONFIG_RELOADS.labels(result=_result)
WATCH_RECONNECTS = Counter(
    "ecopulse_watch_reconnects_total",
    "Times a watch of the API server ended and was re-opened, by resource and reason "
    "(closed, too-short, error, expired, list-error).",
    ["resource", "reason"],
)
WATCH_RELISTS = Counter(
    "ecopulse_watch_relists_total",
    "Full lists of a resource from the API server (the first, and after 410 Gone or a failed list).",
    ["resource"],
)
