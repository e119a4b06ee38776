"""Image fixtures: the three images built once per session (before the first test, so the build
counts against no test's timeout), each mounted once, and runc to run them.

Without root, buildah, runc or debootstrap the tests that need images skip, or fail when
``VIDCONV_TEST_REQUIRE`` names ``images``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests import servers
from tests.images import oci

LOG = Path(tempfile.gettempdir()) / "vidconv-images-build.log"  # the last build's output
_built: dict[str, str] | None = None
_failure: str | None = None


def _wanted(session: pytest.Session) -> bool:
    """Any test of the images, or of the cluster whose node runs them."""
    return any(item.get_closest_marker("images") or "built_images" in getattr(
        item, "fixturenames", ()) for item in session.items)


def _build(log: Path) -> None:
    global _built, _failure
    if _built is not None or _failure is not None:
        return
    _failure = oci.missing()
    if _failure is None:
        try:
            _built = oci.build(log)
        except RuntimeError as exc:
            _failure = str(exc)


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly or not _wanted(session):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter:
        reporter.write_line(f"building the images (make images CONTAINER_TOOL=buildah; log: {LOG})")
    _build(LOG)


@pytest.fixture(scope="session")
def built_images() -> dict[str, str]:
    """component (api, operator, transcoder) -> image name in the buildah store."""
    _build(LOG)
    if _built is None:
        servers.unavailable("images", _failure or "not built")
    assert _built is not None
    return _built


@pytest.fixture(scope="session")
def images(built_images: dict[str, str]) -> Iterator[dict[str, oci.Image]]:
    """component -> the image, mounted (its root filesystem and config)."""
    with ExitStack() as stack:
        yield {c: stack.enter_context(oci.mounted(name)) for c, name in built_images.items()}


@pytest.fixture(scope="session")
def runtime() -> Iterator[oci.Runtime]:
    rt = oci.Runtime()
    try:
        yield rt
    finally:
        rt.close()
