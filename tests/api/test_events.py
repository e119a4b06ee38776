"""GET /api/tasks/{id}/events over real HTTP: `vidconv serve` under uvicorn, read by a real SSE
client (httpx-sse), in the embedded mode (the local workers write the row the stream reads)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from httpx_sse import ServerSentEvent, connect_sse

from tests.api.helpers import DOC
from tests.live import LiveServer, StartServer
from tests.processes import transcoders

Clip = Callable[..., Path]
Event = tuple[str, str, dict[str, Any]]  # (event, id, data)


def _submit(server: LiveServer, auth: dict[str, str], clip: Path, fmt: str = "webm",
            **options: str) -> str:
    with httpx.Client(base_url=server.url, timeout=60) as http, clip.open("rb") as f:
        r = http.post("/api/tasks", headers=auth, files={"file": (clip.name, f)},
                      data={"conversion_type": fmt, **options})
    assert r.status_code == 201, r.text
    return str(r.json()["task_id"])


def _slow_task(server: LiveServer, auth: dict[str, str], make_clip: Clip) -> str:
    """40 s of 640x360 to webm at VP9's slower preset: several progress reports even on an
    idle machine (the transcoder reports once a second)."""
    return _submit(server, auth, make_clip(40.0, 640, 360), preset="quality")


def _documented(sse: ServerSentEvent) -> dict[str, Any]:
    """The event's data, once the event and its data are held to the OpenAPI document."""
    response = DOC["paths"]["/api/tasks/{task_id}/events"]["get"]["responses"]["200"]
    schema = response["content"]["text/event-stream"]["schema"]
    event = {"event": sse.event, "id": sse.id, "data": sse.data}
    validator = jsonschema.Draft202012Validator({**schema, "components": DOC["components"]})
    validator.validate(event)
    data: dict[str, Any] = json.loads(sse.data)
    [branch] = [b for b in schema["oneOf"] if b["properties"]["event"]["const"] == sse.event]
    content = branch["properties"]["data"]["contentSchema"]
    jsonschema.Draft202012Validator({**content, "components": DOC["components"]}).validate(data)
    return data


def _events(server: LiveServer, task_id: str, headers: dict[str, str]) -> Iterator[Event]:
    with httpx.Client(base_url=server.url, timeout=60) as http, connect_sse(
            http, "GET", f"/api/tasks/{task_id}/events", headers=headers) as source:
        assert source.response.status_code == 200, source.response.read()
        assert source.response.headers["content-type"].startswith("text/event-stream")
        sse: ServerSentEvent
        for sse in source.iter_sse():
            yield sse.event, sse.id, _documented(sse)


def _until_converting(server: LiveServer, task_id: str, auth: dict[str, str]) -> list[Event]:
    """The events up to the first progress report of a running ffmpeg; then the client leaves."""
    seen: list[Event] = []
    for event in _events(server, task_id, auth):
        seen.append(event)
        if event[0] == "progress" and event[2]["speed"]:
            return seen
    raise AssertionError(f"the task ended before any progress report: {seen}")


def test_the_stream_follows_a_conversion_to_its_end(
    live_server: StartServer, make_clip: Clip
) -> None:
    server = live_server()
    auth = server.account("ana")
    # 40 s of 640x360, trimmed to 30 s from second 4, at VP9's slower preset (as _slow_task).
    clip = make_clip(40.0, 640, 360)
    task_id = _submit(server, auth, clip, start="4", duration="30", preset="quality")
    seen = list(_events(server, task_id, auth))

    names = [name for name, _, _ in seen]
    assert names[0] == "state" and seen[0][2]["state"] in ("PENDING", "STARTED")
    assert names[-2:] == ["progress", "state"]  # the bar reaches 100, then the end is told
    last = seen[-1][2]
    assert last == {"task_id": task_id, "state": "SUCCESS", "progress": 100.0,
                    "result": clip.with_suffix(".webm").name, "error": None, "error_code": None}
    assert seen[-2][2]["progress"] == 100.0 and seen[-2][2]["eta_seconds"] == 0.0
    states = [data["state"] for name, _, data in seen if name == "state"]
    assert states in (["PENDING", "STARTED", "SUCCESS"], ["STARTED", "SUCCESS"])

    running = [data for name, _, data in seen
               if name == "progress" and data["speed"] and data["progress"] < 100]
    assert running, seen  # ffmpeg's reports: frames/s, x real time, time left
    values = [data["progress"] for name, _, data in seen if name == "progress"]
    assert values == sorted(values)
    assert any(data["fps"] for data in running)  # ffmpeg's first block may say fps=0
    for data in running:
        assert data["fps"] >= 0 and data["speed"] > 0
        # What is left of the 30 s asked for, at the reported speed.
        left = 30.0 * (1 - data["progress"] / 100) / data["speed"]
        assert data["eta_seconds"] == pytest.approx(left, abs=0.1)
    ids = [event_id for _, event_id, _ in seen]
    assert all(ids) and len(set(ids)) == len(ids), ids


def test_last_event_id_resumes_without_repeating_and_204_once_the_end_was_seen(
    live_server: StartServer, make_clip: Clip
) -> None:
    server = live_server()
    auth = server.account("ana")
    task_id = _slow_task(server, auth, make_clip)
    first = _until_converting(server, task_id, auth)  # the connection drops mid-conversion
    resumed = list(_events(server, task_id, {**auth, "Last-Event-ID": first[-1][1]}))

    assert resumed[-1][2]["state"] == "SUCCESS"
    assert not {event_id for _, event_id, _ in resumed} & {event_id for _, event_id, _ in first}
    told = {data["state"] for name, _, data in first if name == "state"}
    assert not [data for name, _, data in resumed if name == "state" and data["state"] in told]
    assert all(data["progress"] >= first[-1][2]["progress"]
               for name, _, data in resumed if name == "progress")

    # A client that saw the end is told there is nothing more: 204 stops an EventSource.
    with httpx.Client(base_url=server.url, timeout=30) as http:
        r = http.get(f"/api/tasks/{task_id}/events",
                     headers={**auth, "Last-Event-ID": resumed[-1][1]})
        assert r.status_code == 204 and r.content == b""
        # A fresh client of a finished task gets its end at once; an id not of ours is ignored.
        r = http.get(f"/api/tasks/{task_id}/events",
                     headers={**auth, "Last-Event-ID": "not-an-id"})
        assert r.status_code == 200
        assert r.text.count("event: ") == 2 and "event: state" in r.text


def test_a_quiet_stream_gets_heartbeats_and_ends_after_its_time_for_a_resume(
    live_server: StartServer, make_clip: Clip
) -> None:
    server = live_server({"VIDCONV_EVENT_STREAM_SECONDS": "18"})
    auth = server.account("ana")
    task_id = _slow_task(server, auth, make_clip)
    seen = _until_converting(server, task_id, auth)
    # Its transcoder and ffmpeg stopped, the task says nothing new: the stream is quiet.
    frozen = list(transcoders(task_id))
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http, http.stream(
                "GET", f"/api/tasks/{task_id}/events",
                headers={**auth, "Last-Event-ID": seen[-1][1]}) as r:
            assert r.status_code == 200
            lines = list(r.iter_lines())
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    text = "\n".join(lines)
    assert any(line.startswith(": ping") for line in lines), text  # every 15 s
    assert lines[-2:] == [": this stream ends here; reconnect with Last-Event-ID to go on", ""]
    # Reconnected, it goes on to the end.
    assert list(_events(server, task_id, auth))[-1][2]["state"] == "SUCCESS"


def test_a_task_deleted_while_followed_ends_its_stream_revoked(
    live_server: StartServer, make_clip: Clip
) -> None:
    server = live_server()
    auth = server.account("ana")
    task_id = _slow_task(server, auth, make_clip)
    with httpx.Client(base_url=server.url, timeout=60) as http, connect_sse(
            http, "GET", f"/api/tasks/{task_id}/events", headers=auth) as source:
        seen = []
        for sse in source.iter_sse():
            seen.append((sse.event, json.loads(sse.data)))
            if sse.event == "progress" and seen[-1][1]["speed"]:
                assert http.delete(f"/api/tasks/{task_id}", headers=auth).status_code == 204
    assert seen[-1][0] == "state"
    assert seen[-1][1]["state"] == "REVOKED"
    assert seen[-1][1]["result"] in ("cancelled", "deleted")


def test_owner_rules_and_the_browser_cookie(live_server: StartServer, make_clip: Clip) -> None:
    server = live_server()
    ana, bob = server.account("ana"), server.account("bob")
    task_id = _submit(server, ana, make_clip(1.0), "mp3")
    path = f"/api/tasks/{task_id}/events"
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get(path).status_code == 401
        assert http.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
        missing = http.get("/api/tasks/0123456789abcdef0123456789abcdef/events", headers=bob)
        theirs = http.get(path, headers=bob)
        assert theirs.status_code == missing.status_code == 404
        assert theirs.json() == missing.json() == {"message": "task not found"}
        assert http.post(f"{path}/session", headers=bob).status_code == 404
        assert http.post(f"{path}/session").status_code == 401

        r = http.post(f"{path}/session", headers=ana)
        assert r.status_code == 204
        cookie = r.headers["set-cookie"]
        name, _, rest = cookie.partition("=")
        token = rest.split(";")[0]
        attributes = {a.strip().split("=")[0].lower(): a.strip() for a in cookie.split(";")[1:]}
        assert name == "vidconv_events"
        assert attributes["path"] == f"Path={path}"
        assert attributes["max-age"] == "Max-Age=300"
        assert attributes["samesite"].lower() == "samesite=strict"
        assert "httponly" in attributes and "secure" not in attributes  # plain http here
        assert task_id not in token and "token" not in str(r.url)

    # An EventSource sends only the cookie: httpx's jar sends it where its Path says.
    with httpx.Client(base_url=server.url, timeout=60) as browser:
        browser.cookies.set("vidconv_events", token, domain="127.0.0.1", path=path)
        with connect_sse(browser, "GET", path) as source:
            assert source.response.status_code == 200
            end = [json.loads(e.data) for e in source.iter_sse() if e.event == "state"][-1]
        assert end["state"] in ("SUCCESS", "FAILURE")
        # The stream token opens this task's events, nothing else.
        assert browser.get(f"/api/tasks/{task_id}").status_code == 401  # not sent, and:
        stolen = {"Authorization": f"Bearer {token}"}
        assert browser.get(f"/api/tasks/{task_id}", headers=stolen).status_code == 401
        other = _submit(server, ana, make_clip(1.0), "mp3")
        r = browser.get(f"/api/tasks/{other}/events", headers={"Cookie": f"vidconv_events={token}"})
        assert r.status_code == 401
        # A login token is no stream token either.
        login = ana["Authorization"].split()[1]
        r = browser.get(path, headers={"Cookie": f"vidconv_events={login}"})
        assert r.status_code == 401
