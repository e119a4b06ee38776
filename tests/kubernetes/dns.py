"""The test cluster's DNS: CoreDNS as a cluster add-on, run by the real node as a cluster's is.

The binary is built from CoreDNS's Go module (``hack/coredns/build.sh``) into a scratch image
(``hack/images/coredns.sh``), imported into the node's containerd; the objects are those of the
upstream manifest (kube-system: ServiceAccount, ClusterRole and its binding, Corefile ConfigMap,
Deployment, the ``kube-dns`` Service at ``CLUSTER_IP``), so pods of dnsPolicy ClusterFirst resolve
Services and pods by name. Nothing upstream: the node reaches no other resolver, so CoreDNS
answers for the cluster's zones only.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.kubernetes.isolation import run

REPO = Path(__file__).resolve().parents[2]
IMAGE_SCRIPT = REPO / "hack" / "images" / "coredns.sh"
CLUSTER_IP = "10.0.0.10"  # in controlplane.SERVICE_CIDR, as kubeadm picks it (the tenth address)
DOMAIN = "cluster.local"
NAMESPACE = "kube-system"
NAME = "coredns"
# Unprivileged: the pod needs no capability at all (upstream adds NET_BIND_SERVICE to listen on
# 53) and meets the restricted standard; the Service maps 53 to it.
PORT = 1053
HEALTH_PORT, READY_PORT = 8080, 8181

# The upstream Corefile without ``forward . /etc/resolv.conf`` (and ``prometheus``, unused here):
# the node has no upstream resolver to forward to, so other names get SERVFAIL, never an answer
# (logged as "no next plugin found", once at start for ``loop``'s own probe).
COREFILE = f""".:{PORT} {{
    errors
    health :{HEALTH_PORT} {{
        lameduck 5s
    }}
    ready :{READY_PORT}
    kubernetes {DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
    loop
    reload
}}
"""

# The node's resolv.conf for the kubelet: no nameserver, so pods of dnsPolicy Default (CoreDNS's
# own) get none rather than the host's, which the node's network can't reach.
NODE_RESOLV_CONF = "# the node reaches no resolver but the cluster's (kube-dns)\n"


def image() -> str:
    """The CoreDNS image in the buildah store (built on first use, then a lookup)."""
    return run(str(IMAGE_SCRIPT)).stdout.strip().splitlines()[-1]


def manifests(pod_image: str) -> list[dict[str, Any]]:
    """The add-on's objects, as upstream's manifest has them (coredns/deployment, kubernetes/)."""
    labels = {"k8s-app": "kube-dns"}
    meta = {"name": NAME, "namespace": NAMESPACE}
    rbac = "rbac.authorization.k8s.io/v1"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": rbac, "kind": "ClusterRole", "metadata": {"name": "system:coredns"},
         "rules": [
             {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
              "verbs": ["list", "watch"]},
             {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
              "verbs": ["list", "watch"]}]},
        {"apiVersion": rbac, "kind": "ClusterRoleBinding", "metadata": {"name": "system:coredns"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "system:coredns"},
         "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
         "data": {"Corefile": COREFILE}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {**meta, "labels": labels},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels},
             "spec": {
                 "serviceAccountName": NAME,
                 "priorityClassName": "system-cluster-critical",
                 "dnsPolicy": "Default",  # not itself: it would be its own upstream
                 "securityContext": {"runAsNonRoot": True, "runAsUser": 65532,
                                     "seccompProfile": {"type": "RuntimeDefault"}},
                 "containers": [{
                     "name": NAME, "image": pod_image, "imagePullPolicy": "Never",
                     "args": ["-conf", "/etc/coredns/Corefile"],
                     "ports": [{"name": "dns", "containerPort": PORT, "protocol": "UDP"},
                               {"name": "dns-tcp", "containerPort": PORT, "protocol": "TCP"}],
                     "resources": {"requests": {"cpu": "100m", "memory": "70Mi"},
                                   "limits": {"memory": "170Mi"}},
                     "securityContext": {"allowPrivilegeEscalation": False,
                                         "readOnlyRootFilesystem": True,
                                         "capabilities": {"drop": ["ALL"]}},
                     "livenessProbe": {"httpGet": {"path": "/health", "port": HEALTH_PORT},
                                       "initialDelaySeconds": 60, "timeoutSeconds": 5,
                                       "failureThreshold": 5},
                     # Probed each second (upstream: 10): the cluster waits for it to start.
                     "readinessProbe": {"httpGet": {"path": "/ready", "port": READY_PORT},
                                        "periodSeconds": 1},
                     "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns",
                                       "readOnly": True}]}],
                 "volumes": [{"name": "config", "configMap": {"name": NAME}}]}}}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kube-dns", "namespace": NAMESPACE, "labels": labels},
         "spec": {"clusterIP": CLUSTER_IP, "selector": labels, "ports": [
             {"name": "dns", "port": 53, "targetPort": PORT, "protocol": "UDP"},
             {"name": "dns-tcp", "port": 53, "targetPort": PORT, "protocol": "TCP"}]}},
    ]


def apply(kubectl: list[str], pod_image: str) -> None:
    """The add-on's objects applied, its image (``pod_image``) already on the node."""
    docs = "\n---\n".join(yaml.safe_dump(m) for m in manifests(pod_image))
    done = subprocess.run([*kubectl, "apply", "--server-side", "-f", "-"], input=docs,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"applying CoreDNS: {done.stderr.strip()}")


def wait_available(kubectl: list[str], timeout: int = 120) -> None:
    """Until the Deployment is Available: its pod Ready by ``/ready`` (the kubernetes plugin has
    synced with the API server), so a pod started after this resolves names at once."""
    done = subprocess.run([*kubectl, "-n", NAMESPACE, "wait", "--for=condition=Available",
                           f"--timeout={timeout}s", f"deployment/{NAME}"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pods = run(*kubectl, "-n", NAMESPACE, "get", "pods,events", "-o", "wide",
                   check=False).stdout
        raise RuntimeError(f"CoreDNS not available: {done.stderr.strip()}\n{pods}")
