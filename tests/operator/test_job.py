"""The Job manifest: deterministic, owned by its CR, retry-aware and locked down."""

from __future__ import annotations

from typing import Any

from vidconv import resources
from vidconv.operator.job import build_job
from vidconv.settings import Settings


def _cr(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": resources.API_VERSION, "kind": resources.KIND,
        "metadata": {"name": "ct-abc", "namespace": "media", "uid": "uid-1"},
        "spec": {"taskId": "abc", "input": {"bucket": "vc", "key": "inputs/abc/a b.mov"},
                 "output": {"bucket": "vc", "key": "outputs/abc/a b.webm"}, "format": "webm",
                 **spec},
    }


def _container(job: dict[str, Any]) -> dict[str, Any]:
    [container] = job["spec"]["template"]["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def test_the_same_task_gives_the_same_job() -> None:
    settings = Settings()
    assert build_job(_cr(), settings) == build_job(_cr(), settings)
    assert build_job(_cr(), settings)["metadata"]["name"] == "ct-abc-job"


def test_the_job_is_owned_by_its_task_and_labelled() -> None:
    meta = build_job(_cr(), Settings())["metadata"]
    assert meta["namespace"] == "media"
    assert meta["ownerReferences"] == [{
        "apiVersion": "vidconv.io/v1alpha1", "kind": "ConversionTask", "name": "ct-abc",
        "uid": "uid-1", "controller": True, "blockOwnerDeletion": True}]
    assert meta["labels"][resources.TASK_LABEL] == "ct-abc"
    assert meta["labels"]["app.kubernetes.io/name"] == "vidconv"


def test_the_command_is_the_transcoder_contract_with_sorted_options() -> None:
    cr = _cr(options={"quality": 80, "audio": False, "max_height": 720})
    assert _container(build_job(cr, Settings()))["command"] == [
        "python", "-m", "vidconv.transcoder",
        "--input", "s3://vc/inputs/abc/a b.mov", "--output", "s3://vc/outputs/abc/a b.webm",
        "--format", "webm",
        "--option", "audio=false", "--option", "max_height=720", "--option", "quality=80",
    ]


def test_bad_input_fails_the_job_at_once_and_disruptions_do_not_count() -> None:
    spec = build_job(_cr(), Settings(job_backoff_limit=3))["spec"]
    assert spec["backoffLimit"] == 3
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    fail, ignore = spec["podFailurePolicy"]["rules"]
    assert fail == {"action": "FailJob", "onExitCodes": {
        "containerName": "transcoder", "operator": "In", "values": [2]}}
    assert ignore["action"] == "Ignore"
    assert ignore["onPodConditions"][0]["type"] == "DisruptionTarget"


def test_deadline_comes_from_the_task_else_the_settings() -> None:
    settings = Settings(job_active_deadline_seconds=600, job_ttl_seconds_after_finished=60)
    assert build_job(_cr(), settings)["spec"]["activeDeadlineSeconds"] == 600
    assert build_job(_cr(deadline=30), settings)["spec"]["activeDeadlineSeconds"] == 30
    assert build_job(_cr(), settings)["spec"]["ttlSecondsAfterFinished"] == 60


def test_the_pod_meets_the_restricted_pod_security_standard() -> None:
    job = build_job(_cr(), Settings())
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert isinstance(pod["securityContext"]["runAsUser"], int)
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = _container(job)["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}


def test_scratch_resources_and_credentials_come_from_the_settings() -> None:
    settings = Settings(job_scratch_size="3Gi", job_cpu_limit="4", job_s3_secret="creds",
                        s3_endpoint="http://minio:9000", transcoder_image="reg/tx:1")
    job = build_job(_cr(), settings)
    container = _container(job)
    assert job["spec"]["template"]["spec"]["volumes"] == [
        {"name": "scratch", "emptyDir": {"sizeLimit": "3Gi"}}]
    assert container["volumeMounts"] == [{"name": "scratch", "mountPath": "/scratch"}]
    assert container["resources"]["limits"]["cpu"] == "4"
    assert container["image"] == "reg/tx:1"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    env = {e["name"]: e for e in container["env"]}
    assert env["VIDCONV_SCRATCH_DIR"]["value"] == "/scratch"
    assert env["VIDCONV_S3_ENDPOINT"]["value"] == "http://minio:9000"
    assert env["VIDCONV_TASK_NAME"]["value"] == "ct-abc"
    assert env["VIDCONV_TASK_NAMESPACE"]["value"] == "media"
    assert env["VIDCONV_S3_SECRET_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "creds", "key": "secretKey"}}
    assert "value" not in env["VIDCONV_S3_ACCESS_KEY"]  # never the secret in the manifest


def test_with_a_kueue_queue_the_job_waits_suspended_for_admission() -> None:
    plain = build_job(_cr(), Settings())
    assert "suspend" not in plain["spec"]
    assert "kueue.x-k8s.io/queue-name" not in plain["metadata"]["labels"]
    queued = build_job(_cr(), Settings(kueue_queue="video"))
    assert queued["spec"]["suspend"] is True
    assert queued["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "video"


def test_the_job_runs_exactly_the_command_the_local_executor_runs() -> None:
    """One transcoder contract (vidconv.contract): only the interpreter's path differs."""
    from vidconv.api.executors.kubernetes import task_manifest
    from vidconv.api.executors.local import transcoder_command
    from vidconv.db.models import Task
    from vidconv.storage import S3Storage

    settings = Settings(storage="s3", s3_bucket="vc", namespace="media")
    task = Task(id="abc", owner_id="u1", conversion_type="webm",
                options={"max_height": 480, "audio": False, "quality": 80},
                input_key="inputs/abc/a.mov", output_key="outputs/abc/a.webm")
    cr = task_manifest(task, settings)
    cr["metadata"]["uid"] = "uid-1"
    in_pod = _container(build_job(cr, settings))["command"]
    local = transcoder_command(S3Storage(settings), task)
    assert in_pod[1:] == local[1:]
    assert in_pod[-6:] == ["--option", "audio=false", "--option", "max_height=480",
                           "--option", "quality=80"]
