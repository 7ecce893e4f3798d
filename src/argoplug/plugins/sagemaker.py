"""The SageMaker Pipelines plugin (`sagemaker-pipelines`) and its drop-in twin for `awf-aws-plugin` templates.

Validates a pipeline, executes it (find-or-start, then poll, through `argoplug.jobs.JobTracker`) or stops
an execution. The entry point `sagemaker-pipelines` names this module; `plugins` holds both plugins.
boto3 is imported on the first AWS call (`argoplug.aws`), never at import.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from argoplug import aws
from argoplug.jobs import JobState, JobStatus, JobTracker
from argoplug.plugin import ArgumentError, PermanentError, Plugin, Result, Task, TemporaryError
from argoplug.protocol import encode_parameter_value, parse_duration

__all__ = [
    "AWF_AWS_KEY",
    "AWF_AWS_SERVICES",
    "DEFAULT_POLL",
    "KEY",
    "AwfAwsArgs",
    "SageMakerArgs",
    "awf_aws_plugin",
    "client_request_token",
    "execution_display_name",
    "plugins",
    "sagemaker_plugin",
    "use_tracker",
]

log = logging.getLogger("argoplug.plugins.sagemaker")

KEY = "sagemaker-pipelines"
AWF_AWS_KEY = "awf-aws-plugin"
DEFAULT_POLL = 60.0
# The awf-aws plugin's `service` values (greenpau/argo-workflows-aws-plugin, request.go); the first is ours.
AWF_AWS_SERVICES = ("amazon_sagemaker_pipelines", "aws_glue", "aws_step_functions", "aws_lambda")

# AWS limits (botocore's sagemaker model): PipelineExecutionName, IdempotencyToken.
_DISPLAY_NAME_MAX = 82
_PIPELINE_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):sagemaker:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"pipeline/(?P<pipeline>[^/]+)(?:/execution/(?P<execution>[^/]+))?$"
)
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
_ACCOUNT = re.compile(r"^\d{12}$")
_RUNNING = frozenset({"Executing", "Stopping"})
_FAILED = frozenset({"Failed", "Stopped"})


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


class AwfAwsArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The `awf-aws-plugin` block of the published awf-aws plugin, for drop-in compatibility.

    `action` is `validate` or `execute`; `pipeline_name`, `region_name`, `account_id` and `parameters` map
    to the native `pipeline`, `region`, `account_id` and `parameters`. `service` may be left out when
    `pipeline_name` is given (it means `amazon_sagemaker_pipelines`). `job_name`, `step_function_name` and
    `lambda_function_name` belong to the services not supported yet; they are accepted so that such a
    template fails saying so.
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


@dataclasses.dataclass(slots=True)
class _Runtime:
    tracker: JobTracker
    steps_warned: bool = False
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


_runtime = _Runtime(JobTracker())


def use_tracker(tracker: JobTracker | None = None) -> JobTracker:
    """Make both plugins use `tracker` (a fresh JobTracker by default) and return it.

    A fresh tracker is what a restarted sidecar has: tests use it for isolation and to simulate restarts.
    Also re-arms the once-only warning about ListPipelineExecutionSteps.
    """
    global _runtime
    _runtime = _Runtime(tracker if tracker is not None else JobTracker())
    return _runtime.tracker


@sagemaker_plugin.handler
def sagemaker_pipelines(task: Task, args: SageMakerArgs) -> Result:
    """Run one call of a `sagemaker-pipelines` task (see `_run`); raises ArgumentError for bad arguments."""
    problems = _problems(args)
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
    problems = _problems(native, names={"pipeline": "pipeline_name", "region": "region_name"})
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
    target = _Target.of(task, args)
    empty = _EMPTY_VALIDATE if args.action == "validate" else _EMPTY_EXECUTION
    try:
        with aws.translated_errors():
            _check_account(args, target)
            if args.action == "validate":
                return _validate(args, target)
            runtime = _runtime
            job: _ExecutionJob | _StopJob
            if args.action == "stop":
                job = _StopJob(target, runtime, args.execution_arn)
            else:
                job = _ExecutionJob(target, runtime, args, task)
            return runtime.tracker.run(task.key, job, max_delay=_poll_seconds(args.poll))
    except PermanentError as exc:
        if exc.outputs:
            raise
        # The final reply replaces the node's outputs: carry every name, empty, so references resolve.
        raise type(exc)(exc.message, outputs=empty) from exc


def execution_display_name(prefix: str, key: str, attempt: int) -> str:
    """Name attempt `attempt` of the task with idempotency key `key`: `<prefix>-<key>-<attempt>`.

    `prefix` (e.g. the workflow's name) is cut to fit AWS's PipelineExecutionDisplayName limits (at most 82
    characters of `^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,81}$`): other characters become `-`. The display name is
    how a restarted sidecar finds the execution again (ListPipelineExecutions).
    """
    tail = f"{key}-{attempt}"
    budget = _DISPLAY_NAME_MAX - len(tail) - 1
    clean = re.sub(r"[^A-Za-z0-9]+", "-", prefix).strip("-")[: max(budget, 0)].rstrip("-")
    return f"{clean}-{tail}" if clean else tail


def client_request_token(key: str, attempt: int) -> str:
    """Return the StartPipelineExecution ClientRequestToken of an attempt: 32–128 chars of `[A-Za-z0-9-_]`."""
    return f"argoplug-{key}-{attempt}"


@dataclasses.dataclass(frozen=True, slots=True)
class _Target:
    """Where the AWS calls of one task go: region, role and the STS session name."""

    region: str | None
    role_arn: str | None
    session_name: str

    @classmethod
    def of(cls, task: Task, args: SageMakerArgs) -> _Target:
        arn = _PIPELINE_ARN.match(args.execution_arn if args.action == "stop" else args.pipeline)
        region = args.region or (arn.group("region") if arn else "")
        return cls(
            region or None, args.role_arn or None, aws.session_name(task.workflow_name, task.namespace)
        )

    def client(self, *, max_attempts: int = aws.MAX_ATTEMPTS) -> Any:
        return aws.client(
            "sagemaker",
            region=self.region,
            role_arn=self.role_arn,
            session_name=self.session_name,
            max_attempts=max_attempts,
        )


_EMPTY_VALIDATE: Mapping[str, str] = {"pipeline-arn": "", "pipeline-status": ""}
_EMPTY_EXECUTION: Mapping[str, Any] = {
    "pipeline-arn": "",
    "execution-arn": "",
    "execution-status": "",
    "failure-reason": "",
    "steps": [],
}


def _problems(args: SageMakerArgs, names: Mapping[str, str] | None = None) -> list[str]:
    """List what is wrong with `args` beyond their types, naming fields as the user wrote them."""
    names = names or {}

    def field(name: str) -> str:
        return f"`{names.get(name, name)}`"

    problems: list[str] = []
    if args.action in ("validate", "execute") and not args.pipeline:
        problems.append(f"{field('pipeline')} is required for action {args.action!r}")
    if args.pipeline.startswith("arn:"):
        arn = _PIPELINE_ARN.match(args.pipeline)
        if arn is None or arn.group("execution"):
            problems.append(
                f"{field('pipeline')}: expected a pipeline name or an ARN like "
                f"arn:aws:sagemaker:<region>:<account>:pipeline/<name>, got {args.pipeline!r}"
            )
        elif args.region and args.region != arn.group("region"):
            problems.append(
                f"{field('region')} is {args.region!r} but the pipeline ARN is in {arn.group('region')!r}"
            )
    if args.action == "stop":
        arn = _PIPELINE_ARN.match(args.execution_arn)
        if not args.execution_arn:
            problems.append(f"{field('execution_arn')} is required for action 'stop'")
        elif arn is None or not arn.group("execution"):
            problems.append(
                f"{field('execution_arn')}: expected an ARN like "
                "arn:aws:sagemaker:<region>:<account>:pipeline/<name>/execution/<id>, "
                f"got {args.execution_arn!r}"
            )
        elif args.region and args.region != arn.group("region"):
            problems.append(
                f"{field('region')} is {args.region!r} but the execution ARN is in {arn.group('region')!r}"
            )
    if args.account_id != "" and not _ACCOUNT.match(_account(args.account_id)):
        problems.append(f"{field('account_id')}: expected 12 digits, got {args.account_id!r}")
    if args.role_arn and not _ROLE_ARN.match(args.role_arn):
        problems.append(
            f"{field('role_arn')}: expected an IAM role ARN like arn:aws:iam::<account>:role/<name>, "
            f"got {args.role_arn!r}"
        )
    try:
        _poll_seconds(args.poll)
    except ValueError as exc:
        problems.append(f"{field('poll')}: {exc}")
    return problems


def _account(value: str | int) -> str:
    # YAML reads an unquoted account id as a number, which drops leading zeros.
    return f"{value:012d}" if isinstance(value, int) and value >= 0 else str(value).strip()


def _poll_seconds(value: float | str) -> float:
    """Seconds of a `poll` value: a number, a numeric string ("30") or a Go duration ("2m")."""
    if isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            seconds = parse_duration(value.strip())
    else:
        seconds = float(value)
    if not seconds > 0:
        raise ValueError(f"expected a duration > 0 (seconds or e.g. '2m'), got {value!r}")
    return seconds


def _check_account(args: SageMakerArgs, target: _Target) -> None:
    """Raise PermanentError when the pipeline (or the caller) is not in `account_id`."""
    if args.account_id == "":
        return
    expected = _account(args.account_id)
    subject = args.execution_arn if args.action == "stop" else args.pipeline
    arn = _PIPELINE_ARN.match(subject)
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


def _validate(args: SageMakerArgs, target: _Target) -> Result:
    """DescribePipeline: Succeeded when the pipeline exists and is Active."""
    described = target.client().describe_pipeline(PipelineName=args.pipeline)
    status = str(described.get("PipelineStatus") or "")
    outputs = {"pipeline-arn": str(described.get("PipelineArn") or ""), "pipeline-status": status}
    name = described.get("PipelineName") or args.pipeline
    if status == "Deleting":
        raise PermanentError(f"pipeline {name} is being deleted (PipelineStatus Deleting)", outputs=outputs)
    return Result.succeeded(f"pipeline {name} is {status or 'present'}", outputs=outputs)


class _ExecutionJob:
    """One task's pipeline execution, as a `argoplug.jobs.ExternalJob`."""

    def __init__(self, target: _Target, runtime: _Runtime, args: SageMakerArgs, task: Task) -> None:
        self.target = target
        self.runtime = runtime
        self.pipeline = args.pipeline
        self.wait = args.wait
        self.prefix = args.display_name or task.workflow_name
        self.parameters = [
            {"Name": str(name), "Value": encode_parameter_value(value)}
            for name, value in args.parameters.items()
        ]
        self.description = (
            f"Started by argoplug for Argo workflow {task.namespace}/{task.workflow_name} "
            f"(uid {task.workflow_uid}), template {task.template.name}"
        )[:3072]
        self.sm = target.client()

    def find(self, key: str) -> JobState | None:
        """ListPipelineExecutions (newest first) for this task's display name; the latest attempt wins."""
        pattern = re.compile(rf"(?:^|-){re.escape(key)}-(\d+)$")
        found: tuple[int, str] | None = None
        with aws.translated_errors():
            pages = self.sm.get_paginator("list_pipeline_executions").paginate(
                PipelineName=self.pipeline, SortBy="CreationTime", SortOrder="Descending"
            )
            for page in pages:
                for summary in page.get("PipelineExecutionSummaries", []):
                    match = pattern.search(str(summary.get("PipelineExecutionDisplayName") or ""))
                    if match and (found is None or int(match.group(1)) > found[0]):
                        found = (int(match.group(1)), str(summary["PipelineExecutionArn"]))
                if found is not None:
                    break  # pages are newest first: later ones hold only older attempts
        if found is None:
            return None
        log.info("found pipeline execution %s (attempt %d) of task %s", found[1], found[0], key)
        return self.poll(JobState(ref=found[1], status=JobStatus.RUNNING, attempt=found[0]))

    def start(self, key: str, attempt: int) -> JobState:
        """StartPipelineExecution of attempt `attempt`, named by `execution_display_name`."""
        name = execution_display_name(self.prefix, key, attempt)
        request: dict[str, Any] = {
            "PipelineName": self.pipeline,
            "PipelineExecutionDisplayName": name,
            "PipelineExecutionDescription": self.description,
            "ClientRequestToken": client_request_token(key, attempt),
        }
        if self.parameters:
            request["PipelineParameters"] = self.parameters
        with aws.translated_errors():
            arn = str(self.sm.start_pipeline_execution(**request)["PipelineExecutionArn"])
        log.info("started pipeline execution %s (%s) of pipeline %s", arn, name, self.pipeline)
        started = JobState(
            ref=arn,
            status=JobStatus.SUCCEEDED if not self.wait else JobStatus.RUNNING,
            message=f"pipeline execution {name} started",
            outputs={**_EMPTY_EXECUTION, "execution-arn": arn, "execution-status": "Executing"},
            attempt=attempt,
        )
        try:
            return self.poll(started)
        except TemporaryError:
            # Started but not described yet: keep the ARN (the tracker remembers it) and describe later.
            return started

    def poll(self, state: JobState) -> JobState:
        """DescribePipelineExecution (and ListPipelineExecutionSteps) of the attempt `state` names."""
        with aws.translated_errors():
            described = self.sm.describe_pipeline_execution(PipelineExecutionArn=state.ref)
        steps = _steps(self.target, self.runtime, state.ref)
        return _execution_state(described, steps, state.attempt, wait=self.wait)


class _StopJob:
    """Stopping one execution, as a `argoplug.jobs.ExternalJob`: Succeeded once it is Stopped."""

    def __init__(self, target: _Target, runtime: _Runtime, execution_arn: str) -> None:
        self.target = target
        self.runtime = runtime
        self.execution_arn = execution_arn
        self.sm = target.client()

    def find(self, key: str) -> JobState | None:
        """DescribePipelineExecution: None while it is Executing (not asked to stop, as far as AWS says)."""
        state = self.poll(JobState(ref=self.execution_arn, status=JobStatus.RUNNING))
        return None if state.outputs.get("execution-status") == "Executing" else state

    def start(self, key: str, attempt: int) -> JobState:
        """StopPipelineExecution, then DescribePipelineExecution."""
        try:
            with aws.translated_errors():
                self.sm.stop_pipeline_execution(
                    PipelineExecutionArn=self.execution_arn,
                    ClientRequestToken=f"argoplug-{key}-stop-{attempt}",
                )
        except PermanentError:
            # ConflictException when it stopped or ended meanwhile: the description says which.
            state = self.poll(JobState(ref=self.execution_arn, status=JobStatus.RUNNING, attempt=attempt))
            if state.outputs.get("execution-status") == "Executing":
                raise
            return state
        log.info("asked pipeline execution %s to stop", self.execution_arn)
        return self.poll(JobState(ref=self.execution_arn, status=JobStatus.RUNNING, attempt=attempt))

    def poll(self, state: JobState) -> JobState:
        """DescribePipelineExecution: Stopped → succeeded; Executing/Stopping → running; ended → succeeded."""
        with aws.translated_errors():
            described = self.sm.describe_pipeline_execution(PipelineExecutionArn=state.ref)
        steps = _steps(self.target, self.runtime, state.ref)
        current = _execution_state(described, steps, state.attempt, wait=True)
        status = current.outputs["execution-status"]
        name = _display(described)
        if status == "Stopped":
            return dataclasses.replace(current, status=JobStatus.SUCCEEDED)
        if status in ("Succeeded", "Failed"):
            message = f"pipeline execution {name} already {status}; nothing to stop"
            return dataclasses.replace(current, status=JobStatus.SUCCEEDED, message=message)
        return dataclasses.replace(
            current, status=JobStatus.RUNNING, message=f"pipeline execution {name} {status}"
        )


def _display(described: Mapping[str, Any]) -> str:
    arn = str(described.get("PipelineExecutionArn") or "")
    return str(described.get("PipelineExecutionDisplayName") or arn.rsplit("/", 1)[-1])


def _execution_state(
    described: Mapping[str, Any], steps: list[dict[str, str]], attempt: int, *, wait: bool
) -> JobState:
    """Map a DescribePipelineExecution response to a JobState with the node's outputs."""
    arn = str(described.get("PipelineExecutionArn") or "")
    status = str(described.get("PipelineExecutionStatus") or "")
    reason = str(described.get("FailureReason") or "")
    name = _display(described)
    outputs = {
        "pipeline-arn": str(described.get("PipelineArn") or ""),
        "execution-arn": arn,
        "execution-status": status,
        "failure-reason": reason,
        "steps": steps,
    }
    if status == "Succeeded":
        return JobState(arn, JobStatus.SUCCEEDED, f"pipeline execution {name} Succeeded", outputs, attempt)
    if status in _FAILED:
        failed_steps = [s["name"] for s in steps if s["status"] == "Failed"]
        detail = f": {reason}" if reason else ""
        if failed_steps:
            detail += f" (failed steps: {', '.join(failed_steps)})"
        return JobState(
            arn, JobStatus.FAILED, f"pipeline execution {name} {status}{detail}", outputs, attempt
        )
    if not wait:
        message = f"pipeline execution {name} started ({status}); not waiting for it (wait: false)"
        return JobState(arn, JobStatus.SUCCEEDED, message, outputs, attempt)
    if status not in _RUNNING:
        log.warning("unknown PipelineExecutionStatus %r of %s: treated as running", status, arn)
    return JobState(arn, JobStatus.RUNNING, f"pipeline execution {name} {status}", outputs, attempt)


def _steps(target: _Target, runtime: _Runtime, execution_arn: str) -> list[dict[str, str]]:
    """ListPipelineExecutionSteps as [{name, status, failure_reason}], oldest first; [] when it fails.

    The steps are a convenience: the phase never depends on them, so any failure (moto does not
    implement the call) gives [] and one warning per tracker. No retries: a failure costs one round trip.
    """
    try:
        pages = (
            target.client(max_attempts=1)
            .get_paginator("list_pipeline_execution_steps")
            .paginate(PipelineExecutionArn=execution_arn, SortOrder="Ascending")
        )
        return [
            {
                "name": str(step.get("StepName") or ""),
                "status": str(step.get("StepStatus") or ""),
                "failure_reason": str(step.get("FailureReason") or ""),
            }
            for page in pages
            for step in page.get("PipelineExecutionSteps", [])
        ]
    except Exception as exc:  # whatever it is, the execution's phase must not depend on it
        with runtime.lock:
            warn, runtime.steps_warned = not runtime.steps_warned, True
        if warn:
            text = (str(exc).strip().splitlines() or [""])[0]
            log.warning(
                "ListPipelineExecutionSteps failed, reporting steps as []: %s: %s", type(exc).__name__, text
            )
        return []
