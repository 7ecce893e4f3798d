"""The AWS Glue plugin (`glue-job`): validates a Glue job, or starts one job run per task and waits for it.

awf-aws templates with `service: aws_glue` are run by it too (`argoplug.plugins.sagemaker`'s
`awf-aws-plugin` key). The build hook `argoplug_iam_statements` (`permissions`) gives `argoplug build` the
IAM policy it needs.
"""

from __future__ import annotations

from argoplug.plugins.glue.handlers import (
    KEY,
    TASK_ARGUMENT,
    GlueJobArgs,
    glue_plugin,
    run_glue,
    use_tracker,
)
from argoplug.plugins.glue.permissions import argoplug_iam_statements

plugins = (glue_plugin,)

__all__ = [
    "KEY",
    "TASK_ARGUMENT",
    "GlueJobArgs",
    "argoplug_iam_statements",
    "glue_plugin",
    "plugins",
    "run_glue",
    "use_tracker",
]
