"""values.yaml and values.schema.json: every value documented and typed, a typo fails."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from tests.chart.fixtures import CHART, NAMESPACE

pytestmark = pytest.mark.chart

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES_TEXT = (CHART / "values.yaml").read_text()
VALUES = yaml.safe_load(VALUES_TEXT)
# Objects whose keys are names chosen by the user (maps) or Kubernetes objects passed through.
FREE_FORM = {"#/$defs/kubernetesObject"}


@pytest.mark.parametrize("typo", [
    {"api": {"replica": 3}},
    {"postgresql": {"enable": False}},
    {"transcoder": {"resources": {"requests": {"cpu": "1", "memory": "1Gi", "gpu": 1}}}},
    {"networkPolicy": {"enabled": "yes"}},
    {"kueue": {"queue": "video"}},
    {"metrics": {"serviceMonitor": {"enable": True}}},
])
def test_a_typo_in_values_fails_install_with_the_key_named(
    chart: Any, helm: Any, typo: dict[str, Any]
) -> None:
    with pytest.raises(helm.HelmValuesError) as info:
        chart.validate_schema(chart.merge_values(typo))
    assert "additional properties" in str(info.value) or "got string" in str(info.value)
    with pytest.raises(helm.HelmError):  # rendering (install) refuses the values too
        chart.render(values=typo, name="vc", namespace=NAMESPACE)
    report = helm.lint(CHART, typo, strict=True, kube_version="v1.30.0")  # and so does lint
    assert report["errors"]


def test_defaults_pass_the_schema(chart: Any) -> None:
    chart.validate_schema(chart.values)


def walk_schema(node: dict[str, Any], path: str) -> list[str]:
    """Paths of object schemas that accept keys nobody declared."""
    if "$ref" in node:
        return []
    loose = []
    if node.get("type") == "object":
        extra = node.get("additionalProperties", True)
        if "properties" in node and extra is not False:
            loose.append(path)
        if "properties" not in node and extra is True:
            loose.append(path)
        for key, sub in node.get("properties", {}).items():
            loose += walk_schema(sub, f"{path}.{key}")
        if isinstance(extra, dict):
            loose += walk_schema(extra, f"{path}.*")
    for key in ("anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(node.get(key, [])):
            loose += walk_schema(sub, f"{path}[{i}]")
    if node.get("type") == "array" and "items" in node:
        loose += walk_schema(node["items"], f"{path}[]")
    return loose


def test_every_object_in_the_schema_refuses_unknown_keys() -> None:
    loose = walk_schema(SCHEMA, "#")
    for name, sub in SCHEMA["$defs"].items():
        if f"#/$defs/{name}" not in FREE_FORM:
            loose += walk_schema(sub, f"#/$defs/{name}")
    assert loose == []


def leaf_paths(values: dict[str, Any], prefix: str = "") -> set[str]:
    paths = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        nested = isinstance(value, dict) and value
        if nested and not path.endswith(("resources", "requests", "limits")):
            paths |= leaf_paths(value, path + ".")
        else:
            paths.add(path)
    return paths


def schema_node(path: str) -> dict[str, Any] | None:
    node: dict[str, Any] = SCHEMA
    for key in path.split("."):
        while "$ref" in node:
            node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]]
        props = node.get("properties")
        if props is None or key not in props:
            return None
        node = props[key]
    return node


def test_every_value_has_a_schema_entry() -> None:
    missing = sorted(p for p in leaf_paths(VALUES) if schema_node(p) is None)
    assert missing == []


def test_every_schema_entry_is_in_values_yaml() -> None:
    # A value only the schema knows is a value nobody documented.
    def props(node: dict[str, Any], prefix: str) -> set[str]:
        out = set()
        for key, sub in node.get("properties", {}).items():
            # Security contexts mirror Kubernetes' types, which have more optional fields.
            if "properties" in sub and key not in ("requests", "limits", "podSecurityContext",
                                                  "securityContext"):
                out |= props(sub, f"{prefix}{key}.")
            else:
                out.add(f"{prefix}{key}")
        return out

    def present(path: str) -> bool:
        node: Any = VALUES
        for key in path.split("."):
            if not isinstance(node, dict) or key not in node:
                return False
            node = node[key]
        return True

    assert sorted(p for p in props(SCHEMA, "") if not present(p)) == []


KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z][A-Za-z0-9]*):(?P<rest>.*)$")


def test_every_value_is_documented_by_a_comment() -> None:
    """Each value has a comment right above it, or right above the sibling keys it follows
    without a break (minReplicas after a documented enabled), or above an enclosing group."""
    lines = VALUES_TEXT.splitlines()
    undocumented = []
    stack: list[tuple[int, str, bool]] = []  # enclosing (indent, key, documented)
    previous: tuple[int, bool] | None = None  # (indent, documented) of the key on the line above
    for i, line in enumerate(lines):
        m = KEY.match(line)
        if not m:
            previous = None
            continue
        indent, key = len(m["indent"]), m["key"]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        commented = i > 0 and lines[i - 1].strip().startswith("#")
        sibling = previous is not None and previous[0] == indent and previous[1]
        own = commented or sibling
        is_leaf = m["rest"].strip() != ""
        if is_leaf and not (own or any(d for *_, d in stack)):
            undocumented.append(".".join([k for _, k, _ in stack] + [key]))
        stack.append((indent, key, own))
        previous = (indent, own)
    assert undocumented == [], undocumented


@pytest.mark.parametrize(("values", "message"), [
    ({"postgresql": {"enabled": False}}, "database.external.url or database.external.existing"),
    ({"minio": {"enabled": False}, "s3": {"existingSecret": "my-s3"}},
     "s3.external.endpoint is required"),
    ({"minio": {"enabled": False}, "s3": {"external": {"endpoint": "https://s3.example.com"}}},
     "s3.external.accessKey (or s3.existingSecret)"),
])
def test_switching_off_a_bundled_service_without_its_replacement_says_what_is_missing(
    chart: Any, helm: Any, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        chart.render(values=values, name="vc", namespace=NAMESPACE)
