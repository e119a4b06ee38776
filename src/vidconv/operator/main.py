"""``vidconv operator``: run kopf with explicit settings (nothing left to defaults
that would put kopf's bookkeeping outside vidconv.io or keep state in memory)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any

import kopf

from vidconv import logs, resources
from vidconv.kube import POOL_SIZE
from vidconv.metrics import serve as serve_metrics
from vidconv.settings import Settings, get_settings

# Watches end server-side after SERVER_TIMEOUT and are re-opened from the last resourceVersion;
# the client gives up a little later if the server stays silent.
WATCH_SERVER_TIMEOUT = 270
WATCH_CLIENT_TIMEOUT = 300
CONNECT_TIMEOUT = 10


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    from vidconv.operator.context import Context

    ours: Settings = memo.get("settings") or get_settings()
    # kopf's own state in annotations under vidconv.io (the CRD declares every status field;
    # kopf must not write status.kopf, and its finalizer is ours).
    settings.persistence.finalizer = resources.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=resources.ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=resources.ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT
    settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT
    settings.watching.connect_timeout = CONNECT_TIMEOUT
    settings.networking.connect_timeout = CONNECT_TIMEOUT
    settings.networking.request_timeout = 60
    settings.posting.reporting_component = "vidconv-operator"
    settings.posting.event_name_prefix = "vidconv-"
    settings.posting.level = logging.WARNING  # log warnings become events on the CR too
    # One replica with strategy Recreate: no peering objects to keep.
    settings.peering.standalone = True
    # One fixed namespace and our own CRD: no cluster-wide listing of namespaces or CRDs,
    # so the operator's RBAC stays namespaced (least privilege).
    settings.scanning.disabled = True
    # The handlers' blocking API and database calls run in the loop's default executor; size it
    # to the connection pool (the default is cpu_count + 4 threads).
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="vidconv-io"))
    memo.ctx = Context(ours)


@kopf.on.login()
def login(memo: kopf.Memo, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """The kubeconfig named in the settings, else kopf's usual (in-cluster, $KUBECONFIG)."""
    ours: Settings = memo.get("settings") or get_settings()
    if not ours.kubeconfig:
        return kopf.login_via_client(**kwargs)
    from vidconv.kube import load_configuration

    cfg = load_configuration(ours)
    # The kubernetes client keeps a kubeconfig token under "BearerToken" (older versions used
    # "authorization"); missing it, kopf would call the API server anonymously.
    keys = cfg.api_key or {}
    auth = str(keys.get("BearerToken") or keys.get("authorization") or "")
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        token=auth.removeprefix("Bearer ") or None,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
        default_namespace=ours.namespace,
    )


def run(settings: Settings | None = None) -> int:
    settings = settings or get_settings()
    logs.configure(settings)
    from vidconv.operator import (
        handlers,  # noqa: F401  (registers the handlers)
        metrics,
    )

    if settings.operator_metrics:
        serve_metrics(settings.operator_metrics, metrics.REGISTRY, "VIDCONV_OPERATOR_METRICS")

    kopf.run(
        standalone=True,
        namespaces=[settings.namespace],
        liveness_endpoint=settings.operator_liveness or None,
        memo=kopf.Memo(settings=settings),
    )
    return 0
