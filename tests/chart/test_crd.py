"""The chart ships the one CRD in crds/ (a symlink the Helm loader follows), kept on uninstall."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes_validate import utils as kv

from tests.chart.fixtures import CHART, ROOT
from tests.chart.test_job import CR
from tests.chart.test_render import KUBE_VERSIONS

pytestmark = pytest.mark.chart

SOURCE = ROOT / "crds" / "conversiontasks.vidconv.io.yaml"
LINK = CHART / "crds" / "conversiontasks.vidconv.io.yaml"


def test_chart_crd_is_a_link_to_the_one_source_not_a_copy() -> None:
    assert LINK.is_symlink()
    assert LINK.resolve() == SOURCE.resolve()
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == [LINK.name]


def test_helm_loads_the_crd_content_from_crds_dir(chart: Any) -> None:
    crds = chart.crds
    assert [c["name"] for c in crds] == ["crds/conversiontasks.vidconv.io.yaml"]
    assert crds[0]["data"] == SOURCE.read_text()


def test_packaged_chart_carries_the_crd_content(chart: Any, tmp_path: Path, helm: Any) -> None:
    # `helm package` (what a user installs from a repository) resolves the link into a file.
    archive = chart.save(tmp_path)
    with helm.Chart.load(archive) as packaged:
        assert packaged.crds[0]["data"] == SOURCE.read_text()


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_crd_passes_the_apiextensions_schema(version: str) -> None:
    kv.validate(yaml.safe_load(SOURCE.read_text()), version, strict=True)


def test_the_crd_is_never_templated_so_uninstall_keeps_it(chart: Any) -> None:
    # Helm installs crds/ before the templates and never upgrades or deletes it.
    assert not any("CustomResourceDefinition" in t["data"] for t in chart.templates)


def test_the_sample_task_used_by_the_job_tests_is_valid_for_the_crd() -> None:
    crd = yaml.safe_load(SOURCE.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    # OpenAPI v3.0 schemas use draft-4 keywords (boolean exclusiveMinimum).
    jsonschema.Draft4Validator(schema).validate({k: v for k, v in CR.items() if k != "metadata"})
