"""Fixtures of a cluster with a real node: the control plane, containerd, the kubelet, kube-proxy
and the scheduler (``tests/kubernetes/kubelet.py``), with our three images built from their
Dockerfiles (``tests/images``) imported into containerd.

Without what a node needs (root, containerd, runc, the CNI plugins) or without the images, the
tests that use it skip, or fail when ``VIDCONV_TEST_REQUIRE`` names ``node``.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests import servers
from tests.kubernetes import kubelet

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "conversiontasks.vidconv.io.yaml"


@pytest.fixture(scope="session")
def node(built_images: dict[str, str]) -> Iterator[kubelet.Node]:
    """The session's cluster with a real node (shared: leave it as you found it)."""
    reason = kubelet.missing()
    if reason:
        servers.unavailable("node", reason)
    with servers.running("node", kubelet.cluster(list(built_images.values()), CRD)) as n:
        yield n


class Namespace:
    """One test's namespace (restricted Pod Security enforced) on the real node's cluster."""

    def __init__(self, node: kubelet.Node, tmp: Path) -> None:
        self.node, self.name, self.tmp = node, "n-" + uuid.uuid4().hex[:10], tmp
        self.http = httpx.Client(base_url=node.cp.url, verify=node.cp.admin_tls(), timeout=30)
        self.http.post("/api/v1/namespaces", json={
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.name, "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest"}}}).raise_for_status()
        self.kubeconfig = node.cp.kubeconfig(tmp / "kubeconfig", "admin",
                                             cert=node.cp.admin_cert, namespace=self.name)

    def kubectl(self, *args: str, input: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.node.cp.kubectl_path), "--kubeconfig",
                               str(self.kubeconfig), *args], input=input, capture_output=True,
                              text=True, timeout=timeout)

    def apply(self, *docs: dict[str, Any]) -> None:
        done = self.kubectl("apply", "-f", "-", input="\n---\n".join(map(yaml.safe_dump, docs)))
        assert done.returncode == 0, done.stderr

    def pod(self, name: str) -> dict[str, Any]:
        r = self.http.get(f"/api/v1/namespaces/{self.name}/pods/{name}")
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    def wait_pod(self, name: str, check: Any, what: str, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            pod = self.pod(name)
            if check(pod):
                return pod
            if time.monotonic() > deadline:
                events = self.kubectl("get", "events", "-o", "wide").stdout
                raise AssertionError(f"pod {name}: timed out waiting for {what}:\n"
                                     f"{yaml.safe_dump(pod.get('status'))}\n{events}")
            time.sleep(0.3)

    def close(self) -> None:
        self.http.delete(f"/api/v1/namespaces/{self.name}")
        self.http.close()


@pytest.fixture
def node_namespace(node: kubelet.Node, tmp_path: Path) -> Iterator[Namespace]:
    ns = Namespace(node, tmp_path)
    try:
        yield ns
    finally:
        ns.close()
