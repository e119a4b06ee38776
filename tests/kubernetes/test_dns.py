"""Names in the cluster as a pod sees them: CoreDNS (``tests/kubernetes/dns.py``) behind the
``kube-dns`` Service, asked through the resolv.conf the kubelet writes for a pod, by the C
library's resolver (``getaddrinfo``), as any program in the pod would."""

from __future__ import annotations

import json

import pytest

from tests.kubernetes import dns, kubelet
from tests.kubernetes.realnode import Namespace
from tests.kubernetes.test_node import _pod, _ready, _state, _terminated

pytestmark = [pytest.mark.kubernetes, pytest.mark.images]

# What a program in the pod gets for each name, then the answer of the Service it found by name.
LOOKUPS = """
import json, socket, sys, urllib.request
def lookup(name):
    try:
        return sorted({a[4][0] for a in socket.getaddrinfo(name, 80, proto=socket.IPPROTO_TCP)})
    except socket.gaierror as e:
        return str(e)
namespace = sys.argv[1]
print(json.dumps({
    "resolv.conf": open("/etc/resolv.conf").read().splitlines(),
    "kubernetes": lookup("kubernetes.default.svc.cluster.local"),
    "web": lookup("web"),
    "web.namespace": lookup(f"web.{namespace}"),
    "missing": lookup(f"missing.{namespace}.svc.cluster.local"),
    "outside": lookup("example.com"),
    "healthz": urllib.request.urlopen("http://web/healthz", timeout=10).read().decode(),
}))
"""


def test_a_pod_finds_services_by_name_through_the_clusters_dns(
    node_namespace: Namespace, built_images: dict[str, str]
) -> None:
    ns = node_namespace
    api = kubelet.pod_image(built_images["api"])
    ns.apply(_pod("web", api, env=[{"name": "VIDCONV_DATA_DIR", "value": "/tmp/vidconv"}],
                  readinessProbe={"httpGet": {"path": "/readyz", "port": 5000},
                                  "periodSeconds": 1},
                  volumeMounts=[{"name": "scratch", "mountPath": "/tmp"}]),
             {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
              "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 5000}]}})
    ns.wait_pod("web", _ready, "Ready")
    web_ip = ns.http.get(f"/api/v1/namespaces/{ns.name}/services/web").json()["spec"]["clusterIP"]

    ns.apply(_pod("client", api, ["python", "-c", LOOKUPS, ns.name]))
    terminated = _state(ns.wait_pod("client", _terminated, "the lookups to end"))["terminated"]
    logs = ns.kubectl("logs", "client").stdout
    assert terminated["exitCode"] == 0, logs
    seen = json.loads(logs.splitlines()[-1])

    # The kubelet's resolv.conf for a pod of dnsPolicy ClusterFirst (the default).
    assert seen["resolv.conf"] == [
        f"search {ns.name}.svc.{dns.DOMAIN} svc.{dns.DOMAIN} {dns.DOMAIN}",
        f"nameserver {dns.CLUSTER_IP}", "options ndots:5"]
    assert seen["kubernetes"] == ["10.0.0.1"]
    # A Service of the pod's own namespace by its short name (the search path), and qualified.
    assert seen["web"] == seen["web.namespace"] == [web_ip]
    assert json.loads(seen["healthz"]) == {"status": "ok"}
    # A name in the cluster's zone that nothing has: NXDOMAIN, as glibc reports it.
    assert seen["missing"] == "[Errno -2] Name or service not known"
    # Outside the cluster there is no upstream to ask (the node reaches none): no answer at all.
    assert seen["outside"] == "[Errno -3] Temporary failure in name resolution"
