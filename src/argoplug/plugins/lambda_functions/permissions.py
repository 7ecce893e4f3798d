"""What the `lambda-function` plugin needs from AWS IAM: the build hook behind `iam-policy.json`."""

from __future__ import annotations

from typing import Any

from argoplug.hookspecs import BuildContext, hookimpl
from argoplug.plugins.aws_permissions import scoped_statements

__all__ = ["ENTRY_POINT", "FUNCTION_ACTIONS", "argoplug_iam_statements"]

ENTRY_POINT = "lambda-function"
# Exactly the Lambda calls of `handlers` (Service Authorization Reference, "Actions defined by AWS Lambda").
FUNCTION_ACTIONS = ("lambda:GetFunction", "lambda:InvokeFunction")


@hookimpl
def argoplug_iam_statements(context: BuildContext) -> list[dict[str, Any]]:
    """Return the IAM statements of the Lambda plugin, on `settings.functions` (default every function)
    and their versions and aliases. Settings as `aws_permissions.scoped_statements` reads them."""
    return scoped_statements(
        context,
        entry_point=ENTRY_POINT,
        resources_key="functions",
        arn_of=lambda partition, region, account, name: (
            f"arn:{partition}:lambda:{region}:{account}:function:{name}"
        ),
        statements=[
            ("LambdaFunctions", FUNCTION_ACTIONS, lambda arn: arn),
            ("LambdaFunctionVersions", FUNCTION_ACTIONS, lambda arn: f"{arn}:*"),
        ],
    )
