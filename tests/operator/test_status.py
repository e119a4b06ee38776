"""What a Job's state means for its task: the conditions Kubernetes sets, early and final."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vidconv.operator.status import job_outcome, parse_termination_message, status_patch

RESULT = {"event": "result", "status": "ok", "output": "s3://vc/outputs/t/a.webm",
          "size": 1234, "duration": 2.0, "video_codec": "vp9", "audio_codec": "opus"}


def _job(conditions: list[tuple[str, str]] = (), **status: Any) -> dict[str, Any]:  # type: ignore[assignment]
    return {"spec": {"activeDeadlineSeconds": 600}, "status": {
        "startTime": "2026-01-01T00:00:00Z", **status,
        "conditions": [{"type": t, "status": "True", "reason": r, "message": f"{t} {r}",
                        "lastTransitionTime": "2026-01-01T00:01:00Z"} for t, r in conditions]}}


def _pod(code: int, message: str, finished: str = "2026-01-01T00:00:59Z") -> dict[str, Any]:
    return {"status": {"containerStatuses": [{"name": "transcoder", "state": {"terminated": {
        "exitCode": code, "message": message, "finishedAt": finished}}}]}}


def test_an_active_job_is_running() -> None:
    outcome = job_outcome(_job(active=1))
    assert outcome.phase == "Running" and outcome.attempts == 1


def test_a_suspended_job_waits_in_the_queue() -> None:
    job = _job()
    job["spec"]["suspend"] = True
    assert job_outcome(job).phase == "Pending"


@pytest.mark.parametrize("conditions", [
    [("SuccessCriteriaMet", "CompletionsReached")],  # early: pods may still terminate
    [("SuccessCriteriaMet", "CompletionsReached"), ("Complete", "CompletionsReached")],
    [("Complete", "")],  # clusters before 1.31 set only the final one
])
def test_success_early_or_final_carries_the_pods_result(conditions: list[Any]) -> None:
    pods = [_pod(1, json.dumps({"status": "error", "error": "flaky"}), "2026-01-01T00:00:10Z"),
            _pod(0, json.dumps(RESULT))]
    outcome = job_outcome(_job(conditions, succeeded=1, failed=1), pods)
    assert outcome.phase == "Succeeded" and outcome.attempts == 2
    patch = status_patch(outcome, {"phase": "Running"})
    assert patch["phase"] == "Succeeded" and patch["progress"] == 100
    assert patch["output"] == {"key": "outputs/t/a.webm", "size": 1234, "duration": 2.0,
                               "videoCodec": "vp9", "audioCodec": "opus"}


@pytest.mark.parametrize(("reason", "expected", "text"), [
    ("PodFailurePolicy", "BadInput", "The input is not a video."),
    ("BackoffLimitExceeded", "RetriesExhausted", "gave up after 3 attempts: storage down"),
    ("DeadlineExceeded", "DeadlineExceeded", "did not finish within 600 seconds"),
])
@pytest.mark.parametrize("final", [False, True])
def test_failures_say_why(reason: str, expected: str, text: str, final: bool) -> None:
    error = "The input is not a video." if reason == "PodFailurePolicy" else "storage down"
    conditions = [("FailureTarget", reason)] + ([("Failed", reason)] if final else [])
    pods = [_pod(2 if expected == "BadInput" else 1,
                 json.dumps({"status": "error", "error": error, "code": "x"}))]
    outcome = job_outcome(_job(conditions, failed=3 if expected != "BadInput" else 1), pods)
    assert outcome.phase == "Failed" and outcome.reason == expected
    assert text in outcome.message
    patch = status_patch(outcome, {"phase": "Running"})
    assert patch["reason"] == expected and patch["conditions"][0]["type"] == "Failed"
    # The code the API reports: the transcoder's own, as in the embedded mode.
    assert patch["errorCode"] == ("timeout" if expected == "DeadlineExceeded" else "x")


def test_ffmpegs_words_travel_to_the_status_for_operators() -> None:
    said = "[h264 @ 0x5] Invalid NAL unit size\nError while decoding stream #0:0"
    pods = [_pod(2, json.dumps({"status": "error", "error": "The input is damaged.",
                                "code": "corrupt_input", "detail": said}))]
    outcome = job_outcome(_job([("FailureTarget", "PodFailurePolicy")], failed=1), pods)
    patch = status_patch(outcome, {"phase": "Running"})
    assert patch["message"] == "The input is damaged." and patch["errorDetail"] == said


def test_attempts_count_the_pods_the_job_controller_has_not_counted_yet() -> None:
    # As a real Job controller reports it: FailureTarget while the last failed pod is uncounted.
    job = _job([("FailureTarget", "BackoffLimitExceeded")], failed=2,
               uncountedTerminatedPods={"failed": ["uid-3"]})
    outcome = job_outcome(job, [_pod(1, json.dumps({"status": "error", "error": "down"}))])
    assert outcome.attempts == 3
    assert outcome.message.startswith("gave up after 3 attempts")


def test_a_phase_never_moves_back() -> None:
    assert status_patch(job_outcome(_job(active=1)), {"phase": "Succeeded"}) == {}
    assert status_patch(job_outcome(_job()), {"phase": "Running"}) == {}
    assert status_patch(job_outcome(_job(active=1)), {"phase": "Running", "attempts": 1,
                                                      "startedAt": "x"}) == {}


def test_a_log_tail_as_termination_message_still_yields_the_result() -> None:
    tail = 'Traceback...\n{"event":"progress","progress":50}\n' + json.dumps(
        {"event": "result", "status": "error", "error": "boom"})
    parsed, killed = parse_termination_message(tail), parse_termination_message("Killed")
    assert parsed is not None and killed is not None
    assert (parsed.ok, parsed.error) == (False, "boom")
    assert (killed.ok, killed.error) == (False, "Killed")
    assert parse_termination_message("") is None


def test_a_progress_report_goes_through_the_cr_status_into_the_row(tmp_path: Any) -> None:
    """The transcoder's report as it patches the CR (status_fields), mirrored by the operator:
    the row then has what the API's event stream tells (progress, fps, speed, the ETA)."""
    from vidconv.api.services.progress import Snapshot
    from vidconv.contract import Progress
    from vidconv.db.models import Task, User
    from vidconv.db.session import make_engine, make_sessionmaker, upgrade
    from vidconv.operator.status import mirror_status
    from vidconv.transcoder.report import status_fields

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    sessions = make_sessionmaker(make_engine(url))
    with sessions.begin() as s:
        user = User(username="ana", email="ana@example.com", password_hash="x")
        s.add(user)
        s.flush()
        task = Task(owner_id=user.id, conversion_type="webm", input_key="i", output_key="o",
                    options={"duration": 10})
        s.add(task)
        s.flush()
        task_id = task.id

    event = Progress(42.5, fps=61.234, speed=2.5, out_time=4.25, input_duration=30.0)
    status = {"phase": "Running", "attempts": 1, **status_fields(event.to_json())}
    assert status == {"phase": "Running", "attempts": 1, "progress": 42.5, "fps": 61.23,
                      "speed": 2.5, "inputDuration": 30.0}
    mirror_status(sessions, task_id, status)
    with sessions() as s:
        row = s.get(Task, task_id)
        assert row is not None
        live = Snapshot.of(row)
    assert (live.state, live.progress, live.fps, live.speed) == ("STARTED", 42.5, 61.23, 2.5)
    assert live.eta_seconds == 2.3  # 57.5 % of the 10 s asked for, at 2.5x
    # Unknown values (ffmpeg has not said yet) are nulls: a merge patch removes them.
    assert status_fields({"progress": 0, "fps": None, "speed": float("nan")}) == {
        "progress": 0.0, "fps": None, "speed": None, "inputDuration": None}
