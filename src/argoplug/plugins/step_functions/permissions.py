"""What the `step-functions` plugin needs from AWS IAM: the build hook behind `iam-policy.json`."""

from __future__ import annotations

from typing import Any

from argoplug.hookspecs import BuildContext, hookimpl
from argoplug.plugins.aws_permissions import scoped_statements

__all__ = ["ENTRY_POINT", "EXECUTION_ACTIONS", "STATE_MACHINE_ACTIONS", "argoplug_iam_statements"]

ENTRY_POINT = "step-functions"
# Exactly the Step Functions calls of `handlers`, by the resource IAM checks them on (Service
# Authorization Reference, "Actions defined by AWS Step Functions").
STATE_MACHINE_ACTIONS = ("states:DescribeStateMachine", "states:StartExecution")
EXECUTION_ACTIONS = ("states:DescribeExecution", "states:StopExecution")


@hookimpl
def argoplug_iam_statements(context: BuildContext) -> list[dict[str, Any]]:
    """Return the IAM statements of the Step Functions plugin, on `settings.state_machines` (default all)
    and their executions. Settings as `aws_permissions.scoped_statements` reads them."""
    return scoped_statements(
        context,
        entry_point=ENTRY_POINT,
        resources_key="state_machines",
        arn_of=lambda partition, region, account, name: (
            f"arn:{partition}:states:{region}:{account}:stateMachine:{name}"
        ),
        statements=[
            ("StepFunctionsStateMachines", STATE_MACHINE_ACTIONS, lambda arn: arn),
            (
                "StepFunctionsExecutions",
                EXECUTION_ACTIONS,
                lambda arn: arn.replace(":stateMachine:", ":execution:") + ":*",
            ),
        ],
    )
