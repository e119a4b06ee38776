"""The dispatcher: every API process delivers the outbox (``vidconv.db.outbox``).

Each process looks for due events every ``webhook_poll_seconds``, leases some (a conditional
UPDATE that one process wins), and sends each with httpx: the stored body, a fresh signature,
no redirects followed, through ``webhook_proxy`` if set, the address rules of ``egress`` checked
right before every attempt. The attempt is logged and the event delivered, failed, or due again.

Retried: timeouts, connection errors, 5xx and 429; never another 4xx, a redirect or a refused
address. The delay doubles from ``webhook_backoff_seconds`` up to ``webhook_backoff_max_seconds``,
with jitter (half of it random, so that receivers coming back are not hit by every event at
once); a Retry-After on a 429 or 503 is waited for instead. No retry is scheduled past
``webhook_retry_hours`` after the event (or its redelivery). The schedule is a few lines around
the stored ``next_attempt_at`` rather than tenacity's: the state has to live in the database,
where a restarted or another process picks it up, not in a coroutine that sleeps.

A process that dies mid-delivery holds its lease until it runs out; then the event is sent
again (same id and body): a receiver may see an event twice only when a process died between
its 2xx and the record of it, and tells by the event ``id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import random
import socket
import time
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from vidconv import __version__
from vidconv.api.egress import Refused, check_target
from vidconv.api.services import files
from vidconv.api.threads import run_in_thread
from vidconv.api.webhooks import secretbox
from vidconv.api.webhooks.metrics import WebhookMetrics
from vidconv.api.webhooks.signing import HEADER, signature_header
from vidconv.db import outbox
from vidconv.db.models import DeliveryStatus, Task, TaskState, aware, utcnow
from vidconv.settings import Settings
from vidconv.storage import Storage, StorageError

log = logging.getLogger("vidconv.webhooks")

IN_FLIGHT = 8  # deliveries at once per process
RECORD_TRIES = (0.5, 1.0, 2.0, 4.0)  # a database blip must not make a delivered event go again


def backoff(settings: Settings, attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: doubling, capped, jittered."""
    delay = min(settings.webhook_backoff_max_seconds,
                settings.webhook_backoff_seconds * 2 ** max(0, attempts - 1))
    return float(delay / 2 + random.uniform(0, delay / 2))


def retry_after(response: httpx.Response) -> float | None:
    """The response's Retry-After in seconds (a number or an HTTP date), if it has one."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - utcnow()).total_seconds()) if when.tzinfo else None


class LeaseLost(Exception):
    """This process no longer holds the event's lease: another one sends it."""


class Dispatcher:
    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], box: secretbox.SecretBox,
        storage: Storage, registry: CollectorRegistry,
    ) -> None:
        self.settings, self.sessions, self.box, self.storage = settings, sessions, box, storage
        self.metrics = WebhookMetrics(registry, sessions)
        # Who holds a lease, for a person reading the table: host, pid, a nonce, the claim.
        self.owner = f"{socket.gethostname()[:60]}:{os.getpid()}:{random.getrandbits(32):08x}"
        self._claims = itertools.count(1)
        self._wake = asyncio.Event()  # a delivery ended: there is room to claim more
        # Long enough for a claim, one attempt and its record; a dead process's events wait
        # this long before another process sends them.
        self.lease_seconds = 3 * settings.webhook_timeout_seconds + 5
        self._loop: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        client = httpx.AsyncClient(proxy=self.settings.webhook_proxy or None,
                                   follow_redirects=False, trust_env=False,
                                   timeout=self.settings.webhook_timeout_seconds)
        self._loop = asyncio.create_task(self._run(client), name="vidconv-webhooks")
        self._client = client

    async def stop(self) -> None:
        """Stop looking for work; let deliveries in flight finish (each is time-bounded), and
        only then close the client they send with."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        if self._inflight:
            await asyncio.wait(set(self._inflight),
                               timeout=self.settings.webhook_timeout_seconds + 2)
        for task in list(self._inflight):  # stuck recording: its lease runs out, it goes again
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self, client: httpx.AsyncClient) -> None:
        while True:
            self._wake.clear()
            free = IN_FLIGHT - len(self._inflight)
            if free > 0:
                try:
                    claimed = await run_in_thread(
                        outbox.claim_due, self.sessions, f"{self.owner}:{next(self._claims)}",
                        self.lease_seconds, free)
                except (OperationalError, InterfaceError) as exc:
                    log.warning("cannot read the webhook outbox: %s", exc.orig or exc)
                    claimed = []
                for event in claimed:
                    task = asyncio.create_task(self._deliver(client, event))
                    self._inflight.add(task)
                    task.add_done_callback(self._ended)
                if len(claimed) == free:
                    continue  # maybe more are due: claim again once there is room
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.webhook_poll_seconds):
                    await self._wake.wait()

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()

    async def _deliver(self, client: httpx.AsyncClient, event: outbox.Claimed) -> None:
        try:
            attempt, after = await self._attempt(client, event)
        except (OperationalError, InterfaceError) as exc:  # its lease runs out, it goes again
            log.warning("webhook event %s: database unavailable (%s)", event.id, exc.orig or exc)
            return
        except LeaseLost:  # too slow: another process has it now
            log.warning("webhook event %s: lease lost before sending", event.id)
            return
        except Exception:  # a bug must not end the dispatcher; the lease runs out, it goes again
            log.exception("webhook event %s: delivery failed unexpectedly", event.id)
            return
        self.metrics.observe(after.status, attempt.latency_ms)
        if after.status is not DeliveryStatus.DELIVERED:
            said = [f"HTTP {attempt.status_code}" if attempt.status_code else "", attempt.error]
            log.info("webhook event %s to %s: %s; %s", event.id, event.url,
                     ", ".join(filter(None, said)),
                     f"next attempt at {after.at.isoformat()}" if after.at else "given up")
        for delay in (*RECORD_TRIES, None):
            try:
                await run_in_thread(outbox.record_attempt, self.sessions, event.id,
                                    event.lease, attempt, after)
                return
            except (OperationalError, InterfaceError) as exc:
                if delay is None:
                    log.warning("webhook event %s: could not record the attempt (%s); it is "
                                "sent again once its lease runs out", event.id, exc.orig or exc)
                    return
                await asyncio.sleep(delay)

    async def _attempt(
        self, client: httpx.AsyncClient, event: outbox.Claimed
    ) -> tuple[outbox.Attempt, outbox.Next]:
        at = utcnow()
        try:
            async with asyncio.timeout(self.settings.webhook_timeout_seconds):
                await check_target(event.url, self.settings.webhook_urls)
        except TimeoutError:
            return self._again(event, at, None, time.monotonic(), "the host name did not "
                               "resolve in time", None)
        except Refused as exc:
            return outbox.Attempt(at, error=f"not sent: {exc}"), outbox.Next(
                DeliveryStatus.FAILED)
        keys = await run_in_thread(secretbox.signing_keys, self.sessions, self.box,
                                   event.owner_id)
        if not keys:
            return outbox.Attempt(at, error="not sent: the account has no signing secret "
                                  "this server can read; rotate it"), outbox.Next(
                DeliveryStatus.FAILED)
        try:
            payload = await run_in_thread(self._complete, event)
        except StorageError as exc:  # nothing was sent: the same body goes out once it can
            return self._again(event, at, None, time.monotonic(), "not sent: cannot list the "
                               f"task's files: {exc}", None)
        body = payload.encode()
        headers = {"content-type": "application/json", "user-agent": f"vidconv/{__version__}",
                   "vidconv-event-id": event.id,
                   HEADER: signature_header(keys, int(time.time()), body)}
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.settings.webhook_timeout_seconds):
                response = await client.post(event.url, content=body, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            return self._again(event, at, None, started, "timed out after "
                               f"{self.settings.webhook_timeout_seconds:g} s", None)
        except httpx.InvalidURL as exc:
            return outbox.Attempt(at, error=f"not sent: {exc}"), outbox.Next(
                DeliveryStatus.FAILED)
        except httpx.HTTPError as exc:
            return self._again(event, at, None, started, f"{type(exc).__name__}: {exc}", None)
        code = response.status_code
        if 200 <= code < 300:
            return (outbox.Attempt(at, code, _ms(started)),
                    outbox.Next(DeliveryStatus.DELIVERED))
        if code == 429 or code >= 500:
            wait = retry_after(response) if code in (429, 503) else None
            return self._again(event, at, code, started, None, wait)
        reason = "redirects are not followed" if 300 <= code < 400 else "not retried"
        return (outbox.Attempt(at, code, _ms(started), reason),
                outbox.Next(DeliveryStatus.FAILED))

    def _complete(self, event: outbox.Claimed) -> str:
        """The body to send. A task of several files (pictures, a stream) gets them listed from
        the storage into its event before the event is first sent; then it is kept, so every
        attempt sends the same bytes."""
        if event.state != TaskState.SUCCESS.value or json.loads(event.payload)["data"]["outputs"]:
            return event.payload  # nothing to list, or listed at an earlier attempt
        with self.sessions() as session:
            task = session.get(Task, event.task_id)
        if task is None or not files.several(task):
            return event.payload  # deleted meanwhile, and its files with it
        payload = outbox.with_outputs(event.payload, files.list_files(self.storage, task))
        if not outbox.complete(self.sessions, event.id, event.lease, payload):
            raise LeaseLost(event.id)
        return payload

    def _again(
        self, event: outbox.Claimed, at: datetime, code: int | None, started: float,
        error: str | None, wait: float | None,
    ) -> tuple[outbox.Attempt, outbox.Next]:
        """A retryable failure: due again after the backoff (or Retry-After), unless that is
        past the retry window."""
        latency = _ms(started)
        delay = wait if wait is not None else backoff(self.settings, event.attempts + 1)
        when = utcnow() + timedelta(seconds=delay)
        window_end = aware(event.retry_from) + timedelta(
            hours=self.settings.webhook_retry_hours)
        if when > window_end:
            note = f"no retry after {self.settings.webhook_retry_hours:g} h"
            return (outbox.Attempt(at, code, latency, f"{error}; {note}" if error else note),
                    outbox.Next(DeliveryStatus.FAILED))
        return outbox.Attempt(at, code, latency, error), outbox.Next(DeliveryStatus.PENDING, when)


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
