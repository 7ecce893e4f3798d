"""The Plugin objects (`sagemaker-pipelines`, `awf-aws-plugin`), their handlers and the tracker they share.

A handler checks its arguments (`args`), then validates a pipeline here or runs an execution or a stop
(`executions`) through the shared `JobTracker`, which `use_tracker` replaces. The package re-exports these.
"""

from __future__ import annotations

from collections.abc import Mapping

from argoplug import aws
from argoplug.jobs import JobTracker
from argoplug.plugin import ArgumentError, PermanentError, Plugin, Result, Task
from argoplug.plugins.sagemaker.args import (
    AWF_AWS_SERVICES,
    PIPELINE_ARN,
    AwfAwsArgs,
    SageMakerArgs,
    argument_problems,
    normalized_account,
    poll_seconds,
)
from argoplug.plugins.sagemaker.executions import EMPTY_EXECUTION, ExecutionJob, Runtime, StopJob, Target

__all__ = [
    "AWF_AWS_KEY",
    "KEY",
    "awf_aws",
    "awf_aws_plugin",
    "plugins",
    "sagemaker_pipelines",
    "sagemaker_plugin",
    "use_tracker",
]

KEY = "sagemaker-pipelines"
AWF_AWS_KEY = "awf-aws-plugin"

sagemaker_plugin: Plugin[SageMakerArgs] = Plugin(
    KEY,
    args=SageMakerArgs,
    description=(
        "Validates, executes and stops Amazon SageMaker Pipelines: starts one pipeline execution per task "
        "(found again after a restart, never started twice), waits for it with a backing-off requeue and "
        "reports its ARN, status, failure reason and steps."
    ),
)
awf_aws_plugin: Plugin[AwfAwsArgs] = Plugin(
    AWF_AWS_KEY,
    args=AwfAwsArgs,
    description=(
        "Drop-in replacement for the awf-aws executor plugin's SageMaker Pipelines actions (validate, "
        "execute), run by the sagemaker-pipelines plugin."
    ),
)
plugins = (sagemaker_plugin, awf_aws_plugin)

_runtime = Runtime(JobTracker())


def use_tracker(tracker: JobTracker | None = None) -> JobTracker:
    """Make both plugins use `tracker` (a fresh JobTracker by default) and return it.

    A fresh tracker is what a restarted sidecar has: tests use it for isolation and to simulate restarts.
    Also re-arms the once-only warning about ListPipelineExecutionSteps.
    """
    global _runtime
    _runtime = Runtime(tracker if tracker is not None else JobTracker())
    return _runtime.tracker


@sagemaker_plugin.handler
def sagemaker_pipelines(task: Task, args: SageMakerArgs) -> Result:
    """Run one call of a `sagemaker-pipelines` task (see `_run`); raises ArgumentError for bad arguments."""
    problems = argument_problems(args)
    if problems:
        raise ArgumentError(f"invalid arguments for plugin {KEY!r}: " + "; ".join(problems))
    return _run(task, args)


@awf_aws_plugin.handler
def awf_aws(task: Task, args: AwfAwsArgs) -> Result:
    """Run one call of an `awf-aws-plugin` task: convert it to `SageMakerArgs` and run that (`_run`).

    Raises PermanentError for the services not supported yet and for unknown ones.
    """
    service = args.service or ("amazon_sagemaker_pipelines" if args.pipeline_name else "")
    if service != "amazon_sagemaker_pipelines":
        accepted = ", ".join(AWF_AWS_SERVICES)
        if service in AWF_AWS_SERVICES:
            raise PermanentError(
                f"{AWF_AWS_KEY}: service {service!r} is not supported yet by argoplug; only "
                "amazon_sagemaker_pipelines is"
            )
        if not service:
            raise ArgumentError(
                f"invalid arguments for plugin {AWF_AWS_KEY!r}: `pipeline_name` is required "
                f"(or `service`, one of: {accepted})"
            )
        raise ArgumentError(
            f"invalid arguments for plugin {AWF_AWS_KEY!r}: `service`: expected one of {accepted}, "
            f"got {service!r}"
        )
    native = SageMakerArgs(
        action=args.action,
        pipeline=args.pipeline_name,
        region=args.region_name,
        account_id=args.account_id,
        parameters=args.parameters,
    )
    problems = argument_problems(native, names={"pipeline": "pipeline_name", "region": "region_name"})
    if problems:
        raise ArgumentError(f"invalid arguments for plugin {AWF_AWS_KEY!r}: " + "; ".join(problems))
    return _run(task, native)


def _run(task: Task, args: SageMakerArgs) -> Result:
    """Advance `task` by one call (`args` checked): validate the pipeline, execute it, or stop an execution.

    - validate: DescribePipeline; Succeeded with outputs `pipeline-arn`, `pipeline-status`.
    - execute: find the task's execution (ListPipelineExecutions, by display name) or start it
      (StartPipelineExecution, named from `task.key` and the attempt number), then
      DescribePipelineExecution: Executing/Stopping → Running with a requeue (5 s doubling up to `poll`),
      Succeeded → Succeeded, Failed/Stopped → Failed with the failure reason. A repeated call after a
      reported failure starts the next attempt.
    - stop: StopPipelineExecution, then Running until DescribePipelineExecution says Stopped (Succeeded).

    Execute and stop report `pipeline-arn`, `execution-arn`, `execution-status`, `failure-reason` and
    `steps` (JSON list of {name, status, failure_reason} from ListPipelineExecutionSteps; `[]` when that
    call fails). Raises TemporaryError (throttling, 5xx, connection trouble), PermanentError (access
    denied, validation, missing pipeline, another account: Failed with AWS's message) and
    `aws.AwsSetupError` (no credentials or region: an Error node).
    """
    target = Target.of(task, args)
    empty = _EMPTY_VALIDATE if args.action == "validate" else EMPTY_EXECUTION
    try:
        with aws.translated_errors():
            _check_account(args, target)
            if args.action == "validate":
                return _validate(args, target)
            runtime = _runtime
            job: ExecutionJob | StopJob
            if args.action == "stop":
                job = StopJob(target, runtime, args.execution_arn)
            else:
                job = ExecutionJob(target, runtime, args, task)
            return runtime.tracker.run(task.key, job, max_delay=poll_seconds(args.poll))
    except PermanentError as exc:
        if exc.outputs:
            raise
        # The final reply replaces the node's outputs: carry every name, empty, so references resolve.
        raise type(exc)(exc.message, outputs=empty) from exc


_EMPTY_VALIDATE: Mapping[str, str] = {"pipeline-arn": "", "pipeline-status": ""}


def _check_account(args: SageMakerArgs, target: Target) -> None:
    """Raise PermanentError when the pipeline (or the caller) is not in `account_id`."""
    if args.account_id == "":
        return
    expected = normalized_account(args.account_id)
    subject = args.execution_arn if args.action == "stop" else args.pipeline
    arn = PIPELINE_ARN.match(subject)
    if arn is not None:
        found, source = arn.group("account"), "by its ARN"
    else:
        found = aws.caller_account(
            region=target.region, role_arn=target.role_arn, session_name=target.session_name
        )
        source = "the account of the sidecar's AWS credentials (STS GetCallerIdentity"
        source += f" after assuming {target.role_arn})" if target.role_arn else ")"
    if found != expected:
        raise PermanentError(
            f"{subject} is in AWS account {found} ({source}), not in account_id {expected}: "
            f"set role_arn to a role in account {expected}, or correct account_id"
        )


def _validate(args: SageMakerArgs, target: Target) -> Result:
    """DescribePipeline: Succeeded when the pipeline exists and is Active."""
    described = target.client().describe_pipeline(PipelineName=args.pipeline)
    status = str(described.get("PipelineStatus") or "")
    outputs = {"pipeline-arn": str(described.get("PipelineArn") or ""), "pipeline-status": status}
    name = described.get("PipelineName") or args.pipeline
    if status == "Deleting":
        raise PermanentError(f"pipeline {name} is being deleted (PipelineStatus Deleting)", outputs=outputs)
    return Result.succeeded(f"pipeline {name} is {status or 'present'}", outputs=outputs)
