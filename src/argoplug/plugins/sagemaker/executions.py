"""Pipeline executions as `argoplug.jobs.ExternalJob`s: executing a pipeline and stopping an execution.

Where a task's AWS calls go (`Target`), how an execution is named, and how a DescribePipelineExecution
response becomes a `JobState` with the node's outputs. `handlers` runs these jobs through the tracker.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from argoplug import aws
from argoplug.jobs import JobState, JobStatus, JobTracker
from argoplug.plugin import PermanentError, Task, TemporaryError
from argoplug.plugins.sagemaker.args import PIPELINE_ARN, SageMakerArgs
from argoplug.protocol import encode_parameter_value

__all__ = [
    "CALL_SECONDS",
    "EMPTY_EXECUTION",
    "FIND_LIMIT",
    "Budget",
    "ExecutionJob",
    "Runtime",
    "StopJob",
    "Target",
    "client_request_token",
    "execution_display_name",
]

log = logging.getLogger("argoplug.plugins.sagemaker")

# AWS limits (botocore's sagemaker model): PipelineExecutionName, IdempotencyToken, MaxResults of the
# List calls.
_DISPLAY_NAME_MAX = 82
_PAGE_SIZE = 100
# `ExecutionJob.find` reads at most this many of the pipeline's executions, newest first.
FIND_LIMIT = 1000

# The AWS time of one handler call, by construction. One request takes at most aws.REQUEST_SECONDS (6 s).
# A call needs at most two requests to make progress: ListPipelineExecutions' first page, then
# StartPipelineExecution or DescribePipelineExecution of the execution found; or a Describe, then
# StopPipelineExecution: 2 × 6 = 12 s. Every other request (further pages, the Describe right after a
# start or a stop, ListPipelineExecutionSteps) is sent only if it, and the needed request after it, fit
# in what is left of CALL_SECONDS even at their worst (`Budget`): further pages only in the first
# 15 - 2 × 6 = 3 s of a call, the others in its first 9 s. So a call spends at most 15 s on AWS (typically
# well under 1 s), inside the server's 20 s handler deadline. Not counted: STS on a cold cache (AssumeRole,
# GetCallerIdentity, 6 s each, once per process and hourly for an assumed role), a rare overrun that the
# server's deadline absorbs (it answers Running and hands the result to the task's next call).
CALL_SECONDS = 15.0

_RUNNING = frozenset({"Executing", "Stopping"})
_FAILED = frozenset({"Failed", "Stopped"})
_ENDED = _FAILED | {"Succeeded"}

EMPTY_EXECUTION: Mapping[str, Any] = {
    "pipeline-arn": "",
    "execution-arn": "",
    "execution-status": "",
    "failure-reason": "",
    "steps": [],
}


@dataclasses.dataclass(slots=True)
class Runtime:
    """What the plugins share: the tracker of their jobs, the clock of their budgets (monotonic seconds)
    and the once-only warning about the steps."""

    tracker: JobTracker
    clock: Callable[[], float] = time.monotonic
    steps_warned: bool = False
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


class Budget:
    """The AWS time of one handler call (`CALL_SECONDS`), counted from its creation on `clock`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, seconds: float = CALL_SECONDS) -> None:
        self.clock = clock
        self.end = clock() + seconds

    def allows(self, requests: int = 1) -> bool:
        """Whether `requests` more AWS requests fit in what is left, each at its worst."""
        return self.clock() + requests * aws.REQUEST_SECONDS <= self.end


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
    """Return the StartPipelineExecution ClientRequestToken of an attempt: 32–128 chars of `[A-Za-z0-9-_]`.

    A function of the task's idempotency key and the attempt only: every call of the task, in this sidecar
    or a restarted one, sends the same token for the same attempt (AWS's idempotency, see `find`)."""
    return f"argoplug-{key}-{attempt}"


def stop_request_token(execution_id: str) -> str:
    """Return the StopPipelineExecution ClientRequestToken of a stop on SIGTERM, from the execution's id."""
    return f"argoplug-sigterm-stop-{execution_id}"[:128]


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

    def client(self) -> Any:
        """A cached SageMaker client for this target (`argoplug.aws.client`)."""
        return aws.client(
            "sagemaker", region=self.region, role_arn=self.role_arn, session_name=self.session_name
        )


class ExecutionJob:
    """One task's pipeline execution, as a `argoplug.jobs.ExternalJob`, for one handler call (`budget`)."""

    def __init__(
        self, target: Target, runtime: Runtime, args: SageMakerArgs, task: Task, budget: Budget
    ) -> None:
        self.target = target
        self.runtime = runtime
        self.budget = budget
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
        """Find the task's latest attempt among the pipeline's most recent executions, by display name.

        ListPipelineExecutions, newest first, 100 a page (AWS's maximum), at most `FIND_LIMIT` (1,000)
        executions, and a further page only while the call's budget holds it and the request after it;
        then `poll`. When that Describe hits passing trouble (TemporaryError), the execution found is
        running with the outputs its summary gives (ARNs, status, failure reason; steps `[]`): the reply
        keeps the execution's ARN that a sidecar before a restart reported, and the next call polls it.
        Why the newest are enough: `find` runs on a task's first call in this sidecar's memory, so an
        execution of the task, if any, was started during this workflow (by a call before the sidecar
        restarted), hence among the pipeline's latest, unless over 1,000 (or, AWS being slow, over the
        pages read) were started since. Missing it then is no second execution for attempt 1: its
        StartPipelineExecution carries a deterministic ClientRequestToken (`client_request_token`), an
        idempotency token. botocore's SageMaker model marks the member `idempotencyToken` (32-128
        characters), and the API reference (docs.aws.amazon.com/sagemaker/latest/dg/
        API_StartPipelineExecution.html) says "A unique, case-sensitive identifier that you provide to
        ensure the idempotency of the operation. An idempotent operation completes no more than once."
        It does not say what a repeat returns (AWS's idempotent APIs return the first call's result, the
        same execution ARN) nor how long AWS remembers a token; moto ignores it. Missing a later attempt
        n > 1 would report attempt 1's execution again (its token gives it back), and the retry after
        that gets attempt 2's back the same way: no execution is started twice on AWS.
        """
        pattern = re.compile(rf"(?:^|-){re.escape(key)}-(\d+)$")
        found: tuple[int, Mapping[str, Any]] | None = None
        request: dict[str, Any] = {
            "PipelineName": self.pipeline,
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": _PAGE_SIZE,
        }
        seen = 0
        with aws.translated_errors():
            while True:
                page = self.sm.list_pipeline_executions(**request)
                summaries = page.get("PipelineExecutionSummaries") or []
                for summary in summaries[: FIND_LIMIT - seen]:
                    match = pattern.search(str(summary.get("PipelineExecutionDisplayName") or ""))
                    if match and (found is None or int(match.group(1)) > found[0]):
                        found = (int(match.group(1)), summary)
                seen += len(summaries)
                token = page.get("NextToken")
                # Newest first: once found, later pages hold only older attempts.
                if found is not None or not token or seen >= FIND_LIMIT:
                    break
                if not self.budget.allows(2):  # the next page, then the start or describe after it
                    log.warning(
                        "searched the %d most recent executions of pipeline %s for task %s, no time for "
                        "more: taking it as not started",
                        seen,
                        self.pipeline,
                        key,
                    )
                    break
                request["NextToken"] = token
        if found is None:
            return None
        attempt, summary = found
        arn = str(summary["PipelineExecutionArn"])
        log.info("found pipeline execution %s (attempt %d) of task %s", arn, attempt, key)
        try:
            return self.poll(JobState(ref=arn, status=JobStatus.RUNNING, attempt=attempt))
        except TemporaryError as exc:
            # Found but not described: running with what the list says (the tracker keeps the ARN, and the
            # Running reply the outputs an earlier sidecar reported), described on the next call.
            return _summary_state(summary, attempt, exc.message)

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
        if not self.budget.allows(1):
            return started  # described on the next call
        try:
            return self.poll(started)
        except TemporaryError:
            # Started but not described yet: keep the ARN (the tracker remembers it) and describe later.
            return started

    def poll(self, state: JobState) -> JobState:
        """DescribePipelineExecution (and ListPipelineExecutionSteps) of the attempt `state` names."""
        described = _describe(self.sm, state.ref)
        steps = _steps(self.sm, self.runtime, self.budget, state.ref)
        return _execution_state(described, steps, state.attempt, wait=self.wait)

    def cancel(self, state: JobState) -> str:
        """StopPipelineExecution of the attempt `state` names: the sidecar is stopping (`argoplug.jobs`).

        Its ClientRequestToken is `stop_request_token`. An execution that ended meanwhile answers
        ConflictException, raised as PermanentError (logged: nothing was left to stop).
        """
        name = state.ref.rsplit("/", 1)[-1]
        with aws.translated_errors():
            self.sm.stop_pipeline_execution(
                PipelineExecutionArn=state.ref, ClientRequestToken=stop_request_token(name)
            )
        return f"asked pipeline execution {state.ref} to stop"


class StopJob:
    """Stopping one execution, as a `argoplug.jobs.ExternalJob`: Succeeded once it is Stopped."""

    def __init__(self, target: Target, runtime: Runtime, execution_arn: str, budget: Budget) -> None:
        self.target = target
        self.runtime = runtime
        self.budget = budget
        self.execution_arn = execution_arn
        self.sm = target.client()

    def find(self, key: str) -> JobState | None:
        """DescribePipelineExecution: None while it is Executing (not asked to stop, as far as AWS says)."""
        described = _describe(self.sm, self.execution_arn)
        if described.get("PipelineExecutionStatus") == "Executing":
            return None
        return self._state(described, 1)

    def start(self, key: str, attempt: int) -> JobState:
        """StopPipelineExecution, then DescribePipelineExecution (this call or the next)."""
        try:
            with aws.translated_errors():
                self.sm.stop_pipeline_execution(
                    PipelineExecutionArn=self.execution_arn,
                    ClientRequestToken=f"argoplug-{key}-stop-{attempt}",
                )
        except PermanentError as exc:
            # ConflictException when it stopped or ended meanwhile: the description says which.
            if not self.budget.allows(1):
                raise TemporaryError(
                    f"{exc.message}; checking the execution's status next call", delay=5.0
                ) from exc
            described = _describe(self.sm, self.execution_arn)
            if described.get("PipelineExecutionStatus") == "Executing":
                raise
            return self._state(described, attempt)
        log.info("asked pipeline execution %s to stop", self.execution_arn)
        if not self.budget.allows(1):
            name = self.execution_arn.rsplit("/", 1)[-1]
            return JobState(
                ref=self.execution_arn,
                status=JobStatus.RUNNING,
                message=f"asked pipeline execution {name} to stop",
                outputs={**EMPTY_EXECUTION, "execution-arn": self.execution_arn},
                attempt=attempt,
            )
        return self._state(_describe(self.sm, self.execution_arn), attempt)

    def poll(self, state: JobState) -> JobState:
        """DescribePipelineExecution: Stopped → succeeded; Executing/Stopping → running; ended → succeeded."""
        return self._state(_describe(self.sm, state.ref), state.attempt)

    def _state(self, described: Mapping[str, Any], attempt: int) -> JobState:
        steps = _steps(self.sm, self.runtime, self.budget, str(described.get("PipelineExecutionArn") or ""))
        current = _execution_state(described, steps, attempt, wait=True)
        status = current.outputs["execution-status"]
        name = _display(described)
        if steps is None and status in _ENDED:
            return current  # running until its steps are read, next call
        if status == "Stopped":
            return dataclasses.replace(current, status=JobStatus.SUCCEEDED)
        if status in ("Succeeded", "Failed"):
            message = f"pipeline execution {name} already {status}; nothing to stop"
            return dataclasses.replace(current, status=JobStatus.SUCCEEDED, message=message)
        return dataclasses.replace(
            current, status=JobStatus.RUNNING, message=f"pipeline execution {name} {status}"
        )


def _summary_state(summary: Mapping[str, Any], attempt: int, trouble: str) -> JobState:
    """A running JobState of a ListPipelineExecutions summary: the outputs it gives (the pipeline's ARN is
    the execution's up to `/execution/`; a failure reason only of a Failed or Stopped execution: moto
    gives others "None"), steps `[]`; its message says it is described on the next call, and `trouble`
    (why it was not described now)."""
    arn = str(summary.get("PipelineExecutionArn") or "")
    status = str(summary.get("PipelineExecutionStatus") or "")
    pipeline_arn, separator, _ = arn.partition("/execution/")
    reason = summary.get("PipelineExecutionFailureReason") if status in _FAILED else ""
    outputs = {
        **EMPTY_EXECUTION,
        "pipeline-arn": pipeline_arn if separator else "",
        "execution-arn": arn,
        "execution-status": status,
        "failure-reason": str(reason or ""),
    }
    name = str(summary.get("PipelineExecutionDisplayName") or arn.rsplit("/", 1)[-1])
    message = f"pipeline execution {name} found ({status or 'status unknown'}); describing it next call"
    message += f": {trouble}" if trouble else ""
    return JobState(arn, JobStatus.RUNNING, message, outputs, attempt)


def _describe(sm: Any, execution_arn: str) -> Mapping[str, Any]:
    with aws.translated_errors():
        described: Mapping[str, Any] = sm.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
    return described


def _display(described: Mapping[str, Any]) -> str:
    arn = str(described.get("PipelineExecutionArn") or "")
    return str(described.get("PipelineExecutionDisplayName") or arn.rsplit("/", 1)[-1])


def _execution_state(
    described: Mapping[str, Any], steps: list[dict[str, str]] | None, attempt: int, *, wait: bool
) -> JobState:
    """Map a DescribePipelineExecution response to a JobState with the node's outputs.

    `steps` None (not read, for want of time in this call): an execution that ended stays running, so
    that its final outputs, read on the next call, hold its steps.
    """
    arn = str(described.get("PipelineExecutionArn") or "")
    status = str(described.get("PipelineExecutionStatus") or "")
    reason = str(described.get("FailureReason") or "")
    name = _display(described)
    outputs = {
        "pipeline-arn": str(described.get("PipelineArn") or ""),
        "execution-arn": arn,
        "execution-status": status,
        "failure-reason": reason,
        "steps": steps or [],
    }
    if steps is None and status in _ENDED:
        message = f"pipeline execution {name} {status}; reading its steps"
        return JobState(arn, JobStatus.RUNNING, message, outputs, attempt)
    steps = steps or []
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


def _steps(sm: Any, runtime: Runtime, budget: Budget, execution_arn: str) -> list[dict[str, str]] | None:
    """ListPipelineExecutionSteps as [{name, status, failure_reason}], oldest first; None when the call's
    budget has no room for a page; [] when it fails.

    The steps are a convenience: the phase never depends on them, so any failure (moto does not
    implement the call) gives [] and one warning per tracker. No retries: a failure costs one round trip.
    """
    steps: list[dict[str, str]] = []
    request: dict[str, Any] = {
        "PipelineExecutionArn": execution_arn,
        "SortOrder": "Ascending",
        "MaxResults": _PAGE_SIZE,
    }
    try:
        while True:
            if not budget.allows(1):
                return None
            page = sm.list_pipeline_execution_steps(**request)
            steps.extend(
                {
                    "name": str(step.get("StepName") or ""),
                    "status": str(step.get("StepStatus") or ""),
                    "failure_reason": str(step.get("FailureReason") or ""),
                }
                for step in page.get("PipelineExecutionSteps") or []
            )
            if not page.get("NextToken"):
                return steps
            request["NextToken"] = page["NextToken"]
    except Exception as exc:  # whatever it is, the execution's phase must not depend on it
        with runtime.lock:
            warn, runtime.steps_warned = not runtime.steps_warned, True
        if warn:
            text = (str(exc).strip().splitlines() or [""])[0]
            log.warning(
                "ListPipelineExecutionSteps failed, reporting steps as []: %s: %s", type(exc).__name__, text
            )
        return []
