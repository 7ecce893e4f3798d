"""What the SageMaker Pipelines plugins need from AWS IAM: the build hook behind `iam-policy.json`.

`argoplug build` calls `argoplug_iam_statements` (re-exported by the package, so that pluggy finds it on the
module the entry point names) with the settings the bundle gives this package: those under the name it is
selected by in `plugins`, `sagemaker-pipelines` or a `module:attr` path such as
`argoplug.plugins.sagemaker:plugins`.
"""

from __future__ import annotations

from typing import Any

from argoplug.hookspecs import BuildContext, hookimpl
from argoplug.plugins.aws_permissions import SettingsError, assume_role_statements, scope, strings
from argoplug.plugins.sagemaker.args import PIPELINE_ARN

__all__ = ["ENTRY_POINT", "EXECUTION_ACTIONS", "PIPELINE_ACTIONS", "SettingsError", "argoplug_iam_statements"]

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


@hookimpl
def argoplug_iam_statements(context: BuildContext) -> list[dict[str, Any]]:
    """Return the IAM statements the SageMaker Pipelines plugins need, scoped by `context.settings`.

    Settings (all optional; each a list of strings): `pipelines` (names or pipeline ARNs: only these may
    be described, executed and stopped; default every pipeline), `regions` and `accounts` (12 digits)
    narrowing the ARNs of pipelines given by name (default `*`), `partition` (a string, default `aws`),
    and `assume_roles` (role ARNs the blocks' `role_arn` may name: `sts:AssumeRole` on them). Pipeline
    names are lower-cased in the ARNs, as SageMaker writes pipeline ARNs.

    Raises SettingsError (the build names this plugin) for a setting of the wrong shape, naming it as
    `settings.<the name in plugins>.<key>`.
    """
    settings = context.settings
    where = f"settings.{context.package or ENTRY_POINT}"
    partition, regions, accounts = scope(settings, where, "pipelines")
    pipelines = strings(settings, "pipelines", where)
    pipeline_arns: list[str] = []
    for pipeline in pipelines or ["*"]:
        match = PIPELINE_ARN.match(pipeline) if pipeline.startswith("arn:") else None
        if pipeline.startswith("arn:") and (match is None or match.group("execution")):
            raise SettingsError(f"{where}.pipelines: expected a pipeline name or ARN, got {pipeline!r}")
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
    return statements + assume_role_statements(settings, where, "SageMaker")
