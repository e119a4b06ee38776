"""Names of vidconv's Kubernetes resources, shared by the API, the operator and the transcoder."""

from __future__ import annotations

import re

from vidconv.contract import Phase

GROUP = "vidconv.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ConversionTask"
PLURAL = "conversiontasks"
SHORT_NAME = "ct"
TASK_LABEL = f"{GROUP}/task"
# kopf's own bookkeeping lives under our prefix, never kopf.zalando.org.
ANNOTATION_PREFIX = GROUP
FINALIZER = f"{GROUP}/finalizer"

# Phases of status.phase and the API states they map to (the one definition: contract.Phase).
PHASE_TO_STATE = {phase.value: phase.state for phase in Phase}

_DNS_UNSAFE = re.compile(r"[^a-z0-9-]+")


def cr_name(task_id: str) -> str:
    """The ConversionTask's name for a task id (a DNS-1123 label)."""
    return "ct-" + _DNS_UNSAFE.sub("-", task_id.lower()).strip("-")[:59]


def job_name(task_name: str) -> str:
    """Deterministic Job name: creating it twice is a no-op (409 AlreadyExists)."""
    return (task_name + "-job")[:63]
