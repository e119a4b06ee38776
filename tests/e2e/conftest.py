"""End-to-end against a real cluster with the chart installed (`make kind-up images kind-load
deploy e2e`). Skipped unless VIDCONV_E2E_KUBECONFIG names a kubeconfig; no cluster runs here.

VIDCONV_E2E_URL (default http://localhost) is where the API answers, VIDCONV_E2E_NAMESPACE
(default vidconv) the release's namespace.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import servers


@dataclass
class Cluster:
    kubeconfig: str
    namespace: str
    url: str

    def kubectl(self, *args: str) -> str:
        result = subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, "--namespace", self.namespace, *args],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    kubeconfig = os.environ.get("VIDCONV_E2E_KUBECONFIG", "")
    if not kubeconfig or not Path(kubeconfig).exists():
        servers.unavailable("e2e", "VIDCONV_E2E_KUBECONFIG does not name a kubeconfig")
    return Cluster(
        kubeconfig=kubeconfig,
        namespace=os.environ.get("VIDCONV_E2E_NAMESPACE", "vidconv"),
        url=os.environ.get("VIDCONV_E2E_URL", "http://localhost").rstrip("/"),
    )

