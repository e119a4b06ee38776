"""Kubernetes-mode fixtures: the session's cluster (a real control plane and a real node:
``tests/kubernetes/kubelet.py``), the real operator as a ``vidconv operator`` process, and the
real API with the kubernetes executor. The transcoder Jobs' pods run the transcoder image on the
node; they reach the test session's MinIO through the node's forwarder.

Each test gets its own namespace, labelled to enforce the *restricted* Pod Security Standard, with
the chart's ServiceAccounts, Roles and RoleBindings (rendered by the Helm library) applied for real.
The operator, the API's executor and each transcoder pod call with their own ServiceAccount's token
(TokenRequest API), so the real authorizer decides; the audit log says what each one did.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from starlette.testclient import TestClient

from tests import servers
from tests.api.helpers import Api
from tests.chart.fixtures import RELEASE, env_of, one, parse
from tests.kubernetes import kubelet
from tests.kubernetes.controlplane import ControlPlane
from tests.prom import Samples, scrape
from vidconv import resources
from vidconv.settings import Settings

COMPONENTS = ("operator", "api", "transcoder")
RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding")


def paths(namespace: str) -> dict[str, str]:
    return {
        "ct": f"/apis/{resources.GROUP}/{resources.VERSION}/namespaces/{namespace}/"
              f"{resources.PLURAL}",
        "jobs": f"/apis/batch/v1/namespaces/{namespace}/jobs",
        "pods": f"/api/v1/namespaces/{namespace}/pods",
        "events": f"/api/v1/namespaces/{namespace}/events",
    }


@pytest.fixture(scope="session")
def kube(node: kubelet.Node) -> ControlPlane:
    """The control plane of the session's cluster (the ConversionTask CRD is applied)."""
    return node.cp


class Rbac:
    """The chart's RBAC objects for one namespace, and which ServiceAccount each component is."""

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.objects = [d for d in docs if d["kind"] in RBAC_KINDS]
        operator = one(docs, "Deployment", f"{RELEASE}-vidconv-operator")["spec"]["template"]
        api = one(docs, "Deployment", f"{RELEASE}-vidconv-api")["spec"]["template"]["spec"]
        pod = operator["spec"]
        # The transcoder's ServiceAccount is whatever the chart tells the operator to put on Jobs.
        self.job_service_account = str(env_of(pod["containers"][0])["VIDCONV_JOB_SERVICE_ACCOUNT"])
        self.accounts = {"operator": pod["serviceAccountName"], "api": api["serviceAccountName"],
                         "transcoder": self.job_service_account}


class Cluster:
    """One test's namespace on the real control plane, as a test sees it (blocking helpers)."""

    def __init__(self, node: kubelet.Node, namespace: str, rbac: Rbac, tmp: Path) -> None:
        self.node, self.namespace, self.rbac, self.tmp = node, namespace, rbac, tmp
        cp = self.cp = node.cp
        self.kubeconfig = cp.root / "admin.kubeconfig"
        self.paths = paths(namespace)
        self.http = httpx.Client(base_url=cp.url, timeout=30, verify=cp.admin_tls())
        self.users = {c: f"system:serviceaccount:{namespace}:{a}"
                      for c, a in rbac.accounts.items()}
        self._kubeconfigs: dict[str, Path] = {}
        self._audit_from = cp.audit_offset()
        self.versions: list[dict[str, Any]] = []  # every version of every CR seen, in order
        self._watch_http = httpx.Client(base_url=cp.url, verify=cp.admin_tls())
        self._recorder = threading.Thread(target=self._record, daemon=True)
        self._closing = threading.Event()

    # --- set-up ---

    def create(self, apply_rbac: bool = True) -> Cluster:
        """The namespace, and the chart's RBAC in it unless ``apply_rbac`` is False (a Helm
        release installs its own)."""
        labels = {"pod-security.kubernetes.io/enforce": "restricted",
                  "pod-security.kubernetes.io/enforce-version": "latest"}
        r = self.http.post("/api/v1/namespaces", json={
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": self.namespace, "labels": labels}})
        r.raise_for_status()
        if apply_rbac:
            manifest = "\n---\n".join(yaml.safe_dump(d) for d in self.rbac.objects)
            done = self.kubectl("apply", "-f", "-", input=manifest)
            assert done.returncode == 0, done.stderr
        self._recorder.start()
        return self

    def kubeconfig_for(self, component: str) -> Path:
        """A kubeconfig with a token of the component's own ServiceAccount (TokenRequest)."""
        if component not in self._kubeconfigs:
            account = self.rbac.accounts[component]
            r = self.http.post(
                f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{account}/token",
                json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                      "spec": {"expirationSeconds": 3600}})
            r.raise_for_status()
            self._kubeconfigs[component] = self.cp.kubeconfig(
                self.tmp / f"kubeconfig-{component}", account, token=r.json()["status"]["token"],
                namespace=self.namespace)
        return self._kubeconfigs[component]

    def _record(self) -> None:
        """Follow the namespace's ConversionTasks, as ``kubectl get -w`` would, until close().

        Each watch is short (the server ends it after two seconds) and the next goes on from the
        last resourceVersion, so close() stops this thread with a flag. Closing the client under
        a blocked read instead would free the socket's descriptor while the read still uses it:
        the next connection made gets that number, and this thread would read its bytes (a
        database client in the same process then waits for ever for the answer it lost).
        """
        version, seen = "", set()
        while not self._closing.is_set():
            params = {"watch": "1", "timeoutSeconds": "2", "allowWatchBookmarks": "true"}
            if version:
                params["resourceVersion"] = version
            try:
                # Its own client: an httpx connection is not to be shared between threads.
                with self._watch_http.stream("GET", self.paths["ct"], params=params,
                                             timeout=10) as r:
                    if r.status_code != 200:
                        version = ""  # e.g. 410 Gone: start again from what exists now
                        time.sleep(0.2)
                        continue
                    for line in r.iter_lines():
                        event = json.loads(line) if line else None
                        if event is None:
                            continue
                        if event["type"] == "ERROR":
                            version = ""
                            break
                        obj = event["object"]
                        version = obj["metadata"]["resourceVersion"]
                        key = (obj["metadata"].get("uid"), version)
                        if event["type"] != "BOOKMARK" and key not in seen:
                            seen.add(key)  # a fresh start lists what was seen before
                            self.versions.append(obj)
            except httpx.HTTPError:
                time.sleep(0.2)

    def history(self, task_id: str) -> list[dict[str, Any]]:
        name = resources.cr_name(task_id)
        return [v for v in self.versions if v["metadata"]["name"] == name]

    # --- reading ---

    def get(self, path: str) -> dict[str, Any] | None:
        r = self.http.get(path)
        if r.status_code == 404:
            return None
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    def items(self, path: str, **params: str) -> list[dict[str, Any]]:
        r = self.http.get(path, params=params)
        r.raise_for_status()
        return list(r.json()["items"])

    def task(self, task_id: str) -> dict[str, Any] | None:
        return self.get(f"{self.paths['ct']}/{resources.cr_name(task_id)}")

    def jobs(self) -> list[dict[str, Any]]:
        return self.items(self.paths["jobs"])

    def pods(self) -> list[dict[str, Any]]:
        return self.items(self.paths["pods"])

    def events(self, task_id: str) -> list[dict[str, Any]]:
        name = resources.cr_name(task_id)
        return [e for e in self.items(self.paths["events"])
                if e["involvedObject"]["name"] == name]

    def audit(self) -> list[dict[str, Any]]:
        """This namespace's ServiceAccounts' requests, as the API server audited them."""
        prefix = f"system:serviceaccount:{self.namespace}:"
        return [e for e in self.cp.audit(self._audit_from)
                if e["user"]["username"].startswith(prefix)]

    def denied(self) -> list[tuple[str, str, str]]:
        """(user, verb, resource) of every request the authorizer refused."""
        return [(e["user"]["username"], e["verb"], _resource(e)) for e in self.audit()
                if e.get("responseStatus", {}).get("code") == 403]

    def containers(self) -> dict[str, str]:
        """container id -> pod name, of every container this namespace's pods have started."""
        return {c["containerID"].removeprefix("containerd://"): p["metadata"]["name"]
                for p in self.pods()
                for c in (p.get("status") or {}).get("containerStatuses") or []
                if c.get("containerID")}

    def running_pids(self) -> list[int]:
        """Host PIDs of this namespace's running containers, as containerd reports them."""
        tasks = self.node.tasks()
        return [tasks[c][0] for c in self.containers() if c in tasks and tasks[c][1] == "RUNNING"]

    # --- acting ---

    def cordon(self) -> None:
        """New pods wait unscheduled (their Jobs are active, the tasks STARTED) until uncordon().
        The node is the session's: the fixture uncordons it after each test."""
        self.node.cordon()

    def uncordon(self) -> None:
        self.node.cordon(False)

    def wait(self, what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.1)

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.cp.kubectl_path), *args], env=self.kubectl_env(),
                              capture_output=True, text=True, timeout=60, **kwargs)

    def kubectl_popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([str(self.cp.kubectl_path), *args], env=self.kubectl_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def read_until(self, proc: subprocess.Popen[str], text: str,
                   timeout: float = 30) -> list[str]:
        """Lines of a streaming command until one contains ``text``."""
        import selectors

        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        buffer = ""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not sel.select(timeout=0.5):
                    continue
                chunk = os.read(fd, 65536).decode()
                if not chunk:
                    break
                buffer += chunk
                if text in buffer:
                    return buffer.splitlines()
        raise AssertionError(f"{text!r} never came: {buffer.splitlines()}")

    def kubectl_env(self) -> dict[str, str]:
        home = self.tmp / "home"
        home.mkdir(exist_ok=True)
        # The namespace comes from the context, as for a user whose context names it.
        config = self.cp.kubeconfig(self.tmp / "kubeconfig-admin", "admin",
                                    cert=self.cp.admin_cert, namespace=self.namespace)
        return {**os.environ, "KUBECONFIG": str(config), "HOME": str(home)}

    def close(self) -> None:
        self.http.delete(f"/api/v1/namespaces/{self.namespace}")
        self.http.close()
        self._closing.set()
        if self._recorder.is_alive():
            self._recorder.join(timeout=20)
        self._watch_http.close()


def _resource(event: dict[str, Any]) -> str:
    ref = event.get("objectRef") or {}
    resource = str(ref.get("resource", ""))
    return f"{resource}/{ref['subresource']}" if ref.get("subresource") else resource


@pytest.fixture
def chart_rbac(request: pytest.FixtureRequest, namespace: str) -> Rbac:
    """The chart's RBAC rendered with default values into the test's namespace (no Helm
    library, no kubernetes tests: the chart decides what each component may do)."""
    loaded = request.getfixturevalue("chart")
    return Rbac(parse(loaded.render(values={}, name=RELEASE, namespace=namespace)))


@pytest.fixture
def namespace() -> str:
    return "t-" + uuid.uuid4().hex[:10]


@pytest.fixture
def expect_denied() -> list[tuple[str, str, str]]:
    """Calls a test provokes to be refused (user, verb, resource), added by the test; any other
    403 fails it."""
    return []


@pytest.fixture
def cluster(node: kubelet.Node, namespace: str, chart_rbac: Rbac, tmp_path: Path,
            expect_denied: list[tuple[str, str, str]]) -> Iterator[Cluster]:
    c = Cluster(node, namespace, chart_rbac, tmp_path).create()
    try:
        yield c
        # As on a cluster installed from the chart: any call outside a Role is a bug, even one
        # the code shrugged off (the transcoder only logs a failed progress patch).
        assert sorted(c.denied()) == sorted(expect_denied), "calls outside the chart's RBAC"
    finally:
        c.uncordon()  # the node outlives the test
        c.close()


@pytest.fixture
def s3_secret(cluster: Cluster, s3_env: dict[str, str]) -> str:
    """The Secret the Job's container reads its S3 credentials from (as the chart creates it)."""
    name = "vidconv-s3"
    r = cluster.http.post(f"/api/v1/namespaces/{cluster.namespace}/secrets", json={
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
        "data": {
            "accessKey": base64.b64encode(s3_env["VIDCONV_S3_ACCESS_KEY"].encode()).decode(),
            "secretKey": base64.b64encode(s3_env["VIDCONV_S3_SECRET_KEY"].encode()).decode(),
        }})
    r.raise_for_status()
    return name


class Operator:
    """``vidconv operator`` as its own process: start, kill -9, start again."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_url = ""

    def start(self) -> Operator:
        port, metrics = servers.free_port(), servers.free_port()
        self.metrics_url = f"http://127.0.0.1:{metrics}/metrics"
        env = {**self.env, "VIDCONV_OPERATOR_LIVENESS": f"http://127.0.0.1:{port}/healthz",
               "VIDCONV_OPERATOR_METRICS": f"127.0.0.1:{metrics}"}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*servers.dies_with_us(), sys.executable, "-m", "vidconv.cli", "operator"], env=env,
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:  # the liveness endpoint answers once kopf runs
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the operator did not start:\n{self.log.read_text()}")
            time.sleep(0.1)

    def metrics(self) -> Samples:
        """What Prometheus would scrape from the running operator."""
        return scrape(self.metrics_url)

    def kill(self) -> None:
        """SIGKILL: no clean-up, nothing kept that a restart would need."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        servers.end(self.proc, grace=15)


@pytest.fixture
def operator_env(cluster: Cluster, pg_url: str, s3_env: dict[str, str], s3_secret: str,
                 built_images: dict[str, str]) -> dict[str, str]:
    from vidconv.db.session import upgrade

    upgrade(pg_url)  # the API migrates too; the operator must not depend on who starts first
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDCONV_")}
    return {
        **env, **s3_env,
        "VIDCONV_KUBECONFIG": str(cluster.kubeconfig_for("operator")),
        "VIDCONV_NAMESPACE": cluster.namespace,
        "VIDCONV_JOB_SERVICE_ACCOUNT": cluster.rbac.job_service_account,
        "VIDCONV_DATABASE_URL": pg_url,
        "VIDCONV_JOB_S3_SECRET": s3_secret,
        "VIDCONV_JOB_BACKOFF_LIMIT": "2",
        # The Jobs' pods reach MinIO at the node's end of the forwarder; so can the operator.
        "VIDCONV_S3_ENDPOINT": "http://" + cluster.node.expose(
            int(s3_env["VIDCONV_S3_ENDPOINT"].rsplit(":", 1)[1])),
        "VIDCONV_TRANSCODER_IMAGE": kubelet.pod_image(built_images["transcoder"]),
        "VIDCONV_TRANSCODER_IMAGE_PULL_POLICY": "Never",
        # One node of two cores runs a test's Jobs beside the other tests' pods.
        "VIDCONV_JOB_CPU_REQUEST": "100m",
        "VIDCONV_LOG_LEVEL": "info",
    }


@pytest.fixture
def operator(operator_env: dict[str, str], tmp_path: Path) -> Iterator[Operator]:
    """The operator, not yet started (tests decide when)."""
    op = Operator(operator_env, tmp_path / "operator.log")
    try:
        yield op
    finally:
        op.stop()


@pytest.fixture
def api_settings(cluster: Cluster, pg_url: str, s3_env: dict[str, str],
                 tmp_path: Path) -> Settings:
    base = Settings.from_env({**s3_env, "VIDCONV_LOG_LEVEL": "warning"})
    return replace(
        base, executor="kubernetes", database_url=pg_url, data_dir=tmp_path / "var",
        kubeconfig=str(cluster.kubeconfig_for("api")), namespace=cluster.namespace,
        jwt_secret="k8s-test-secret-" + "x" * 32,
    )


@pytest.fixture
def api(api_settings: Settings) -> Iterator[Api]:
    from vidconv.api.app import create_app

    with TestClient(create_app(api_settings)) as client:
        a = Api(client)
        a.signup()
        yield a
