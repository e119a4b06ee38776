"""Pods run for real: scheduled by kube-scheduler, run by the kubelet on containerd (runc) from
our images, in a namespace that enforces the restricted Pod Security Standard."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import httpx
import pytest

from tests import servers
from tests.kubernetes import kubelet
from tests.kubernetes.realnode import Namespace

pytestmark = [pytest.mark.kubernetes, pytest.mark.images]

# The restricted standard, as the chart's pods carry it.
POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                      "capabilities": {"drop": ["ALL"]}}
TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount"
# What the container sees of itself, printed as JSON; then the termination message.
FACTS = f"""
import json, os, ssl, urllib.request
def read(p):
    try:
        return open(p).read().strip()
    except OSError as e:
        return repr(e)
def writable(d):
    try:
        open(os.path.join(d, "probe"), "w").close()
        return True
    except OSError:
        return False
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
context = ssl.create_default_context(cafile="{TOKEN}/ca.crt")
request = urllib.request.Request(
    f"https://{{host}}:{{port}}/apis/authentication.k8s.io/v1/selfsubjectreviews",
    data=json.dumps({{"apiVersion": "authentication.k8s.io/v1",
                      "kind": "SelfSubjectReview"}}).encode(),
    headers={{"Authorization": "Bearer " + read("{TOKEN}/token"),
             "Content-Type": "application/json"}})
review = json.load(urllib.request.urlopen(request, context=context, timeout=10))
print(json.dumps({{
    "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
    "cap_eff": status["CapEff"].strip(), "no_new_privs": status["NoNewPrivs"].strip(),
    "seccomp": status["Seccomp"].strip(), "root_writable": writable("/"),
    "scratch_writable": writable("/scratch"),
    "memory_limit": read("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
    "cpu_quota": read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
    "cpu_period": read("/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
    "namespace": read("{TOKEN}/namespace"), "service": [host, port],
    "user": review["status"]["userInfo"]["username"],
}}))
open("/dev/termination-log", "w").write("facts printed")
"""


def _pod(name: str, image: str, command: list[str] | None = None, **container: Any
         ) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "main", "image": image, "imagePullPolicy": "Never",
        "securityContext": CONTAINER_SECURITY, **container}
    if command:
        spec["command"] = command
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {
        "app": name}}, "spec": {
        "restartPolicy": "Never", "securityContext": POD_SECURITY, "containers": [spec],
        "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "64Mi"}}]}}


def _state(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    return dict(statuses[0].get("state") or {})


def _terminated(pod: dict[str, Any]) -> bool:
    return "terminated" in _state(pod)


def _ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def test_the_node_is_a_kubelet_on_containerd(node: kubelet.Node) -> None:
    with httpx.Client(base_url=node.cp.url, verify=node.cp.admin_tls()) as http:
        info = http.get(f"/api/v1/nodes/{node.name}").json()
    assert info["status"]["nodeInfo"]["kubeletVersion"] == "v1.35.4"
    assert info["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://1.")
    assert {"type": "InternalIP", "address": node.net.node_ip} in info["status"]["addresses"]
    assert not info["spec"].get("taints")


def test_a_restricted_pod_runs_with_its_limits_token_and_termination_message(
    node_namespace: Namespace, built_images: dict[str, str]
) -> None:
    ns = node_namespace
    image = kubelet.pod_image(built_images["transcoder"])
    ns.apply(_pod("facts", image, ["python", "-c", FACTS],
                  resources={"requests": {"cpu": "100m", "memory": "64Mi"},
                             "limits": {"cpu": "500m", "memory": "256Mi"}},
                  volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}]))
    pod = ns.wait_pod("facts", _terminated, "the container to end")
    assert pod["spec"]["nodeName"] == node_namespace.node.name  # kube-scheduler bound it
    terminated = _state(pod)["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed"), terminated
    assert terminated["message"] == "facts printed"
    logs = ns.kubectl("logs", "facts")
    assert logs.returncode == 0, logs.stderr
    facts = json.loads(logs.stdout.splitlines()[-1])
    assert (facts["uid"], facts["gid"], facts["groups"]) == (10001, 10001, [10001])
    assert facts["cap_eff"] == "0000000000000000" and facts["no_new_privs"] == "1"
    assert facts["seccomp"] == "2"  # a seccomp filter: RuntimeDefault, containerd's profile
    assert (facts["root_writable"], facts["scratch_writable"]) == (False, True)
    assert facts["memory_limit"] == str(256 << 20)
    assert int(facts["cpu_quota"]) * 1000 // int(facts["cpu_period"]) == 500  # millicores
    # The projected ServiceAccount token, checked by the API server behind its Service's IP.
    assert facts["namespace"] == ns.name
    assert facts["service"] == ["10.0.0.1", "443"]
    assert facts["user"] == f"system:serviceaccount:{ns.name}:default"


def test_a_container_over_its_memory_limit_is_oom_killed(
    node_namespace: Namespace, built_images: dict[str, str]
) -> None:
    ns = node_namespace
    ns.apply(_pod("hog", kubelet.pod_image(built_images["transcoder"]),
                  ["python", "-c", "b = bytearray(200 << 20); print(len(b))"],
                  resources={"limits": {"cpu": "500m", "memory": "64Mi"}}))
    terminated = _state(ns.wait_pod("hog", _terminated, "the container to end"))["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "OOMKilled"), terminated


def test_exec_logs_port_forward_and_services_reach_a_running_api_pod(
    node_namespace: Namespace, built_images: dict[str, str]
) -> None:
    ns = node_namespace
    ns.apply(_pod("api", kubelet.pod_image(built_images["api"]),
                  env=[{"name": "VIDCONV_DATA_DIR", "value": "/tmp/vidconv"}],
                  ports=[{"containerPort": 5000}],
                  readinessProbe={"httpGet": {"path": "/readyz", "port": 5000},
                                  "periodSeconds": 1},
                  volumeMounts=[{"name": "scratch", "mountPath": "/tmp"}]),
             {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"},
              "spec": {"type": "NodePort", "selector": {"app": "api"},
                       "ports": [{"port": 80, "targetPort": 5000}]}})
    # Ready once the kubelet's probe of /readyz passes (the embedded mode: SQLite in /tmp).
    ns.wait_pod("api", _ready, "Ready")

    done = ns.kubectl("exec", "api", "--", "sh", "-c", "id -u; cat /proc/1/cmdline | tr '\\0' ' '")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["10001", "/opt/vidconv/bin/python /opt/vidconv/bin/vidconv "
                                                  "serve "]
    logs = ns.kubectl("logs", "api")
    assert '"GET /readyz HTTP/1.1" 200' in logs.stdout, logs.stdout  # the kubelet's probes

    port = servers.free_port()
    forward = subprocess.Popen([str(ns.node.cp.kubectl_path), "--kubeconfig", str(ns.kubeconfig),
                                "port-forward", "pod/api", f"{port}:5000"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert forward.stdout is not None and "Forwarding" in forward.stdout.readline()
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json() == {
            "status": "ok"}
    finally:
        forward.terminate()
        forward.wait(10)

    # kube-proxy: the Service's NodePort on the node's address answers from the pod.
    service = ns.http.get(f"/api/v1/namespaces/{ns.name}/services/api").json()
    node_port = service["spec"]["ports"][0]["nodePort"]
    url = f"http://{ns.node.net.node_ip}:{node_port}/healthz"
    deadline = time.monotonic() + 30
    while True:  # the EndpointSlice reaches kube-proxy a moment after the pod is Ready
        try:
            r = httpx.get(url, timeout=2)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.5)
    assert r.json() == {"status": "ok"}
