"""Webhook metrics: each attempt this process made, and the outbox as the database has it.

Attempts are counted where they happen (each replica its own: ``sum`` them). The outbox is
read at scrape time, like the tasks (``vidconv.api.metrics``), so the backlog is right however
many replicas deliver (every replica reports the same numbers: ``max``, not ``sum``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from vidconv.db.models import DeliveryStatus, WebhookEvent, aware, utcnow
from vidconv.metrics import PREFIX

log = logging.getLogger("vidconv.webhooks")
# Outcomes of an attempt: delivered, retry (due again later), failed (no more tries).
OUTCOMES = ("delivered", "retry", "failed")
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class OutboxCollector(Collector):
    """``vidconv_webhook_events{status}`` and the age of the oldest pending event."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._events()
        yield self._oldest()

    def _events(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"{PREFIX}_webhook_events", "Webhook events kept in the "
                                 "outbox, by delivery status", labels=["status"])

    def _oldest(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"{PREFIX}_webhook_oldest_pending_seconds", "Age of the "
                                 "oldest event not delivered yet (0: none)")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with self.sessions() as session:
                rows = dict(session.execute(select(WebhookEvent.status, func.count())
                                            .group_by(WebhookEvent.status)).all())
                oldest = session.scalar(select(func.min(WebhookEvent.created_at)).where(
                    WebhookEvent.status == DeliveryStatus.PENDING.value))
        except SQLAlchemyError as exc:  # the task collector reports the outage
            log.warning("metrics: cannot count the webhook events: %s", type(exc).__name__)
            return
        events = self._events()
        for status in DeliveryStatus:
            events.add_metric([status.value], rows.get(status.value, 0))
        yield events
        age = self._oldest()
        age.add_metric([], (utcnow() - aware(oldest)).total_seconds() if oldest else 0.0)
        yield age


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry, sessions: sessionmaker[Session]) -> None:
        registry.register(OutboxCollector(sessions))
        self.attempts = Counter(
            f"{PREFIX}_webhook_attempts", "Webhook delivery attempts this process made, by "
            "outcome (delivered, retry, failed)", ["outcome"], registry=registry)
        self.latency = Histogram(
            f"{PREFIX}_webhook_attempt_duration_seconds", "Seconds from sending a webhook to "
            "its answer (or the timeout)", buckets=LATENCY_BUCKETS, registry=registry)
        for outcome in OUTCOMES:  # every series from the start, zeros included
            self.attempts.labels(outcome)

    def observe(self, status: DeliveryStatus, latency_ms: float | None) -> None:
        outcome = {DeliveryStatus.DELIVERED: "delivered",
                   DeliveryStatus.PENDING: "retry"}.get(status, "failed")
        self.attempts.labels(outcome).inc()
        if latency_ms is not None:
            self.latency.observe(latency_ms / 1000)
