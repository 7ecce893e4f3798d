"""The resource types the Kubernetes API sandbox serves: the built-in ones, and those a CRD declares.

A `ResourceType` is what discovery lists and what the store keys objects by (group + plural, whatever the
version). `builtin_types()` gives the built-in ones; `crd_types(crd)` those of a CustomResourceDefinition.
Name rules are the API server's (k8s.io/apimachinery/pkg/api/validation/generic.go, pkg/apis/core/validation).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["ResourceType", "builtin_types", "crd_types", "name_problems"]

_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclasses.dataclass(frozen=True)
class ResourceType:
    """One served resource: `group` ("" for core), `versions` (served; the first is preferred), `plural`,
    `kind`, `namespaced`; `status` when it has a `/status` subresource (writes to the main resource then
    keep `.status`), `generation` when `metadata.generation` counts spec changes, `names` the name rule
    (`subdomain`, `label`, `dns1035`, `path`), `verbs` what it allows (create-only reviews are not stored),
    `atomic` the field paths (tuples) that server-side apply owns as one field."""

    group: str
    versions: tuple[str, ...]
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status: bool = False
    generation: bool = False
    names: str = "subdomain"
    verbs: tuple[str, ...] = _VERBS
    stored: bool = True
    subresources: tuple[str, ...] = ()
    atomic: frozenset[tuple[str, ...]] = frozenset()
    custom: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    def api_version(self, version: str | None = None) -> str:
        """`v1`, `apps/v1`: the apiVersion of this type's objects in `version` (default: preferred)."""
        version = version or self.versions[0]
        return f"{self.group}/{version}" if self.group else version

    def discovery(self) -> list[dict[str, Any]]:
        """The APIResource entries of /api/v1 or /apis/<group>/<version>: the resource, then its
        subresources, as the API server lists them."""
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        entries = [entry]
        for sub in self.subresources:
            kind, verbs = _SUBRESOURCES[sub]
            entries.append(
                {
                    "name": f"{self.plural}/{sub}",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": kind or self.kind,
                    "verbs": list(verbs),
                    **({"group": "authentication.k8s.io", "version": "v1"} if sub == "token" else {}),
                }
            )
        return entries


_SUBRESOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "status": ("", ("get", "patch", "update")),
    "log": ("Pod", ("get",)),
    "token": ("TokenRequest", ("create",)),
    "finalize": ("", ("update",)),
}


def _t(group: str, plural: str, kind: str, namespaced: bool = True, **kw: Any) -> ResourceType:
    singular = kw.pop("singular", kind.lower())
    versions = kw.pop("versions", ("v1",))
    return ResourceType(group, versions, plural, singular, kind, namespaced, **kw)


def builtin_types() -> list[ResourceType]:
    """The built-in resources served (pkg/registry/... of kube-apiserver: their scopes, subresources,
    name rules and whether they keep a generation)."""
    rbac = "rbac.authorization.k8s.io"
    create_only = ("create",)
    return [
        _t(
            "",
            "namespaces",
            "Namespace",
            False,
            short_names=("ns",),
            status=True,
            names="label",
            verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
            subresources=("finalize", "status"),
        ),
        _t("", "configmaps", "ConfigMap", short_names=("cm",)),
        _t("", "secrets", "Secret"),
        _t("", "serviceaccounts", "ServiceAccount", short_names=("sa",), subresources=("token",)),
        _t(
            "",
            "pods",
            "Pod",
            short_names=("po",),
            categories=("all",),
            status=True,
            subresources=("log", "status"),
        ),
        _t(
            "",
            "services",
            "Service",
            short_names=("svc",),
            categories=("all",),
            status=True,
            names="dns1035",
            verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
            subresources=("status",),
        ),
        _t("", "events", "Event", short_names=("ev",)),
        _t(rbac, "roles", "Role", names="path"),
        _t(rbac, "rolebindings", "RoleBinding", names="path"),
        _t(rbac, "clusterroles", "ClusterRole", False, names="path"),
        _t(rbac, "clusterrolebindings", "ClusterRoleBinding", False, names="path"),
        _t("authentication.k8s.io", "tokenreviews", "TokenReview", False, verbs=create_only, stored=False),
        _t(
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            False,
            verbs=create_only,
            stored=False,
        ),
        _t(
            "authorization.k8s.io",
            "subjectaccessreviews",
            "SubjectAccessReview",
            False,
            verbs=create_only,
            stored=False,
        ),
        _t("coordination.k8s.io", "leases", "Lease"),
        _t(
            "apps",
            "deployments",
            "Deployment",
            short_names=("deploy",),
            categories=("all",),
            status=True,
            generation=True,
            subresources=("status",),
        ),
        _t(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            False,
            short_names=("crd", "crds"),
            status=True,
            generation=True,
            subresources=("status",),
        ),
    ]


def crd_types(crd: Mapping[str, Any]) -> ResourceType:
    """The resource a CustomResourceDefinition (apiextensions.k8s.io/v1) serves: its served versions (the
    storage version first), scope, names, and `subresources.status` of the storage version."""
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec.get("versions", []) if v.get("served", True)]
    served.sort(key=lambda v: not v.get("storage", False))
    storage = served[0] if served else {}
    status = "status" in (storage.get("subresources") or {})
    schema = ((storage.get("schema") or {}).get("openAPIV3Schema")) or {}
    return ResourceType(
        group=spec["group"],
        versions=tuple(v["name"] for v in served),
        plural=names["plural"],
        singular=names.get("singular") or names["kind"].lower(),
        kind=names["kind"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        status=status,
        generation=True,
        subresources=("status",) if status else (),
        atomic=frozenset(_atomic_paths(schema, ())),
        custom=True,
    )


def _atomic_paths(schema: Mapping[str, Any], path: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The paths an OpenAPI schema marks `x-kubernetes-map-type: atomic` (or granular lists: none; every
    list is atomic in the sandbox)."""
    found = []
    if path and schema.get("x-kubernetes-map-type") == "atomic":
        found.append(path)
    for name, sub in (schema.get("properties") or {}).items():
        if isinstance(sub, Mapping):
            found.extend(_atomic_paths(sub, (*path, name)))
    return found


_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_DNS1035_MESSAGE = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


def name_problems(rule: str, name: str, *, prefix: bool = False) -> list[str]:
    """The messages of validation.IsDNS1123Subdomain / IsDNS1123Label / IsDNS1035Label /
    path.IsValidPathSegmentName for `name` (none when valid). A `prefix` (generateName) may end in `-`."""
    if prefix and rule != "path":
        name = name[:-1] + "a" if name.endswith("-") else name  # maskTrailingDash
    if rule == "path":
        problems = []
        if name in (".", ".."):
            problems.append(f"may not be '{name}'")
        for bad in ("/", "%"):
            if bad in name:
                problems.append(f"may not contain '{bad}'")
        return problems
    limit, pattern, message = {
        "subdomain": (253, _SUBDOMAIN, _SUBDOMAIN_MESSAGE),
        "label": (63, _LABEL, _LABEL_MESSAGE),
        "dns1035": (63, _DNS1035, _DNS1035_MESSAGE),
    }[rule]
    problems = []
    if len(name) > limit:
        problems.append(f"must be no more than {limit} characters")
    if not pattern.match(name):
        problems.append(message)
    return problems
