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

from vidconv.db import updates
from vidconv.operator.job import CONTAINER

TERMINAL = ("Succeeded", "Failed", "Cancelled")
RANK = {"": 0, "Pending": 1, "Running": 2, "Succeeded": 3, "Failed": 3, "Cancelled": 3}

# Job condition reason -> what the user is told (status.reason and the task's error code).
FAILURE_REASONS = {
    "PodFailurePolicy": "BadInput",
    "BackoffLimitExceeded": "RetriesExhausted",
    "DeadlineExceeded": "DeadlineExceeded",
}


@dataclass
class Outcome:
    phase: str
    reason: str = ""
    message: str = ""
    code: str = ""  # the machine-readable error code, as the local executor records it
    result: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    started_at: str | None = None
    completed_at: str | None = None

    @property
    def finished(self) -> bool:
        return self.phase in TERMINAL


def _condition(job: Mapping[str, Any], *types: str) -> Mapping[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in types and cond.get("status") == "True":
            return cond  # type: ignore[no-any-return]
    return None


def parse_termination_message(text: str | None) -> dict[str, Any]:
    """The transcoder's result JSON; with FallbackToLogsOnError it is the log tail's last result."""
    if not text:
        return {}
    for line in reversed(text.strip().splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and ("status" in data or data.get("event") == "result"):
            return data
    return {"status": "error", "error": text.strip()[-500:]}


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == CONTAINER:
            term = (cs.get("state") or {}).get("terminated")
            return term
    return None


def pod_result(pods: Sequence[Mapping[str, Any]], *, succeeded: bool) -> dict[str, Any]:
    """The result of the pod that decided the Job: the one that exited 0, else the last to end."""
    ended = [(p, t) for p in pods if (t := _terminated(p)) is not None]
    if succeeded:
        ended = [(p, t) for p, t in ended if t.get("exitCode") == 0] or ended
    if not ended:
        return {}
    _pod, term = max(ended, key=lambda pt: str(pt[1].get("finishedAt") or ""))
    result = parse_termination_message(term.get("message"))
    result.setdefault("exitCode", term.get("exitCode"))
    return result


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
            "Succeeded", "Completed", "converted", "", result, attempts, started,
            status.get("completionTime") or done.get("lastTransitionTime"),
        )
    failed = _condition(job, "FailureTarget", "Failed")
    if failed is not None:
        job_reason = str(failed.get("reason") or "Failed")
        reason = FAILURE_REASONS.get(job_reason, job_reason)
        result = pod_result(pods, succeeded=False)
        error = str(result.get("error") or "")
        if reason == "DeadlineExceeded":
            limit = spec.get("activeDeadlineSeconds")
            message = f"the conversion did not finish within {limit} seconds"
        elif reason == "RetriesExhausted":
            message = f"gave up after {attempts} attempts: {error or failed.get('message')}"
        else:
            message = error or str(failed.get("message") or "the conversion failed")
        # The transcoder's own code where it said one (the same as in the embedded mode).
        code = "timeout" if reason == "DeadlineExceeded" else str(
            result.get("code") or _snake(reason))
        return Outcome(
            "Failed", reason, message, code, result, attempts, started,
            failed.get("lastTransitionTime"),
        )
    if spec.get("suspend"):
        return Outcome("Pending", "Queued", "waiting for the queue to admit the Job",
                       attempts=attempts)
    if int(status.get("active") or 0) > 0 or attempts > 0:
        return Outcome("Running", attempts=attempts, started_at=started)
    return Outcome("Pending", attempts=attempts)


def status_patch(outcome: Outcome, current: Mapping[str, Any]) -> dict[str, Any]:
    """The CR status change for ``outcome``; empty when there is nothing new.

    A phase never moves back (a replayed old Job event must not undo an end).
    """
    phase = str(current.get("phase") or "")
    if phase in TERMINAL or RANK[outcome.phase] < RANK.get(phase, 0):
        return {}
    patch: dict[str, Any] = {}
    if outcome.phase != phase:
        patch["phase"] = outcome.phase
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
        patch["conditions"] = [{
            "type": "Ready" if outcome.phase == "Succeeded" else "Failed",
            "status": "True",
            "reason": outcome.reason,
            "message": outcome.message[:1000],
            "lastTransitionTime": patch["completedAt"],
        }]
        if outcome.phase == "Succeeded":
            patch["progress"] = 100
            patch["output"] = _output(outcome.result)
    return patch


def _output(result: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    key = str(result.get("output") or "")
    if key:
        out["key"] = key.split("/", 3)[-1] if key.startswith("s3://") else key
    if isinstance(result.get("size"), int):
        out["size"] = result["size"]
    for src, dst in (("duration", "duration"), ("input_duration", "inputDuration")):
        if isinstance(result.get(src), int | float):
            out[dst] = float(result[src])
    for src, dst in (("video_codec", "videoCodec"), ("audio_codec", "audioCodec")):
        if result.get(src):
            out[dst] = str(result[src])
    return out


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _now() -> str:
    from datetime import UTC

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(text: Any) -> datetime | None:
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
    phase = status.get("phase")
    if phase in ("Running", "Succeeded", "Failed"):
        updates.record_started(
            sessions, task_id, at=_time(status.get("startedAt")),
            attempts=int(status.get("attempts") or 1),
        )
    progress = status.get("progress")
    if isinstance(progress, int | float) and phase in ("Running", "Succeeded"):
        updates.record_progress(sessions, task_id, float(progress))
    if phase == "Succeeded":
        out = status.get("output") or {}
        updates.record_success(
            sessions, task_id, output_size=out.get("size"),
            output_duration=out.get("duration"), input_duration=out.get("inputDuration"),
            at=_time(status.get("completedAt")),
        )
    elif phase == "Failed":
        updates.record_failure(
            sessions, task_id, error=str(status.get("message") or "the conversion failed"),
            code=str(status.get("errorCode") or status.get("reason") or "error"),
            at=_time(status.get("completedAt")),
        )
    elif phase == "Cancelled":
        updates.record_revoked(sessions, task_id)
