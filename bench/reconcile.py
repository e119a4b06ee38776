"""Reconcile throughput: N ConversionTasks created at once -> how long until all N Jobs exist.

Baseline, measured in the same run against the same emulator: how long the emulator takes to
create N bare objects with the same client and concurrency (no operator involved). The ratio
says how much slower the operator turns CRs into Jobs than the API server can store objects.

    .venv/bin/python bench/reconcile.py [--tasks 500] [--rounds 3] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.kubernetes.emulator import EmulatorThread  # noqa: E402
from tests.servers import free_port, wait_for_port  # noqa: E402

from vidconv import resources  # noqa: E402

NS = "default"
CT = f"/apis/{resources.GROUP}/{resources.VERSION}/namespaces/{NS}/{resources.PLURAL}"
BARE = "/api/v1/namespaces/bench/secrets"


def _task(i: int) -> dict[str, Any]:
    return {
        "apiVersion": resources.API_VERSION, "kind": resources.KIND,
        "metadata": {"name": f"ct-bench-{i:05d}", "namespace": NS},
        "spec": {"taskId": f"bench{i:05d}", "owner": "bench", "format": "mp4",
                 "input": {"bucket": "vidconv", "key": f"inputs/bench{i:05d}/a.mov"},
                 "output": {"bucket": "vidconv", "key": f"outputs/bench{i:05d}/a.mp4"}},
    }


def _bare(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"bare-{i:05d}"},
            "data": {"x": "eA=="}}


async def _create_all(url: str, path: str, bodies: list[dict[str, Any]],
                      concurrency: int) -> None:
    limit = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:
        async def one(body: dict[str, Any]) -> None:
            async with limit, session.post(url + path, json=body) as response:
                response.raise_for_status()

        await asyncio.gather(*(one(b) for b in bodies))


def _job_count(thread: EmulatorThread) -> int:
    async def count() -> int:
        return sum(1 for (res, _ns, _n), obj in thread.emulator.objects.items()
                   if res.plural == "jobs" and not obj.deleted)

    return thread.call(count())


def one_round(n: int, concurrency: int, workdir: Path) -> tuple[float, float, float]:
    """Seconds to create n bare objects, seconds from the first CR create to the n-th Job, and
    API requests per task in that time (CR creates included)."""
    with EmulatorThread() as thread:
        kubeconfig = thread.write_kubeconfig(workdir / "kubeconfig", NS)
        started = time.perf_counter()
        asyncio.run(_create_all(thread.url, BARE, [_bare(i) for i in range(n)], concurrency))
        bare = time.perf_counter() - started

        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIDCONV_")}
        env.update({
            "VIDCONV_KUBECONFIG": str(kubeconfig), "VIDCONV_NAMESPACE": NS,
            "VIDCONV_DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
            "VIDCONV_OPERATOR_LIVENESS": f"http://127.0.0.1:{port}/healthz",
            "VIDCONV_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "warning"),
        })
        from vidconv.db.session import upgrade

        upgrade(env["VIDCONV_DATABASE_URL"])
        with (workdir / "operator.log").open("ab") as log:
            # BENCH_PROFILE=file: cProfile the operator (its event loop thread).
            profile = os.environ.get("BENCH_PROFILE")
            prof = ["-m", "cProfile", "-o", profile] if profile else []
            op = subprocess.Popen([sys.executable, *prof, "-m", "vidconv.cli", "operator"],
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, 30)
            time.sleep(1.0)  # let kopf open its watches before the burst
            served = thread.emulator.served
            started = time.perf_counter()
            asyncio.run(_create_all(thread.url, CT, [_task(i) for i in range(n)], concurrency))
            while _job_count(thread) < n:
                if op.poll() is not None:
                    raise RuntimeError(f"operator died; see {workdir / 'operator.log'}")
                time.sleep(0.02)
            reconcile = time.perf_counter() - started
            per_task = (thread.emulator.served - served) / n
        finally:
            op.terminate()
            op.wait(30)
        return bare, reconcile, per_task


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    bares, reconciles, requests = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp:
        tmp = os.environ.get("BENCH_DIR", tmp)
        for i in range(args.rounds):
            workdir = Path(tmp, f"round{i}")
            workdir.mkdir()
            bare, reconcile, per_task = one_round(args.tasks, args.concurrency, workdir)
            bares.append(bare)
            reconciles.append(reconcile)
            requests.append(per_task)
            print(f"round {i + 1}: bare create {bare:.2f} s, CR -> all Jobs {reconcile:.2f} s, "
                  f"{per_task:.1f} API requests per task")
    bare, reconcile = statistics.median(bares), statistics.median(reconciles)
    n = args.tasks
    print(f"\n{platform.node()} {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}, "
          f"{n} tasks, concurrency {args.concurrency}, median of {args.rounds}")
    print(f"emulator bare create : {bare:6.2f} s  {n / bare:7.1f} objects/s")
    print(f"operator CR -> Job   : {reconcile:6.2f} s  {n / reconcile:7.1f} Jobs/s")
    print(f"ratio (reconcile / bare create): {reconcile / bare:.1f}x; "
          f"{statistics.median(requests):.1f} API requests per task until its Job exists")
    return 0


if __name__ == "__main__":
    sys.exit(main())
