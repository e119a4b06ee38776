"""Kubernetes-mode fixtures: the emulated API server with a kubelet, the real operator as a
``vidconv operator`` process, and the real API with the kubernetes executor.

Everything talks over HTTP as in a cluster: API -> emulator (creates the CR), operator ->
emulator (watches, creates the Job), kubelet -> emulator (runs the Job), transcoder -> moto S3 and
emulator (progress), operator -> PostgreSQL (the task row the API serves).
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from tests import servers
from tests.api.helpers import Api
from tests.chart.conftest import RELEASE, chart, env_of, helm, one, parse  # noqa: F401
from tests.kubernetes import rbac
from vidconv import resources
from vidconv.settings import Settings

# (chart and helm above are the chart tests' fixtures: imported so that pytest finds them here.)
try:
    from tests.kubernetes.emulator import EmulatorThread
    from tests.kubernetes.kubelet import Kubelet
except ImportError as exc:  # kmock missing
    EmulatorThread = Kubelet = None  # type: ignore[assignment,misc]
    _IMPORT_ERROR = str(exc)

NAMESPACE = "default"
CT_PATH = f"/apis/{resources.GROUP}/{resources.VERSION}/namespaces/{NAMESPACE}/{resources.PLURAL}"
JOBS_PATH = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
PODS_PATH = f"/api/v1/namespaces/{NAMESPACE}/pods"
EVENTS_PATH = f"/api/v1/namespaces/{NAMESPACE}/events"


# Callers by token. The kubelet (with the job controller and garbage collector the fixtures play)
# is the control plane, and the test itself acts as cluster admin: both exempt from RBAC.
ADMIN, CONTROL_PLANE = "kubernetes-admin", "system:kube-controller-manager"
TOKENS = {"admin-token": ADMIN, "kubelet-token": CONTROL_PLANE}
COMPONENTS = ("operator", "api", "transcoder")
USAGE = rbac.Usage()  # what each identity did over the whole session (summary at the end)


class Rbac:
    """The chart's Roles for this namespace, and who each vidconv component is."""

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.policy = rbac.Policy.from_objects(docs)
        deployment = one(docs, "Deployment", f"{RELEASE}-vidconv-operator")
        pod = deployment["spec"]["template"]["spec"]
        # The transcoder's ServiceAccount is whatever the chart tells the operator to put on Jobs.
        self.job_service_account = str(env_of(pod["containers"][0])["VIDCONV_JOB_SERVICE_ACCOUNT"])
        api = one(docs, "Deployment", f"{RELEASE}-vidconv-api")["spec"]["template"]["spec"]
        accounts = {"operator": pod["serviceAccountName"], "api": api["serviceAccountName"],
                    "transcoder": self.job_service_account}
        self.users = {c: rbac.service_account(NAMESPACE, a) for c, a in accounts.items()}
        self.tokens = {**TOKENS, **{f"{c}-token": u for c, u in self.users.items()}}


@pytest.fixture(scope="session")
def chart_rbac(request: pytest.FixtureRequest) -> Rbac:
    """RBAC as the chart renders it with default values into the emulator's namespace (the
    chart tests' Helm library fixtures: no Helm library, no kubernetes tests)."""
    loaded = request.getfixturevalue("chart")
    return Rbac(parse(loaded.render(values={}, name=RELEASE, namespace=NAMESPACE)))


@pytest.fixture
def rbac_mode() -> str:
    """enforce: a call outside the caller's Role gets 403; record: it is only noted."""
    return "enforce"


class Cluster:
    """The emulator plus its kubelet, as a test sees them (blocking helpers)."""

    def __init__(self, thread: EmulatorThread, kubelet: Kubelet, kubeconfig: Path,
                 rbac: Rbac) -> None:
        self.thread, self.kubelet, self.kubeconfig = thread, kubelet, kubeconfig
        self.rbac = rbac
        self.http = httpx.Client(base_url=thread.url, timeout=10,
                                 headers={"Authorization": "Bearer admin-token"})

    @property
    def auth(self) -> rbac.Authorizer:
        assert self.thread.authorizer is not None
        return self.thread.authorizer

    def kubeconfig_for(self, component: str) -> Path:
        """A kubeconfig with the component's own token (its ServiceAccount)."""
        path = self.kubeconfig.with_name(f"kubeconfig-{component}")
        if not path.exists():
            self.thread.write_kubeconfig(path, NAMESPACE, token=f"{component}-token")
        return path

    @property
    def url(self) -> str:
        return self.thread.url

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
        return self.get(f"{CT_PATH}/{resources.cr_name(task_id)}")

    def jobs(self) -> list[dict[str, Any]]:
        return self.items(JOBS_PATH)

    def pods(self) -> list[dict[str, Any]]:
        return self.items(PODS_PATH)

    def events(self, task_id: str) -> list[dict[str, Any]]:
        name = resources.cr_name(task_id)
        return [e for e in self.items(EVENTS_PATH) if e["involvedObject"]["name"] == name]

    def history(self, task_id: str) -> list[dict[str, Any]]:
        """Every version the emulator stored of the task's CR (who patched what, in order)."""
        key = (resources.API_VERSION + "/" + resources.PLURAL, NAMESPACE,
               resources.cr_name(task_id))
        versions = self.thread.emulator.objects[key].history
        return [dict(v.raw) if v is not None else {} for v in versions]

    def freeze(self) -> None:
        self.kubelet.freeze = True

    def thaw(self) -> None:
        self.thread.call(self.kubelet.thaw())

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
        if shutil.which("kubectl") is None:
            servers.unavailable("kubernetes", "kubectl is not on PATH")
        return subprocess.run(["kubectl", *args], env=self.kubectl_env(), capture_output=True,
                              text=True, timeout=30, **kwargs)

    def kubectl_popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(["kubectl", *args], env=self.kubectl_env(),
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
        home = self.kubeconfig.parent / "home"
        home.mkdir(exist_ok=True)
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(home)}


@pytest.fixture
def cluster(tmp_path: Path, chart_rbac: Rbac, rbac_mode: str) -> Iterator[Cluster]:
    if EmulatorThread is None:
        servers.unavailable("kubernetes", f"kmock is not installed: {_IMPORT_ERROR}")
    authorizer = rbac.Authorizer(chart_rbac.policy, chart_rbac.tokens,
                                 exempt={ADMIN, CONTROL_PLANE}, enforce=rbac_mode == "enforce")
    with EmulatorThread(authorizer) as thread:
        # A pod's API calls carry its ServiceAccount (the transcoder sends no token here).
        api_url = f"{thread.url}{rbac.SA_PREFIX}$(SERVICE_ACCOUNT)"
        kubelet = Kubelet(thread.url, {"VIDCONV_KUBE_API": api_url}, token="kubelet-token")
        thread.call(kubelet.start())
        # kubectl sends no token over plain HTTP: the admin is named in the server's path.
        kubeconfig = thread.write_kubeconfig(tmp_path / "kubeconfig", NAMESPACE, "admin-token",
                                             rbac.USER_PREFIX + ADMIN)
        c = Cluster(thread, kubelet, kubeconfig, chart_rbac)
        try:
            yield c
        finally:
            c.http.close()
            thread.call(kubelet.stop())
            USAGE.add(authorizer)
    # As on a cluster installed from the chart: any call outside a Role is a bug, even one
    # the code shrugged off (the transcoder only logs a failed progress patch).
    assert not authorizer.denied, f"calls outside the chart's RBAC: {authorizer.denied}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if USAGE.calls:
        terminalreporter.write_sep("-", "RBAC: what each vidconv identity used of its Role")
        for line in USAGE.report():
            terminalreporter.write_line(line)


@pytest.fixture
def s3_secret(cluster: Cluster, s3_env: dict[str, str]) -> str:
    """The Secret the Job's container reads its S3 credentials from (as the chart creates it)."""
    name = "vidconv-s3"
    r = cluster.http.post(f"/api/v1/namespaces/{NAMESPACE}/secrets", json={
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

    def start(self) -> Operator:
        port = servers.free_port()
        env = {**self.env, "VIDCONV_OPERATOR_LIVENESS": f"http://127.0.0.1:{port}/healthz"}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vidconv.cli", "operator"], env=env,
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

    def kill(self) -> None:
        """SIGKILL: no clean-up, nothing kept that a restart would need."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def operator_env(cluster: Cluster, pg_url: str, s3_env: dict[str, str],
                 s3_secret: str) -> dict[str, str]:
    from vidconv.db.session import upgrade

    upgrade(pg_url)  # the API migrates too; the operator must not depend on who starts first
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDCONV_")}
    return {
        **env, **s3_env,
        "VIDCONV_KUBECONFIG": str(cluster.kubeconfig_for("operator")),
        "VIDCONV_NAMESPACE": NAMESPACE,
        "VIDCONV_JOB_SERVICE_ACCOUNT": cluster.rbac.job_service_account,
        "VIDCONV_DATABASE_URL": pg_url,
        "VIDCONV_JOB_S3_SECRET": s3_secret,
        "VIDCONV_JOB_BACKOFF_LIMIT": "2",
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
        kubeconfig=str(cluster.kubeconfig_for("api")), namespace=NAMESPACE,
        jwt_secret="k8s-test-secret-" + "x" * 32,
    )


@pytest.fixture
def api(api_settings: Settings) -> Iterator[Api]:
    from vidconv.api.app import create_app

    with TestClient(create_app(api_settings)) as client:
        a = Api(client)
        a.signup()
        yield a
