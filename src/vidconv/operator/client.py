"""The few Kubernetes API calls the operator makes itself (kopf does the watching and its own
patches). Blocking calls of the official client; handlers run them in a thread."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubernetes.client import ApiClient, BatchV1Api, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from vidconv import resources


class Cluster:
    def __init__(self, api: ApiClient) -> None:
        self.api = api
        self.batch = BatchV1Api(api)
        self.core = CoreV1Api(api)
        self.custom = CustomObjectsApi(api)

    def create_job(self, manifest: Mapping[str, Any]) -> bool:
        """Create the Job; False when it already exists (the name is deterministic: done)."""
        try:
            self.batch.create_namespaced_job(manifest["metadata"]["namespace"], manifest)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = self.batch.read_namespaced_job(name, namespace, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return _json(found)

    def job_pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]:
        """The Job's pods; ``batch.kubernetes.io/job-name`` is the label since 1.27."""
        for label in ("batch.kubernetes.io/job-name", "job-name"):
            found = self.core.list_namespaced_pod(
                namespace, label_selector=f"{label}={job_name}", _preload_content=False
            )
            items: list[dict[str, Any]] = _json(found).get("items") or []
            if items:
                return items
        return []

    def get_task(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = self.custom.get_namespaced_custom_object(
                resources.GROUP, resources.VERSION, namespace, resources.PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return found  # type: ignore[no-any-return]

    def patch_task_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            resources.GROUP, resources.VERSION, namespace, resources.PLURAL, name,
            {"status": dict(status)},
        )


def _json(response: Any) -> dict[str, Any]:
    return json.loads(response.data)  # type: ignore[no-any-return]
