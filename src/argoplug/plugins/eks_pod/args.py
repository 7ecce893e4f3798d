"""The `eks-pod` plugin block and its checks beyond types; the pod spec it makes from them.

`handlers` declares the plugin with `EksPodArgs` and `argument_problems` (one message names every
problem), and builds the pod with `pod_manifest`. The names are those of Airflow's `EksPodOperator`
(`cluster_name`, `pod_name`, `namespace`, `image`, `cmds` as `command`, `arguments` as `args`,
`get_logs`, `on_finish_action`, `startup_timeout_seconds`) where one exists.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from argoplug.plugins import aws_common
from argoplug.plugins.aws_common import common_problems

__all__ = [
    "DEFAULT_LOG_LINES",
    "DEFAULT_STARTUP_TIMEOUT",
    "MAX_LOG_LINES",
    "EksPodArgs",
    "argument_problems",
    "duration_seconds",
    "pod_manifest",
    "pod_name",
]

DEFAULT_STARTUP_TIMEOUT = 120.0  # seconds: EksPodOperator's startup_timeout_seconds default
MAX_STARTUP_TIMEOUT = 7 * 86_400.0  # seconds
DEFAULT_LOG_LINES = 100
MAX_LOG_LINES = 10_000
# A pod's name is a DNS-1123 subdomain; 63 characters keep it a valid hostname and label value too.
_NAME_LENGTH = 63
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# EKS CreateCluster's name pattern.
_CLUSTER = re.compile(r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class EksPodArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The `eks-pod` plugin block: run one pod on an EKS cluster and report how it ended.

    - `cluster_name` (required): the EKS cluster; `region`: its region (default: the sidecar's AWS_REGION);
      `role_arn`: an IAM role to assume first (STS AssumeRole, session `argo-<namespace>-<workflow>`),
      the principal the cluster's access entry (or aws-auth mapping) maps to a Kubernetes user.
    - `namespace`: the pod's namespace in that cluster (default `default`).
    - `pod_name`: the pod name's prefix (default `argoplug`); the name is `<pod_name>-<16 hex digits of the
      task's idempotency key>` (and `-2`, `-3`... for later attempts), so a restarted sidecar finds its
      pod instead of creating a second one.
    - the container: `image` (required unless `pod_spec`), `command` (the entrypoint, as `cmds`), `args`,
      `env` (name → string value), `resources` (a Kubernetes ResourceRequirements), `service_account_name`,
      `labels` and `annotations` for the pod; or `pod_spec`, a whole Kubernetes PodSpec (its first
      container is the one reported; `restartPolicy` defaults to Never).
    - `get_logs`: put the last `log_lines` lines (default 100) of the container's log in the output `logs`
      (default true).
    - `on_finish`: `delete` the pod when it ends (default), `keep` it, or `delete_succeeded` (keep failed
      pods, for a look).
    - `startup_timeout`: seconds, or a Go duration ("2m"), a pod may stay Pending (default 120); past it,
      with an image-pull or scheduling reason, the node fails with that reason.
    - `cancel_on_stop`: delete the pod if it still runs when the sidecar stops (default true).
    """

    cluster_name: str = ""
    region: str = ""
    role_arn: str = ""
    namespace: str = "default"
    pod_name: str = "argoplug"
    image: str = ""
    command: list[str] = []
    args: list[str] = []
    env: dict[str, str] = {}
    resources: dict[str, Any] = {}
    service_account_name: str = ""
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    pod_spec: dict[str, Any] = {}
    get_logs: bool = True
    log_lines: int = DEFAULT_LOG_LINES
    on_finish: Literal["delete", "keep", "delete_succeeded"] = "delete"
    startup_timeout: float | str = DEFAULT_STARTUP_TIMEOUT
    cancel_on_stop: bool = True


def duration_seconds(value: float | str) -> float:
    """Seconds of a `startup_timeout`: a number, a numeric string or a Go duration; ValueError unless
    above 0 and at most a week (`aws_common.duration_seconds`)."""
    return aws_common.duration_seconds(value, maximum=MAX_STARTUP_TIMEOUT)


_CONTAINER_FIELDS = ("image", "command", "args", "env", "resources", "service_account_name")


def argument_problems(args: EksPodArgs, unconverted: frozenset[str] = frozenset()) -> list[str]:
    """What is wrong with an `eks-pod` block beyond its types, each naming the field."""
    problems = []
    if not args.cluster_name:
        problems.append("`cluster_name`: required: the EKS cluster to run the pod on")
    elif not _CLUSTER.match(args.cluster_name):
        problems.append(
            f"`cluster_name`: {args.cluster_name!r} is not an EKS cluster name (letters, digits, '-' "
            "and '_', starting with a letter or digit, at most 100 characters)"
        )
    if args.region and not _REGION.match(args.region):
        problems.append(f"`region`: expected an AWS region like us-east-1, got {args.region!r}")
    problems.extend(common_problems("", args.role_arn))
    if len(args.namespace) > 63 or not _LABEL.match(args.namespace):
        problems.append(
            f"`namespace`: {args.namespace!r} is not a namespace name (lowercase letters, digits and '-', "
            "at most 63 characters)"
        )
    if len(args.pod_name) > _NAME_LENGTH - 20 or not _LABEL.match(args.pod_name):
        problems.append(
            f"`pod_name`: {args.pod_name!r} cannot start a pod name: expected lowercase letters, digits and "
            f"'-', starting and ending with a letter or digit, at most {_NAME_LENGTH - 20} characters"
        )
    if args.pod_spec:
        given = [name for name in _CONTAINER_FIELDS if getattr(args, name)]
        if given:
            problems.append(
                f"`pod_spec` is given, so {', '.join(f'`{n}`' for n in given)} cannot be: put them in the "
                "pod spec's container"
            )
        containers = args.pod_spec.get("containers")
        if (
            not isinstance(containers, list)
            or not containers
            or not all(isinstance(c, dict) for c in containers)
        ):
            problems.append("`pod_spec.containers`: expected a list of at least one container")
        elif not all(isinstance(c.get("name"), str) and c.get("name") for c in containers):
            problems.append("`pod_spec.containers`: each container needs a `name`")
    elif not args.image:
        problems.append("`image`: required (or give a whole `pod_spec`)")
    bad_env = [name for name in args.env if not _ENV_NAME.match(name)]
    if bad_env:
        problems.append(
            f"`env`: {', '.join(repr(n) for n in sorted(bad_env))} are not environment variable names "
            "(letters, digits, '_', '-' and '.', not starting with a digit)"
        )
    if args.service_account_name and not _SUBDOMAIN.match(args.service_account_name):
        problems.append(f"`service_account_name`: {args.service_account_name!r} is not a ServiceAccount name")
    for field in ("labels", "annotations"):
        if any(not key or len(key) > 317 for key in getattr(args, field)):
            problems.append(f"`{field}`: keys must be 1 to 317 characters ([prefix/]name)")
    if not 0 <= args.log_lines <= MAX_LOG_LINES:
        problems.append(f"`log_lines`: expected 0 to {MAX_LOG_LINES}, got {args.log_lines}")
    if "startup_timeout" not in unconverted:
        try:
            duration_seconds(args.startup_timeout)
        except ValueError as exc:
            problems.append(f"`startup_timeout`: {exc}")
    return problems


def pod_name(prefix: str, key: str, attempt: int) -> str:
    """`<prefix>-<16 hex digits of the task key>`, `-<attempt>` from the second attempt on."""
    digest = key if re.fullmatch(r"[0-9a-f]{16,}", key) else hashlib.sha256(key.encode()).hexdigest()
    name = f"{prefix}-{digest[:16]}"
    return name if attempt == 1 else f"{name}-{attempt}"


def pod_manifest(
    args: EksPodArgs, *, name: str, labels: Mapping[str, str], annotations: Mapping[str, str]
) -> dict[str, Any]:
    """The Pod to create: `args.pod_spec`, or one container `base` from the container fields; the
    labels and annotations are the block's with `labels`/`annotations` (argoplug's) on top."""
    if args.pod_spec:
        spec = dict(args.pod_spec)
    else:
        container: dict[str, Any] = {"name": "base", "image": args.image}
        if args.command:
            container["command"] = list(args.command)
        if args.args:
            container["args"] = list(args.args)
        if args.env:
            container["env"] = [{"name": key, "value": value} for key, value in args.env.items()]
        if args.resources:
            container["resources"] = dict(args.resources)
        # The container's log is the fallback message of a failure (kubelet: FallbackToLogsOnError).
        container["terminationMessagePolicy"] = "FallbackToLogsOnError"
        spec = {"containers": [container]}
        if args.service_account_name:
            spec["serviceAccountName"] = args.service_account_name
    spec.setdefault("restartPolicy", "Never")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": args.namespace,
            "labels": {**args.labels, **labels},
            "annotations": {**args.annotations, **annotations},
        },
        "spec": spec,
    }
