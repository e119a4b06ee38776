"""A user's whole path on a cluster: sign up, upload, convert, `kubectl get ct`, download."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Cluster
from vidconv.resources import cr_name

pytestmark = pytest.mark.e2e

TIMEOUT = 600  # seconds for one conversion, image pulls included


def wait_for(check: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}")


def test_upload_convert_watch_and_download(
    cluster: Cluster, make_clip: Callable[..., Path], tmp_path: Path
) -> None:
    clip = make_clip(seconds=2.0)
    user = "e2e" + uuid.uuid4().hex[:8]
    with httpx.Client(base_url=cluster.url, timeout=60) as http:
        assert http.get("/readyz").status_code == 200
        signup = http.post("/api/auth/signup", json={
            "username": user, "email": f"{user}@example.com",
            "password1": "e2e-Passw0rd!", "password2": "e2e-Passw0rd!"})
        assert signup.status_code == 201, signup.text
        login = http.post("/api/auth/login", json={"username": user, "password": "e2e-Passw0rd!"})
        http.headers["Authorization"] = f"Bearer {login.json()['token']}"

        with clip.open("rb") as f:
            created = http.post("/api/tasks", files={"file": (clip.name, f, "video/mp4")},
                                data={"conversion_type": "webm"})
        assert created.status_code == 201, created.text
        task_id = created.json()["task_id"]

        # The task is a ConversionTask the cluster shows with kubectl.
        def listed() -> bool:
            cts = json.loads(cluster.kubectl("get", "conversiontasks", "-o", "json"))["items"]
            return task_id in {ct["spec"]["taskId"] for ct in cts}

        wait_for(listed, f"the ConversionTask of {task_id}", timeout=60)

        def finished() -> dict[str, Any] | None:
            task = http.get(f"/api/tasks/{task_id}").json()
            return task if task["state"] in ("SUCCESS", "FAILURE", "REVOKED") else None

        task = wait_for(finished, f"task {task_id}")
        assert task["state"] == "SUCCESS", task

        table = cluster.kubectl("get", "ct", cr_name(task_id), "-o", "wide")
        assert "webm" in table and "Succeeded" in table, table

        download = http.get("/api/download", params={"task_id": task_id})
        assert download.status_code == 200
        out = tmp_path / "out.webm"
        out.write_bytes(download.content)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=format_name:stream=codec_name",
         "-of", "json", str(out)], capture_output=True, text=True, check=True)
    info = json.loads(probe.stdout)
    assert "webm" in info["format"]["format_name"]
    assert {s["codec_name"] for s in info["streams"]} == {"vp9", "opus"}
