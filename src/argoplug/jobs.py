"""Long-running external jobs: find-or-start, then poll with a backing-off requeue.

Plugin handlers that start work elsewhere (a SageMaker pipeline execution, a Kubeflow run) describe that
work as an `ExternalJob` and let a `JobTracker` decide, call by call, whether to start, find or poll it.

Argo replaces a node's outputs with those of each reply. So an error while polling a job that was
answered with outputs (a TemporaryError: Running with a requeue; a PermanentError: Failed) is answered
with those outputs, the exception's own on top: no reply drops what an earlier one showed.

When the sidecar is stopped, `stop_running_jobs` stops what is still running. Argo never tells a plugin
that a workflow was stopped or terminated (argoproj/argo-workflows#10476): it fails the nodes and deletes
the agent pod, whose containers get SIGTERM and the pod's grace period (30 s by default) before SIGKILL.
The server calls `stop_running_jobs` on SIGTERM; a job whose `ExternalJob` has a `cancel` method and
whose `run` call did not say `cancel_on_stop=False` is cancelled then. A SIGKILL, an OOM kill or a lost
node cancels nothing, and neither does a job this process no longer remembers (`max_entries`).
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from argoplug.plugin import PermanentError, Result, TemporaryError

__all__ = [
    "STOP_JOBS_TIMEOUT",
    "CancellableJob",
    "ExternalJob",
    "JobState",
    "JobStatus",
    "JobTracker",
    "StoppedJob",
    "stop_running_jobs",
]

log = logging.getLogger("argoplug.jobs")

# Seconds `stop_running_jobs` waits for the cancels by default: with the server's 5 s for calls still in
# flight, well inside Kubernetes' default 30 s terminationGracePeriodSeconds.
STOP_JOBS_TIMEOUT = 15.0


class JobStatus(enum.Enum):
    """Where an external job stands."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True, slots=True)
class JobState:
    """One attempt of an external job as the external system reports it.

    `ref` identifies the attempt there (e.g. a pipeline execution ARN); `attempt` counts from 1;
    `outputs` are the node's output parameters at this point (complete on a terminal state; while
    running, also what an error polling the attempt is answered with, see `JobTracker`).
    """

    ref: str
    status: JobStatus
    message: str = ""
    outputs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    attempt: int = 1


class ExternalJob(Protocol):
    """The three questions a `JobTracker` asks of the external system, for one task.

    Implementations are sync (they run in the server's thread pool) and raise `TemporaryError` for
    passing trouble and `PermanentError` for requests that cannot succeed. What `poll` raises is answered
    with the outputs of the state it was given, merged under the exception's own `outputs`.
    """

    def find(self, key: str) -> JobState | None:
        """Return the latest attempt started for `key`, or None if there is none."""
        ...

    def start(self, key: str, attempt: int) -> JobState:
        """Start attempt number `attempt` (from 1) for `key`, named so that `find` finds it again."""
        ...

    def poll(self, state: JobState) -> JobState:
        """Return the current state of the attempt `state` describes."""
        ...


@runtime_checkable
class CancellableJob(ExternalJob, Protocol):
    """An `ExternalJob` that can be stopped: `stop_running_jobs` calls `cancel` when the sidecar stops."""

    def cancel(self, state: JobState) -> str:
        """Ask the external system to stop the attempt `state` describes; return what was done, for the log.

        Runs in a thread of its own, once, and must return within seconds (`STOP_JOBS_TIMEOUT` bounds the
        wait, not the call). Raises what `poll` raises.
        """
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class StoppedJob:
    """What `stop_running_jobs` did for one job: its task `key`, `ref`, and `outcome` (for the log)."""

    key: str
    ref: str
    outcome: str
    stopped: bool


_LOCK_STRIPES = 64
_trackers: weakref.WeakSet[JobTracker] = weakref.WeakSet()


@dataclasses.dataclass(slots=True)
class _Entry:
    state: JobState
    polls: int = 0
    reported: bool = False  # a terminal result of this attempt has been answered
    cancel: Callable[[JobState], str] | None = None  # stops it when the sidecar stops


class JobTracker:
    """Find-or-start, then poll, keyed by the task's idempotency key.

    One call of `run` per template.execute call:

    - nothing known in memory: ask `job.find(key)`; start attempt 1 only when the external system has
      none (so a restarted sidecar never starts a second job);
    - running: poll; answer Running with a requeue of `first_delay` seconds doubling per poll up to
      `max_delay`;
    - succeeded: answer Succeeded with the outputs, and the same again for any repeated call;
    - failed: answer Failed with the reason; a repeated call after that answer (Argo retrying the node
      with an identical template) starts the next attempt;
    - `poll` raising TemporaryError (answered Running with a requeue) or PermanentError (Failed): the
      exception is raised again carrying the outputs last answered for the attempt, its own `outputs`
      on top, as the reply replaces the node's outputs; what is known of the attempt is kept, so the
      next call polls it again.

    Calls for the same key are serialised; memory holds at most `max_entries` keys (oldest dropped,
    which only costs a `find` on their next call). Thread-safe. Every tracker of the process is stopped
    by `stop_running_jobs`: meanwhile it starts nothing (TemporaryError) and cancels a job found running.
    """

    def __init__(self, *, first_delay: float = 5.0, max_entries: int = 10_000) -> None:
        if first_delay <= 0:
            raise ValueError(f"first_delay must be > 0 seconds, got {first_delay!r}")
        self.first_delay = first_delay
        self.max_entries = max_entries
        self._entries: collections.OrderedDict[str, _Entry] = collections.OrderedDict()
        # Calls of one key are serialised by one of a fixed set of locks: bounded, whatever the keys.
        self._locks = tuple(threading.Lock() for _ in range(_LOCK_STRIPES))
        self._guard = threading.Lock()
        self._stopping = False
        _trackers.add(self)

    def run(
        self, key: str, job: ExternalJob, *, max_delay: float = 60.0, cancel_on_stop: bool = True
    ) -> Result:
        """Advance the job of `key` by one call and return the node's result.

        `max_delay` (seconds) caps the requeue backoff. `cancel_on_stop`: when `job` is a
        `CancellableJob`, cancel it if it is still running when the sidecar stops (`stop_running_jobs`);
        False for jobs that must outlive the workflow. Raises what `job` raises (a TemporaryError or
        PermanentError of `poll` with the outputs already answered for the attempt under its own), and
        TemporaryError instead of starting a job once the sidecar is stopping.
        """
        cancel = job.cancel if cancel_on_stop and isinstance(job, CancellableJob) else None
        with self._lock_for(key):
            entry = self._entries.get(key)
            if entry is None:
                state = job.find(key)
                entry = _Entry(state if state is not None else self._start(job, key, 1), cancel=cancel)
            elif entry.reported and entry.state.status is JobStatus.FAILED:
                entry = _Entry(self._start(job, key, entry.state.attempt + 1), cancel=cancel)
            elif not entry.reported:
                entry.state = _poll(job, entry.state)
                if not self._stopping:  # once stopping, a job is cancelled once, by whoever saw it first
                    entry.cancel = cancel
            self._remember(key, entry)
            late = entry.cancel if self._stopping and entry.state.status is JobStatus.RUNNING else None
            if late is not None:  # found running after the stop began
                entry.cancel = None
                _cancel_one(key, entry.state, late)
            return self._result(entry, max_delay)

    def _start(self, job: ExternalJob, key: str, attempt: int) -> JobState:
        if self._stopping:
            raise TemporaryError(f"the sidecar is stopping: task {key} is not started here")
        return job.start(key, attempt)

    def stop(self, timeout: float = STOP_JOBS_TIMEOUT) -> list[StoppedJob]:
        """Cancel every job of this tracker still running (see `stop_running_jobs`).

        While it does, calls start nothing and cancel what they find running. After it the tracker is as
        before (an in-process server, e.g. `argoplug.testing.LiveServer`, may be started again).
        """
        with self._guard:
            self._stopping = True
            running = []
            for key, entry in self._entries.items():
                if entry.cancel is not None and entry.state.status is JobStatus.RUNNING:
                    running.append((key, entry.state, entry.cancel))
                    entry.cancel = None
        try:
            return _cancel_all(running, timeout)
        finally:
            self._stopping = False

    def forget(self, key: str) -> None:
        """Drop what is remembered of `key` (the next call asks the external system again)."""
        with self._guard:
            self._entries.pop(key, None)

    def _result(self, entry: _Entry, max_delay: float) -> Result:
        state = entry.state
        if state.status is JobStatus.RUNNING:
            delay = min(self.first_delay * 2 ** min(entry.polls, 32), max(max_delay, self.first_delay))
            entry.polls += 1
            return Result.running(state.message, requeue=delay, outputs=state.outputs)
        entry.reported = True
        if state.status is JobStatus.SUCCEEDED:
            return Result.succeeded(state.message, outputs=state.outputs)
        return Result.failed(state.message, outputs=state.outputs)

    def _lock_for(self, key: str) -> threading.Lock:
        return self._locks[hash(key) % _LOCK_STRIPES]

    def _remember(self, key: str, entry: _Entry) -> None:
        with self._guard:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


def _poll(job: ExternalJob, state: JobState) -> JobState:
    """`job.poll(state)`; a TemporaryError or PermanentError it raises gets `state.outputs` (what the last
    reply showed) under its own outputs, so that the reply answering it keeps them."""
    try:
        return job.poll(state)
    except (TemporaryError, PermanentError) as exc:
        if state.outputs:
            exc.outputs = {**state.outputs, **exc.outputs}
        raise


def stop_running_jobs(timeout: float = STOP_JOBS_TIMEOUT) -> list[StoppedJob]:
    """Cancel every external job still running that a `JobTracker` of this process started or found.

    Each cancel (`CancellableJob.cancel`) runs in a thread of its own, all at once; the call returns
    once all have, or after `timeout` seconds, and logs each (logger `argoplug.jobs`): what was stopped,
    what failed and why, what did not answer in time. Meanwhile the trackers start nothing. The server
    calls it on SIGTERM (`argoplug.server`), after its calls in flight were answered or given up; see
    the module's docstring for what it cannot cover.
    """
    deadline = time.monotonic() + timeout
    stopped: list[StoppedJob] = []
    for tracker in list(_trackers):
        stopped += tracker.stop(max(0.0, deadline - time.monotonic()))
    return stopped


def _cancel_one(key: str, state: JobState, cancel: Callable[[JobState], str]) -> StoppedJob:
    try:
        outcome = cancel(state)
    except Exception as exc:  # a cancel that fails is logged; the others go on
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        log.error("sidecar stopping: could not stop %s of task %s: %s", state.ref, key, message)
        return StoppedJob(key, state.ref, f"could not stop it: {message}", stopped=False)
    log.warning("sidecar stopping: %s (task %s)", outcome, key)
    return StoppedJob(key, state.ref, outcome, stopped=True)


def _cancel_all(
    running: list[tuple[str, JobState, Callable[[JobState], str]]], timeout: float
) -> list[StoppedJob]:
    """Run each cancel in a daemon thread (a hung one cannot hold the exit) and wait `timeout` seconds."""
    results: dict[int, StoppedJob] = {}
    threads = []
    for index, (key, state, cancel) in enumerate(running):

        def work(index: int = index, key: str = key, state: JobState = state, cancel: Any = cancel) -> None:
            results[index] = _cancel_one(key, state, cancel)

        thread = threading.Thread(target=work, name=f"argoplug-stop-{key}", daemon=True)
        thread.start()
        threads.append(thread)
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    found = []
    for index, (key, state, _) in enumerate(running):
        if index in results:
            found.append(results[index])
        else:
            log.error("sidecar stopping: %s of task %s was not stopped within %g s", state.ref, key, timeout)
            found.append(StoppedJob(key, state.ref, f"no answer within {timeout:g} s", stopped=False))
    return found
