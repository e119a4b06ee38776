"""What a reviewer checks by hand: restricted pods, resources, one operator, least privilege."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.chart.fixtures import VALUE_SETS, Rendered, find, one

pytestmark = pytest.mark.chart

WORKLOADS = ("Deployment", "StatefulSet", "Job")


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]


def restricted_problems(where: str, pod: dict[str, Any]) -> list[str]:
    """Violations of the restricted Pod Security Standard (plus a read-only root filesystem)."""
    problems = []
    psc = pod.get("securityContext", {})
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: pod seccompProfile is not RuntimeDefault")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(f"{where}: {key}")
    for vol in pod.get("volumes", []):
        if "hostPath" in vol:
            problems.append(f"{where}: hostPath volume {vol['name']}")
    for c in pod.get("initContainers", []) + pod["containers"]:
        sc = c.get("securityContext", {})
        name = f"{where}/{c['name']}"
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot not set")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            problems.append(f"{name}: runs as UID 0")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc["capabilities"].get("add"):
            problems.append(f"{name}: capabilities are not drop [ALL]")
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: root filesystem is writable")
        if not c.get("resources", {}).get("requests", {}).get("memory") or \
                not c["resources"]["requests"].get("cpu"):
            problems.append(f"{name}: no cpu and memory requests")
        if not c.get("resources", {}).get("limits", {}).get("memory"):
            problems.append(f"{name}: no memory limit")
    return problems


@pytest.mark.parametrize("values_set", VALUE_SETS)
def test_every_container_is_restricted_and_has_resource_requests(
    rendered: Rendered, values_set: str
) -> None:
    pods = list(pod_specs(rendered[values_set]))
    assert pods
    problems = [p for where, pod in pods for p in restricted_problems(where, pod)]
    assert problems == []


def test_the_check_catches_a_root_container() -> None:
    # The check above must be able to fail: a container with the usual insecure defaults.
    pod = {"containers": [{"name": "c", "securityContext": {"runAsUser": 0}}]}
    assert len(restricted_problems("Deployment/x", pod)) == 8


def test_writable_paths_are_emptydirs_on_read_only_roots(
    rendered: Rendered,
) -> None:
    for where, pod in pod_specs(rendered["defaults"]):
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        claims = {"data"}  # StatefulSet volumeClaimTemplates
        for c in pod.get("initContainers", []) + pod["containers"]:
            for mount in c.get("volumeMounts", []):
                vol = volumes.get(mount["name"])
                assert vol is not None and "emptyDir" in vol or mount["name"] in claims, \
                    f"{where}/{c['name']} mounts {mount['name']}"


def test_operator_runs_exactly_one_replica_with_recreate(
    rendered: Rendered,
) -> None:
    for docs in rendered.values():
        op = one(docs, "Deployment", "vc-vidconv-operator")["spec"]
        assert op["replicas"] == 1
        assert op["strategy"] == {"type": "Recreate"}
        container = op["template"]["spec"]["containers"][0]
        probe = container["livenessProbe"]["httpGet"]
        port = next(p for p in container["ports"] if p["name"] == probe["port"])
        assert probe["path"] == "/healthz" and port["containerPort"] == 8080


def test_api_probes_its_health_endpoints(rendered: Rendered) -> None:
    api = one(rendered["defaults"], "Deployment", "vc-vidconv-api")["spec"]
    container = api["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert api["replicas"] == 2


def rules_by_account(docs: list[dict[str, Any]]) -> dict[str, set[tuple[str, str, str]]]:
    """ServiceAccount -> {(apiGroup, resource, verb)} it is granted, through any binding."""
    roles = {(r["kind"], r["metadata"]["name"]): r
             for r in find(docs, "Role") + find(docs, "ClusterRole")}
    granted: dict[str, set[tuple[str, str, str]]] = {}
    for binding in find(docs, "RoleBinding") + find(docs, "ClusterRoleBinding"):
        role = roles[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount"
            perms = granted.setdefault(subject["name"], set())
            for rule in role["rules"]:
                assert "resourceNames" not in rule and "nonResourceURLs" not in rule
                perms |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"]
                          for v in rule["verbs"]}
    return granted


def grants(group: str, resource: str, verbs: str) -> set[tuple[str, str, str]]:
    return {(group, resource, v) for v in verbs.split()}


def test_rbac_is_exactly_the_least_privilege_lists(rendered: Rendered) -> None:
    for docs in rendered.values():
        assert find(docs, "ClusterRole") == find(docs, "ClusterRoleBinding") == []
        assert rules_by_account(docs) == {
            "vc-vidconv-operator": (
                grants("vidconv.io", "conversiontasks", "get list watch patch")
                | grants("vidconv.io", "conversiontasks/status", "get patch")
                | grants("batch", "jobs", "create get list watch delete")
                | grants("", "pods", "get list watch")
                | grants("", "events", "create patch")
            ),
            "vc-vidconv-api": grants("vidconv.io", "conversiontasks", "create get list delete"),
            "vc-vidconv-transcoder": grants("vidconv.io", "conversiontasks/status", "get patch"),
        }


def test_each_workload_runs_as_its_own_service_account(
    rendered: Rendered,
) -> None:
    docs = rendered["defaults"]
    accounts = {s["metadata"]["name"] for s in find(docs, "ServiceAccount")}
    assert accounts == {"vc-vidconv-api", "vc-vidconv-operator", "vc-vidconv-transcoder"}
    for name in ("api", "operator"):
        pod = one(docs, "Deployment", f"vc-vidconv-{name}")["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == f"vc-vidconv-{name}"
    for sts in find(docs, "StatefulSet"):  # PostgreSQL and MinIO never talk to the API server
        assert sts["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
