"""The one stand-in left: a node agent that runs pods as local processes (no container runtime).

It registers a real Node, binds pending pods to it (as the scheduler would, with the scheduler's
identity) and runs each pod bound to it (with the node's identity, so the Node authorizer and
NodeRestriction decide what it may read and write):

- the environment is the pod's: plain values with ``$(VAR)`` expansion, ``secretKeyRef``,
  ``configMapKeyRef`` and ``fieldRef`` read through the API, plus ``KUBERNETES_SERVICE_HOST/PORT``
  pointing at the API server (there is no kube-proxy: the Service's IP would lead nowhere);
- each container gets its own mount namespace and root: an overlay over this machine's root (the
  "image"), a private ``/dev``, the pod's volumes bind-mounted at their mountPaths (emptyDir, the
  projected ServiceAccount token with its CA and namespace from the TokenRequest API, Secrets and
  ConfigMaps), the termination-message file, read-only when the container asks for it, then
  ``setpriv`` to the pod's user with no new privileges and no capabilities;
- ``Running``, then the exit code and termination message, go to ``pods/status``; a deleted pod
  gets SIGTERM, its grace period, SIGKILL, then the final delete;
- a container with a ``readinessProbe`` (``httpGet`` or ``tcpSocket``, on 127.0.0.1: every pod
  shares this machine's network) is Ready once the probe passes, as the kubelet decides it, so a
  Deployment becomes available only when its pods answer; without one it is Ready when it runs.
  Liveness probes are not run and a container that ends is not restarted.

Images are this machine's root with the test's virtualenv first on PATH; a command left to the
image comes from the repository's Dockerfile for it (ENTRYPOINT and CMD).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("tests.node")
REPO = Path(__file__).resolve().parents[2]
NODE_NAME = "vidconv-node"
# What the stand-in image must show whatever is mounted over it: the checkout (an editable
# install) and the interpreter's environment.
IMAGE_PATHS = sorted({os.path.realpath(p) for p in (REPO, sys.prefix, sys.base_prefix)})
TERMINATION_LIMIT = 4096
LOG_TAIL_LINES = 80
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
# How long a container's set-up is retried when the API server refuses what it reads (the Node
# authorizer learns of a binding from its own watch, a moment after the agent does).
SETUP_RETRY_SECONDS = 30
DOCKERFILES = {"vidconv-api": "api/Dockerfile", "vidconv-operator": "operator/Dockerfile",
               "vidconv-transcoder": "transcoder-image/Dockerfile"}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def image_command(image: str) -> list[str]:
    """ENTRYPOINT + CMD of one of our images, read from its Dockerfile."""
    repo = image.rsplit("/", 1)[-1].split(":")[0].split("@")[0]
    dockerfile = DOCKERFILES.get(repo)
    if dockerfile is None:
        raise ValueError(f"the node has no image {image!r}")
    found: dict[str, list[str]] = {}
    for line in (REPO / dockerfile).read_text().splitlines():
        word, _, rest = line.partition(" ")
        if word in ("ENTRYPOINT", "CMD"):
            found[word] = json.loads(rest)
    return found.get("ENTRYPOINT", []) + found.get("CMD", [])


_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion (``$$`` escapes; unknown names stay as they are)."""
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), value).replace("$$", "$")


@dataclass
class Container:
    """One pod's one container, running."""

    pod: dict[str, Any]
    spec: dict[str, Any]
    dir: Path
    proc: subprocess.Popen[bytes] | None = None
    started: str = ""
    ready: bool = False
    done: bool = False  # the final status is written: no probe may report after it
    deleting: bool = False
    status_lock: threading.Lock = field(default_factory=threading.Lock)
    logs: Path = field(init=False)
    termination: Path = field(init=False)

    def __post_init__(self) -> None:
        self.logs = self.dir / "log"
        self.termination = self.dir / "termination-log"

    @property
    def uid(self) -> str:
        return str(self.pod["metadata"]["uid"])


class NodeAgent:
    def __init__(self, node_api: client.ApiClient, scheduler_api: client.ApiClient,
                 apiserver_port: int) -> None:
        self.core = client.CoreV1Api(node_api)
        self.scheduler = client.CoreV1Api(scheduler_api)
        self.port = apiserver_port
        self.root = Path(tempfile.mkdtemp(prefix="vidconv-node-"))
        self.running: dict[str, Container] = {}
        self.finished: set[str] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        # freeze: a container is stopped (SIGSTOP, as the cgroup freezer pauses one) right after
        # it starts, until thaw(); a test can act while a conversion runs, however fast it is.
        self.freeze = False
        self.frozen: list[int] = []
        self._threads: list[threading.Thread] = []

    # --- life of the agent ---

    def start(self) -> NodeAgent:
        self._register()
        # The scheduler's half binds what no node has; the kubelet's half runs what is ours.
        for name, api, selector, handle in (
                ("scheduler", self.scheduler, "spec.nodeName=", self._bind),
                ("node-agent", self.core, f"spec.nodeName={NODE_NAME}", self._handle)):
            t = threading.Thread(target=self._watch_pods, args=(api, selector, handle),
                                 name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            containers = list(self.running.values())
        for c in containers:
            self._signal(c, signal.SIGKILL)
        for t in self._threads:
            t.join(10)
        shutil.rmtree(self.root, ignore_errors=True)

    def thaw(self) -> None:
        self.freeze = False
        for pid in self.frozen:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGCONT)
        self.frozen.clear()

    def pause(self, pod_uid: str) -> None:
        """Stop one running pod's container (SIGSTOP) until thaw()."""
        with self.lock:
            c = self.running[pod_uid]
        assert c.proc is not None
        os.killpg(c.proc.pid, signal.SIGSTOP)
        self.frozen.append(c.proc.pid)

    def resume(self, pod_uid: str) -> None:
        """Let one paused pod's container go on (SIGCONT)."""
        with self.lock:
            c = self.running[pod_uid]
        assert c.proc is not None
        os.killpg(c.proc.pid, signal.SIGCONT)
        self.frozen.remove(c.proc.pid)

    def running_pids(self) -> list[int]:
        with self.lock:
            return [c.proc.pid for c in self.running.values()
                    if c.proc is not None and c.proc.poll() is None]

    def _register(self) -> None:
        body = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE_NAME, "labels": {
                "kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux"}},
        }
        with contextlib.suppress(ApiException):  # 409: registered by an earlier session
            self.core.create_node(body)
        cpu, memory = os.cpu_count() or 1, os.sysconf("SC_PAGE_SIZE") * os.sysconf(
            "SC_PHYS_PAGES")
        capacity = {"cpu": str(cpu), "memory": str(memory), "pods": "110"}
        self.core.patch_node_status(NODE_NAME, {"status": {
            "capacity": capacity, "allocatable": capacity,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": NODE_NAME}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "vidconv test node agent", "lastHeartbeatTime": _now(),
                            "lastTransitionTime": _now()}],
            "nodeInfo": {"kubeletVersion": "vidconv-node-agent", "operatingSystem": "linux",
                         "architecture": "amd64", "containerRuntimeVersion": "local-process",
                         "kernelVersion": os.uname().release, "osImage": "host",
                         "kubeProxyVersion": "", "machineID": "", "systemUUID": "",
                         "bootID": ""},
        }})

    # --- following pods ---

    def _watch_pods(self, api: client.CoreV1Api, selector: str,
                    handle: Callable[[dict[str, Any]], None]) -> None:
        """List, then watch from the list's resourceVersion; relist when the watch expires."""
        while not self.stopping.is_set():
            try:
                listed = api.list_pod_for_all_namespaces(field_selector=selector)
                for pod in listed.items:
                    handle(api.api_client.sanitize_for_serialization(pod))
                stream = watch.Watch().stream(
                    api.list_pod_for_all_namespaces, field_selector=selector,
                    resource_version=listed.metadata.resource_version, timeout_seconds=10)
                for event in stream:
                    if self.stopping.is_set():
                        return
                    if event["type"] in ("ADDED", "MODIFIED"):
                        handle(event["raw_object"])
            except ApiException as exc:
                if exc.status != 410:  # 410: expired, relist
                    log.warning("pod watch: %s", exc)
                    time.sleep(0.5)
            except Exception as exc:  # noqa: BLE001 - the agent keeps going, as a kubelet does
                if not self.stopping.is_set():
                    log.warning("pod watch: %s", exc)
                    time.sleep(0.5)

    def _handle(self, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        uid = meta["uid"]
        with self.lock:
            container = self.running.get(uid)
            done = uid in self.finished
        if meta.get("deletionTimestamp"):
            if container is not None:
                container.deleting = True  # one still being set up never starts
            threading.Thread(target=self._delete, args=(pod, container), daemon=True).start()
        elif container is None and not done and pod.get("status", {}).get("phase") in (
                None, "Pending"):
            with self.lock:
                if uid in self.running:
                    return
                c = Container(pod, spec["containers"][0], self.root / uid)
                self.running[uid] = c
            threading.Thread(target=self._run, args=(c,), name=f"pod-{meta['name']}",
                             daemon=True).start()

    def _bind(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            return
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": meta["name"], "uid": meta["uid"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": NODE_NAME}}
        try:
            self.scheduler.create_namespaced_binding(meta["namespace"], body,
                                                     _preload_content=False)
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone, or bound meanwhile
                log.warning("binding %s: %s", meta["name"], exc)

    # --- running a container ---

    def _run(self, c: Container) -> None:
        meta = c.pod["metadata"]
        deadline = time.monotonic() + SETUP_RETRY_SECONDS
        while True:
            try:
                shutil.rmtree(c.dir, ignore_errors=True)
                c.dir.mkdir(parents=True)
                env = self._environment(c)
                mounts = self._volumes(c)
                argv = self._argv(c, env, mounts)
                probe = self._readiness(c)
                break
            except ApiException as exc:
                # As a kubelet, which keeps the container waiting and tries again: right after a
                # binding the Node authorizer may not know yet that the pod's Secrets are ours.
                if exc.status in (403, 404) and time.monotonic() < deadline and not (
                        self.stopping.is_set() or c.deleting):
                    time.sleep(0.2)
                    continue
                self._config_error(c, exc)
                return
            except Exception as exc:  # noqa: BLE001 - as a kubelet: the pod fails, with the reason
                self._config_error(c, exc)
                return
        if c.deleting:
            self._finish(c, 137, started=False)
            return
        with c.logs.open("wb") as out:
            c.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        c.started = _now()
        if self.freeze:
            os.killpg(c.proc.pid, signal.SIGSTOP)
            self.frozen.append(c.proc.pid)
        c.ready = probe is None
        self._status(c, {"phase": "Running", "startTime": c.started, **self._ips()}, {
            "running": {"startedAt": c.started}}, ready=c.ready)
        if probe is not None:
            threading.Thread(target=self._probe, args=(c, *probe), name=f"probe-{meta['name']}",
                             daemon=True).start()
        code = c.proc.wait()
        self._finish(c, code if code >= 0 else 128 - code)

    def _config_error(self, c: Container, exc: Exception) -> None:
        log.warning("pod %s can't start: %s", c.pod["metadata"]["name"], exc)
        self._finish(c, 128, f"CreateContainerConfigError: {exc}", started=False)

    # --- readiness ---

    def _readiness(self, c: Container) -> tuple[Callable[[], bool], dict[str, Any]] | None:
        """The container's readiness check and its probe settings, or None without a probe."""
        probe = c.spec.get("readinessProbe")
        if not probe:
            return None
        if "httpGet" in probe:
            get = probe["httpGet"]
            scheme = str(get.get("scheme", "HTTP")).lower()
            url = (f"{scheme}://{get.get('host') or '127.0.0.1'}:{self._port(c, get['port'])}"
                   f"{get.get('path') or '/'}")
            headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
            timeout = float(probe.get("timeoutSeconds", 1))

            def check() -> bool:
                try:
                    r = httpx.get(url, headers=headers, timeout=timeout, verify=False)
                except httpx.HTTPError:
                    return False
                return 200 <= r.status_code < 400  # as the kubelet: 2xx and 3xx pass

            return check, probe
        if "tcpSocket" in probe:
            address = (probe["tcpSocket"].get("host") or "127.0.0.1",
                       self._port(c, probe["tcpSocket"]["port"]))

            def connect() -> bool:
                try:
                    socket.create_connection(address, timeout=probe.get("timeoutSeconds", 1)
                                             ).close()
                except OSError:
                    return False
                return True

            return connect, probe
        raise ValueError(f"readinessProbe {sorted(probe)}: the node agent runs httpGet and "
                         "tcpSocket probes only")

    @staticmethod
    def _port(c: Container, port: int | str) -> int:
        """A probe's port: a number, or the name of one of the container's ports."""
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for p in c.spec.get("ports") or []:
            if p.get("name") == port:
                return int(p["containerPort"])
        raise ValueError(f"probe port {port!r} is not one of the container's ports")

    def _probe(self, c: Container, check: Callable[[], bool], probe: dict[str, Any]) -> None:
        """The kubelet's prober: after initialDelaySeconds, every periodSeconds; successThreshold
        passes in a row make the container Ready, failureThreshold failures in a row unready."""
        assert c.proc is not None
        period = float(probe.get("periodSeconds", 10))
        successes = int(probe.get("successThreshold", 1))
        failures = int(probe.get("failureThreshold", 3))
        passed = failed = 0
        self.stopping.wait(float(probe.get("initialDelaySeconds", 0)))
        while c.proc.poll() is None and not self.stopping.is_set():
            if check():
                passed, failed = passed + 1, 0
            else:
                passed, failed = 0, failed + 1
            ready = True if passed >= successes else False if failed >= failures else c.ready
            with c.status_lock:
                if ready != c.ready and not c.done and c.proc.poll() is None:
                    c.ready = ready
                    with contextlib.suppress(ApiException):  # deleted meanwhile
                        self._status(c, {"phase": "Running", "startTime": c.started,
                                         **self._ips()},
                                     {"running": {"startedAt": c.started}}, ready=ready)
            self.stopping.wait(period)

    def _ips(self) -> dict[str, Any]:
        return {"hostIP": "127.0.0.1", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}

    def _finish(self, c: Container, code: int, message: str = "", started: bool = True) -> None:
        with self.lock:
            self.finished.add(c.uid)
            self.running.pop(c.uid, None)
        if c.termination.exists():
            message = c.termination.read_bytes()[:TERMINATION_LIMIT].decode(errors="replace")
        policy = c.spec.get("terminationMessagePolicy", "File")
        if not message and code != 0 and policy == "FallbackToLogsOnError" and c.logs.exists():
            tail = c.logs.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            message = "\n".join(tail)[-2048:]
        terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                      "startedAt": c.started or _now(), "finishedAt": _now()}
        if message:
            terminated["message"] = message
        phase = "Succeeded" if code == 0 else "Failed"
        with c.status_lock, contextlib.suppress(ApiException):  # the pod may be gone already
            c.done, c.ready = True, False
            self._status(c, {"phase": phase, **self._ips()}, {"terminated": terminated},
                         ready=False)

    def _status(self, c: Container, status: dict[str, Any], state: dict[str, Any],
                ready: bool) -> None:
        meta = c.pod["metadata"]
        flag = "True" if ready else "False"
        conditions = [{"type": t, "status": s, "lastTransitionTime": _now()} for t, s in (
            ("PodScheduled", "True"), ("Initialized", "True"), ("ContainersReady", flag),
            ("Ready", flag))]
        body = {"status": {**status, "conditions": conditions, "containerStatuses": [{
            "name": c.spec["name"], "image": c.spec["image"], "imageID": c.spec["image"],
            "containerID": f"local://{c.proc.pid if c.proc else 0}", "ready": ready,
            "restartCount": 0, "started": "running" in state, "state": state}]}}
        self.core.patch_namespaced_pod_status(meta["name"], meta["namespace"], body)

    def _delete(self, pod: dict[str, Any], c: Container | None) -> None:
        meta = pod["metadata"]
        if c is not None and c.proc is not None and c.proc.poll() is None:
            self._signal(c, signal.SIGTERM)
            grace = int(meta.get("deletionGracePeriodSeconds") or 30)
            try:
                c.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal(c, signal.SIGKILL)
                c.proc.wait(10)
        # The final delete: the kubelet says the containers are gone.
        with contextlib.suppress(ApiException):
            self.core.delete_namespaced_pod(meta["name"], meta["namespace"], body={
                "gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}})

    def _signal(self, c: Container, sig: int) -> None:
        if c.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(c.proc.pid, sig)
            if sig == signal.SIGTERM:
                os.killpg(c.proc.pid, signal.SIGCONT)  # a frozen container must see it

    # --- what a container gets ---

    def _environment(self, c: Container) -> dict[str, str]:
        meta = c.pod["metadata"]
        ns = meta["namespace"]
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
               "HOSTNAME": meta["name"],
               "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.port)}
        fields = {"metadata.name": meta["name"], "metadata.namespace": ns,
                  "metadata.uid": meta["uid"], "spec.nodeName": NODE_NAME,
                  "spec.serviceAccountName": c.pod["spec"].get("serviceAccountName", "default"),
                  "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1"}
        for source in c.spec.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "secretRef" in source:
                data = self._secret(ns, source["secretRef"]["name"])
            else:
                data = self._config_map(ns, source["configMapRef"]["name"])
            env.update({prefix + k: v for k, v in data.items()})
        for var in c.spec.get("env") or []:
            name, source = var["name"], var.get("valueFrom")
            if source is None:
                env[name] = expand(var.get("value", ""), env)
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                env[name] = self._secret(ns, ref["name"])[ref["key"]]
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                env[name] = self._config_map(ns, ref["name"])[ref["key"]]
            elif "fieldRef" in source:
                env[name] = fields[source["fieldRef"]["fieldPath"]]
            else:
                raise ValueError(f"env {name}: unsupported source {sorted(source)}")
        return env

    def _secret(self, namespace: str, name: str) -> dict[str, str]:
        import base64

        secret = self.core.read_namespaced_secret(name, namespace)
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def _config_map(self, namespace: str, name: str) -> dict[str, str]:
        return dict(self.core.read_namespaced_config_map(name, namespace).data or {})

    def _volumes(self, c: Container) -> list[tuple[Path, str, bool]]:
        """(source on this machine, mountPath, read-only) for each of the container's mounts."""
        meta, spec = c.pod["metadata"], c.pod["spec"]
        security = {**(spec.get("securityContext") or {}), **(c.spec.get("securityContext") or {})}
        owner = int(security.get("runAsUser", 0)), int(
            spec.get("securityContext", {}).get("fsGroup", security.get("runAsGroup", 0)))
        sources: dict[str, Path] = {}
        for volume in spec.get("volumes") or []:
            path = c.dir / "volumes" / volume["name"]
            path.mkdir(parents=True)
            if "emptyDir" in volume:
                os.chown(path, *owner)
                path.chmod(0o2775)
            elif "projected" in volume:
                for item in volume["projected"]["sources"]:
                    self._project(path, item, c.pod)
            elif "secret" in volume:
                for key, value in self._secret(meta["namespace"],
                                               volume["secret"]["secretName"]).items():
                    (path / key).write_text(value)
            elif "configMap" in volume:
                for key, value in self._config_map(meta["namespace"],
                                                   volume["configMap"]["name"]).items():
                    (path / key).write_text(value)
            else:
                raise ValueError(f"volume {volume['name']}: unsupported type")
            if "emptyDir" not in volume:
                for f in path.iterdir():
                    f.chmod(0o644)  # readable by the pod's user, as the kubelet's defaultMode
            sources[volume["name"]] = path
        return [(sources[m["name"]], m["mountPath"], bool(m.get("readOnly"))
                 or "emptyDir" not in next(v for v in spec["volumes"] if v["name"] == m["name"]))
                for m in c.spec.get("volumeMounts") or []]

    def _project(self, path: Path, item: dict[str, Any], pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        if "serviceAccountToken" in item:
            source = item["serviceAccountToken"]
            request = {"spec": {
                "audiences": [source["audience"]] if source.get("audience") else None,
                "expirationSeconds": source.get("expirationSeconds", 3607),
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                                   "uid": meta["uid"]}}}
            token = self.core.create_namespaced_service_account_token(
                pod["spec"].get("serviceAccountName", "default"), meta["namespace"], request)
            (path / source["path"]).write_text(token.status.token)
        elif "configMap" in item:
            data = self._config_map(meta["namespace"], item["configMap"]["name"])
            for key in item["configMap"].get("items") or [{"key": k, "path": k} for k in data]:
                (path / key["path"]).write_text(data[key["key"]])
        elif "downwardAPI" in item:
            values = {"metadata.namespace": meta["namespace"], "metadata.name": meta["name"]}
            for entry in item["downwardAPI"]["items"]:
                (path / entry["path"]).write_text(values[entry["fieldRef"]["fieldPath"]])
        else:
            raise ValueError(f"projected source {sorted(item)} unsupported")

    def _argv(self, c: Container, env: Mapping[str, str],
              mounts: list[tuple[Path, str, bool]]) -> list[str]:
        """``unshare`` a mount namespace, build the container's root, drop to the pod's user."""
        spec, pod_spec = c.spec, c.pod["spec"]
        command = [expand(a, env) for a in spec.get("command") or []]
        args = [expand(a, env) for a in spec.get("args") or []]
        if not command:
            command = image_command(spec["image"])
            command, args = (command, args) if not args else (command[:1], args)
        security = {**(pod_spec.get("securityContext") or {}), **(spec.get("securityContext")
                                                                   or {})}
        user, group = int(security.get("runAsUser", 0)), int(security.get("runAsGroup", 0))
        fs_group = pod_spec.get("securityContext", {}).get("fsGroup")
        if security.get("runAsNonRoot") and user == 0:
            raise ValueError("container has runAsNonRoot and would run as root")
        root = c.dir / "rootfs"
        upper, work = c.dir / "upper", c.dir / "work"
        for d in (root, upper, work):
            d.mkdir()
        sh = ["set -e",
              f"mount -t overlay overlay -o lowerdir=/,upperdir={upper},workdir={work} {root}",
              # The interpreter lives under /root here; in an image it would be world-readable.
              f"chmod o+x {root}/root",
              f"mount -t proc proc {root}/proc", f"mount --rbind /sys {root}/sys",
              f"mount -t tmpfs -o mode=755,nosuid tmpfs {root}/dev",
              f"mkdir -p {root}/dev/shm {root}/dev/pts",
              f"mount -t tmpfs -o mode=1777 tmpfs {root}/dev/shm"]
        for dev in DEVICES:
            sh += [f"touch {root}/dev/{dev}", f"mount --bind /dev/{dev} {root}/dev/{dev}"]
        message = spec.get("terminationMessagePath", "/dev/termination-log")
        c.termination.write_bytes(b"")
        os.chown(c.termination, user, group)
        for source, target, read_only in [*mounts, (c.termination, message, False)]:
            # Symlinks on the way (/var/run -> /run) resolve inside the root, which mirrors /.
            dest = shlex.quote(f"{root}{os.path.realpath(target)}")
            sh.append(f"mkdir -p {dest}" if source.is_dir() else
                      f"mkdir -p $(dirname {dest}) && touch {dest}")
            sh.append(f"mount --bind {shlex.quote(str(source))} {dest}")
            if read_only:
                sh.append(f"mount -o remount,bind,ro {dest}")
        # The "image" is this machine's root; where a volume covers part of what the image holds
        # (an emptyDir at /tmp over a checkout under /tmp), the image's files show through again.
        for path in IMAGE_PATHS:
            dest = shlex.quote(f"{root}{path}")
            sh += [f"mkdir -p {dest}", f"mount --rbind {shlex.quote(path)} {dest}",
                   f"mount -o remount,bind,ro {dest}"]
        if security.get("readOnlyRootFilesystem"):
            sh.append(f"mount -o remount,bind,ro {root}")
        groups = f"--groups {fs_group}" if fs_group is not None else "--clear-groups"
        priv = ["setpriv", "--reuid", str(user), "--regid", str(group), *groups.split()]
        if security.get("allowPrivilegeEscalation") is False:
            priv.append("--no-new-privs")
        if "ALL" in (security.get("capabilities") or {}).get("drop", []):
            priv += ["--inh-caps=-all", "--bounding-set=-all"]
        workdir = spec.get("workingDir") or "/"
        # Back to the pod's PATH inside, so its command resolves as in the image.
        inner = f"export PATH={shlex.quote(env['PATH'])}; cd {shlex.quote(workdir)} && exec "
        sh.append(f"cd {root} && exec chroot {root} /bin/sh -c "
                  + shlex.quote(inner + shlex.join([*priv, *command, *args])))
        # The set-up runs with the pod's environment: its tools are found on the host's PATH.
        sh.insert(0, "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(sh)]
