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

# Path segments after the version that make the verb (`/api/v1/watch/...`); proxy takes no subresource.
_SPECIAL_VERBS = {"proxy", "watch"}
_SPECIAL_VERBS_NO_SUBRESOURCES = {"proxy"}
# Subresources of a namespace itself (`/api/v1/namespaces/<name>/status`), not resources in it.
_NAMESPACE_SUBRESOURCES = {"status", "finalize"}
_METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


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

    As requestinfo.go: `/api/<version>/...` and `/apis/<group>/<version>/...` with at least a resource are
    resource requests; everything else (`/api`, `/apis/<group>/<version>`, `/version`, `/healthz`) a
    non-resource request whose verb is the lowercase method. GET/HEAD on an object is get, on a collection
    list, or watch when the `watch` parameter is anything but `0`/`false`; a list or watch whose
    `fieldSelector` requires `metadata.name=<name>` names that object; POST create; PUT update; PATCH
    patch; DELETE delete on an object, deletecollection on a collection; `/watch/` and `/proxy/` after the
    version make the verb. `/api/v1/namespaces/<name>[/status|/finalize]` is resource `namespaces` with
    namespace and name <name>. Raises ValueError for `/api/v1/watch` (or `/proxy`) with nothing after it,
    as the API server answers 500.
    """
    query = query or {}
    non_resource = RequestInfo(verb=method.lower(), path=path)
    stripped = path.strip("/")
    parts = stripped.split("/") if stripped else []
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return non_resource
    prefix, parts = parts[0], parts[1:]
    group = ""
    if prefix == "apis":
        if len(parts) < 3:
            return non_resource
        group, parts = parts[0], parts[1:]
    version, parts = parts[0], parts[1:]
    if parts[0] in _SPECIAL_VERBS:
        if len(parts) < 2:
            url = path + ("?" + "&".join(f"{key}={value}" for key, value in query.items()) if query else "")
            raise ValueError(f"unable to determine kind and namespace from url, {url}")
        verb, parts = parts[0], parts[1:]
    else:
        verb = _METHOD_VERBS.get(method.upper(), "")
    namespace = ""
    if parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]
    resource = parts[0]
    name = parts[1] if len(parts) >= 2 else ""
    subresource = parts[2] if len(parts) >= 3 and verb not in _SPECIAL_VERBS_NO_SUBRESOURCES else ""
    if not name and verb == "get":
        watch = query.get("watch")
        verb = "watch" if watch is not None and watch.lower() not in ("0", "false") else "list"
        name = _exact_name(query.get("fieldSelector", ""))
    if not name and verb == "delete":
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
    """fields.Selector.RequiresExactMatch("metadata.name"), when the name is a valid path segment."""
    for term in selector.split(","):
        if "!=" in term:
            continue
        field, separator, value = term.partition("==") if "==" in term else term.partition("=")
        if separator and field.strip() == "metadata.name":
            value = value.strip()
            if value and value not in (".", "..") and not any(char in value for char in "/%"):
                return value
    return ""
