"""The Job the operator builds from the chart's values is valid and fits the chart around it.

The operator's settings come from the env the chart renders into its Deployment, so a knob the
chart forgets or misspells shows up here as a default where the value was expected.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from kubernetes_validate import utils as kv

from tests.chart.fixtures import NAMESPACE, VALUE_SETS, Rendered, env_of, find, one, parse
from tests.chart.test_render import KUBE_VERSIONS
from tests.chart.test_security import restricted_problems

pytestmark = pytest.mark.chart

CR = {
    "apiVersion": "vidconv.io/v1alpha1",
    "kind": "ConversionTask",
    "metadata": {"name": "ct-0f3a", "namespace": NAMESPACE,
                 "uid": "6a1b1f5e-4a55-4d2c-9a57-8d0a2c1e7f10"},
    "spec": {
        "taskId": "0f3a", "owner": "ana",
        "input": {"bucket": "vidconv", "key": "inputs/0f3a/clip.mp4"},
        "output": {"bucket": "vidconv", "key": "outputs/0f3a/clip.webm"},
        "format": "webm", "options": {"max_height": 720, "audio": True},
    },
}


def operator_settings(docs: list[dict[str, Any]], deployment: str = "operator") -> Any:
    """Settings as the operator (or API) pod would read them from its rendered env."""
    from vidconv.settings import Settings

    container = one(docs, "Deployment", f"vc-vidconv-{deployment}")["spec"]["template"]["spec"][
        "containers"][0]
    env: dict[str, str] = {}
    for name, value in env_of(container).items():
        if isinstance(value, str):
            env[name] = value
        elif "fieldRef" in value:
            fields = {"metadata.namespace": NAMESPACE, "metadata.name": "vc-vidconv-pod"}
            env[name] = fields[value["fieldRef"]["fieldPath"]]
        else:
            env[name] = "from-a-secret"
    return Settings.from_env(env)


@pytest.fixture(scope="module")
def jobs(rendered: Rendered) -> dict[str, dict[str, Any]]:
    from vidconv.operator.job import build_job

    return {name: build_job(CR, operator_settings(docs)) for name, docs in rendered.items()}


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("values_set", VALUE_SETS)
def test_operator_job_passes_strict_schema_validation(
    jobs: dict[str, dict[str, Any]], values_set: str, version: str
) -> None:
    kv.validate(jobs[values_set], version, strict=True)


@pytest.mark.parametrize("values_set", VALUE_SETS)
def test_operator_job_is_restricted(jobs: dict[str, dict[str, Any]], values_set: str) -> None:
    assert restricted_problems("Job", jobs[values_set]["spec"]["template"]["spec"]) == []


def test_job_takes_image_resources_and_deadlines_from_values(
    jobs: dict[str, dict[str, Any]],
) -> None:
    job = jobs["defaults"]
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "vidconv-transcoder:0.1.0"  # the chart's appVersion
    assert container["resources"] == {"requests": {"cpu": "1", "memory": "512Mi"},
                                      "limits": {"cpu": "2", "memory": "2Gi"}}
    assert pod["volumes"] == [{"name": "scratch", "emptyDir": {"sizeLimit": "10Gi"}}]
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["activeDeadlineSeconds"] == 21600
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600
    assert "suspend" not in job["spec"]
    env = env_of(container)
    assert env["VIDCONV_S3_ENDPOINT"] == "http://vc-vidconv-minio:9000"
    assert env["VIDCONV_MAX_INPUT_BYTES"] == "2147483648"

    ext = jobs["external"]
    assert ext["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "registry.example.com/vidconv-transcoder:1.2.3"
    assert env_of(ext["spec"]["template"]["spec"]["containers"][0])["VIDCONV_S3_BUCKET"] == \
        "media-out"


def test_kueue_queue_value_makes_jobs_wait_for_admission(jobs: dict[str, dict[str, Any]]) -> None:
    job = jobs["external"]
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "video"
    assert job["spec"]["suspend"] is True


@pytest.mark.parametrize("values_set", VALUE_SETS)
def test_job_runs_as_the_transcoder_account_with_the_s3_secret_the_chart_provides(
    rendered: Rendered, jobs: dict[str, dict[str, Any]], values_set: str
) -> None:
    docs = rendered[values_set]
    pod = jobs[values_set]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "vc-vidconv-transcoder"
    assert find(docs, "ServiceAccount", "vc-vidconv-transcoder")
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in pod["containers"][0]["env"]
            if "secretKeyRef" in e.get("valueFrom", {})}
    expected = VALUE_SETS[values_set].get("s3", {}).get("existingSecret") or "vc-vidconv-s3"
    assert refs == {expected}
    if expected == "vc-vidconv-s3":
        secret = one(docs, "Secret", expected)
        keys = {e["valueFrom"]["secretKeyRef"]["key"] for e in pod["containers"][0]["env"]
                if "secretKeyRef" in e.get("valueFrom", {})}
        assert keys == set(secret["data"]) == {"accessKey", "secretKey"}
        assert all(base64.b64decode(v) for v in secret["data"].values())


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op = expr["key"], expr["operator"]
        if op == "Exists" and key not in labels:
            return False
        if op == "In" and labels.get(key) not in expr["values"]:
            return False
        if op not in ("Exists", "In"):
            raise AssertionError(f"operator {op} not handled")
    return True


@pytest.mark.parametrize("values_set", ["external", "existing-secrets"])
def test_network_policy_confines_the_job_pods(
    rendered: Rendered, jobs: dict[str, dict[str, Any]], values_set: str
) -> None:
    docs = rendered[values_set]
    pod_labels = jobs[values_set]["spec"]["template"]["metadata"]["labels"]
    policy = one(docs, "NetworkPolicy", "vc-vidconv-transcoder")["spec"]
    assert selects(policy["podSelector"], pod_labels)
    # ... and only them: the API and operator pods keep their own egress.
    for name in ("api", "operator"):
        labels = one(docs, "Deployment", f"vc-vidconv-{name}")["spec"]["template"]["metadata"][
            "labels"]
        assert not selects(policy["podSelector"], labels)
    assert policy["policyTypes"] == ["Ingress", "Egress"] and policy["ingress"] == []
    ports = sorted((p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"])
    if values_set == "external":  # external S3 over HTTPS
        assert ports == [("TCP", 53), ("TCP", 443), ("TCP", 443), ("TCP", 6443), ("UDP", 53)]
    else:  # the bundled MinIO, by pod selector; the API server by CIDR
        egress = policy["egress"]
        minio = next(r for r in egress if r["ports"] == [{"protocol": "TCP", "port": 9000}])
        to_minio = minio["to"][0]["podSelector"]["matchLabels"]
        assert to_minio["app.kubernetes.io/component"] == "minio"
        api_server = next(r for r in egress if {"protocol": "TCP", "port": 6443} in r["ports"])
        assert api_server["to"] == [{"ipBlock": {"cidr": "172.18.0.2/32"}}]
        # MinIO lets the Job pods in.
        minio_policy = one(docs, "NetworkPolicy", "vc-vidconv-minio")["spec"]
        peers = minio_policy["ingress"][0]["from"]
        assert any(selects(p["podSelector"], pod_labels) for p in peers)


@pytest.mark.parametrize(("endpoint", "port"), [
    ("https://s3.eu-west-1.amazonaws.com", 443), ("http://garage.storage:3900", 3900),
    ("http://seaweedfs-s3.storage:8333/", 8333), ("http://rook-ceph-rgw-store.rook-ceph", 80),
])
def test_network_policy_lets_the_job_pods_reach_an_external_s3_on_its_port(
    chart: Any, endpoint: str, port: int
) -> None:
    values = {"minio": {"enabled": False}, "networkPolicy": {"enabled": True},
              "s3": {"external": {"endpoint": endpoint, "accessKey": "AK", "secretKey": "SK"}}}
    docs = parse(chart.render(values=values, name="vc", namespace=NAMESPACE))
    egress = one(docs, "NetworkPolicy", "vc-vidconv-transcoder")["spec"]["egress"]
    assert {"protocol": "TCP", "port": port} in egress[1]["ports"], egress


def test_kopf_serves_liveness_where_the_probe_looks(rendered: Rendered) -> None:
    from urllib.parse import urlsplit

    docs = rendered["defaults"]
    container = one(docs, "Deployment", "vc-vidconv-operator")["spec"]["template"]["spec"][
        "containers"][0]
    url = urlsplit(operator_settings(docs).operator_liveness)
    probe = container["livenessProbe"]["httpGet"]
    port = next(p["containerPort"] for p in container["ports"] if p["name"] == probe["port"])
    assert (url.hostname, url.port, url.path) == ("0.0.0.0", port, probe["path"])


@pytest.mark.parametrize("deployment", ["api", "operator"])
def test_every_vidconv_variable_the_chart_sets_is_a_setting(
    rendered: Rendered, deployment: str
) -> None:
    from dataclasses import fields

    from vidconv.settings import Settings

    known = {f"VIDCONV_{f.name.upper()}" for f in fields(Settings)}
    for docs in rendered.values():
        pod = one(docs, "Deployment", f"vc-vidconv-{deployment}")["spec"]["template"]["spec"]
        names = {n for c in pod["containers"] for n in env_of(c) if n.startswith("VIDCONV_")}
        assert names - known == set()


def test_api_runs_the_kubernetes_executor_on_s3_and_postgresql(rendered: Rendered) -> None:
    container = one(rendered["defaults"], "Deployment", "vc-vidconv-api")["spec"]["template"][
        "spec"]["containers"][0]
    env = env_of(container)
    assert env["VIDCONV_EXECUTOR"] == "kubernetes"
    assert env["VIDCONV_STORAGE"] == "s3"
    assert env["VIDCONV_HOST"] == "0.0.0.0"
    db, jwt = env["VIDCONV_DATABASE_URL"], env["VIDCONV_JWT_SECRET"]
    assert db == {"secretKeyRef": {"name": "vc-vidconv-db", "key": "url"}}
    assert jwt == {"secretKeyRef": {"name": "vc-vidconv-jwt", "key": "secret"}}
    assert env["VIDCONV_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def _api_env(rendered: Rendered, values_set: str) -> dict[str, Any]:
    pod = one(rendered[values_set], "Deployment", "vc-vidconv-api")["spec"]["template"]
    return env_of(pod["spec"]["containers"][0])


def test_webhook_deliveries_keep_the_address_rules_and_take_the_egress_proxy(
    rendered: Rendered,
) -> None:
    assert _api_env(rendered, "defaults")["VIDCONV_WEBHOOK_URLS"] == "public"
    assert "VIDCONV_WEBHOOK_PROXY" not in _api_env(rendered, "defaults")
    assert _api_env(rendered, "external")["VIDCONV_WEBHOOK_PROXY"] == "http://smokescreen.egress:4750"


def test_the_api_believes_forwarded_addresses_only_from_the_peers_named(
    rendered: Rendered,
) -> None:
    # uvicorn's own variable; without it only loopback may set X-Forwarded-For.
    assert "FORWARDED_ALLOW_IPS" not in _api_env(rendered, "defaults")
    assert _api_env(rendered, "external")["FORWARDED_ALLOW_IPS"] == "10.244.0.0/16"


@pytest.mark.parametrize("values_set", VALUE_SETS)
def test_a_task_the_api_submits_runs_with_the_deadline_from_values(
    rendered: Rendered, values_set: str
) -> None:
    import jsonschema
    import yaml

    from tests.chart.fixtures import ROOT
    from vidconv.api.executors.kubernetes import task_manifest
    from vidconv.db.models import Task
    from vidconv.operator.job import build_job

    docs = rendered[values_set]
    task = Task(id="0f3a", owner_id="u1", conversion_type="webm", options={"audio": False},
                input_key="inputs/0f3a/clip.mp4", output_key="outputs/0f3a/clip.webm")
    cr = task_manifest(task, operator_settings(docs, "api"))
    crd = yaml.safe_load((ROOT / "crds" / "conversiontasks.vidconv.io.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    jsonschema.Draft4Validator(schema).validate({"spec": cr["spec"]})
    assert cr["metadata"]["namespace"] == NAMESPACE
    cr["metadata"]["uid"] = "6a1b1f5e-4a55-4d2c-9a57-8d0a2c1e7f10"  # the API server sets it
    job = build_job(cr, operator_settings(docs))
    expected = VALUE_SETS[values_set].get("transcoder", {}).get("activeDeadlineSeconds", 21600)
    assert job["spec"]["activeDeadlineSeconds"] == expected
    bucket = VALUE_SETS[values_set].get("s3", {}).get("bucket", "vidconv")
    assert cr["spec"]["input"]["bucket"] == cr["spec"]["output"]["bucket"] == bucket
