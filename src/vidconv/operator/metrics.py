"""The operator's Prometheus metrics, served on ``VIDCONV_OPERATOR_METRICS`` (host:port).

kopf's own HTTP server only answers its liveness probe, so the metrics get a small server of
their own (``vidconv.metrics.serve``). One operator runs per process, so its
metrics live in one module-level registry of ours (not the process-global one).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from prometheus_client import Counter

from vidconv.contract import Phase
from vidconv.metrics import PREFIX, ConversionMetrics, new_registry

P = ParamSpec("P")
T = TypeVar("T")

REGISTRY = new_registry()
CONVERSIONS = ConversionMetrics.register(REGISTRY)
RECONCILE_ERRORS = Counter(
    f"{PREFIX}_operator_reconcile_errors", "Handler runs that ended in an error (kopf retries "
    "or reports them), by handler", ["handler"], registry=REGISTRY)
DB_RETRIES = Counter(
    f"{PREFIX}_operator_db_mirror_retries", "Failed writes of a task's status into the "
    "database, each retried", registry=REGISTRY)
JOBS_CREATED = Counter(
    f"{PREFIX}_operator_jobs_created", "Transcoder Jobs created (re-created ones included)",
    registry=REGISTRY)
ENDED = Counter(
    f"{PREFIX}_operator_conversions_ended", "Conversions that reached an end, by the "
    "ConversionTask's phase (Succeeded, Failed, Cancelled)", ["phase"], registry=REGISTRY)
for _phase in (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED):
    ENDED.labels(_phase.value)  # every phase's series exists (at 0) from the start


def counted(handler: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Count a kopf handler's failures by its name (kopf's handler id stays the same)."""
    RECONCILE_ERRORS.labels(handler.__name__)  # the series exists (at 0) from the start

    @functools.wraps(handler)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await handler(*args, **kwargs)
        except Exception:
            RECONCILE_ERRORS.labels(handler.__name__).inc()
            raise

    return run
