"""API fixtures: the app on SQLite + local files, or on PostgreSQL + S3, behind a TestClient."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.api.helpers import Api, check_against_openapi
from vidconv.api.app import create_app
from vidconv.settings import Settings

MakeSettings = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path) -> MakeSettings:
    """Settings for the embedded mode under tmp_path; keyword arguments override fields."""

    def make(env: dict[str, str] | None = None, **overrides: object) -> Settings:
        base = {"VIDCONV_DATA_DIR": str(tmp_path / "var"), "VIDCONV_WORKERS": "1",
                "VIDCONV_LOG_LEVEL": "warning", **(env or {})}
        return replace(Settings.from_env(base), **overrides)  # type: ignore[arg-type]

    return make


def open_client(settings: Settings) -> TestClient:
    client = TestClient(create_app(settings))
    client.event_hooks["response"].append(check_against_openapi)
    return client


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    return make_settings()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with open_client(settings) as c:
        yield c


@pytest.fixture
def api(client: TestClient) -> Api:
    a = Api(client)
    a.signup()
    return a


@pytest.fixture(params=[
    "sqlite-local",
    pytest.param("postgres-s3", marks=[pytest.mark.postgres, pytest.mark.s3]),
])
def backend_settings(request: pytest.FixtureRequest, make_settings: MakeSettings) -> Settings:
    """The two backend pairs: each database and each storage is proven by one of them."""
    if request.param == "sqlite-local":
        return make_settings()
    env = {**request.getfixturevalue("s3_env"),
           "VIDCONV_DATABASE_URL": request.getfixturevalue("pg_url")}
    return make_settings(env)


@pytest.fixture
def backend_api(backend_settings: Settings) -> Iterator[Api]:
    with open_client(backend_settings) as c:
        a = Api(c)
        a.signup()
        yield a
