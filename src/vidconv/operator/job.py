"""The Job for one ConversionTask, built by a pure function (no API calls, no clock).

Everything the cluster needs to run one conversion well is in this manifest: a deterministic name
(creating it twice is a no-op), the owner reference (deleting the CR deletes Job and pod), a pod
failure policy that tells a bad input (exit 2: fail now) from a flaky node (retry), and the
restricted Pod Security Standard.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from vidconv import resources
from vidconv.contract import (
    EXIT_BAD_INPUT,
    TASK_ID,
    TASK_NAME,
    TASK_NAMESPACE,
    transcoder_command,
    transcoder_env,
)
from vidconv.settings import Settings

CONTAINER = "transcoder"
SCRATCH = "/scratch"
# The transcoder image's non-root user (transcoder-image/Dockerfile).
RUN_AS_USER = 10001
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


def labels(task_name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "vidconv",
        "app.kubernetes.io/component": "transcoder",
        "app.kubernetes.io/part-of": "vidconv",
        "app.kubernetes.io/managed-by": "vidconv-operator",
        resources.TASK_LABEL: task_name,
    }


def command(spec: Mapping[str, Any]) -> list[str]:
    src, dst = spec["input"], spec["output"]
    return transcoder_command(
        "python", f"s3://{src['bucket']}/{src['key']}", f"s3://{dst['bucket']}/{dst['key']}",
        str(spec["format"]), spec.get("options") or {},
    )


def _env(cr: Mapping[str, Any], namespace: str, settings: Settings) -> list[dict[str, Any]]:
    def secret(key: str) -> dict[str, Any]:
        return {"secretKeyRef": {"name": settings.job_s3_secret, "key": key}}

    # The contract's allow-list from the operator's settings (so the limits are the API's),
    # on S3 with the pod's scratch volume; the S3 keys come from the Secret, never as values.
    plain = transcoder_env(
        replace(settings, storage="s3", scratch_dir=SCRATCH, ffmpeg=""), secrets=False,
        extra={TASK_ID: str(cr["spec"].get("taskId") or ""),
               TASK_NAME: cr["metadata"]["name"], TASK_NAMESPACE: namespace,
               # The root filesystem is read-only: anything that wants a temp dir gets scratch.
               "TMPDIR": SCRATCH, "HOME": SCRATCH},
    )
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in plain.items()]
    env += [
        {"name": "VIDCONV_S3_ACCESS_KEY", "valueFrom": secret("accessKey")},
        {"name": "VIDCONV_S3_SECRET_KEY", "valueFrom": secret("secretKey")},
    ]
    return env


def _container(cr: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    meta = cr["metadata"]
    namespace = meta.get("namespace") or settings.namespace
    return {
        "name": CONTAINER,
        "image": settings.transcoder_image,
        "imagePullPolicy": settings.transcoder_image_pull_policy,
        "command": command(cr["spec"]),
        "env": _env(cr, namespace, settings),
        "resources": {
            "requests": {"cpu": settings.job_cpu_request, "memory": settings.job_memory_request},
            "limits": {"cpu": settings.job_cpu_limit, "memory": settings.job_memory_limit},
        },
        "volumeMounts": [{"name": "scratch", "mountPath": SCRATCH}],
        # The result JSON is the termination message; if the process dies before writing it,
        # the log tail tells the operator why.
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def owner_reference(cr: Mapping[str, Any]) -> dict[str, Any]:
    meta = cr["metadata"]
    return {
        "apiVersion": resources.API_VERSION,
        "kind": resources.KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def build_job(cr: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """The batch/v1 Job manifest that runs the conversion ``cr`` describes."""
    meta = cr["metadata"]
    name = meta["name"]
    namespace = meta.get("namespace") or settings.namespace
    spec = cr["spec"]
    job_labels = labels(name)
    pod_labels = dict(job_labels)
    job_meta: dict[str, Any] = {
        "name": resources.job_name(name),
        "namespace": namespace,
        "labels": job_labels,
        "annotations": {f"{resources.GROUP}/task-id": str(spec["taskId"])},
        "ownerReferences": [owner_reference(cr)],
    }
    job_spec: dict[str, Any] = {
        "backoffLimit": settings.job_backoff_limit,
        "activeDeadlineSeconds": int(spec.get("deadline") or settings.job_active_deadline_seconds),
        "ttlSecondsAfterFinished": settings.job_ttl_seconds_after_finished,
        "podFailurePolicy": {
            "rules": [
                {   # exit 2: the input can't be converted; retrying won't help.
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": CONTAINER,
                        "operator": "In",
                        "values": [EXIT_BAD_INPUT],
                    },
                },
                {   # evicted or preempted: not the task's fault, don't count it.
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                },
            ]
        },
        "template": {
            "metadata": {"labels": pod_labels},
            "spec": {
                "restartPolicy": "Never",
                "serviceAccountName": settings.job_service_account,
                # The transcoder patches its CR's status.progress with this account's token.
                "automountServiceAccountToken": True,
                "enableServiceLinks": False,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": RUN_AS_USER,
                    "runAsGroup": RUN_AS_USER,
                    "fsGroup": RUN_AS_USER,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [_container(cr, settings)],
                "volumes": [
                    {"name": "scratch", "emptyDir": {"sizeLimit": settings.job_scratch_size}}
                ],
            },
        },
    }
    if settings.kueue_queue:
        # Kueue admits the Job by unsuspending it when its queue has room.
        job_meta["labels"][KUEUE_QUEUE_LABEL] = settings.kueue_queue
        job_spec["suspend"] = True
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta, "spec": job_spec}
