"""Where progress and the result go: stdout JSON lines, the pod's termination log, the CR's status.

Every reporter has ``progress(event)``, ``result(result)`` and ``close()``. Only the stdout reporter
may fail loudly; the others log and carry on, since the conversion matters more than its reporting.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from vidconv.resources import GROUP, PLURAL, VERSION

if TYPE_CHECKING:
    import ssl

log = logging.getLogger("vidconv.transcoder")

TERMINATION_LOG = "/dev/termination-log"
TERMINATION_LIMIT = 4096 - 96  # Kubernetes keeps 4096 bytes; leave headroom
SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class Reporter(Protocol):
    def progress(self, event: Mapping[str, Any]) -> None: ...
    def result(self, result: Mapping[str, Any]) -> None: ...
    def close(self) -> None: ...


class StdoutReporter:
    """One JSON object per line; the result is the last line."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self.broken = False

    def _write(self, obj: Mapping[str, Any]) -> None:
        if self.broken:
            return
        try:
            self.stream.write(json.dumps(obj, separators=(",", ":")) + "\n")
            self.stream.flush()
        except BrokenPipeError:
            # Whoever started us stopped listening (e.g. the API restarted): finish the job
            # anyway; the termination log and the CR status still get the outcome.
            self.broken = True
            log.warning("stdout is closed; progress and result are no longer printed")

    def progress(self, event: Mapping[str, Any]) -> None:
        self._write(event)

    def result(self, result: Mapping[str, Any]) -> None:
        self._write(result)

    def close(self) -> None:
        pass


def compact_result(result: Mapping[str, Any], limit: int = TERMINATION_LIMIT) -> bytes:
    """The result as JSON within ``limit`` bytes: drop the command, then keep only the end of
    the detail (ffmpeg's last words), then shorten the error."""
    data = dict(result)
    encoded = json.dumps(data, separators=(",", ":")).encode()
    if len(encoded) > limit:
        data.pop("command", None)
        encoded = json.dumps(data, separators=(",", ":")).encode()
    while len(encoded) > limit and data.get("detail"):
        # An escaped character takes up to 6 bytes: cut at least that share of the excess.
        data["detail"] = str(data["detail"])[max(16, (len(encoded) - limit) // 6):]
        encoded = json.dumps(data, separators=(",", ":")).encode()
    if len(encoded) > limit and "error" in data:
        data["error"] = str(data["error"])[: max(0, limit - 300)]
        encoded = json.dumps(data, separators=(",", ":")).encode()
    return encoded[:limit]


class TerminationLogReporter:
    """Kubernetes shows this file's content as the container's termination message."""

    def __init__(self, path: str) -> None:
        self.path = path

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> TerminationLogReporter | None:
        path = environ.get("VIDCONV_TERMINATION_LOG", TERMINATION_LOG)
        # Only when it exists (Kubernetes mounts it): never create files under /dev elsewhere.
        if path and os.path.isfile(path) and os.access(path, os.W_OK):
            return cls(path)
        return None

    def progress(self, event: Mapping[str, Any]) -> None:
        pass

    def result(self, result: Mapping[str, Any]) -> None:
        try:
            with open(self.path, "wb") as f:
                f.write(compact_result(result))
        except OSError as exc:
            log.warning("could not write %s: %s", self.path, exc)

    def close(self) -> None:
        pass


# A progress event's fields -> the ConversionTask status fields they go to (the CRD's names).
STATUS_FIELDS = (("progress", "progress"), ("fps", "fps"), ("speed", "speed"),
                 ("input_duration", "inputDuration"))


def status_fields(event: Mapping[str, Any]) -> dict[str, Any]:
    """A progress event as the CR's status fields; an unknown value is null (merge patch: gone)."""
    out: dict[str, Any] = {}
    for src, dst in STATUS_FIELDS:
        value = event.get(src)
        if isinstance(value, int | float) and 0 <= value < float("inf"):  # NaN is not
            out[dst] = round(value, 2)
        else:
            out[dst] = None
    out["progress"] = max(0.0, min(100.0, out["progress"] or 0.0))
    return out


class KubeStatusReporter:
    """Merge-patches ``status.progress``, ``fps``, ``speed`` and ``inputDuration`` of our
    ConversionTask, at most every ``interval`` s (the operator mirrors them into the task row,
    which the API's event stream reads).

    Patches go out from a background thread, so a slow API server never stalls ffmpeg's pipe.
    """

    def __init__(self, url: str, headers: Mapping[str, str], context: ssl.SSLContext | None,
                 interval: float = 2.0, timeout: float = 5.0) -> None:
        self.url, self.headers, self.context = url, dict(headers), context
        self.interval, self.timeout = interval, timeout
        self._pending: dict[str, Any] | None = None
        self._sent: dict[str, Any] | None = None
        self._last = 0.0
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="kube-status", daemon=True)
        self._thread.start()

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> KubeStatusReporter | None:
        name, namespace = environ.get("VIDCONV_TASK_NAME"), environ.get("VIDCONV_TASK_NAMESPACE")
        if not name or not namespace:
            return None
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status"
        headers = {"Content-Type": "application/merge-patch+json", "Accept": "application/json"}
        host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
        try:
            token = (SA_DIR / "token").read_text().strip()
        except OSError:
            token = ""
        if not host or not port or not token:
            log.warning("VIDCONV_TASK_NAME is set but there is no in-cluster service account; "
                        "progress is not reported to the ConversionTask")
            return None
        if ":" in host:
            host = f"[{host}]"  # IPv6
        import ssl  # only in a pod: saves ~15 ms of start-up everywhere else

        context = ssl.create_default_context(cafile=str(SA_DIR / "ca.crt"))
        headers["Authorization"] = f"Bearer {token}"
        return cls(f"https://{host}:{port}{path}", headers, context)

    def progress(self, event: Mapping[str, Any]) -> None:
        with self._cond:
            self._pending = status_fields(event)
            self._cond.notify()

    def result(self, result: Mapping[str, Any]) -> None:
        if result.get("status") == "ok":
            with self._cond:
                last = self._pending or self._sent or {}
            self.progress({**{src: last.get(dst) for src, dst in STATUS_FIELDS},
                           "progress": 100})

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(self.timeout + 1)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._pending is None:
                    return
                wait = self._last + self.interval - time.monotonic()
                if wait > 0:
                    # Throttle, even for the last value: a newer one may replace this one.
                    self._cond.wait(wait)
                    if time.monotonic() < self._last + self.interval:
                        continue
                value, self._pending = self._pending, None
            if value != self._sent:
                self._patch(value)
                self._sent = value
            self._last = time.monotonic()

    def _patch(self, fields: dict[str, Any]) -> None:
        import urllib.request

        body = json.dumps({"status": fields}).encode()
        request = urllib.request.Request(self.url, data=body, method="PATCH", headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as r:
                r.read()
        except Exception as exc:  # noqa: BLE001 - reporting must never fail the conversion
            log.warning("could not patch ConversionTask status %s: %s", fields, exc)


class Reporters:
    """Fan out to every configured reporter."""

    def __init__(self, reporters: list[Reporter]) -> None:
        self.reporters = reporters

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Reporters:
        env = os.environ if environ is None else environ
        found: list[Reporter] = [StdoutReporter()]
        for extra in (TerminationLogReporter.from_env(env), KubeStatusReporter.from_env(env)):
            if extra is not None:
                found.append(extra)
        return cls(found)

    def progress(self, event: Mapping[str, Any]) -> None:
        for r in self.reporters:
            r.progress(event)

    def result(self, result: Mapping[str, Any]) -> None:
        for r in self.reporters:
            r.result(result)

    def close(self) -> None:
        for r in self.reporters:
            r.close()
