"""kmock's KubernetesEmulator with the gaps filled that kopf, kubectl and the kubelet need.

kmock 0.8 stores objects and serves discovery, list, watch, create, patch and delete. A real API
server also: sets uid, resourceVersion and creationTimestamp; resumes a watch from a
resourceVersion (not a full replay); honours label and field selectors and watch timeouts; names
its lists' kind; serves server-side Tables (printer columns) to kubectl; keeps status a
subresource; names objects from generateName; and garbage-collects dependents by owner reference.
This subclass does those, in-process, in one event loop (``EmulatorThread`` runs it over HTTP).
"""

from __future__ import annotations

import asyncio
import collections
import re
import secrets
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import attrs
import kmock
import yaml
from aiohttp import web
from kmock._internal import aiobus, dsl, rendering

from tests.kubernetes import rbac
from tests.kubernetes.rbac import Authorizer

T = TypeVar("T")
CRD_FILE = Path(__file__).parents[2] / "crds" / "conversiontasks.vidconv.io.yaml"
VERBS = {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
BUILTIN = {
    "v1/pods": ("Pod", {"po"}, {"status"}),
    "v1/secrets": ("Secret", set(), set()),
    "v1/events": ("Event", {"ev"}, set()),
    "batch/v1/jobs": ("Job", set(), {"status"}),
}
# Cluster-scoped: kopf waits for namespaces (and watches CRDs) before it watches anything.
CLUSTER_SCOPED = {
    "v1/namespaces": ("Namespace", {"ns"}, {"status"}),
    "apiextensions.k8s.io/v1/customresourcedefinitions": (
        "CustomResourceDefinition", {"crd"}, {"status"}),
}


@attrs.mutable(weakref_slot=True)
class _StampingBus(aiobus.Bus[Any]):
    """Every event passes the cluster before a watcher sees it (resourceVersion, history, GC)."""

    on_put: Callable[[Any], None] = attrs.field(kw_only=True, default=None)

    async def put(self, *items: Any) -> None:
        for item in items:
            self.on_put(item)
        await super().put(*items)


class _Buses(dict[Any, _StampingBus]):
    def __init__(self, on_put: Callable[[Any, Any], None]) -> None:
        super().__init__()
        self._on_put = on_put

    def __missing__(self, resource: Any) -> _StampingBus:
        bus = _StampingBus(on_put=lambda event: self._on_put(resource, event))
        self[resource] = bus
        return bus


class _DirectMatch(kmock.RawHandler):
    """Match a request to a reaction by the reaction's filters alone.

    kmock decides ``request in reaction`` by scanning every request it has served through the
    reaction's filters: O(requests so far) per request, so a 500-task run took many minutes.
    The emulator's reactions are plain filter chains (no slices of history), so the criteria on
    the chain decide the same in O(1). Placed after KubernetesEmulator in the MRO, its
    ``super()._handle`` lands here.
    """

    __slots__ = ()

    async def _handle(self, request: rendering.Request) -> Any:
        width = max((len(p.priorities) for p in self._payloads), default=0)
        payloads = sorted(self._payloads, key=lambda p: tuple(
            [-x for x in p.priorities] + [0] * (width - len(p.priorities))))
        for payload in payloads:
            if _matches(payload._source, request) and not payload._disabled.is_set():
                try:
                    return await payload(request)
                except rendering.ReactionMismatchError:
                    payload._disabled.set()
                except NotImplementedError:
                    pass
        raise NotImplementedError("no reaction matches the request")


def _matches(view: Any, request: rendering.Request) -> bool:
    while not isinstance(view, dsl.Root):
        if isinstance(view, dsl.Filter) and not view.criteria(request):
            return False
        if not isinstance(view, dsl.Filter | dsl.Priority | dsl.Reaction):
            return request in view  # anything fancier: kmock's own (slow) way
        view = view._source
    return True


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator, _DirectMatch):
    _rv: int = attrs.field(default=0, init=False)
    _history: dict[Any, list[tuple[int, dict[str, Any]]]] = attrs.field(
        factory=lambda: collections.defaultdict(list), init=False
    )
    _columns: dict[Any, list[dict[str, Any]]] = attrs.field(factory=dict, init=False)
    _gc_tasks: set[asyncio.Task[None]] = attrs.field(factory=set, init=False)
    served: int = attrs.field(default=0, init=False)  # requests so far (for bench/reconcile.py)
    # Who may do what (tests/kubernetes/rbac.py); None: no authentication or authorization.
    authorizer: Authorizer | None = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._buses = _Buses(self._stamp)
        # Requests are not replayed or asserted on here: keep only the recent ones in memory.
        self._requests = collections.deque(maxlen=256)  # type: ignore[assignment]
        for key, (kind, short, subresources) in BUILTIN.items():
            self.resources[key] = kmock.ResourceInfo(
                kind=kind, singular=kind.lower(), namespaced=True, verbs=VERBS,
                shortnames=short, subresources=subresources,
            )
        for key, (kind, short, subresources) in CLUSTER_SCOPED.items():
            self.resources[key] = kmock.ResourceInfo(
                kind=kind, singular=kind.lower(), namespaced=False, verbs=VERBS,
                shortnames=short, subresources=subresources,
            )
        self.install_crd(yaml.safe_load(CRD_FILE.read_text()))

    def install_crd(self, crd: Mapping[str, Any]) -> None:
        names = crd["spec"]["names"]
        for version in crd["spec"]["versions"]:
            key = f"{crd['spec']['group']}/{version['name']}/{names['plural']}"
            self.resources[key] = kmock.ResourceInfo(
                kind=names["kind"], singular=names["singular"], verbs=VERBS,
                namespaced=crd["spec"]["scope"] == "Namespaced",
                shortnames=set(names.get("shortNames", [])),
                categories=set(names.get("categories", [])),
                subresources=set(version.get("subresources", {})),
            )
            self._columns[kmock.resource(key)] = version.get("additionalPrinterColumns", [])

    async def __call__(self, raw_request: web.BaseRequest) -> web.StreamResponse:
        """Authenticate and authorize before kmock parses the request, as the API server does."""
        auth = self.authorizer
        if auth is None:
            return await super().__call__(raw_request)
        url = raw_request.rel_url
        user, path = auth.identify(raw_request.headers.get("Authorization", ""), url.path)
        if path != url.path:  # a pod's identity prefix: serve the rest as the path
            raw_request = raw_request.clone(rel_url=url.with_path(path).with_query(url.query))
        if user is None:
            return web.json_response(rbac.unauthorized(), status=401)
        denial = auth.authorize(user, raw_request.method, path, raw_request.query)
        if denial is not None:
            return web.json_response(denial, status=denial["code"])
        return await super().__call__(raw_request)

    # -- the write path: fill in what the API server owns ------------------------------------

    async def _handle(self, request: rendering.Request) -> Any:
        self.served += 1
        res = request.resource
        if res is not None and isinstance(request.data, dict):
            if request.action == kmock.action.CREATE:
                self._on_create(request)
            elif request.action == kmock.action.UPDATE:
                self._on_patch(request)
        return await super()._handle(request)

    def _on_create(self, request: rendering.Request) -> None:
        meta = request.data.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)
        if request.namespace:
            meta["namespace"] = request.namespace
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        meta.pop("resourceVersion", None)
        meta.pop("deletionTimestamp", None)

    def _on_patch(self, request: rendering.Request) -> None:
        data = request.data
        meta = data.get("metadata") or {}
        for owned in ("uid", "creationTimestamp", "resourceVersion", "deletionTimestamp"):
            meta.pop(owned, None)
        info = self.resources[request.resource]
        if "status" in info.subresources:
            # status is a subresource: /status changes only status, the object never status.
            if request.subresource == "status":
                for key in list(data):
                    if key != "status":
                        del data[key]
            else:
                data.pop("status", None)

    def _stamp(self, resource: Any, event: dict[str, Any]) -> None:
        """Called under the emulator's lock for every change: the resourceVersion and history."""
        self._rv += 1
        obj = event.get("object") or {}
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
        self._history[resource].append((self._rv, {"type": event["type"], "object": obj}))
        if event["type"] == "DELETED" and obj["metadata"].get("uid"):
            task = asyncio.get_running_loop().create_task(self._collect(obj["metadata"]["uid"]))
            self._gc_tasks.add(task)
            task.add_done_callback(self._gc_tasks.discard)

    async def _collect(self, owner_uid: str) -> None:
        """The garbage collector: delete what the deleted object owned (background cascade)."""
        async with self._lock:
            for (resource, _ns, _name), obj in list(self._objects.items()):
                if obj.deleted:
                    continue
                refs = obj.get("metadata", {}).get("ownerReferences") or []
                if not any(r.get("uid") == owner_uid for r in refs):
                    continue
                if obj.get("metadata", {}).get("finalizers"):
                    obj.patch({"metadata": {"deletionTimestamp": _now()}})
                    await self._buses[resource].put({"type": "MODIFIED", "object": obj.raw})
                else:
                    obj.delete()
                    await self._buses[resource].put({"type": "DELETED", "object": obj.last.raw})

    # -- the read path: lists, watches, tables -------------------------------------------------

    async def _serve_list(self, request: rendering.Request) -> Any:
        listing = await super()._serve_list(request)
        items = [o for o in listing["items"] if _selected(request, o)]
        kind = self.resources[request.resource].kind or "Object"
        result = {
            "apiVersion": _api_version(request.resource),
            "kind": f"{kind}List",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }
        if _wants_table(request):
            return self._table(request, items, with_columns=True)
        return result

    async def _serve_version(self, request: rendering.Request) -> Any:
        listing = await super()._serve_version(request)
        listing["groupVersion"] = listing["groupVersion"].lstrip("/")  # core is "v1"
        for res in listing["resources"]:
            if "/" in res["name"]:  # subresources have no short names or categories
                res["shortNames"], res["categories"] = [], []
        return listing

    async def _serve_fetch(self, request: rendering.Request) -> Any:
        obj = await super()._serve_fetch(request)
        return self._table(request, [obj], with_columns=True) if _wants_table(request) else obj

    async def _serve_create(self, request: rendering.Request) -> Any:
        # The official clients only accept 201 Created.
        return rendering.Response(status=201, payload=await super()._serve_create(request))

    async def _serve_watch(self, request: rendering.Request) -> Any:
        # kubectl decodes a watch by its content type.
        return rendering.Response(
            payload=self._watch(request), headers={"Content-Type": "application/json"}
        )

    async def _watch(self, request: rendering.Request) -> AsyncIterator[Any]:
        yield b""
        since = request.params.get("resourceVersion") or ""
        timeout = float(request.params.get("timeoutSeconds") or 0) or None
        async with self._lock:
            bus = self._buses[request.resource]
            mark = await bus.mark()
            if since and since != "0":
                backlog = [ev for rv, ev in self._history[request.resource] if rv > int(since)]
            else:
                backlog = [
                    {"type": "ADDED", "object": obj.raw}
                    for (res, _ns, _name), obj in self._objects.items()
                    if res == request.resource and not obj.deleted
                ]
        table = _wants_table(request)
        first = True
        try:
            deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
            async for event in _chain(backlog, bus.stream(since=mark), deadline):
                obj = event["object"]
                if not _in_scope(request, obj) or not _selected(request, obj):
                    continue
                if table:
                    obj = self._table(request, [obj], with_columns=first)
                    first = False
                yield {"type": event["type"], "object": obj}
        finally:
            await bus.unmark(mark)

    def _table(self, request: rendering.Request, items: Iterable[Mapping[str, Any]],
               *, with_columns: bool) -> dict[str, Any]:
        columns = [c for c in self._columns.get(request.resource, [])
                   if c.get("name") != "Age"]
        defs = [{"name": "Name", "type": "string", "format": "name", "priority": 0,
                 "description": "Name of the object"}]
        defs += [{"name": c["name"], "type": c["type"], "format": c.get("format", ""),
                  "description": c.get("description", ""), "priority": c.get("priority", 0)}
                 for c in columns]
        defs.append({"name": "Age", "type": "string", "format": "", "priority": 0,
                     "description": "Time since creation"})
        rows = []
        for obj in items:
            meta = obj.get("metadata", {})
            cells: list[Any] = [meta.get("name")]
            cells += [_jsonpath(obj, c["jsonPath"]) for c in columns]
            cells.append(_age(meta.get("creationTimestamp")))
            rows.append({"cells": cells, "object": {
                "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": meta}})
        return {
            "kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": str(self._rv)},
            "columnDefinitions": defs if with_columns else [],
            "rows": rows,
        }


async def _chain(backlog: list[dict[str, Any]], live: AsyncIterator[Any],
                 deadline: float | None) -> AsyncIterator[dict[str, Any]]:
    """The backlog, then live events until the watch's timeoutSeconds (then the stream ends)."""
    for event in backlog:
        yield event
    loop = asyncio.get_running_loop()
    iterator = aiter(live)
    while True:
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            return
        try:
            yield await asyncio.wait_for(anext(iterator), remaining)
        except TimeoutError:
            return


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _age(created: str | None) -> str:
    """Like the API server's human-readable date cells (HumanDuration)."""
    if not created:
        return "<unknown>"
    seconds = int((datetime.now(UTC) - datetime.fromisoformat(created.replace("Z", "+00:00")))
                  .total_seconds())
    seconds = max(seconds, 0)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 600:
        return f"{seconds // 60}m{seconds % 60}s"
    if seconds < 3 * 3600:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def _api_version(resource: Any) -> str:
    return f"{resource.group}/{resource.version}" if resource.group else resource.version


def _wants_table(request: rendering.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _jsonpath(obj: Mapping[str, Any], path: str) -> Any:
    value: Any = obj
    for part in path.strip(".").split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _in_scope(request: rendering.Request, obj: Mapping[str, Any]) -> bool:
    meta = obj.get("metadata", {})
    if request.namespace and meta.get("namespace") != request.namespace:
        return False
    return not (request.name and meta.get("name") != request.name)


_REQ = re.compile(r"\s*([\w./-]+)\s*(?:(==|=|!=)\s*([\w./-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*")


def _selected(request: rendering.Request, obj: Mapping[str, Any]) -> bool:
    """labelSelector (=, ==, !=, in, notin, exists, !exists) and fieldSelector on name/namespace."""
    meta = obj.get("metadata", {})
    labels = meta.get("labels") or {}
    for part in _split(request.params.get("labelSelector", "")):
        negate = part.startswith("!")
        m = _REQ.fullmatch(part.lstrip("!"))
        if m is None:
            return False
        key, op, value, setop, values = m.groups()
        if op in ("=", "=="):
            ok = labels.get(key) == value
        elif op == "!=":
            ok = labels.get(key) != value
        elif setop:
            choices = {v.strip() for v in values.split(",")}
            ok = (labels.get(key) in choices) == (setop == "in") and (
                setop == "notin" or key in labels)
        else:
            ok = (key in labels) != negate
        if not ok:
            return False
    for part in _split(request.params.get("fieldSelector", "")):
        key, _, value = part.partition("=")
        field = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace")}
        if field.get(key.rstrip("=!")) != value.lstrip("="):
            return False
    return True


def _split(selector: str) -> list[str]:
    """Split on commas that are not inside ``in (...)``."""
    parts, depth, current = [], 0, ""
    for ch in selector:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return [p.strip() for p in parts if p.strip()]


class EmulatorThread:
    """The emulator served over HTTP from its own thread and event loop.

    Its own thread: the API's blocking Kubernetes client and the tests' own calls must not
    stall the server, and the server must not depend on the test's event loop.
    """

    def __init__(self, authorizer: Authorizer | None = None) -> None:
        self.authorizer = authorizer
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.emulator: Emulator
        self._server: kmock.Server

    def __enter__(self) -> EmulatorThread:
        self._thread.start()
        self.call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    async def _start(self) -> None:
        self.emulator = Emulator()
        await self.emulator.__aenter__()
        self._server = kmock.Server(self.emulator)
        await self._server.__aenter__()
        crd = yaml.safe_load(CRD_FILE.read_text())
        # (Namespace objects can't be stored: kmock 0.8 parses /api/v1/namespaces/<name> as a
        # namespace, not an object. The operator doesn't list namespaces: scanning is off.)
        path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        async with self.emulator.post(path, json=crd) as response:
            response.raise_for_status()
        self.emulator.authorizer = self.authorizer  # from here on, callers are checked

    async def _stop(self) -> None:
        await self._server.__aexit__(None, None, None)
        await self.emulator.__aexit__(None, None, None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def write_kubeconfig(self, path: Path, namespace: str = "default",
                         token: str = "test-token", path_prefix: str = "") -> Path:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url + path_prefix}}],
            "users": [{"name": "test", "user": {"token": token}}],
            "contexts": [{"name": "emulator", "context": {
                "cluster": "emulator", "user": "test", "namespace": namespace}}],
        }))
        return path
