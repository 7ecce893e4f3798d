"""What the `eks-pod` plugin needs from AWS IAM and from each remote EKS cluster: its build hooks.

`argoplug build` calls `argoplug_iam_statements` (for `iam-policy.json`) and `argoplug_remote_cluster_files`
(the Role, RoleBinding and access entry, or aws-auth mapping, to apply on each remote cluster) with the
settings the bundle gives this package, `settings.eks-pod`; the package re-exports both, so that pluggy
finds them on the module the entry point names. `clusters` parses those settings once for both. The
sidecar imports this module with the package, so `argoplug.build` and PyYAML are imported in a build only.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

from argoplug.hookspecs import BuildContext, hookimpl
from argoplug.plugins.aws_permissions import SettingsError

__all__ = [
    "ENTRY_POINT",
    "MAPPINGS",
    "POD_RULES",
    "Cluster",
    "SettingsError",
    "argoplug_iam_statements",
    "argoplug_remote_cluster_files",
    "clusters",
]

ENTRY_POINT = "eks-pod"
MAPPINGS = ("access-entry", "aws-auth")

# Exactly the Kubernetes calls of `handlers` in the pod's namespace (create, get, list and delete pods,
# get pods/log), and watch, which `argoplug eks check` (check.CHECKED_ACCESS) asks about too.
POD_RULES: tuple[Mapping[str, Any], ...] = (
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get", "list", "watch", "delete"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
)

_SETTINGS = ("clusters", "partition")
_CLUSTER_KEYS = ("name", "region", "account", "role_arn", "namespaces", "username", "mapping")
# EKS CreateCluster's name pattern, and AWS region names (as `args` checks the blocks' fields).
_CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# EKS refuses an access entry's username with these prefixes (EKS user guide, "Set a custom username").
_RESERVED_PREFIXES = ("system:", "eks:", "aws:", "amazon:", "iam:")
_RBAC = "rbac.authorization.k8s.io"


@dataclasses.dataclass(frozen=True, slots=True)
class Cluster:
    """One remote EKS cluster of the settings, every default filled in.

    `arn` is the cluster's ARN (`*` for an account not given); `principal_arn` the IAM role EKS sees (the
    cluster's `role_arn`, else the bundle's IRSA role); `username` the Kubernetes user the cluster maps it
    to and the RoleBinding names.
    """

    arn: str
    name: str
    region: str
    account: str
    role_arn: str
    namespaces: tuple[str, ...]
    principal_arn: str
    username: str
    mapping: str


def clusters(context: BuildContext) -> tuple[str, list[Cluster]]:
    """Return the partition (default `aws`) and the clusters of `context.settings`, checked.

    Raises SettingsError naming `settings.<name in plugins>.<key>` (`...clusters[<i>].<key>` for a
    cluster's) and what was expected, also for a cluster whose principal is unknown: no `role_arn` and no
    `serviceAccount.iamRoleArn`.
    """
    settings = context.settings
    where = f"settings.{context.package or ENTRY_POINT}"
    unknown = sorted(set(settings) - set(_SETTINGS))
    if unknown:
        raise SettingsError(
            f"{where}: unknown key(s) {', '.join(unknown)} (expected some of: {', '.join(_SETTINGS)})"
        )
    partition = settings.get("partition", "aws")
    if not isinstance(partition, str) or not re.fullmatch(r"aws(-[a-z]+)*", partition):
        raise SettingsError(f"{where}.partition: expected e.g. 'aws' or 'aws-cn', got {partition!r}")
    raw = settings.get("clusters") or []
    if not isinstance(raw, list):
        raise SettingsError(
            f"{where}.clusters: expected a list of clusters ({{name, region, ...}}), got {raw!r}"
        )
    found: list[Cluster] = []
    for index, item in enumerate(raw):
        cluster = _cluster(item, f"{where}.clusters[{index}]", partition, context.iam_role_arn)
        for other_index, other in enumerate(found):
            if other.name.casefold() == cluster.name.casefold():  # one folder on macOS and Windows
                raise SettingsError(
                    f"{where}.clusters[{index}].name: {cluster.name!r} is also clusters[{other_index}]'s: "
                    f"its files are remote/eks-{cluster.name}/..., so each cluster name may appear once"
                )
        found.append(cluster)
    return partition, found


@hookimpl
def argoplug_iam_statements(context: BuildContext) -> list[dict[str, Any]]:
    """Return the IAM statements the `eks-pod` plugin needs, scoped by `context.settings`.

    Settings (`settings.eks-pod`, all optional): `partition` (default `aws`) and `clusters`, a list of
    `{name, region, account, role_arn, namespaces, username, mapping}`: `name` and `region` required;
    `account` 12 digits (a string; default `*`); `role_arn` the IAM role the plugin's blocks name and
    assume for that cluster; `namespaces` the cluster's namespaces the pods run in (default
    [`default`]); `username` the Kubernetes user the cluster maps the role to (default the name of the
    `role_arn` role, else of the bundle's `serviceAccount.iamRoleArn` role, one of which is required);
    `mapping` `access-entry` (default) or `aws-auth`.

    Statements: `eks:DescribeCluster` on `arn:<partition>:eks:<region>:<account>:cluster/<name>` of each
    cluster (Sid `EksDescribeCluster`), and `sts:AssumeRole` on each `role_arn` (Sid `EksAssumeRole`).
    With no clusters, DescribeCluster on every cluster (`arn:<partition>:eks:*:*:cluster/*`) and no
    AssumeRole: a block naming a `role_arn` then fails until the settings list its cluster. The EKS
    token (a presigned STS GetCallerIdentity) needs no permission. With `role_arn`, DescribeCluster is
    called as that role, so its own policy needs the DescribeCluster statement too.

    Raises SettingsError as `clusters` does.
    """
    partition, found = clusters(context)
    arns = [cluster.arn for cluster in found] or [f"arn:{partition}:eks:*:*:cluster/*"]
    statements: list[dict[str, Any]] = [
        {
            "Sid": "EksDescribeCluster",
            "Effect": "Allow",
            "Action": ["eks:DescribeCluster"],
            "Resource": list(dict.fromkeys(arns)),
        }
    ]
    roles = list(dict.fromkeys(c.role_arn for c in found if c.role_arn))
    if roles:
        statements.append(
            {"Sid": "EksAssumeRole", "Effect": "Allow", "Action": ["sts:AssumeRole"], "Resource": roles}
        )
    return statements


@hookimpl
def argoplug_remote_cluster_files(context: BuildContext) -> list[dict[str, Any]]:
    """Return the files to apply on each cluster of `context.settings` (see `argoplug_iam_statements`).

    For cluster `<name>`: `remote/eks-<name>/rbac.yaml`, in each of its namespaces a Role
    `<bundle name>-eks-pod` granting exactly `POD_RULES` and a RoleBinding of it to the cluster's user;
    then either `remote/eks-<name>/access-entry.json` (mapping `access-entry`: the input of `aws eks
    create-access-entry --cli-input-json`, a STANDARD entry mapping the principal to that user), or
    `remote/eks-<name>/aws-auth-mapRoles.yaml` (mapping `aws-auth`: the entry to merge into `mapRoles` of
    ConfigMap kube-system/aws-auth). None without clusters. Raises SettingsError as `clusters` does.
    """
    _, found = clusters(context)
    files: list[dict[str, Any]] = []
    for cluster in found:
        folder = f"remote/eks-{cluster.name}"
        role = f"{context.name}-eks-pod"
        where = f"EKS cluster `{cluster.name}` ({cluster.region})"
        namespaces = ", ".join(f"`{namespace}`" for namespace in cluster.namespaces)
        files.append(
            {
                "path": f"{folder}/rbac.yaml",
                "text": _rbac_text(context, cluster, role),
                "about": (
                    f"Role and RoleBinding `{role}` in namespace(s) {namespaces} of {where}: create, get, "
                    f"list, watch and delete pods, get pods/log, for Kubernetes user `{cluster.username}`: "
                    f"`kubectl --context <remote> apply -f {folder}/rbac.yaml`"
                ),
            }
        )
        needs = _principal_needs(cluster)
        if cluster.mapping == "access-entry":
            files.append(
                {
                    "path": f"{folder}/access-entry.json",
                    "text": _access_entry_text(cluster),
                    "about": (
                        f"the access entry of {where} mapping `{cluster.principal_arn}` to user "
                        f"`{cluster.username}` (authentication mode API or API_AND_CONFIG_MAP): `aws eks "
                        f"create-access-entry --region {cluster.region} --cli-input-json "
                        f"file://{folder}/access-entry.json`; {needs}"
                    ),
                }
            )
        else:
            files.append(
                {
                    "path": f"{folder}/aws-auth-mapRoles.yaml",
                    "text": _aws_auth_text(cluster),
                    "about": (
                        f"the `mapRoles` entry of {where} mapping `{_without_path(cluster.principal_arn)}` "
                        f"to user `{cluster.username}`: merge it into `data.mapRoles` of ConfigMap "
                        f"`kube-system/aws-auth` (`kubectl --context <remote> -n kube-system edit configmap "
                        f"aws-auth`); {needs}"
                    ),
                }
            )
    return files


def _cluster(item: Any, where: str, partition: str, iam_role_arn: str) -> Cluster:
    from argoplug.build.bundle import ROLE_ARN

    if not isinstance(item, Mapping):
        raise SettingsError(f"{where}: expected a mapping {{name, region, ...}}, got {item!r}")
    unknown = sorted(set(item) - set(_CLUSTER_KEYS))
    if unknown:
        raise SettingsError(
            f"{where}.{unknown[0]}: unknown key (expected some of: {', '.join(_CLUSTER_KEYS)})"
        )
    name = item.get("name")
    if not isinstance(name, str) or not _CLUSTER_NAME.match(name):
        raise SettingsError(
            f"{where}.name: {'required' if 'name' not in item else f'got {name!r}'}: expected an EKS cluster "
            "name (letters, digits, '-' and '_', starting with a letter or digit, at most 100 characters)"
        )
    region = item.get("region")
    if not isinstance(region, str) or not _REGION.match(region):
        raise SettingsError(
            f"{where}.region: {'required' if 'region' not in item else f'got {region!r}'}: expected the "
            "cluster's AWS region, like us-east-1"
        )
    account = item.get("account", "*")
    if not isinstance(account, str) or not (account == "*" or re.fullmatch(r"\d{12}", account)):
        quote = " (quote it: YAML reads bare digits as a number)" if isinstance(account, int) else ""
        raise SettingsError(f"{where}.account: expected 12 digits as a string, got {account!r}{quote}")
    role_arn = item.get("role_arn", "")
    if not isinstance(role_arn, str) or (role_arn and not ROLE_ARN.match(role_arn)):
        raise SettingsError(
            f"{where}.role_arn: expected an IAM role ARN like arn:aws:iam::123456789012:role/NAME, "
            f"got {role_arn!r}"
        )
    namespaces = item.get("namespaces", ["default"])
    if isinstance(namespaces, str):
        namespaces = [namespaces]
    if (
        not isinstance(namespaces, list)
        or not namespaces
        or not all(isinstance(n, str) and len(n) <= 63 and _NAMESPACE.match(n) for n in namespaces)
    ):
        raise SettingsError(
            f"{where}.namespaces: expected a non-empty list of namespace names (lowercase letters, digits "
            f"and '-', at most 63 characters), got {namespaces!r}"
        )
    principal = role_arn or iam_role_arn
    if not principal:
        raise SettingsError(
            f"{where}.role_arn: the cluster must map an IAM role to a Kubernetes user, and there is none: "
            "set `role_arn` (the role the blocks assume) or the bundle's `serviceAccount.iamRoleArn`"
        )
    username = item.get("username", _role_name(principal))
    problem = _username_problem(username)
    if problem:
        raise SettingsError(f"{where}.username: {problem}, got {username!r}")
    mapping = item.get("mapping", "access-entry")
    if mapping not in MAPPINGS:
        raise SettingsError(f"{where}.mapping: expected one of {', '.join(MAPPINGS)}, got {mapping!r}")
    return Cluster(
        arn=f"arn:{partition}:eks:{region}:{account}:cluster/{name}",
        name=name,
        region=region,
        account=account,
        role_arn=role_arn,
        namespaces=tuple(dict.fromkeys(namespaces)),
        principal_arn=principal,
        username=username,
        mapping=mapping,
    )


def _role_name(role_arn: str) -> str:
    return role_arn.rsplit("/", 1)[-1]


def _without_path(role_arn: str) -> str:
    # aws-iam-authenticator matches a mapRoles `rolearn` only without the role's path (EKS user guide,
    # "Troubleshooting IAM"); an access entry takes the ARN with it.
    head, _, _ = role_arn.partition(":role/")
    return f"{head}:role/{_role_name(role_arn)}"


def _username_problem(username: Any) -> str:
    if not isinstance(username, str) or not username.strip():
        return "expected a Kubernetes user name, a non-empty string"
    if username != username.strip() or any(ord(c) < 32 for c in username):
        return "expected no leading or trailing spaces and no control characters"
    if username.startswith(_RESERVED_PREFIXES):
        return f"EKS refuses a username starting with {', '.join(_RESERVED_PREFIXES)}"
    if "{{" in username:
        return (
            "expected a fixed name: a templated one ({{SessionName}}...) changes with each session, and the "
            "RoleBinding names one user"
        )
    return ""


def _principal_needs(cluster: Cluster) -> str:
    if cluster.role_arn:
        return (
            f"role `{cluster.role_arn}` needs `eks:DescribeCluster` on `{cluster.arn}` in its own policy and "
            "a trust policy letting the sidecar's role assume it"
        )
    return "the sidecar's role calls DescribeCluster itself (`iam-policy.json`)"


def _labels(context: BuildContext) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": f"{context.name}-executor-plugin",
        "app.kubernetes.io/managed-by": "argoplug",
    }


def _rbac_text(context: BuildContext, cluster: Cluster, role: str) -> str:
    from argoplug.build import argo

    documents: list[str] = []
    for namespace in cluster.namespaces:
        metadata = {"name": role, "namespace": namespace, "labels": _labels(context)}
        documents.append(
            argo.to_go_yaml(
                {
                    "apiVersion": f"{_RBAC}/v1",
                    "kind": "Role",
                    "metadata": metadata,
                    "rules": [{key: list(value) for key, value in rule.items()} for rule in POD_RULES],
                }
            )
        )
        documents.append(
            argo.to_go_yaml(
                {
                    "apiVersion": f"{_RBAC}/v1",
                    "kind": "RoleBinding",
                    "metadata": metadata,
                    "roleRef": {"apiGroup": _RBAC, "kind": "Role", "name": role},
                    "subjects": [{"apiGroup": _RBAC, "kind": "User", "name": cluster.username}],
                }
            )
        )
    head = (
        f"# For EKS cluster {cluster.name} ({cluster.region}), not the cluster Argo runs in: the pods of\n"
        f"# executor plugin {context.name}'s eks-pod steps, run as user {cluster.username}.\n"
        f"#   kubectl --context <remote> apply -f remote/eks-{cluster.name}/rbac.yaml\n"
    )
    return head + "---\n".join(documents)


def _access_entry_text(cluster: Cluster) -> str:
    entry = {
        "clusterName": cluster.name,
        "principalArn": cluster.principal_arn,
        "username": cluster.username,
        "type": "STANDARD",
    }
    return json.dumps(entry, indent=2) + "\n"


def _aws_auth_text(cluster: Cluster) -> str:
    import yaml

    entry = [{"rolearn": _without_path(cluster.principal_arn), "username": cluster.username, "groups": []}]
    head = (
        f"# For EKS cluster {cluster.name} ({cluster.region}): merge this entry into `data.mapRoles` of\n"
        "# ConfigMap kube-system/aws-auth (a YAML list in a string), keeping the entries there:\n"
        "#   kubectl --context <remote> -n kube-system edit configmap aws-auth\n"
        f"# or: eksctl create iamidentitymapping --cluster {cluster.name} --region {cluster.region} \\\n"
        f"#   --arn {_without_path(cluster.principal_arn)} --username {cluster.username}\n"
        "# The role's ARN is written without its path: aws-iam-authenticator matches none with one.\n"
    )
    return head + yaml.safe_dump(entry, sort_keys=False, default_flow_style=False)
