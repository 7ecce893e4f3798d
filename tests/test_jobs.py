"""The job pattern: find-or-start, poll with backoff, success kept, failure retried, restarts survived."""

from __future__ import annotations

import threading
import time

import pytest

from argoplug import JobState, JobStatus, JobTracker, PermanentError, Phase, TemporaryError


class FakeSystem:
    """An external system that keeps jobs by name, as SageMaker keeps executions by display name."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobState] = {}
        self.starts: list[str] = []
        self.polls = 0

    def find(self, key: str) -> JobState | None:
        attempts = [s for name, s in self.jobs.items() if name.startswith(key)]
        return max(attempts, key=lambda s: s.attempt) if attempts else None

    def start(self, key: str, attempt: int) -> JobState:
        name = f"{key}-{attempt}"
        self.starts.append(name)
        self.jobs[name] = JobState(ref=name, status=JobStatus.RUNNING, message="started", attempt=attempt)
        return self.jobs[name]

    def poll(self, state: JobState) -> JobState:
        self.polls += 1
        return self.jobs[state.ref]

    def finish(self, status: JobStatus, message: str = "", outputs: dict | None = None) -> None:
        for name, state in self.jobs.items():
            if state.status is JobStatus.RUNNING:
                self.jobs[name] = JobState(name, status, message, outputs or {"ref": name}, state.attempt)


def test_first_call_starts_and_answers_running_with_backoff_to_the_cap() -> None:
    system, tracker = FakeSystem(), JobTracker(first_delay=5)
    delays = [tracker.run("k", system, max_delay=30).requeue for _ in range(5)]
    assert system.starts == ["k-1"]
    assert delays == [5, 10, 20, 30, 30]


def test_success_is_kept_and_repeated_without_asking_again() -> None:
    system, tracker = FakeSystem(), JobTracker()
    tracker.run("k", system)
    system.finish(JobStatus.SUCCEEDED, "done", {"arn": "a"})
    first = tracker.run("k", system)
    polls = system.polls
    again = tracker.run("k", system)
    assert first.phase is again.phase is Phase.SUCCEEDED
    assert again.outputs == {"arn": "a"} and again.message == "done"
    assert system.polls == polls and system.starts == ["k-1"]


def test_failure_is_reported_then_an_identical_call_starts_the_next_attempt() -> None:
    system, tracker = FakeSystem(), JobTracker()
    tracker.run("k", system)
    system.finish(JobStatus.FAILED, "step Train failed")
    failed = tracker.run("k", system)
    assert (failed.phase, failed.message) == (Phase.FAILED, "step Train failed")
    retried = tracker.run("k", system)
    assert retried.phase is Phase.RUNNING
    assert system.starts == ["k-1", "k-2"]


def test_a_restarted_tracker_finds_the_running_job_instead_of_starting_another() -> None:
    system = FakeSystem()
    JobTracker().run("k", system)
    after_restart = JobTracker().run("k", system)
    assert after_restart.phase is Phase.RUNNING
    assert system.starts == ["k-1"]


def test_a_restarted_tracker_reports_a_failure_that_happened_while_it_was_down() -> None:
    system = FakeSystem()
    JobTracker().run("k", system)
    system.finish(JobStatus.FAILED, "boom")
    assert JobTracker().run("k", system).phase is Phase.FAILED
    assert system.starts == ["k-1"]


def test_trouble_while_starting_remembers_nothing() -> None:
    system, tracker = FakeSystem(), JobTracker()
    original = system.start
    system.start = lambda key, attempt: (_ for _ in ()).throw(TemporaryError("throttled"))  # type: ignore[method-assign]
    with pytest.raises(TemporaryError):
        tracker.run("k", system)
    system.start = original  # type: ignore[method-assign]
    assert tracker.run("k", system).phase is Phase.RUNNING
    assert system.starts == ["k-1"]


def test_trouble_while_polling_is_answered_with_the_outputs_already_reported() -> None:
    # Argo replaces the node's outputs with each reply's: an error polling the job must not drop them.
    system, tracker = FakeSystem(), JobTracker()
    tracker.run("k", system)
    shown = {"arn": "a", "status": "Executing"}
    system.jobs["k-1"] = JobState("k-1", JobStatus.RUNNING, "executing", shown)
    assert tracker.run("k", system).outputs == shown
    original = system.poll

    def failing(error: Exception) -> None:
        system.poll = lambda state: (_ for _ in ()).throw(error)  # type: ignore[method-assign]

    failing(TemporaryError("AWS is down"))
    with pytest.raises(TemporaryError) as blip:
        tracker.run("k", system)
    assert blip.value.outputs == shown
    failing(TemporaryError("AWS is down", outputs={"status": "unknown"}))  # its own outputs on top
    with pytest.raises(TemporaryError) as own:
        tracker.run("k", system)
    assert own.value.outputs == {"arn": "a", "status": "unknown"}
    failing(PermanentError("access denied"))  # a Failed node: its outputs are final, the ARN kept
    with pytest.raises(PermanentError) as denied:
        tracker.run("k", system)
    assert denied.value.outputs == shown

    system.poll = original  # type: ignore[method-assign]
    system.finish(JobStatus.SUCCEEDED, "done", {"arn": "a", "status": "Succeeded"})
    done = tracker.run("k", system)
    assert (done.phase, done.outputs) == (Phase.SUCCEEDED, {"arn": "a", "status": "Succeeded"})
    assert system.starts == ["k-1"]


def test_trouble_starting_the_next_attempt_carries_nothing_of_the_failed_one() -> None:
    # Argo's retry is a new node: the failed attempt's outputs are not its own.
    system, tracker = FakeSystem(), JobTracker()
    tracker.run("k", system)
    system.finish(JobStatus.FAILED, "boom", {"ref": "k-1"})
    assert tracker.run("k", system).outputs == {"ref": "k-1"}
    system.start = lambda key, attempt: (_ for _ in ()).throw(TemporaryError("throttled"))  # type: ignore[method-assign]
    with pytest.raises(TemporaryError) as blip:
        tracker.run("k", system)
    assert blip.value.outputs == {}


def test_concurrent_calls_for_one_key_start_one_job() -> None:
    system, tracker = FakeSystem(), JobTracker()
    barrier = threading.Barrier(8)

    def call() -> None:
        barrier.wait()
        tracker.run("k", system)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert system.starts == ["k-1"]


def test_memory_is_bounded_and_forgetting_costs_only_a_find() -> None:
    system, tracker = FakeSystem(), JobTracker(max_entries=2)
    for key in ("a", "b", "c"):
        tracker.run(key, system)
    assert len(tracker._entries) == 2
    assert tracker.run("a", system).phase is Phase.RUNNING
    assert system.starts == ["a-1", "b-1", "c-1"]


class CancellableSystem(FakeSystem):
    """FakeSystem whose jobs can be cancelled; `hang` makes cancel block until `release` is set."""

    def __init__(self, *, hang: bool = False, fail: bool = False) -> None:
        super().__init__()
        self.cancelled: list[str] = []
        self.hang, self.fail = hang, fail
        self.release = threading.Event()

    def cancel(self, state: JobState) -> str:
        if self.hang:
            self.release.wait(10)
        if self.fail:
            raise TemporaryError("throttled")
        self.cancelled.append(state.ref)
        return f"stopped {state.ref}"


def test_stop_cancels_running_jobs_only_and_not_those_that_opted_out() -> None:
    system, tracker = CancellableSystem(), JobTracker()
    tracker.run("a", system)
    tracker.run("keep", system, cancel_on_stop=False)
    tracker.run("done", system)
    system.jobs["done-1"] = JobState("done-1", JobStatus.SUCCEEDED, attempt=1)
    tracker.run("done", system)
    stopped = tracker.stop(timeout=5)
    assert [(s.key, s.ref, s.outcome, s.stopped) for s in stopped] == [("a", "a-1", "stopped a-1", True)]
    assert system.cancelled == ["a-1"]
    assert tracker.stop(timeout=5) == []  # each job is cancelled once


def test_a_plain_external_job_is_never_cancelled() -> None:
    system, tracker = FakeSystem(), JobTracker()
    tracker.run("a", system)
    assert tracker.stop(timeout=1) == []


def test_a_cancel_that_hangs_is_given_up_after_the_timeout_and_one_that_fails_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hanging, failing = CancellableSystem(hang=True), CancellableSystem(fail=True)
    tracker = JobTracker()
    tracker.run("slow", hanging)
    tracker.run("bad", failing)
    try:
        stopped = {s.key: s for s in tracker.stop(timeout=0.3)}
    finally:
        hanging.release.set()
    assert stopped["slow"].outcome == "no answer within 0.3 s" and not stopped["slow"].stopped
    assert stopped["bad"].outcome == "could not stop it: throttled" and not stopped["bad"].stopped
    messages = [r.getMessage() for r in caplog.records if r.name == "argoplug.jobs"]
    assert "sidecar stopping: could not stop bad-1 of task bad: throttled" in messages
    assert "sidecar stopping: slow-1 of task slow was not stopped within 0.3 s" in messages


def test_while_stopping_a_call_starts_nothing_and_cancels_what_it_finds_running() -> None:
    hanging, other = CancellableSystem(hang=True), CancellableSystem()
    other.jobs["found-1"] = JobState("found-1", JobStatus.RUNNING, attempt=1)
    tracker = JobTracker()
    tracker.run("slow", hanging)
    stopping = threading.Thread(target=tracker.stop, kwargs={"timeout": 5})
    stopping.start()
    try:
        while not tracker._stopping:  # the stop has begun
            time.sleep(0.001)
        with pytest.raises(TemporaryError, match="the sidecar is stopping: task new is not started here"):
            tracker.run("new", other)
        tracker.run("found", other)
        assert other.cancelled == ["found-1"] and other.starts == []
    finally:
        hanging.release.set()
        stopping.join()
    tracker.run("new", other)  # once stopped, the tracker works as before
    assert other.starts == ["new-1"]
