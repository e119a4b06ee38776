"""The release on a real cluster: its pods Ready by their probes, a conversion as a Job of the
transcoder image, and the operator and API pods killed mid-conversion."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import Cluster
from tests.e2e.helpers import FINISHED, get, live_pods, ready, state, submit, user, wait
from vidconv.contract import Result
from vidconv.resources import TASK_LABEL, cr_name, job_name

pytestmark = pytest.mark.e2e
Clip = Callable[..., Path]


def test_the_api_and_operator_pods_run_ready_by_their_probes(cluster: Cluster) -> None:
    for component, replicas in (("api", None), ("operator", 1)):
        [deployment] = get(cluster, "deployments", "-l",
                            f"app.kubernetes.io/component={component}")["items"]
        wanted = replicas or deployment["spec"]["replicas"]
        status = deployment["status"]
        assert status.get("readyReplicas") == status.get("availableReplicas") == wanted, status
        pods = live_pods(cluster, component)
        assert len(pods) == wanted
        for pod in pods:
            assert pod["status"]["phase"] == "Running" and ready(pod)
            [container] = pod["spec"]["containers"]
            assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["readinessProbe"]["httpGet"]["path"] == (
                "/readyz" if component == "api" else "/healthz")
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"

    # The operator holds its liveness probe: alive past the probe's first checks, never
    # restarted, never reported failing it (a readiness failure while kopf starts is fine).
    [pod] = live_pods(cluster, "operator")
    probe = pod["spec"]["containers"][0]["livenessProbe"]
    started = datetime.datetime.fromisoformat(
        pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"])
    settle = probe.get("initialDelaySeconds", 0) + 2 * probe.get("periodSeconds", 10)
    age = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
    if age < settle:
        time.sleep(settle - age)
    [pod] = live_pods(cluster, "operator")
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    events = get(cluster, "events", "--field-selector",
                  f"involvedObject.name={pod['metadata']['name']},reason=Unhealthy")["items"]
    assert [e["message"] for e in events if e["message"].startswith("Liveness")] == []


def test_a_conversion_goes_pending_started_success_as_a_job_of_the_transcoder_image(
    cluster: Cluster, make_clip: Clip
) -> None:
    [operator] = get(cluster, "deployments", "-l",
                      "app.kubernetes.io/component=operator")["items"]
    env = {e["name"]: e.get("value") for e in
           operator["spec"]["template"]["spec"]["containers"][0]["env"]}
    with user(cluster) as http:
        task_id = submit(http, make_clip(seconds=8.0, width=640, height=360), "webm")
        seen: list[str] = []

        def done() -> bool:
            task = state(http, task_id)
            if task and (not seen or seen[-1] != task["state"]):
                seen.append(task["state"])
            return bool(seen) and seen[-1] in FINISHED

        wait(done, f"task {task_id}", every=0.2)
        assert seen == ["PENDING", "STARTED", "SUCCESS"]

    name = cr_name(task_id)
    [job] = get(cluster, "jobs", "-l", f"{TASK_LABEL}={name}")["items"]
    assert job["metadata"]["name"] == job_name(name)
    assert job["status"]["succeeded"] == 1
    [pod] = get(cluster, "pods", "-l", f"job-name={job_name(name)}")["items"]
    [container] = pod["spec"]["containers"]
    assert container["image"] == env["VIDCONV_TRANSCODER_IMAGE"]
    [status] = pod["status"]["containerStatuses"]
    terminated = status["state"]["terminated"]
    assert terminated["exitCode"] == 0
    # The transcoder's result, as the kubelet read it from the termination-log file.
    result = Result.from_json(json.loads(terminated["message"]))
    assert result.ok and (result.video_codec, result.audio_codec) == ("vp9", "opus")


def test_the_operator_and_api_pods_killed_mid_conversion_are_replaced_and_the_task_ends_once(
    cluster: Cluster, make_clip: Clip, tmp_path: Path
) -> None:
    old = {c: {p["metadata"]["name"] for p in live_pods(cluster, c)} for c in ("operator", "api")}
    with user(cluster) as http:
        task_id = submit(http, make_clip(seconds=40.0, width=640, height=360), "webm")
        wait(lambda: (state(http, task_id) or {}).get("state") == "STARTED", "STARTED",
              every=0.2)
        name = cr_name(task_id)
        for component in ("operator", "api"):  # SIGKILL, no grace: as a node crash would
            cluster.kubectl("delete", "pod", "--grace-period=0", "--force", "--wait=false",
                            *old[component])
        job = get(cluster, "job", job_name(name))
        assert not job["status"].get("succeeded"), "the conversion ended before the kills"

        for component in ("operator", "api"):
            def replaced(component: str = component) -> bool:
                pods = live_pods(cluster, component)
                return bool(pods) and all(
                    ready(p) and p["metadata"]["name"] not in old[component] for p in pods)

            wait(replaced, f"new {component} pods", timeout=180)
        task = wait(lambda: (t := state(http, task_id)) and t["state"] in FINISHED and t,
                     f"task {task_id}")
        assert task["state"] == "SUCCESS", task
        assert task["attempts"] == 1
        download = http.get("/api/download", params={"task_id": task_id})
        assert download.status_code == 200
        assert len(download.content) == task["output_size"]

    # One Job, one pod, one attempt: the restarted operator followed the same Job.
    jobs = get(cluster, "jobs", "-l", f"{TASK_LABEL}={name}")["items"]
    assert [j["metadata"]["name"] for j in jobs] == [job_name(name)]
    assert jobs[0]["status"]["succeeded"] == 1 and not jobs[0]["status"].get("failed")
    assert len(get(cluster, "pods", "-l", f"job-name={job_name(name)}")["items"]) == 1
    ct = get(cluster, "ct", name)
    assert (ct["status"]["phase"], ct["status"]["attempts"]) == ("Succeeded", 1)
