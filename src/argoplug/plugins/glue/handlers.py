"""The `glue-job` plugin: validate an AWS Glue job, or run it and wait for the job run, found again after a
restart by an argument named from the task's idempotency key (Glue's StartJobRun takes no client token).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from argoplug import aws
from argoplug.jobs import JobState, JobStatus
from argoplug.plugin import PermanentError, Plugin, Result, Task
from argoplug.plugins.aws_common import (
    AwsTarget,
    Trackers,
    check_account,
    common_problems,
    outputs_of_action,
    poll_problems,
    poll_seconds,
    with_outputs,
)
from argoplug.protocol import encode_parameter_value

__all__ = [
    "EMPTY_RUN",
    "EMPTY_VALIDATE",
    "KEY",
    "TASK_ARGUMENT",
    "GlueJobArgs",
    "GlueRunJob",
    "glue_plugin",
    "run_glue",
    "use_tracker",
]

log = logging.getLogger("argoplug.plugins.glue")

KEY = "glue-job"
# The job run argument that names the task and attempt (`<key>-<attempt>`): how `find` finds a run again.
# Glue passes every `--name` argument to the job's script, which ignores the ones it does not read
# (awsglue.utils.getResolvedOptions reads only the names it is asked for).
TASK_ARGUMENT = "--argoplug-task"
# GetJobRun's JobRunState values (Glue API, "JobRun"): still going, or ended.
_RUNNING = frozenset({"STARTING", "RUNNING", "STOPPING", "WAITING"})
_FAILED = frozenset({"FAILED", "ERROR", "TIMEOUT", "STOPPED", "EXPIRED"})
# GetJobRuns: 200 runs a page (Glue's maximum), newest first; `find` reads at most 5 pages.
_PAGE_SIZE = 200
_FIND_PAGES = 5
EMPTY_RUN: Mapping[str, str] = {
    "job-run-id": "",
    "job-run-state": "",
    "error-message": "",
    "execution-time": "",
}
EMPTY_VALIDATE: Mapping[str, str] = {"job-name": "", "glue-version": ""}


class GlueJobArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The `glue-job` plugin block.

    - `action`: `validate` (GetJob) or `execute` (StartJobRun, then GetJobRun until the run ends).
    - `job_name`: the Glue job's name.
    - `arguments`: the run's Arguments (name → value; a name without the leading `--` gets it; values that
      are not strings are JSON-encoded), over the job's DefaultArguments.
    - `region`, `account_id` (12 digits, checked against the caller's account), `role_arn` (assumed
      first), `wait` (default true; false succeeds once the run started), `poll` (the longest requeue,
      seconds or a Go duration, default 60 s), `cancel_on_stop` (BatchStopJobRun of a run still going
      when the sidecar stops; default true).
    """

    action: Literal["validate", "execute"] = "execute"
    job_name: str = ""
    arguments: dict[str, Any] = {}
    region: str = ""
    account_id: str | int = ""
    role_arn: str = ""
    wait: bool = True
    poll: float | str = 60.0
    cancel_on_stop: bool = True


def argument_problems(args: GlueJobArgs, unconverted: frozenset[str] = frozenset()) -> list[str]:
    """What is wrong with a `glue-job` block beyond its types (fields that did not convert left out)."""
    problems = []
    if not args.job_name and "job_name" not in unconverted:
        problems.append(f"`job_name` is required for action {args.action!r}")
    if TASK_ARGUMENT in _arguments(args.arguments):
        problems.append(
            f"`arguments`: {TASK_ARGUMENT} is argoplug's (it finds the run again after a restart)"
        )
    return problems + common_problems(args.account_id, args.role_arn) + poll_problems(args.poll)


glue_plugin: Plugin[GlueJobArgs] = Plugin(
    KEY,
    args=GlueJobArgs,
    check=argument_problems,
    failure_outputs=outputs_of_action(EMPTY_VALIDATE, EMPTY_RUN),
    description=(
        "Validates and runs AWS Glue jobs: starts one job run per task (found again after a restart by its "
        "--argoplug-task argument, never started twice), waits for it with a backing-off requeue and "
        "reports its id, state, error message and execution time."
    ),
)
_trackers = Trackers()
use_tracker = _trackers.use


@glue_plugin.handler
def run_glue(task: Task, args: GlueJobArgs) -> Result:
    """Advance `task` by one call: validate the job (GetJob) or run it.

    execute: find the task's run (GetJobRuns, by its `--argoplug-task` argument) or start it (StartJobRun),
    then GetJobRun: STARTING/RUNNING/STOPPING/WAITING → Running with a requeue (5 s doubling up to `poll`),
    SUCCEEDED → Succeeded, FAILED/ERROR/TIMEOUT/STOPPED/EXPIRED → Failed with Glue's ErrorMessage. Outputs
    `job-run-id`, `job-run-state`, `error-message`, `execution-time` (seconds). Raises TemporaryError
    (throttling, 5xx, connection trouble), PermanentError (access denied, a missing job, another
    account: Failed with AWS's message) and `aws.AwsSetupError` (no credentials or region: Error).
    """

    def run() -> Result:
        target = AwsTarget.of(task, region=args.region, role_arn=args.role_arn)
        with aws.translated_errors():
            check_account(args.account_id, target, f"Glue job {args.job_name}")
            glue = target.client("glue")
            if args.action == "validate":
                job = glue.get_job(JobName=args.job_name)["Job"]
                outputs = {
                    "job-name": str(job.get("Name") or ""),
                    "glue-version": str(job.get("GlueVersion") or ""),
                }
                return Result.succeeded(f"Glue job {args.job_name} exists", outputs=outputs)
            job_run = GlueRunJob(glue, args)
            return _trackers.tracker.run(
                task.key, job_run, max_delay=poll_seconds(args.poll), cancel_on_stop=args.cancel_on_stop
            )

    return with_outputs(EMPTY_VALIDATE if args.action == "validate" else EMPTY_RUN, run)


class GlueRunJob:
    """One task's Glue job run, as a `argoplug.jobs.CancellableJob`."""

    def __init__(self, glue: Any, args: GlueJobArgs) -> None:
        self.glue = glue
        self.job_name = args.job_name
        self.wait = args.wait
        self.arguments = _arguments(args.arguments)

    def find(self, key: str) -> JobState | None:
        """GetJobRuns, newest first, 200 a page, at most 1,000 runs: the latest run of `key`'s attempts."""
        pattern = re.compile(rf"^{re.escape(key)}-(\d+)$")
        request: dict[str, Any] = {"JobName": self.job_name, "MaxResults": _PAGE_SIZE}
        found: tuple[int, Mapping[str, Any]] | None = None
        with aws.translated_errors():
            for _ in range(_FIND_PAGES):
                page = self.glue.get_job_runs(**request)
                for job_run in page.get("JobRuns") or []:
                    match = pattern.match(str((job_run.get("Arguments") or {}).get(TASK_ARGUMENT, "")))
                    if match and (found is None or int(match.group(1)) > found[0]):
                        found = (int(match.group(1)), job_run)
                if found is not None or not page.get("NextToken"):
                    break
                request["NextToken"] = page["NextToken"]
        if found is None:
            return None
        log.info("found Glue job run %s (attempt %d) of task %s", found[1].get("Id"), found[0], key)
        return self._state(found[1], found[0])

    def start(self, key: str, attempt: int) -> JobState:
        """StartJobRun with the task's argument `--argoplug-task <key>-<attempt>`."""
        arguments = {**self.arguments, TASK_ARGUMENT: f"{key}-{attempt}"}
        with aws.translated_errors():
            run_id = str(self.glue.start_job_run(JobName=self.job_name, Arguments=arguments)["JobRunId"])
        log.info("started Glue job run %s of job %s", run_id, self.job_name)
        started = JobState(
            ref=run_id,
            status=JobStatus.RUNNING if self.wait else JobStatus.SUCCEEDED,
            message=f"Glue job run {run_id} of {self.job_name} started",
            outputs={**EMPTY_RUN, "job-run-id": run_id, "job-run-state": "STARTING"},
            attempt=attempt,
        )
        return started

    def poll(self, state: JobState) -> JobState:
        """GetJobRun of the run `state` names."""
        with aws.translated_errors():
            job_run = self.glue.get_job_run(JobName=self.job_name, RunId=state.ref)["JobRun"]
        return self._state(job_run, state.attempt)

    def cancel(self, state: JobState) -> str:
        """BatchStopJobRun of the run `state` names (the sidecar is stopping); its errors are raised."""
        with aws.translated_errors():
            answer = self.glue.batch_stop_job_run(JobName=self.job_name, JobRunIds=[state.ref])
        errors = answer.get("Errors") or []
        if errors:
            detail = errors[0].get("ErrorDetail") or {}
            raise PermanentError(f"BatchStopJobRun: {detail.get('ErrorCode')}: {detail.get('ErrorMessage')}")
        return f"asked Glue job run {state.ref} of {self.job_name} to stop"

    def _state(self, job_run: Mapping[str, Any], attempt: int) -> JobState:
        run_id, state = str(job_run.get("Id") or ""), str(job_run.get("JobRunState") or "")
        error = str(job_run.get("ErrorMessage") or "")
        seconds = job_run.get("ExecutionTime")
        outputs = {
            "job-run-id": run_id,
            "job-run-state": state,
            "error-message": error,
            "execution-time": encode_parameter_value(seconds) if seconds is not None else "",
        }
        if state == "SUCCEEDED" or (not self.wait and state not in _FAILED):
            status, message = JobStatus.SUCCEEDED, f"Glue job run {run_id} of {self.job_name} {state}"
        elif state in _FAILED:
            status = JobStatus.FAILED
            message = f"Glue job run {run_id} of {self.job_name} {state}" + (f": {error}" if error else "")
        else:
            status, message = JobStatus.RUNNING, f"Glue job run {run_id} of {self.job_name} is {state}"
        return JobState(ref=run_id, status=status, message=message, outputs=outputs, attempt=attempt)


def _arguments(given: Mapping[str, Any]) -> dict[str, str]:
    """Glue's Arguments: `--name` → text (JSON for values that are not strings)."""
    return {
        (name if name.startswith("--") else f"--{name}"): encode_parameter_value(value)
        for name, value in given.items()
    }
