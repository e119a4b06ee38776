"""One webhook event per end state when the API processes that deliver them are killed: two
`vidconv serve` processes on one real PostgreSQL database (and one MinIO bucket), both killed with
SIGKILL while deliveries are in flight and a conversion runs, then started again.

The receiver holds every request it gets until both processes are dead, so what was in flight
never got an answer; after the restart it answers at once. What the receiver must see: every
end state's event, one event id per end state, signed; and after the restart exactly one request
per event, although both processes compete for the outbox.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
from sqlalchemy import create_engine, func, select

from tests.api.helpers import PASSWORD
from tests.receiver import Receiver, Reply
from tests.servers import dies_with_us, end, free_port, wait_for_port
from vidconv.db.models import WebhookEvent

pytestmark = [pytest.mark.postgres, pytest.mark.s3]
Clip = Callable[..., Path]
ENDED = ("SUCCESS", "FAILURE", "REVOKED")


class Serve:
    """`vidconv serve` as its own process on a shared database and bucket."""

    def __init__(self, tmp: Path, name: str, env: dict[str, str]) -> None:
        self.port, self.log = free_port(), tmp / f"{name}.log"
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("VIDCONV_")},
                    **env, "VIDCONV_PORT": str(self.port),
                    "VIDCONV_DATA_DIR": str(tmp / name)}
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def start(self) -> Serve:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([*dies_with_us(), sys.executable, "-m", "vidconv.cli",
                                          "serve"],
                                         env=self.env, stdout=subprocess.DEVNULL, stderr=log)
        wait_for_port(self.port, timeout=60)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        end(self.proc)
        self.http.close()

    def task(self, task_id: str, auth: dict[str, str]) -> dict[str, Any]:
        r = self.http.get(f"/api/tasks/{task_id}", headers=auth)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def submit(self, auth: dict[str, str], name: str, data: bytes, fmt: str, url: str) -> str:
        r = self.http.post("/api/tasks", headers=auth, files={"file": (name, data)},
                           data={"conversion_type": fmt, "callback_url": url})
        assert r.status_code == 201, r.text
        return str(r.json()["task_id"])


def _until(what: str, check: Callable[[], object], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_two_killed_api_processes_deliver_one_event_per_end_state(
    tmp_path: Path, pg_url: str, s3_env: dict[str, str], receiver: Receiver, make_clip: Clip
) -> None:
    env = {**s3_env, "VIDCONV_DATABASE_URL": pg_url, "VIDCONV_JWT_SECRET": "k" * 48,
           "VIDCONV_WORKERS": "2", "VIDCONV_LOG_LEVEL": "info", "VIDCONV_WEBHOOK_URLS": "any",
           "VIDCONV_WEBHOOK_TIMEOUT_SECONDS": "5", "VIDCONV_WEBHOOK_BACKOFF_SECONDS": "0.2",
           "VIDCONV_WEBHOOK_BACKOFF_MAX_SECONDS": "1", "VIDCONV_WEBHOOK_POLL_SECONDS": "0.1"}
    a, b = Serve(tmp_path, "a", env), Serve(tmp_path, "b", env)
    receiver.default = Reply(hold=True)  # nothing in flight gets an answer before the kill
    try:
        a.start()
        b.start()
        name = "u" + uuid.uuid4().hex[:8]
        assert a.http.post("/api/auth/signup", json={
            "username": name, "email": f"{name}@example.com", "password1": PASSWORD,
            "password2": PASSWORD}).status_code == 201
        token = b.http.post("/api/auth/login", json={"username": name, "password": PASSWORD})
        auth = {"Authorization": f"Bearer {token.json()['token']}"}
        secret = a.http.post("/api/account/webhook/secret", headers=auth).json()["secret"]

        url, clip = receiver.url(), make_clip(0.5).read_bytes()
        slow = make_clip(12.0, 640, 480, extra=("-c:v", "mpeg4", "-q:v", "8")).read_bytes()
        revoked = a.submit(auth, "slow.mp4", slow, "webm", url)
        _until("a running conversion", lambda: a.task(revoked, auth)["state"] == "STARTED")
        assert a.http.delete(f"/api/tasks/{revoked}", headers=auth).status_code == 204
        tasks = [a.submit(auth, "clip.mp4", clip, "mp3", url),
                 b.submit(auth, "clip.mp4", clip, "mp3", url),
                 a.submit(auth, "notes.mp4", b"not frames\n" * 40, "mp4", url),
                 b.submit(auth, "notes.mp4", b"not frames\n" * 40, "mp4", url)]
        running = b.submit(auth, "slow.mp4", slow, "webm", url)
        _until("the quick tasks to end",
               lambda: all(a.task(t, auth)["state"] in ENDED for t in tasks))
        _until("the slow one to convert", lambda: b.task(running, auth)["progress"] > 0)
        receiver.wait_for(4)  # deliveries in flight, held

        a.kill()
        b.kill()
        receiver.default = Reply(200)
        receiver.release()
        restart = time.time()
        a.start()
        b.start()

        tasks.append(running)
        _until("every task to end", lambda: all(b.task(t, auth)["state"] in ENDED
                                                for t in tasks), timeout=240)
        engine = create_engine(pg_url)
        _until("no event left to deliver", lambda: _pending(engine) == 0)
        engine.dispose()
        ends = {(t, str(a.task(t, auth)["state"])) for t in tasks} | {(revoked, "REVOKED")}
    finally:
        a.stop()
        b.stop()

    events: dict[tuple[str, str], set[str]] = defaultdict(set)
    after: dict[str, list[int | None]] = defaultdict(list)
    for r in receiver.requests:
        data = r.event["data"]
        events[(data["task_id"], data["state"])].add(r.event["id"])
        if r.at >= restart:
            after[r.event["id"]].append(r.answered)
            stripe.WebhookSignature.verify_header(r.body.decode(),
                                                  r.headers["vidconv-signature"], secret, 300)
    before = [r for r in receiver.requests if r.at < restart]
    print(f"{len(before)} requests held until the kill, {sum(map(len, after.values()))} after "
          f"the restart, for {len(ends)} end states")
    assert set(events) == ends  # every end state, and no event for anything else
    assert all(len(ids) == 1 for ids in events.values()), events  # one event per end state
    # After the restart both processes compete for the outbox: one request per event.
    assert {i: answers for i, answers in after.items()} == {
        i: [200] for ids in events.values() for i in ids}
    logs = "\n".join(p.read_text(errors="replace") for p in (a.log, b.log))
    assert "Traceback" not in logs, logs[-4000:]


def _pending(engine: object) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.scalar(select(func.count()).select_from(WebhookEvent)
                               .where(WebhookEvent.status == "pending")))
