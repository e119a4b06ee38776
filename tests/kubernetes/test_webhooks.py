"""Webhooks in the Kubernetes mode, on the real control plane: the operator mirrors a Job's end
into the database (and with it the event into the outbox), two API replicas deliver the outbox.

One event per end state must hold across an operator killed while the Job runs (the end is
mirrored by the restarted operator, which replays its watches) and a task deleted while it runs
(the API and the operator both write REVOKED), with both replicas competing for every delivery.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import pytest
import stripe
from sqlalchemy import create_engine, func, select
from starlette.testclient import TestClient

from tests.api.helpers import Api, check_against_openapi
from tests.kubernetes.fixtures import Cluster, Operator
from tests.receiver import Receiver
from vidconv.api.app import create_app
from vidconv.db.models import WebhookEvent
from vidconv.settings import Settings

pytestmark = [pytest.mark.kubernetes, pytest.mark.postgres, pytest.mark.s3]
Clip = Callable[..., Path]


@pytest.fixture
def replicas(api_settings: Settings) -> Iterator[list[Api]]:
    """Two API replicas on the cluster's database, each with its own dispatcher."""
    settings = replace(api_settings, webhook_urls="any", webhook_poll_seconds=0.1,
                       webhook_backoff_seconds=0.2, webhook_timeout_seconds=5.0)
    with ExitStack() as stack:
        apis = []
        for _ in range(2):
            client = stack.enter_context(TestClient(create_app(settings)))
            client.event_hooks["response"].append(check_against_openapi)
            apis.append(Api(client))
        yield apis


def test_each_end_state_is_delivered_once_across_an_operator_restart_and_two_replicas(
    cluster: Cluster, operator: Operator, replicas: list[Api], receiver: Receiver,
    make_clip: Clip, api_settings: Settings,
) -> None:
    one, two = replicas
    one.signup()
    two.token = one.token  # the same user, through either replica
    r = one.client.post("/api/account/webhook/secret", headers=one.auth)
    assert r.status_code == 201
    secret = r.json()["secret"]
    assert two.client.put("/api/account/webhook", headers=two.auth,
                          json={"callback_url": receiver.url()}).status_code == 200

    cluster.cordon()
    operator.start()
    done = one.submit(make_clip(1.0), "mp3")
    gone = two.submit(make_clip(1.0), "mp3")
    for task_id in (done, gone):
        cluster.wait("STARTED", lambda t=task_id: one.task(t)["state"] == "STARTED")
    # Deleted while it runs: the API records REVOKED, the operator's delete handler too.
    assert two.client.delete(f"/api/tasks/{gone}", headers=two.auth).status_code == 204

    operator.kill()
    cluster.uncordon()  # the Job ends while no operator runs: no end state, so no event yet
    cluster.wait("the Job to complete", lambda: any(
        c["type"] == "Complete" for j in cluster.jobs()
        for c in (j.get("status") or {}).get("conditions") or []))
    assert one.task(done)["state"] == "STARTED"
    [first] = receiver.wait_for(1)
    assert first.event["type"] == "task.revoked"

    operator.start()
    task = two.wait(done)
    assert task["state"] == "SUCCESS"
    engine = create_engine(api_settings.database_url)
    cluster.wait("every event delivered", lambda: _pending(engine) == 0)
    engine.dispose()

    revoked, succeeded = receiver.requests
    assert (revoked.event["type"], revoked.event["data"]["task_id"]) == ("task.revoked", gone)
    assert (succeeded.event["type"], succeeded.event["data"]["task_id"]) == (
        "task.succeeded", done)
    assert succeeded.event["data"]["outputs"] == [
        {"name": task["result"], "size": task["output_size"], "role": "main",
         "type": "audio/mpeg"}]
    for r in receiver.requests:
        stripe.WebhookSignature.verify_header(r.body.decode(), r.headers["vidconv-signature"],
                                              secret, 300)
    [delivery] = one.client.get(f"/api/tasks/{done}/webhook",
                                headers=one.auth).json()["deliveries"]
    assert delivery["status"] == "delivered"
    assert [a["status_code"] for a in delivery["attempts"]] == [200]


def _pending(engine: object) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.scalar(select(func.count()).select_from(WebhookEvent)
                               .where(WebhookEvent.status == "pending")))
