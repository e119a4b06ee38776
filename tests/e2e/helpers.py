"""What the end-to-end tests share: kubectl's JSON view of the release, waiting, a user."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import Cluster

TIMEOUT = 600  # seconds for one conversion, image pulls included
FINISHED = ("SUCCESS", "FAILURE", "REVOKED")


def get(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json"))


def live_pods(cluster: Cluster, component: str) -> list[dict[str, Any]]:
    items = get(cluster, "pods", "-l", f"app.kubernetes.io/component={component}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod.get("status", {}).get("conditions") or [])


def wait(check: Callable[[], Any], what: str, timeout: float = TIMEOUT,
          every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


@contextmanager
def user(cluster: Cluster) -> Iterator[httpx.Client]:
    """A signed-up, logged-in user of the release's API."""
    name = "e2e" + uuid.uuid4().hex[:8]
    with httpx.Client(base_url=cluster.url, timeout=60) as http:
        r = http.post("/api/auth/signup", json={
            "username": name, "email": f"{name}@example.com",
            "password1": "e2e-Passw0rd!", "password2": "e2e-Passw0rd!"})
        assert r.status_code == 201, r.text
        login = http.post("/api/auth/login", json={"username": name, "password": "e2e-Passw0rd!"})
        http.headers["Authorization"] = f"Bearer {login.json()['token']}"
        yield http


def submit(http: httpx.Client, clip: Path, fmt: str) -> str:
    with clip.open("rb") as f:
        r = http.post("/api/tasks", files={"file": (clip.name, f, "video/mp4")},
                      data={"conversion_type": fmt})
    assert r.status_code == 201, r.text
    return str(r.json()["task_id"])


def state(http: httpx.Client, task_id: str) -> dict[str, Any] | None:
    """The task as the API answers, or None while no API pod answers (being replaced)."""
    try:
        r = http.get(f"/api/tasks/{task_id}", timeout=10)
    except httpx.HTTPError:
        return None
    if r.status_code >= 500:
        return None
    assert r.status_code == 200, r.text
    task: dict[str, Any] = r.json()
    return task
