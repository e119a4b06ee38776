"""charts/vidconv installed for real: `helm install`, `upgrade` and `uninstall` through the Helm
library (helm-python-sdk, the Helm Go SDK) against the real API server, with the bundled
PostgreSQL and MinIO off and the test session's servers given as external ones.

The release gets its own namespace (restricted Pod Security enforced; the chart brings its own
ServiceAccounts and RBAC) on the session's cluster with a real node: the kubelet runs the API and
operator Deployments' pods from the images built from their Dockerfiles, their readinessProbes
decide when they are Ready, and a conversion goes through the Helm-installed release: REST API
pod (through its NodePort Service) -> ConversionTask -> operator pod -> Job -> transcoder pod.
tests/e2e runs the same release as a user would on kind; these look at what the chart made.

The tests run in file order against one release: install, its pods, a conversion, an upgrade,
the uninstall. Each can also run alone (the fixture installs the release).
"""

from __future__ import annotations

import base64
import copy
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests import servers
from tests.api.helpers import Api, check_against_openapi
from tests.chart.fixtures import RELEASE, parse
from tests.e2e import local
from tests.kubernetes import kubelet
from tests.kubernetes.fixtures import Cluster, Rbac
from tests.media import ffprobe, streams
from vidconv import resources

pytestmark = [pytest.mark.kubernetes, pytest.mark.chart, pytest.mark.postgres, pytest.mark.s3]
Clip = Callable[..., Path]

FULLNAME = f"{RELEASE}-vidconv"
TIMEOUT = 180  # seconds Helm waits for the release's objects to be ready
SECRETS = [f"{FULLNAME}-db", f"{FULLNAME}-jwt", f"{FULLNAME}-s3"]
APPS, CORE, RBAC = "/apis/apps/v1", "/api/v1", "/apis/rbac.authorization.k8s.io/v1"
PLURALS = {"Deployment": f"{APPS}/namespaces/{{ns}}/deployments",
           "ReplicaSet": f"{APPS}/namespaces/{{ns}}/replicasets",
           "Service": f"{CORE}/namespaces/{{ns}}/services",
           "ServiceAccount": f"{CORE}/namespaces/{{ns}}/serviceaccounts",
           "Secret": f"{CORE}/namespaces/{{ns}}/secrets",
           "Pod": f"{CORE}/namespaces/{{ns}}/pods",
           "Role": f"{RBAC}/namespaces/{{ns}}/roles",
           "RoleBinding": f"{RBAC}/namespaces/{{ns}}/rolebindings",
           "PodDisruptionBudget": "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets"}


def release_values(node: kubelet.Node, images: dict[str, str], db_url: str,
                   s3: servers.S3Server, bucket: str) -> dict[str, Any]:
    """As the end-to-end release (external servers through the node's forwarders, a NodePort
    API), with one API replica: one pod for a test to look at."""
    values = local.release_values(node, images, db_url, s3, bucket)
    values["api"]["replicas"] = 1
    return values


@dataclass
class Release:
    cluster: Cluster
    config: Any  # helm_python.Config on the admin's kubeconfig, in the release's namespace
    chart: Any
    values: dict[str, Any]
    api_url: str
    tasks: list[str] = field(default_factory=list)  # task ids submitted through the release

    @property
    def namespace(self) -> str:
        return self.cluster.namespace

    def path(self, kind: str, name: str = "") -> str:
        base = PLURALS[kind].format(ns=self.namespace)
        return f"{base}/{name}" if name else base

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.cluster.get(self.path(kind, name))

    def names(self, kind: str, **params: str) -> list[str]:
        return sorted(o["metadata"]["name"] for o in self.cluster.items(self.path(kind), **params))

    def pods(self, component: str) -> list[dict[str, Any]]:
        return self.cluster.items(self.path("Pod"), labelSelector=",".join((
            f"app.kubernetes.io/instance={RELEASE}", f"app.kubernetes.io/component={component}")))

    def pod(self, component: str) -> dict[str, Any]:
        """The one running pod of a Deployment."""
        live = [p for p in self.pods(component) if not p["metadata"].get("deletionTimestamp")]
        assert len(live) == 1, self.diagnosis()
        return live[0]

    def manifest(self) -> list[dict[str, Any]]:
        """The objects of the release's current revision, as Helm recorded them."""
        return parse({"manifest.yaml": self.config.status(RELEASE)["manifest"]})

    def secrets(self) -> dict[str, dict[str, str]]:
        return {name: {k: base64.b64decode(v).decode()
                       for k, v in (self.get("Secret", name) or {})["data"].items()}
                for name in SECRETS}

    def exec(self, component: str, *argv: str) -> str:
        """``kubectl exec`` in the Deployment's one pod."""
        done = self.cluster.kubectl("exec", self.pod(component)["metadata"]["name"], "--", *argv)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def diagnosis(self) -> str:
        """What a failed wait leaves to read: each pod's status and its container's log."""
        lines = []
        for pod in self.cluster.items(self.path("Pod")):
            lines.append(yaml.safe_dump({pod["metadata"]["name"]: pod.get("status")}))
            lines.append(self.cluster.kubectl("logs", pod["metadata"]["name"],
                                              "--tail=40").stdout)
        return "\n".join(lines)


def _ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _env(pod: dict[str, Any]) -> dict[str, Any]:
    [container] = pod["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}


@pytest.fixture(scope="module")
def release(node: kubelet.Node, built_images: dict[str, str], helm: Any, chart: Any,
            postgres: servers.PostgresServer, s3: servers.S3Server,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    namespace = "h-" + uuid.uuid4().hex[:10]
    bucket = "t-" + uuid.uuid4().hex[:12]
    s3.client().make_bucket(bucket)
    db_url = postgres.create_database("t_" + uuid.uuid4().hex[:12])
    values = release_values(node, built_images, db_url, s3, bucket)
    rbac = Rbac(parse(chart.render(values=values, name=RELEASE, namespace=namespace)))
    # A namespace of its own, without the RBAC the other tests apply by hand: the release
    # creates its ServiceAccounts, Roles and RoleBindings (Helm refuses objects it does not own).
    cluster = Cluster(node, namespace, rbac, tmp_path_factory.mktemp("helm")).create(
        apply_rbac=False)
    config = helm.Config(kubeconfig_path=str(cluster.kubeconfig), namespace=namespace)
    r = Release(cluster, config, chart, values, "")
    try:
        try:
            config.install(chart, RELEASE, values, wait="watcher", timeout=TIMEOUT)
        except helm.HelmError as exc:
            raise AssertionError(f"helm install failed: {exc}\n{r.diagnosis()}") from exc
        service = r.get("Service", f"{FULLNAME}-api")
        assert service is not None
        r.api_url = f"http://{node.net.node_ip}:{service['spec']['ports'][0]['nodePort']}"
        local.wait_until_served(r.api_url)
        yield r
    finally:
        cluster.uncordon()
        config.uninstall(RELEASE, ignore_not_found=True, wait="watcher", timeout=TIMEOUT)
        # The operator is gone: nothing would remove its finalizer from what is left.
        for ct in cluster.items(cluster.paths["ct"]):
            cluster.http.patch(
                f"{cluster.paths['ct']}/{ct['metadata']['name']}",
                headers={"Content-Type": "application/merge-patch+json"},
                json={"metadata": {"finalizers": None}})
        config.close()
        cluster.close()


def test_install_creates_what_the_chart_promises(release: Release) -> None:
    status = release.config.status(RELEASE)
    assert (status["revision"], status["status"]) == (1, "deployed")
    [first] = release.config.history(RELEASE)
    assert (first["revision"], first["status"]) == (1, "deployed")
    assert release.config.get_values(RELEASE) == release.values

    manifest = release.manifest()
    kinds = sorted({(d["kind"], d["metadata"]["name"]) for d in manifest})
    assert kinds == sorted([
        ("Deployment", f"{FULLNAME}-api"), ("Deployment", f"{FULLNAME}-operator"),
        ("PodDisruptionBudget", f"{FULLNAME}-api"),
        *[("Role", f"{FULLNAME}-{c}") for c in ("api", "operator", "transcoder")],
        *[("RoleBinding", f"{FULLNAME}-{c}") for c in ("api", "operator", "transcoder")],
        *[("Secret", s) for s in SECRETS],
        ("Service", f"{FULLNAME}-api"), ("Service", f"{FULLNAME}-operator"),
        *[("ServiceAccount", f"{FULLNAME}-{c}") for c in ("api", "operator", "transcoder")],
    ])  # no PostgreSQL or MinIO: they are external here
    for doc in manifest:  # each one is in the cluster, owned by the release
        live = release.get(doc["kind"], doc["metadata"]["name"])
        assert live is not None, f"{doc['kind']} {doc['metadata']['name']} was not created"
        meta = live["metadata"]
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert meta["annotations"]["meta.helm.sh/release-name"] == RELEASE
        assert meta["annotations"]["meta.helm.sh/release-namespace"] == release.namespace

    # The CRD comes from the chart's crds/ (never templated, never in the manifest).
    crd = release.cluster.get(
        f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
        f"{resources.PLURAL}.{resources.GROUP}")
    assert crd is not None and any(c["type"] == "Established" and c["status"] == "True"
                                   for c in crd["status"]["conditions"])

    # The Secrets hold what was given for the external servers, and a generated JWT secret.
    secrets = release.secrets()
    assert secrets[f"{FULLNAME}-db"] == {"url": release.values["database"]["external"]["url"]}
    external = release.values["s3"]["external"]
    assert secrets[f"{FULLNAME}-s3"] == {"accessKey": external["accessKey"],
                                         "secretKey": external["secretKey"]}
    assert len(secrets[f"{FULLNAME}-jwt"]["secret"]) == 32


def test_the_api_and_operator_pods_run_and_become_ready(release: Release) -> None:
    for component, command in (("api", ["vidconv", "serve"]),
                               ("operator", ["vidconv", "operator"])):
        deployment = release.get("Deployment", f"{FULLNAME}-{component}")
        assert deployment is not None
        status = deployment["status"]
        assert status.get("readyReplicas") == status.get("availableReplicas") == 1, status
        pod = release.pod(component)
        assert _ready(pod) and pod["status"]["phase"] == "Running"
        assert pod["spec"]["nodeName"] == "vidconv-node"
        assert pod["spec"]["serviceAccountName"] == f"{FULLNAME}-{component}"
        # Admitted under enforce=restricted, and run by the kubelet from the values' image.
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        image = release.values[component]["image"]
        [container] = pod["status"]["containerStatuses"]
        assert container["image"].endswith(f"{image['repository']}:{image['tag']}")
        assert "running" in container["state"] and container["restartCount"] == 0
        # What runs in it is the image's command, as the user the image names.
        argv = [a.rsplit("/", 1)[-1] for a in
                release.exec(component, "cat", "/proc/1/cmdline").split("\0") if a]
        assert argv[-len(command):] == command, argv
        uid = [line.split()[1:] for line in release.exec(
            component, "cat", "/proc/1/status").splitlines() if line.startswith("Uid:")]
        assert uid == [["10001"] * 4]
    # Ready because their readinessProbes passed: the API's /readyz (database and S3 reachable)
    # and kopf's /healthz (its loop runs), on the ports the chart gave them; each serves its
    # metrics on its port "metrics", as seen from inside the pod.
    for component, path, port, metric in (
            ("api", "/readyz", 5000, "vidconv_tasks"),
            ("operator", "/healthz", 8080, "vidconv_operator_jobs_created_total")):
        [container] = release.pod(component)["spec"]["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == path
        assert container["ports"][0]["containerPort"] == port
        [metrics_port] = [p["containerPort"] for p in container["ports"] if p["name"] == "metrics"]
        fetch = ("import sys, urllib.request as u; "
                 "print(u.urlopen(sys.argv[1], timeout=10).read().decode())")
        assert release.exec(component, "python", "-c", fetch,
                            f"http://127.0.0.1:{port}{path}").strip()
        metrics = release.exec(component, "python", "-c", fetch,
                               f"http://127.0.0.1:{metrics_port}/metrics")
        assert f"\n{metric}" in metrics


def _phases(cluster: Cluster, task_id: str) -> list[str]:
    """The CR's phases in the order the server stored them, repeats folded."""
    seen: list[str] = []
    for version in cluster.history(task_id):
        phase = (version.get("status") or {}).get("phase") or "Pending"
        if not seen or seen[-1] != phase:
            seen.append(phase)
    return seen


def test_a_rest_conversion_goes_through_the_release(
    release: Release, make_clip: Clip, tmp_path: Path
) -> None:
    cluster = release.cluster
    with httpx.Client(base_url=release.api_url, timeout=60,
                      event_hooks={"response": [check_against_openapi]}) as http:
        # The helper was written for a TestClient; any httpx client does.
        api = Api(http)  # type: ignore[arg-type]
        api.signup()
        # The operator's container is frozen (the cgroup freezer, as `ctr tasks pause`) while
        # the task is created: PENDING for sure.
        [operator] = [c for c, pod in cluster.containers().items()
                      if pod == release.pod("operator")["metadata"]["name"]]
        cluster.node.pause(operator)
        try:
            task_id = api.submit(make_clip(1.0), "webm")
            release.tasks.append(task_id)
            assert api.task(task_id)["state"] == "PENDING"
            cr = cluster.task(task_id)
            assert cr is not None and cr["spec"]["format"] == "webm"
            # The node is cordoned: the transcoder's pod waits, the task is STARTED for sure.
            cluster.cordon()
            cluster.node.resume(operator)
            cluster.wait("STARTED", lambda: api.task(task_id)["state"] == "STARTED")
            [job] = cluster.jobs()
            assert job["metadata"]["name"] == resources.job_name(resources.cr_name(task_id))
            [pod] = cluster.items(cluster.paths["pods"],
                                  labelSelector=f"job-name={job['metadata']['name']}")
            spec = pod["spec"]
            assert spec["serviceAccountName"] == f"{FULLNAME}-transcoder"
            [container] = spec["containers"]
            image = release.values["transcoder"]["image"]
            assert container["image"] == f"{image['repository']}:{image['tag']}"
            assert container["imagePullPolicy"] == "IfNotPresent"
            assert container["command"][:3] == ["python", "-m", "vidconv.transcoder"]
        finally:
            if cluster.node.tasks()[operator][1] == "PAUSED":
                cluster.node.resume(operator)
            cluster.uncordon()
        task = api.wait(task_id, timeout=120)
        assert task["state"] == "SUCCESS", task
        assert task["output_duration"] == pytest.approx(1.0, abs=0.2)

        r = http.get("/api/download", params={"task_id": task_id}, headers=api.auth)
        assert r.status_code == 200
        out = tmp_path / "out.webm"
        out.write_bytes(r.content)
    info = ffprobe(out)
    assert "webm" in info["format"]["format_name"]
    assert [s["codec_name"] for s in streams(info, "video")] == ["vp9"]
    assert [s["codec_name"] for s in streams(info, "audio")] == ["opus"]
    assert float(info["format"]["duration"]) == pytest.approx(1.0, abs=0.2)

    done = cluster.get(f"{cluster.paths['pods']}/{pod['metadata']['name']}")
    assert done is not None and done["status"]["phase"] == "Succeeded"
    assert _phases(cluster, task_id) == ["Pending", "Running", "Succeeded"]
    # Every call of the release's pods stayed inside the chart's Roles.
    assert cluster.denied() == []


def test_an_upgrade_rolls_out_the_operator_and_keeps_the_secrets(
    release: Release, make_clip: Clip
) -> None:
    before = release.config.status(RELEASE)["revision"]
    secrets = release.secrets()
    operator, api = release.pod("operator"), release.pod("api")
    assert _env(operator)["VIDCONV_JOB_BACKOFF_LIMIT"] == "2"
    values = copy.deepcopy(release.values)
    values["transcoder"]["backoffLimit"] = 4
    try:
        release.config.upgrade(release.chart, RELEASE, values, wait="watcher", timeout=TIMEOUT)
    except Exception as exc:
        raise AssertionError(f"helm upgrade failed: {exc}\n{release.diagnosis()}") from exc
    release.values = values

    status = release.config.status(RELEASE)
    assert (status["revision"], status["status"]) == (before + 1, "deployed")
    history = {h["revision"]: h["status"] for h in release.config.history(RELEASE)}
    assert history[before] == "superseded" and history[before + 1] == "deployed"
    assert release.config.get_values(RELEASE) == values

    # Recreate: the old operator pod is gone, a new one runs with the new setting.
    new = release.pod("operator")
    assert new["metadata"]["uid"] != operator["metadata"]["uid"] and _ready(new)
    assert _env(new)["VIDCONV_JOB_BACKOFF_LIMIT"] == "4"
    # What the running operator was given, read in its pod.
    environ = release.exec("operator", "cat", "/proc/1/environ").split("\0")
    assert "VIDCONV_JOB_BACKOFF_LIMIT=4" in environ
    # The API's pod template did not change: its pod stays.
    assert release.pod("api")["metadata"]["uid"] == api["metadata"]["uid"]
    # Generated once, kept on upgrade (the chart's `lookup`).
    assert release.secrets() == secrets

    # The new operator puts the new limit on the next Job.
    with httpx.Client(base_url=release.api_url, timeout=60) as http:
        client = Api(http)  # type: ignore[arg-type]
        client.signup()
        task_id = client.submit(make_clip(1.0), "mp3")
        release.tasks.append(task_id)
        assert client.wait(task_id, timeout=120)["state"] == "SUCCESS"
    job = release.cluster.get(
        f"{release.cluster.paths['jobs']}/{resources.job_name(resources.cr_name(task_id))}")
    assert job is not None and job["spec"]["backoffLimit"] == 4
    assert release.cluster.denied() == []


def test_uninstall_removes_the_release_and_keeps_what_the_readme_says(release: Release) -> None:
    cluster = release.cluster
    manifest = release.manifest()
    containers = [c for c, pod in cluster.containers().items()
                  if pod.startswith(f"{FULLNAME}-api") or pod.startswith(f"{FULLNAME}-operator")]
    assert containers
    release.config.uninstall(RELEASE, wait="watcher", timeout=TIMEOUT)

    kept = [(d["kind"], d["metadata"]["name"]) for d in manifest
            if (d["metadata"].get("annotations") or {}).get("helm.sh/resource-policy") == "keep"]
    assert sorted(kept) == [("Secret", s) for s in SECRETS]
    for doc in manifest:
        key = (doc["kind"], doc["metadata"]["name"])
        assert (release.get(*key) is not None) == (key in kept), key
    # The Deployments' ReplicaSets and pods go with them, and the pods' processes end.
    cluster.wait("the pods gone", lambda: not [
        p for p in cluster.items(release.path("Pod"))
        if p["metadata"]["labels"].get("app.kubernetes.io/instance") == RELEASE])
    assert release.names("ReplicaSet") == []
    # The kubelet stopped their containers (stopped ones stay listed until its garbage
    # collection, as tasks no more).
    cluster.wait("their containers stopped", lambda: not set(containers) & {
        c for c, (_, status) in cluster.node.tasks().items() if status == "RUNNING"})
    # Helm's own record of the release is gone too: the namespace keeps exactly the Secrets.
    assert release.names("Secret") == SECRETS
    with pytest.raises(Exception, match="not found"):
        release.config.status(RELEASE)

    # The CRD stays, and so do the conversions: they are not the release's.
    assert cluster.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                       f"{resources.PLURAL}.{resources.GROUP}") is not None
    tasks = sorted(t["metadata"]["name"] for t in cluster.items(cluster.paths["ct"]))
    assert tasks == sorted(resources.cr_name(t) for t in release.tasks)
    if tasks:
        # Each keeps the operator's finalizer, and no operator is left to remove it: a delete
        # now leaves the task Terminating (the README says to delete them before uninstalling).
        r = cluster.http.delete(f"{cluster.paths['ct']}/{tasks[0]}")
        assert r.status_code == 200, r.text
        left = cluster.get(f"{cluster.paths['ct']}/{tasks[0]}")
        assert left is not None and left["metadata"]["deletionTimestamp"]
        assert left["metadata"]["finalizers"] == [resources.FINALIZER]
