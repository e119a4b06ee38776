"""The chart loads, lints strictly and renders valid objects with every switch flipped."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_validate import utils as kv

from tests.chart.fixtures import CHART, NAMESPACE, VALUE_SETS, Rendered, env_of, find, one

pytestmark = pytest.mark.chart

# The oldest Kubernetes the chart is tested for, and the newest kubernetes-validate knows.
KUBE_VERSIONS = ["1.30", kv.latest_version()]
# Kinds of CRDs that Kubernetes' own schemas do not know (tests/chart/test_metrics.py checks them).
NOT_BUILT_IN = {"ServiceMonitor"}


@pytest.mark.parametrize("values_set", VALUE_SETS)
def test_lint_is_clean_in_strict_mode_for_kubernetes_1_30(helm: Any, values_set: str) -> None:
    report = helm.lint(CHART, VALUE_SETS[values_set], strict=True, kube_version="v1.30.0",
                       namespace=NAMESPACE)
    # Severity 1 is info ("icon is recommended"); warnings (2) and errors (3) fail strict lint.
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("values_set", VALUE_SETS)
def test_every_rendered_object_passes_strict_schema_validation(
    rendered: Rendered, values_set: str, version: str
) -> None:
    docs = rendered[values_set]
    assert docs, "the chart rendered nothing"
    errors = []
    for doc in docs:
        if doc["kind"] in NOT_BUILT_IN:
            continue
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:
            where = f"{doc['kind']}/{doc['metadata']['name']}"
            errors.append(f"{where}: {exc.message} at {list(exc.path)}")
    assert errors == []


def test_defaults_render_a_self_contained_install(rendered: Rendered) -> None:
    docs = rendered["defaults"]
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == ["Deployment", "PodDisruptionBudget", "Role", "RoleBinding", "Secret",
                     "Service", "ServiceAccount", "StatefulSet"]
    assert {d["metadata"]["name"] for d in find(docs, "StatefulSet")} == {
        "vc-vidconv-postgresql", "vc-vidconv-minio"}
    assert {d["metadata"]["name"] for d in find(docs, "Secret")} == {
        "vc-vidconv-db", "vc-vidconv-s3", "vc-vidconv-jwt"}
    assert all(d["metadata"]["namespace"] == NAMESPACE for d in docs)


def test_switches_turn_their_objects_on_and_off(rendered: Rendered) -> None:
    ext = rendered["external"]
    assert find(ext, "StatefulSet") == []  # external DB and S3: no PostgreSQL, no MinIO
    assert len(find(ext, "Ingress")) == 1
    assert len(find(ext, "HorizontalPodAutoscaler")) == 1
    assert "replicas" not in one(ext, "Deployment", "vc-vidconv-api")["spec"]  # the HPA owns it
    assert [p["metadata"]["name"] for p in find(ext, "NetworkPolicy")] == ["vc-vidconv-transcoder"]
    for name in ("defaults", "existing-secrets"):
        assert find(rendered[name], "HorizontalPodAutoscaler") == []
    assert find(rendered["defaults"], "Ingress") == []
    assert find(rendered["defaults"], "NetworkPolicy") == []


def test_direct_transfers_sign_for_where_clients_reach_s3(rendered: Rendered) -> None:
    def api_env(name: str) -> dict[str, Any]:
        api = one(rendered[name], "Deployment", "vc-vidconv-api")
        return env_of(api["spec"]["template"]["spec"]["containers"][0])

    assert api_env("defaults")["VIDCONV_DIRECT_TRANSFERS"] == "off"
    assert "VIDCONV_S3_PUBLIC_ENDPOINT" not in api_env("defaults")
    external = api_env("external")  # an external S3: its own endpoint
    assert (external["VIDCONV_DIRECT_TRANSFERS"], external["VIDCONV_S3_PUBLIC_ENDPOINT"],
            external["VIDCONV_DIRECT_URL_SECONDS"]) == ("on", "https://s3.example.com", "600")
    direct = rendered["direct"]  # the bundled MinIO, through an Ingress of its own
    assert (api_env("direct")["VIDCONV_S3_PUBLIC_ENDPOINT"],
            api_env("direct")["VIDCONV_DIRECT_URL_SECONDS"]) == ("https://s3.example.com", "300")
    ingress = one(direct, "Ingress", "vc-vidconv-minio")
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "s3.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": "vc-vidconv-minio", "port": {"name": "s3"}}
    assert ingress["spec"]["tls"] == [{"secretName": "s3-tls", "hosts": ["s3.example.com"]}]
    assert ingress["metadata"]["annotations"]["example.com/a"] == "b"
    assert ingress["metadata"]["annotations"][
        "nginx.ingress.kubernetes.io/proxy-request-buffering"] == "off"
    policy = one(direct, "NetworkPolicy", "vc-vidconv-minio")
    assert policy["spec"]["ingress"][-1] == {
        "ports": [{"protocol": "TCP", "port": 9000}],
        "from": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "ingress-nginx"}}}]}
    assert find(rendered["defaults"], "Ingress") == []


def test_direct_transfers_with_a_minio_clients_cannot_reach_fail_with_the_reason(
    chart: Any, helm: Any
) -> None:
    with pytest.raises(helm.HelmError, match="minio.ingress.enabled"):
        chart.render(values={"directTransfers": {"enabled": True}}, name="vc",
                     namespace=NAMESPACE)


def test_existing_secrets_are_used_and_none_generated(
    rendered: Rendered,
) -> None:
    docs = rendered["existing-secrets"]
    assert find(docs, "Secret") == []
    api = one(docs, "Deployment", "vc-vidconv-api")["spec"]["template"]["spec"]["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in api["env"]
            if "secretKeyRef" in e.get("valueFrom", {})}
    assert refs["VIDCONV_DATABASE_URL"] == {"name": "my-db", "key": "dsn"}
    assert refs["VIDCONV_S3_ACCESS_KEY"] == {"name": "my-s3", "key": "accessKey"}
    assert refs["VIDCONV_JWT_SECRET"] == {"name": "my-jwt", "key": "secret"}


def test_generated_secrets_survive_uninstall_and_hold_a_working_database_url(
    rendered: Rendered,
) -> None:
    import base64

    secrets = {s["metadata"]["name"]: s for s in find(rendered["defaults"], "Secret")}
    for secret in secrets.values():
        assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    db = {k: base64.b64decode(v).decode() for k, v in secrets["vc-vidconv-db"]["data"].items()}
    assert len(db["password"]) == 32
    assert db["url"] == f"postgresql+psycopg://vidconv:{db['password']}@vc-vidconv-postgresql:5432/vidconv"
    s3 = {k: base64.b64decode(v).decode() for k, v in secrets["vc-vidconv-s3"]["data"].items()}
    assert sorted(s3) == ["accessKey", "secretKey"] and all(len(v) == 32 for v in s3.values())


def test_ingress_lets_through_uploads_up_to_the_api_limit(
    rendered: Rendered,
) -> None:
    limit = VALUE_SETS["external"]["limits"]["maxUploadBytes"]
    ingress = find(rendered["external"], "Ingress")[0]
    size = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert size.endswith("m")
    allowed = int(size[:-1]) * 1024 * 1024
    # At least the limit, plus at most 2 MiB of slack for the multipart framing.
    assert limit <= allowed <= limit + 2 * 1024 * 1024
    api = one(rendered["external"], "Deployment", "vc-vidconv-api")
    env = env_of(api["spec"]["template"]["spec"]["containers"][0])
    assert env["VIDCONV_MAX_UPLOAD_BYTES"] == str(limit)
    tls = [{"secretName": "vidconv-tls", "hosts": ["vidconv.example.com"]}]
    assert ingress["spec"]["tls"] == tls
    assert ingress["spec"]["ingressClassName"] == "nginx"


def test_notes_tell_how_to_reach_the_api_and_watch_tasks(chart: Any) -> None:
    notes = chart.render(values=VALUE_SETS["external"], name="vc", namespace=NAMESPACE)
    text = next(v for k, v in notes.items() if k.endswith("NOTES.txt"))
    assert "URL=https://vidconv.example.com" in text
    assert f"kubectl --namespace {NAMESPACE} get conversiontasks" in text
    assert 'Kueue LocalQueue "video"' in text
