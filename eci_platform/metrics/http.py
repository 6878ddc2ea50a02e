"""Request latency of the web processes, by view name (never by URL: paths carry ids and tokens)."""

from __future__ import annotations

from prometheus_client import Histogram

REQUEST_DURATION = Histogram(
    "eci_http_request_duration_seconds",
    "Time from the first middleware to the response, by view name, method and status code.",
    ["view", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
