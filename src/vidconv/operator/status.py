"""What a Job's state means for its ConversionTask, and mirroring that into the task row.

``job_outcome`` is pure: Job + its pods in, phase/reason/message/result out. The operator
writes the outcome into the CR's status; ``mirror_status`` then copies the CR's status into the
database through ``vidconv.db.updates`` (idempotent, never moves a finished task back).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from vidconv.contract import Phase, Result
from vidconv.db import updates
from vidconv.operator.job import CONTAINER

TERMINAL = tuple(p.value for p in Phase if p.finished)
RANK = {"": 0, Phase.PENDING: 1, Phase.RUNNING: 2, Phase.SUCCEEDED: 3, Phase.FAILED: 3,
        Phase.CANCELLED: 3}

# Job condition reason -> what the user is told (status.reason and the task's error code).
FAILURE_REASONS = {
    "PodFailurePolicy": "BadInput",
    "BackoffLimitExceeded": "RetriesExhausted",
    "DeadlineExceeded": "DeadlineExceeded",
}


@dataclass
class Outcome:
    phase: Phase
    reason: str = ""
    message: str = ""
    code: str = ""  # the machine-readable error code, as the local executor records it
    result: Result = field(default_factory=lambda: Result(ok=False))
    attempts: int = 0
    started_at: str | None = None
    completed_at: str | None = None

    @property
    def finished(self) -> bool:
        return self.phase.finished


def _condition(job: Mapping[str, Any], *types: str) -> Mapping[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in types and cond.get("status") == "True":
            return cond  # type: ignore[no-any-return]
    return None


def parse_termination_message(text: str | None) -> Result | None:
    """The transcoder's result; with FallbackToLogsOnError it is the log tail's last result."""
    if not text:
        return None
    for line in reversed(text.strip().splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and ("status" in data or data.get("event") == "result"):
            return Result.from_json(data)
    return Result.failure("", text.strip()[-500:])


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == CONTAINER:
            term = (cs.get("state") or {}).get("terminated")
            return term
    return None


def pod_result(pods: Sequence[Mapping[str, Any]], *, succeeded: bool) -> Result:
    """The result of the pod that decided the Job: the one that exited 0, else the last to end."""
    ended = [(p, t) for p in pods if (t := _terminated(p)) is not None]
    if succeeded:
        ended = [(p, t) for p, t in ended if t.get("exitCode") == 0] or ended
    if not ended:
        return Result(ok=succeeded)
    _pod, term = max(ended, key=lambda pt: str(pt[1].get("finishedAt") or ""))
    return parse_termination_message(term.get("message")) or Result(ok=succeeded)


def job_outcome(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]] = ()) -> Outcome:
    """Map a Job (and its pods, for the result) to the task's phase.

    The early conditions (SuccessCriteriaMet, FailureTarget: Kubernetes 1.31+) already decide
    the end while pods still terminate; the final ones (Complete, Failed) follow. Either counts.
    """
    status = job.get("status") or {}
    spec = job.get("spec") or {}
    # Pods that ended but that the Job controller has not counted yet are listed under
    # uncountedTerminatedPods; FailureTarget can come while the last failure is still there.
    uncounted = status.get("uncountedTerminatedPods") or {}
    attempts = sum(int(status.get(k) or 0) for k in ("active", "failed", "succeeded")) + sum(
        len(uncounted.get(k) or []) for k in ("failed", "succeeded"))
    started = status.get("startTime")
    done = _condition(job, "SuccessCriteriaMet", "Complete")
    if done is not None:
        result = pod_result(pods, succeeded=True)
        return Outcome(
            Phase.SUCCEEDED, "Completed", "converted", "", result, attempts, started,
            status.get("completionTime") or done.get("lastTransitionTime"),
        )
    failed = _condition(job, "FailureTarget", "Failed")
    if failed is not None:
        job_reason = str(failed.get("reason") or "Failed")
        reason = FAILURE_REASONS.get(job_reason, job_reason)
        result = pod_result(pods, succeeded=False)
        error = result.error or ""
        if reason == "DeadlineExceeded":
            limit = spec.get("activeDeadlineSeconds")
            message = f"the conversion did not finish within {limit} seconds"
        elif reason == "RetriesExhausted":
            message = f"gave up after {attempts} attempts: {error or failed.get('message')}"
        else:
            message = error or str(failed.get("message") or "the conversion failed")
        # The transcoder's own code where it said one (the same as in the embedded mode).
        code = "timeout" if reason == "DeadlineExceeded" else (result.code or _snake(reason))
        return Outcome(
            Phase.FAILED, reason, message, code, result, attempts, started,
            failed.get("lastTransitionTime"),
        )
    if spec.get("suspend"):
        return Outcome(Phase.PENDING, "Queued", "waiting for the queue to admit the Job",
                       attempts=attempts)
    if int(status.get("active") or 0) > 0 or attempts > 0:
        return Outcome(Phase.RUNNING, attempts=attempts, started_at=started)
    return Outcome(Phase.PENDING, attempts=attempts)


def status_patch(outcome: Outcome, current: Mapping[str, Any]) -> dict[str, Any]:
    """The CR status change for ``outcome``; empty when there is nothing new.

    A phase never moves back (a replayed old Job event must not undo an end).
    """
    phase = str(current.get("phase") or "")
    if phase in TERMINAL or RANK[outcome.phase] < RANK.get(phase, 0):
        return {}
    patch: dict[str, Any] = {}
    if outcome.phase != phase:
        patch["phase"] = outcome.phase.value
    if outcome.attempts and outcome.attempts != current.get("attempts"):
        patch["attempts"] = outcome.attempts
    if outcome.started_at and not current.get("startedAt"):
        patch["startedAt"] = outcome.started_at
    if outcome.message and outcome.message != current.get("message"):
        patch["message"] = outcome.message
    if outcome.finished:
        patch["completedAt"] = outcome.completed_at or _now()
        patch["reason"] = outcome.reason
        if outcome.code:
            patch["errorCode"] = outcome.code
        if outcome.result.detail:
            patch["errorDetail"] = outcome.result.detail[-updates.MAX_DETAIL:]
        patch["conditions"] = [{
            "type": "Ready" if outcome.phase is Phase.SUCCEEDED else "Failed",
            "status": "True",
            "reason": outcome.reason,
            "message": outcome.message[:1000],
            "lastTransitionTime": patch["completedAt"],
        }]
        if outcome.phase is Phase.SUCCEEDED:
            patch["progress"] = 100
            patch["output"] = _output(outcome.result)
    return patch


# The transcoder's Result as the CR's status.output (the CRD's camelCase names), and back.
_OUTPUT_FIELDS = (("size", "size"), ("duration", "duration"),
                  ("input_duration", "inputDuration"), ("video_codec", "videoCodec"),
                  ("audio_codec", "audioCodec"))


def _output(result: Result) -> dict[str, Any]:
    out: dict[str, Any] = {}
    key = result.output or ""
    if key:
        out["key"] = key.split("/", 3)[-1] if key.startswith("s3://") else key
    for src, dst in _OUTPUT_FIELDS:
        value = getattr(result, src)
        if value is not None and value != "":
            out[dst] = value
    return out


def output_result(out: Mapping[str, Any]) -> Result:
    """status.output of a Succeeded CR as the transcoder's Result."""
    return Result.from_json({"status": "ok", "output": out.get("key"),
                             **{src: out.get(dst) for src, dst in _OUTPUT_FIELDS}})


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _now() -> str:
    from datetime import UTC

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def mirror_status(
    sessions: sessionmaker[Session], task_id: str, status: Mapping[str, Any]
) -> None:
    """Copy a CR's status into the task row; every write is idempotent, so replays are safe."""
    phase = Phase.parse(status.get("phase"))
    if phase in (Phase.RUNNING, Phase.SUCCEEDED, Phase.FAILED):
        updates.record_started(
            sessions, task_id, at=parse_time(status.get("startedAt")),
            attempts=int(status.get("attempts") or 1),
        )
    progress = status.get("progress")
    if isinstance(progress, int | float) and phase in (Phase.RUNNING, Phase.SUCCEEDED):
        # What the transcoder's reporter patched (vidconv.transcoder.report.STATUS_FIELDS).
        updates.record_progress(
            sessions, task_id, float(progress), fps=_number(status.get("fps")),
            speed=_number(status.get("speed")),
            input_duration=_number(status.get("inputDuration")))
    if phase is Phase.SUCCEEDED:
        result = output_result(status.get("output") or {})
        updates.record_success(
            sessions, task_id, output_size=result.size, output_duration=result.duration,
            input_duration=result.input_duration, at=parse_time(status.get("completedAt")),
        )
    elif phase is Phase.FAILED:
        updates.record_failure(
            sessions, task_id, error=str(status.get("message") or "the conversion failed"),
            code=str(status.get("errorCode") or status.get("reason") or "error"),
            detail=str(status.get("errorDetail") or "") or None,
            at=parse_time(status.get("completedAt")),
        )
    elif phase is Phase.CANCELLED:
        updates.record_revoked(sessions, task_id)
