"""What the AWS plugins for Glue, Step Functions and Lambda share: where a task's calls go, the account
check, every output on a failed node, and large outputs kept within what a node may carry.

boto3 is imported on the first AWS call (`argoplug.aws`), never at import.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from argoplug import aws
from argoplug.jobs import JobTracker
from argoplug.plugin import PermanentError, Result, Task
from argoplug.protocol import Phase, parse_duration

__all__ = [
    "MAX_OUTPUT_BYTES",
    "MAX_POLL",
    "AwsTarget",
    "Trackers",
    "check_account",
    "common_problems",
    "duration_seconds",
    "joined",
    "large_output",
    "outputs_of_action",
    "poll_problems",
    "poll_seconds",
    "with_outputs",
]

log = logging.getLogger("argoplug.plugins.aws")

# A node's outputs travel in the WorkflowTaskSet's status, then in the Workflow object, both bounded by
# etcd's request limit (1.5 MiB by default; Argo says "request is too large", util/kube/errors/errors.go)
# shared by every node: one output above this is left out, and the node's message says so. Step Functions
# caps an execution's output at 256 KiB too (DescribeExecution).
MAX_OUTPUT_BYTES = 256 * 1024

# The longest `poll` (seconds): the requeue doubles up to it, and Go durations end near 292 years.
MAX_POLL = 86_400.0

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
_ACCOUNT = re.compile(r"^\d{12}$")


AWF_AWS_KEY = "awf-aws-plugin"  # the published awf-aws plugin's key, served by the SageMaker plugin


@dataclasses.dataclass(frozen=True, slots=True)
class AwsTarget:
    """Where a task's AWS calls go: the region (None: the sidecar's), a role to assume first, and the STS
    session name (`argo-<namespace>-<workflow>`, so CloudTrail shows the workflow)."""

    region: str | None
    role_arn: str | None
    session_name: str
    # Whether the task's block may name a role_arn: not under the awf-aws key, whose blocks have none.
    can_assume: bool = True

    @classmethod
    def of(cls, task: Task, *, region: str = "", role_arn: str = "") -> AwsTarget:
        session = aws.session_name(task.workflow_name, task.namespace)
        return cls(region or None, role_arn or None, session, task.plugin_key != AWF_AWS_KEY)

    def client(self, service: str, **options: Any) -> Any:
        """A cached boto3 client for `service` (`argoplug.aws.client`; `options`: e.g. `read_timeout`)."""
        return aws.client(
            service, region=self.region, role_arn=self.role_arn, session_name=self.session_name, **options
        )

    def account(self) -> str:
        """The 12-digit account of the credentials the calls use (STS GetCallerIdentity, cached)."""
        return aws.caller_account(region=self.region, role_arn=self.role_arn, session_name=self.session_name)


class Trackers:
    """The JobTracker a plugin's handler runs its jobs through (`tracker`); `use` replaces it."""

    def __init__(self) -> None:
        self.tracker = JobTracker()

    def use(self, tracker: JobTracker | None = None) -> JobTracker:
        """Use `tracker` (a fresh JobTracker by default: what a restarted sidecar has) and return it."""
        self.tracker = tracker if tracker is not None else JobTracker()
        return self.tracker


def poll_problems(value: float | str) -> list[str]:
    """The problem with a `poll` argument (`poll_seconds`), as a list of at most one message."""
    try:
        poll_seconds(value)
    except ValueError as exc:
        return [f"`poll`: {exc}"]
    return []


def common_problems(
    account_id: str | int, role_arn: str, *, names: Mapping[str, str] | None = None
) -> list[str]:
    """What is wrong with the `account_id` and `role_arn` arguments, named as the block writes them."""
    names = names or {}
    problems = []
    if account_id != "" and not _ACCOUNT.match(aws.account_id(account_id)):
        problems.append(f"`{names.get('account_id', 'account_id')}`: expected 12 digits, got {account_id!r}")
    if role_arn and not _ROLE_ARN.match(role_arn):
        problems.append(
            f"`{names.get('role_arn', 'role_arn')}`: expected an IAM role ARN like "
            f"arn:aws:iam::<account>:role/<name>, got {role_arn!r}"
        )
    return problems


def _account_problem(expected: str, found: str, subject: str, source: str, can_assume: bool) -> str:
    """The message of a resource (or caller) in another account than the block's `account_id`; the fix
    it advises is one the block's plugin key offers (the awf-aws key has no role_arn)."""
    fix = (
        f"set role_arn to a role in account {expected}"
        if can_assume
        else f"give the sidecar credentials of account {expected} (e.g. its ServiceAccount's IAM role; the "
        f"{AWF_AWS_KEY} key has no role_arn: the sagemaker-pipelines key has)"
    )
    return (
        f"{subject} is in AWS account {found} ({source}), not in account_id {expected}: {fix}, or correct "
        "account_id"
    )


def check_account(account_id: str | int, target: AwsTarget, subject: str, arn_account: str = "") -> str:
    """Raise PermanentError when `subject` is not in `account_id`; return the account it is in ("" unchecked).

    `arn_account`: the account of the subject's ARN when it was given as one; else the account of the
    sidecar's credentials (STS GetCallerIdentity, after assuming `role_arn` if set) is the subject's.
    """
    if account_id == "":
        return arn_account
    expected = aws.account_id(account_id)
    if arn_account:
        found, source = arn_account, "by its ARN"
    else:
        found = target.account()
        source = "the account of the sidecar's AWS credentials (STS GetCallerIdentity"
        source += f" after assuming {target.role_arn})" if target.role_arn else ")"
    if found != expected:
        raise PermanentError(_account_problem(expected, found, subject, source, target.can_assume))
    return found


def with_outputs(empty: Mapping[str, Any], run: Callable[[], Result]) -> Result:
    """Run `run`, giving a Failed or Error node without outputs every output in `empty`, empty.

    The final reply replaces the node's outputs: a consumer (`continueOn`) resolves them only if each is
    there. Missing AWS credentials or region (`aws.AwsSetupError`) are an Error node saying how to give
    them, logged once per call.
    """
    try:
        return run()
    except PermanentError as exc:
        if exc.outputs:
            raise
        raise type(exc)(exc.message, outputs=empty) from exc
    except aws.AwsSetupError as exc:
        log.warning("AWS is not set up for the sidecar: %s", exc)
        return Result(Phase.ERROR, f"{type(exc).__name__}: {exc}", outputs=empty)


def outputs_of_action(
    validate: Mapping[str, str], execute: Mapping[str, str]
) -> Callable[[Any], Mapping[str, str]]:
    """A Plugin's `failure_outputs`: the block's `validate` outputs for action validate, else `execute`'s."""

    def outputs(block: Any) -> Mapping[str, str]:
        action = block.get("action") if isinstance(block, Mapping) else None
        return validate if action == "validate" else execute

    return outputs


def large_output(name: str, value: Any, notes: list[str]) -> str:
    """`value` as output text (JSON unless already text), or "" with a note when over MAX_OUTPUT_BYTES."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    size = len(text.encode())
    if size > MAX_OUTPUT_BYTES:
        notes.append(f"output {name} left out: {size} bytes, over {MAX_OUTPUT_BYTES // 1024} KiB")
        return ""
    return text


def joined(parts: Sequence[str]) -> str:
    """Non-empty parts joined with '; ' (a message and its notes)."""
    return "; ".join(part for part in parts if part)


def duration_seconds(value: float | str, *, maximum: float) -> float:
    """Seconds of a duration argument: a number, a numeric string ("30") or a Go duration ("2m").

    Raises ValueError unless it is above 0 and at most `maximum` seconds (said in hours).
    """
    if isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            seconds = parse_duration(value.strip())
    else:
        seconds = float(value)
    if not 0 < seconds <= maximum:  # also refuses nan
        raise ValueError(
            f"expected a duration > 0 and at most {maximum / 3600:g}h (seconds or e.g. '2m'), got {value!r}"
        )
    return seconds


def poll_seconds(value: float | str) -> float:
    """Seconds of a `poll` value (`duration_seconds`); ValueError unless above 0 and at most `MAX_POLL`
    (a day)."""
    return duration_seconds(value, maximum=MAX_POLL)
