"""The Plugin objects (`sagemaker-pipelines`, `awf-aws-plugin`), their handlers and the tracker they share.

The plugins convert and check their blocks (`args`: types, then `argument_problems` / `awf_problems`);
a handler validates a pipeline here or runs an execution or a stop (`executions`) through the shared
`JobTracker`, which `use_tracker` replaces. Every Failed or Error node it answers carries all outputs of
its action. The package re-exports these.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from argoplug import aws
from argoplug.jobs import JobTracker
from argoplug.plugin import PermanentError, Plugin, Result, Task
from argoplug.plugins.aws_common import AWF_AWS_KEY, AwsTarget, check_account, with_outputs
from argoplug.plugins.sagemaker.args import (
    PIPELINE_ARN,
    AwfAwsArgs,
    SageMakerArgs,
    argument_problems,
    native_args,
    other_service,
    poll_seconds,
)
from argoplug.plugins.sagemaker.awf_services import (
    SERVICE_FIELDS,
    awf_block_problems,
    run_service,
    service_outputs,
)
from argoplug.plugins.sagemaker.executions import (
    EMPTY_EXECUTION,
    Budget,
    ExecutionJob,
    Runtime,
    StopJob,
    Target,
)

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

log = logging.getLogger("argoplug.plugins.sagemaker")

KEY = "sagemaker-pipelines"


def _failure_outputs(block: Any, default_action: str | None) -> Mapping[str, Any]:
    """Every output of the block's action, empty: a node failed for bad arguments carries them all."""
    return _empty_outputs(block.get("action", default_action) if isinstance(block, Mapping) else None)


def _awf_failure_outputs(block: Any) -> Mapping[str, Any]:
    """Every output of an awf-aws block's service and action, empty."""
    service = block.get("service") if isinstance(block, Mapping) else None
    if service in SERVICE_FIELDS:
        return service_outputs(service, block.get("action"))
    return _failure_outputs(block, None)


sagemaker_plugin: Plugin[SageMakerArgs] = Plugin(
    KEY,
    args=SageMakerArgs,
    check=argument_problems,
    failure_outputs=lambda block: _failure_outputs(block, "execute"),
    description=(
        "Validates, executes and stops Amazon SageMaker Pipelines: starts one pipeline execution per task "
        "(found again after a restart, never started twice), waits for it with a backing-off requeue and "
        "reports its ARN, status, failure reason and steps."
    ),
)
awf_aws_plugin: Plugin[AwfAwsArgs] = Plugin(
    AWF_AWS_KEY,
    args=AwfAwsArgs,
    check=awf_block_problems,
    failure_outputs=lambda block: _awf_failure_outputs(block),
    description=(
        "Drop-in replacement for the awf-aws executor plugin (validate, execute): SageMaker Pipelines "
        "run by the sagemaker-pipelines plugin, AWS Glue, Step Functions and Lambda by glue-job, "
        "step-functions and lambda-function."
    ),
)
plugins = (sagemaker_plugin, awf_aws_plugin)

_runtime = Runtime(JobTracker())


def use_tracker(
    tracker: JobTracker | None = None, *, clock: Callable[[], float] = time.monotonic
) -> JobTracker:
    """Make both plugins use `tracker` (a fresh JobTracker by default) and return it.

    A fresh tracker is what a restarted sidecar has: tests use it for isolation and to simulate restarts.
    `clock` (monotonic seconds) times each call's AWS budget (`executions.CALL_SECONDS`); tests give a
    fake one. Also re-arms the once-only warning about ListPipelineExecutionSteps.
    """
    global _runtime
    _runtime = Runtime(tracker if tracker is not None else JobTracker(), clock)
    return _runtime.tracker


@sagemaker_plugin.handler
def sagemaker_pipelines(task: Task, args: SageMakerArgs) -> Result:
    """Run one call of a `sagemaker-pipelines` task (see `_run`)."""
    return _with_outputs(args.action, lambda: _run(task, args))


@awf_aws_plugin.handler
def awf_aws(task: Task, args: AwfAwsArgs) -> Result:
    """Run one call of an `awf-aws-plugin` task as the `SageMakerArgs` it means (`_run`), or, for the
    services Glue, Step Functions and Lambda, as their plugins' arguments (`awf_services.run_service`)."""

    service = other_service(args)
    if service:
        return run_service(service, task, args)
    return _with_outputs(args.action, lambda: _run(task, native_args(args)))


def _with_outputs(action: Any, run: Callable[[], Result]) -> Result:
    """Run `run`, giving a Failed or Error node without outputs every output of `action`, empty
    (`aws_common.with_outputs`)."""
    return with_outputs(_empty_outputs(action), run)


def _run(task: Task, args: SageMakerArgs) -> Result:
    """Advance `task` by one call (`args` checked): validate the pipeline, execute it, or stop an execution.

    - validate: DescribePipeline; Succeeded with outputs `pipeline-arn`, `pipeline-status`.
    - execute: find the task's execution (ListPipelineExecutions, by display name) or start it
      (StartPipelineExecution, named from `task.key` and the attempt number), then
      DescribePipelineExecution: Executing/Stopping → Running with a requeue (5 s doubling up to `poll`),
      Succeeded → Succeeded, Failed/Stopped → Failed with the failure reason. A repeated call after a
      reported failure starts the next attempt.
    - stop: StopPipelineExecution, then Running until DescribePipelineExecution says Stopped (Succeeded).

    An execution still running when the sidecar stops is stopped (StopPipelineExecution), unless
    `cancel_on_stop` is false.

    Execute and stop report `pipeline-arn`, `execution-arn`, `execution-status`, `failure-reason` and
    `steps` (JSON list of {name, status, failure_reason} from ListPipelineExecutionSteps; `[]` when that
    call fails). A call spends at most `executions.CALL_SECONDS` on AWS. Raises TemporaryError
    (throttling, 5xx, connection trouble), PermanentError (access denied, validation, missing pipeline,
    another account: Failed with AWS's message), both with the outputs already reported when polling,
    and `aws.AwsSetupError` (no credentials or region).
    """
    runtime = _runtime
    budget = Budget(runtime.clock)
    target = Target.of(task, args)
    with aws.translated_errors():
        _check_account(args, target, task)
        if args.action == "validate":
            return _validate(args, target)
        job: ExecutionJob | StopJob
        if args.action == "stop":
            job = StopJob(target, runtime, args.execution_arn, budget)
        else:
            job = ExecutionJob(target, runtime, args, task, budget)
        return runtime.tracker.run(
            task.key, job, max_delay=poll_seconds(args.poll), cancel_on_stop=args.cancel_on_stop
        )


_EMPTY_VALIDATE: Mapping[str, str] = {"pipeline-arn": "", "pipeline-status": ""}
_EMPTY_OUTPUTS: Mapping[Any, Mapping[str, Any]] = {
    "validate": _EMPTY_VALIDATE,
    "execute": EMPTY_EXECUTION,
    "stop": EMPTY_EXECUTION,
}
_EMPTY_ANY: Mapping[str, Any] = {**_EMPTY_VALIDATE, **EMPTY_EXECUTION}


def _empty_outputs(action: Any) -> Mapping[str, Any]:
    """Every output of `action`, empty; of every action when it is not one."""
    return _EMPTY_OUTPUTS.get(action, _EMPTY_ANY) if isinstance(action, str) else _EMPTY_ANY


def _check_account(args: SageMakerArgs, target: Target, task: Task) -> None:
    """Raise PermanentError when the pipeline (or the caller) is not in `account_id` (`check_account`)."""
    subject = args.execution_arn if args.action == "stop" else args.pipeline
    arn = PIPELINE_ARN.match(subject)
    where = AwsTarget(target.region, target.role_arn, target.session_name, task.plugin_key != AWF_AWS_KEY)
    check_account(args.account_id, where, subject, arn.group("account") if arn else "")


def _validate(args: SageMakerArgs, target: Target) -> Result:
    """DescribePipeline: Succeeded when the pipeline exists and is Active."""
    described = target.client().describe_pipeline(PipelineName=args.pipeline)
    status = str(described.get("PipelineStatus") or "")
    outputs = {"pipeline-arn": str(described.get("PipelineArn") or ""), "pipeline-status": status}
    name = described.get("PipelineName") or args.pipeline
    if status == "Deleting":
        raise PermanentError(f"pipeline {name} is being deleted (PipelineStatus Deleting)", outputs=outputs)
    return Result.succeeded(f"pipeline {name} is {status or 'present'}", outputs=outputs)
