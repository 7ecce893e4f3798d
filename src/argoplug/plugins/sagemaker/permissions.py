"""What the SageMaker Pipelines plugins need from AWS IAM: the build hook behind `iam-policy.json`.

`argoplug build` calls `argoplug_iam_statements` (re-exported by the package, so that pluggy finds it on the
module the entry point names) with the bundle's `settings` for `sagemaker-pipelines`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from argoplug.hookspecs import BuildContext, hookimpl
from argoplug.plugins.sagemaker.args import PIPELINE_ARN

__all__ = ["ENTRY_POINT", "EXECUTION_ACTIONS", "PIPELINE_ACTIONS", "argoplug_iam_statements"]

ENTRY_POINT = "sagemaker-pipelines"

# Exactly the SageMaker API calls of `handlers` and `executions`, by the resource type IAM checks them on
# (Service Authorization Reference, "Actions defined by Amazon SageMaker"). STS GetCallerIdentity, used
# to check `account_id`, needs no permission.
PIPELINE_ACTIONS = (
    "sagemaker:DescribePipeline",
    "sagemaker:ListPipelineExecutions",
    "sagemaker:StartPipelineExecution",
)
EXECUTION_ACTIONS = (
    "sagemaker:DescribePipelineExecution",
    "sagemaker:ListPipelineExecutionSteps",
    "sagemaker:StopPipelineExecution",
)


class SettingsError(ValueError):
    """The bundle's `settings.sagemaker-pipelines` are not as documented; the message names the key."""


@hookimpl
def argoplug_iam_statements(context: BuildContext) -> list[dict[str, Any]]:
    """Return the IAM statements the SageMaker Pipelines plugins need, scoped by the bundle's settings.

    Settings (all optional; each a list of strings): `pipelines` (names or pipeline ARNs: only these may
    be described, executed and stopped; default every pipeline), `regions` and `accounts` (12 digits)
    narrowing the ARNs of pipelines given by name (default `*`), `partition` (a string, default `aws`),
    and `assume_roles` (role ARNs the blocks' `role_arn` may name: `sts:AssumeRole` on them). Pipeline
    names are lower-cased in the ARNs, as SageMaker writes pipeline ARNs.

    Raises SettingsError (the build names this plugin) for a setting of the wrong shape.
    """
    settings = context.settings_for(ENTRY_POINT)
    known = {"pipelines", "regions", "accounts", "partition", "assume_roles"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise SettingsError(
            f"settings.{ENTRY_POINT}: unknown key(s) {', '.join(unknown)} "
            f"(expected some of: {', '.join(sorted(known))})"
        )
    partition = settings.get("partition", "aws")
    if not isinstance(partition, str) or not partition.startswith("aws"):
        raise SettingsError(f"settings.{ENTRY_POINT}.partition: expected e.g. 'aws', got {partition!r}")
    pipelines = _strings(settings, "pipelines")
    regions = _strings(settings, "regions") or ["*"]
    accounts = _strings(settings, "accounts") or ["*"]
    for account in accounts:
        if account != "*" and not (account.isdigit() and len(account) == 12):
            raise SettingsError(f"settings.{ENTRY_POINT}.accounts: expected 12 digits, got {account!r}")
    pipeline_arns: list[str] = []
    for pipeline in pipelines or ["*"]:
        match = PIPELINE_ARN.match(pipeline) if pipeline.startswith("arn:") else None
        if pipeline.startswith("arn:") and (match is None or match.group("execution")):
            raise SettingsError(
                f"settings.{ENTRY_POINT}.pipelines: expected a pipeline name or ARN, got {pipeline!r}"
            )
        if match is not None:
            pipeline_arns.append(pipeline.rsplit("/", 1)[0] + "/" + match.group("pipeline").lower())
            continue
        pipeline_arns.extend(
            f"arn:{partition}:sagemaker:{region}:{account}:pipeline/{pipeline.lower()}"
            for region in regions
            for account in accounts
        )
    statements: list[dict[str, Any]] = [
        {
            "Sid": "SageMakerPipelines",
            "Effect": "Allow",
            "Action": list(PIPELINE_ACTIONS),
            "Resource": pipeline_arns,
        },
        {
            "Sid": "SageMakerPipelineExecutions",
            "Effect": "Allow",
            "Action": list(EXECUTION_ACTIONS),
            "Resource": [f"{arn}/execution/*" for arn in pipeline_arns],
        },
    ]
    roles = _strings(settings, "assume_roles")
    if roles:
        assume = {"Sid": "SageMakerAssumeRoles", "Effect": "Allow", "Action": ["sts:AssumeRole"]}
        statements.append({**assume, "Resource": roles})
    return statements


def _strings(settings: Mapping[str, Any], key: str) -> list[str]:
    value = settings.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(item, str) and item for item in value):
        raise SettingsError(f"settings.{ENTRY_POINT}.{key}: expected a list of strings, got {value!r}")
    return list(value)
