"""The AWS Step Functions plugin (`step-functions`): validates a state machine, or starts one execution per
task, named from the task, and waits for it.

awf-aws templates with `service: aws_step_functions` are run by it too (`argoplug.plugins.sagemaker`'s
`awf-aws-plugin` key). The build hook `argoplug_iam_statements` (`permissions`) gives `argoplug build` the
IAM policy it needs.
"""

from __future__ import annotations

from argoplug.plugins.step_functions.handlers import (
    KEY,
    StepFunctionsArgs,
    execution_name,
    run_step_functions,
    step_functions_plugin,
    use_tracker,
)
from argoplug.plugins.step_functions.permissions import argoplug_iam_statements

plugins = (step_functions_plugin,)

__all__ = [
    "KEY",
    "StepFunctionsArgs",
    "argoplug_iam_statements",
    "execution_name",
    "plugins",
    "run_step_functions",
    "step_functions_plugin",
    "use_tracker",
]
