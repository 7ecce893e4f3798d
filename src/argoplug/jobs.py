"""Long-running external jobs: find-or-start, then poll with a backing-off requeue.

Plugin handlers that start work elsewhere (a SageMaker pipeline execution, a Kubeflow run) describe that
work as an `ExternalJob` and let a `JobTracker` decide, call by call, whether to start, find or poll it.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import threading
from collections.abc import Mapping
from typing import Any, Protocol

from argoplug.plugin import Result

__all__ = ["ExternalJob", "JobState", "JobStatus", "JobTracker"]


class JobStatus(enum.Enum):
    """Where an external job stands."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True, slots=True)
class JobState:
    """One attempt of an external job as the external system reports it.

    `ref` identifies the attempt there (e.g. a pipeline execution ARN); `attempt` counts from 1;
    `outputs` are the node's output parameters at this point (complete on a terminal state).
    """

    ref: str
    status: JobStatus
    message: str = ""
    outputs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    attempt: int = 1


class ExternalJob(Protocol):
    """The three questions a `JobTracker` asks of the external system, for one task.

    Implementations are sync (they run in the server's thread pool) and raise `TemporaryError` for
    passing trouble and `PermanentError` for requests that cannot succeed.
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


_LOCK_STRIPES = 64


@dataclasses.dataclass(slots=True)
class _Entry:
    state: JobState
    polls: int = 0
    reported: bool = False  # a terminal result of this attempt has been answered


class JobTracker:
    """Find-or-start, then poll, keyed by the task's idempotency key.

    One call of `run` per template.execute call:

    - nothing known in memory: ask `job.find(key)`; start attempt 1 only when the external system has
      none (so a restarted sidecar never starts a second job);
    - running: poll; answer Running with a requeue of `first_delay` seconds doubling per poll up to
      `max_delay`;
    - succeeded: answer Succeeded with the outputs, and the same again for any repeated call;
    - failed: answer Failed with the reason; a repeated call after that answer (Argo retrying the node
      with an identical template) starts the next attempt.

    Calls for the same key are serialised; memory holds at most `max_entries` keys (oldest dropped,
    which only costs a `find` on their next call). Thread-safe.
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

    def run(self, key: str, job: ExternalJob, *, max_delay: float = 60.0) -> Result:
        """Advance the job of `key` by one call and return the node's result.

        `max_delay` (seconds) caps the requeue backoff. Raises what `job` raises.
        """
        with self._lock_for(key):
            entry = self._entries.get(key)
            if entry is None:
                state = job.find(key)
                entry = _Entry(state if state is not None else job.start(key, 1))
            elif entry.reported and entry.state.status is JobStatus.FAILED:
                entry = _Entry(job.start(key, entry.state.attempt + 1))
            elif not entry.reported:
                entry.state = job.poll(entry.state)
            self._remember(key, entry)
            return self._result(entry, max_delay)

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
