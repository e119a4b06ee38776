"""The release the end-to-end tests run against when no cluster of yours is named: installed here.

``helm install`` of charts/vidconv (the Helm library against the real API server) onto the test
session's cluster with a real node (``tests/kubernetes/kubelet.py``), with the images ``make
images CONTAINER_TOOL=buildah`` just built, as ``make deploy`` installs it on kind, but: the
bundled PostgreSQL and MinIO off and the session's real servers as external ones (pods reach them
through the node's forwarders), and the API Service a NodePort (no Ingress controller here), so
the tests reach the API at the node's address.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import servers
from tests.kubernetes import kubelet

RELEASE = NAMESPACE = "vidconv"  # as `make deploy`
TIMEOUT = 300  # seconds Helm waits for the release's Deployments


@dataclass
class LocalRelease:
    node: kubelet.Node
    helm: Any  # helm_python.Config on the admin's kubeconfig, in the release's namespace
    chart: Any
    values: dict[str, Any]
    kubeconfig: Path
    namespace: str
    url: str


def release_values(node: kubelet.Node, images: dict[str, str], db_url: str,
                   s3: servers.S3Server, bucket: str) -> dict[str, Any]:
    def image(component: str, policy: str) -> dict[str, str]:
        repository, _, tag = kubelet.pod_image(images[component]).rpartition(":")
        return {"repository": repository, "tag": tag, "pullPolicy": policy}

    host, port = db_url.split("@", 1)[1].split("/", 1)[0].split(":")
    s3_port = int(s3.endpoint.rsplit(":", 1)[1])
    return {
        "postgresql": {"enabled": False},
        "database": {"external": {"url": db_url.replace(
            f"@{host}:{port}/", f"@{node.expose(int(port))}/")}},
        "minio": {"enabled": False},
        "s3": {"bucket": bucket, "region": s3.region, "external": {
            "endpoint": f"http://{node.expose(s3_port)}", "accessKey": s3.access_key,
            "secretKey": s3.secret_key}},
        "api": {"image": image("api", "Never"), "service": {"type": "NodePort"}},
        "operator": {"image": image("operator", "Never")},
        "transcoder": {"image": image("transcoder", "IfNotPresent")},
    }


@contextmanager
def installed(node: kubelet.Node, helm: Any, chart: Any, postgres: servers.PostgresServer,
              s3: servers.S3Server, images: dict[str, str], tmp: Path) -> Iterator[LocalRelease]:
    """The release installed (``helm`` is the helm_python module), uninstalled at the end."""
    import httpx

    cp = node.cp
    http = httpx.Client(base_url=cp.url, verify=cp.admin_tls(), timeout=30)
    http.post("/api/v1/namespaces", json={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest"}}}).raise_for_status()
    bucket = "e2e-" + uuid.uuid4().hex[:12]
    s3.client().make_bucket(bucket)
    values = release_values(node, images, postgres.create_database(
        "e2e_" + uuid.uuid4().hex[:12]), s3, bucket)
    kubeconfig = cp.kubeconfig(tmp / "kubeconfig", "admin", cert=cp.admin_cert,
                               namespace=NAMESPACE)
    config = helm.Config(kubeconfig_path=str(kubeconfig), namespace=NAMESPACE)
    try:
        config.install(chart, RELEASE, values, wait="watcher", timeout=TIMEOUT)
        service = http.get(f"/api/v1/namespaces/{NAMESPACE}/services/{RELEASE}-api").json()
        node_port = service["spec"]["ports"][0]["nodePort"]
        url = f"http://{node.net.node_ip}:{node_port}"
        wait_until_served(url)
        yield LocalRelease(node, config, chart, values, kubeconfig, NAMESPACE, url)
    finally:
        config.uninstall(RELEASE, ignore_not_found=True, wait="watcher", timeout=TIMEOUT)
        # No operator is left to remove its finalizer from the tasks the tests left.
        path = f"/apis/vidconv.io/v1alpha1/namespaces/{NAMESPACE}/conversiontasks"
        for ct in http.get(path).json().get("items", []):
            http.patch(f"{path}/{ct['metadata']['name']}",
                       headers={"Content-Type": "application/merge-patch+json"},
                       json={"metadata": {"finalizers": None}})
        http.delete(f"/api/v1/namespaces/{NAMESPACE}")
        config.close()
        http.close()


@pytest.fixture(scope="session")
def local_release(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[LocalRelease]:
    """Requested only without VIDCONV_E2E_KUBECONFIG: the node, Helm and the servers start
    only then."""
    with installed(request.getfixturevalue("node"), request.getfixturevalue("helm"),
                   request.getfixturevalue("chart"), request.getfixturevalue("postgres"),
                   request.getfixturevalue("s3"), request.getfixturevalue("built_images"),
                   tmp_path_factory.mktemp("e2e")) as release:
        yield release


def wait_until_served(url: str, timeout: float = 60) -> None:
    """Helm's wait ends when the Deployments are Ready; kube-proxy programs the NodePort's rules
    on its own schedule after that, and a request a moment too early is refused. As a user
    waits for a new Ingress: until the API answers through the Service."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the release's API never answered at {url}/readyz")
        time.sleep(0.5)
