"""The event stream in the Kubernetes mode: two API replicas (`vidconv serve`, real uvicorn) on
one PostgreSQL, the real operator and control plane. The transcoder pod patches its progress
into the ConversionTask, the operator mirrors the CR into the task row, and either replica's
stream follows that row: no sticky sessions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from tests.kubernetes.fixtures import Cluster, Operator
from tests.live import LiveServer, StartServer

pytestmark = [pytest.mark.kubernetes, pytest.mark.postgres, pytest.mark.s3]
Clip = Callable[..., Path]


def _events(server: LiveServer, task_id: str, headers: dict[str, str],
            stop: Callable[[str, dict[str, Any]], bool] | None = None
            ) -> list[tuple[str, str, dict[str, Any]]]:
    seen = []
    with httpx.Client(base_url=server.url, timeout=120) as http, connect_sse(
            http, "GET", f"/api/tasks/{task_id}/events", headers=headers) as source:
        assert source.response.status_code == 200
        for sse in source.iter_sse():
            if not sse.data:  # a heartbeat comment (an EventSource dispatches nothing for it)
                continue
            seen.append((sse.event, sse.id, json.loads(sse.data)))
            if stop is not None and stop(sse.event, seen[-1][2]):
                break
    return seen


def test_either_replica_streams_a_conversion_the_operator_mirrors(
    cluster: Cluster, operator: Operator, live_server: StartServer, pg_url: str,
    s3_env: dict[str, str], make_clip: Clip,
) -> None:
    env = {**s3_env, "VIDCONV_EXECUTOR": "kubernetes", "VIDCONV_DATABASE_URL": pg_url,
           "VIDCONV_KUBECONFIG": str(cluster.kubeconfig_for("api")),
           "VIDCONV_NAMESPACE": cluster.namespace, "VIDCONV_JWT_SECRET": "k8s-" + "x" * 40}
    one, two = live_server(env), live_server(env)
    auth = one.account("ana")
    # 40 s of 360p at VP9's slower preset: progress comes through the CR even on an idle
    # machine (the transcoder patches it about once a second).
    clip = make_clip(40.0, 640, 360)
    with httpx.Client(base_url=one.url, timeout=60) as http, clip.open("rb") as f:
        r = http.post("/api/tasks", headers=auth, files={"file": (clip.name, f)},
                      data={"conversion_type": "webm", "preset": "quality"})
    assert r.status_code == 201, r.text
    task_id = r.json()["task_id"]

    operator.start()
    # The other replica follows it until the transcoder's progress has come through the CR.
    first = _events(two, task_id, auth, lambda name, data: name == "progress" and bool(
        data["speed"]) and data["progress"] < 100)
    assert first[0][0] == "state" and first[0][2]["state"] in ("PENDING", "STARTED")
    running = first[-1][2]
    assert running["fps"] >= 0 and running["speed"] > 0
    assert running["eta_seconds"] == pytest.approx(
        40.0 * (1 - running["progress"] / 100) / running["speed"], abs=0.1)

    # The first replica goes on from there to the end, repeating nothing.
    rest = _events(one, task_id, {**auth, "Last-Event-ID": first[-1][1]})
    assert [name for name, _, _ in rest][-2:] == ["progress", "state"]
    assert rest[-1][2]["state"] == "SUCCESS" and rest[-1][2]["result"].endswith(".webm")
    assert rest[-2][2]["progress"] == 100.0
    assert not {i for _, i, _ in rest} & {i for _, i, _ in first}
    told = {d["state"] for n, _, d in first if n == "state"}
    assert not [d for n, _, d in rest if n == "state" and d["state"] in told]

    # What the stream told came from the CR the transcoder patched.
    patched = [v["status"] for v in cluster.history(task_id)
               if (v.get("status") or {}).get("speed")]
    assert patched and all(s["inputDuration"] == pytest.approx(40.0, abs=0.1) for s in patched)
    assert running["speed"] in [s["speed"] for s in patched]
