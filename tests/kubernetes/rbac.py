"""RBAC for the emulator: who is calling, which verb on which resource, and does the chart allow it.

The rules come from the rendered chart (Roles/ClusterRoles and their bindings), so the code under
test is held to exactly what a cluster installed from the chart would allow. Requests are mapped to
(verb, apiGroup, resource[/subresource], namespace, name) as the API server's request-info resolver
does; discovery (non-resource URLs) is open to every authenticated user, as ``system:discovery``.

Callers are identified by bearer token (kubeconfigs) or, for pods, by a ``/_sa/<ns>/<name>`` path
prefix the kubelet puts in ``VIDCONV_KUBE_API`` (the transcoder sends no token to a test emulator).
kubectl sends no token over plain HTTP: the test's admin kubeconfig names ``/_user/<name>`` instead
(only exempt users may be claimed that way).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ANONYMOUS = "system:anonymous"
SA_PREFIX = "/_sa/"
USER_PREFIX = "/_user/"


def service_account(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


@dataclass(frozen=True)
class Attributes:
    verb: str
    group: str
    resource: str  # "pods", or "conversiontasks/status" for a subresource
    namespace: str  # "" = cluster scope
    name: str


def attributes(method: str, path: str, query: Mapping[str, str]) -> Attributes | None:
    """The request's authorization attributes; None for a non-resource URL (discovery etc.)."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return None
    legacy_watch = rest[:1] == ["watch"]  # /apis/g/v/watch/... (deprecated form)
    rest = rest[1:] if legacy_watch else rest
    if not rest:
        return None  # /api/v1, /apis/g/v: discovery
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource, name = rest[0], rest[1] if len(rest) > 1 else ""
    if len(rest) > 2:
        resource += "/" + "/".join(rest[2:])
    watching = legacy_watch or query.get("watch", "").lower() in ("true", "1")
    method = method.upper()
    if method in ("GET", "HEAD"):
        verb = "watch" if watching else "get" if name else "list"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, "")
        if method == "DELETE":
            verb = "delete" if name else "deletecollection"
    return Attributes(verb or method.lower(), group, resource, namespace, name)


@dataclass(frozen=True)
class Grant:
    namespace: str | None  # None: a ClusterRole bound cluster-wide
    groups: frozenset[str]
    resources: frozenset[str]
    verbs: frozenset[str]
    names: frozenset[str]

    def allows(self, a: Attributes) -> bool:
        if self.namespace is not None and a.namespace != self.namespace:
            return False
        return (_has(self.groups, a.group) and _has(self.resources, a.resource)
                and _has(self.verbs, a.verb) and (not self.names or a.name in self.names))

    def pairs(self) -> set[tuple[str, str, str]]:
        """Every (verb, group, resource) this grant names (wildcards kept as '*')."""
        return {(v, g, r) for v in self.verbs for g in self.groups for r in self.resources}


def _has(allowed: frozenset[str], value: str) -> bool:
    return "*" in allowed or value in allowed


class Policy:
    """user name -> grants, from rendered Roles, ClusterRoles and their bindings."""

    def __init__(self, grants: Mapping[str, list[Grant]]) -> None:
        self.grants = dict(grants)

    @classmethod
    def from_objects(cls, docs: Iterable[Mapping[str, Any]]) -> Policy:
        docs = list(docs)
        roles = {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]):
                 d.get("rules") or [] for d in docs if d["kind"] in ("Role", "ClusterRole")}
        grants: dict[str, list[Grant]] = collections.defaultdict(list)
        for b in docs:
            if b["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
                continue
            bound_ns = b["metadata"].get("namespace", "")
            ref = b["roleRef"]
            key = (ref["kind"], bound_ns if ref["kind"] == "Role" else "", ref["name"])
            scope = bound_ns if b["kind"] == "RoleBinding" else None
            for subject in b.get("subjects") or []:
                if subject["kind"] == "ServiceAccount":
                    user = service_account(subject.get("namespace", bound_ns), subject["name"])
                elif subject["kind"] == "User":
                    user = subject["name"]
                else:
                    continue
                grants[user] += [_grant(scope, rule) for rule in roles.get(key, [])]
        return cls(grants)

    def allows(self, user: str, a: Attributes) -> bool:
        return any(g.allows(a) for g in self.grants.get(user, []))

    def granted(self, user: str) -> set[tuple[str, str, str]]:
        return set().union(*(g.pairs() for g in self.grants.get(user, [])))


def _grant(namespace: str | None, rule: Mapping[str, Any]) -> Grant:
    return Grant(namespace, frozenset(rule.get("apiGroups") or []),
                 frozenset(rule.get("resources") or []), frozenset(rule.get("verbs") or []),
                 frozenset(rule.get("resourceNames") or []))


class Authorizer:
    """Identify, authorize and record each request.

    ``enforce``: a request outside the caller's Roles answers 403 (otherwise it is only recorded
    as denied). ``exempt`` users (the control plane the fixtures play, the test's own admin) are
    recorded but never checked.
    """

    def __init__(self, policy: Policy, tokens: Mapping[str, str], *, exempt: Iterable[str],
                 enforce: bool) -> None:
        self.policy, self.tokens = policy, dict(tokens)
        self.exempt, self.enforce = set(exempt), enforce
        self.calls: dict[str, collections.Counter[tuple[str, str, str]]] = (
            collections.defaultdict(collections.Counter))
        self.denied: list[tuple[str, Attributes]] = []

    def identify(self, authorization: str, path: str) -> tuple[str | None, str]:
        """(user, path without the identity prefix); user None for an unknown token."""
        if path.startswith(SA_PREFIX):
            namespace, _, tail = path[len(SA_PREFIX):].partition("/")
            account, _, rest = tail.partition("/")
            return service_account(namespace, account), "/" + rest
        if path.startswith(USER_PREFIX):
            user, _, rest = path[len(USER_PREFIX):].partition("/")
            return (user if user in self.exempt else None), "/" + rest
        if not authorization:
            return ANONYMOUS, path
        return self.tokens.get(authorization.removeprefix("Bearer ").strip()), path

    def authorize(self, user: str, method: str, path: str,
                  query: Mapping[str, str]) -> dict[str, Any] | None:
        """None when allowed (or only recorded), else the 403 Status object to answer."""
        a = attributes(method, path, query)
        if a is None:
            return None if user != ANONYMOUS or not self.enforce else _status(
                403, f'forbidden: User "{user}" cannot {method.lower()} path "{path}"', {})
        self.calls[user][(a.verb, a.group, a.resource)] += 1
        if user in self.exempt or self.policy.allows(user, a):
            return None
        self.denied.append((user, a))
        return forbidden(user, a) if self.enforce else None

    def take_denied(self) -> list[tuple[str, Attributes]]:
        """The denied calls so far, forgotten (a test that provoked them on purpose)."""
        denied, self.denied = self.denied, []
        for user, a in denied:
            self.calls[user][(a.verb, a.group, a.resource)] -= 1
            self.calls[user] += collections.Counter()  # drops counts at zero
        return denied

    def unused(self, user: str) -> set[tuple[str, str, str]]:
        """Granted (verb, group, resource) the user never exercised."""
        return self.policy.granted(user) - set(self.calls.get(user, {}))


def forbidden(user: str, a: Attributes) -> dict[str, Any]:
    """The API server's Status for an RBAC denial, word for word."""
    plural, _, sub = a.resource.partition("/")
    what = f"{plural}.{a.group}" if a.group else plural
    subject = f'{what} "{a.name}"' if a.name else what
    where = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
    message = (f'{subject} is forbidden: User "{user}" cannot {a.verb} resource "{plural}'
               f'{"/" + sub if sub else ""}" in API group "{a.group}" {where}')
    details: dict[str, Any] = {"group": a.group, "kind": plural} if a.group else {"kind": plural}
    if a.name:
        details["name"] = a.name
    return _status(403, message, details)


def unauthorized() -> dict[str, Any]:
    return _status(401, "Unauthorized", {})


def _status(code: int, message: str, details: dict[str, Any]) -> dict[str, Any]:
    reason = {401: "Unauthorized", 403: "Forbidden"}[code]
    status: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Failure", "message": message, "reason": reason,
                              "code": code}
    if details:
        status["details"] = details
    return status


class Usage:
    """What each checked identity did across many Authorizers (one per test): a report."""

    def __init__(self) -> None:
        self.calls: dict[str, collections.Counter[tuple[str, str, str]]] = (
            collections.defaultdict(collections.Counter))
        self.policy: Policy | None = None

    def add(self, auth: Authorizer) -> None:
        self.policy = auth.policy
        for user, calls in auth.calls.items():
            if user not in auth.exempt:
                self.calls[user].update(calls)

    def report(self) -> list[str]:
        lines = []
        for user, calls in sorted(self.calls.items()):
            granted = self.policy.granted(user) if self.policy else set()
            lines.append(f"{user}:")
            lines.append("  used:   " + describe(calls))
            lines.append("  unused: " + (describe(granted - set(calls)) or "-"))
        return lines


def describe(pairs: Iterable[tuple[str, str, str]]) -> str:
    """'patch conversiontasks.vidconv.io/status, create pods' style, sorted by resource."""
    def name(g: str, r: str) -> str:
        plural, _, sub = r.partition("/")
        return (f"{plural}.{g}" if g else plural) + (f"/{sub}" if sub else "")
    return ", ".join(f"{v} {name(g, r)}" for v, g, r in sorted(pairs, key=lambda p: (p[2], p[0])))
