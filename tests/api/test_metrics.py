"""/metrics and JSON logs of a real `vidconv serve` (uvicorn, its own process) while tasks run.

One server per module, with ``VIDCONV_LOG_FORMAT=json``: a conversion runs through it once,
and the tests read what it left in /metrics and in the log.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import live
from tests.api.helpers import PASSWORD
from tests.prom import Samples, scrape

Clip = Callable[..., Path]


def login(http: httpx.Client) -> dict[str, str]:
    name = "m" + uuid.uuid4().hex[:10]
    r = http.post("/api/auth/signup", json={"username": name, "email": f"{name}@example.com",
                                            "password1": PASSWORD, "password2": PASSWORD})
    assert r.status_code == 201, r.text
    token = http.post("/api/auth/login", json={"username": name, "password": PASSWORD})
    return {"Authorization": f"Bearer {token.json()['token']}"}


def submit(http: httpx.Client, auth: dict[str, str], clip: Path, fmt: str) -> str:
    with clip.open("rb") as f:
        r = http.post("/api/tasks", headers=auth, files={"file": (clip.name, f)},
                      data={"conversion_type": fmt})
    assert r.status_code == 201, r.text
    return str(r.json()["task_id"])


def wait(http: httpx.Client, auth: dict[str, str], task_id: str, polls: list[int]) -> str:
    deadline = time.monotonic() + 120
    while True:
        state = str(http.get(f"/api/tasks/{task_id}", headers=auth).json()["state"])
        polls.append(1)
        if state in ("SUCCESS", "FAILURE", "REVOKED"):
            return state
        assert time.monotonic() < deadline, f"task {task_id} stuck in {state}"
        time.sleep(0.1)


@dataclass
class Run:
    server: live.LiveServer
    task_id: str
    clip: Path
    before: Samples
    after: Samples
    polls: int
    stray: str
    log: str


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, make_clip: Clip) -> Iterator[Run]:
    """One webm conversion through a JSON-logging server, with /metrics before and after."""
    clip = make_clip(2.0)
    data = tmp_path_factory.mktemp("metrics") / "var"
    server = live.start(data, {"VIDCONV_LOG_FORMAT": "json"})
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            auth = login(http)
            before = scrape(f"{server.url}/metrics")
            task_id = submit(http, auth, clip, "webm")
            polls: list[int] = []
            assert wait(http, auth, task_id, polls) == "SUCCESS"
            stray = f"/no/such/{uuid.uuid4().hex}"
            assert http.get(stray).status_code == 404
            after = scrape(f"{server.url}/metrics")
    finally:
        log = server.stop()
    yield Run(server, task_id, clip, before, after, len(polls), stray, log)


def test_a_conversion_moves_the_task_gauge_and_the_conversion_histograms(run: Run) -> None:
    before, after = run.before, run.after
    assert before.value("vidconv_tasks", state="SUCCESS", format="webm") == 0
    assert after.value("vidconv_tasks", state="SUCCESS", format="webm") == 1
    # Every state and format is a series, at 0 when nothing is in it.
    assert after.get("vidconv_tasks", state="FAILURE", format="mp3") == 0
    assert after.get("vidconv_database_up") == 1

    count = "vidconv_conversion_duration_seconds_count"
    assert before.value(count, format="webm", state="SUCCESS") == 0
    assert after.value(count, format="webm", state="SUCCESS") == 1
    seconds = after.value("vidconv_conversion_duration_seconds_sum", format="webm",
                          state="SUCCESS")
    assert seconds > 0
    # The +Inf bucket holds every observation; some finite bucket holds this one too.
    assert after.value("vidconv_conversion_duration_seconds_bucket", format="webm",
                       state="SUCCESS", le="+Inf") == 1
    assert after.value("vidconv_conversion_realtime_ratio_count", format="webm") == 1
    # x real time: the 2 s clip over the conversion's wall-clock seconds.
    ratio = after.value("vidconv_conversion_realtime_ratio_sum", format="webm")
    assert ratio == pytest.approx(2.0 / seconds, rel=0.05)
    # Nothing waits or runs once the task has ended.
    assert after.get("vidconv_queued_conversions") == 0
    assert after.get("vidconv_running_conversions") == 0
    assert after.get("vidconv_workers") == 1


def test_upload_bytes_count_the_file_received(run: Run) -> None:
    assert run.before.value("vidconv_upload_bytes_total") == 0
    assert run.after.value("vidconv_upload_bytes_total") == run.clip.stat().st_size
    assert run.after.value("vidconv_uploads_total") == 1


def test_http_requests_are_labelled_by_route_template_never_by_raw_path(run: Run) -> None:
    after = run.after
    requests = "vidconv_http_requests_total"
    assert after.value(requests, method="POST", route="/api/tasks", status="201") == 1
    assert after.value(requests, method="GET", route="/api/tasks/{task_id}",
                       status="200") == run.polls
    assert after.value(requests, method="GET", route="<unmatched>", status="404") == 1
    assert after.value("vidconv_http_request_duration_seconds_count", method="GET",
                       route="/api/tasks/{task_id}") == run.polls
    routes = after.label_values(requests, "route")
    assert routes <= {"/api/auth/signup", "/api/auth/login", "/api/tasks",
                      "/api/tasks/{task_id}", "/metrics", "<unmatched>"}, routes
    assert run.task_id not in after.text and run.stray not in after.text


def test_json_logs_are_one_object_a_line_and_carry_the_task_id(run: Run) -> None:
    lines = [line for line in run.log.splitlines() if line.strip()]
    records: list[dict[str, Any]] = [json.loads(line) for line in lines]  # each line parses
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    assert any(r["message"] == "Application startup complete." for r in records)
    ours = [r for r in records if r.get("task_id") == run.task_id]
    # The executor's line about the end, and the access log of the POST that made the task
    # and of the task's own route.
    end = [r for r in ours if r["logger"] == "vidconv.executor"]
    assert len(end) == 1 and "SUCCESS, webm in" in end[0]["message"], ours
    access = [r for r in ours if r["logger"] == "uvicorn.access"]
    assert {(r["method"], r["path"], r["status"]) for r in access} == {
        ("POST", "/api/tasks", 201), ("GET", f"/api/tasks/{run.task_id}", 200)}
    # A request about no task carries none.
    signup = [r for r in records if r.get("path") == "/api/auth/signup"]
    assert signup and all("task_id" not in r for r in signup)


def test_queue_depth_and_running_conversions_while_a_transcoder_is_held(
    tmp_path: Path, make_clip: Clip
) -> None:
    if not Path("/proc/self/stat").exists():
        pytest.skip("holds the transcoder with SIGSTOP, found through /proc")
    clip = make_clip(6.0)
    with live.running(tmp_path / "var") as server, \
            httpx.Client(base_url=server.url, timeout=30) as http:
        auth = login(http)
        first = submit(http, auth, clip, "webm")
        lease = server.data / "run" / f"{first}.json"
        deadline = time.monotonic() + 60
        while not lease.exists():  # the transcoder runs from the moment its lease exists
            assert time.monotonic() < deadline, "no transcoder started"
            time.sleep(0.01)
        pid = int(json.loads(lease.read_text())["pid"])
        os.kill(pid, signal.SIGSTOP)
        try:
            second = submit(http, auth, clip, "webm")  # one worker: this one waits
            held = scrape(f"{server.url}/metrics")
        finally:
            os.kill(pid, signal.SIGCONT)
        assert held.get("vidconv_running_conversions") == 1
        assert held.get("vidconv_queued_conversions") == 1
        assert held.value("vidconv_tasks", state="STARTED", format="webm") == 1
        assert held.value("vidconv_tasks", state="PENDING", format="webm") == 1
        for task_id in (first, second):
            assert wait(http, auth, task_id, []) == "SUCCESS"
        done = scrape(f"{server.url}/metrics")
    assert done.get("vidconv_running_conversions") == 0
    assert done.get("vidconv_queued_conversions") == 0
    assert done.value("vidconv_tasks", state="SUCCESS", format="webm") == 2
    assert done.value("vidconv_conversion_duration_seconds_count", format="webm",
                      state="SUCCESS") == 2


def test_with_a_metrics_address_the_metrics_leave_the_api_port_for_their_own(
    tmp_path: Path,
) -> None:
    from tests.servers import free_port

    port = free_port()
    metrics = f"http://127.0.0.1:{port}/metrics"
    with live.running(tmp_path / "var", {"VIDCONV_METRICS_ADDRESS": f"127.0.0.1:{port}"}) as server:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            # What an Ingress to the API routes: no metrics there any more.
            assert http.get("/metrics").status_code == 404
            assert http.get("/healthz").status_code == 200
        samples = scrape(metrics)
        assert samples.get("vidconv_database_up") == 1
        # The same registry: the API port's requests are counted on the metrics port.
        requests = "vidconv_http_requests_total"
        assert samples.value(requests, method="GET", route="<unmatched>", status="404") == 1
        assert samples.value(requests, method="GET", route="/healthz", status="200") >= 1
    # The listener ends with the server.
    with pytest.raises(httpx.ConnectError):
        httpx.get(metrics, timeout=5)
