"""Prometheus metrics, one registry per app so several apps can live in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests_by_state = Gauge(
            "qrlogin_login_requests",
            "Login requests in the database, by state.",
            ["status"],
            registry=self.registry,
        )
        self.open_streams = Gauge(
            "qrlogin_sse_streams_open",
            "Server-Sent Event streams open on this instance.",
            ["kind"],
            registry=self.registry,
        )
        self.approval_latency = Histogram(
            "qrlogin_approval_to_event_seconds",
            "From an approval being stored to the requester's stream sending it.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15),
            registry=self.registry,
        )
        self.rate_limit_refusals = Counter(
            "qrlogin_rate_limit_refusals",
            "Requests refused by a rate limit, by rule.",
            ["rule"],
            registry=self.registry,
        )
        self.database_errors = Counter(
            "qrlogin_database_errors", "Database calls that failed.", registry=self.registry
        )
        self.bus_errors = Counter(
            "qrlogin_bus_errors",
            "Event bus or shared rate-limit store calls that failed.",
            registry=self.registry,
        )
