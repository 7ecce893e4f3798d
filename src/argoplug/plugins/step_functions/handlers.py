"""The `step-functions` plugin: validate an AWS Step Functions state machine, or run it and wait for the
execution, named from the task's idempotency key so that it is never started twice.
"""

from __future__ import annotations

import json
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
    joined,
    large_output,
    outputs_of_action,
    poll_problems,
    poll_seconds,
    with_outputs,
)

__all__ = [
    "EMPTY_EXECUTION",
    "EMPTY_VALIDATE",
    "KEY",
    "STATE_MACHINE_ARN",
    "StateMachineExecution",
    "StepFunctionsArgs",
    "execution_name",
    "run_step_functions",
    "step_functions_plugin",
    "use_tracker",
]

log = logging.getLogger("argoplug.plugins.step_functions")

KEY = "step-functions"
STATE_MACHINE_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):states:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):stateMachine:"
    r"(?P<name>[A-Za-z0-9_-]{1,80})$"
)
# DescribeExecution's status values (Step Functions API, "DescribeExecution").
_RUNNING = frozenset({"RUNNING", "PENDING_REDRIVE"})
_FAILED = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
EMPTY_EXECUTION: Mapping[str, str] = {
    "execution-arn": "",
    "execution-status": "",
    "error": "",
    "cause": "",
    "output": "",
}
EMPTY_VALIDATE: Mapping[str, str] = {"state-machine-arn": "", "state-machine-status": ""}
# The error and cause StopExecution records when the sidecar stops (each at most 256/32,768 characters).
_STOP_ERROR = "argoplug.SidecarStopped"


class StepFunctionsArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The `step-functions` plugin block.

    - `action`: `validate` (DescribeStateMachine) or `execute` (StartExecution, then DescribeExecution
      until it ends).
    - `state_machine`: the state machine's name or ARN. A name is completed with `region` (or the sidecar's)
      and `account_id` (or the caller's, STS GetCallerIdentity) into its ARN.
    - `input`: the execution's input, a JSON object (or JSON text); default `{}`.
    - `region`, `account_id`, `role_arn`, `wait` (default true; false succeeds once started), `poll` (the
      longest requeue, default 60 s), `cancel_on_stop` (StopExecution of an execution still running when
      the sidecar stops; default true).
    """

    action: Literal["validate", "execute"] = "execute"
    state_machine: str = ""
    input: dict[str, Any] | list[Any] | str = {}
    region: str = ""
    account_id: str | int = ""
    role_arn: str = ""
    wait: bool = True
    poll: float | str = 60.0
    cancel_on_stop: bool = True


def argument_problems(args: StepFunctionsArgs, unconverted: frozenset[str] = frozenset()) -> list[str]:
    """What is wrong with a `step-functions` block beyond its types (fields that did not convert left out)."""
    problems = []
    if not args.state_machine and "state_machine" not in unconverted:
        problems.append(f"`state_machine` is required for action {args.action!r}")
    elif args.state_machine.startswith("arn:") and not STATE_MACHINE_ARN.match(args.state_machine):
        problems.append(
            "`state_machine`: expected a name or an ARN like "
            f"arn:aws:states:<region>:<account>:stateMachine:<name>, got {args.state_machine!r}"
        )
    elif not args.state_machine.startswith("arn:") and not re.match(
        r"^[A-Za-z0-9_-]{0,80}$", args.state_machine
    ):
        problems.append(
            f"`state_machine`: expected a state machine name (letters, digits, - and _, at most 80), "
            f"got {args.state_machine!r}"
        )
    if isinstance(args.input, str) and "input" not in unconverted:
        try:
            json.loads(args.input)
        except ValueError as exc:
            problems.append(f"`input`: expected a JSON object or JSON text, got {args.input!r} ({exc})")
    return problems + common_problems(args.account_id, args.role_arn) + poll_problems(args.poll)


step_functions_plugin: Plugin[StepFunctionsArgs] = Plugin(
    KEY,
    args=StepFunctionsArgs,
    check=argument_problems,
    failure_outputs=outputs_of_action(EMPTY_VALIDATE, EMPTY_EXECUTION),
    description=(
        "Validates and runs AWS Step Functions state machines: one execution per task, named from the "
        "task (never started twice), waited for with a backing-off requeue; reports its ARN, status, "
        "error, cause and output."
    ),
)
_trackers = Trackers()
use_tracker = _trackers.use


def execution_name(key: str, attempt: int) -> str:
    """The execution's name: `argoplug-<key>-<attempt>` (StartExecution: at most 80 of `[A-Za-z0-9_-]`)."""
    return f"argoplug-{key}-{attempt}"


@step_functions_plugin.handler
def run_step_functions(task: Task, args: StepFunctionsArgs) -> Result:
    """Advance `task` by one call: validate the state machine (DescribeStateMachine) or run it.

    execute: find the task's execution (DescribeExecution of `execution_name`, attempt after attempt) or
    start it (StartExecution with that name: a second start of it is refused by AWS, so none runs twice),
    then DescribeExecution: RUNNING → Running with a requeue, SUCCEEDED → Succeeded with its output,
    FAILED/TIMED_OUT/ABORTED → Failed with its error and cause. Outputs `execution-arn`,
    `execution-status`, `error`, `cause`, `output` (JSON text, left out above 256 KiB). Raises as
    `glue.run_glue` does.
    """

    def run() -> Result:
        target = AwsTarget.of(task, region=args.region, role_arn=args.role_arn)
        with aws.translated_errors():
            match = STATE_MACHINE_ARN.match(args.state_machine)
            account = check_account(
                args.account_id,
                target,
                f"state machine {args.state_machine}",
                match["account"] if match else "",
            )
            sfn = target.client("stepfunctions")
            arn = args.state_machine if match else _arn(sfn, target, args.state_machine, account)
            if args.action == "validate":
                described = sfn.describe_state_machine(stateMachineArn=arn)
                status = str(described.get("status") or "")
                outputs = {"state-machine-arn": arn, "state-machine-status": status}
                if status == "DELETING":
                    raise PermanentError(f"state machine {arn} is being deleted", outputs=outputs)
                return Result.succeeded(f"state machine {arn} is {status or 'present'}", outputs=outputs)
            job = StateMachineExecution(sfn, arn, args)
            return _trackers.tracker.run(
                task.key, job, max_delay=poll_seconds(args.poll), cancel_on_stop=args.cancel_on_stop
            )

    return with_outputs(EMPTY_VALIDATE if args.action == "validate" else EMPTY_EXECUTION, run)


class StateMachineExecution:
    """One task's state machine execution, as a `argoplug.jobs.CancellableJob`."""

    def __init__(self, sfn: Any, state_machine_arn: str, args: StepFunctionsArgs) -> None:
        self.sfn = sfn
        self.state_machine_arn = state_machine_arn
        self.wait = args.wait
        self.input = args.input if isinstance(args.input, str) else json.dumps(args.input)

    def execution_arn(self, key: str, attempt: int) -> str:
        head, _, name = self.state_machine_arn.rpartition(":stateMachine:")
        return f"{head}:execution:{name}:{execution_name(key, attempt)}"

    def find(self, key: str) -> JobState | None:
        """DescribeExecution of attempt 1, 2, ... of `key`: the last that exists, or None."""
        found: Mapping[str, Any] | None = None
        attempt = 0
        while True:
            described = self._describe(self.execution_arn(key, attempt + 1))
            if described is None:
                break
            found, attempt = described, attempt + 1
        if found is None:
            return None
        log.info("found execution %s (attempt %d) of task %s", found.get("executionArn"), attempt, key)
        return self._state(found, attempt)

    def start(self, key: str, attempt: int) -> JobState:
        """StartExecution named `execution_name(key, attempt)`; one that exists already is described."""
        name = execution_name(key, attempt)
        try:
            with aws.translated_errors():
                arn = str(
                    self.sfn.start_execution(
                        stateMachineArn=self.state_machine_arn, name=name, input=self.input
                    )["executionArn"]
                )
        except PermanentError as exc:
            if "ExecutionAlreadyExists" not in exc.message:
                raise
            arn = self.execution_arn(key, attempt)  # started by an earlier call: the name is the task's
        log.info("started execution %s of state machine %s", arn, self.state_machine_arn)
        if not self.wait:
            outputs = {**EMPTY_EXECUTION, "execution-arn": arn, "execution-status": "RUNNING"}
            return JobState(arn, JobStatus.SUCCEEDED, f"execution {name} started", outputs, attempt)
        return self.poll(JobState(arn, JobStatus.RUNNING, attempt=attempt))

    def poll(self, state: JobState) -> JobState:
        """DescribeExecution of the execution `state` names."""
        with aws.translated_errors():
            described = self.sfn.describe_execution(executionArn=state.ref)
        return self._state(described, state.attempt)

    def cancel(self, state: JobState) -> str:
        """StopExecution of the execution `state` names (the sidecar is stopping)."""
        with aws.translated_errors():
            self.sfn.stop_execution(
                executionArn=state.ref,
                error=_STOP_ERROR,
                cause="the argoplug sidecar that started it was stopped (Argo deleted the agent pod)",
            )
        return f"asked execution {state.ref} to stop"

    def _describe(self, arn: str) -> Mapping[str, Any] | None:
        try:
            with aws.translated_errors():
                described: Mapping[str, Any] = self.sfn.describe_execution(executionArn=arn)
                return described
        except PermanentError as exc:
            if "ExecutionDoesNotExist" in exc.message:
                return None
            raise

    def _state(self, described: Mapping[str, Any], attempt: int) -> JobState:
        arn, status = str(described.get("executionArn") or ""), str(described.get("status") or "")
        error, cause = str(described.get("error") or ""), str(described.get("cause") or "")
        notes: list[str] = []
        outputs = {
            "execution-arn": arn,
            "execution-status": status,
            "error": error,
            "cause": large_output("cause", cause, notes),
            "output": large_output("output", described.get("output") or "", notes),
        }
        name = arn.rsplit(":", 1)[-1]
        if status == "SUCCEEDED" or (not self.wait and status not in _FAILED):
            job_status, message = JobStatus.SUCCEEDED, f"execution {name} {status}"
        elif status in _FAILED:
            job_status, message = (
                JobStatus.FAILED,
                f"execution {name} {status}: {joined([error, cause]) or 'no error given'}",
            )
        else:
            job_status, message = JobStatus.RUNNING, f"execution {name} is {status}"
        return JobState(arn, job_status, joined([message, *notes]), outputs, attempt)


def _arn(sfn: Any, target: AwsTarget, name: str, account: str) -> str:
    """The ARN of the state machine `name` in the client's region and `account` (else the caller's)."""
    region = sfn.meta.region_name
    partition = sfn.meta.partition
    return f"arn:{partition}:states:{region}:{account or target.account()}:stateMachine:{name}"
