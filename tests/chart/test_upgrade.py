"""Credentials are generated once: an upgrade's `lookup` finds the Secrets and keeps their values.

Helm renders cluster-aware here (its real `lookup`) against the real kube-apiserver of the test
control plane.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest

from tests.chart.fixtures import RELEASE, find, parse
from tests.kubernetes.controlplane import ControlPlane

pytestmark = [pytest.mark.chart, pytest.mark.kubernetes]


def secret_values(docs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {s["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in s["data"].items()}
            for s in find(docs, "Secret")}


def test_upgrade_keeps_generated_passwords_and_keys(
    helm: Any, chart: Any, kube: ControlPlane
) -> None:
    import httpx

    namespace = "up-" + uuid.uuid4().hex[:8]
    admin = httpx.Client(base_url=kube.url, verify=kube.admin_tls(), timeout=10)
    admin.post("/api/v1/namespaces", json={"metadata": {"name": namespace}}).raise_for_status()
    kubeconfig = kube.root / "admin.kubeconfig"
    with helm.Config(kubeconfig_path=str(kubeconfig), namespace=namespace) as config:
        first = parse(config.render(chart, name=RELEASE, namespace=namespace, is_install=True))
        installed = secret_values(first)
        assert sorted(installed) == ["vc-vidconv-db", "vc-vidconv-jwt", "vc-vidconv-s3"]
        # Without the Secrets in the cluster every render generates new values...
        again = secret_values(parse(config.render(chart, name=RELEASE, namespace=namespace)))
        assert again["vc-vidconv-db"]["password"] != installed["vc-vidconv-db"]["password"]
        # ... so "install" the first render's Secrets, as helm install would ...
        for secret in find(first, "Secret"):
            response = admin.post(f"/api/v1/namespaces/{namespace}/secrets", json=secret)
            assert response.status_code in (200, 201), response.text
        # ... and an upgrade renders exactly the same credentials.
        upgraded = parse(config.render(chart, name=RELEASE, namespace=namespace,
                                       is_upgrade=True, revision=2))
    assert secret_values(upgraded) == installed
    admin.delete(f"/api/v1/namespaces/{namespace}")
    admin.close()
