"""`helm upgrade` with a value changed, then `helm uninstall`, as the README says they behave.

Only where the tests installed the release themselves (tests/e2e/local.py): a release of yours
is not theirs to upgrade or remove. These run last (file order): the uninstall ends the release.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cluster
from tests.e2e.helpers import get, live_pods, ready, submit, user, wait
from tests.e2e.local import RELEASE, TIMEOUT, LocalRelease
from vidconv.resources import cr_name, job_name

pytestmark = pytest.mark.e2e
Clip = Callable[..., Path]


@pytest.fixture
def local(cluster: Cluster) -> LocalRelease:
    if cluster.local is None:
        pytest.skip("the release is yours (VIDCONV_E2E_KUBECONFIG): not upgraded or removed")
    return cluster.local


def _secrets(cluster: Cluster) -> dict[str, Any]:
    items = get(cluster, "secrets", "-l", "app.kubernetes.io/managed-by=Helm")["items"]
    return {s["metadata"]["name"]: s["data"] for s in items}


def _env(pod: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env") or []}


def _running(local: LocalRelease, images: tuple[str, ...]) -> list[str]:
    """IDs of containerd's running containers of these images, as `ctr` lists them."""
    ours = {line.split()[0] for line in local.node.ctr("containers", "ls").splitlines()[1:]
            if any(i in line for i in images)}
    return [line.split()[0] for line in local.node.ctr("tasks", "ls").splitlines()[1:]
            if line.split()[0] in ours and "RUNNING" in line]


def test_an_upgrade_rolls_out_the_operator_with_the_new_value_and_keeps_the_secrets(
    cluster: Cluster, local: LocalRelease, make_clip: Clip
) -> None:
    before = local.helm.status(RELEASE)["revision"]
    secrets = _secrets(cluster)
    [operator] = live_pods(cluster, "operator")
    api = {p["metadata"]["name"] for p in live_pods(cluster, "api")}
    assert _env(operator)["VIDCONV_JOB_BACKOFF_LIMIT"] == "2"
    values = copy.deepcopy(local.values)
    values["transcoder"]["backoffLimit"] = 4
    local.helm.upgrade(local.chart, RELEASE, values, wait="watcher", timeout=TIMEOUT)
    local.values = values

    status = local.helm.status(RELEASE)
    assert (status["revision"], status["status"]) == (before + 1, "deployed")
    # Recreate: a new operator pod with the new value; the API's pod template did not change.
    [new] = wait(lambda: [p for p in live_pods(cluster, "operator") if ready(p)], "the operator")
    assert new["metadata"]["uid"] != operator["metadata"]["uid"]
    assert _env(new)["VIDCONV_JOB_BACKOFF_LIMIT"] == "4"
    assert {p["metadata"]["name"] for p in live_pods(cluster, "api")} == api
    assert _secrets(cluster) == secrets  # generated once, kept on upgrade

    with user(cluster) as http:  # the new operator puts the new limit on the next Job
        task_id = submit(http, make_clip(seconds=1.0), "mp3")
        wait(lambda: http.get(f"/api/tasks/{task_id}").json()["state"] == "SUCCESS",
              f"task {task_id}")
    assert get(cluster, "job", job_name(cr_name(task_id)))["spec"]["backoffLimit"] == 4


def test_uninstall_removes_the_release_and_keeps_the_crd_secrets_and_tasks(
    cluster: Cluster, local: LocalRelease
) -> None:
    secrets = sorted(_secrets(cluster))
    tasks = sorted(t["metadata"]["name"] for t in get(cluster, "ct")["items"])
    assert secrets and tasks
    local.helm.uninstall(RELEASE, wait="watcher", timeout=TIMEOUT)

    wait(lambda: not get(cluster, "pods", "-l", "app.kubernetes.io/instance=" + RELEASE)[
        "items"], "the release's pods gone", timeout=120)
    for kind in ("deployments", "replicasets", "services", "serviceaccounts", "roles",
                 "rolebindings"):
        assert get(cluster, kind, "-l", f"app.kubernetes.io/instance={RELEASE}")["items"] == []
    # The kubelet stopped their containers: none of the api or operator images runs any more
    # (stopped ones stay listed until the kubelet's container garbage collection).
    wait(lambda: not _running(local, ("vidconv-api:", "vidconv-operator:")),
         "their containers stopped", timeout=60)
    assert sorted(_secrets(cluster)) == secrets  # helm.sh/resource-policy: keep
    assert get(cluster, "crd", "conversiontasks.vidconv.io")["metadata"]["name"]
    assert sorted(t["metadata"]["name"] for t in get(cluster, "ct")["items"]) == tasks
