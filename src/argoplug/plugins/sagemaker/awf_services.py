"""The awf-aws services besides SageMaker Pipelines: an `awf-aws-plugin` block with `service: aws_glue`,
`aws_step_functions` or `aws_lambda`, run as the native plugin's arguments (`glue-job`, `step-functions`,
`lambda-function`).

The published plugin (greenpau/argo-workflows-aws-plugin, request.go and aws_*.go) names the resource with
`job_name`, `step_function_name` or `lambda_function_name`, reads `region_name` and `account_id`, and sends
`parameters` only to Lambda, as its payload, always as an Event invocation. Here `parameters` are also the
Glue run's Arguments and the state machine's input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from argoplug.plugin import Result, Task
from argoplug.plugins.glue.handlers import EMPTY_RUN, GlueJobArgs, run_glue
from argoplug.plugins.glue.handlers import EMPTY_VALIDATE as GLUE_VALIDATE
from argoplug.plugins.glue.handlers import argument_problems as glue_problems
from argoplug.plugins.lambda_functions.handlers import EMPTY_INVOCATION, LambdaArgs, run_lambda
from argoplug.plugins.lambda_functions.handlers import EMPTY_VALIDATE as LAMBDA_VALIDATE
from argoplug.plugins.lambda_functions.handlers import argument_problems as lambda_problems
from argoplug.plugins.sagemaker.args import AwfAwsArgs, awf_problems, other_service
from argoplug.plugins.step_functions.handlers import EMPTY_EXECUTION, StepFunctionsArgs, run_step_functions
from argoplug.plugins.step_functions.handlers import EMPTY_VALIDATE as STEP_FUNCTIONS_VALIDATE
from argoplug.plugins.step_functions.handlers import argument_problems as step_functions_problems

__all__ = ["SERVICE_FIELDS", "awf_block_problems", "run_service", "service_outputs", "service_problems"]

# The awf-aws field that names each service's resource.
SERVICE_FIELDS = {
    "aws_glue": "job_name",
    "aws_step_functions": "step_function_name",
    "aws_lambda": "lambda_function_name",
}
# Native field names (in messages) → the awf-aws field they come from.
_AWF_NAMES = {
    "`state_machine`": "`step_function_name`",
    "`function`": "`lambda_function_name`",
    "`input`": "`parameters`",
    "`payload`": "`parameters`",
    "`arguments`": "`parameters`",
}
# Every output of each service's execute and validate actions, empty.
_EMPTY: Mapping[str, tuple[Mapping[str, str], Mapping[str, str]]] = {
    "aws_glue": (EMPTY_RUN, GLUE_VALIDATE),
    "aws_step_functions": (EMPTY_EXECUTION, STEP_FUNCTIONS_VALIDATE),
    "aws_lambda": (EMPTY_INVOCATION, LAMBDA_VALIDATE),
}


def _glue(args: AwfAwsArgs) -> GlueJobArgs:
    return GlueJobArgs(
        action=args.action,
        job_name=args.job_name,
        arguments=args.parameters,
        region=args.region_name,
        account_id=args.account_id,
        cancel_on_stop=args.cancel_on_stop,
    )


def _step_functions(args: AwfAwsArgs) -> StepFunctionsArgs:
    return StepFunctionsArgs(
        action=args.action,
        state_machine=args.step_function_name,
        input=args.parameters,
        region=args.region_name,
        account_id=args.account_id,
        cancel_on_stop=args.cancel_on_stop,
    )


def _lambda(args: AwfAwsArgs) -> LambdaArgs:
    return LambdaArgs(
        action=args.action,
        function=args.lambda_function_name,
        payload=args.parameters,
        invocation_type="Event",
        region=args.region_name,
        account_id=args.account_id,
    )


_SERVICES: Mapping[
    str, tuple[Callable[[Any], Any], Callable[..., list[str]], Callable[[Task, Any], Result]]
] = {
    "aws_glue": (_glue, glue_problems, run_glue),
    "aws_step_functions": (_step_functions, step_functions_problems, run_step_functions),
    "aws_lambda": (_lambda, lambda_problems, run_lambda),
}


def service_problems(service: str, args: AwfAwsArgs, unconverted: frozenset[str]) -> list[str]:
    """What is wrong with an awf-aws block of `service` (a key of SERVICE_FIELDS), in awf-aws's names."""
    field = SERVICE_FIELDS[service]
    if not getattr(args, field) and field not in unconverted:
        return [f"`{field}` is required for service {service!r}"]
    convert, problems_of, _ = _SERVICES[service]
    found = []
    for problem in problems_of(convert(args)):
        for native, awf in _AWF_NAMES.items():
            problem = problem.replace(native, awf)
        found.append(problem.replace("`region`", "`region_name`"))
    return found


def awf_block_problems(args: AwfAwsArgs, unconverted: frozenset[str] = frozenset()) -> list[str]:
    """What is wrong with an `awf-aws-plugin` block: as its service's (`service_problems`), or as
    SageMaker Pipelines' (`args.awf_problems`)."""
    service = other_service(args) if "service" not in unconverted else ""
    return service_problems(service, args, unconverted) if service else awf_problems(args, unconverted)


def run_service(service: str, task: Task, args: AwfAwsArgs) -> Result:
    """Run one call of an awf-aws block of `service` as its native plugin's arguments."""
    convert, _, run = _SERVICES[service]
    return run(task, convert(args))


def service_outputs(service: str, action: Any) -> Mapping[str, str]:
    """Every output of `service`'s `action` (validate, else execute), empty."""
    execute, validate = _EMPTY[service]
    return validate if action == "validate" else execute
