"""What each built-in type's registry strategy does on create and update: defaults, validation, decoding.

The store calls `decode` (the errors of decoding a body into the Go type: 400), `prepare` (defaults and
server-set fields, pkg/registry/core/*/strategy.go) and `validate` (pkg/apis/core/validation: 422 causes).
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from argoplug.kube.sandbox.errors import FieldError, bad_request
from argoplug.kube.sandbox.resources import ResourceType

__all__ = ["decode", "prepare", "validate"]

_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_CONFIG_KEY_MESSAGE = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
_IMMUTABLE_SET = "field is immutable when `immutable` is set"
_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def go_base64_error(text: str) -> int | None:
    """The offset Go's base64.StdEncoding.Decode reports (`illegal base64 data at input byte N`), or None
    when `text` decodes (encoding/base64's decodeQuantum: newlines skipped, padding required)."""
    src = text.encode()
    si, n = 0, len(src)
    while True:
        j = 0
        while j < 4:
            if si == n:
                return None if j == 0 else si - j
            char = src[si]
            si += 1
            if char in _B64:
                j += 1
                continue
            if char in (10, 13):
                continue
            if char != ord("="):
                return si - 1
            if j in (0, 1):
                return si - 1
            if j == 2:
                while si < n and src[si] in (10, 13):
                    si += 1
                if si == n:
                    return n
                if src[si] != ord("="):
                    return si - 1
                si += 1
            while si < n and src[si] in (10, 13):
                si += 1
            return si if si < n else None


def _go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def decode(rtype: ResourceType, obj: Mapping[str, Any], version: str) -> None:
    """Refuse what decoding `obj` into its Go type refuses, with the API server's 400 (transformDecodeError:
    `Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 4`)."""

    def refuse(why: str) -> Exception:
        return bad_request(f'{rtype.kind} in version "{version}" cannot be handled as a {rtype.kind}: {why}')

    if rtype.custom:
        return
    if not isinstance(obj.get("metadata", {}), dict):
        raise refuse(
            f"json: cannot unmarshal {_go_type(obj['metadata'])} into Go struct field "
            f"{rtype.kind}.metadata of type v1.ObjectMeta"
        )
    fields = {("", "secrets"): ("data",), ("", "configmaps"): ("binaryData",)}.get(rtype.key, ())
    for field in ("data", "stringData", "binaryData"):
        values = obj.get(field)
        if values is None or rtype.key not in (("", "secrets"), ("", "configmaps")):
            continue
        if not isinstance(values, dict):
            raise refuse(
                f"json: cannot unmarshal {_go_type(values)} into Go struct field {rtype.kind}.{field} "
                f"of type map[string]{'[]byte' if field in fields else 'string'}"
            )
        for value in values.values():
            if value is None:
                continue
            if not isinstance(value, str):
                target = "[]byte" if field in fields else "string"
                raise refuse(
                    f"json: cannot unmarshal {_go_type(value)} into Go struct field "
                    f"{rtype.kind}.{field} of type {target}"
                )
            if field in fields:
                offset = go_base64_error(value)
                if offset is not None:
                    raise refuse(f"illegal base64 data at input byte {offset}")


def prepare(rtype: ResourceType, obj: dict[str, Any], old: Mapping[str, Any] | None, *, ips: Any) -> None:
    """Set what the type's strategy sets on create (`old` None) or update: defaults and server fields."""
    key = rtype.key
    if key == ("", "secrets"):
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj.setdefault("data", {}) or {}
            for name, value in string_data.items():
                data[name] = base64.b64encode(str(value).encode()).decode()
            obj["data"] = data
        obj.setdefault("type", "Opaque")
    elif key == ("", "namespaces"):
        name = obj["metadata"]["name"]
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        if old is None:
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
        else:
            obj["spec"] = old.get("spec", {})
    elif key == ("", "pods") and old is None:
        spec = obj.setdefault("spec", {})
        for field, default in (
            ("restartPolicy", "Always"),
            ("terminationGracePeriodSeconds", 30),
            ("dnsPolicy", "ClusterFirst"),
            ("serviceAccountName", "default"),
            ("securityContext", {}),
            ("schedulerName", "default-scheduler"),
            ("enableServiceLinks", True),
            ("preemptionPolicy", "PreemptLowerPriority"),
            ("priority", 0),
        ):
            spec.setdefault(field, default)
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        for container in spec.get("containers") or ():
            if isinstance(container, dict):
                container.setdefault("terminationMessagePath", "/dev/termination-log")
                container.setdefault("terminationMessagePolicy", "File")
                container.setdefault("imagePullPolicy", "IfNotPresent")
                container.setdefault("resources", {})
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif key == ("", "services"):
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if old is not None:
            for field in ("clusterIP", "clusterIPs"):
                if field in old.get("spec", {}):
                    spec[field] = old["spec"][field]
        elif spec.get("clusterIP") != "None":
            spec["clusterIP"] = str(next(ips))
            spec["clusterIPs"] = [spec["clusterIP"]]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        for port in spec.get("ports") or ():
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
        if old is None:
            obj["status"] = {"loadBalancer": {}}
    elif key == ("apps", "deployments"):
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault(
            "strategy",
            {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        )
        if old is None:
            obj["status"] = {}
    elif key == ("coordination.k8s.io", "leases"):
        obj.setdefault("spec", {})
    elif key == ("apiextensions.k8s.io", "customresourcedefinitions") and old is None:
        names = dict((obj.get("spec") or {}).get("names") or {})
        if names.get("kind"):
            names.setdefault("singular", names["kind"].lower())
            names.setdefault("listKind", names["kind"] + "List")
        storage = [v.get("name") for v in (obj.get("spec") or {}).get("versions") or () if v.get("storage")]
        now = obj["metadata"].get("creationTimestamp")
        obj["status"] = {
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "lastTransitionTime": now,
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                },
                {
                    "type": "Established",
                    "status": "True",
                    "lastTransitionTime": now,
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                },
            ],
            "acceptedNames": names,
            "storedVersions": storage,
        }


def _keys(obj: Mapping[str, Any], field: str) -> list[FieldError]:
    errors = []
    for key in obj.get(field) or {}:
        if not _CONFIG_KEY.match(key) or len(key) > 253 or key in (".", ".."):
            detail = _CONFIG_KEY_MESSAGE if not _CONFIG_KEY.match(key) else "must not be '.' or '..'"
            errors.append(FieldError.invalid(f"{field}[{key}]", key, detail))
    return errors


def validate(rtype: ResourceType, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    """The type's validation of `obj` (create when `old` is None, else update): 422 causes."""
    errors: list[FieldError] = []
    key = rtype.key
    if key in (("", "secrets"), ("", "configmaps")):
        for field in ("data", "binaryData"):
            errors.extend(_keys(obj, field))
        if old is not None and old.get("immutable"):
            if obj.get("immutable") is not True:
                errors.append(FieldError.forbidden("immutable", _IMMUTABLE_SET))
            for field in ("data", "binaryData"):
                if (obj.get(field) or {}) != (old.get(field) or {}):
                    errors.append(FieldError.forbidden(field, _IMMUTABLE_SET))
        if key == ("", "secrets") and old is not None and obj.get("type") != old.get("type"):
            errors.append(FieldError.invalid("type", obj.get("type"), "field is immutable"))
    elif key == ("", "pods") and old is None:
        if not (obj.get("spec") or {}).get("containers"):
            errors.append(FieldError.required("spec.containers"))
    elif key == ("", "services"):
        ports = (obj.get("spec") or {}).get("ports")
        if not ports and (obj.get("spec") or {}).get("type") != "ExternalName":
            errors.append(FieldError.required("spec.ports"))
    elif key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        expected = f"{names.get('plural', '')}.{spec.get('group', '')}"
        if obj["metadata"].get("name") != expected:
            errors.append(
                FieldError.invalid(
                    "metadata.name", obj["metadata"].get("name"), 'must be spec.names.plural+"."+spec.group'
                )
            )
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            errors.append(
                FieldError(
                    "FieldValueNotSupported",
                    "spec.scope",
                    'supported values: "Cluster", "Namespaced"',
                    spec.get("scope"),
                    has_value=True,
                )
            )
        if not names.get("kind"):
            errors.append(FieldError.required("spec.names.kind"))
        if not any(v.get("storage") for v in spec.get("versions") or ()):
            errors.append(
                FieldError.invalid(
                    "spec.versions",
                    spec.get("versions"),
                    "must have exactly one version marked as storage version",
                )
            )
    return errors


def cluster_ips() -> Any:
    """The ClusterIP allocator of the service CIDR 10.96.0.0/12 (the first addresses; 10.96.0.1 is the
    `kubernetes` Service's)."""
    network = ipaddress.ip_network("10.96.0.0/12")
    hosts = network.hosts()
    next(hosts)  # 10.96.0.1
    return hosts
