"""The CRD validates what the API accepts: formats and option ranges of vidconv.formats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from vidconv import formats, options, resources

CRD = Path(__file__).parents[2] / "crds" / "conversiontasks.vidconv.io.yaml"
KINDS = {"int": "integer", "number": "number", "bool": "boolean", "choice": "string"}


def _version() -> dict[str, Any]:
    docs = list(yaml.safe_load_all(CRD.read_text()))
    assert len(docs) == 1  # one document: the chart includes the file as it is
    [version] = docs[0]["spec"]["versions"]
    return version  # type: ignore[no-any-return]


def test_names_match_vidconv_resources() -> None:
    crd = yaml.safe_load(CRD.read_text())
    assert crd["metadata"]["name"] == f"{resources.PLURAL}.{resources.GROUP}"
    assert crd["spec"]["names"]["kind"] == resources.KIND
    assert crd["spec"]["names"]["shortNames"] == [resources.SHORT_NAME]
    assert _version()["name"] == resources.VERSION


def test_format_enum_is_the_formats_module() -> None:
    spec = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert sorted(spec["properties"]["format"]["enum"]) == formats.format_names()


def test_option_types_and_ranges_are_the_formats_module() -> None:
    spec = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    declared = spec["properties"]["options"]["properties"]
    assert set(declared) == set(options.OPTIONS)
    for key, option in options.OPTIONS.items():
        schema = declared[key]
        assert schema["type"] == KINDS[option.kind], key
        assert schema.get("minimum") == option.minimum, key
        assert schema.get("maximum") == option.maximum, key
        assert bool(schema.get("exclusiveMinimum")) == option.exclusive_minimum, key
        assert tuple(schema.get("enum", ())) == option.choices, key


def test_every_status_field_is_declared_and_phases_map_to_api_states() -> None:
    status = _version()["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert {"phase", "progress", "jobName", "startedAt", "completedAt", "attempts", "message",
            "output", "conditions"} <= set(status)
    assert set(status["phase"]["enum"]) == set(resources.PHASE_TO_STATE)
    columns = [c["name"] for c in _version()["additionalPrinterColumns"]]
    assert columns == ["Format", "Phase", "Progress", "Age", "Job"]
