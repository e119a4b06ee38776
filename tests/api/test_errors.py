"""Even a bug answers JSON: no HTML page, no stack trace, nothing internal in the body."""

from __future__ import annotations

from sqlalchemy import text
from starlette.testclient import TestClient

from tests.api.helpers import Api
from vidconv.api.app import create_app
from vidconv.api.errors import SERVICE_STATUS
from vidconv.api.services.errors import ServiceError
from vidconv.settings import Settings


def test_an_internal_error_is_a_bare_json_500(settings: Settings) -> None:
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        api = Api(client)
        api.signup()
        with app.state.ctx.engine.begin() as conn:  # break the database under the app
            conn.execute(text("DROP TABLE tasks"))
        r = client.get("/api/tasks", headers=api.auth)
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"message": "internal server error"}
    assert "Traceback" not in r.text and "sqlite" not in r.text.lower()


def test_every_kind_of_service_error_has_its_http_status() -> None:
    kinds = set(ServiceError.__subclasses__())
    assert kinds == set(SERVICE_STATUS)
