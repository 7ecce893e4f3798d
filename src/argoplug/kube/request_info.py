"""What a Kubernetes API request asks for: its verb, API group, resource, subresource, namespace and name,
read from the method and URL as the API server reads them (`RequestInfoFactory.NewRequestInfo`,
staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go).

`argoplug.kube.errors` names the RBAC rule a refused request needs with it; the sandbox's authorizer
decides on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

__all__ = ["RequestInfo", "request_info"]

_WATCH = {"true", "1"}
# Subresources of a namespace itself (`/api/v1/namespaces/<name>/status`), not resources in it.
_NAMESPACE_SUBRESOURCES = {"status", "finalize"}


@dataclasses.dataclass(frozen=True)
class RequestInfo:
    """One request, as RBAC sees it. `resource` is "" for a non-resource request (`path` then matters);
    `api_group` "" is the core group; `namespace` and `name` are "" when the request has none."""

    verb: str
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def is_resource_request(self) -> bool:
        """Whether the request is for an API resource (not /version, /healthz, discovery)."""
        return bool(self.resource)

    @property
    def resource_with_subresource(self) -> str:
        """`pods/log`, or `pods` when there is no subresource: how RBAC rules name it."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def request_info(method: str, path: str, query: Mapping[str, str] | None = None) -> RequestInfo:
    """Return what `method` on `path` (with `query`) asks for.

    As requestinfo.go: `/api/v1/...` is the core group, `/apis/<group>/<version>/...` a named group; other
    paths (and the discovery paths `/api`, `/apis`, `/apis/<group>[/<version>]`) are non-resource
    requests whose verb is the lowercase method (`get`, `post`, ...). For resources: GET on an object is
    get, on a collection list, with `watch=true|1` watch; POST create; PUT update; PATCH patch; DELETE
    delete on an object, deletecollection on a collection; a list or watch whose `fieldSelector` requires
    `metadata.name=<name>` has that name. `/namespaces/<name>[/status|/finalize]` is resource `namespaces`
    with namespace and name `<name>`; the legacy `/watch/` prefix makes the verb watch.
    """
    query = query or {}
    method = method.upper()
    parts = [part for part in path.split("/") if part]
    non_resource = RequestInfo(verb=method.lower(), path=path)
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return non_resource
    if not rest:
        return non_resource
    verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, "get")
    if rest[0] == "watch":
        verb, rest = "watch", rest[1:]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if not name and verb == "get":
        verb = "watch" if query.get("watch", "").lower() in _WATCH else "list"
        selected = _exact_name(query.get("fieldSelector", ""))
        if selected:
            name = selected
    elif not name and verb == "delete":
        verb = "deletecollection"
    return RequestInfo(
        verb=verb,
        api_group=group,
        api_version=version,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
        path=path,
    )


def _exact_name(selector: str) -> str:
    for requirement in selector.split(","):
        field, _, value = requirement.partition("==") if "==" in requirement else requirement.partition("=")
        if field.strip() == "metadata.name" and not field.endswith("!") and value:
            return value.strip()
    return ""
