"""A kubelet and Job controller for the emulator: Jobs run as local processes.

It watches Jobs over HTTP like a controller, and for each one that is not suspended runs the
container's command here (``python`` is this interpreter) with the container's environment:
secretKeyRef values come from the Secret stored in the emulator, emptyDir mounts become temp
dirs. It records a Pod per attempt with the container's termination message, and sets the Job's
status and conditions as Kubernetes 1.31+ does: SuccessCriteriaMet then Complete; FailureTarget
then Failed with reason PodFailurePolicy (a FailJob rule matched), BackoffLimitExceeded (more
failed pods than backoffLimit) or DeadlineExceeded (activeDeadlineSeconds). A deleted Job or Pod
kills its process, as the kubelet would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

TERMINATION_LIMIT = 4096


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Kubelet:
    def __init__(self, url: str, extra_env: Mapping[str, str] | None = None,
                 token: str | None = None) -> None:
        self.url = url.rstrip("/")
        # "$(SERVICE_ACCOUNT)" in a value becomes the pod's namespace/serviceAccountName, so a
        # container's API calls carry its pod's identity (tests/kubernetes/rbac.py).
        self.extra_env = dict(extra_env or {})
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.runs: dict[str, asyncio.Task[None]] = {}  # job uid -> its runner
        self.procs: dict[str, asyncio.subprocess.Process] = {}  # job uid -> running process
        self.pods_started = 0
        # freeze: each container stops (SIGSTOP) right after it starts, until thaw(): a test can
        # act while a conversion is running, without depending on how fast it runs.
        self.freeze = False
        self.frozen: list[int] = []
        self._session: aiohttp.ClientSession | None = None
        self._watchers: list[asyncio.Task[None]] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="kubelet-")

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(headers=self.headers)
        self._watchers = [
            asyncio.create_task(self._watch("/apis/batch/v1/jobs", self._on_job)),
            asyncio.create_task(self._watch("/api/v1/pods", self._on_pod)),
        ]

    async def stop(self) -> None:
        for task in [*self._watchers, *self.runs.values()]:
            task.cancel()
        for proc in list(self.procs.values()):
            _kill(proc)
        for task in [*self._watchers, *self.runs.values()]:
            with contextlib.suppress(BaseException):
                await task
        if self._session is not None:
            await self._session.close()
        self._tmp.cleanup()

    async def thaw(self) -> None:
        """Let the frozen containers run on; new ones are no longer frozen."""
        self.freeze = False
        for pid in self.frozen:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGCONT)
        self.frozen.clear()

    def running_pids(self) -> list[int]:
        return [proc.pid for proc in self.procs.values() if proc.returncode is None]

    # -- API calls ---------------------------------------------------------------------------

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        assert self._session is not None
        headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
        async with self._session.request(
            method, self.url + path, json=body, headers=headers
        ) as response:
            if response.status == 404:
                return None
            response.raise_for_status()
            return await response.json()

    async def _watch(self, path: str, handle: Any) -> None:
        assert self._session is not None
        async with self._session.get(self.url + path, params={"watch": "true"},
                                     timeout=aiohttp.ClientTimeout(total=None)) as response:
            async for line in response.content:
                if line.strip():
                    event = json.loads(line)
                    await handle(event["type"], event["object"])

    # -- the Job controller --------------------------------------------------------------------

    async def _on_job(self, kind: str, job: dict[str, Any]) -> None:
        uid = job["metadata"]["uid"]
        if kind == "DELETED":
            self._stop_job(uid)
            return
        if uid in self.runs or job["spec"].get("suspend"):
            return
        if any(c.get("type") in ("Complete", "Failed") for c in
               (job.get("status") or {}).get("conditions") or []):
            return
        self.runs[uid] = asyncio.create_task(self._run_job(job))

    async def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        if kind == "DELETED":
            for ref in pod["metadata"].get("ownerReferences") or []:
                self._stop_job(ref["uid"])

    def _stop_job(self, uid: str) -> None:
        proc = self.procs.pop(uid, None)
        if proc is not None:
            _kill(proc)
        run = self.runs.get(uid)
        if run is not None:
            run.cancel()

    async def _run_job(self, job: dict[str, Any]) -> None:
        meta, spec = job["metadata"], job["spec"]
        ns, name = meta["namespace"], meta["name"]
        jobs = f"/apis/batch/v1/namespaces/{ns}/jobs/{name}/status"
        started = _now()
        deadline = spec.get("activeDeadlineSeconds")
        loop = asyncio.get_running_loop()
        ends_at = None if deadline is None else loop.time() + float(deadline)
        failed = 0
        for attempt in range(int(spec.get("backoffLimit", 6)) + 1):
            await self._request("PATCH", jobs, {"status": {
                "startTime": started, "active": 1, "ready": 1, "failed": failed}})
            pod = await self._create_pod(job, attempt)
            remaining = None if ends_at is None else max(0.0, ends_at - loop.time())
            code, message = await self._run_container(job, pod, remaining)
            if code is None:  # the deadline passed: the Job fails as a whole
                await self._finish_pod(pod, 137, "", "DeadlineExceeded")
                await self._fail(jobs, failed + 1, "DeadlineExceeded",
                                 "Job was active longer than specified deadline")
                return
            await self._finish_pod(pod, code, message, "Completed" if code == 0 else "Error")
            if code == 0:
                now = _now()
                await self._request("PATCH", jobs, {"status": {
                    "active": 0, "ready": 0, "succeeded": 1, "failed": failed,
                    "completionTime": now, "conditions": [
                        _cond("SuccessCriteriaMet", "CompletionsReached",
                              "Reached expected number of succeeded pods", now),
                        _cond("Complete", "CompletionsReached",
                              "Reached expected number of succeeded pods", now)]}})
                return
            failed += 1
            rule = _matching_rule(spec, code)
            if rule is not None and rule[1].get("action") == "FailJob":
                await self._fail(jobs, failed, "PodFailurePolicy",
                                 f"Container transcoder for pod {ns}/{pod['metadata']['name']} "
                                 f"failed with exit code {code} matching FailJob rule at index "
                                 f"{rule[0]}")
                return
        await self._fail(jobs, failed, "BackoffLimitExceeded",
                         "Job has reached the specified backoff limit")

    async def _fail(self, path: str, failed: int, reason: str, message: str) -> None:
        now = _now()
        await self._request("PATCH", path, {"status": {
            "active": 0, "ready": 0, "failed": failed, "conditions": [
                _cond("FailureTarget", reason, message, now),
                _cond("Failed", reason, message, now)]}})

    # -- the kubelet ---------------------------------------------------------------------------

    async def _create_pod(self, job: dict[str, Any], attempt: int) -> dict[str, Any]:
        meta = job["metadata"]
        template = job["spec"]["template"]
        labels = {**(template.get("metadata") or {}).get("labels", {}),
                  "job-name": meta["name"], "batch.kubernetes.io/job-name": meta["name"],
                  "controller-uid": meta["uid"], "batch.kubernetes.io/controller-uid": meta["uid"]}
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": f"{meta['name']}-{attempt}{os.urandom(2).hex()}",
                "namespace": meta["namespace"], "labels": labels,
                "ownerReferences": [{
                    "apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                    "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": template["spec"],
            "status": {"phase": "Running", "startTime": _now()},
        }
        self.pods_started += 1
        created: dict[str, Any] = await self._request(
            "POST", f"/api/v1/namespaces/{meta['namespace']}/pods", pod)
        return created

    async def _finish_pod(self, pod: dict[str, Any], code: int, message: str,
                          reason: str) -> None:
        meta = pod["metadata"]
        container = pod["spec"]["containers"][0]["name"]
        await self._request(
            "PATCH", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
            {"status": {
                "phase": "Succeeded" if code == 0 else "Failed",
                "containerStatuses": [{
                    "name": container, "ready": False, "restartCount": 0,
                    "state": {"terminated": {
                        "exitCode": code, "reason": reason, "message": message,
                        "startedAt": pod["status"]["startTime"], "finishedAt": _now()}}}]}})

    async def _run_container(self, job: dict[str, Any], pod: dict[str, Any],
                             timeout: float | None) -> tuple[int | None, str]:
        """Run the container's command; (exit code, termination message), (None, "") on timeout."""
        spec = pod["spec"]
        container = spec["containers"][0]
        workdir = Path(tempfile.mkdtemp(dir=self._tmp.name, prefix=pod["metadata"]["name"]))
        mounts = {}
        for mount in container.get("volumeMounts") or []:
            path = workdir / mount["name"]
            path.mkdir()
            mounts[mount["mountPath"]] = str(path)
        env = dict(os.environ)
        for var in container.get("env") or []:
            env[var["name"]] = await self._value(pod["metadata"]["namespace"], var)
        for var, value in list(env.items()):  # emptyDir paths -> the temp dirs
            for mount_path, local in mounts.items():
                if value == mount_path or value.startswith(mount_path + "/"):
                    env[var] = local + value[len(mount_path):]
        termination_log = workdir / "termination-log"
        termination_log.touch()
        account = f"{pod['metadata']['namespace']}/{spec.get('serviceAccountName') or 'default'}"
        env.update({k: v.replace("$(SERVICE_ACCOUNT)", account)
                    for k, v in self.extra_env.items()})
        env["VIDCONV_TERMINATION_LOG"] = str(termination_log)
        command = list(container["command"]) + list(container.get("args") or [])
        if command[0] == "python":
            command[0] = sys.executable
        log_path = workdir / "log"
        with log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                *command, env=env, cwd=workdir, stdout=log, stderr=subprocess_stdout(),
                start_new_session=True)
            self.procs[job["metadata"]["uid"]] = proc
            if self.freeze:
                os.killpg(proc.pid, signal.SIGSTOP)
                self.frozen.append(proc.pid)
            try:
                code = await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                _kill(proc)
                await proc.wait()
                return None, ""
            finally:
                self.procs.pop(job["metadata"]["uid"], None)
        message = termination_log.read_text()[:TERMINATION_LIMIT]
        if not message and code != 0 and (
            container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        ):
            message = "\n".join(log_path.read_text(errors="replace").splitlines()[-80:])
            message = message[-2048:]
        return code, message

    async def _value(self, namespace: str, var: Mapping[str, Any]) -> str:
        if "value" in var:
            return str(var["value"])
        ref = (var.get("valueFrom") or {}).get("secretKeyRef")
        if ref is None:
            raise NotImplementedError(f"env source of {var['name']}")
        secret = await self._request("GET", f"/api/v1/namespaces/{namespace}/secrets/{ref['name']}")
        if secret is None:
            raise LookupError(f"secret {ref['name']} not found (CreateContainerConfigError)")
        if ref["key"] in (secret.get("stringData") or {}):
            return str(secret["stringData"][ref["key"]])
        return base64.b64decode(secret["data"][ref["key"]]).decode()


def subprocess_stdout() -> int:
    import subprocess

    return subprocess.STDOUT


def _cond(kind: str, reason: str, message: str, now: str) -> dict[str, Any]:
    return {"type": kind, "status": "True", "reason": reason, "message": message,
            "lastProbeTime": now, "lastTransitionTime": now}


def _matching_rule(spec: Mapping[str, Any], code: int) -> tuple[int, Mapping[str, Any]] | None:
    """The first podFailurePolicy rule whose onExitCodes match (onPodConditions never do here)."""
    rules = (spec.get("podFailurePolicy") or {}).get("rules") or []
    for index, rule in enumerate(rules):
        on = rule.get("onExitCodes")
        if not on:
            continue
        hit = code in on.get("values", [])
        if (on.get("operator") == "In") == hit:
            return index, rule
    return None


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
