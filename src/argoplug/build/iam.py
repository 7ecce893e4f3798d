"""The AWS IAM documents of a bundle: the permissions policy from the build hooks, and the IRSA trust policy.

`argoplug.build.writer` calls `permissions_policy` with the `argoplug_iam_statements` contributions and
`trust_policy` when the bundle names an IAM role; both return JSON-ready dicts. Policy grammar: AWS IAM
User Guide, "IAM JSON policy element reference".
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from argoplug.build.bundle import ROLE_ARN, Bundle, BundleError

__all__ = [
    "ACCOUNT_PLACEHOLDER",
    "OIDC_PLACEHOLDER",
    "POLICY_VERSION",
    "permissions_policy",
    "policy_text",
    "trust_policy",
]

POLICY_VERSION = "2012-10-17"
OIDC_PLACEHOLDER = "<OIDC_PROVIDER>"
ACCOUNT_PLACEHOLDER = "<ACCOUNT_ID>"

_STATEMENT_KEYS = ("Sid", "Effect", "Action", "Resource", "Condition")
# `service:Action`, no wildcard: a plugin names the calls it makes.
_ACTION = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9]+$")
_SID = re.compile(r"^[A-Za-z0-9]+$")  # IAM allows only ASCII letters and digits in a Sid


def permissions_policy(contributed: Sequence[tuple[str, Any]]) -> dict[str, Any] | None:
    """Return the permissions policy made of the hooks' statements, or None when there are none.

    `contributed` holds `(package, statement)` pairs (`hooks.contributions`). Statements with the same
    Effect, Resources and Condition are merged into one (actions united, sorted); each keeps the first
    Sid given, else gets one from its package's name; Sids are unique. Raises BundleError naming the
    package for a statement that is not `{Effect, Action, Resource[, Condition, Sid]}`, or an action
    with a wildcard.
    """
    merged: dict[str, dict[str, Any]] = {}
    origins: dict[str, str] = {}
    for package, statement in contributed:
        effect, actions, resources, condition, sid = _checked_statement(package, statement)
        key = json.dumps([effect, resources, condition], sort_keys=True)
        if key not in merged:
            merged[key] = {"Sid": sid, "Effect": effect, "Action": [], "Resource": resources}
            if condition:
                merged[key]["Condition"] = condition
            origins[key] = package
        target = merged[key]
        target["Action"] = sorted(set(target["Action"]) | set(actions))
        if not target["Sid"]:
            target["Sid"] = sid
    if not merged:
        return None
    used: set[str] = set()
    statements: list[dict[str, Any]] = []
    for key, statement in merged.items():
        base = statement["Sid"] or _sid_from(origins[key])
        sid, number = base, 1
        while sid in used:
            number += 1
            sid = f"{base}{number}"
        used.add(sid)
        statements.append({**statement, "Sid": sid})
    return {"Version": POLICY_VERSION, "Statement": statements}


def trust_policy(bundle: Bundle) -> dict[str, Any]:
    """Return the trust policy letting the workflows' service account assume the bundle's role by IRSA.

    Principal: the cluster's OIDC provider, `arn:<partition>:iam::<account>:oidc-provider/<provider>`
    (account and partition from `serviceAccount.iamRoleArn`; provider from `serviceAccount.oidcProvider`,
    else the placeholder `<OIDC_PROVIDER>`); action `sts:AssumeRoleWithWebIdentity`; conditions: the token's
    `sub` is `system:serviceaccount:<namespace>:<account>` for each namespace, its `aud` is
    `sts.amazonaws.com` (EKS user guide, "Assign IAM roles to Kubernetes service accounts").
    """
    match = ROLE_ARN.match(bundle.service_account.iam_role_arn)
    partition = match.group("partition") if match else "aws"
    account = match.group("account") if match else ACCOUNT_PLACEHOLDER
    provider = bundle.service_account.oidc_provider or OIDC_PLACEHOLDER
    subjects = [
        f"system:serviceaccount:{namespace}:{bundle.agent_service_account}" for namespace in bundle.namespaces
    ]
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "ArgoplugIrsa",
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:{partition}:iam::{account}:oidc-provider/{provider}"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{provider}:sub": subjects[0] if len(subjects) == 1 else subjects,
                        f"{provider}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }


def policy_text(policy: Mapping[str, Any]) -> str:
    """Return `policy` as the JSON text written to a file (2-space indent, trailing newline)."""
    return json.dumps(policy, indent=2) + "\n"


def _checked_statement(package: str, statement: Any) -> tuple[str, list[str], list[str], dict[str, Any], str]:
    where = f"plugin {package!r}: hook argoplug_iam_statements"
    if not isinstance(statement, Mapping):
        raise BundleError(
            f"{where}: expected a statement mapping (Effect, Action, Resource), got {statement!r}"
        )
    unknown = sorted(set(statement) - set(_STATEMENT_KEYS))
    if unknown:
        raise BundleError(
            f"{where}: statement {statement!r}: unsupported key(s) {', '.join(unknown)} "
            f"(expected some of: {', '.join(_STATEMENT_KEYS)})"
        )
    effect = statement.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise BundleError(f"{where}: statement {statement!r}: Effect must be 'Allow' or 'Deny'")
    actions = _strings(statement.get("Action"), f"{where}: statement {statement!r}: Action")
    for action in actions:
        if not _ACTION.match(action):
            raise BundleError(
                f"{where}: action {action!r}: expected 'service:Action' naming one API call, without "
                "wildcards (the policy grants exactly what the plugin calls)"
            )
    resources = sorted(
        set(_strings(statement.get("Resource"), f"{where}: statement {statement!r}: Resource"))
    )
    condition = statement.get("Condition") or {}
    if not isinstance(condition, Mapping):
        raise BundleError(f"{where}: statement {statement!r}: Condition must be a mapping")
    sid = statement.get("Sid") or ""
    if not isinstance(sid, str) or (sid and not _SID.match(sid)):
        raise BundleError(f"{where}: Sid {sid!r}: expected ASCII letters and digits only")
    return effect, actions, resources, dict(condition), sid


def _strings(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise BundleError(f"{where} must be a string or a non-empty list of strings, got {value!r}")
    return list(value)


def _sid_from(package: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", package)
    return "".join(word[:1].upper() + word[1:] for word in words if word) or "Plugin"
