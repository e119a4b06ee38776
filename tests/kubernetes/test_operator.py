"""The Kubernetes-native path end to end, on a real control plane: REST API -> ConversionTask ->
kopf operator -> Job (the real Job controller) -> pod (the kubelet runs the transcoder image) -> S3
-> CR status -> database -> REST.

To see a task STARTED before it ends, a test cordons the node: the Job is active (its pod waits
unscheduled), as on a busy cluster, until it uncordons.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.api.helpers import Api
from tests.kubernetes.fixtures import Cluster, Operator
from tests.servers import PostgresServer
from vidconv import resources
from vidconv.settings import Settings

pytestmark = [pytest.mark.kubernetes, pytest.mark.postgres, pytest.mark.s3]
Clip = Callable[..., Path]
LONG = 40.0  # seconds of video whose conversion at the slow preset outlasts what a test waits
DEADLINE = 10  # seconds: the pod starts (a few seconds), then runs past it


def _phase(cluster: Cluster, task_id: str) -> str:
    return str(((cluster.task(task_id) or {}).get("status") or {}).get("phase") or "")


def test_a_rest_task_runs_as_one_job_and_its_result_downloads(
    cluster: Cluster, operator: Operator, api: Api, make_clip: Clip
) -> None:
    cluster.cordon()
    task_id = api.submit(make_clip(1.0), "webm")
    # No operator yet: the CR exists and the task waits.
    assert api.task(task_id)["state"] == "PENDING"
    cr = cluster.task(task_id)
    assert cr is not None and cr["spec"]["format"] == "webm"
    assert cr["spec"]["input"]["key"].startswith(f"inputs/{task_id}/")

    operator.start()
    # The Job is active (its pod waits for the node): the task is STARTED.
    cluster.wait("STARTED", lambda: api.task(task_id)["state"] == "STARTED")
    assert _phase(cluster, task_id) == "Running"
    cluster.uncordon()
    task = api.wait(task_id)
    assert task["state"] == "SUCCESS", task
    assert task["output_duration"] == pytest.approx(1.0, abs=0.2)
    assert task["input_duration"] == pytest.approx(1.0, abs=0.1)

    r = api.client.get(f"/api/download?task_id={task_id}", headers=api.auth)
    assert r.status_code == 200
    assert r.content[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a WebM file

    done = cluster.task(task_id)
    assert done is not None
    status = done["status"]
    assert status["phase"] == "Succeeded" and status["progress"] == 100
    # kopf's bookkeeping is ours: vidconv.io finalizer and annotations, nothing in status.
    assert done["metadata"]["finalizers"] == [resources.FINALIZER]
    annotations = done["metadata"]["annotations"]
    assert "vidconv.io/last-handled-configuration" in annotations
    assert all(k.startswith("vidconv.io/") for k in annotations), annotations
    assert "kopf" not in status
    assert status["attempts"] == 1 and status["jobName"] == resources.job_name(
        resources.cr_name(task_id))
    assert status["output"]["key"].startswith(f"outputs/{task_id}/")
    assert status["output"]["key"].endswith(".webm")
    assert status["output"]["size"] == len(r.content)
    assert status["output"]["duration"] == pytest.approx(1.0, abs=0.2)
    assert status["output"]["inputDuration"] == pytest.approx(1.0, abs=0.1)
    assert status["startedAt"] and status["completedAt"]
    # The transcoder itself patched status.progress while the task was Running.
    assert any(
        (v.get("status") or {}).get("phase") == "Running" and "progress" in v["status"]
        and v["status"]["progress"] > 0
        for v in cluster.history(task_id)
    )

    [job] = cluster.jobs()
    [owner] = job["metadata"]["ownerReferences"]
    assert owner["kind"] == "ConversionTask" and owner["uid"] == cr["metadata"]["uid"]
    assert owner["controller"] is True and owner["blockOwnerDeletion"] is True
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    container = pod_spec["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["readOnlyRootFilesystem"] is True
    assert container["capabilities"]["drop"] == ["ALL"]
    assert len(cluster.pods()) == 1
    reasons = [e["reason"] for e in cluster.events(task_id)]
    assert {"JobCreated", "Started", "Succeeded"} <= set(reasons)


def test_a_bad_input_fails_at_once_with_a_clear_error(
    cluster: Cluster, operator: Operator, api: Api
) -> None:
    operator.start()
    r = api.client.post("/api/tasks", headers=api.auth,
                        files={"file": ("notes.mp4", b"these are not frames\n" * 50)},
                        data={"conversion_type": "mp4"})
    task_id = r.json()["task_id"]
    task = api.wait(task_id)
    assert task["state"] == "FAILURE"
    assert "not a video" in task["error"]
    assert task["error_code"] == "unsupported_container"  # as in the embedded mode
    assert len(cluster.pods()) == 1  # exit code 2 matched podFailurePolicy: no retry
    status = cluster.task(task_id)["status"]  # type: ignore[index]
    assert status["phase"] == "Failed" and status["reason"] == "BadInput"
    assert "not a video" in status["message"]
    assert "Failed" in [e["reason"] for e in cluster.events(task_id)]


def test_a_retryable_failure_is_retried_up_to_the_backoff_limit(
    cluster: Cluster, operator: Operator, api: Api, make_clip: Clip
) -> None:
    # The Jobs get an S3 endpoint where nothing listens: every attempt fails with exit code 1.
    from tests.servers import free_port

    operator.env["VIDCONV_S3_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    operator.start()
    task_id = api.submit(make_clip(1.0), "mp3")
    task = api.wait(task_id, timeout=120)
    assert task["state"] == "FAILURE"
    assert len(cluster.pods()) == 3  # backoffLimit 2: the first attempt and two retries
    status = cluster.task(task_id)["status"]  # type: ignore[index]
    assert status["reason"] == "RetriesExhausted" and status["attempts"] == 3
    assert "gave up after 3 attempts" in task["error"]
    assert "download" in task["error"]
    assert task["error_code"] == "storage_unavailable"


def test_an_operator_killed_during_a_job_loses_nothing_when_restarted(
    cluster: Cluster, operator: Operator, api: Api, make_clip: Clip
) -> None:
    cluster.cordon()
    operator.start()
    task_id = api.submit(make_clip(1.0), "mp3")
    cluster.wait("STARTED", lambda: api.task(task_id)["state"] == "STARTED")
    operator.kill()
    # The Job ends while no operator runs.
    cluster.uncordon()
    cluster.wait("the Job to complete", lambda: any(
        c["type"] == "Complete" for j in cluster.jobs()
        for c in (j.get("status") or {}).get("conditions") or []))
    assert api.task(task_id)["state"] == "STARTED"

    operator.start()
    task = api.wait(task_id)
    assert task["state"] == "SUCCESS"
    assert len(cluster.jobs()) == 1 and len(cluster.pods()) == 1
    assert _phase(cluster, task_id) == "Succeeded"


def test_deleting_a_running_task_removes_cr_job_pod_and_objects(
    cluster: Cluster, operator: Operator, api: Api, make_clip: Clip, s3_env: dict[str, str]
) -> None:
    operator.start()
    task_id = api.submit(make_clip(LONG, 640, 360), "webm", preset="quality")
    cluster.wait("STARTED", lambda: api.task(task_id)["state"] == "STARTED")
    # The transcoder's container runs (a conversion of tens of seconds).
    [pid] = cluster.wait("the container", cluster.running_pids)
    assert _objects(s3_env, task_id)  # the uploaded input

    r = api.client.delete(f"/api/tasks/{task_id}", headers=api.auth)
    assert r.status_code == 204
    assert cluster.task(task_id) is None
    cluster.wait("Job and pod to go", lambda: not cluster.jobs() and not cluster.pods())
    cluster.wait("the container to end", lambda: not _alive(pid))
    r = api.client.get(f"/api/tasks/{task_id}", headers=api.auth)
    assert r.status_code == 404
    assert _objects(s3_env, task_id) == []


def test_kubectl_shows_format_phase_progress_and_watch_streams_changes(
    cluster: Cluster, operator: Operator, api: Api, make_clip: Clip
) -> None:
    cluster.cordon()
    operator.start()
    task_id = api.submit(make_clip(1.0), "mp3")
    name = resources.cr_name(task_id)
    cluster.wait("Running", lambda: _phase(cluster, task_id) == "Running")

    out = cluster.kubectl("get", "conversiontasks")
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()
    assert header.split() == ["NAME", "FORMAT", "PHASE", "PROGRESS", "AGE"]
    assert row.split()[:4] == [name, "mp3", "Running", "0"]

    watch = cluster.kubectl_popen("get", "ct", "-w", "--output-watch-events")
    try:
        cluster.uncordon()
        assert api.wait(task_id)["state"] == "SUCCESS"
        lines = cluster.read_until(watch, "Succeeded")
    finally:
        watch.kill()
        watch.wait()
    assert any(line.split()[:5] == ["MODIFIED", name, "mp3", "Succeeded", "100"]
               for line in lines), lines

    wide = cluster.kubectl("get", "ct", name, "-o", "wide")
    # The server keeps the CRD's column order; -o wide adds the priority-1 JOB column last.
    assert wide.stdout.splitlines()[0].split() == ["NAME", "FORMAT", "PHASE", "PROGRESS", "AGE",
                                                    "JOB"]
    assert resources.job_name(name) in wide.stdout


def _objects(s3_env: dict[str, str], task_id: str) -> list[str]:
    from minio import Minio

    client = Minio(s3_env["VIDCONV_S3_ENDPOINT"].split("://")[1],
                   access_key=s3_env["VIDCONV_S3_ACCESS_KEY"],
                   secret_key=s3_env["VIDCONV_S3_SECRET_KEY"], secure=False,
                   region=s3_env["VIDCONV_S3_REGION"])
    bucket = s3_env["VIDCONV_S3_BUCKET"]
    return [str(o.object_name) for prefix in ("inputs", "outputs")
            for o in client.list_objects(bucket, f"{prefix}/{task_id}/", recursive=True)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: its parent (containerd's shim) has not reaped it yet.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_database_outage_delays_the_task_row_and_warns_on_the_task(
    cluster: Cluster, operator: Operator, api: Api, make_clip: Clip, postgres: PostgresServer
) -> None:
    cluster.cordon()
    operator.start()
    task_id = api.submit(make_clip(1.0), "mp3")
    cluster.wait("STARTED", lambda: api.task(task_id)["state"] == "STARTED")
    postgres.stop()
    try:
        cluster.uncordon()
        # The cluster side goes on: the CR ends, and the operator says it can't write the row.
        cluster.wait("Succeeded", lambda: _phase(cluster, task_id) == "Succeeded")
        cluster.wait("a warning", lambda: "DatabaseUnavailable" in _reasons(cluster, task_id))
    finally:
        postgres.start()
    assert api.wait(task_id)["state"] == "SUCCESS"
    cluster.wait("recovery", lambda: "DatabaseRecovered" in _reasons(cluster, task_id))
    [warning] = [e for e in cluster.events(task_id) if e["reason"] == "DatabaseUnavailable"]
    assert warning["type"] == "Warning"
    # Each failed write was retried, and Prometheus sees it.
    assert operator.metrics().value("vidconv_operator_db_mirror_retries_total") >= 1


def _reasons(cluster: Cluster, task_id: str) -> list[str]:
    return [e["reason"] for e in cluster.events(task_id)]


def test_an_api_restart_recreates_a_missing_task_resource(
    cluster: Cluster, api: Api, api_settings: Settings, make_clip: Clip
) -> None:
    from starlette.testclient import TestClient

    from vidconv.api.app import create_app

    task_id = api.submit(make_clip(1.0), "mp3")
    name = resources.cr_name(task_id)
    # Lost, as if never made.
    assert cluster.http.delete(f"{cluster.paths['ct']}/{name}").status_code == 200
    assert cluster.task(task_id) is None
    with TestClient(create_app(api_settings)):  # start-up resubmits unfinished tasks
        cr = cluster.task(task_id)
    assert cr is not None and cr["spec"]["taskId"] == task_id


def test_a_job_lost_while_its_task_runs_is_created_again(
    cluster: Cluster, operator: Operator, api: Api, make_clip: Clip
) -> None:
    operator.env["VIDCONV_OPERATOR_RESYNC_SECONDS"] = "1"
    cluster.cordon()
    operator.start()
    task_id = api.submit(make_clip(1.0), "mp3")
    cluster.wait("STARTED", lambda: api.task(task_id)["state"] == "STARTED")
    [job] = cluster.jobs()
    # Deleted by hand (kubectl's default, background cascade), or by its TTL while no operator
    # watched.
    r = cluster.http.delete(f"{cluster.paths['jobs']}/{job['metadata']['name']}",
                            params={"propagationPolicy": "Background"})
    assert r.status_code == 200
    [again] = cluster.wait("a new Job", lambda: [
        j for j in cluster.jobs() if j["metadata"]["uid"] != job["metadata"]["uid"]])
    cluster.uncordon()
    assert api.wait(task_id)["state"] == "SUCCESS"
    assert [j["metadata"]["uid"] for j in cluster.jobs()] == [again["metadata"]["uid"]]
    assert "JobRecreated" in _reasons(cluster, task_id)


def test_a_conversion_past_its_deadline_fails_with_that_reason(
    cluster: Cluster, operator: Operator, api_settings: Settings, make_clip: Clip
) -> None:
    from dataclasses import replace

    from starlette.testclient import TestClient

    from vidconv.api.app import create_app

    operator.start()
    settings = replace(api_settings, job_active_deadline_seconds=DEADLINE)
    with TestClient(create_app(settings)) as client:
        api = Api(client)
        api.signup()
        # A conversion of tens of seconds, given ten.
        task_id = api.submit(make_clip(LONG, 640, 360), "webm", preset="quality")
        [pid] = cluster.wait("the container", cluster.running_pids)
        task = api.wait(task_id)
    assert task["state"] == "FAILURE"
    assert f"did not finish within {DEADLINE} seconds" in task["error"]
    assert task["error_code"] == "timeout"
    status = cluster.task(task_id)["status"]  # type: ignore[index]
    assert status["reason"] == "DeadlineExceeded" and status["attempts"] == 1
    # The Job controller deleted the pod that ran past the deadline; its process is gone.
    cluster.wait("the pod to go", lambda: not cluster.pods())
    cluster.wait("the container to end", lambda: not _alive(pid))


def test_an_hls_task_runs_as_a_job_and_its_package_reads_through_the_api(
    cluster: Cluster, operator: Operator, api: Api, make_clip: Clip
) -> None:
    import io
    import zipfile

    import m3u8

    operator.start()
    task_id = api.submit(make_clip(3.0), "hls", thumbnail="jpg")
    task = api.wait(task_id, timeout=120)
    assert task["state"] == "SUCCESS", task
    # The termination message names the master; the files come from listing the task's prefix.
    output = cluster.task(task_id)["status"]["output"]  # type: ignore[index]
    assert output["key"] == f"outputs/{task_id}/master.m3u8"
    names = {f["name"]: f for f in task["files"]}
    assert set(names) == {"master.m3u8", "240p.m3u8", "240p.mp4", "audio.m3u8", "audio.mp4",
                          "thumbnail.jpg"}
    assert output["size"] == task["output_size"] == sum(f["size"] for f in names.values())

    # Plain GETs by the signed links, as a player makes them: no token.
    r = api.client.get(task["url"])
    assert r.status_code == 200
    master = m3u8.loads(r.text, uri="http://testserver" + task["url"])
    [variant] = master.playlists
    assert variant.stream_info.resolution == (320, 240)
    media = m3u8.loads(api.client.get(variant.absolute_uri).text, uri=variant.absolute_uri)
    assert sum(s.duration for s in media.segments) == pytest.approx(3.0, abs=0.2)
    rendition = api.client.get(media.segments[0].absolute_uri)
    assert rendition.status_code == 200 and len(rendition.content) == names["240p.mp4"]["size"]

    r = api.client.get(f"/api/download?task_id={task_id}", headers=api.auth)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
        assert sorted(archive.namelist()) == sorted(names)
        assert archive.read("240p.mp4") == rendition.content
