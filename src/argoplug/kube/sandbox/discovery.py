"""The discovery documents of the Kubernetes API sandbox: /version, /api, /api/v1, /apis, /apis/<group> and
/apis/<group>/<version>, shaped as the API server's (staging/src/k8s.io/apiserver/pkg/endpoints/discovery,
the legacy unaggregated form: kubectl falls back to it when aggregated discovery is not offered)."""

from __future__ import annotations

from typing import Any

from argoplug.kube.sandbox.errors import resource_not_found
from argoplug.kube.sandbox.resources import ResourceType

__all__ = ["KUBERNETES_VERSION", "discovery_document"]

# The Kubernetes version the sandbox claims to be; its behaviour follows the API server of that release.
KUBERNETES_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-argoplug-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-04-23T00:00:00Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _groups(types: list[ResourceType]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for rtype in types:
        versions = groups.setdefault(rtype.group, [])
        for version in rtype.versions:
            if version not in versions:
                versions.append(version)
    return groups


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def discovery_document(
    parts: list[str], types: list[ResourceType], server_address: str
) -> dict[str, Any] | None:
    """The document for the path `parts` (`["api"]`, `["apis", "apps", "v1"]`, ...), None when the path is
    not a discovery path, or 404 when it names no served group or version."""
    groups = _groups(types)
    if parts == ["version"]:
        return dict(KUBERNETES_VERSION)
    if parts == ["api"]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
        }
    if parts == ["api", "v1"]:
        resources = [e for t in types if t.group == "" for e in t.discovery()]
        return {"kind": "APIResourceList", "groupVersion": "v1", "resources": resources}
    if parts == ["apis"]:
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [_group(name, versions) for name, versions in groups.items() if name],
        }
    if len(parts) == 2 and parts[0] == "apis":
        if parts[1] not in groups or not parts[1]:
            raise resource_not_found()
        return {"kind": "APIGroup", "apiVersion": "v1", **_group(parts[1], groups[parts[1]])}
    if len(parts) == 3 and parts[0] == "apis":
        group, version = parts[1], parts[2]
        if version not in groups.get(group, []) or not group:
            raise resource_not_found()
        resources = [e for t in types if t.group == group and version in t.versions for e in t.discovery()]
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}",
            "resources": resources,
        }
    return None
