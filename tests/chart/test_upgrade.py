"""Credentials are generated once: an upgrade's `lookup` finds the Secrets and keeps their values.

Helm renders cluster-aware here (its real `lookup`) against the Kubernetes API emulator over HTTP.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import servers
from tests.chart.conftest import NAMESPACE, RELEASE, find, parse

pytestmark = pytest.mark.chart


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    try:
        from tests.kubernetes.emulator import EmulatorThread

        emulator = EmulatorThread().__enter__()
    except Exception as exc:  # noqa: BLE001 - no emulator, no cluster-aware render
        servers.unavailable("kubernetes", f"the Kubernetes API emulator can't start: {exc}")
    try:
        kubeconfig = emulator.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config",
                                               NAMESPACE)
        yield emulator, kubeconfig
    finally:
        emulator.__exit__(None, None, None)


def secret_values(docs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {s["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in s["data"].items()}
            for s in find(docs, "Secret")}


def test_upgrade_keeps_generated_passwords_and_keys(
    helm: Any, chart: Any, cluster: tuple[Any, Path]
) -> None:
    import httpx

    emulator, kubeconfig = cluster
    with helm.Config(kubeconfig_path=str(kubeconfig), namespace=NAMESPACE) as config:
        first = parse(config.render(chart, name=RELEASE, namespace=NAMESPACE, is_install=True))
        installed = secret_values(first)
        assert sorted(installed) == ["vc-vidconv-db", "vc-vidconv-jwt", "vc-vidconv-s3"]
        # Without the Secrets in the cluster every render generates new values...
        again = secret_values(parse(config.render(chart, name=RELEASE, namespace=NAMESPACE)))
        assert again["vc-vidconv-db"]["password"] != installed["vc-vidconv-db"]["password"]
        # ... so "install" the first render's Secrets, as helm install would ...
        for secret in find(first, "Secret"):
            response = httpx.post(f"{emulator.url}/api/v1/namespaces/{NAMESPACE}/secrets",
                                  json=secret, timeout=10)
            assert response.status_code in (200, 201), response.text
        # ... and an upgrade renders exactly the same credentials.
        upgraded = parse(config.render(chart, name=RELEASE, namespace=NAMESPACE,
                                       is_upgrade=True, revision=2))
    assert secret_values(upgraded) == installed
