"""The arguments of the SageMaker Pipelines plugins: the two plugin blocks and their checks beyond types.

`handlers` declares its plugins with these types and checks (`argument_problems` / `awf_problems`,
which `argoplug.Plugin` runs after the types, so one message names every problem), and reads the `poll`
duration and the pipeline ARN's parts from here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from argoplug.aws import account_id
from argoplug.plugins.aws_common import MAX_POLL, poll_seconds

__all__ = [
    "AWF_AWS_SERVICES",
    "DEFAULT_POLL",
    "MAX_POLL",
    "PIPELINE_ARN",
    "AwfAwsArgs",
    "SageMakerArgs",
    "argument_problems",
    "awf_problems",
    "native_args",
    "other_service",
    "poll_seconds",
]

DEFAULT_POLL = 60.0
# The awf-aws plugin's `service` values (greenpau/argo-workflows-aws-plugin, request.go); the first is ours.
AWF_AWS_SERVICES = ("amazon_sagemaker_pipelines", "aws_glue", "aws_step_functions", "aws_lambda")

# AWS's form of a pipeline ARN, or of an execution ARN (with `execution`).
PIPELINE_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):sagemaker:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"pipeline/(?P<pipeline>[^/]+)(?:/execution/(?P<execution>[^/]+))?$"
)
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
_ACCOUNT = re.compile(r"^\d{12}$")


class SageMakerArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The `sagemaker-pipelines` plugin block.

    - `action`: `validate` (DescribePipeline), `execute` (StartPipelineExecution, then
      DescribePipelineExecution until it ends) or `stop` (StopPipelineExecution of `execution_arn`).
    - `pipeline`: the pipeline's name or ARN (validate, execute).
    - `parameters`: name → value, sent as PipelineParameters; values that are not strings are JSON-encoded.
    - `display_name`: prefix of the execution's display name (default: the workflow's name).
    - `region`: AWS region (default: the pipeline ARN's region, else the sidecar's AWS_REGION).
    - `account_id`: the 12-digit account the pipeline must be in; checked against the pipeline or execution
      ARN, else against STS GetCallerIdentity.
    - `role_arn`: an IAM role to assume first (STS AssumeRole), for cross-account work.
    - `wait`: wait for the execution to end (default); false succeeds as soon as it started.
    - `poll`: the longest requeue while waiting, in seconds or as a Go duration ("2m"); default 60 s.
      Requeues start at 5 s and double up to it.
    - `execution_arn`: the execution to stop (stop).
    - `cancel_on_stop`: stop the execution (StopPipelineExecution) if it is still running when the
      sidecar is stopped (SIGTERM: Argo deletes the agent pod of a stopped, terminated or failed
      workflow); default true, false for an execution that must outlive the workflow (`argoplug.jobs`).
    """

    action: Literal["validate", "execute", "stop"] = "execute"
    pipeline: str = ""
    parameters: dict[str, Any] = {}
    display_name: str = ""
    region: str = ""
    account_id: str | int = ""
    role_arn: str = ""
    wait: bool = True
    poll: float | str = DEFAULT_POLL
    execution_arn: str = ""
    cancel_on_stop: bool = True


class AwfAwsArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The `awf-aws-plugin` block of the published awf-aws plugin, for drop-in compatibility.

    `action` is `validate` or `execute`; `pipeline_name`, `region_name`, `account_id` and `parameters` map
    to the native `pipeline`, `region`, `account_id` and `parameters`. `service` may be left out when
    `pipeline_name` is given (it means `amazon_sagemaker_pipelines`). `job_name`, `step_function_name` and
    `lambda_function_name` name the resource of the other services (`awf_services`). `cancel_on_stop`
    is argoplug's, as in `SageMakerArgs`.
    """

    action: Literal["validate", "execute"]
    account_id: str | int = ""
    region_name: str = ""
    pipeline_name: str = ""
    service: str = ""
    parameters: dict[str, Any] = {}
    job_name: str = ""
    step_function_name: str = ""
    lambda_function_name: str = ""
    cancel_on_stop: bool = True


# Native field → the awf-aws field it comes from (for messages, and to leave unconverted fields alone).
_AWF_NAMES = {"pipeline": "pipeline_name", "region": "region_name"}
_SAGEMAKER_SERVICE = AWF_AWS_SERVICES[0]


def argument_problems(
    args: SageMakerArgs,
    unconverted: frozenset[str] = frozenset(),
    *,
    names: Mapping[str, str] | None = None,
) -> list[str]:
    """List what is wrong with `args` beyond their types, naming fields as the user wrote them (`names`).

    Checks that involve a field in `unconverted` (its value did not convert, so `args` holds its default)
    are left out: that field is reported already.
    """
    names = names or {}
    problems: list[str] = []

    def field(name: str) -> str:
        return f"`{names.get(name, name)}`"

    def add(fields: tuple[str, ...], message: str) -> None:
        if unconverted.isdisjoint(fields):
            problems.append(message)

    region = field("region")
    if args.action in ("validate", "execute") and not args.pipeline:
        add(("action", "pipeline"), f"{field('pipeline')} is required for action {args.action!r}")
    if args.pipeline.startswith("arn:"):
        arn = PIPELINE_ARN.match(args.pipeline)
        if arn is None or arn.group("execution"):
            add(
                ("pipeline",),
                f"{field('pipeline')}: expected a pipeline name or an ARN like "
                f"arn:aws:sagemaker:<region>:<account>:pipeline/<name>, got {args.pipeline!r}",
            )
        elif args.region and args.region != arn.group("region"):
            found = arn.group("region")
            add(("pipeline", "region"), f"{region} is {args.region!r} but the pipeline ARN is in {found!r}")
    if args.action == "stop":
        arn = PIPELINE_ARN.match(args.execution_arn)
        if not args.execution_arn:
            add(("action", "execution_arn"), f"{field('execution_arn')} is required for action 'stop'")
        elif arn is None or not arn.group("execution"):
            add(
                ("execution_arn",),
                f"{field('execution_arn')}: expected an ARN like "
                "arn:aws:sagemaker:<region>:<account>:pipeline/<name>/execution/<id>, "
                f"got {args.execution_arn!r}",
            )
        elif args.region and args.region != arn.group("region"):
            found = arn.group("region")
            add(
                ("execution_arn", "region"),
                f"{region} is {args.region!r} but the execution ARN is in {found!r}",
            )
    if args.account_id != "" and not _ACCOUNT.match(account_id(args.account_id)):
        add(("account_id",), f"{field('account_id')}: expected 12 digits, got {args.account_id!r}")
    if args.role_arn and not _ROLE_ARN.match(args.role_arn):
        add(
            ("role_arn",),
            f"{field('role_arn')}: expected an IAM role ARN like arn:aws:iam::<account>:role/<name>, "
            f"got {args.role_arn!r}",
        )
    try:
        poll_seconds(args.poll)
    except ValueError as exc:
        add(("poll",), f"{field('poll')}: {exc}")
    return problems


def awf_problems(args: AwfAwsArgs, unconverted: frozenset[str] = frozenset()) -> list[str]:
    """List what is wrong with an `awf-aws-plugin` block beyond its types, in its own field names.

    A block of another service of the published plugin (Glue, Step Functions, Lambda) is no concern of
    this function: `awf_services.service_problems` checks it.
    """
    service = args.service or _SAGEMAKER_SERVICE
    if "service" not in unconverted and service != _SAGEMAKER_SERVICE and service in AWF_AWS_SERVICES:
        return []
    problems = []
    if "service" not in unconverted and service not in AWF_AWS_SERVICES:
        problems.append(f"`service`: expected one of {', '.join(AWF_AWS_SERVICES)}, got {service!r}")
    native_names = {awf: native for native, awf in _AWF_NAMES.items()}
    skipped = frozenset(native_names.get(name, name) for name in unconverted)
    return problems + argument_problems(native_args(args), skipped, names=_AWF_NAMES)


def native_args(args: AwfAwsArgs) -> SageMakerArgs:
    """The `sagemaker-pipelines` arguments an `awf-aws-plugin` block (for SageMaker Pipelines) means."""
    return SageMakerArgs(
        action=args.action,
        pipeline=args.pipeline_name,
        region=args.region_name,
        account_id=args.account_id,
        parameters=args.parameters,
        cancel_on_stop=args.cancel_on_stop,
    )


def other_service(args: AwfAwsArgs) -> str:
    """The awf-aws `service` of the block when it is not SageMaker Pipelines (Glue...), else ""."""
    service = args.service or _SAGEMAKER_SERVICE
    return service if service != _SAGEMAKER_SERVICE and service in AWF_AWS_SERVICES else ""
