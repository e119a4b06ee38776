"""The emulator acts like an API server where the operator, kubectl and the kubelet rely on it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.kubernetes.emulator import EmulatorThread

pytestmark = pytest.mark.kubernetes
JOBS = "/apis/batch/v1/namespaces/ns1/jobs"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with EmulatorThread() as thread, httpx.Client(base_url=thread.url, timeout=10) as client:
        yield client


def _create(http: httpx.Client, name: str, **meta: Any) -> dict[str, Any]:
    r = http.post(JOBS, json={"apiVersion": "batch/v1", "kind": "Job",
                             "metadata": {"name": name, **meta}, "spec": {"x": 1}})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_created_objects_get_uid_resource_version_and_timestamp(http: httpx.Client) -> None:
    a, b = _create(http, "a"), _create(http, "b")
    assert a["metadata"]["uid"] != b["metadata"]["uid"]
    assert int(b["metadata"]["resourceVersion"]) > int(a["metadata"]["resourceVersion"])
    assert a["metadata"]["creationTimestamp"].endswith("Z")
    assert a["metadata"]["namespace"] == "ns1"
    assert http.post(JOBS, json={"metadata": {"name": "a"}}).status_code == 409
    named = _create(http, "", generateName="gen-")
    assert named["metadata"]["name"].startswith("gen-")


def test_lists_have_a_kind_and_honour_label_selectors(http: httpx.Client) -> None:
    _create(http, "a", labels={"app": "x", "tier": "1"})
    _create(http, "b", labels={"app": "y"})
    listing = http.get(JOBS).json()
    assert listing["kind"] == "JobList" and listing["metadata"]["resourceVersion"]

    def names(selector: str) -> list[str]:
        items = http.get(JOBS, params={"labelSelector": selector}).json()["items"]
        return sorted(i["metadata"]["name"] for i in items)

    assert names("app=x") == ["a"]
    assert names("app!=x") == ["b"]
    assert names("tier") == ["a"] and names("!tier") == ["b"]
    assert names("app in (x,y),tier notin (1)") == ["b"]  # notin: a missing label matches


def test_status_is_a_subresource(http: httpx.Client) -> None:
    _create(http, "a")
    http.patch(f"{JOBS}/a", json={"spec": {"x": 2}, "status": {"active": 1}},
               headers={"Content-Type": "application/merge-patch+json"})
    http.patch(f"{JOBS}/a/status", json={"spec": {"x": 3}, "status": {"succeeded": 1}},
               headers={"Content-Type": "application/merge-patch+json"})
    obj = http.get(f"{JOBS}/a").json()
    assert obj["spec"] == {"x": 2} and obj["status"] == {"succeeded": 1}


def test_a_watch_resumes_after_a_resource_version_and_ends_at_its_timeout(
    http: httpx.Client,
) -> None:
    first = _create(http, "a")
    _create(http, "b")
    http.delete(f"{JOBS}/a")
    since = first["metadata"]["resourceVersion"]
    with http.stream("GET", JOBS, params={"watch": "true", "resourceVersion": since,
                                         "timeoutSeconds": "1"}) as r:
        events = [json.loads(line) for line in r.iter_lines() if line]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "b"), ("DELETED", "a")]


def test_deleting_an_owner_deletes_what_it_owns(http: httpx.Client) -> None:
    owner = _create(http, "owner")
    ref = {"apiVersion": "batch/v1", "kind": "Job", "name": "owner",
           "uid": owner["metadata"]["uid"], "controller": True}
    _create(http, "child", ownerReferences=[ref])
    r = http.post("/api/v1/namespaces/ns1/pods", json={
        "metadata": {"name": "grandchild", "ownerReferences": [
            {**ref, "name": "child", "uid": http.get(f"{JOBS}/child").json()["metadata"]["uid"]}]}})
    assert r.status_code == 201
    http.delete(f"{JOBS}/owner")
    for _ in range(100):  # the collector runs right after the delete, in the background
        if http.get("/api/v1/namespaces/ns1/pods/grandchild").status_code == 404:
            break
        time.sleep(0.05)
    assert http.get(f"{JOBS}/child").status_code == 404
    assert http.get("/api/v1/namespaces/ns1/pods/grandchild").status_code == 404


def test_tables_carry_the_crd_printer_columns(http: httpx.Client) -> None:
    path = "/apis/vidconv.io/v1alpha1/namespaces/ns1/conversiontasks"
    http.post(path, json={"metadata": {"name": "ct-1"}, "spec": {"format": "mp3"}})
    http.patch(f"{path}/ct-1/status", json={"status": {"phase": "Running", "progress": 7}},
               headers={"Content-Type": "application/merge-patch+json"})
    table = http.get(path, headers={"Accept": TABLE}).json()
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Format", "Phase", "Progress", "Job", "Age"]
    assert [c["priority"] for c in table["columnDefinitions"]] == [0, 0, 0, 0, 1, 0]
    [row] = table["rows"]
    assert row["cells"][:5] == ["ct-1", "mp3", "Running", 7, None]
