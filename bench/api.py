"""Request overhead of a vidconv endpoint against a bare Starlette endpoint, same server setup.

Both run under uvicorn (one process each, the same flags) on loopback; a client sends the same
number of requests with the same concurrency to each, interleaved in rounds. Measured:

- vidconv ``GET /api/tasks`` (JWT check, SQLite query, 20 tasks listed, JSON)
- vidconv ``GET /healthz`` (routing + error handling stack only)
- bare Starlette: one route returning a JSON body of the same size as the task list

Prints median latency and throughput per endpoint and the ratios to the bare endpoint.

    .venv/bin/python bench/api.py [--requests 2000] [--concurrency 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
from apiserver import free_port, vidconv_server

BARE_APP = textwrap.dedent('''
    import json, sys
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    import uvicorn

    BODY = json.loads(sys.argv[2])

    async def tasks(request):
        return JSONResponse(BODY)

    app = Starlette(routes=[Route("/api/tasks", tasks)])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
''')


async def load(url: str, headers: dict[str, str], requests: int, concurrency: int
               ) -> tuple[float, float]:
    """(median latency ms, requests per second)."""
    latencies: list[float] = []
    remaining = requests

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            t = time.perf_counter()
            r = await client.get(url, headers=headers)
            latencies.append(time.perf_counter() - t)
            assert r.status_code == 200, r.text

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        await client.get(url, headers=headers)  # warm the connection pool
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return statistics.median(latencies) * 1000, requests / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with vidconv_server(VIDCONV_WORKERS="1") as server:
        auth = server.login()
        clip = b"not a video, the conversion fails quickly"
        for _ in range(20):
            httpx.post(server.url + "/api/tasks", headers=auth, timeout=30,
                       files={"file": ("a.mp4", clip)}, data={"conversion_type": "mp4"}
                       ).raise_for_status()
        body = httpx.get(server.url + "/api/tasks", headers=auth).json()
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp, "bare.py")
            script.write_text(BARE_APP)
            port = free_port()
            bare = subprocess.Popen([sys.executable, str(script), str(port), json.dumps(body)],
                                    env=os.environ.copy())
            try:
                bare_url = f"http://127.0.0.1:{port}/api/tasks"
                deadline = time.monotonic() + 30
                while True:
                    try:
                        httpx.get(bare_url)
                        break
                    except httpx.HTTPError:
                        assert time.monotonic() < deadline, "bare server did not start"
                        time.sleep(0.1)
                targets = {
                    "bare Starlette /api/tasks": (bare_url, {}),
                    "vidconv GET /healthz": (server.url + "/healthz", {}),
                    "vidconv GET /api/tasks": (server.url + "/api/tasks", auth),
                }
                results: dict[str, list[tuple[float, float]]] = {k: [] for k in targets}
                for _ in range(args.rounds):
                    for name, (url, headers) in targets.items():
                        results[name].append(asyncio.run(
                            load(url, headers, args.requests, args.concurrency)))
            finally:
                bare.send_signal(signal.SIGTERM)
                bare.wait(10)

    print(f"{args.requests} requests x {args.rounds} rounds, concurrency {args.concurrency}, "
          f"{os.cpu_count()} cores, client in the same machine")
    base_ms = statistics.median(r[0] for r in results["bare Starlette /api/tasks"])
    base_rps = statistics.median(r[1] for r in results["bare Starlette /api/tasks"])
    for name, runs in results.items():
        ms = statistics.median(r[0] for r in runs)
        rps = statistics.median(r[1] for r in runs)
        print(f"  {name:28s} median {ms:6.2f} ms  {rps:7.0f} req/s  "
              f"latency x{ms / base_ms:.2f}  throughput x{rps / base_rps:.2f}")


if __name__ == "__main__":
    main()
