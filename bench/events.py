"""What open event streams cost the API, and how soon a row's change reaches a client.

One `vidconv serve` (SQLite, embedded) on loopback. Task rows are written straight into its
database as STARTED (no transcoder runs: the rows change only when this script writes them), and
N clients follow them with `GET /api/tasks/{id}/events` (httpx-sse), one stream per task.
Measured, in the same run:

- the server's CPU (user + system, from /proc) per second of wall time: idle with no stream (the
  baseline), then with N streams open and nothing changing;
- with N streams open, the time from a progress write (`vidconv.db.updates.record_progress`,
  as a worker makes it) committed to the matching event arriving at its client, for writes
  spread over the tasks at 20 a second.

Prints medians and the ratios to the baseline; the stream poll is every 0.25 s, so a change
waits 0.125 s on average for the next tick.

    .venv/bin/python bench/events.py [--streams 50 200] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from pathlib import Path

import httpx
from apiserver import PASSWORD, vidconv_server
from httpx_sse import aconnect_sse

from vidconv.db import updates
from vidconv.db.models import Task, TaskState
from vidconv.db.session import make_engine, make_sessionmaker


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = 100  # USER_HZ
    return (int(fields[11]) + int(fields[12])) / ticks


def cpu_share(pid: int, seconds: float) -> float:
    start, began = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - start) / (time.monotonic() - began)


async def follow(url: str, headers: dict[str, str], task_id: str, ready: asyncio.Event,
                 seen: dict[str, list[tuple[float, float]]], count: list[int], total: int,
                 client: httpx.AsyncClient) -> None:
    async with aconnect_sse(client, "GET", f"{url}/api/tasks/{task_id}/events",
                            headers=headers) as source:
        async for event in source.aiter_sse():
            if event.event == "progress":
                seen.setdefault(task_id, []).append(
                    (time.monotonic(), json.loads(event.data)["progress"]))
                if len(seen[task_id]) == 1:
                    count[0] += 1
                    if count[0] == total:
                        ready.set()


async def measure(url: str, headers: dict[str, str], pid: int, task_ids: list[str],
                  db_url: str, seconds: float) -> tuple[float, list[float]]:
    seen: dict[str, list[tuple[float, float]]] = {}
    ready, count = asyncio.Event(), [0]
    limits = httpx.Limits(max_connections=len(task_ids) + 10)
    async with httpx.AsyncClient(timeout=None, limits=limits) as client:
        streams = [asyncio.create_task(follow(url, headers, t, ready, seen, count,
                                              len(task_ids), client)) for t in task_ids]
        await asyncio.wait_for(ready.wait(), 120)
        busy = await asyncio.to_thread(cpu_share, pid, seconds)
        # Progress writes at 20/s, each to a random task; when did its event arrive?
        sessions = make_sessionmaker(make_engine(db_url))
        writes: list[tuple[str, float, float]] = []
        progress = {t: 1.0 for t in task_ids}
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            task_id = random.choice(task_ids)
            progress[task_id] += 0.5
            await asyncio.to_thread(updates.record_progress, sessions, task_id,
                                    progress[task_id], fps=30.0, speed=1.0)
            writes.append((task_id, progress[task_id], time.monotonic()))
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # the last writes' events
        for stream in streams:
            stream.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    delays = []
    for task_id, value, written in writes:
        arrived = [t for t, p in seen.get(task_id, []) if p >= value and t >= written]
        if arrived:
            delays.append(min(arrived) - written)
    assert len(delays) >= 0.95 * len(writes), (len(delays), len(writes))
    return busy, delays


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with vidconv_server(VIDCONV_WORKERS="1") as server:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            http.post("/api/auth/signup", json={
                "username": "bench", "email": "bench@example.com",
                "password1": PASSWORD, "password2": PASSWORD}).raise_for_status()
            r = http.post("/api/auth/login", json={"username": "bench", "password": PASSWORD})
            r.raise_for_status()
        owner, headers = r.json()["id"], {"Authorization": f"Bearer {r.json()['token']}"}
        db_url = f"sqlite:///{server.data_dir / 'vidconv.db'}"
        sessions = make_sessionmaker(make_engine(db_url))
        idle = cpu_share(server.pid, args.seconds)
        print(f"idle server: {idle * 100:.2f} % of a core")
        for n in args.streams:
            with sessions.begin() as s:
                rows = [Task(owner_id=owner, conversion_type="mp4", input_key=f"in/{i}",
                             output_key=f"out/{i}", status=TaskState.STARTED.value,
                             progress=1.0) for i in range(n)]
                s.add_all(rows)
                s.flush()
                ids = [row.id for row in rows]
            busy, delays = asyncio.run(measure(server.url, headers, server.pid, ids, db_url,
                                               args.seconds))
            delays.sort()
            p95 = delays[int(0.95 * (len(delays) - 1))]
            print(f"{n} streams open: {busy * 100:.2f} % of a core "
                  f"({busy / idle if idle else float('inf'):.1f}x idle); write -> event "
                  f"median {statistics.median(delays) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms "
                  f"({len(delays)} writes)")


if __name__ == "__main__":
    main()
