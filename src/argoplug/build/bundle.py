"""The bundle file (`argoplug.yaml`) that `argoplug build` reads: its fields, defaults and checks.

`load_bundle` reads and checks it (every problem named by its field path, with the value and what is
expected) into a `Bundle`; `argoplug.build.writer.build_bundle` turns a `Bundle` into install files.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from argoplug.build.argo import ArgoBuildError, quantity_amount
from argoplug.build.fields import show as _show
from argoplug.build.fields import type_problems
from argoplug.build.goyaml import GoYAMLError, json_literal
from argoplug.protocol import DEFAULT_PORT
from argoplug.token_access import AGENT_UID, security_context_problem
from argoplug.yaml_marks import yaml_problem

__all__ = [
    "DEFAULT_ARGO_VERSION",
    "DEFAULT_LIMITS",
    "DEFAULT_NAMESPACES",
    "DEFAULT_REQUESTS",
    "EXECUTOR_PLUGIN_SUFFIX",
    "IMAGE_GID",
    "IMAGE_UID",
    "MAX_NAME_LENGTH",
    "ROLE_ARN",
    "Bundle",
    "BundleError",
    "Instance",
    "Resources",
    "ServiceAccount",
    "bundle_warnings",
    "default_security_context",
    "instance_bundles",
    "load_bundle",
    "parse_bundle",
    "select_namespaces",
]

DEFAULT_ARGO_VERSION = ">= v3.3"
DEFAULT_NAMESPACES = ("argo",)
# `<name>-executor-plugin` names the sidecar container, a DNS-1123 label of at most 63 characters.
EXECUTOR_PLUGIN_SUFFIX = "-executor-plugin"
MAX_NAME_LENGTH = 63 - len(EXECUTOR_PLUGIN_SUFFIX)
# The user and group the generated Dockerfile creates and switches to, and the default securityContext's
# runAsUser/runAsGroup: Argo's agent user, the owner of the token file it writes (`argoplug.token_access`).
IMAGE_UID = AGENT_UID
IMAGE_GID = AGENT_UID

# Measured (2026-11-21, Python 3.11.7, x86-64, /tmp script not kept) on `argoplug serve --plugin
# sagemaker-pipelines --log-format json` against the moto sandbox of examples/sagemaker, medians of 3-5
# fresh starts: RSS 35 MiB idle (boto3 is imported on the first AWS call, not at start); 63.7 MiB once a
# call has made a boto3 SageMaker client (peak 67.4 MiB); 64.2 MiB after 40 more calls; each further
# (region, assumed role) adds ~16 MiB (argoplug.aws keeps a boto3 session per pair: 3 more regions and
# one role took it to 130 MiB); 64 calls, 16 at a time (the agent's most), added 4 MiB. CPU: 0.19 s to
# start, 0.19 s more for the first AWS call, ~8 ms a call after. So the request sits a little above the
# working set of one region, and the limit leaves room for about ten more (region, role) pairs: an OOM
# kill would cut calls short. A 500m CPU limit keeps the start (0.2 s of CPU) far inside the agent's ~15 s.
DEFAULT_REQUESTS: Mapping[str, str] = {"cpu": "50m", "memory": "80Mi"}
DEFAULT_LIMITS: Mapping[str, str] = {"cpu": "500m", "memory": "256Mi"}

# Ports docs/contract.md §5.7 says to avoid (commonly taken by other containers of a pod), and those of the
# published executor plugins: every sidecar of the agent pod shares one network namespace.
_AVOIDED_PORTS = (80, 443, 8080, 8081, 8443)
_PUBLISHED_PORTS = {
    4355: "hello",
    7984: "python",
    7522: "slack",
    3030: "hermes",
    7492: "awf-aws",
    3000: "wasm",
}

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
# IAM role ARNs (IAM User Guide, "IAM identifiers"): partition, 12-digit account, role path and name.
ROLE_ARN = re.compile(r"^arn:(?P<partition>aws[a-z-]*):iam::(?P<account>\d{12}):role/[\w+=,.@/-]{1,512}$")
# What each field holds, in the words of a problem message ("<field>: expected <this>, got ...").
_FIELD_EXPECTED = {
    "name": "the plugin's name, a DNS-1123 label (lower-case letters, digits, '-')",
    "image": "the container image, e.g. ghcr.io/you/plugin:0.1.0",
    "plugins": "a list of installed plugin entry-point names or module:attr paths",
    "port": "an integer from 1024 to 65535",
    "settings": "a mapping of plugin name → a mapping of that plugin's settings",
    "env": "a list of Kubernetes EnvVar mappings (name, value or valueFrom)",
    "namespaces": "a list of namespaces (DNS-1123 labels)",
    "logLevel": "one of debug, info, warning, error",
    "handlerDeadline": "seconds, a number above 0 and below 30",
}


class BundleError(Exception):
    """The bundle, or what a plugin package's build hook gave for it, is wrong; nothing was written.

    The message names each problem's field path (`port`, `namespaces[1]`, ...) or plugin package, the
    value, and what is expected; `problems` holds them one by one.
    """

    def __init__(self, message: str, problems: typing.Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems) or [message]


def default_security_context() -> dict[str, Any]:
    """Return the sidecar's default `SecurityContext`: uid/gid 8737, read-only root, no capabilities.

    uid 8737 is the user Argo's agent init container writes the token file as (0440, gid 0): the owner
    reads it whatever the image's /etc/passwd says. A user of another uid and group could not (Argo issue
    #13015), and every call would get 503.
    """
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": IMAGE_UID,
        "runAsGroup": IMAGE_GID,
    }


Quantity = str | int | float


class Resources(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """The sidecar's `requests` and `limits` (resource name → Kubernetes quantity, e.g. `80Mi`, `50m`)."""

    requests: dict[str, Quantity] = msgspec.field(default_factory=lambda: dict(DEFAULT_REQUESTS))
    limits: dict[str, Quantity] = msgspec.field(default_factory=lambda: dict(DEFAULT_LIMITS))


class ServiceAccount(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True, rename="camel"):
    """The ServiceAccount `<name>-executor-plugin`: token mounting and IRSA (IAM roles for service accounts).

    - `automount_token`: give the sidecar this account's token; None: only when a hook gave RBAC rules.
    - `iam_role_arn`: the IAM role for IRSA (annotation `eks.amazonaws.com/role-arn`), or "".
    - `oidc_provider`: the cluster's OIDC provider (`oidc.eks.<region>.amazonaws.com/id/<ID>`) for the
      trust policy, or "" for a `<OIDC_PROVIDER>` placeholder.
    """

    automount_token: bool | None = None
    iam_role_arn: str = ""
    oidc_provider: str = ""


class Instance(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """One plugin instance of a bundle's `instances` (AWS Orbit's per-team plugin declarations): the
    `namespace` (a team) it is deployed to, its `name` there (the executor plugin `<name>-executor-plugin`;
    default the bundle's name), the plugin package it serves (`plugin`, as in `plugins`) and that
    package's `parameters` (its settings for this instance)."""

    namespace: str
    plugin: str
    name: str = ""
    parameters: dict[str, Any] = {}


class Bundle(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True, rename="camel"):
    """A checked `argoplug.yaml`: what one executor plugin sidecar serves and how it is installed.

    Keys are camelCase, like Kubernetes. Made by `load_bundle` / `parse_bundle`, which check every field:

    - `name` (required): DNS-1123 label, at most 47 characters; objects are named `<name>-executor-plugin`.
    - `image` (required): the sidecar image the generated Dockerfile builds.
    - `plugins` (required, at least one): installed entry-point names or `module:attr` paths to serve.
    - `port` (7733): the containerPort, 1024-65535, not one Argo says to avoid, nor a published plugin's
      unless `name` is that plugin's (the bundle then replaces it: same ConfigMap).
    - `settings` ({}): plugin name (as in `plugins`) → mapping, given to that package's build hooks as
      `BuildContext.settings`.
    - `description` (the plugins' keys and descriptions), `argoVersion` (">= v3.3"): the annotations.
    - `resources`: `requests` (cpu 50m, memory 80Mi) and `limits` (cpu 500m, memory 256Mi); each mapping
      given replaces its default whole; quantities as Kubernetes parses them, at least 0, requests at most
      the limits, written as Go writes them. `securityContext` (`default_security_context()`): likewise.
    - `serviceAccount`: `automountToken` (true only when a hook gave RBAC rules), `iamRoleArn` (IRSA),
      `oidcProvider` (for the trust policy; else a placeholder).
    - `namespaces` (["argo"]): where the plugin is installed. `workflowServiceAccount`: what workflows run
      as (default: `<name>-executor-plugin` with `iamRoleArn`, else `default`).
    - `env` ([]): extra EnvVars. `logLevel`, `handlerDeadline` (seconds): `argoplug serve` options.
    - `namespaceSelector` ({}): labels (matchLabels) naming the namespaces to deploy to, instead of
      `namespaces`: `argoplug deploy` lists the namespaces that carry them (KFP labels its profile
      namespaces); `argoplug build`, which reaches no cluster, refuses it.
    - `instances` ([]): plugin instances per namespace (`Instance`), instead of `plugins`, `settings` and
      `namespaces`: each is built and deployed as a bundle of its own (`instance_bundles`), with this
      bundle's other fields. Several instances of one package may differ in parameters, each in a
      namespace of its own.
    """

    name: str
    image: str
    plugins: list[str] = []
    port: int = DEFAULT_PORT
    settings: dict[str, dict[str, Any]] = {}
    description: str = ""
    argo_version: str = DEFAULT_ARGO_VERSION
    resources: Resources = msgspec.field(default_factory=Resources)
    security_context: dict[str, Any] = msgspec.field(default_factory=default_security_context)
    service_account: ServiceAccount = msgspec.field(default_factory=ServiceAccount)
    namespaces: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_NAMESPACES))
    workflow_service_account: str = ""
    env: list[dict[str, Any]] = []
    log_level: Literal["debug", "info", "warning", "error"] | None = None
    handler_deadline: float | None = None
    instances: list[Instance] = []
    namespace_selector: dict[str, str] = {}

    @property
    def sidecar_name(self) -> str:
        """`<name>-executor-plugin`: the ConfigMap, container and ServiceAccount name Argo expects."""
        return self.name + EXECUTOR_PLUGIN_SUFFIX

    @property
    def agent_service_account(self) -> str:
        """The service account workflows (and so the agent pod) run as.

        `workflowServiceAccount` when given; else `<name>-executor-plugin` with IRSA (EKS gives a pod the
        role of the service account the pod runs as, and the agent pod runs as the workflow's), else
        `default`.
        """
        if self.workflow_service_account:
            return self.workflow_service_account
        return self.sidecar_name if self.service_account.iam_role_arn else "default"


def bundle_warnings(bundle: Bundle) -> list[str]:
    """Return what is allowed but risky in `bundle`, one sentence each, for `argoplug build` to print.

    The agent Role bound to service account `default` (no `iamRoleArn` and no `workflowServiceAccount`,
    or `workflowServiceAccount: default`), which lets every pod running as `default` in those namespaces
    patch WorkflowTaskSet status, that is, forge plugin results; and a `securityContext` whose user may
    not read the token file Argo's agent writes (`token_access.security_context_problem`).
    """
    found: list[str] = []
    problem = security_context_problem(bundle.security_context)
    if problem is not None:
        found.append(f"securityContext: {problem}")
    if bundle.agent_service_account == "default":
        own = [instance.namespace for instance in bundle.instances] or bundle.namespaces
        namespaces = ", ".join(dict.fromkeys(own))
        found.append(
            f"agent-role.yaml binds the agent Role to service account 'default' in {namespaces}: every pod "
            "running as 'default' there may patch WorkflowTaskSet status, that is, forge plugin results; "
            "set workflowServiceAccount (or serviceAccount.iamRoleArn) to run the workflows that use "
            "this plugin as an account of their own"
        )
    return found


def instance_bundles(bundle: Bundle) -> list[tuple[str, str, Bundle]]:
    """Return `(namespace, instance name, bundle)` for each plugin instance of `bundle`: one per
    `instances` entry (the bundle with that name, plugin, parameters and namespace), else one per
    namespace of `namespaces` (the bundle itself, in that namespace alone)."""
    if not bundle.instances:
        return [
            (namespace, bundle.name, msgspec.structs.replace(bundle, namespaces=[namespace]))
            for namespace in bundle.namespaces
        ]
    found = []
    for instance in bundle.instances:
        name = instance.name or bundle.name
        own = msgspec.structs.replace(
            bundle,
            name=name,
            plugins=[instance.plugin],
            settings={instance.plugin: dict(instance.parameters)},
            namespaces=[instance.namespace],
            instances=[],
        )
        found.append((instance.namespace, name, own))
    return found


def load_bundle(path: str | Path) -> Bundle:
    """Read and check the bundle file at `path` (YAML); return the Bundle.

    Raises BundleError naming the file and every field that is wrong.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BundleError(f"cannot read bundle {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise BundleError(f"bundle {path} is not valid YAML: {yaml_problem(exc, path)}") from None
    return parse_bundle(raw, source=str(path))


def parse_bundle(raw: Any, *, source: str = "bundle") -> Bundle:
    """Check the decoded bundle `raw` (a mapping, as from YAML) and return it as a Bundle.

    Types come first (msgspec, strict), then the values: names, port, quantities, ARNs. Raises
    BundleError listing every problem, each as `<field path>: <what is wrong>`.
    """
    if not isinstance(raw, Mapping):
        raise BundleError(f"{source}: expected a mapping of bundle fields, got {_show(raw)}")
    problems = type_problems(raw, Bundle, expected=_FIELD_EXPECTED)
    if not problems:
        try:
            bundle = msgspec.convert(raw, Bundle)
        except msgspec.ValidationError as exc:  # a case type_problems does not foresee
            problems = [str(exc)]
        else:
            problems = _value_problems(bundle)
            if bundle.namespace_selector and ("namespaces" in raw or bundle.instances):
                problems.append(
                    "namespaceSelector: give either `namespaceSelector` or `namespaces` / `instances`"
                )
            problems.extend(_selector_problems(bundle.namespace_selector))
            if bundle.instances and "namespaces" in raw:
                problems.append(
                    "namespaces: give either `namespaces` or `instances` (each names its namespace)"
                )
    if problems:
        raise BundleError(
            f"invalid bundle {source}:\n" + "\n".join(f"  - {p}" for p in problems),
            [f"{source}: {p}" for p in problems],
        )
    return _normalized(bundle)


# --- values -----------------------------------------------------------------------------------------


def _value_problems(bundle: Bundle) -> list[str]:
    problems: list[str] = []
    if not _DNS_LABEL.match(bundle.name) or len(bundle.name) > MAX_NAME_LENGTH:
        problems.append(
            f"name: expected a DNS-1123 label of at most {MAX_NAME_LENGTH} characters (lower-case letters, "
            f"digits, '-'; `<name>-executor-plugin` must fit in 63), got {_show(bundle.name)}"
        )
    if not bundle.image.strip() or any(c.isspace() for c in bundle.image):
        problems.append(f"image: expected {_FIELD_EXPECTED['image']} (no spaces), got {_show(bundle.image)}")
    problems.extend(_port_problems(bundle.port, bundle.name))
    if bundle.instances:
        problems.extend(_instance_problems(bundle))
    else:
        problems.extend(_plugin_list_problems(bundle))
        problems.extend(_name_list_problems("namespaces", bundle.namespaces, "namespace"))
    if bundle.workflow_service_account and not _is_subdomain(bundle.workflow_service_account):
        problems.append(
            "workflowServiceAccount: expected a service account name (a DNS-1123 subdomain), "
            f"got {_show(bundle.workflow_service_account)}"
        )
    problems.extend(_resource_problems(bundle.resources))
    problems.extend(_service_account_problems(bundle))
    problems.extend(_env_problems(bundle.env))
    if not bundle.security_context:
        problems.append("securityContext: expected a Kubernetes SecurityContext (Argo requires one), got {}")
    if not bundle.argo_version.strip():
        problems.append("argoVersion: expected a version constraint like '>= v3.3', got ''")
    deadline = bundle.handler_deadline
    if deadline is not None and not 0 < deadline < 30:
        problems.append(
            f"handlerDeadline: expected {_FIELD_EXPECTED['handlerDeadline']} (the agent gives up on a "
            f"call after 30 s), got {_show(deadline)}"
        )
    return problems


def _port_problems(port: int, name: str) -> list[str]:
    if not 1 <= port <= 65535:
        return [f"port: expected an integer from 1024 to 65535, got {port}"]
    if port in _AVOIDED_PORTS:
        return [
            f"port: {port} is one Argo tells executor plugins to avoid (80, 443, 8080, 8081, 8443: other "
            "containers commonly listen there, and all sidecars of the agent pod share one network); "
            f"pick another from 1024 to 65535 (default {DEFAULT_PORT})"
        ]
    if port < 1024:
        return [
            f"port: {port} is below 1024, which needs root or CAP_NET_BIND_SERVICE, and the sidecar runs "
            f"as uid {IMAGE_UID} with every capability dropped; pick one from 1024 to 65535"
        ]
    if port in _PUBLISHED_PORTS and _PUBLISHED_PORTS[port] != name:
        # A bundle named like a published plugin replaces it (same ConfigMap), so may take its port.
        return [
            f"port: {port} is the port of the published executor plugin {_PUBLISHED_PORTS[port]!r}; all "
            "sidecars of an agent pod share one network, so both could not listen; pick another (or name "
            f"the bundle {_PUBLISHED_PORTS[port]!r} to replace that plugin)"
        ]
    return []


def _plugin_list_problems(bundle: Bundle) -> list[str]:
    problems: list[str] = []
    if not bundle.plugins:
        problems.append(f"plugins: expected at least one plugin ({_FIELD_EXPECTED['plugins']}), got []")
    seen: set[str] = set()
    for index, name in enumerate(bundle.plugins):
        if not name.strip():
            problems.append(f"plugins[{index}]: expected a plugin name, got {_show(name)}")
        elif name in seen:
            problems.append(f"plugins[{index}]: {name!r} is listed twice")
        seen.add(name)
    for key in bundle.settings:
        if key not in seen:
            problems.append(
                f"settings.{key}: not a plugin of this bundle (settings are keyed by the names in "
                f"`plugins`: {', '.join(bundle.plugins) or 'none'})"
            )
    return problems


_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def _selector_problems(selector: Mapping[str, str]) -> list[str]:
    problems = []
    for key, value in selector.items():
        if not _LABEL_KEY.match(key) or len(key.rpartition("/")[2]) > 63:
            problems.append(f"namespaceSelector: {key!r} is not a label key ([prefix/]name)")
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            problems.append(f"namespaceSelector.{key}: {value!r} is not a label value")
    return problems


def select_namespaces(bundle: Bundle, namespaces: list[str]) -> Bundle:
    """`bundle` with the namespaces its `namespaceSelector` found in a cluster (sorted), as `namespaces`."""
    return msgspec.structs.replace(bundle, namespaces=sorted(namespaces), namespace_selector={})


def _instance_problems(bundle: Bundle) -> list[str]:
    problems: list[str] = []
    for field, given in (("plugins", bundle.plugins), ("settings", bundle.settings)):
        if given:
            problems.append(f"{field}: give either `{field}` or `instances` (each instance names its plugin)")
    seen: dict[tuple[str, str], int] = {}
    serving: dict[tuple[str, str], str] = {}
    for index, instance in enumerate(bundle.instances):
        at = f"instances[{index}]"
        name = instance.name or bundle.name
        if not _DNS_LABEL.match(instance.namespace) or len(instance.namespace) > 63:
            problems.append(
                f"{at}.namespace: expected a namespace name, a DNS-1123 label, got "
                f"{_show(instance.namespace)}"
            )
        if instance.name and (not _DNS_LABEL.match(instance.name) or len(instance.name) > MAX_NAME_LENGTH):
            problems.append(
                f"{at}.name: expected a DNS-1123 label of at most {MAX_NAME_LENGTH} characters, got "
                f"{_show(instance.name)}"
            )
        if not instance.plugin.strip():
            problems.append(f"{at}.plugin: expected a plugin name ({_FIELD_EXPECTED['plugins']})")
        where = (instance.namespace, name)
        if where in seen:
            problems.append(
                f"{at}: namespace {instance.namespace!r} has instance {name!r} already "
                f"(instances[{seen[where]}]); give this one another `name`"
            )
        seen.setdefault(where, index)
        other = serving.get((instance.namespace, instance.plugin))
        if other is not None and other != name:
            problems.append(
                f"{at}: namespace {instance.namespace!r} has {instance.plugin!r} as instance {other!r} "
                "already: Argo's agent would give all its templates to one of them; put this one in another "
                "namespace"
            )
        serving.setdefault((instance.namespace, instance.plugin), name)
    return problems


def _name_list_problems(field: str, names: list[str], what: str) -> list[str]:
    problems: list[str] = []
    if not names:
        problems.append(f"{field}: expected at least one {what}, got []")
    for index, name in enumerate(names):
        if not _DNS_LABEL.match(name) or len(name) > 63:
            problems.append(
                f"{field}[{index}]: expected a {what} name, a DNS-1123 label (at most 63 lower-case "
                f"letters, digits and '-', starting and ending with a letter or digit), got {_show(name)}"
            )
        elif name in names[:index]:
            problems.append(f"{field}[{index}]: {name!r} is listed twice")
    return problems


def _resource_problems(resources: Resources) -> list[str]:
    problems: list[str] = []
    values: dict[str, dict[str, Fraction]] = {}
    for part in ("requests", "limits"):
        quantities: dict[str, Quantity] = getattr(resources, part)
        if not quantities:
            problems.append(
                f"resources.{part}: expected at least one quantity (Argo requires {part}), got {{}}"
            )
        for resource, quantity in quantities.items():
            try:
                amount = quantity_amount(_quantity_text(quantity))[1]
            except (ArgoBuildError, GoYAMLError) as exc:
                problems.append(
                    f"resources.{part}.{resource}: expected a Kubernetes quantity like 80Mi, 1Gi, 50m or 2, "
                    f"got {_show(quantity)} ({exc})"
                )
                continue
            if amount < 0:
                problems.append(
                    f"resources.{part}.{resource}: expected a quantity of at least 0 (Kubernetes refuses "
                    f"a pod with a negative one), got {_show(quantity)}"
                )
            values.setdefault(resource, {})[part] = amount
    for resource, amounts in values.items():
        if "requests" in amounts and "limits" in amounts and amounts["requests"] > amounts["limits"]:
            problems.append(
                f"resources.requests.{resource}: expected at most the limit "
                f"{resources.limits[resource]!r}, got {resources.requests[resource]!r}"
            )
    return problems


def _quantity_text(quantity: Quantity) -> str:
    # A YAML number is read as Kubernetes reads a JSON number quantity: its JSON text (0.5 → "0.5").
    return quantity if isinstance(quantity, str) else json_literal(quantity)


def _service_account_problems(bundle: Bundle) -> list[str]:
    account = bundle.service_account
    problems: list[str] = []
    if account.iam_role_arn and not ROLE_ARN.match(account.iam_role_arn):
        problems.append(
            "serviceAccount.iamRoleArn: expected an IAM role ARN like arn:aws:iam::123456789012:role/name, "
            f"got {_show(account.iam_role_arn)}"
        )
    provider = account.oidc_provider.removeprefix("https://")
    if provider and (not account.iam_role_arn or "/" not in provider or any(c.isspace() for c in provider)):
        problems.append(
            "serviceAccount.oidcProvider: expected the cluster's OIDC provider, e.g. "
            "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE, with iamRoleArn set; "
            f"got {_show(account.oidc_provider)}"
        )
    runs_as = bundle.agent_service_account
    if account.iam_role_arn and runs_as != bundle.sidecar_name:
        problems.append(
            f"workflowServiceAccount: {runs_as!r} with serviceAccount.iamRoleArn: EKS gives a pod the IAM "
            "role of the service account the pod runs as, and the agent pod (with this sidecar) runs as "
            f"the workflow's; leave workflowServiceAccount out (it then is {bundle.sidecar_name!r}) and run "
            f"workflows as serviceAccountName: {bundle.sidecar_name}, or drop iamRoleArn and annotate "
            f"{runs_as!r} yourself"
        )
    return problems


def _env_problems(env: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    names: list[str] = []
    for index, var in enumerate(env):
        name = var.get("name")
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            problems.append(f"env[{index}].name: expected an environment variable name, got {_show(name)}")
            continue
        if name in names:
            problems.append(f"env[{index}].name: {name!r} is set twice")
        names.append(name)
        if "value" in var and not isinstance(var["value"], str):
            problems.append(
                f"env[{index}].value: expected a string (quote numbers and booleans), "
                f"got {_show(var['value'])}"
            )
        unknown = sorted(set(var) - {"name", "value", "valueFrom"})
        if unknown:
            problems.append(
                f"env[{index}]: {', '.join(unknown)} not fields of an EnvVar "
                "(expected name, value, valueFrom)"
            )
    return problems


def _is_subdomain(name: str) -> bool:
    return bool(_DNS_SUBDOMAIN.match(name)) and len(name) <= 253


def _normalized(bundle: Bundle) -> Bundle:
    resources = Resources(
        requests={k: _canonical_quantity(v) for k, v in bundle.resources.requests.items()},
        limits={k: _canonical_quantity(v) for k, v in bundle.resources.limits.items()},
    )
    account = msgspec.structs.replace(
        bundle.service_account, oidc_provider=bundle.service_account.oidc_provider.removeprefix("https://")
    )
    return msgspec.structs.replace(bundle, resources=resources, service_account=account)


def _canonical_quantity(quantity: Quantity) -> str:
    return quantity_amount(_quantity_text(quantity))[0]
