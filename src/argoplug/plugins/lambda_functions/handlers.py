"""The `lambda-function` plugin: validate an AWS Lambda function, or invoke it, synchronously
(RequestResponse: the node ends with the function's response) or asynchronously (Event: queued, not followed).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from argoplug import aws
from argoplug.plugin import PermanentError, Plugin, Result, Task
from argoplug.plugins.aws_common import (
    AwsTarget,
    check_account,
    common_problems,
    joined,
    large_output,
    outputs_of_action,
    with_outputs,
)

__all__ = [
    "EMPTY_INVOCATION",
    "EMPTY_VALIDATE",
    "FUNCTION_ARN",
    "INVOKE_READ_TIMEOUT",
    "KEY",
    "LambdaArgs",
    "lambda_plugin",
    "run_lambda",
]

log = logging.getLogger("argoplug.plugins.lambda_functions")

KEY = "lambda-function"
FUNCTION_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:"
    r"(?P<name>[A-Za-z0-9_-]{1,64})(?::(?P<qualifier>[A-Za-z0-9$_-]+))?$"
)
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# A synchronous Invoke waits for the function, which may run 15 minutes (Lambda's maximum timeout): the
# read timeout covers it, and there is no retry (a second Invoke would run the function again). The
# server answers the agent Running after its handler deadline and gives the result to the next call.
INVOKE_READ_TIMEOUT = 905.0
EMPTY_INVOCATION: Mapping[str, str] = {
    "status-code": "",
    "function-error": "",
    "payload": "",
    "executed-version": "",
}
EMPTY_VALIDATE: Mapping[str, str] = {"function-arn": "", "function-state": ""}


class LambdaArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The `lambda-function` plugin block.

    - `action`: `validate` (GetFunction) or `execute` (Invoke).
    - `function`: the function's name or ARN (an ARN may end with `:<version or alias>`).
    - `payload`: the event, any JSON value (default `{}`), sent as JSON.
    - `invocation_type`: `RequestResponse` (default: wait for the function; Succeeded with its response,
      Failed when it raised) or `Event` (queued by Lambda, Succeeded at once; its run is not followed).
    - `qualifier`: a version or alias.
    - `region`, `account_id` (12 digits), `role_arn`.
    """

    action: Literal["validate", "execute"] = "execute"
    function: str = ""
    payload: Any = msgspec.field(default_factory=dict)
    invocation_type: Literal["RequestResponse", "Event"] = "RequestResponse"
    qualifier: str = ""
    region: str = ""
    account_id: str | int = ""
    role_arn: str = ""


def argument_problems(args: LambdaArgs, unconverted: frozenset[str] = frozenset()) -> list[str]:
    """What is wrong with a `lambda-function` block beyond its types (unconverted fields left out)."""
    problems = []
    if not args.function and "function" not in unconverted:
        problems.append(f"`function` is required for action {args.action!r}")
    elif args.function and not (FUNCTION_ARN.match(args.function) or _NAME.match(args.function)):
        problems.append(
            "`function`: expected a function name (letters, digits, - and _, at most 64) or an ARN like "
            f"arn:aws:lambda:<region>:<account>:function:<name>, got {args.function!r}"
        )
    return problems + common_problems(args.account_id, args.role_arn)


lambda_plugin: Plugin[LambdaArgs] = Plugin(
    KEY,
    args=LambdaArgs,
    check=argument_problems,
    failure_outputs=outputs_of_action(EMPTY_VALIDATE, EMPTY_INVOCATION),
    description=(
        "Validates and invokes AWS Lambda functions: RequestResponse waits for the function and reports "
        "its response payload (Failed when the function raised); Event queues the invocation."
    ),
)


@lambda_plugin.handler
def run_lambda(task: Task, args: LambdaArgs) -> Result:
    """Validate the function (GetFunction) or invoke it (Invoke), in one call.

    RequestResponse: Succeeded with outputs `status-code`, `payload` (the response, JSON text, left out
    above 256 KiB) and `executed-version`; Failed when the function raised (`function-error` Unhandled or
    Handled, the message from the response's errorType and errorMessage). Event: Succeeded once Lambda
    queued it (202). Lambda's Invoke has no idempotency token: a call whose answer was lost (the sidecar
    restarted while the function ran) invokes it again. Raises as `glue.run_glue` does.
    """

    def run() -> Result:
        target = AwsTarget.of(task, region=args.region, role_arn=args.role_arn)
        with aws.translated_errors():
            arn = FUNCTION_ARN.match(args.function)
            check_account(
                args.account_id, target, f"Lambda function {args.function}", arn["account"] if arn else ""
            )
            qualifier = {"Qualifier": args.qualifier} if args.qualifier else {}
            if args.action == "validate":
                config = target.client("lambda").get_function(FunctionName=args.function, **qualifier)[
                    "Configuration"
                ]
                state = str(config.get("State") or "")
                outputs = {"function-arn": str(config.get("FunctionArn") or ""), "function-state": state}
                if state == "Failed":
                    reason = config.get("StateReason") or "no reason given"
                    raise PermanentError(
                        f"Lambda function {args.function} is Failed: {reason}", outputs=outputs
                    )
                return Result.succeeded(
                    f"Lambda function {args.function} is {state or 'present'}", outputs=outputs
                )
            client = target.client("lambda", read_timeout=INVOKE_READ_TIMEOUT)
            answer = client.invoke(
                FunctionName=args.function,
                InvocationType=args.invocation_type,
                Payload=json.dumps(args.payload).encode(),
                **qualifier,
            )
            return _invocation(args, answer)

    return with_outputs(EMPTY_VALIDATE if args.action == "validate" else EMPTY_INVOCATION, run)


def _invocation(args: LambdaArgs, answer: Mapping[str, Any]) -> Result:
    status = int(answer.get("StatusCode") or 0)
    body = answer.get("Payload")
    raw = body.read() if body is not None else b""
    text = raw.decode("utf-8", "replace")
    notes: list[str] = []
    outputs = {
        "status-code": str(status),
        "function-error": str(answer.get("FunctionError") or ""),
        "payload": large_output("payload", text, notes),
        "executed-version": str(answer.get("ExecutedVersion") or ""),
    }
    name = args.function
    if args.invocation_type == "Event":
        log.info("queued an invocation of Lambda function %s (status %d)", name, status)
        return Result.succeeded(
            joined([f"invocation of Lambda function {name} queued", *notes]), outputs=outputs
        )
    if outputs["function-error"]:
        raise PermanentError(
            joined(
                [f"Lambda function {name} failed ({outputs['function-error']}): {_error_of(text)}", *notes]
            ),
            outputs=outputs,
        )
    return Result.succeeded(
        joined([f"Lambda function {name} returned (status {status})", *notes]), outputs=outputs
    )


def _error_of(text: str) -> str:
    """`errorType: errorMessage` of a failed invocation's response (Lambda's error format), else its text."""
    try:
        error = json.loads(text)
    except ValueError:
        return text[:1000] or "no error payload"
    if isinstance(error, dict):
        return (
            joined([str(error.get("errorType") or ""), str(error.get("errorMessage") or "")]) or text[:1000]
        )
    return text[:1000]
