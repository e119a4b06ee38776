"""Shared fixtures: real PostgreSQL and MinIO servers, and small generated video clips."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import servers
from vidconv.settings import Settings
from vidconv.transcoder.tools import locate

# Fixtures of the chart (the Helm library), of the real control plane, of our images, the
# webhook receiver and `vidconv serve` as a real server, for every test tree.
pytest_plugins = ["tests.chart.fixtures", "tests.kubernetes.fixtures", "tests.images.fixtures",
                  "tests.kubernetes.realnode", "tests.e2e.local", "tests.receiver", "tests.live"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[servers.PostgresServer]:
    with servers.running("postgres", servers.postgres_server()) as server:
        yield server


@pytest.fixture
def pg_url(postgres: servers.PostgresServer) -> str:
    """URL of a fresh, empty PostgreSQL database for one test."""
    return postgres.create_database("t_" + uuid.uuid4().hex[:12])


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build MinIO before the tests (minutes, the first time only) when any selected test needs
    S3, so that the build counts against no test's timeout. A failure is reported by the tests
    that need MinIO (skip, or fail in CI)."""
    if session.config.option.collectonly:
        return
    if not any("s3" in getattr(item, "fixturenames", ()) or item.get_closest_marker("s3")
               for item in session.items):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    try:
        servers.minio_binary(reporter.write_line if reporter else None)
    except RuntimeError:
        pass


@pytest.fixture(scope="session")
def s3() -> Iterator[servers.S3Server]:
    """The session's MinIO server (shared: never stop it in a test; start your own)."""
    with servers.running("s3", servers.minio_server()) as server:
        yield server


@pytest.fixture
def s3_env(s3: servers.S3Server) -> dict[str, str]:
    """VIDCONV_* variables for S3 storage with a fresh bucket that exists."""
    bucket = "t-" + uuid.uuid4().hex[:12]
    s3.client().make_bucket(bucket)
    return {"VIDCONV_STORAGE": "s3", **s3.env(bucket)}


def ffmpeg_path() -> str:
    """The ffmpeg the transcoder picks with default settings (PATH, then imageio-ffmpeg)."""
    return locate(Settings()).ffmpeg


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def make_clip(clip_dir: Path) -> Callable[..., Path]:
    """Generate (once per session) a test clip: testsrc2 video + sine audio."""

    def make(
        seconds: float = 2.0, width: int = 320, height: int = 240, fps: int = 30,
        ext: str = "mp4", audio: bool = True, extra: tuple[str, ...] = (),
    ) -> Path:
        name = f"clip-{seconds}s-{width}x{height}-{fps}-{int(audio)}-{abs(hash(extra))}.{ext}"
        out = clip_dir / name
        if out.exists():
            return out
        cmd = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y",
               "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}"]
        if audio:
            cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
        cmd += [*extra, "-pix_fmt", "yuv420p", "-shortest", str(out)]
        subprocess.run(cmd, check=True, capture_output=True)
        return out

    return make
