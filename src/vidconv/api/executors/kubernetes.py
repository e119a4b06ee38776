"""The Kubernetes executor: one ConversionTask custom resource per task.

``submit`` creates the CR (its name is derived from the task id, so a second create is a 409 and
a no-op); the operator turns it into a Job and writes the task row. ``cancel`` deletes the CR:
the Job and its pod go with it (owner reference), and the row is marked REVOKED here at once so
the API answers the right state even before the operator has seen the deletion.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from vidconv import resources
from vidconv.api.threads import run_in_thread
from vidconv.db import updates
from vidconv.db.models import Task, TaskState
from vidconv.settings import Settings

log = logging.getLogger("vidconv.executor")

CANCEL_WAIT_SECONDS = 30.0


def task_manifest(task: Task, settings: Settings) -> dict[str, Any]:
    """The ConversionTask for a stored task (its input already uploaded to the bucket)."""
    bucket = settings.s3_bucket
    return {
        "apiVersion": resources.API_VERSION,
        "kind": resources.KIND,
        "metadata": {
            "name": resources.cr_name(task.id),
            "namespace": settings.namespace,
            "labels": {
                "app.kubernetes.io/name": "vidconv",
                "app.kubernetes.io/managed-by": "vidconv-api",
                resources.TASK_LABEL: resources.cr_name(task.id),
            },
        },
        "spec": {
            "taskId": task.id,
            "owner": task.owner_id,
            "input": {"bucket": bucket, "key": task.input_key},
            "output": {"bucket": bucket, "key": task.output_key},
            "format": task.conversion_type,
            "options": dict(task.options or {}),
            "deadline": int(settings.job_active_deadline_seconds),
        },
    }


class KubernetesExecutor:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings, self.sessions = settings, sessions
        self._api: Any = None

    @property
    def api(self) -> Any:
        if self._api is None:  # lazily: the kubernetes client is imported only in this mode
            from kubernetes.client import CustomObjectsApi

            from vidconv.kube import api_client

            self._api = CustomObjectsApi(api_client(self.settings))
        return self._api

    async def start(self) -> None:
        """Create the CRs of unfinished tasks a previous run may not have created (409: fine)."""
        for task_id in await run_in_thread(self._unfinished):
            try:
                await self.submit(task_id)
            except Exception as exc:  # noqa: BLE001 - one bad task must not stop the API
                log.warning("could not resubmit task %s: %s", task_id, exc)

    async def submit(self, task_id: str) -> None:
        await run_in_thread(self._create, task_id)

    async def cancel(self, task_id: str) -> None:
        await run_in_thread(updates.record_revoked, self.sessions, task_id)
        await run_in_thread(self._delete_and_wait, task_id)

    async def stop(self) -> None:
        """Nothing runs here: conversions are Jobs and go on without the API."""
        if self._api is not None:
            await run_in_thread(self._api.api_client.close)
            self._api = None

    # -- blocking helpers (run in a thread) ---------------------------------------------------

    def _unfinished(self) -> list[str]:
        with self.sessions() as session:
            rows = session.scalars(
                select(Task.id).where(
                    Task.status.in_((TaskState.PENDING.value, TaskState.STARTED.value))
                )
            )
            return list(rows)

    def _create(self, task_id: str) -> None:
        from kubernetes.client.exceptions import ApiException

        with self.sessions() as session:
            task = session.get(Task, task_id)
            if task is None:
                raise LookupError(f"task {task_id} does not exist")
            manifest = task_manifest(task, self.settings)
        try:
            self.api.create_namespaced_custom_object(
                resources.GROUP, resources.VERSION, self.settings.namespace,
                resources.PLURAL, manifest,
            )
        except ApiException as exc:
            if exc.status != 409:  # 409: created before (a retried submit, a restart)
                raise

    def _delete_and_wait(self, task_id: str) -> None:
        """Delete the CR in the foreground and wait (bounded) until it is gone.

        Foreground: the API server keeps the CR until its Job (blockOwnerDeletion) is deleted,
        so "the CR is gone" means "the Job is gone" and the API needs no rights on Jobs.
        """
        from kubernetes.client.exceptions import ApiException

        args = (resources.GROUP, resources.VERSION, self.settings.namespace, resources.PLURAL,
                resources.cr_name(task_id))
        try:
            self.api.delete_namespaced_custom_object(*args, propagation_policy="Foreground")
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        deadline = time.monotonic() + CANCEL_WAIT_SECONDS
        while time.monotonic() < deadline:
            try:
                self.api.get_namespaced_custom_object(*args)
            except ApiException as exc:
                if exc.status == 404:
                    return
                raise
            time.sleep(0.2)
        log.warning("task %s: still being deleted after %ss", task_id, CANCEL_WAIT_SECONDS)
