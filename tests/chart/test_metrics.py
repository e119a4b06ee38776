"""Metrics in the chart: what serves them, and the switches that tell a Prometheus to scrape."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.fixtures import NAMESPACE, Rendered, env_of, find, one

pytestmark = pytest.mark.chart


def _pod(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return one(docs, "Deployment", name)["spec"]["template"]  # type: ignore[no-any-return]


def _port(container: dict[str, Any], name: str) -> int:
    return next(int(p["containerPort"]) for p in container["ports"] if p["name"] == name)


@pytest.mark.parametrize("values_set", ["defaults", "metrics"])
def test_the_operator_serves_metrics_behind_a_service_of_its_own(
    rendered: Rendered, values_set: str
) -> None:
    docs = rendered[values_set]
    pod = _pod(docs, "vc-vidconv-operator")
    container = pod["spec"]["containers"][0]
    port = _port(container, "metrics")
    assert port == {"defaults": 9090, "metrics": 9300}[values_set]
    assert env_of(container)["VIDCONV_OPERATOR_METRICS"] == f"0.0.0.0:{port}"
    service = one(docs, "Service", "vc-vidconv-operator")
    [service_port] = service["spec"]["ports"]
    assert service_port["name"] == "metrics" and service_port["targetPort"] == "metrics"
    labels = pod["metadata"]["labels"]
    assert all(labels[k] == v for k, v in service["spec"]["selector"].items())
    # The operator's Service selects the operator, never the API pods.
    api_labels = _pod(docs, "vc-vidconv-api")["metadata"]["labels"]
    assert not all(api_labels.get(k) == v for k, v in service["spec"]["selector"].items())


@pytest.mark.parametrize("values_set", ["defaults", "metrics", "external"])
def test_the_api_serves_metrics_on_a_port_the_ingress_never_routes_to(
    rendered: Rendered, values_set: str
) -> None:
    docs = rendered[values_set]
    container = _pod(docs, "vc-vidconv-api")["spec"]["containers"][0]
    port = _port(container, "metrics")
    assert port == {"metrics": 9200}.get(values_set, 9090)
    assert port != _port(container, "http")
    assert env_of(container)["VIDCONV_METRICS_ADDRESS"] == f"0.0.0.0:{port}"
    service = one(docs, "Service", "vc-vidconv-api")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["metrics"]["targetPort"] == "metrics" and ports["metrics"]["port"] == port
    ingresses = [i for i in find(docs, "Ingress") if i["metadata"]["name"] == "vc-vidconv-api"]
    assert len(ingresses) == (values_set == "external")
    for ingress in ingresses:
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                if backend["name"] == "vc-vidconv-api":
                    assert backend["port"] == {"name": "http"}, backend


def test_nothing_asks_to_be_scraped_by_default(rendered: Rendered) -> None:
    docs = rendered["defaults"]
    assert find(docs, "ServiceMonitor") == []
    for name in ("vc-vidconv-api", "vc-vidconv-operator"):
        annotations = _pod(docs, name)["metadata"].get("annotations") or {}
        assert not any(k.startswith("prometheus.io/") for k in annotations)


def test_scrape_annotations_name_each_pods_metrics_port(rendered: Rendered) -> None:
    docs = rendered["metrics"]
    for name in ("vc-vidconv-api", "vc-vidconv-operator"):
        pod = _pod(docs, name)
        annotations = pod["metadata"]["annotations"]
        port = _port(pod["spec"]["containers"][0], "metrics")
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(port)
        assert annotations["prometheus.io/path"] == "/metrics"
    # A component's own pod annotations stay beside them.
    assert _pod(docs, "vc-vidconv-api")["metadata"]["annotations"]["example.com/team"] == "media"
    assert _port(_pod(docs, "vc-vidconv-api")["spec"]["containers"][0], "http") == 8000


def test_each_service_monitor_selects_one_service_and_a_port_it_has(rendered: Rendered) -> None:
    docs = rendered["metrics"]
    monitors = {m["metadata"]["name"]: m for m in find(docs, "ServiceMonitor")}
    assert sorted(monitors) == ["vc-vidconv-api", "vc-vidconv-operator"]
    services = find(docs, "Service")
    for name, monitor in monitors.items():
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["namespace"] == NAMESPACE
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"
        spec = monitor["spec"]
        assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        wanted = spec["selector"]["matchLabels"]
        [service] = [s for s in services
                     if all(s["metadata"]["labels"].get(k) == v for k, v in wanted.items())]
        assert service["metadata"]["name"] == name
        [endpoint] = spec["endpoints"]
        assert "metrics" in {p["name"] for p in service["spec"]["ports"]}
        assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "15s",
                            "scrapeTimeout": "5s"}


@pytest.mark.parametrize(("values_set", "log_format"), [("defaults", "text"), ("metrics", "json")])
def test_the_log_format_reaches_the_api_and_the_operator(
    rendered: Rendered, values_set: str, log_format: str
) -> None:
    for name in ("vc-vidconv-api", "vc-vidconv-operator"):
        container = _pod(rendered[values_set], name)["spec"]["containers"][0]
        assert env_of(container)["VIDCONV_LOG_FORMAT"] == log_format
