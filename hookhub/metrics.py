"""Prometheus metrics, in a registry owned by each running app (never the global one)."""

from __future__ import annotations

from collections import Counter as TypeCounter

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "hookhub_http_requests_total",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "hookhub_http_request_duration_seconds",
            "Time to answer HTTP requests, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.messages_created = Counter(
            "hookhub_messages_created_total",
            "Outbox messages committed by this process, by event type.",
            ["type"],
            registry=self.registry,
        )
        self.delivery_attempts = Counter(
            "hookhub_delivery_attempts_total",
            "Delivery attempts made by this process, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.delivery_latency = Histogram(
            "hookhub_delivery_duration_seconds",
            "Duration of outbound HTTP attempts.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.deliveries_in_flight = Gauge(
            "hookhub_deliveries_in_flight",
            "Deliveries being sent by this process now.",
            registry=self.registry,
        )
        self.inbound_requests = Counter(
            "hookhub_inbound_requests_total",
            "Inbound webhook requests received, by source and outcome.",
            ["source", "status"],
            registry=self.registry,
        )

    def count_messages(self, counts: TypeCounter[str]) -> None:
        for event_type, n in counts.items():
            self.messages_created.labels(type=event_type).inc(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)
