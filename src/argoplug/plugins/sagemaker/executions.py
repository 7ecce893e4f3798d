"""Pipeline executions as `argoplug.jobs.ExternalJob`s: executing a pipeline and stopping an execution.

Where a task's AWS calls go (`Target`), how an execution is named, and how a DescribePipelineExecution
response becomes a `JobState` with the node's outputs. `handlers` runs these jobs through the tracker.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

from argoplug import aws
from argoplug.jobs import JobState, JobStatus, JobTracker
from argoplug.plugin import PermanentError, Task, TemporaryError
from argoplug.plugins.sagemaker.args import PIPELINE_ARN, SageMakerArgs
from argoplug.protocol import encode_parameter_value

__all__ = [
    "EMPTY_EXECUTION",
    "ExecutionJob",
    "Runtime",
    "StopJob",
    "Target",
    "client_request_token",
    "execution_display_name",
]

log = logging.getLogger("argoplug.plugins.sagemaker")

# AWS limits (botocore's sagemaker model): PipelineExecutionName, IdempotencyToken.
_DISPLAY_NAME_MAX = 82
_RUNNING = frozenset({"Executing", "Stopping"})
_FAILED = frozenset({"Failed", "Stopped"})

EMPTY_EXECUTION: Mapping[str, Any] = {
    "pipeline-arn": "",
    "execution-arn": "",
    "execution-status": "",
    "failure-reason": "",
    "steps": [],
}


@dataclasses.dataclass(slots=True)
class Runtime:
    """What the plugins share: the tracker of their jobs and the once-only warning about the steps."""

    tracker: JobTracker
    steps_warned: bool = False
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


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
class Target:
    """Where the AWS calls of one task go: region, role and the STS session name."""

    region: str | None
    role_arn: str | None
    session_name: str

    @classmethod
    def of(cls, task: Task, args: SageMakerArgs) -> Target:
        """Where `task`'s calls go: `region`, else the region of the pipeline (or execution) ARN."""
        arn = PIPELINE_ARN.match(args.execution_arn if args.action == "stop" else args.pipeline)
        region = args.region or (arn.group("region") if arn else "")
        return cls(
            region or None, args.role_arn or None, aws.session_name(task.workflow_name, task.namespace)
        )

    def client(self, *, max_attempts: int = aws.MAX_ATTEMPTS) -> Any:
        """A cached SageMaker client for this target (`argoplug.aws.client`), `max_attempts` tries a call."""
        return aws.client(
            "sagemaker",
            region=self.region,
            role_arn=self.role_arn,
            session_name=self.session_name,
            max_attempts=max_attempts,
        )


class ExecutionJob:
    """One task's pipeline execution, as a `argoplug.jobs.ExternalJob`."""

    def __init__(self, target: Target, runtime: Runtime, args: SageMakerArgs, task: Task) -> None:
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
            outputs={**EMPTY_EXECUTION, "execution-arn": arn, "execution-status": "Executing"},
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


class StopJob:
    """Stopping one execution, as a `argoplug.jobs.ExternalJob`: Succeeded once it is Stopped."""

    def __init__(self, target: Target, runtime: Runtime, execution_arn: str) -> None:
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


def _steps(target: Target, runtime: Runtime, execution_arn: str) -> list[dict[str, str]]:
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
