"""The operator's /metrics and JSON logs, with the real operator on the real control plane.

Each test reads what a Prometheus would scrape from ``VIDCONV_OPERATOR_METRICS`` while the
operator turns REST tasks into Jobs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.api.helpers import Api
from tests.kubernetes.fixtures import Cluster, Operator

pytestmark = [pytest.mark.kubernetes, pytest.mark.postgres, pytest.mark.s3]
Clip = Callable[..., Path]


def test_conversions_ending_move_the_counters_and_histograms_and_the_logs_are_json(
    cluster: Cluster, operator: Operator, api: Api, make_clip: Clip
) -> None:
    operator.env["VIDCONV_LOG_FORMAT"] = "json"
    operator.start()
    before = operator.metrics()
    assert before.get("vidconv_operator_conversions_ended_total", phase="Succeeded") == 0
    assert before.get("vidconv_operator_jobs_created_total") == 0

    good = api.submit(make_clip(1.0), "webm")
    assert api.wait(good)["state"] == "SUCCESS"
    r = api.client.post("/api/tasks", headers=api.auth,
                        files={"file": ("notes.mp4", b"these are not frames\n" * 50)},
                        data={"conversion_type": "mp4"})
    bad = r.json()["task_id"]
    assert api.wait(bad)["state"] == "FAILURE"

    ended = "vidconv_operator_conversions_ended_total"
    after = cluster.wait("both ends counted", lambda: (
        m if (m := operator.metrics()).value(ended, phase="Failed") == 1 else None))
    assert after.get(ended, phase="Succeeded") == 1
    assert after.get(ended, phase="Cancelled") == 0
    assert after.get("vidconv_operator_jobs_created_total") == 2
    duration = "vidconv_conversion_duration_seconds_count"
    assert after.get(duration, format="webm", state="SUCCESS") == 1
    assert after.get(duration, format="mp4", state="FAILURE") == 1
    # A success's speed: the clip's second over the Job's (whole-second) run time.
    assert after.get("vidconv_conversion_realtime_ratio_count", format="webm") == 1
    assert after.value("vidconv_conversion_realtime_ratio_sum", format="webm") > 0
    assert after.get("vidconv_operator_db_mirror_retries_total") == 0
    errors = "vidconv_operator_reconcile_errors_total"
    assert after.label_values(errors, "handler") >= {"ensure_job", "follow_job",
                                                     "mirror_to_database"}
    assert all(s.value == 0 for s in after.samples if s.name == errors)

    operator.stop()
    records = [json.loads(line) for line in operator.log.read_text().splitlines() if line]
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    for task_id in (good, bad):
        mine = [r["message"] for r in records if r.get("task_id") == task_id]
        assert any(m.startswith("created Job ") for m in mine), mine


def test_a_job_the_api_server_refuses_counts_as_a_reconcile_error(
    cluster: Cluster, operator: Operator, api: Api, make_clip: Clip
) -> None:
    # Not a quantity: the API server refuses every Job built with it (422).
    operator.env["VIDCONV_JOB_CPU_REQUEST"] = "lots"
    operator.start()
    task_id = api.submit(make_clip(1.0), "mp3")
    errors = cluster.wait("a reconcile error", lambda: operator.metrics().value(
        "vidconv_operator_reconcile_errors_total", handler="ensure_job"))
    assert errors >= 1
    metrics = operator.metrics()
    assert metrics.get("vidconv_operator_jobs_created_total") == 0
    assert api.task(task_id)["state"] == "PENDING"
    assert cluster.jobs() == []
