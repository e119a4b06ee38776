"""Reconcile throughput: N ConversionTasks created at once -> how long until all N Jobs exist.

Against a real kube-apiserver (``tests/kubernetes/controlplane.py``: etcd and kube-apiserver
v1.35 from ``hack/k8s/build.sh``, TLS, ``Node,RBAC``, the default admission plugins, the audit
log). The CRD is applied once; each round gets two fresh namespaces (restricted Pod Security, as
in the tests), so rounds don't see each other's objects.

Baseline, same round, same aiohttp client (admin client certificate) and concurrency: creating N
bare batch/v1 Jobs, the very manifests the operator would create (``build_job`` of a fake CR with
the operator's settings), timed until the N-th create is answered. Then the real operator runs
as ``python -m vidconv.cli operator`` (SQLite database), with the chart's ServiceAccounts, Roles
and RoleBindings applied to its namespace and a TokenRequest token of its own ServiceAccount in
its kubeconfig, as in ``tests/kubernetes/fixtures.py``. N ConversionTasks are created at once;
timed from the first create until a label-selected watch on Jobs has seen all N. The ratio
(reconcile / bare) says how much longer the operator takes to turn CRs into Jobs than the API
server takes to store those Jobs directly; the issue's goal is within 2x.

API requests per task: the audit log's events of the operator's ServiceAccount (one per request,
by auditID) received between the first create and the N-th Job, over N. The bench's own creates
use the admin certificate and are not audited. A second figure counts until every CR's status
names its Job (the operator's full first pass), with a breakdown by verb and resource.

CPU seconds (user + system, from /proc) of etcd, kube-apiserver, the operator and the bench
itself while each phase is timed: on a shared machine wall times swing with the other work, the
CPU each side spends much less, and it says where the time goes.

kube-controller-manager is not started (``control_plane(controllers=False)``): the Job controller
would make 500 Pods per round (no node runs them) and write every Job's status during the very
burst being timed, and the garbage collector would delete the baseline's Jobs (their owner CR
does not exist). Neither is the operator's work; both would only add noise on the shared cores.
Without the namespace controller, the rounds' namespaces are left as they are; the whole control
plane is thrown away at the end.

    .venv/bin/python bench/reconcile.py [--tasks 500] [--rounds 3] [--concurrency 50]

BENCH_PROFILE=file: cProfile of the operator's main thread (its event loop), one file per round
(``file.1``, ``file.2``, ...). BENCH_DIR=dir: keep the operator's logs and databases there.
BENCH_LOG_LEVEL: the operator's log level (warning).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.chart.fixtures import CHART, RELEASE, parse  # noqa: E402
from tests.kubernetes.controlplane import ControlPlane, control_plane  # noqa: E402
from tests.kubernetes.fixtures import CRD, Rbac, paths  # noqa: E402
from tests.servers import free_port  # noqa: E402

from vidconv import resources  # noqa: E402
from vidconv.operator.job import build_job  # noqa: E402
from vidconv.settings import Settings  # noqa: E402

GOAL = 2.0
SERVER = ("kube-apiserver", "etcd")
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/enforce-version": "latest"}
# Watch events carry only the metadata: counting Jobs costs the API server little.
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


def _cpu(pid: int | None = None) -> float:
    """CPU seconds (user + system, all threads) a process has used: this one when pid is None."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds per named process between start() and stop()."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.used: dict[str, float] = {}

    def start(self) -> None:
        self._at = {name: _cpu(pid) for name, pid in self.pids.items()}

    def stop(self) -> None:
        self.used = {name: _cpu(pid) - self._at[name] for name, pid in self.pids.items()}

    def total(self, *names: str) -> float:
        return sum(used for name, used in self.used.items() if not names or name in names)

    def __str__(self) -> str:
        return ", ".join(f"{name} {used:.2f}" for name, used in self.used.items())


def _task(i: int, namespace: str) -> dict[str, Any]:
    task_id = f"bench{i:05d}"
    return {
        "apiVersion": resources.API_VERSION, "kind": resources.KIND,
        "metadata": {"name": resources.cr_name(task_id), "namespace": namespace},
        "spec": {"taskId": task_id, "owner": "bench", "format": "mp4",
                 "input": {"bucket": "vidconv", "key": f"inputs/{task_id}/a.mov"},
                 "output": {"bucket": "vidconv", "key": f"outputs/{task_id}/a.mp4"}},
    }


def _bare_job(i: int, namespace: str, settings: Settings) -> dict[str, Any]:
    """The Job the operator would make for task i (the CR it names as owner never exists)."""
    cr = _task(i, namespace)
    cr["metadata"]["uid"] = str(uuid.uuid4())
    return build_job(cr, settings)


async def _create_all(session: aiohttp.ClientSession, url: str, bodies: list[dict[str, Any]],
                      concurrency: int) -> None:
    limit = asyncio.Semaphore(concurrency)

    async def one(body: dict[str, Any]) -> None:
        async with limit, session.post(url, json=body) as response:
            if response.status != 201:
                raise RuntimeError(f"POST {url}: {response.status} {await response.text()}")

    await asyncio.gather(*(one(b) for b in bodies))


def _session(tls: ssl.SSLContext, concurrency: int) -> aiohttp.ClientSession:
    # One connection per request in flight (plus the watch): no request waits for a socket.
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls, limit=concurrency + 1),
                                 timeout=aiohttp.ClientTimeout(total=None, sock_connect=30))


async def _bare(cp: ControlPlane, namespace: str, bodies: list[dict[str, Any]],
                concurrency: int, meter: CpuMeter) -> float:
    async with _session(cp.admin_tls(), concurrency) as session:
        meter.start()
        started = time.perf_counter()
        await _create_all(session, cp.url + paths(namespace)["jobs"], bodies, concurrency)
        elapsed = time.perf_counter() - started
        meter.stop()
        return elapsed


async def _burst(cp: ControlPlane, namespace: str, bodies: list[dict[str, Any]],
                 concurrency: int, alive: Any, timeout: float,
                 meter: CpuMeter) -> tuple[float, float, float]:
    """Create the CRs; seconds until a watch has seen n Jobs, and the burst's wall-clock bounds."""
    jobs = cp.url + paths(namespace)["jobs"]
    selector = {"labelSelector": resources.TASK_LABEL}
    async with _session(cp.admin_tls(), concurrency) as session:
        async with session.get(jobs, params={**selector, "limit": "1"}) as r:
            r.raise_for_status()
            listed = await r.json()
        if listed["items"]:
            raise RuntimeError(f"{namespace} has Jobs before the burst")
        watch = await session.get(jobs, headers={"Accept": METADATA_ONLY}, params={
            **selector, "watch": "1", "resourceVersion": listed["metadata"]["resourceVersion"],
            "timeoutSeconds": str(int(timeout))})
        watch.raise_for_status()
        seen: set[str] = set()

        async def count() -> None:
            async for line in watch.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event["type"] == "ADDED":
                    seen.add(event["object"]["metadata"]["name"])
                    if len(seen) >= len(bodies):
                        return
                elif event["type"] == "ERROR":
                    raise RuntimeError(f"Job watch: {event['object']}")
            raise RuntimeError(f"the Job watch ended with {len(seen)} of {len(bodies)} Jobs")

        meter.start()
        wall = time.time()
        started = time.perf_counter()
        counting = asyncio.create_task(count())
        await _create_all(session, cp.url + paths(namespace)["ct"], bodies, concurrency)
        while not counting.done():
            if not alive():
                counting.cancel()
                raise RuntimeError("the operator died during the burst")
            await asyncio.wait({counting}, timeout=0.5)
        counting.result()
        elapsed = time.perf_counter() - started
        meter.stop()
        watch.close()
        return elapsed, wall, wall + elapsed


@dataclass
class Round:
    bare: float
    reconcile: float
    per_task: float  # operator requests per task until the n-th Job exists
    settled: float  # seconds from the first create until every CR's status names its Job
    settled_per_task: float
    breakdown: Counter[str] = field(default_factory=Counter)
    bare_cpu: CpuMeter | None = None  # CPU seconds per process while timed
    reconcile_cpu: CpuMeter | None = None

    @property
    def ratio(self) -> float:
        return self.reconcile / self.bare


class Bench:
    def __init__(self, cp: ControlPlane, chart: Any, tmp: Path, n: int, concurrency: int) -> None:
        self.cp, self.chart, self.tmp, self.n, self.concurrency = cp, chart, tmp, n, concurrency
        self.http = httpx.Client(base_url=cp.url, timeout=60, verify=cp.admin_tls())
        home = tmp / "home"
        home.mkdir(exist_ok=True)
        self.kubectl_env = {**os.environ, "HOME": str(home)}

    def kubectl(self, *args: str, stdin: str | None = None) -> None:
        done = subprocess.run(
            [str(self.cp.kubectl_path), "--kubeconfig", str(self.cp.root / "admin.kubeconfig"),
             *args], input=stdin, capture_output=True, text=True, env=self.kubectl_env)
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr}")

    def apply_crd(self) -> None:
        self.kubectl("apply", "--server-side", "-f", str(CRD))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                     f"crd/{resources.PLURAL}.{resources.GROUP}")

    def namespace(self, name: str) -> str:
        self.http.post("/api/v1/namespaces", json={
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": RESTRICTED}}).raise_for_status()
        return name

    def operator_kubeconfig(self, namespace: str, rbac: Rbac, workdir: Path) -> tuple[Path, str]:
        """The chart's RBAC applied to the namespace; a kubeconfig with the operator's token."""
        self.kubectl("-n", namespace, "apply", "-f", "-",
                     stdin="\n---\n".join(yaml.safe_dump(d) for d in rbac.objects))
        account = rbac.accounts["operator"]
        r = self.http.post(f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
                           json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                 "spec": {"expirationSeconds": 3600}})
        r.raise_for_status()
        path = self.cp.kubeconfig(workdir / "kubeconfig-operator", account,
                                  token=r.json()["status"]["token"], namespace=namespace)
        return path, f"system:serviceaccount:{namespace}:{account}"

    def operator_requests(self, offset: int, user: str, since: float,
                          until: float) -> dict[str, str]:
        """auditID -> "verb resource" of the user's requests received in [since, until]."""
        found: dict[str, str] = {}
        for e in self.cp.audit(offset):
            if e["user"]["username"] != user:
                continue
            at = datetime.datetime.fromisoformat(e["requestReceivedTimestamp"]).timestamp()
            if since <= at <= until:
                ref = e.get("objectRef") or {}
                what = ref.get("resource", e.get("requestURI", "?"))
                if ref.get("subresource"):
                    what += "/" + ref["subresource"]
                found[e["auditID"]] = f"{e['verb']} {what}"
        return found

    def wait_watching(self, offset: int, user: str, op: subprocess.Popen[bytes],
                      timeout: float = 60) -> None:
        """Until the operator's watches on ConversionTasks and Jobs are open (the audit log's
        ResponseStarted of each): a burst before that would time kopf's initial listing."""
        deadline = time.monotonic() + timeout
        want = {resources.PLURAL, "jobs"}
        while time.monotonic() < deadline:
            watching = {(e.get("objectRef") or {}).get("resource") for e in self.cp.audit(offset)
                        if e["user"]["username"] == user and e["verb"] == "watch"}
            if want <= watching:
                return
            if op.poll() is not None:
                raise RuntimeError("the operator exited before watching")
            time.sleep(0.1)
        raise TimeoutError(f"the operator did not open its watches in {timeout}s")

    def wait_settled(self, namespace: str, op: subprocess.Popen[bytes],
                     timeout: float = 600) -> None:
        """Until every ConversionTask's status names its Job (kopf's handler pass is done)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            items = self.http.get(paths(namespace)["ct"]).raise_for_status().json()["items"]
            if sum(1 for ct in items if (ct.get("status") or {}).get("jobName")) >= self.n:
                return
            if op.poll() is not None:
                raise RuntimeError("the operator died")
            time.sleep(0.5)  # a list of n CRs is not free: don't load the API server more
        raise TimeoutError(f"the ConversionTasks in {namespace} did not settle in {timeout}s")

    def one_round(self, index: int, profile: str | None) -> Round:
        workdir = self.tmp / f"round{index}"
        workdir.mkdir(exist_ok=True)
        bare_ns = self.namespace(f"bench-bare-{index}")
        ns = self.namespace(f"bench-reconcile-{index}")
        rbac = Rbac(parse(self.chart.render(values={}, name=RELEASE, namespace=ns)))
        kubeconfig, user = self.operator_kubeconfig(ns, rbac, workdir)
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIDCONV_")}
        env.update({
            "VIDCONV_KUBECONFIG": str(kubeconfig), "VIDCONV_NAMESPACE": ns,
            "VIDCONV_JOB_SERVICE_ACCOUNT": rbac.job_service_account,
            "VIDCONV_JOB_S3_SECRET": "vidconv-s3",
            "VIDCONV_JOB_BACKOFF_LIMIT": "2",
            "VIDCONV_DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
            "VIDCONV_OPERATOR_LIVENESS": f"http://127.0.0.1:{free_port()}/healthz",
            "VIDCONV_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "warning"),
        })
        settings = Settings.from_env({**env, "VIDCONV_NAMESPACE": bare_ns})

        # Baseline: the same Jobs, created directly (no operator running).
        servers = {name: p.proc.pid for name, p in self.cp.processes.items() if p.proc}
        bare_cpu = CpuMeter({**servers, "bench": None})
        bare = asyncio.run(_bare(self.cp, bare_ns, [_bare_job(i, bare_ns, settings)
                                                    for i in range(self.n)], self.concurrency,
                                 bare_cpu))
        stored = self.http.get(paths(bare_ns)["jobs"]).raise_for_status().json()["items"]
        if len(stored) != self.n:
            raise RuntimeError(f"{len(stored)} bare Jobs stored, not {self.n}")

        from vidconv.db.session import upgrade

        upgrade(env["VIDCONV_DATABASE_URL"])
        offset = self.cp.audit_offset()
        with (workdir / "operator.log").open("ab") as log:
            prof = ["-m", "cProfile", "-o", f"{profile}.{index + 1}"] if profile else []
            op = subprocess.Popen([sys.executable, *prof, "-m", "vidconv.cli", "operator"],
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            self.wait_watching(offset, user, op)
            offset = self.cp.audit_offset()
            burst_cpu = CpuMeter({**servers, "operator": op.pid, "bench": None})
            reconcile, since, until = asyncio.run(_burst(
                self.cp, ns, [_task(i, ns) for i in range(self.n)], self.concurrency,
                lambda: op.poll() is None, timeout=600, meter=burst_cpu))
            self.wait_settled(ns, op)
            settled_at = time.time()
            time.sleep(0.5)  # requests received before now are answered and audited
            first = self.operator_requests(offset, user, since, until)
            full = self.operator_requests(offset, user, since, settled_at)
        except BaseException:
            print(f"operator log: {workdir / 'operator.log'}", file=sys.stderr)
            raise
        finally:
            op.terminate()
            op.wait(60)
        breakdown = Counter(full.values())
        return Round(bare, reconcile, len(first) / self.n, settled_at - since,
                     len(full) / self.n, breakdown, bare_cpu, burst_cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    n = args.tasks
    import helm_python

    helm_python.disable_logging()
    rounds: list[Round] = []
    load_before = os.getloadavg()
    with (tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp,
          helm_python.Chart.load(CHART) as chart,
          control_plane(controllers=False) as cp):
        workroot = Path(os.environ.get("BENCH_DIR") or tmp)
        workroot.mkdir(parents=True, exist_ok=True)
        bench = Bench(cp, chart, workroot, n, args.concurrency)
        bench.apply_crd()
        version = bench.http.get("/version").raise_for_status().json()["gitVersion"]
        for i in range(args.rounds):
            r = bench.one_round(i, os.environ.get("BENCH_PROFILE"))
            rounds.append(r)
            top = ", ".join(f"{what} {count / n:.2f}"
                            for what, count in r.breakdown.most_common())
            print(f"round {i + 1}: bare Job create {r.bare:.2f} s ({n / r.bare:.0f}/s), "
                  f"CR -> all Jobs {r.reconcile:.2f} s ({n / r.reconcile:.0f}/s), "
                  f"ratio {r.ratio:.2f}x; operator requests per task: {r.per_task:.2f} until the "
                  f"Jobs exist, {r.settled_per_task:.2f} until every status names its Job "
                  f"({r.settled:.2f} s): {top}\n"
                  f"  CPU s while timed: bare [{r.bare_cpu}], reconcile [{r.reconcile_cpu}]",
                  flush=True)
    bare = statistics.median(r.bare for r in rounds)
    reconcile = statistics.median(r.reconcile for r in rounds)
    ratio = statistics.median(r.ratio for r in rounds)

    def cpu(phase: str, *names: str) -> float:
        """Median over the rounds of the CPU seconds the named processes (all: none named) used
        while the phase was timed."""
        return statistics.median(getattr(r, f"{phase}_cpu").total(*names) for r in rounds)

    print(f"\n{platform.node()} {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}, "
          f"kube-apiserver {version} (no controllers), {n} tasks, concurrency "
          f"{args.concurrency}, median of {args.rounds}; load average "
          f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"bare Job create    : {bare:6.2f} s  {n / bare:7.1f} Jobs/s")
    print(f"operator CR -> Job : {reconcile:6.2f} s  {n / reconcile:7.1f} Jobs/s")
    print(f"CR -> every status names its Job: "
          f"{statistics.median(r.settled for r in rounds):.2f} s")
    print(f"ratio (reconcile / bare create): {ratio:.2f}x median of the rounds' ratios "
          f"({reconcile / bare:.2f}x of the medians); goal <= {GOAL:.0f}x: "
          f"{'met' if ratio <= GOAL else 'NOT met'}")
    bare_cpu, reconcile_cpu = cpu("bare"), cpu("reconcile")
    print(f"CPU seconds while timed (all processes): bare {bare_cpu:.2f}, reconcile "
          f"{reconcile_cpu:.2f} ({reconcile_cpu / bare_cpu:.1f}x); kube-apiserver + etcd "
          f"{cpu('bare', *SERVER) * 1000 / n:.1f} ms per bare Job, "
          f"{cpu('reconcile', *SERVER) * 1000 / n:.1f} ms per task; operator "
          f"{cpu('reconcile', 'operator') * 1000 / n:.1f} ms per task")
    print(f"operator API requests per task: "
          f"{statistics.median(r.per_task for r in rounds):.2f} until its Job exists, "
          f"{statistics.median(r.settled_per_task for r in rounds):.2f} until its status names it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
