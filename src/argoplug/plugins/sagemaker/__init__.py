"""The SageMaker Pipelines plugin (`sagemaker-pipelines`) and its drop-in twin for `awf-aws-plugin` templates.

Validates a pipeline, executes it (find-or-start, then poll, through `argoplug.jobs.JobTracker`) or stops
an execution. Each StartPipelineExecution carries `client_request_token(task.key, attempt)`, the same on
every call of the task, also after a restart: AWS documents ClientRequestToken as an idempotency token
("An idempotent operation completes no more than once",
https://docs.aws.amazon.com/sagemaker/latest/dg/API_StartPipelineExecution.html), so a start racing an
orphaned one from before a restart starts no second execution on AWS; moto ignores the token. An error
polling an execution is answered with the outputs already reported (`JobTracker`). The entry point
`sagemaker-pipelines` names this package; `plugins` holds both plugins. boto3 is imported on the first
AWS call (`argoplug.aws`), never at import. The build hook `argoplug_iam_statements` (`permissions`)
gives `argoplug build` the IAM policy the plugins need.
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
