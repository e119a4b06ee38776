"""What webhooks cost: the outbox row in an end state's transaction, and delivering the outbox.

1. End-state writes (``vidconv.db.updates.record_failure``) of N tasks with a callback (the
   event is built and inserted in the same transaction) against N without one, interleaved in
   rounds, on SQLite (a file, WAL) and, when its binaries are here, a throwaway PostgreSQL.
2. Delivery: N events in the outbox, one dispatcher (``vidconv.api.webhooks.dispatcher``, 8 in
   flight, poll 0.05 s) to a receiver under uvicorn in its own process, timed until the receiver
   has all N; against the same N bodies POSTed by a bare httpx client, 8 at a time, to the same
   receiver. The ratio is what leasing, the address check, signing and logging each attempt add.
3. Idle: CPU seconds the dispatcher spends polling an empty outbox (poll 1 s, the default) for
   10 s of wall time.

    .venv/bin/python bench/webhooks.py [--tasks 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import httpx
from apiserver import free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sqlalchemy import delete  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402
from tests import servers  # noqa: E402

from vidconv.api.webhooks.dispatcher import Dispatcher  # noqa: E402
from vidconv.api.webhooks.secretbox import SecretBox, rotate  # noqa: E402
from vidconv.db import updates  # noqa: E402
from vidconv.db.models import Task, User, WebhookEvent  # noqa: E402
from vidconv.db.session import make_engine, make_sessionmaker, upgrade  # noqa: E402
from vidconv.metrics import new_registry  # noqa: E402
from vidconv.settings import Settings  # noqa: E402
from vidconv.storage import make_storage  # noqa: E402

RECEIVER = textwrap.dedent('''
    import sys
    import uvicorn

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="error")
''')


def _user(sessions: sessionmaker[Session]) -> str:
    with sessions.begin() as s:
        user = User(username=f"b{time.monotonic_ns()}", email=f"{time.monotonic_ns()}@b.io",
                    password_hash="x")
        s.add(user)
        s.flush()
        return user.id


def _tasks(sessions: sessionmaker[Session], owner: str, n: int, url: str | None) -> list[str]:
    with sessions.begin() as s:
        tasks = [Task(owner_id=owner, conversion_type="mp4", input_key="in", output_key="o/x.mp4",
                      callback_url=url) for _ in range(n)]
        s.add_all(tasks)
        s.flush()
        return [t.id for t in tasks]


def _ends(sessions: sessionmaker[Session], task_ids: list[str]) -> float:
    started = time.perf_counter()
    for task_id in task_ids:
        updates.record_failure(sessions, task_id, error="not a video", code="bad_input")
    return (time.perf_counter() - started) / len(task_ids) * 1e6


def bench_writes(name: str, url: str, n: int, rounds: int) -> None:
    upgrade(url)
    sessions = make_sessionmaker(make_engine(url))
    owner = _user(sessions)
    plain, hooked = [], []
    for _ in range(rounds):
        plain.append(_ends(sessions, _tasks(sessions, owner, n, None)))
        hooked.append(_ends(sessions, _tasks(sessions, owner, n, "https://example.com/h")))
    p, h = statistics.median(plain), statistics.median(hooked)
    print(f"  {name:10s} end state without a callback {p:7.0f} µs, with its event {h:7.0f} µs"
          f"  (x{h / p:.2f})")


async def _bare(port: int, bodies: list[bytes]) -> float:
    queue = list(bodies)
    async with httpx.AsyncClient() as client:
        async def worker() -> None:
            while queue:
                await client.post(f"http://127.0.0.1:{port}/h", content=queue.pop(),
                                  headers={"content-type": "application/json"})
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(8)))
        return time.perf_counter() - started


async def _dispatch(settings: Settings, sessions: sessionmaker[Session], box: SecretBox,
                    owner: str, port: int, n: int) -> tuple[float, list[bytes]]:
    with sessions.begin() as s:
        s.execute(delete(WebhookEvent))
    for task_id in _tasks(sessions, owner, n, f"http://127.0.0.1:{port}/h"):
        updates.record_failure(sessions, task_id, error="not a video", code="bad_input")
    with sessions() as s:
        bodies = [e.payload.encode() for e in s.query(WebhookEvent)]
    dispatcher = Dispatcher(settings, sessions, box, make_storage(settings), new_registry())
    started = time.perf_counter()
    await dispatcher.start()
    while True:
        with sessions() as s:
            if not s.query(WebhookEvent).filter(WebhookEvent.status == "pending").count():
                break
        await asyncio.sleep(0.01)
    took = time.perf_counter() - started
    await dispatcher.stop()
    return took, bodies


async def _idle(settings: Settings, sessions: sessionmaker[Session], box: SecretBox) -> float:
    with sessions.begin() as s:
        s.execute(delete(WebhookEvent))
    dispatcher = Dispatcher(replace(settings, webhook_poll_seconds=1.0), sessions, box,
                            make_storage(settings), new_registry())
    cpu = time.process_time()
    await dispatcher.start()
    await asyncio.sleep(10)
    await dispatcher.stop()
    return time.process_time() - cpu


def bench_delivery(name: str, url: str, n: int, rounds: int) -> None:
    upgrade(url)
    sessions = make_sessionmaker(make_engine(url))
    settings = replace(Settings(), jwt_secret="b" * 48, webhook_urls="any",
                       webhook_poll_seconds=0.05)
    box = SecretBox(settings)
    owner = _user(sessions)
    rotate(sessions, box, owner)
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    try:
        servers.wait_for_port(port)
        ours, bare = [], []
        for _ in range(rounds):
            took, bodies = asyncio.run(_dispatch(settings, sessions, box, owner, port, n))
            ours.append(took)
            bare.append(asyncio.run(_bare(port, bodies)))
        idle = asyncio.run(_idle(settings, sessions, box))
    finally:
        receiver.terminate()
        receiver.wait(10)
    o, b = statistics.median(ours), statistics.median(bare)
    print(f"  {name:10s} {n} events: dispatcher {o:.2f} s ({n / o:.0f}/s), bare httpx POSTs "
          f"{b:.2f} s ({n / b:.0f}/s)  (x{o / b:.2f}); idle (poll 1 s): {idle * 1000:.0f} ms "
          "CPU in 10 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"{platform.node()} {platform.machine()}, {when}, load {load}")
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        databases = {"SQLite": lambda name: f"sqlite:///{Path(tmp) / name}.db"}
        try:
            pg = stack.enter_context(servers.postgres_server())
            databases["PostgreSQL"] = pg.create_database
        except Exception as exc:  # noqa: BLE001 - no PostgreSQL here: SQLite only
            print(f"PostgreSQL skipped: {exc}")
        print(f"end-state writes ({args.tasks} tasks x {args.rounds} rounds, median per write):")
        for name, database in databases.items():
            bench_writes(name, database("writes"), args.tasks, args.rounds)
        print(f"delivery ({args.rounds} rounds, median):")
        for name, database in databases.items():
            bench_delivery(name, database("deliver"), args.tasks, args.rounds)


if __name__ == "__main__":
    main()
