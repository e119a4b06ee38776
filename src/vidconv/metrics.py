"""The conversion metrics both recorders of a task's end share (the local executor in the
embedded mode, the operator in the Kubernetes mode): one definition, so both processes expose
the same names, labels and buckets.

Each process keeps its own ``CollectorRegistry`` (never the global one: an app built twice in
one process, as the tests do, gets fresh metrics), and serves it in the Prometheus text format.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.process_collector import ProcessCollector

PREFIX = "vidconv"
# Seconds from a conversion's start to its end (fetch, probe, ffmpeg, upload; retries included).
DURATION_BUCKETS = (1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600)
# Media seconds converted per wall-clock second: 2 means twice as fast as real time.
SPEED_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8, 12, 16, 32, 64)


def new_registry() -> CollectorRegistry:
    """A registry of our own, with this process's CPU, memory and file descriptors in it."""
    # No "_created" series beside each counter and histogram: half the output, read by nobody.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    ProcessCollector(namespace=PREFIX, registry=registry)
    return registry


def serve(address: str, registry: CollectorRegistry,
          setting: str) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``registry`` at /metrics on ``host:port`` (IPv6 as ``[::]:9090``) from a daemon
    thread: a port of its own, which a Service may expose and an Ingress never routes to."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{setting} must be host:port, not {address!r}")
    return start_http_server(int(port), host.strip("[]") or "0.0.0.0", registry=registry)


@dataclass(frozen=True)
class ConversionMetrics:
    duration: Histogram
    speed: Histogram

    @classmethod
    def register(cls, registry: CollectorRegistry) -> ConversionMetrics:
        return cls(
            Histogram(f"{PREFIX}_conversion_duration_seconds",
                      "Seconds from a conversion's start to its recorded end, by target format "
                      "and end state (SUCCESS or FAILURE)",
                      ["format", "state"], buckets=DURATION_BUCKETS, registry=registry),
            Histogram(f"{PREFIX}_conversion_realtime_ratio",
                      "Media seconds converted per wall-clock second of a successful "
                      "conversion (x real time), by target format",
                      ["format"], buckets=SPEED_BUCKETS, registry=registry),
        )

    def observe(self, fmt: str, state: str, seconds: float | None,
                media_seconds: float | None) -> None:
        """One conversion's end; a success with a known output length also gives its speed."""
        if seconds is None or seconds < 0:
            return
        self.duration.labels(fmt, state).observe(seconds)
        if state == "SUCCESS" and media_seconds and seconds > 0:
            self.speed.labels(fmt).observe(media_seconds / seconds)
