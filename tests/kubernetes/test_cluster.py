"""What only a real API server shows: CRD validation and pruning, Pod Security admission, kubectl's
own output, and watches that expire under the operator."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.api.helpers import Api
from tests.kubernetes.fixtures import Cluster, Operator
from vidconv import resources
from vidconv.operator.job import build_job
from vidconv.settings import Settings

pytestmark = [pytest.mark.kubernetes]
Clip = Callable[..., Path]


def _task(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": resources.API_VERSION, "kind": resources.KIND,
            "metadata": {"name": name}, "spec": {
                "taskId": name, "owner": "u1", "format": "mp4",
                "input": {"bucket": "media", "key": f"inputs/{name}/a.mov"},
                "output": {"bucket": "media", "key": f"outputs/{name}/a.mp4"}, **spec}}


@pytest.mark.parametrize(("spec", "error"), [
    ({"format": "exe"}, 'spec.format: Unsupported value: "exe"'),
    ({"options": {"max_height": 9000}}, "spec.options.max_height: Invalid value: 9000"),
    ({"options": {"quality": -1}}, "spec.options.quality: Invalid value: -1"),
    ({"deadline": 0}, "spec.deadline: Invalid value: 0"),
])
def test_the_crd_schema_rejects_a_bad_task_with_the_servers_422(
    cluster: Cluster, spec: dict[str, Any], error: str
) -> None:
    done = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(_task("ct-bad", **spec)))
    assert done.returncode == 1
    assert "is invalid" in done.stderr and error in done.stderr, done.stderr
    assert cluster.get(f"{cluster.paths['ct']}/ct-bad") is None


def test_status_fields_the_crd_does_not_declare_are_pruned(cluster: Cluster) -> None:
    done = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(_task("ct-prune")))
    assert done.returncode == 0, done.stderr
    # What the operator writes survives (the success test reads it back); anything else is
    # dropped by the server, so a field missing from the CRD would vanish the same way.
    r = cluster.http.patch(
        f"{cluster.paths['ct']}/ct-prune/status",
        headers={"Content-Type": "application/merge-patch+json"},
        content=json.dumps({"status": {"phase": "Running", "progress": 5, "jobName": "j",
                                       "kopf": {"progress": {}}, "undeclared": 1}}))
    assert r.status_code == 200, r.text
    status = cluster.get(f"{cluster.paths['ct']}/ct-prune")["status"]  # type: ignore[index]
    assert status == {"phase": "Running", "progress": 5, "jobName": "j"}


def test_a_pod_that_breaks_the_restricted_standard_is_refused(cluster: Cluster) -> None:
    # The Job the operator builds is admitted (every other test runs one); the same Job without
    # its security context is not: proof that the namespace really enforces the standard.
    cr = {**_task("ct-psa"), "metadata": {"name": "ct-psa", "namespace": cluster.namespace,
                                          "uid": "00000000-0000-0000-0000-000000000000"}}
    job = build_job(cr, Settings(namespace=cluster.namespace,
                                 job_service_account=cluster.rbac.job_service_account))
    del job["metadata"]["ownerReferences"]
    pod = job["spec"]["template"]["spec"]
    del pod["securityContext"]
    del pod["containers"][0]["securityContext"]
    r = cluster.http.post(cluster.paths["jobs"], json=job)
    assert r.status_code == 201, r.text
    events = cluster.wait("FailedCreate", lambda: [
        e for e in cluster.items(cluster.paths["events"])
        if e["reason"] == "FailedCreate" and e["involvedObject"]["kind"] == "Job"])
    assert 'violates PodSecurity "restricted:latest"' in events[0]["message"]
    assert "runAsNonRoot != true" in events[0]["message"]
    assert cluster.pods() == []


def test_kubectl_describe_shows_the_tasks_status_and_events(
    cluster: Cluster, operator: Operator, api: Api, make_clip: Clip
) -> None:
    operator.start()
    task_id = api.submit(make_clip(1.0), "mp3")
    assert api.wait(task_id)["state"] == "SUCCESS"
    name = resources.cr_name(task_id)
    out = cluster.kubectl("describe", "ct", name)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    fields = {k.strip(): v.strip() for k, _, v in (
        line.partition(":") for line in text.splitlines() if ":" in line)}
    assert fields["Name"] == name and fields["Kind"] == "ConversionTask"
    assert fields["Phase"] == "Succeeded" and fields["Progress"] == "100"
    assert fields["Job Name"] == resources.job_name(name)
    events = text[text.index("Events:"):]
    for reason in ("JobCreated", "Started", "Succeeded"):
        assert reason in events, events
    # The short name and the category reach the same objects.
    for what in ("ct", "vidconv", "conversiontasks.vidconv.io"):
        listed = cluster.kubectl("get", what, "-o", "name")
        assert listed.stdout.split() == [f"conversiontask.vidconv.io/{name}"], listed


def test_the_operator_relists_when_its_watch_expires_and_does_each_task_once(
    cluster: Cluster, operator: Operator, api: Api, make_clip: Clip,
    expect_denied: list[tuple[str, str, str]]
) -> None:
    operator.env["VIDCONV_LOG_LEVEL"] = "debug"  # kopf says at debug level when it relists
    operator.start()
    first = api.submit(make_clip(1.0), "mp3")
    assert api.wait(first)["state"] == "SUCCESS"
    lists_before = _lists(cluster)
    # A restarted API server has an empty watch cache: the operator's watches, resumed from the
    # resourceVersions it had, are answered 410 Gone and it must list again.
    cluster.cp.restart_apiserver()
    # Until its RBAC caches are filled a starting API server refuses what it will allow a moment
    # later (as any cluster's does); the operator retries. Those refusals are expected here.
    expect_denied += [d for d in cluster.denied() if d[0] == cluster.users["operator"]]
    second = api.submit(make_clip(1.0), "mp3")
    assert api.wait(second, timeout=120)["state"] == "SUCCESS"
    assert _lists(cluster) > lists_before
    # kopf's own words for "the watch answered 410 Gone: list again".
    log = operator.log.read_text()
    assert "Restarting the watch-stream for conversiontasks" in log
    jobs = sorted(j["metadata"]["name"] for j in cluster.jobs())
    assert jobs == sorted(resources.job_name(resources.cr_name(t)) for t in (first, second))
    assert len(cluster.pods()) == 2
    for task_id in (first, second):
        reasons = [e["reason"] for e in cluster.events(task_id)]
        assert reasons.count("JobCreated") == 1, reasons


def _lists(cluster: Cluster) -> int:
    """How often the operator listed ConversionTasks (each relist after a 410 is one)."""
    user = cluster.users["operator"]
    return sum(1 for e in cluster.audit() if e["user"]["username"] == user
               and e["verb"] == "list" and (e.get("objectRef") or {}).get("resource")
               == resources.PLURAL and e.get("stage") == "ResponseComplete")
