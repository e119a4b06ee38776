"""One typed Settings object, read from ``VIDCONV_*`` environment variables.

Every default gives the embedded mode: SQLite and local files under ``./var``,
the local executor. A cluster install sets the same variables from the chart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

GiB = 1024**3


def _default_workers() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


@dataclass(frozen=True)
class Settings:
    # HTTP server
    host: str = "127.0.0.1"
    port: int = 5000
    data_dir: Path = Path("var")
    # Empty means: SQLite file ``vidconv.db`` in data_dir.
    database_url: str = ""

    # Storage: "local" (files under data_dir/objects) or "s3" (MinIO or any S3).
    storage: str = "local"
    s3_endpoint: str = "http://127.0.0.1:9000"
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_region: str = "us-east-1"
    s3_bucket: str = "vidconv"
    # Direct transfers ("on", S3 storage only): downloads redirect to presigned S3 URLs and a
    # client may upload its parts to S3 itself; the API only signs. The URLs name
    # s3_public_endpoint (where clients reach S3; empty: s3_endpoint) and live this long.
    direct_transfers: str = "off"
    s3_public_endpoint: str = ""
    direct_url_seconds: int = 600

    # Executor: "local" (subprocess pool here) or "kubernetes" (ConversionTask CRs).
    executor: str = "local"
    workers: int = field(default_factory=_default_workers)

    # Auth. Empty jwt_secret in embedded mode: generated once and kept in data_dir.
    jwt_secret: str = ""
    jwt_issuer: str = "vidconv"
    jwt_audience: str = "vidconv-api"
    token_lifetime_seconds: int = 24 * 3600
    # How long the signed URLs of a task's files (GET /api/tasks/{id}) stay valid.
    signed_url_seconds: int = 6 * 3600

    # Limits on what a user may hand us.
    max_upload_bytes: int = 2 * GiB
    max_input_bytes: int = 2 * GiB
    max_duration_seconds: float = 4 * 3600
    max_width: int = 7680
    max_height: int = 4320
    transcode_timeout_seconds: float = 6 * 3600
    # JSON task inputs given as http(s) URLs: "public" (refuse loopback/private/link-local
    # addresses: no SSRF into the host network), "any", or "off".
    url_inputs: str = "public"
    # Resumable (tus) uploads: one not made a task within this long after its last chunk is
    # removed, and a user may hold at most this many at once.
    upload_expiry_seconds: int = 24 * 3600
    max_open_uploads: int = 10

    # Webhooks (a task's callback_url). Deliveries go out from every API process.
    # "public": only hosts that resolve to global addresses (checked at every attempt), as URL
    # inputs; "any": no address check (trusted networks, tests).
    webhook_urls: str = "public"
    # An HTTP egress proxy every delivery goes through (e.g. smokescreen); empty: direct.
    webhook_proxy: str = ""
    # Keys the users' signing secrets are encrypted with in the database, comma-separated (the
    # first encrypts, all decrypt: add a new one in front to rotate). Empty: derived from the
    # JWT secret, which every API replica shares already.
    webhook_key: str = ""
    webhook_timeout_seconds: float = 10.0  # one attempt, connect to last byte
    webhook_retry_hours: float = 24.0  # retries stop this long after the event (or a redeliver)
    webhook_backoff_seconds: float = 30.0  # the first retry's delay; doubles up to the cap
    webhook_backoff_max_seconds: float = 3600.0
    webhook_poll_seconds: float = 1.0  # how often each API process looks for due deliveries

    # Transcoder
    ffmpeg: str = ""  # path to ffmpeg; empty: PATH, then imageio-ffmpeg's binary
    scratch_dir: str = ""  # empty: the system temp dir

    # Kubernetes mode
    namespace: str = "default"
    kubeconfig: str = ""  # empty: in-cluster config, else $KUBECONFIG / ~/.kube/config
    transcoder_image: str = "vidconv-transcoder:latest"
    transcoder_image_pull_policy: str = "IfNotPresent"
    kueue_queue: str = ""  # set: Jobs are created suspended for Kueue to admit
    # The Job the operator builds for each task (the chart sets these from values).
    job_service_account: str = "vidconv-transcoder"
    job_s3_secret: str = "vidconv-s3"  # Secret with keys accessKey, secretKey
    job_cpu_request: str = "1"
    job_memory_request: str = "512Mi"
    job_cpu_limit: str = "2"
    job_memory_limit: str = "2Gi"
    job_scratch_size: str = "10Gi"
    job_backoff_limit: int = 2
    job_active_deadline_seconds: int = 6 * 3600
    job_ttl_seconds_after_finished: int = 3600
    # The operator's liveness endpoint (kopf serves it; empty: none).
    operator_liveness: str = "http://0.0.0.0:8080/healthz"
    # How often the operator re-reads the Job of each unfinished task (a safety net under events).
    operator_resync_seconds: float = 60.0
    # Where the operator serves /metrics, host:port (empty: not served; the chart sets it).
    operator_metrics: str = ""
    # Where the API serves /metrics, host:port; empty: on the API's own port (the chart sets
    # it, so that an Ingress to the API never exposes the metrics).
    metrics_address: str = ""

    # An event stream is closed after this long even if its task runs on (the client resumes
    # with Last-Event-ID): its authorisation is checked again, and connections spread over
    # replicas that were added meanwhile.
    event_stream_seconds: float = 600.0

    log_level: str = "info"
    # "text" (one line for people) or "json" (one JSON object a line, for log pipelines).
    log_format: str = "text"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``VIDCONV_<FIELD>`` variables; unknown types fail loudly."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"VIDCONV_{f.name.upper()}")
            if raw is None:
                continue
            values[f.name] = _parse(f.name, f.type, raw)
        return cls(**values)

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'vidconv.db').resolve()}"

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"

    @property
    def s3_secure(self) -> bool:
        return self.s3_endpoint.startswith("https://")

    @property
    def s3_host(self) -> str:
        """host:port of the S3 endpoint, as the minio client wants it."""
        return self.s3_endpoint.split("://", 1)[-1].rstrip("/")


def _parse(name: str, type_name: Any, raw: str) -> Any:
    # With ``from __future__ import annotations`` field types are strings.
    kind = str(type_name)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw)
    except ValueError as exc:
        raise ValueError(f"VIDCONV_{name.upper()}={raw!r} is not a valid {kind}") from exc
    return raw


def get_settings() -> Settings:
    return Settings.from_env()
