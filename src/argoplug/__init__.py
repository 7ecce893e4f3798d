"""argoplug: a framework and toolkit for Argo Workflows executor plugins.

The public API: declare a `Plugin`, write its handler, return a `Result` or raise `TemporaryError` /
`PermanentError`; run long external work through `JobTracker` (a `CancellableJob` is stopped with the
sidecar);
declare an argument `Secret[str]` to keep its value out of every message and log;
mark hook implementations (`argoplug.hookspecs`) with `hookimpl`. Everything else may change.
"""

from argoplug.hookspecs import hookimpl
from argoplug.jobs import CancellableJob, ExternalJob, JobState, JobStatus, JobTracker
from argoplug.plugin import ArgumentError, PermanentError, Plugin, Result, Secret, Task, TemporaryError
from argoplug.protocol import Phase

__all__ = [
    "ArgumentError",
    "CancellableJob",
    "ExternalJob",
    "JobState",
    "JobStatus",
    "JobTracker",
    "PermanentError",
    "Phase",
    "Plugin",
    "Result",
    "Secret",
    "Task",
    "TemporaryError",
    "hookimpl",
]

__version__ = "0.1.0"
