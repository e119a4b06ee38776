"""Webhooks against a real receiving server on loopback: what the receiver gets, what the owner
sees in the delivery log, and how deliveries are retried, refused and sent again.

The signature is checked by the ``stripe`` package's verifier (its scheme is ours, under another
header name), never by our own code. The app runs with loopback callbacks allowed
(``VIDCONV_WEBHOOK_URLS=any``) and short retry delays, except where a test proves the default
refuses them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import stripe

from tests.api.conftest import MakeSettings, open_client
from tests.api.helpers import DOC, Api
from tests.receiver import Receiver, Reply

Clip = Callable[..., Path]
NOT_A_VIDEO = b"these are not frames\n" * 50
# Short retry delays; a timeout long enough that a busy machine never makes one by accident.
FAST = {"webhook_urls": "any", "webhook_backoff_seconds": 0.2, "webhook_backoff_max_seconds": 1.0,
        "webhook_timeout_seconds": 5.0, "webhook_poll_seconds": 0.05}


class Hooks(Api):
    """The seed's calls plus the webhook routes."""

    secret = ""

    def rotate(self) -> dict[str, Any]:
        r = self.client.post("/api/account/webhook/secret", headers=self.auth)
        assert r.status_code == 201, r.text
        assert r.headers["cache-control"] == "no-store"
        data: dict[str, Any] = r.json()
        self.secret = data["secret"]
        return data

    def fail_fast(self, callback_url: str | None = None) -> str:
        """A task that ends FAILURE at once (not a video)."""
        data = {"conversion_type": "mp4"}
        if callback_url is not None:
            data["callback_url"] = callback_url
        r = self.client.post("/api/tasks", headers=self.auth, data=data,
                             files={"file": ("notes.mp4", NOT_A_VIDEO)})
        assert r.status_code == 201, r.text
        return str(r.json()["task_id"])

    def log(self, task_id: str) -> dict[str, Any]:
        r = self.client.get(f"/api/tasks/{task_id}/webhook", headers=self.auth)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    def delivery(self, task_id: str, status: str, timeout: float = 60) -> dict[str, Any]:
        """The task's one delivery, once it has ``status``."""
        deadline = time.monotonic() + timeout
        while True:
            deliveries = self.log(task_id)["deliveries"]
            if deliveries and deliveries[0]["status"] == status:
                assert len(deliveries) == 1, deliveries
                return dict(deliveries[0])
            assert time.monotonic() < deadline, deliveries
            time.sleep(0.05)


@pytest.fixture
def hooks(make_settings: MakeSettings) -> Iterator[Hooks]:
    with open_client(make_settings(**FAST)) as client:
        h = Hooks(client)
        h.signup()
        h.rotate()
        yield h


def verify(received: Any, secret: str) -> None:
    """stripe's own check of our header (its tolerance too: the timestamp is recent)."""
    stripe.WebhookSignature.verify_header(received.body.decode(),
                                          received.headers["vidconv-signature"], secret, 300)


def test_a_success_event_is_signed_and_carries_the_output(
    hooks: Hooks, receiver: Receiver, make_clip: Clip
) -> None:
    task_id = hooks.submit(make_clip(1.0), "webm", callback_url=receiver.url())
    task = hooks.wait(task_id)
    assert task["state"] == "SUCCESS" and task["callback_url"] == receiver.url()

    [got] = receiver.wait_for(1)
    verify(got, hooks.secret)
    with pytest.raises(stripe.SignatureVerificationError):  # the verifier does check
        stripe.WebhookSignature.verify_header(
            got.body.decode().replace("SUCCESS", "FAILURE"), got.headers["vidconv-signature"],
            hooks.secret, 300)
    event = got.event
    jsonschema.Draft202012Validator({**DOC["components"]["schemas"]["TaskEvent"],
                                     "components": DOC["components"]}).validate(event)
    assert got.headers["content-type"] == "application/json"
    assert got.headers["vidconv-event-id"] == event["id"]
    assert event["type"] == "task.succeeded"
    data = event["data"]
    assert data["task_id"] == task_id and data["state"] == "SUCCESS"
    assert data["conversion_type"] == "webm"
    assert data["outputs"] == [{"name": task["result"], "size": task["output_size"],
                                "role": "main", "type": "video/webm"}] == _files(task)
    assert data["error_code"] is None and data["error"] is None
    assert data["finished_at"] == task["finished_at"] and data["created_at"]

    delivery = hooks.delivery(task_id, "delivered")
    assert delivery["event_id"] == event["id"] and delivery["type"] == "task.succeeded"
    assert delivery["url"] == receiver.url() and delivery["delivered_at"]
    [attempt] = delivery["attempts"]
    assert attempt["status_code"] == 200 and attempt["error"] is None
    assert attempt["latency_ms"] >= 0


def _files(task: dict[str, Any]) -> list[dict[str, Any]]:
    """The task detail's files as an event lists them (no links: they expire)."""
    return [{k: f[k] for k in ("name", "size", "role", "type")} for f in task["files"]]


def test_a_task_of_several_files_lists_each_in_its_event(
    hooks: Hooks, receiver: Receiver, make_clip: Clip
) -> None:
    task_id = hooks.submit(make_clip(2.0, width=160, height=120), "mp4", thumbnail="jpg",
                           sprites="true", callback_url=receiver.url())
    task = hooks.wait(task_id)
    assert task["state"] == "SUCCESS", task
    [got] = receiver.wait_for(1)
    verify(got, hooks.secret)
    outputs = got.event["data"]["outputs"]
    assert outputs == _files(task) and len(outputs) == 4
    assert {f["role"] for f in outputs} == {"main", "thumbnail", "sprites", "sprites_index"}
    # Listed once, before the first send: a redelivery sends the very same body.
    r = hooks.client.post(f"/api/tasks/{task_id}/webhook/redeliver", headers=hooks.auth)
    assert r.status_code == 202
    assert receiver.wait_for(2)[1].body == got.body


def test_a_failure_event_goes_to_the_account_default_with_code_and_message(
    hooks: Hooks, receiver: Receiver
) -> None:
    r = hooks.client.put("/api/account/webhook", headers=hooks.auth,
                         json={"callback_url": receiver.url("/default")})
    assert r.status_code == 200 and r.json()["callback_url"] == receiver.url("/default")
    task_id = hooks.fail_fast()
    task = hooks.wait(task_id)
    assert task["callback_url"] == receiver.url("/default")

    [got] = receiver.wait_for(1)
    assert got.path == "/default"
    verify(got, hooks.secret)
    assert got.event["type"] == "task.failed"
    data = got.event["data"]
    assert data["state"] == "FAILURE" and data["outputs"] == []
    assert data["error_code"] == task["error_code"] == "unsupported_container"
    assert data["error"] == task["error"] and "not a video" in data["error"]

    # A task's own callback beats the default; null clears the default.
    r = hooks.client.put("/api/account/webhook", headers=hooks.auth, json={"callback_url": None})
    assert r.status_code == 200 and r.json()["callback_url"] is None
    assert hooks.task(hooks.fail_fast())["callback_url"] is None


def test_deleting_a_running_task_still_sends_its_revoked_event(
    hooks: Hooks, receiver: Receiver, make_clip: Clip
) -> None:
    slow = make_clip(30.0, 640, 480, extra=("-c:v", "mpeg4", "-q:v", "8"))
    task_id = hooks.submit(slow, "webm", callback_url=receiver.url())
    deadline = time.monotonic() + 60
    while hooks.task(task_id)["state"] != "STARTED":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert hooks.client.delete(f"/api/tasks/{task_id}", headers=hooks.auth).status_code == 204

    [got] = receiver.wait_for(1)
    verify(got, hooks.secret)
    assert got.event["type"] == "task.revoked"
    assert got.event["data"]["task_id"] == task_id and got.event["data"]["state"] == "REVOKED"
    # The task and its log are gone, as for every route of a deleted task.
    r = hooks.client.get(f"/api/tasks/{task_id}/webhook", headers=hooks.auth)
    assert r.status_code == 404


def test_500s_are_retried_with_the_same_event_until_delivered(
    hooks: Hooks, receiver: Receiver
) -> None:
    receiver.script(Reply(500), Reply(503), Reply(200))
    task_id = hooks.fail_fast(receiver.url())
    delivery = hooks.delivery(task_id, "delivered")
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 503, 200]
    got = receiver.wait_for(3)
    assert len({r.event["id"] for r in got}) == 1 and len({r.body for r in got}) == 1
    for r in got:
        verify(r, hooks.secret)
    metrics = hooks.client.get("/metrics").text
    for line in ('vidconv_webhook_attempts_total{outcome="retry"} 2.0',
                 'vidconv_webhook_attempts_total{outcome="delivered"} 1.0',
                 'vidconv_webhook_attempts_total{outcome="failed"} 0.0',
                 'vidconv_webhook_events{status="delivered"} 1.0',
                 'vidconv_webhook_events{status="pending"} 0.0',
                 "vidconv_webhook_oldest_pending_seconds 0.0",
                 "vidconv_webhook_attempt_duration_seconds_count 3.0"):
        assert line in metrics.splitlines(), line


def test_a_timeout_is_retried(make_settings: MakeSettings, receiver: Receiver) -> None:
    receiver.script(Reply(200, delay=4.0))
    with open_client(make_settings(**{**FAST, "webhook_timeout_seconds": 1.0})) as client:
        hooks = Hooks(client)
        hooks.signup()
        hooks.rotate()
        task_id = hooks.fail_fast(receiver.url())
        attempts = hooks.delivery(task_id, "delivered")["attempts"]
    assert attempts[0]["status_code"] is None and "timed out" in attempts[0]["error"]
    assert attempts[-1]["status_code"] == 200
    assert len(receiver.requests) == len(attempts) >= 2


def test_a_400_is_not_retried(hooks: Hooks, receiver: Receiver) -> None:
    receiver.script(Reply(400))
    task_id = hooks.fail_fast(receiver.url())
    delivery = hooks.delivery(task_id, "failed")  # final: nothing more is scheduled
    [attempt] = delivery["attempts"]
    assert attempt["status_code"] == 400 and attempt["error"] == "not retried"
    assert delivery["next_attempt_at"] is None
    assert len(receiver.requests) == 1


def test_a_redirect_is_not_followed(hooks: Hooks, receiver: Receiver) -> None:
    receiver.script(Reply(307, headers={"Location": receiver.url("/elsewhere")}))
    task_id = hooks.fail_fast(receiver.url())
    [attempt] = hooks.delivery(task_id, "failed")["attempts"]
    assert attempt["status_code"] == 307 and "redirects are not followed" in attempt["error"]
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_a_429_waits_for_its_retry_after(hooks: Hooks, receiver: Receiver) -> None:
    receiver.script(Reply(429, headers={"Retry-After": "2"}))
    task_id = hooks.fail_fast(receiver.url())
    delivery = hooks.delivery(task_id, "delivered")
    assert [a["status_code"] for a in delivery["attempts"]] == [429, 200]
    first, second = receiver.wait_for(2)
    # Not the 0.2 s backoff: the receiver's 2 s (a lower bound; a slow machine only adds).
    assert second.at - first.at >= 2.0


def test_retries_stop_at_the_end_of_the_window(
    make_settings: MakeSettings, receiver: Receiver
) -> None:
    receiver.default = Reply(500)
    with open_client(make_settings(**{**FAST, "webhook_retry_hours": 1.5 / 3600})) as client:
        hooks = Hooks(client)
        hooks.signup()
        hooks.rotate()
        task_id = hooks.fail_fast(receiver.url())
        delivery = hooks.delivery(task_id, "failed")
    attempts = delivery["attempts"]
    assert len(attempts) >= 2 and {a["status_code"] for a in attempts} == {500}
    assert "no retry after" in attempts[-1]["error"]
    assert len(receiver.requests) == len(attempts)


def test_redeliver_sends_the_same_event_again(hooks: Hooks, receiver: Receiver) -> None:
    task_id = hooks.fail_fast(receiver.url())
    first = hooks.delivery(task_id, "delivered")
    r = hooks.client.post(f"/api/tasks/{task_id}/webhook/redeliver", headers=hooks.auth)
    assert r.status_code == 202, r.text
    assert r.json()["event_id"] == first["event_id"]
    one, two = receiver.wait_for(2)
    assert one.body == two.body  # the same event, newly signed
    verify(two, hooks.secret)
    deadline = time.monotonic() + 30
    while len((log := hooks.log(task_id)["deliveries"][0])["attempts"]) < 2:
        assert time.monotonic() < deadline, log
        time.sleep(0.05)
    assert log["status"] == "delivered"
    assert [a["status_code"] for a in log["attempts"]] == [200, 200]


def test_a_delivery_in_flight_at_shutdown_ends_first_and_is_not_sent_again(
    make_settings: MakeSettings, receiver: Receiver
) -> None:
    receiver.script(Reply(200, delay=1.5))
    settings = make_settings(**FAST)
    with open_client(settings) as client:
        hooks = Hooks(client)
        hooks.signup()
        hooks.rotate()
        task_id = hooks.fail_fast(receiver.url())
        receiver.wait_for(1)  # in flight: the receiver holds its answer as the app stops
    with open_client(settings) as client:  # the same data: a restart
        again = Hooks(client)
        again.token = hooks.token
        delivery = again.delivery(task_id, "delivered")
        assert [a["status_code"] for a in delivery["attempts"]] == [200]
    assert len(receiver.requests) == 1


def test_a_loopback_callback_is_refused_by_default_and_nothing_is_sent(
    make_settings: MakeSettings, receiver: Receiver
) -> None:
    with open_client(make_settings(**{**FAST, "webhook_urls": "public"})) as client:
        hooks = Hooks(client)
        hooks.signup()
        hooks.rotate()
        task_id = hooks.fail_fast(receiver.url())
        [attempt] = hooks.delivery(task_id, "failed")["attempts"]
        assert attempt["status_code"] is None
        assert "private or local address" in attempt["error"]
    assert receiver.requests == []


def test_a_rotated_secret_signs_beside_the_new_one_for_a_day(
    hooks: Hooks, receiver: Receiver
) -> None:
    old = hooks.secret
    rotated = hooks.rotate()
    assert rotated["secret"] != old and rotated["secret"].startswith("whsec_")
    assert rotated["previous_secret_valid_until"] > rotated["created_at"]
    account = hooks.client.get("/api/account/webhook", headers=hooks.auth).json()
    assert account["secret_created_at"] == rotated["created_at"]
    assert rotated["secret"] not in str(account)  # shown once, never again
    hooks.fail_fast(receiver.url())
    [got] = receiver.wait_for(1)
    assert got.headers["vidconv-signature"].count("v1=") == 2
    verify(got, rotated["secret"])
    verify(got, old)  # a receiver still on the old secret keeps working meanwhile


def test_a_callback_needs_a_secret_and_a_usable_url(
    make_settings: MakeSettings, receiver: Receiver
) -> None:
    with open_client(make_settings(**FAST)) as client:
        hooks = Hooks(client)
        hooks.signup()
        r = client.post("/api/tasks", headers=hooks.auth,
                        data={"conversion_type": "mp4", "callback_url": receiver.url()},
                        files={"file": ("notes.mp4", NOT_A_VIDEO)})
        assert r.status_code == 409 and "signing secret" in r.json()["message"]
        r = client.put("/api/account/webhook", headers=hooks.auth,
                       json={"callback_url": receiver.url()})
        assert r.status_code == 409
        hooks.rotate()
        for bad in ("ftp://example.com/x", "http://user:pw@example.com/", "http://[::1]/",
                    "http://example.com/#frag", "http://example.com:70000/", ""):
            r = client.post("/api/tasks", headers=hooks.auth,
                            data={"conversion_type": "mp4", "callback_url": bad},
                            files={"file": ("notes.mp4", NOT_A_VIDEO)})
            assert r.status_code == 422, (bad, r.text)
            assert "callback_url" in r.json()["message"]
            r = client.put("/api/account/webhook", headers=hooks.auth, json={"callback_url": bad})
            assert r.status_code == 422, (bad, r.text)
        r = client.put("/api/account/webhook", headers=hooks.auth, json={})
        assert r.status_code == 422 and "callback_url is required" in r.json()["message"]
        r = client.get("/api/tasks", headers=hooks.auth)
        assert r.json()["tasks"] == []  # nothing refused was kept


def test_webhook_routes_follow_the_owner_rules(hooks: Hooks, receiver: Receiver) -> None:
    mine = hooks.fail_fast(receiver.url())
    plain = hooks.fail_fast()
    hooks.wait(plain)
    r = hooks.client.post(f"/api/tasks/{plain}/webhook/redeliver", headers=hooks.auth)
    assert r.status_code == 409 and "no callback_url" in r.json()["message"]
    assert hooks.log(plain) == {"task_id": plain, "callback_url": None, "deliveries": []}

    other = Hooks(hooks.client)
    other.signup()
    for method, path in (("GET", f"/api/tasks/{mine}/webhook"),
                         ("POST", f"/api/tasks/{mine}/webhook/redeliver"),
                         ("GET", "/api/tasks/nope/webhook")):
        r = hooks.client.request(method, path, headers=other.auth)
        assert r.status_code == 404 and r.json() == {"message": "task not found"}
    for method, path in (("GET", "/api/account/webhook"), ("PUT", "/api/account/webhook"),
                         ("POST", "/api/account/webhook/secret"),
                         ("GET", f"/api/tasks/{mine}/webhook")):
        assert hooks.client.request(method, path).status_code == 401
