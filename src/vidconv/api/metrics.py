"""The API's Prometheus metrics: HTTP requests by route template, uploads, and tasks by state.

Tasks by state and format are read from the database at scrape time (``TaskCollector``), never
counted in memory: the number is then right whichever executor runs the conversions and however
many API replicas serve (each replica reports the same totals: aggregate them with ``max``, not
``sum``). The conversion histograms (``vidconv.metrics``) are observed by whatever records a
conversion's end: the local executor here, the operator in the Kubernetes mode.

HTTP requests are labelled with the route's template (``/api/tasks/{task_id}``), never the raw
path, and every path no route matches shares one label value, ``<unmatched>``: the number of
series stays fixed whatever clients send. Hand-written rather than starlette-exporter, which
keeps its metrics in class-level state on the process-global registry and labels an unmatched
request with its raw path (or drops it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidconv import formats
from vidconv.db.models import Task, TaskState
from vidconv.metrics import PREFIX, new_registry

log = logging.getLogger("vidconv.api")

UNMATCHED = "<unmatched>"
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class TaskCollector(Collector):
    """``vidconv_tasks{state, format}`` from one GROUP BY at scrape time; every state and
    format is reported, zeros included, so a series never vanishes when its count drops to 0."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._tasks()
        yield self._up()

    def _tasks(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"{PREFIX}_tasks", "Tasks in the database, by state and "
                                 "target format", labels=["state", "format"])

    def _up(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"{PREFIX}_database_up", "1 when this scrape could read the "
                                 "tasks from the database, else 0")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = self._up()
        try:
            with self.sessions() as session:
                rows = session.execute(select(Task.status, Task.conversion_type, func.count())
                                       .group_by(Task.status, Task.conversion_type)).all()
        except SQLAlchemyError as exc:  # an outage must not fail the scrape
            log.warning("metrics: cannot count the tasks: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        counts: dict[tuple[str, str], int] = {
            (state.value, fmt): 0 for state in TaskState for fmt in formats.format_names()}
        for state, fmt, count in rows:
            counts[(state, fmt)] = count
        tasks = self._tasks()
        for (state, fmt), count in sorted(counts.items()):
            tasks.add_metric([state, fmt], count)
        yield tasks
        up.add_metric([], 1)
        yield up


class ApiMetrics:
    """The API process's registry and the metrics its request path moves."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.registry: CollectorRegistry = new_registry()
        self.registry.register(TaskCollector(sessions))
        self.requests = Counter(
            f"{PREFIX}_http_requests_total", "HTTP requests answered, by method, route "
            "template and status", ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram(
            f"{PREFIX}_http_request_duration_seconds", "Seconds from a request's arrival to "
            "the end of its answer, by method and route template (an event stream counts "
            "until it closes)", ["method", "route"], buckets=LATENCY_BUCKETS,
            registry=self.registry)
        self.upload_bytes = Counter(
            f"{PREFIX}_upload_bytes", "Bytes of uploaded files received whole",
            registry=self.registry)
        self.uploads = Counter(
            f"{PREFIX}_uploads", "Uploaded files received whole", registry=self.registry)

    def received(self, size: int) -> None:
        self.uploads.inc()
        self.upload_bytes.inc(size)


def route_template(scope: Scope) -> str:
    """The template of the route that served the request; one value for all unmatched paths."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED
    return f"{path}/{{path}}" if isinstance(route, Mount) else path


class HttpMetrics:
    """ASGI middleware: count and time every HTTP request by route template."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            method = scope["method"] if scope["method"] in METHODS else "other"
            route = route_template(scope)
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - start)
