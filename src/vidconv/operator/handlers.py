"""kopf handlers: thin, typed, and stateless (everything lives in the API server and the DB).

How the operator follows a Job, and why it survives restarts: Jobs are watched with a
label-filtered ``@kopf.on.event`` (not a per-CR timer or daemon). kopf lists every matching Job
when it starts, so an operator restarted mid-task sees the current state of each Job at once, and
the end of a Job that finished while it was down is not lost. Each event is mapped to the CR's
status (a pure function of the Job and its pods), and the CR's status is mirrored into the
database by a second event handler on the CR: the CR is the one source the database follows.
Events are prompt but kopf does not retry a failed event handler, so a slow timer per unfinished
CR (``resync``, every ``operator_resync_seconds``) re-reads its Job as a safety net, and
re-creates it if it is gone. Timers keep nothing either: a restart just starts them again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import kopf
import sqlalchemy.exc

from vidconv import logs, resources
from vidconv.contract import Phase
from vidconv.operator import events, metrics
from vidconv.operator.context import Context
from vidconv.operator.job import build_job
from vidconv.operator.status import (
    TERMINAL,
    Outcome,
    job_outcome,
    mirror_status,
    parse_time,
    status_patch,
)
from vidconv.settings import Settings

CR = (resources.GROUP, resources.VERSION, resources.PLURAL)
DB_BACKOFF = (0.5, 1, 2, 4, 8, 15, 30)
# Decorators are evaluated at import: the interval comes from the environment directly.
RESYNC_SECONDS = Settings.from_env().operator_resync_seconds


@kopf.on.create(*CR)
@kopf.on.resume(*CR)
@metrics.counted
async def ensure_job(
    body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: kopf.Memo,
    logger: kopf.Logger, **_: Any,
) -> None:
    """Create the task's Job (once: 409 AlreadyExists means an earlier run did)."""
    _bind(body)
    if status.get("phase") in TERMINAL:
        return
    ctx: Context = memo.ctx
    manifest = build_job(body, ctx.settings)
    name = manifest["metadata"]["name"]
    if await asyncio.to_thread(ctx.cluster.create_job, manifest):
        metrics.JOBS_CREATED.inc()
        logger.info("created Job %s", name)
        events.normal(body, events.JOB_CREATED, f"created Job {name}")
    if not status.get("phase"):
        patch.status["phase"] = Phase.PENDING.value
        patch.status["progress"] = 0
    if status.get("jobName") != name:
        patch.status["jobName"] = name


@kopf.on.event("batch", "v1", "jobs", labels={resources.TASK_LABEL: kopf.PRESENT})
@metrics.counted
async def follow_job(
    type: str | None, body: kopf.Body, namespace: str | None, memo: kopf.Memo,
    logger: kopf.Logger, **_: Any,
) -> None:
    """Mirror a Job's state into its ConversionTask's status."""
    if type == "DELETED" or namespace is None:
        return
    await sync_task(memo.ctx, namespace, body, logger)


@kopf.timer(
    *CR, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS,
    when=lambda status, **_: status.get("phase") not in TERMINAL,
)
@metrics.counted
async def resync(
    body: kopf.Body, meta: kopf.Meta, namespace: str | None, memo: kopf.Memo,
    logger: kopf.Logger, **_: Any,
) -> None:
    """The safety net under the Job events: an unfinished task's Job, read again every minute.

    A Job event whose handling failed is not retried by kopf; a Job deleted by hand (or by its
    TTL while nobody watched) leaves a task that would wait forever. Here the first is synced
    and the second re-created (the conversion is idempotent: same input, same output key).
    """
    ctx: Context = memo.ctx
    _bind(body)
    if namespace is None:
        return
    job = await asyncio.to_thread(ctx.cluster.get_job, namespace, resources.job_name(meta["name"]))
    if job is not None:
        await sync_task(ctx, namespace, job, logger)
        return
    manifest = build_job(body, ctx.settings)
    if await asyncio.to_thread(ctx.cluster.create_job, manifest):
        metrics.JOBS_CREATED.inc()
        logger.warning("the Job of %s was gone; created it again", meta["name"])
        events.warning(body, events.JOB_RECREATED,
                       "the Job was gone before the task ended; created it again")


async def sync_task(
    ctx: Context, namespace: str, job: Mapping[str, Any], logger: logging.Logger | kopf.Logger
) -> None:
    """Job (+ its pods at the end) -> the owning ConversionTask's status, if anything changed."""
    meta = job["metadata"]
    owner = _owner(meta)
    if owner is None:
        return
    outcome = job_outcome(job)
    if outcome.finished:  # only the end needs the pods (for the termination message)
        pods = await asyncio.to_thread(ctx.cluster.job_pods, namespace, meta["name"])
        outcome = job_outcome(job, pods)
    task = await asyncio.to_thread(ctx.cluster.get_task, namespace, owner["name"])
    if task is None or task["metadata"].get("uid") != owner.get("uid"):
        return
    if task["metadata"].get("deletionTimestamp"):
        return
    _bind(task)
    change = status_patch(outcome, task.get("status") or {})
    if not change:
        return
    await asyncio.to_thread(ctx.cluster.patch_task_status, namespace, owner["name"], change)
    if outcome.finished and change.get("phase"):
        _ended(outcome, str((task.get("spec") or {}).get("format") or ""), change)
    ref = events.ref(namespace, owner["name"], owner["uid"])
    phase = change.get("phase")
    if phase == Phase.RUNNING:
        events.normal(ref, events.STARTED, f"Job {meta['name']} is running")
    elif phase == Phase.SUCCEEDED:
        events.normal(ref, events.SUCCEEDED, "converted")
    elif phase == Phase.FAILED:
        events.warning(ref, events.FAILED, f"{change.get('reason')}: {change.get('message')}")
    logger.info("task %s: %s", owner["name"], change)


@kopf.on.event(*CR)
@metrics.counted
async def mirror_to_database(
    type: str | None, body: kopf.Body, spec: kopf.Spec, status: kopf.Status, memo: kopf.Memo,
    logger: kopf.Logger, **_: Any,
) -> None:
    """Copy phase, progress and result into the task row the API serves."""
    if type == "DELETED" or not status.get("phase") or not spec.get("taskId"):
        return
    _bind(body)
    ctx: Context = memo.ctx
    task_id = str(spec["taskId"])
    snapshot = dict(status)
    await with_db_retry(body, logger, lambda: mirror_status(ctx.sessions, task_id, snapshot))


@kopf.on.delete(*CR)
@metrics.counted
async def cancelled(
    body: kopf.Body, spec: kopf.Spec, status: kopf.Status, memo: kopf.Memo,
    logger: kopf.Logger, **_: Any,
) -> None:
    """A deleted CR stops its conversion (the Job goes with it by owner reference)."""
    ctx: Context = memo.ctx
    _bind(body)
    if status.get("phase") not in TERMINAL:
        metrics.ENDED.labels(Phase.CANCELLED.value).inc()
    task_id = str(spec.get("taskId") or "")
    if task_id:
        await with_db_retry(body, logger, lambda: mirror_status(
            ctx.sessions, task_id, {"phase": Phase.CANCELLED.value}))
    events.normal(body, events.DELETED, "the task was deleted; its Job is deleted with it")


async def with_db_retry(
    body: Mapping[str, Any], logger: logging.Logger | kopf.Logger, write: Callable[[], None]
) -> None:
    """Run a database write until it works: an outage delays the mirror, never loses it.

    The first failure posts a Warning event on the CR, the recovery a Normal one. If the
    operator stops meanwhile, kopf's listing on the next start replays the write.
    """
    failures = 0
    while True:
        try:
            await asyncio.to_thread(write)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as exc:
            delay = DB_BACKOFF[min(failures, len(DB_BACKOFF) - 1)]
            if failures == 0:
                events.warning(
                    body, events.DB_UNAVAILABLE,
                    f"cannot write the task to the database; retrying: {str(exc)[:300]}",
                )
            logger.warning("database write failed (%s); retrying in %ss", exc, delay)
            metrics.DB_RETRIES.inc()
            failures += 1
            await asyncio.sleep(delay)
            continue
        if failures:
            events.normal(body, events.DB_RECOVERED, f"database written after {failures} retries")
        return


def _bind(cr: Mapping[str, Any]) -> None:
    """The task id into this handler's log records (kopf runs each object's handlers in a task
    of that object's own, so the binding never reaches another task's lines)."""
    logs.bind_task(str((cr.get("spec") or {}).get("taskId") or "") or None)


def _ended(outcome: Outcome, fmt: str, change: Mapping[str, Any]) -> None:
    """A conversion's end, just written into its CR: into the metrics."""
    phase = Phase(change["phase"])
    metrics.ENDED.labels(phase.value).inc()
    began, ended = parse_time(outcome.started_at), parse_time(change.get("completedAt"))
    if began is not None and ended is not None:
        metrics.CONVERSIONS.observe(fmt, phase.state, (ended - began).total_seconds(),
                                    outcome.result.duration)


def _owner(meta: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == resources.KIND and ref.get("apiVersion", "").startswith(
            resources.GROUP + "/"
        ):
            return ref  # type: ignore[no-any-return]
    return None
