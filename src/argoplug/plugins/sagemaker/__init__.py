"""The SageMaker Pipelines plugin (`sagemaker-pipelines`) and its drop-in twin for `awf-aws-plugin` templates.

Validates a pipeline, executes it (find-or-start, then poll, through `argoplug.jobs.JobTracker`) or stops
an execution. The entry point `sagemaker-pipelines` names this package; `plugins` holds both plugins.
boto3 is imported on the first AWS call (`argoplug.aws`), never at import. The build hook
`argoplug_iam_statements` (`permissions`) gives `argoplug build` the IAM policy the plugins need.
"""

from __future__ import annotations

from argoplug.plugins.sagemaker.args import AWF_AWS_SERVICES, DEFAULT_POLL, AwfAwsArgs, SageMakerArgs
from argoplug.plugins.sagemaker.executions import client_request_token, execution_display_name
from argoplug.plugins.sagemaker.handlers import (
    AWF_AWS_KEY,
    KEY,
    awf_aws_plugin,
    plugins,
    sagemaker_plugin,
    use_tracker,
)
from argoplug.plugins.sagemaker.permissions import argoplug_iam_statements

__all__ = [
    "AWF_AWS_KEY",
    "AWF_AWS_SERVICES",
    "DEFAULT_POLL",
    "KEY",
    "AwfAwsArgs",
    "SageMakerArgs",
    "argoplug_iam_statements",
    "awf_aws_plugin",
    "client_request_token",
    "execution_display_name",
    "plugins",
    "sagemaker_plugin",
    "use_tracker",
]
