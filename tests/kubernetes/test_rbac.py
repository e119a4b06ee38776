"""vidconv's Kubernetes calls stay within the chart's least-privilege Roles, on the real authorizer.

The operator, the API's executor and every transcoder pod call with their own ServiceAccount's
token; the Roles and RoleBindings are the chart's, applied to the API server. Every kubernetes test
fails on a refused call (the ``cluster`` fixture reads the audit log); here: what a task's life
really uses, and that a call outside a Role gets the server's 403.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import Api
from tests.kubernetes.fixtures import Cluster, Operator
from vidconv import resources

pytestmark = [pytest.mark.kubernetes, pytest.mark.postgres, pytest.mark.s3, pytest.mark.chart]
Clip = Callable[..., Path]
CT = f"{resources.PLURAL}"


def _calls(cluster: Cluster) -> dict[str, set[tuple[str, str]]]:
    """component -> {(verb, resource)} it was allowed, from the API server's audit log."""
    users = {u: c for c, u in cluster.users.items()}
    calls: dict[str, set[tuple[str, str]]] = {c: set() for c in cluster.users}
    for event in cluster.audit():
        code = event.get("responseStatus", {}).get("code", 0)
        ref = event.get("objectRef") or {}
        if event["user"]["username"] in users and code < 400 and ref:
            resource = ref.get("resource", "") + (f"/{ref['subresource']}"
                                                  if ref.get("subresource") else "")
            calls[users[event["user"]["username"]]].add((event["verb"], resource))
    return calls


def test_a_task_life_stays_within_each_components_role(
    cluster: Cluster, operator: Operator, api: Api, make_clip: Clip
) -> None:
    operator.start()
    task_id = api.submit(make_clip(1.0), "mp3")
    assert api.wait(task_id)["state"] == "SUCCESS"
    r = api.client.get(f"/api/download?task_id={task_id}", headers=api.auth)
    assert r.status_code == 200
    r = api.client.delete(f"/api/tasks/{task_id}", headers=api.auth)
    assert r.status_code == 204
    cluster.wait("the task resource to go", lambda: cluster.task(task_id) is None)

    # No call was refused (the fixture fails the test otherwise), and each identity really was
    # seen doing its job, so that is not vacuous.
    calls = _calls(cluster)
    assert {("create", CT), ("delete", CT)} <= calls["api"]
    assert {("watch", CT), ("patch", f"{CT}/status"), ("create", "jobs")} <= calls["operator"]
    # The transcoder's pod, with its projected token: its own task's progress, nothing else.
    assert calls["transcoder"] == {("patch", f"{CT}/status")}


def _task(cluster: Cluster, name: str) -> dict[str, Any]:
    r = cluster.http.post(cluster.paths["ct"], json={
        "apiVersion": resources.API_VERSION, "kind": resources.KIND,
        "metadata": {"name": name}, "spec": {
            "taskId": "rbac", "owner": "u1", "format": "mp4",
            "input": {"bucket": "media", "key": "inputs/rbac/a.mov"},
            "output": {"bucket": "media", "key": "outputs/rbac/a.mp4"}}})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_a_call_outside_the_role_is_forbidden_by_the_api_server(
    cluster: Cluster, expect_denied: list[tuple[str, str, str]]
) -> None:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    name = "ct-rbac"
    _task(cluster, name)
    users = cluster.users
    # What this test provokes; any other refusal fails it (the cluster fixture).
    expect_denied += [(users["transcoder"], "patch", CT), (users["operator"], "update", CT),
                      (users["api"], "list", "jobs")]
    ca = str(cluster.cp.pki.ca_file)

    # The transcoder's token, as its pod uses it: status yes, the task itself no.
    token = _token(cluster.kubeconfig_for("transcoder"))
    with httpx.Client(base_url=cluster.cp.url, verify=_tls(ca), timeout=10, headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/merge-patch+json"}) as pod:
        r = pod.patch(f"{cluster.paths['ct']}/{name}", json={"spec": {"format": "webm"}})
        assert r.status_code == 403
        body = r.json()
        assert body["reason"] == "Forbidden"
        assert body["message"] == (
            f'conversiontasks.vidconv.io "{name}" is forbidden: User "{users["transcoder"]}" '
            f'cannot patch resource "conversiontasks" in API group "vidconv.io" in the '
            f'namespace "{cluster.namespace}"')
        r = pod.patch(f"{cluster.paths['ct']}/{name}/status", json={"status": {"progress": 40}})
        assert r.status_code == 200, r.text
    task = cluster.get(f"{cluster.paths['ct']}/{name}")
    assert task is not None
    assert task["spec"]["format"] == "mp4" and task["status"]["progress"] == 40

    # The operator through the official client: update (PUT) is not patch; the API's executor
    # may not read Jobs. Both get the ApiException a cluster raises.
    def api_client(component: str) -> client.ApiClient:
        return config.new_client_from_config(str(cluster.kubeconfig_for(component)))

    with api_client("operator") as c, pytest.raises(ApiException) as put:
        client.CustomObjectsApi(c).replace_namespaced_custom_object(
            resources.GROUP, resources.VERSION, cluster.namespace, resources.PLURAL, name, task)
    with api_client("api") as c, pytest.raises(ApiException) as read:
        client.BatchV1Api(c).list_namespaced_job(cluster.namespace)
    assert (put.value.status, put.value.reason) == (403, "Forbidden")
    assert (read.value.status, read.value.reason) == (403, "Forbidden")
    assert 'cannot update resource "conversiontasks"' in json.loads(put.value.body)["message"]


def _token(kubeconfig: Path) -> str:
    import yaml

    return str(yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"])


def _tls(ca: str) -> Any:
    import ssl

    return ssl.create_default_context(cafile=ca)
