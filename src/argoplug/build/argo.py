"""`argo executor-plugin build DIR` in Python: plugin.yaml → the plugin's ConfigMap file and README.md.

Byte for byte what Argo's Go CLI writes (cmd/argo/commands/executorplugin, workflow/util/plugins); called by
`argoplug build` and `argoplug.build.writer`, which also use `to_go_yaml` for their other manifests.
"""

from __future__ import annotations

import codecs
import functools
import os
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any

from argoplug.build import goyaml
from argoplug.build.goyaml import GoField as F
from argoplug.build.goyaml import GoType, GoYAMLError, UnmarshalTypeError
from argoplug.token_access import security_context_problem

__all__ = [
    "ArgoBuildError",
    "build_folder",
    "canonical_quantity",
    "configmap_manifest",
    "configmap_text",
    "load_plugin_manifest",
    "quantity_amount",
    "readme_text",
    "sidecar_problem",
    "to_go_yaml",
    "validate_sidecar",
]

_HEADER = "# This is an auto-generated file. DO NOT EDIT"
_CONFIGMAP_TYPE_LABEL = "workflows.argoproj.io/configmap-type"
_DESCRIPTION_ANNOTATION = "workflows.argoproj.io/description"
_VERSION_ANNOTATION = "workflows.argoproj.io/version"


class ArgoBuildError(Exception):
    """What `argo executor-plugin build` would fail with; the message is the one Argo's CLI prints."""


def to_go_yaml(obj: Any) -> str:
    """Write JSON-like `obj` as Go's sigs.k8s.io/yaml.Marshal does (yaml.v2 after a JSON round trip).

    Keys sorted as yaml.v2 sorts them, block style, sequences not indented under their key, strings
    quoted exactly when Go quotes them (`'>= v3.3'`, `"true"`, `""`), multi-line strings as literal blocks
    with yaml.v2's chomping, `{}`/`[]` when empty, `null` for None. See `argoplug.build.goyaml.dump`.
    """
    return goyaml.dump(obj)


# ---- resource.Quantity (k8s.io/apimachinery/pkg/api/resource/quantity.go) --------------------------------

_QUANTITY_FORMAT = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_NAMES = {power: suffix for suffix, power in _DECIMAL.items()}
_BINARY_NAMES = {0: "", **{power // 10: suffix for suffix, power in _BINARY.items()}}


def _split_quantity(text: str) -> tuple[bool, str, str, str, str]:
    # parseQuantityString: (positive, value, numerator, denominator, suffix).
    positive, pos, end = text[:1] != "-", 1 if text[:1] in ("-", "+") else 0, len(text)
    while pos < end and text[pos] == "0":
        pos += 1
    if pos >= end:
        return positive, "0", "0", "", ""
    start = pos
    while pos < end and text[pos] in "0123456789":
        pos += 1
    if pos >= end:
        return positive, text, text[start:], "", ""
    num, denom = text[start:pos] or "0", ""
    if text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos] in "0123456789":
            pos += 1
        if pos >= end:
            return positive, text, num, text[start:], ""
        denom = text[start:pos]
    value, suffix_start = text[:pos], pos
    while pos < end and text[pos] in "eEinumkKMGTP":
        pos += 1
    if pos < end and text[pos] in "-+":
        pos += 1
    while pos < end and text[pos] in "0123456789":
        pos += 1
    if pos < end:
        raise GoYAMLError(_QUANTITY_FORMAT)
    return positive, value, num, denom, text[suffix_start:]


def canonical_quantity(text: str) -> str:
    """Return quantity `text` as Go writes it after ParseQuantity (`1024Mi` → `1Gi`, `0.5` → `500m`).

    Go keeps the text as written when it is already canonical (`100m`, `3Mi`, `1e3`, `+1`), rounds amounts
    finer than 1n up to 1n. Raises ArgoBuildError with Go's message (`quantities must match the regular
    expression ...`, `unable to parse quantity's suffix`) (k8s.io/apimachinery/pkg/api/resource/quantity.go).
    """
    return quantity_amount(text)[0]


def quantity_amount(text: str) -> tuple[str, Fraction]:
    """Return quantity `text` as Go writes it (`canonical_quantity`) and the amount Go parsed, exactly.

    The amount is what Kubernetes compares (`Quantity.Cmp`): `80Mi` → 83886080, `50m` → 1/20, `1n` →
    1/10**9, `+1` → 1, and Go's own roundings kept (finer than 1n rounds up to 1n; an exponent beyond
    int32 wraps as Go's does). Raises ArgoBuildError as `canonical_quantity` does.
    """
    try:
        return _parse_quantity_amount(text)
    except GoYAMLError as exc:
        raise ArgoBuildError(str(exc)) from None


def _parse_quantity(text: str) -> str:
    return _parse_quantity_amount(text)[0]


def _parse_quantity_amount(text: str) -> tuple[str, Fraction]:
    if not text:
        raise GoYAMLError(_QUANTITY_FORMAT)
    if text == "0":
        return text, Fraction(0)
    positive, value, num, denom, suffix = _split_quantity(text)
    if suffix in _DECIMAL:
        base, exponent, form = 10, _DECIMAL[suffix], "DecimalSI"
    elif suffix in _BINARY:
        base, exponent, form = 2, _BINARY[suffix], "BinarySI"
    elif re.fullmatch(r"[eE][-+]?[0-9]+", suffix) and -(2**63) <= int(suffix[1:]) < 2**63:
        base, exponent, form = 10, (int(suffix[1:]) + 2**31) % 2**32 - 2**31, "DecimalExponent"
    else:
        raise GoYAMLError("unable to parse quantity's suffix")
    mantissa, scale = 1, 0
    if form != "BinarySI":
        scale, precision = exponent, 18 - len(num) - len(denom)
    elif not denom:
        mantissa, precision = 1 << exponent, 15 - len(num) - exponent * 3 // 10 - 1
    else:
        precision = -1
    if precision >= 0 and scale - len(denom) >= -9:
        scale -= len(denom)
        shifted = num + denom
        result = int(shifted) * mantissa
        if result < 2**63:
            signed = result if positive else -result
            exact = Fraction(signed) * Fraction(10) ** scale
            if form == "BinarySI" and int(shifted) & 7:
                return text, exact
            if form != "BinarySI" and scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0":
                return text, exact
            return _canonical(signed, scale, form), exact
    try:
        _, digits, point = Decimal(value).as_tuple()
    except InvalidOperation:
        raise GoYAMLError("unable to parse numeric part of quantity") from None
    amount, power = int("".join(map(str, digits))), int(point)
    if base == 10:
        power += exponent
    else:
        amount <<= exponent
    if amount and power < -9:  # rounded up to the nano, the smallest amount Go keeps
        shift = -9 - power
        amount, power = (-(-amount // 10**shift) if shift <= len(str(amount)) else 1), -9
    if form == "BinarySI":
        if amount > (2**63 - 1) * 10 ** max(-power, 0):
            amount, power = 2**63 - 1, 0
        if 0 < amount < 10 ** max(-power, 0):
            form = "DecimalSI"
    signed = amount if positive else -amount
    return _canonical(signed, power, form), Fraction(signed) * Fraction(10) ** power


def _canonical(amount: int, power: int, form: str) -> str:
    # Quantity.CanonicalizeBytes for amount × 10^power.
    if amount == 0:
        return "0"
    if form == "BinarySI":
        whole, rest = divmod(amount, 10**-power) if power < 0 else (amount * 10**power, 0)
        if rest or -1024 < whole < 1024:
            form = "DecimalSI"
        else:
            step = 0
            while whole % 1024 == 0:
                whole, step = whole // 1024, step + 1
            return f"{whole}{_BINARY_NAMES.get(step, '')}"
    while amount % 10 == 0:
        amount, power = amount // 10, power + 1
    while power % 3:
        amount, power = amount * 10, power - 1
    if form == "DecimalSI":
        return f"{amount}{_DECIMAL_NAMES.get(power, '')}"
    return f"{amount}e{power}" if power else str(amount)


def _quantity(data: Any) -> str:
    # Quantity.UnmarshalJSON: null is 0; the JSON text, unquoted and trimmed, is parsed.
    if data is None:
        return "0"
    return _parse_quantity((data if isinstance(data, str) else goyaml.json_literal(data)).strip())


def _int_or_string(data: Any) -> int | str:
    # intstr.IntOrString.UnmarshalJSON: a JSON string, else json.Unmarshal into an int32.
    if isinstance(data, str):
        return data
    if data is None:
        return 0
    literal = (
        goyaml.json_literal(data) if isinstance(data, (int, float)) and not isinstance(data, bool) else ""
    )
    if re.fullmatch(r"-?[0-9]+", literal) and -(2**31) <= int(literal) < 2**31:
        return int(literal)
    raise UnmarshalTypeError(f"number {literal}" if literal else goyaml.json_kind(data), "int32")


def _time(data: Any) -> str | None:
    # metav1.Time.UnmarshalJSON: null, or an RFC 3339 string.
    if data is None:
        return None
    if not isinstance(data, str):
        raise UnmarshalTypeError(goyaml.json_kind(data), "string")
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", data):
        quoted = goyaml.go_quote(data)
        raise GoYAMLError(
            f'parsing time {quoted} as "2006-01-02T15:04:05Z07:00": cannot parse {quoted} as "2006"'
        )
    return data


# ---- the Go types plugin.yaml is decoded into (pkg/plugins/spec, k8s.io/api/core/v1, metav1) ---------------

# Each struct's JSON fields in Go's order: `name` is a string, `name:T` of type T (`*T` a pointer, `[]T` a
# slice, a name not listed a string type such as v1.Protocol), and `name!` has no `omitempty`.
_STRUCTS = {
    "spec.Plugin": "kind apiVersion metadata!:ObjectMeta spec!:PluginSpec",
    "spec.PluginSpec": "sidecar!:Sidecar",
    "spec.Sidecar": "automountServiceAccountToken:bool container!:Container",
    "v1.ObjectMeta": "name generateName namespace selfLink uid:types.UID resourceVersion generation:int64"
    " creationTimestamp:Time deletionTimestamp:*Time deletionGracePeriodSeconds:*int64"
    " labels:map[string]string annotations:map[string]string ownerReferences:[]OwnerReference"
    " finalizers:[]string managedFields:[]ManagedFieldsEntry",
    "v1.OwnerReference": "apiVersion! kind! name! uid!:types.UID controller:*bool blockOwnerDeletion:*bool",
    "v1.ManagedFieldsEntry": "manager operation:ManagedFieldsOperationType apiVersion time:*Time fieldsType"
    " fieldsV1:*FieldsV1 subresource",
    "v1.Container": "name! image command:[]string args:[]string workingDir ports:[]ContainerPort"
    " envFrom:[]EnvFromSource env:[]EnvVar resources:ResourceRequirements"
    " resizePolicy:[]ContainerResizePolicy restartPolicy:*ContainerRestartPolicy"
    " restartPolicyRules:[]ContainerRestartRule volumeMounts:[]VolumeMount volumeDevices:[]VolumeDevice"
    " livenessProbe:*Probe readinessProbe:*Probe startupProbe:*Probe"
    " lifecycle:*Lifecycle terminationMessagePath terminationMessagePolicy:TerminationMessagePolicy"
    " imagePullPolicy:PullPolicy securityContext:*SecurityContext stdin:bool stdinOnce:bool tty:bool",
    "v1.ContainerPort": "name hostPort:int32 containerPort!:int32 protocol:Protocol hostIP",
    "v1.EnvFromSource": "prefix configMapRef:*ConfigMapEnvSource secretRef:*SecretEnvSource",
    "v1.ConfigMapEnvSource": "name optional:*bool",
    "v1.SecretEnvSource": "name optional:*bool",
    "v1.EnvVar": "name! value valueFrom:*EnvVarSource",
    "v1.EnvVarSource": "fieldRef:*ObjectFieldSelector resourceFieldRef:*ResourceFieldSelector"
    " configMapKeyRef:*ConfigMapKeySelector secretKeyRef:*SecretKeySelector fileKeyRef:*FileKeySelector",
    "v1.ObjectFieldSelector": "apiVersion fieldPath!",
    "v1.ResourceFieldSelector": "containerName resource! divisor:Quantity",
    "v1.ConfigMapKeySelector": "name key! optional:*bool",
    "v1.SecretKeySelector": "name key! optional:*bool",
    "v1.FileKeySelector": "volumeName! path! key! optional:*bool",
    "v1.ResourceRequirements": "limits:ResourceList requests:ResourceList claims:[]ResourceClaim",
    "v1.ResourceClaim": "name! request",
    "v1.ContainerResizePolicy": "resourceName!:ResourceName restartPolicy!:ResourceResizeRestartPolicy",
    "v1.ContainerRestartRule": "action:ContainerRestartRuleAction exitCodes:*ContainerRestartRuleOnExitCodes",
    "v1.ContainerRestartRuleOnExitCodes": "operator:ContainerRestartRuleOnExitCodesOperator values:[]int32",
    "v1.VolumeMount": "name! readOnly:bool recursiveReadOnly:*RecursiveReadOnlyMode mountPath! subPath"
    " mountPropagation:*MountPropagationMode subPathExpr",
    "v1.VolumeDevice": "name! devicePath!",
    "v1.Probe": "exec:*ExecAction httpGet:*HTTPGetAction tcpSocket:*TCPSocketAction grpc:*GRPCAction"
    " initialDelaySeconds:int32 timeoutSeconds:int32 periodSeconds:int32 successThreshold:int32"
    " failureThreshold:int32 terminationGracePeriodSeconds:*int64",
    "v1.ExecAction": "command:[]string",
    "v1.HTTPGetAction": "path port!:IntOrString host scheme:URIScheme httpHeaders:[]HTTPHeader",
    "v1.HTTPHeader": "name! value!",
    "v1.TCPSocketAction": "port!:IntOrString host",
    "v1.GRPCAction": "port!:int32 service!:*string",
    "v1.Lifecycle": "postStart:*LifecycleHandler preStop:*LifecycleHandler stopSignal:*Signal",
    "v1.LifecycleHandler": "exec:*ExecAction httpGet:*HTTPGetAction tcpSocket:*TCPSocketAction"
    " sleep:*SleepAction",
    "v1.SleepAction": "seconds!:int64",
    "v1.SecurityContext": "capabilities:*Capabilities privileged:*bool seLinuxOptions:*SELinuxOptions"
    " windowsOptions:*WindowsSecurityContextOptions runAsUser:*int64 runAsGroup:*int64 runAsNonRoot:*bool"
    " readOnlyRootFilesystem:*bool allowPrivilegeEscalation:*bool procMount:*ProcMountType"
    " seccompProfile:*SeccompProfile appArmorProfile:*AppArmorProfile",
    "v1.Capabilities": "add:[]Capability drop:[]Capability",
    "v1.SELinuxOptions": "user role type level",
    "v1.WindowsSecurityContextOptions": "gmsaCredentialSpecName:*string gmsaCredentialSpec:*string"
    " runAsUserName:*string hostProcess:*bool",
    "v1.SeccompProfile": "type!:SeccompProfileType localhostProfile:*string",
    "v1.AppArmorProfile": "type!:AppArmorProfileType localhostProfile:*string",
}
_QUANTITY = GoType("custom", "resource.Quantity", parse=_quantity, zero="0")
_LEAVES = {
    "string": GoType("string", "string"),
    "bool": GoType("bool", "bool"),
    "int32": GoType("int32", "int32"),
    "int64": GoType("int64", "int64"),
    "Quantity": _QUANTITY,
    "ResourceList": GoType("map", "v1.ResourceList", elem=_QUANTITY),
    "IntOrString": GoType("custom", "intstr.IntOrString", parse=_int_or_string, zero=0),
    "Time": GoType("custom", "v1.Time", parse=_time),
    "FieldsV1": GoType("custom", "v1.FieldsV1", parse=lambda data: data),
}


@functools.cache
def _go_type(expression: str) -> GoType:
    for prefix, kind in (("*", "ptr"), ("[]", "slice"), ("map[string]", "map")):
        if expression.startswith(prefix):
            elem = _go_type(expression[len(prefix) :])
            # Go's errors name the type a pointer points to.
            return GoType(kind, elem.name if kind == "ptr" else prefix + elem.name, elem=elem)
    if expression in _LEAVES:
        return _LEAVES[expression]
    name = next((name for name in _STRUCTS if name.split(".")[1] == expression), None)
    if name is None:
        return GoType("string", expression if "." in expression else f"v1.{expression}")
    fields = []
    for item in _STRUCTS[name].split():
        field, _, type_expression = item.partition(":")
        fields.append(F(field.rstrip("!"), _go_type(type_expression or "string"), not field.endswith("!")))
    return GoType("struct", name, fields=tuple(fields))


_PLUGIN, _CONTAINER = _go_type("Plugin"), _go_type("Container")


# ---- the build (cmd/argo/commands/executorplugin/{build,io}.go, workflow/util/plugins/configmap.go) -------


def _plain(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {key: _plain(value) for key, value in data.items()}
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        return [_plain(item) for item in data]
    return data


def _decoded(manifest: Any) -> dict[str, Any]:
    try:
        plugin: dict[str, Any] = goyaml.decode(_PLUGIN, _plain(manifest))
    except GoYAMLError as exc:
        raise ArgoBuildError(str(exc)) from None
    return plugin


def _container(plugin: dict[str, Any]) -> dict[str, Any]:
    sidecar = plugin.setdefault("spec", {}).setdefault("sidecar", {})
    container: dict[str, Any] = sidecar.setdefault("container", {})
    return container


def sidecar_problem(container: Mapping[str, Any]) -> str:
    """What Argo's `Sidecar.Validate` (`pkg/plugins/spec/plugin_types.go`) refuses in `container`, or ""."""
    resources = container.get("resources") or {}
    if not container.get("ports"):
        return "at least one port is mandatory"
    if resources.get("requests") is None:
        return "resources requests are mandatory"
    if resources.get("limits") is None:
        return "resources limits are mandatory"
    if container.get("securityContext") is None:
        return "security context is mandatory"
    return ""


def _check(plugin: dict[str, Any]) -> None:
    problem = sidecar_problem(_container(plugin))
    if problem:
        raise ArgoBuildError(f"sidecar is invalid: {problem}")


def load_plugin_manifest(text: str) -> dict[str, Any]:
    """Parse plugin.yaml `text` strictly into the ExecutorPlugin, as Argo's `yaml.UnmarshalStrict` does.

    Unknown fields (anywhere, the container's included: it is checked against Kubernetes' Container),
    duplicate keys, YAML errors and values of the wrong type are errors. Returns the manifest with the
    fields set (JSON names, quantities canonical, YAML 1.1 `yes`/`on` read as Go reads them); it is not
    validated (see `validate_sidecar`). Raises ArgoBuildError with sigs.k8s.io/yaml's message, e.g.
    `error unmarshaling JSON: while decoding JSON: json: unknown field "foo"`
    (cmd/argo/commands/executorplugin/io.go loadPluginManifest).
    """
    try:
        data = goyaml.load(text)
    except GoYAMLError as exc:
        raise ArgoBuildError(str(exc)) from None
    return _decoded(data)


def validate_sidecar(manifest: Mapping[str, Any]) -> None:
    """Check the ExecutorPlugin `manifest` as Argo does before building it; the first failure wins.

    Only presence counts (`{}` passes): at least one port, resources requests, resources limits, a
    security context. Raises ArgoBuildError `sidecar is invalid: at least one port is mandatory` (then
    `resources requests are mandatory`, `resources limits are mandatory`, `security context is
    mandatory`), or a decoding error as `load_plugin_manifest` words it (pkg/plugins/spec/plugin_types.go).
    """
    _check(_decoded(manifest))


def configmap_manifest(manifest: Mapping[str, Any], *, server_text: str | None = None) -> dict[str, Any]:
    """Return the ConfigMap `<name>-executor-plugin` Argo builds from the ExecutorPlugin `manifest`.

    Namespace (if any) and annotations copied; labels copied over `workflows.argoproj.io/configmap-type`
    set to the manifest's kind (`ExecutorPlugin`); data `sidecar.automountServiceAccountToken` ("true" or
    "false") and `sidecar.container`, the container as Go writes it (every field Go writes, `name: ""`
    included; empty maps, lists and strings left out). `server_text`, when given, replaces the container's
    args as a one-element list (a `server.*` file). Validates first; raises ArgoBuildError as
    `validate_sidecar` does (workflow/util/plugins/configmap.go ToConfigMap).
    """
    plugin = _decoded(manifest)
    if server_text is not None:
        _container(plugin)["args"] = [server_text]
    _check(plugin)
    metadata = plugin.get("metadata", {})
    meta: dict[str, Any] = {
        "name": f"{metadata.get('name', '')}-executor-plugin",
        "creationTimestamp": None,
        "labels": {_CONFIGMAP_TYPE_LABEL: plugin.get("kind", ""), **(metadata.get("labels") or {})},
    }
    if metadata.get("namespace"):
        meta["namespace"] = metadata["namespace"]
    if metadata.get("annotations"):
        meta["annotations"] = dict(metadata["annotations"])
    automount = plugin["spec"]["sidecar"].get("automountServiceAccountToken", False)
    container = goyaml.encode(_CONTAINER, _container(plugin))
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {
            "sidecar.automountServiceAccountToken": "true" if automount else "false",
            "sidecar.container": to_go_yaml(container),
        },
    }


def configmap_text(manifest: Mapping[str, Any], *, server_text: str | None = None) -> str:
    """Return the text of `<name>-executor-plugin-configmap.yaml`: Argo's header line, then the ConfigMap.

    The ConfigMap is `configmap_manifest(manifest, server_text=server_text)` written by `to_go_yaml`;
    raises ArgoBuildError as that does (cmd/argo/commands/executorplugin/io.go saveConfigMap).
    """
    return f"{_HEADER}\n{to_go_yaml(configmap_manifest(manifest, server_text=server_text))}"


def readme_text(manifest: Mapping[str, Any]) -> str:
    """Return the README.md Argo writes for the ExecutorPlugin `manifest`, from its template, verbatim.

    Name, the `workflows.argoproj.io/version` annotation, the image, the `workflows.argoproj.io/description`
    annotation as written (its own trailing newline included, so usually two blank lines follow it),
    install and uninstall commands (a line holding one tab; a trailing space after the uninstall
    command). Missing values are empty. Raises ArgoBuildError if the manifest does not decode
    (cmd/argo/commands/executorplugin/io.go saveReadme).
    """
    plugin = _decoded(manifest)
    metadata = plugin.get("metadata", {})
    name, annotations = metadata.get("name", ""), metadata.get("annotations") or {}
    return (
        "<!-- This is an auto-generated file. DO NOT EDIT -->\n"
        f"# {name}\n\n"
        f"* Needs: {annotations.get(_VERSION_ANNOTATION, '')}\n"
        f"* Image: {_container(plugin).get('image', '')}\n\n"
        f"{annotations.get(_DESCRIPTION_ANNOTATION, '')}\n\n"
        "Install:\n\n"
        f"    kubectl apply -f {name}-executor-plugin-configmap.yaml\n\n"
        "Uninstall:\n\t\n"
        f"    kubectl delete cm {name}-executor-plugin \n"
    )


def _join(directory: Path | str, name: str) -> str:
    # filepath.Join: joined, then cleaned.
    joined = posixpath.normpath(posixpath.join(os.fspath(directory), name))
    return joined[1:] if joined.startswith("//") else joined


def _os_error(operation: str, path: str, exc: OSError) -> ArgoBuildError:
    # Go's *PathError: "open plugin.yaml: no such file or directory".
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return ArgoBuildError(f"{operation} {path}: {reason[:1].lower()}{reason[1:]}")


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except IsADirectoryError as exc:
        raise _os_error("read", path, exc) from None
    except OSError as exc:
        raise _os_error("open", path, exc) from None


_UTF8_PROBLEMS = {  # yaml.v2 readerc.go
    "invalid start byte": "invalid leading UTF-8 octet",
    "unexpected end of data": "incomplete UTF-8 octet sequence",
}


def _yaml_text(data: bytes) -> str:
    # yaml.v2 reads UTF-8, or UTF-16 with a byte order mark.
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problem = _UTF8_PROBLEMS.get(exc.reason, "invalid trailing UTF-8 octet")
        raise ArgoBuildError(f"error converting YAML to JSON: yaml: {problem}") from None


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_bytes(text.encode())
    except OSError as exc:
        raise _os_error("open", path, exc) from None


def build_folder(directory: Path, *, warn: Callable[[str], None] | None = None) -> list[Path]:
    """Build the plugin in `directory` as `argo executor-plugin build DIR` does; return the files written.

    Reads `DIR/plugin.yaml` (`load_plugin_manifest`); a single `server.*` file's text becomes the
    container's args; validates; writes `DIR/<name>-executor-plugin-configmap.yaml` (`configmap_text`),
    then `DIR/README.md` (`readme_text`), and returns those two paths in that order (the CLI prints
    `<path> created` for each). Nothing is written when the plugin does not build. Raises
    ArgoBuildError with Argo's message: `open DIR/plugin.yaml: no such file or directory`, `plugin <name>
    has more than one server.* file`, or the functions' above (cmd/argo/commands/executorplugin/build.go,
    io.go). Argo builds a sidecar whose user cannot read its token (Argo issue #13015); argoplug builds it
    too and then calls `warn` with `token_access.security_context_problem`'s sentence.
    """
    manifest = load_plugin_manifest(_yaml_text(_read(_join(directory, "plugin.yaml"))))
    name = manifest.get("metadata", {}).get("name", "")
    try:
        entries = sorted(os.listdir(directory))
    except OSError:
        entries = []  # filepath.Glob ignores I/O errors
    servers = [_join(directory, entry) for entry in entries if entry.startswith("server.")]
    if len(servers) > 1:
        raise ArgoBuildError(f"plugin {name} has more than one server.* file")
    server_text = goyaml.bytes_text(_read(servers[0])) if servers else None
    configmap = configmap_text(manifest, server_text=server_text)
    readme = readme_text(manifest)
    configmap_path = _join(directory, f"{name}-executor-plugin-configmap.yaml")
    readme_path = _join(directory, "README.md")
    _write(configmap_path, configmap)
    _write(readme_path, readme)
    problem = security_context_problem(_container(manifest).get("securityContext"))
    if problem is not None and warn is not None:
        warn(f"{configmap_path}: sidecar.container.securityContext: {problem}")
    return [Path(configmap_path), Path(readme_path)]
