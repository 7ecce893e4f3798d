"""The IAM statements of the Glue, Step Functions and Lambda plugins, from a bundle's settings.

Each plugin's build hook `argoplug_iam_statements` calls `scoped_statements` with its settings key for the
resources (`jobs`, `state_machines`, `functions`), the ARN of one resource, and its statements.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from argoplug.hookspecs import BuildContext

__all__ = ["SettingsError", "assume_role_statements", "scope", "scoped_statements", "strings"]


class SettingsError(ValueError):
    """The bundle's settings for a plugin package are not as documented; the message names the key."""


# (partition, region, account, name) → the resource's ARN; name may be `*`.
ArnOf = Callable[[str, str, str, str], str]


def scoped_statements(
    context: BuildContext,
    *,
    entry_point: str,
    resources_key: str,
    arn_of: ArnOf,
    statements: Sequence[tuple[str, Sequence[str], Callable[[str], str]]],
) -> list[dict[str, Any]]:
    """Return `statements` (Sid, actions, resource ARN → the ARN the actions apply to) scoped by settings.

    Settings (all optional; lists of strings): `resources_key` (names or ARNs of the resources the plugin
    may use; default every one), `regions` and `accounts` (12 digits) narrowing the ARNs of resources given
    by name (default `*`), `partition` (default `aws`), `assume_roles` (role ARNs the blocks' `role_arn`
    may name: `sts:AssumeRole` on them). Raises SettingsError naming `settings.<name in plugins>.<key>`.
    """
    settings = context.settings
    where = f"settings.{context.package or entry_point}"
    partition, regions, accounts = scope(settings, where, resources_key)
    arns: list[str] = []
    for name in strings(settings, resources_key, where) or ["*"]:
        if name.startswith("arn:"):
            arns.append(name)
            continue
        arns.extend(arn_of(partition, region, account, name) for region in regions for account in accounts)
    found = [
        {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": [resource(arn) for arn in arns]}
        for sid, actions, resource in statements
    ]
    return found + assume_role_statements(settings, where, statements[0][0])


def scope(settings: Mapping[str, Any], where: str, resources_key: str) -> tuple[str, list[str], list[str]]:
    """Check the settings' keys; return their partition (default `aws`), regions and accounts (`*`)."""
    known = {resources_key, "regions", "accounts", "partition", "assume_roles"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise SettingsError(
            f"{where}: unknown key(s) {', '.join(unknown)} (expected some of: {', '.join(sorted(known))})"
        )
    partition = settings.get("partition", "aws")
    if not isinstance(partition, str) or not partition.startswith("aws"):
        raise SettingsError(f"{where}.partition: expected e.g. 'aws', got {partition!r}")
    regions = strings(settings, "regions", where) or ["*"]
    accounts = strings(settings, "accounts", where) or ["*"]
    for account in accounts:
        if account != "*" and not (account.isdigit() and len(account) == 12):
            raise SettingsError(f"{where}.accounts: expected 12 digits, got {account!r}")
    return partition, regions, accounts


def assume_role_statements(settings: Mapping[str, Any], where: str, prefix: str) -> list[dict[str, Any]]:
    """The `sts:AssumeRole` statement on `settings.assume_roles`, Sid `<prefix>AssumeRoles`; none without."""
    roles = strings(settings, "assume_roles", where)
    if not roles:
        return []
    return [
        {"Sid": f"{prefix}AssumeRoles", "Effect": "Allow", "Action": ["sts:AssumeRole"], "Resource": roles}
    ]


def strings(settings: Mapping[str, Any], key: str, where: str) -> list[str]:
    """The setting `key` as a list of strings (one string is a list of it); raises SettingsError."""
    value = settings.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(item, str) and item for item in value):
        raise SettingsError(f"{where}.{key}: expected a list of strings, got {value!r}")
    return list(value)
