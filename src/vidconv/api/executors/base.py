"""The Executor interface: what runs a task's conversion once the API has stored its input.

Two implementations, chosen by ``settings.executor``:

- ``"local"`` -> ``vidconv.api.executors.local.LocalExecutor(settings, sessions, storage,
  registry)``:
  a bounded pool of ``python -m vidconv.transcoder`` subprocesses on this machine.
- ``"kubernetes"`` -> ``vidconv.api.executors.kubernetes.KubernetesExecutor(settings, sessions)``
  (imported lazily, so the embedded mode never imports the kubernetes client). It creates one
  ConversionTask CR per task (``submit``) and deletes it (``cancel``); the operator does the rest
  and writes the row through ``vidconv.db.updates``. ``settings`` is a ``vidconv.settings.Settings``
  (namespace, kubeconfig, s3_bucket, ...), ``sessions`` a SQLAlchemy ``sessionmaker[Session]``
  for reading the task row (keys, format, options, owner).

Contract for every implementation (the API calls these from its event loop):

- ``start()``: once, at app start-up, after migrations. Pick up tasks left over by a previous run
  (PENDING: run them; STARTED: run again or fail them clearly) so none hangs forever.
- ``submit(task_id)``: the row exists (PENDING) and its input object is stored; schedule it.
  Return quickly; raising makes the API fail the task and answer 503.
- ``cancel(task_id)``: stop the conversion if it runs (its ffmpeg must end) and mark the row
  REVOKED if unfinished; return once nothing of it runs. The API then deletes the objects and row.
  Cancelling an unknown or finished task is a no-op.
- ``stop()``: at shutdown. Stop accepting work; running conversions may be left to resume.
"""

from __future__ import annotations

from typing import Protocol

from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from vidconv.settings import Settings
from vidconv.storage import Storage


class Executor(Protocol):
    async def start(self) -> None: ...
    async def submit(self, task_id: str) -> None: ...
    async def cancel(self, task_id: str) -> None: ...
    async def stop(self) -> None: ...


def make_executor(
    settings: Settings, sessions: sessionmaker[Session], storage: Storage,
    registry: CollectorRegistry,
) -> Executor:
    """``registry``: where the local executor adds its conversion and queue metrics (in the
    Kubernetes mode the operator records conversions, in a registry of its own)."""
    if settings.executor == "local":
        from vidconv.api.executors.local import LocalExecutor

        return LocalExecutor(settings, sessions, storage, registry)
    if settings.executor == "kubernetes":
        from vidconv.api.executors.kubernetes import KubernetesExecutor

        executor: Executor = KubernetesExecutor(settings, sessions)
        return executor
    raise ValueError(f"VIDCONV_EXECUTOR must be 'local' or 'kubernetes', not {settings.executor!r}")
