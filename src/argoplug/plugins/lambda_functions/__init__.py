"""The AWS Lambda plugin (`lambda-function`): validates a function, or invokes it (RequestResponse, waited
for; or Event, queued).

awf-aws templates with `service: aws_lambda` are run by it too (`argoplug.plugins.sagemaker`'s
`awf-aws-plugin` key). The build hook `argoplug_iam_statements` (`permissions`) gives `argoplug build` the
IAM policy it needs.
"""

from __future__ import annotations

from argoplug.plugins.lambda_functions.handlers import KEY, LambdaArgs, lambda_plugin, run_lambda
from argoplug.plugins.lambda_functions.permissions import argoplug_iam_statements

plugins = (lambda_plugin,)

__all__ = ["KEY", "LambdaArgs", "argoplug_iam_statements", "lambda_plugin", "plugins", "run_lambda"]
