"""Every transcoder test runs with its own scratch dir, which must be empty afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.transcoder.helpers import transcoder_env


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "scratch"
    path.mkdir()
    yield path
    leftovers = sorted(p.name for p in path.iterdir())
    assert leftovers == [], f"the transcoder left files in scratch: {leftovers}"


@pytest.fixture
def env(scratch: Path) -> dict[str, str]:
    return transcoder_env(scratch)
