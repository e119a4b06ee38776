"""End-to-end against a real cluster with the chart installed (`make kind-up images kind-load
deploy e2e`): VIDCONV_E2E_KUBECONFIG names its kubeconfig, VIDCONV_E2E_URL (default
http://localhost) is where the API answers, VIDCONV_E2E_NAMESPACE (default vidconv) the release's
namespace.

Without VIDCONV_E2E_KUBECONFIG (`make test`, `make e2e-local`) the tests install the release
themselves on a cluster of this machine (tests/e2e/local.py: the real control plane and node, the
images built from their Dockerfiles), or skip where a node can't run.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import servers
from tests.e2e.local import LocalRelease


@dataclass
class Cluster:
    kubeconfig: str
    namespace: str
    url: str
    kubectl_path: str = "kubectl"
    local: LocalRelease | None = None  # the release, when the tests installed it here

    def kubectl(self, *args: str) -> str:
        result = subprocess.run(
            [self.kubectl_path, "--kubeconfig", self.kubeconfig, "--namespace", self.namespace,
             *args],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Cluster:
    kubeconfig = os.environ.get("VIDCONV_E2E_KUBECONFIG", "")
    if not kubeconfig:
        local: LocalRelease = request.getfixturevalue("local_release")
        return Cluster(str(local.kubeconfig), local.namespace, local.url,
                       str(local.node.cp.kubectl_path), local)
    if not Path(kubeconfig).exists():
        servers.unavailable("e2e", f"VIDCONV_E2E_KUBECONFIG names no file: {kubeconfig}")
    return Cluster(
        kubeconfig=kubeconfig,
        namespace=os.environ.get("VIDCONV_E2E_NAMESPACE", "vidconv"),
        url=os.environ.get("VIDCONV_E2E_URL", "http://localhost").rstrip("/"),
    )



def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A cluster's waits (image pulls, rollouts, here the node and `helm install` in the first
    test's set-up) outlast the suite's 300 s per test: 15 minutes for each end-to-end test."""
    for item in items:
        if item.get_closest_marker("e2e") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(900))
