"""`make deploy` and skaffold.yaml hand the chart values it accepts, with all three images."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.chart.fixtures import NAMESPACE, ROOT, one, parse

pytestmark = pytest.mark.chart


def deep_merge(into: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            deep_merge(into[key], value)
        else:
            into[key] = value
    return into


def images(docs: list[dict[str, Any]]) -> set[str]:
    found = set()
    for name in ("api", "operator"):
        pod = one(docs, "Deployment", f"vc-vidconv-{name}")["spec"]["template"]["spec"]
        found |= {c["image"] for c in pod["containers"]}
        env = {e["name"]: e.get("value") for c in pod["containers"] for e in c["env"]}
        if "VIDCONV_TRANSCODER_IMAGE" in env:
            found.add(env["VIDCONV_TRANSCODER_IMAGE"])
    return found


def test_make_deploy_installs_all_three_images_it_built(chart: Any, helm: Any) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "-s", "-n", "deploy", "IMAGE_TAG=t1"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    argv = shlex.split(out.replace("\\\n", " "))
    assert argv[:5] == ["helm", "upgrade", "--install", "vidconv", "charts/vidconv"]
    values: dict[str, Any] = {}
    for flag, parser in (("--set", helm.parse_set_string),
                         ("--set-string", helm.parse_set_string_values)):
        for i, arg in enumerate(argv):
            if arg == flag:
                deep_merge(values, parser(argv[i + 1]))
    chart.validate_schema(chart.merge_values(values))
    docs = parse(chart.render(values=values, name="vc", namespace=NAMESPACE))
    assert images(docs) == {"vidconv-api:t1", "vidconv-operator:t1", "vidconv-transcoder:t1"}
    assert one(docs, "Ingress", "vc-vidconv-api")["spec"]["rules"][0]["host"] == "localhost"


def test_skaffold_builds_each_dockerfile_and_deploys_the_chart_with_it(
    chart: Any, helm: Any
) -> None:
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    artifacts = {a["image"]: a["docker"]["dockerfile"] for a in config["build"]["artifacts"]}
    assert artifacts == {"vidconv-api": "api/Dockerfile",
                         "vidconv-operator": "operator/Dockerfile",
                         "vidconv-transcoder": "transcoder-image/Dockerfile"}
    release = config["deploy"]["helm"]["releases"][0]
    assert (ROOT / release["chartPath"] / "Chart.yaml").exists()
    values: dict[str, Any] = {}
    for key, template in release["setValueTemplates"].items():
        # What skaffold puts in: repository and tag of the image it just built.
        value = template.replace("{{.IMAGE_REPO_", "repo-").replace("{{.IMAGE_TAG_", "tag-")
        deep_merge(values, helm.parse_set_string_values(f"{key}={value.rstrip('}')}"))
    for key, value in release.get("setValues", {}).items():
        deep_merge(values, helm.parse_set_string(f"{key}={value}"))
    chart.validate_schema(chart.merge_values(values))
    docs = parse(chart.render(values=values, name="vc", namespace=NAMESPACE))
    assert images(docs) == {f"repo-{n}:tag-{n}" for n in
                            ("vidconv_api", "vidconv_operator", "vidconv_transcoder")}
