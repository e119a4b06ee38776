"""Kubernetes Events on a ConversionTask: the milestones a user sees in ``kubectl describe ct``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from vidconv import resources

JOB_CREATED = "JobCreated"
JOB_RECREATED = "JobRecreated"
STARTED = "Started"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
DELETED = "Cancelled"
DB_UNAVAILABLE = "DatabaseUnavailable"
DB_RECOVERED = "DatabaseRecovered"


def ref(namespace: str, name: str, uid: str) -> dict[str, Any]:
    """A body that is enough for kopf to name the CR as the event's involved object."""
    return {
        "apiVersion": resources.API_VERSION,
        "kind": resources.KIND,
        "metadata": {"namespace": namespace, "name": name, "uid": uid},
    }


def normal(body: Mapping[str, Any], reason: str, message: str) -> None:
    kopf.event(body, type="Normal", reason=reason, message=message[:1000])  # type: ignore[arg-type]


def warning(body: Mapping[str, Any], reason: str, message: str) -> None:
    kopf.event(body, type="Warning", reason=reason, message=message[:1000])  # type: ignore[arg-type]
