"""How the AWS sandbox's executions behave: the `execution` of a pipeline, the `job_run` of a Glue job.

moto ends every SageMaker pipeline execution and Glue job run at once, and implements neither
StopPipelineExecution, ListPipelineExecutionSteps nor BatchStopJobRun. For the pipelines and Glue jobs
whose sandbox entry declares how their executions behave, `ScenarioLayer`, a WSGI layer between the
sandbox's HTTP server and moto, counts the polls (DescribePipelineExecution, GetJobRun) and answers with
the status the declaration gives at that point: running for N polls or N seconds, then ending as
declared, or running until stopped. It works on the wire, on the requests and replies of the AWS JSON
protocol as botocore's models define them (not on moto's objects, whose shape changes between moto
releases): moto still starts and stores the executions and answers every other call; the layer rewrites
the status fields of the replies to Describe and List calls of the executions it follows, and answers
StopPipelineExecution, ListPipelineExecutionSteps and BatchStopJobRun for them itself. Everything else
(other pipelines and jobs, other services) passes through untouched.

Step Functions need no such layer: moto runs their state machines (a `Wait` state runs long, a `Fail`
state fails with its Error and Cause, StopExecution aborts).
"""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "DEFAULT_FAILURE_REASON",
    "SandboxExecution",
    "SandboxJobRun",
    "SandboxStep",
    "ScenarioLayer",
    "execution_problems",
    "job_run_problems",
    "summary",
]

# What SageMaker gives a pipeline execution that failed because a step failed.
DEFAULT_FAILURE_REASON = "Step failure: One or multiple steps failed."

_Count = Annotated[int, msgspec.Meta(ge=0)]
_Seconds = Annotated[float, msgspec.Meta(ge=0)]


class SandboxStep(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A step ListPipelineExecutionSteps lists: `Executing` while the execution runs (`Stopping` while it
    stops), then `status` (default Succeeded) and `failure_reason` once it ended."""

    name: str
    status: Literal["Starting", "Executing", "Stopping", "Stopped", "Failed", "Succeeded"] = "Succeeded"
    failure_reason: str = ""


class SandboxExecution(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How every execution of a sandbox pipeline behaves (its `execution` field).

    `Executing` for the first `polls` DescribePipelineExecution calls (default 0), or for `seconds` after
    its start (divided by the sandbox's speed; not both), then `then`: `Succeeded` (default), `Failed`
    (with `failure_reason`, default `DEFAULT_FAILURE_REASON`), `Stopped` (stopped by someone else), or
    `Executing`: until StopPipelineExecution. StopPipelineExecution of a running execution makes it
    `Stopping` for `stopping_polls` Describe calls (default 1), then `Stopped`, as SageMaker does; of an
    ended one, ConflictException. `steps`: what ListPipelineExecutionSteps lists (`SandboxStep`).
    """

    polls: _Count | None = None
    seconds: _Seconds | None = None
    then: Literal["Succeeded", "Failed", "Stopped", "Executing"] = "Succeeded"
    failure_reason: str = ""
    stopping_polls: _Count = 1
    steps: list[SandboxStep] = []


class SandboxJobRun(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How every run of a sandbox Glue job behaves (its `job_run` field).

    `RUNNING` for the first `polls` GetJobRun calls (default 0), or for `seconds` after its start (divided
    by the sandbox's speed; not both), then `then`: `SUCCEEDED` (default), `FAILED`, `ERROR` or `TIMEOUT`
    (with Glue's ErrorMessage `error_message`), `STOPPED` (stopped by someone else), or `RUNNING`: until
    BatchStopJobRun. BatchStopJobRun of a running run makes it `STOPPING` for `stopping_polls` GetJobRun
    calls (default 1), then `STOPPED`. While runs of the job are going, StartJobRun refuses more than the
    job's `max_concurrent_runs` (ConcurrentRunsExceededException), as Glue does.
    """

    polls: _Count | None = None
    seconds: _Seconds | None = None
    then: Literal["SUCCEEDED", "FAILED", "ERROR", "TIMEOUT", "STOPPED", "RUNNING"] = "SUCCEEDED"
    error_message: str = ""
    stopping_polls: _Count = 1


@dataclasses.dataclass(frozen=True, slots=True)
class _Words:
    """A service's status names: running, stopping, stopped, and the ends that carry a failure text."""

    running: str
    stopping: str
    stopped: str
    failed: frozenset[str]


_SAGEMAKER = _Words("Executing", "Stopping", "Stopped", frozenset({"Failed", "Stopped"}))
_GLUE = _Words("RUNNING", "STOPPING", "STOPPED", frozenset({"FAILED", "ERROR", "TIMEOUT"}))


def _behaviour_problems(
    at: str, spec: SandboxExecution | SandboxJobRun, words: _Words, reason_field: str, success: str
) -> list[str]:
    problems = []
    if spec.polls is not None and spec.seconds is not None:
        problems.append(f"`{at}`: give `polls` or `seconds`, not both")
    if spec.then == words.running:
        for field in ("polls", "seconds"):
            if getattr(spec, field) is not None:
                problems.append(
                    f"`{at}.{field}`: an execution that runs until stopped (`then: {words.running}`) takes "
                    f"no `{field}`"
                )
    reason = spec.failure_reason if isinstance(spec, SandboxExecution) else spec.error_message
    if reason and spec.then == success:
        problems.append(f"`{at}.{reason_field}`: a run that ends {success} has none")
    return problems


def execution_problems(at: str, spec: SandboxExecution) -> list[str]:
    """What is wrong with a pipeline's `execution` (`at` is its path, `pipelines[0].execution`)."""
    problems = _behaviour_problems(at, spec, _SAGEMAKER, "failure_reason", "Succeeded")
    seen: set[str] = set()
    for index, step in enumerate(spec.steps):
        where = f"`{at}.steps[{index}].name`"
        if not step.name.strip():
            problems.append(f"{where}: empty")
        elif step.name in seen:
            problems.append(f"{where}: {step.name!r} appears twice")
        seen.add(step.name)
    return problems


def job_run_problems(at: str, spec: SandboxJobRun) -> list[str]:
    """What is wrong with a Glue job's `job_run` (`at` is its path, `glue_jobs[0].job_run`)."""
    return _behaviour_problems(at, spec, _GLUE, "error_message", "SUCCEEDED")


def summary(spec: SandboxExecution | SandboxJobRun) -> str:
    """How the runs behave, in a few words: `Executing for 3 polls, then Failed`."""
    words = _SAGEMAKER if isinstance(spec, SandboxExecution) else _GLUE
    if spec.then == words.running:
        return f"{words.running} until stopped"
    if spec.seconds is not None:
        return f"{words.running} for {spec.seconds:g} s, then {spec.then}"
    if spec.polls:
        return f"{words.running} for {spec.polls} poll{'s' if spec.polls != 1 else ''}, then {spec.then}"
    return f"{spec.then} at the first poll"


class _Run:
    """One execution (or job run) followed by the layer: its polls so far, whether it was asked to stop,
    and how it ended.

    Counted in polls, its status moves only when a poll is answered: Describe number k (from 1) answers
    running while k <= `polls`; the other calls (List, the steps, a stop) see what the last poll answered,
    so one plugin call never reads two states. Counted in seconds, the clock moves it.
    """

    def __init__(
        self, spec: SandboxExecution | SandboxJobRun, words: _Words, now: float, wall: float, speed: float
    ) -> None:
        self.spec = spec
        self.words = words
        self.started, self.started_wall, self.speed = now, wall, speed
        self.polls = 0  # Describe / GetJobRun calls answered
        self.stop_at: int | None = None  # the polls answered when it was asked to stop (or was stopped)
        self.final = ""
        self.ended_wall: float | None = None

    @property
    def reason(self) -> str:
        """The failure text of how it ended (FailureReason, ErrorMessage); "" while it runs or when none."""
        if self.final not in self.words.failed:
            return ""
        if isinstance(self.spec, SandboxExecution):
            given = self.spec.failure_reason
            return given or (DEFAULT_FAILURE_REASON if self.final == "Failed" else "")
        return self.spec.error_message

    def poll(self, now: float, wall: float) -> str:
        """Answer a poll (DescribePipelineExecution, GetJobRun): the status now, the poll counted."""
        status = self._status(now, wall, self.polls)
        self.polls += 1
        return status

    def status(self, now: float, wall: float) -> str:
        """The status as the last poll answered it (or the clock moved it), for the calls that are no poll."""
        return self._status(now, wall, self.polls - 1)

    def going(self, now: float, wall: float) -> bool:
        """Whether it has not ended (running or stopping)."""
        self.status(now, wall)
        return not self.final

    def stop(self, now: float, wall: float) -> str:
        """Ask it to stop: "" when it was running or stopping (now stopping), else how it ended."""
        status = self.status(now, wall)
        if self.final:
            return status
        if self.stop_at is None:
            self.stop_at = self.polls
        return ""

    def _status(self, now: float, wall: float, seen: int) -> str:
        """The status after `seen` polls were answered."""
        words = self.words
        if self.final:
            return self.final
        if self.stop_at is None and not self._runs(now, seen):
            if self.spec.then == words.stopped:  # stopped by someone else
                self.stop_at = self.polls
            elif self.spec.then != words.running:
                return self._end(self.spec.then, wall)
        if self.stop_at is not None:
            if seen - self.stop_at >= self.spec.stopping_polls:
                return self._end(words.stopped, wall)
            return words.stopping
        return words.running

    def _runs(self, now: float, seen: int) -> bool:
        if self.spec.seconds is not None:
            return (now - self.started) * self.speed < self.spec.seconds
        return seen < (self.spec.polls or 0)

    def _end(self, status: str, wall: float) -> str:
        self.final, self.ended_wall = status, wall
        return status


@dataclasses.dataclass(slots=True)
class _Reply:
    status: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def ok(self) -> bool:
        return self.status.startswith("200")

    def data(self) -> Any:
        return json.loads(self.body or b"{}")

    def with_data(self, data: Any) -> _Reply:
        return dataclasses.replace(self, body=json.dumps(data).encode())

    def send(self, start_response: Callable[..., Any]) -> list[bytes]:
        headers = [(k, v) for k, v in self.headers if k.lower() != "content-length"]
        start_response(self.status, [*headers, ("Content-Length", str(len(self.body)))])
        return [self.body]


def _json_reply(data: Any) -> _Reply:
    return _Reply("200 OK", [("Content-Type", "application/x-amz-json-1.1")], json.dumps(data).encode())


def _error(code: str, message: str) -> _Reply:
    """An error of the AWS JSON protocol, as botocore reads it (`__type`, `message`)."""
    headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code)]
    return _Reply("400 Bad Request", headers, json.dumps({"__type": code, "message": message}).encode())


def _name(value: Any) -> str:
    """A pipeline's or job's name as a request gives it: the name, or the last part of an ARN."""
    text = str(value or "")
    return text.rsplit("/", 1)[-1] if text.startswith("arn:") else text


_Handler = Callable[[dict[str, Any], Mapping[str, Any]], _Reply]


class ScenarioLayer:
    """The WSGI layer in front of moto's app that runs the declared executions (see the module).

    `pipelines` maps pipeline names to their `SandboxExecution`; `glue_jobs` Glue job names to their
    `SandboxJobRun` and MaxConcurrentRuns. `speed` divides the `seconds` of both; `clock` (monotonic
    seconds) and `wall` (epoch seconds, for the times shown) are injectable. Thread-safe: the calls it
    handles are served one at a time.
    """

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        *,
        pipelines: Mapping[str, SandboxExecution] | None = None,
        glue_jobs: Mapping[str, tuple[SandboxJobRun, int]] | None = None,
        speed: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.pipelines = dict(pipelines or {})
        self.glue_jobs = dict(glue_jobs or {})
        self.speed, self.clock, self.wall = speed, clock, wall
        self._lock = threading.Lock()
        self._executions: dict[str, _Run] = {}  # execution ARN → its run
        self._job_runs: dict[tuple[str, str], _Run] = {}  # (job name, run id) → its run
        self._handlers: dict[str, _Handler] = {
            "SageMaker.StartPipelineExecution": self._start_execution,
            "SageMaker.DescribePipelineExecution": self._describe_execution,
            "SageMaker.ListPipelineExecutions": self._list_executions,
            "SageMaker.StopPipelineExecution": self._stop_execution,
            "SageMaker.ListPipelineExecutionSteps": self._list_steps,
            "AWSGlue.StartJobRun": self._start_job_run,
            "AWSGlue.GetJobRun": self._get_job_run,
            "AWSGlue.GetJobRuns": self._get_job_runs,
            "AWSGlue.BatchStopJobRun": self._stop_job_runs,
        }

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        handler = self._handlers.get(str(environ.get("HTTP_X_AMZ_TARGET") or ""))
        if handler is None or not (self.pipelines or self.glue_jobs):
            return self.app(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = None
        if not isinstance(request, dict):  # moto answers what it cannot read
            return self.app(environ, start_response)
        with self._lock:
            reply = handler(environ, request)
        return reply.send(start_response)

    def _forward(self, environ: dict[str, Any]) -> _Reply:
        """moto's reply to the request, whole."""
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, list(headers)]
            return lambda data: None

        chunks = self.app(environ, start_response)
        try:
            body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return _Reply(str(started[0]), started[1], body)

    def _now(self) -> tuple[float, float]:
        return self.clock(), self.wall()

    # SageMaker Pipelines

    def _start_execution(self, environ: dict[str, Any], request: Mapping[str, Any]) -> _Reply:
        spec = self.pipelines.get(_name(request.get("PipelineName")))
        reply = self._forward(environ)
        if spec is not None and reply.ok:
            arn = str(reply.data().get("PipelineExecutionArn") or "")
            now, wall = self._now()
            self._executions[arn] = _Run(spec, _SAGEMAKER, now, wall, self.speed)
        return reply

    def _describe_execution(self, environ: dict[str, Any], request: Mapping[str, Any]) -> _Reply:
        run = self._executions.get(str(request.get("PipelineExecutionArn") or ""))
        if run is None:
            return self._forward(environ)
        status = run.poll(*self._now())
        reply = self._forward(environ)
        if not reply.ok:
            return reply
        data = reply.data()
        data["PipelineExecutionStatus"] = status
        data["FailureReason"] = run.reason
        if not run.reason:
            data.pop("FailureReason")
        return reply.with_data(data)

    def _list_executions(self, environ: dict[str, Any], request: Mapping[str, Any]) -> _Reply:
        reply = self._forward(environ)
        if _name(request.get("PipelineName")) not in self.pipelines or not reply.ok:
            return reply
        data = reply.data()
        for item in data.get("PipelineExecutionSummaries") or []:
            run = self._executions.get(str(item.get("PipelineExecutionArn") or ""))
            if run is not None:
                item["PipelineExecutionStatus"] = run.status(*self._now())
                item["PipelineExecutionFailureReason"] = run.reason
                if not run.reason:
                    item.pop("PipelineExecutionFailureReason")
        return reply.with_data(data)

    def _stop_execution(self, environ: dict[str, Any], request: Mapping[str, Any]) -> _Reply:
        arn = str(request.get("PipelineExecutionArn") or "")
        run = self._executions.get(arn)
        if run is None:
            return self._forward(environ)
        ended = run.stop(*self._now())
        if ended:
            # The sandbox's wording: SageMaker answers ConflictException for an execution that ended.
            return _error("ConflictException", f"Pipeline execution {arn} is {ended} and cannot be stopped.")
        return _json_reply({"PipelineExecutionArn": arn})

    def _list_steps(self, environ: dict[str, Any], request: Mapping[str, Any]) -> _Reply:
        run = self._executions.get(str(request.get("PipelineExecutionArn") or ""))
        if run is None:
            return self._forward(environ)
        assert isinstance(run.spec, SandboxExecution)
        status = run.status(*self._now())
        steps = []
        for step in run.spec.steps:
            item: dict[str, Any] = {"StepName": step.name, "StartTime": run.started_wall, "AttemptCount": 1}
            if not run.final:
                item["StepStatus"] = status if status == _SAGEMAKER.stopping else _SAGEMAKER.running
            else:
                item["StepStatus"] = step.status
                if step.status in ("Stopped", "Failed", "Succeeded"):
                    item["EndTime"] = run.ended_wall
                if step.failure_reason:
                    item["FailureReason"] = step.failure_reason
            steps.append(item)
        if request.get("SortOrder", "Descending") == "Descending":
            steps.reverse()
        return _json_reply({"PipelineExecutionSteps": steps})

    # AWS Glue

    def _start_job_run(self, environ: dict[str, Any], request: Mapping[str, Any]) -> _Reply:
        name = str(request.get("JobName") or "")
        declared = self.glue_jobs.get(name)
        if declared is None:
            return self._forward(environ)
        spec, most = declared
        now, wall = self._now()
        going = sum(1 for (job, _), run in self._job_runs.items() if job == name and run.going(now, wall))
        if going >= most:
            return _error("ConcurrentRunsExceededException", f"Job with name {name} already running")
        reply = self._forward(environ)
        if reply.ok:
            run_id = str(reply.data().get("JobRunId") or "")
            self._job_runs[(name, run_id)] = _Run(spec, _GLUE, now, wall, self.speed)
        return reply

    def _get_job_run(self, environ: dict[str, Any], request: Mapping[str, Any]) -> _Reply:
        run = self._job_runs.get((str(request.get("JobName") or ""), str(request.get("RunId") or "")))
        if run is None:
            return self._forward(environ)
        status = run.poll(*self._now())
        reply = self._forward(environ)
        if not reply.ok:
            return reply
        data = reply.data()
        if isinstance(data.get("JobRun"), dict):
            self._job_run_fields(data["JobRun"], run, status)
        return reply.with_data(data)

    def _get_job_runs(self, environ: dict[str, Any], request: Mapping[str, Any]) -> _Reply:
        name = str(request.get("JobName") or "")
        reply = self._forward(environ)
        if name not in self.glue_jobs or not reply.ok:
            return reply
        data = reply.data()
        for item in data.get("JobRuns") or []:
            run = self._job_runs.get((name, str(item.get("Id") or "")))
            if run is not None:
                self._job_run_fields(item, run, run.status(*self._now()))
        return reply.with_data(data)

    def _job_run_fields(self, item: dict[str, Any], run: _Run, status: str) -> None:
        item["JobRunState"] = status
        item.pop("ErrorMessage", None)
        if run.reason:
            item["ErrorMessage"] = run.reason
        end = run.ended_wall if run.ended_wall is not None else self.wall()
        item["ExecutionTime"] = int((end - run.started_wall) * self.speed)
        if run.final:
            item["CompletedOn"] = run.ended_wall
        else:
            item.pop("CompletedOn", None)

    def _stop_job_runs(self, environ: dict[str, Any], request: Mapping[str, Any]) -> _Reply:
        name = str(request.get("JobName") or "")
        if name not in self.glue_jobs:
            return self._forward(environ)
        stopped, errors = [], []
        for run_id in request.get("JobRunIds") or []:
            run = self._job_runs.get((name, str(run_id)))
            # The sandbox's wording: Glue lists what it could not stop under Errors.
            if run is None:
                detail = {
                    "ErrorCode": "EntityNotFoundException",
                    "ErrorMessage": f"Job run {run_id} not found",
                }
            else:
                ended = run.stop(*self._now())
                if not ended:
                    stopped.append({"JobName": name, "JobRunId": run_id})
                    continue
                detail = {
                    "ErrorCode": "InvalidInputException",
                    "ErrorMessage": f"Job run {run_id} is {ended}",
                }
            errors.append({"JobName": name, "JobRunId": run_id, "ErrorDetail": detail})
        return _json_reply({"SuccessfulSubmissions": stopped, "Errors": errors})
