"""A TestClient that speaks the seed's API and holds every answer to the OpenAPI document."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jsonschema
from starlette.testclient import TestClient

from vidconv.api.openapi import build_openapi

DOC = build_openapi()
PASSWORD = "correct horse 9"


def _path_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{[^}]+\}", r"[^/]+", template) + "$")


_PATHS = [(_path_regex(t), t) for t in DOC["paths"]]


def check_against_openapi(response: httpx.Response) -> None:
    """Fail unless the status is documented for the operation and a JSON body fits its schema."""
    request = response.request
    path = request.url.path
    if path.startswith(("/docs/static/", "/web/")):  # static files, not operations
        return
    templates = [t for regex, t in _PATHS if regex.match(path)]
    method = request.method.lower()
    if not templates or method not in DOC["paths"][templates[0]]:
        assert response.status_code in (404, 405), f"{method.upper()} {path} is undocumented"
        return
    operation = DOC["paths"][templates[0]][method]
    status = str(response.status_code)
    assert status in operation["responses"], (
        f"{method.upper()} {path} answered {status}, undocumented: {response.text[:300]}"
    )
    spec = operation["responses"][status]
    if "$ref" in spec:
        spec = DOC["components"]["responses"][spec["$ref"].rsplit("/", 1)[-1]]
    content_type = response.headers.get("content-type", "").split(";")[0]
    if method == "head":  # no body to check
        return
    if content_type != "application/json":
        assert "application/json" not in spec.get("content", {}) or not response.content
        return
    response.read()
    schema = spec["content"]["application/json"].get("schema")
    if schema is not None:
        resolver_doc = {**schema, "components": DOC["components"]}
        jsonschema.Draft202012Validator(resolver_doc).validate(response.json())


class Api:
    """The seed's calls, with the checks every test repeats."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.token = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def signup(self, username: str | None = None) -> str:
        username = username or "u" + uuid.uuid4().hex[:10]
        r = self.client.post("/api/auth/signup", json={
            "username": username, "email": f"{username}@example.com",
            "password1": PASSWORD, "password2": PASSWORD})
        assert r.status_code == 201, r.text
        r = self.client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
        assert r.status_code == 200, r.text
        self.token = r.json()["token"]
        return str(r.json()["id"])

    def upload(self, path: Path, fmt: str = "mp4", **fields: str) -> httpx.Response:
        with path.open("rb") as f:
            return self.client.post(
                "/api/tasks", headers=self.auth,
                files={"file": (path.name, f, "application/octet-stream")},
                data={"conversion_type": fmt, **fields},
            )

    def submit(self, path: Path, fmt: str = "mp4", **fields: str) -> str:
        r = self.upload(path, fmt, **fields)
        assert r.status_code == 201, r.text
        return str(r.json()["task_id"])

    def task(self, task_id: str) -> dict[str, Any]:
        r = self.client.get(f"/api/tasks/{task_id}", headers=self.auth)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    def wait(self, task_id: str, states: tuple[str, ...] = ("SUCCESS", "FAILURE", "REVOKED"),
             timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            task = self.task(task_id)
            if task["state"] in states:
                return task
            if time.monotonic() > deadline:
                raise AssertionError(f"task stuck: {task}")
            time.sleep(0.1)
