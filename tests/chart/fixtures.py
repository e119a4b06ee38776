"""Chart test fixtures: the real Helm library (helm-python-sdk), one render per values set.

When the library can't load, the tests skip, or fail when ``VIDCONV_TEST_REQUIRE`` names ``chart``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests import servers

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "vidconv"
RELEASE = "vc"
Rendered = dict[str, list[dict[str, Any]]]  # values set name -> rendered objects
NAMESPACE = "media"

# Every switch flipped at least once. Rendering is cheap; each set renders once per module.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "external": {
        "postgresql": {"enabled": False},
        "database": {"external": {"url": "postgresql+psycopg://vc:pw@db.example.com:5432/vidconv"}},
        "minio": {"enabled": False},
        "s3": {"external": {"endpoint": "https://s3.example.com", "accessKey": "AK",
                            "secretKey": "SK"}, "bucket": "media-out"},
        "api": {
            "ingress": {"enabled": True, "className": "nginx", "hosts": ["vidconv.example.com"],
                        "tls": [{"secretName": "vidconv-tls", "hosts": ["vidconv.example.com"]}]},
            "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6},
            "webhookProxy": "http://smokescreen.egress:4750",
            "forwardedAllowIps": "10.244.0.0/16",
        },
        "networkPolicy": {"enabled": True},
        "directTransfers": {"enabled": True},
        "kueue": {"queueName": "video"},
        "limits": {"maxUploadBytes": 500 * 1024 * 1024 + 1},
        "transcoder": {"image": {"repository": "registry.example.com/vidconv-transcoder",
                                 "tag": "1.2.3"}, "activeDeadlineSeconds": 900},
    },
    "existing-secrets": {
        "postgresql": {"enabled": False},
        "database": {"external": {"existingSecret": "my-db", "existingSecretKey": "dsn"}},
        "s3": {"existingSecret": "my-s3"},
        "jwt": {"existingSecret": "my-jwt"},
        "networkPolicy": {"enabled": True, "kubeAPIServerCIDRs": ["172.18.0.2/32"]},
        "api": {"ingress": {"enabled": True}, "podDisruptionBudget": {"enabled": False}},
    },
    "direct": {
        "directTransfers": {"enabled": True, "urlSeconds": 300},
        "minio": {"ingress": {"enabled": True, "className": "nginx", "host": "s3.example.com",
                              "tlsSecretName": "s3-tls", "annotations": {"example.com/a": "b"}}},
        "networkPolicy": {"enabled": True, "minioIngressFrom": [{"namespaceSelector": {
            "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]},
    },
    "metrics": {
        "logFormat": "json",
        "metrics": {"scrapeAnnotations": True,
                    "serviceMonitor": {"enabled": True, "interval": "15s", "scrapeTimeout": "5s",
                                       "labels": {"release": "kube-prometheus"}}},
        "api": {"podAnnotations": {"example.com/team": "media"}, "containerPort": 8000,
                "metricsPort": 9200},
        "operator": {"metricsPort": 9300},
    },
}


@pytest.fixture(scope="session")
def helm() -> ModuleType:
    try:
        import helm_python

        helm_python.helm_sdk_version()  # loads libhelm_c: fails here, not in a test body
    except Exception as exc:  # noqa: BLE001 - any failure means "no Helm library here"
        servers.unavailable("chart", f"helm-python-sdk can't load: {exc}")
    helm_python.disable_logging()
    return helm_python


@pytest.fixture(scope="session")
def chart(helm: ModuleType) -> Iterator[Any]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def parse(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """The Kubernetes objects of a render (NOTES.txt and empty templates left out)."""
    docs: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


@pytest.fixture(scope="session")
def rendered(chart: Any) -> Rendered:
    """Objects rendered for each values set, keyed by the set's name."""
    return {
        name: parse(chart.render(values=values, name=RELEASE, namespace=NAMESPACE))
        for name, values in VALUE_SETS.items()
    }


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind
            and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """name -> value (or the valueFrom mapping) of a container's env."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}
