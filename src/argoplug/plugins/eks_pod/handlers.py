"""The `eks-pod` plugin: one pod on a (remote) EKS cluster, created once, polled with `requeue`, reported
with its phase, exit code, termination message and the tail of its log.

The chain to the cluster is Airflow's `EksPodOperator`'s: assume `role_arn` (optional), DescribeCluster for
the endpoint and CA, then the `aws eks get-token` bearer token, renewed before it expires and after a 401
(`argoplug.aws.eks`, `argoplug.kube.access`). The pod is named from the task's idempotency key and carries
it as a label, so a restarted sidecar lists it instead of creating a second (`argoplug.jobs.JobTracker`);
stopping the sidecar deletes a pod still running. boto3 and lightkube are imported on the first call.
"""

from __future__ import annotations

import calendar
import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from argoplug.jobs import JobState, JobStatus, JobTracker
from argoplug.plugin import PermanentError, Plugin, Result, Task, TemporaryError
from argoplug.plugins.aws_common import MAX_OUTPUT_BYTES
from argoplug.plugins.eks_pod.args import (
    EksPodArgs,
    argument_problems,
    duration_seconds,
    pod_manifest,
    pod_name,
)

__all__ = [
    "ATTEMPT_ANNOTATION",
    "KEY",
    "OUTPUT_NAMES",
    "TASK_LABEL",
    "eks_pod_plugin",
    "plugins",
    "reset_clusters",
    "use_tracker",
]

log = logging.getLogger("argoplug.plugins.eks_pod")

KEY = "eks-pod"
TASK_LABEL = "argoplug.dev/task-key"
ATTEMPT_ANNOTATION = "argoplug.dev/attempt"
WORKFLOW_LABEL = "workflows.argoproj.io/workflow"
OUTPUT_NAMES = ("pod_name", "phase", "exit_code", "logs", "termination_message")
# Waiting reasons that mean a container will not start by itself (kubelet's images.go and
# kuberuntime_container.go); a Pending pod with one past `startup_timeout` fails with it.
_STUCK_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "CrashLoopBackOff",
    }
)
_MAX_CLUSTERS = 64


def _failure_outputs(block: Any) -> Mapping[str, Any]:
    return dict.fromkeys(OUTPUT_NAMES, "")


eks_pod_plugin: Plugin[EksPodArgs] = Plugin(
    KEY,
    args=EksPodArgs,
    check=argument_problems,
    failure_outputs=_failure_outputs,
    description=(
        "Runs a pod on an EKS cluster (assume role, DescribeCluster, EKS token, as EksPodOperator does) and "
        "reports its phase, exit code, termination message and the tail of its log."
    ),
)
plugins = (eks_pod_plugin,)


class _Clusters:
    """A lightkube client per (cluster, region, role, session), kept for the sidecar's life: the EKS token
    is made at the first request and renewed by its source. At most `_MAX_CLUSTERS`, oldest closed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: OrderedDict[tuple[str, str, str, str], tuple[Any, Any]] = OrderedDict()

    def get(self, cluster: str, region: str, role_arn: str, session: str) -> tuple[Any, Any]:
        from argoplug.aws import eks
        from argoplug.kube.access import ClusterAccess

        key = (cluster, region, role_arn, session)
        with self._lock:
            found = self._clients.get(key)
            if found is not None:
                self._clients.move_to_end(key)
                return found
        access = eks.eks_access(
            cluster,
            region=region,
            role_arn=role_arn or None,
            session_name=session,
            factory=ClusterAccess.from_endpoint,
        )
        made = (access, access.client(field_manager="argoplug-eks-pod"))
        with self._lock:
            self._clients[key] = made
            while len(self._clients) > _MAX_CLUSTERS:
                _, (_, old) = self._clients.popitem(last=False)
                old.close()
        return made

    def reset(self) -> None:
        with self._lock:
            for _, client in self._clients.values():
                client.close()
            self._clients.clear()


_clusters = _Clusters()
_tracker = JobTracker(first_delay=2.0)


def reset_clusters() -> None:
    """Close the kept cluster clients (the next call describes the cluster and makes a token again)."""
    _clusters.reset()


def use_tracker(tracker: JobTracker | None = None) -> JobTracker:
    """Use `tracker` (default a fresh JobTracker: what a restarted sidecar has) and return it."""
    global _tracker
    _tracker = tracker if tracker is not None else JobTracker(first_delay=2.0)
    return _tracker


@eks_pod_plugin.handler
def run_pod(task: Task, args: EksPodArgs) -> Result:
    """Create the task's pod on the cluster (first call), then report it until it ends.

    Running (with a requeue from 2 s doubling to 30 s) while it is Pending or Running; Succeeded or
    Failed as the pod ended, outputs `pod_name`, `phase`, `exit_code`, `logs` (the last `log_lines` lines
    when `get_logs`, within 256 KiB) and `termination_message`. Raises PermanentError (Failed) naming the
    link of the chain that broke (the role, the cluster, the token's mapping, RBAC) and how to fix it,
    TemporaryError (Running, tried again) for throttling, 5xx and lost connections.
    """
    from argoplug import aws

    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
    if not region:
        raise PermanentError(
            "`region`: not given and the sidecar has no AWS_REGION: name the cluster's region"
        )
    session = aws.session_name(task.workflow_name, task.namespace)
    principal = args.role_arn or "the sidecar's IAM role"
    with _chain(args.cluster_name, principal, args.namespace):
        access, client = _clusters.get(args.cluster_name, region, args.role_arn, session)
    job = PodJob(client, access, task, args)
    return _tracker.run(task.key, job, max_delay=30.0, cancel_on_stop=args.cancel_on_stop)


class PodJob:
    """The task's pod as an `argoplug.jobs.CancellableJob`: found by its task-key label, created named from
    the key, polled by name, deleted on cancel."""

    def __init__(
        self,
        client: Any,
        access: Any,
        task: Task,
        args: EksPodArgs,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.access = access
        self.task = task
        self.args = args
        self.clock = clock
        self.startup_timeout = duration_seconds(args.startup_timeout)
        self.where = f'namespace "{args.namespace}" of EKS cluster {args.cluster_name}'
        self.principal = args.role_arn or "the sidecar's IAM role"

    @contextlib.contextmanager
    def _calls(self) -> Iterator[None]:
        with _chain(self.args.cluster_name, self.principal, self.args.namespace):
            yield

    def find(self, key: str) -> JobState | None:
        from lightkube.resources.core_v1 import Pod

        with self._calls():
            found = list(self.client.list(Pod, namespace=self.args.namespace, labels={TASK_LABEL: key}))
        if not found:
            return None
        latest = max(
            found, key=lambda pod: int((pod.metadata.annotations or {}).get(ATTEMPT_ANNOTATION, "1"))
        )
        log.info("found pod %s/%s for task %s", self.args.namespace, latest.metadata.name, key)
        return self._state(latest)

    def start(self, key: str, attempt: int) -> JobState:
        from lightkube import ApiError, codecs
        from lightkube.resources.core_v1 import Pod

        name = pod_name(self.args.pod_name, key, attempt)
        manifest = pod_manifest(
            self.args,
            name=name,
            labels={TASK_LABEL: key, WORKFLOW_LABEL: self.task.workflow_name[:63]},
            annotations={
                ATTEMPT_ANNOTATION: str(attempt),
                "workflows.argoproj.io/workflow-namespace": self.task.namespace,
                "workflows.argoproj.io/workflow-uid": self.task.workflow_uid,
            },
        )
        with self._calls():
            try:
                created = self.client.create(codecs.from_dict(manifest))
            except ApiError as exc:
                if exc.status.code != 409:
                    raise
                created = self.client.get(Pod, name, namespace=self.args.namespace)  # a racing start
        log.info("created pod %s/%s for task %s", self.args.namespace, name, key)
        return self._state(created)

    def poll(self, state: JobState) -> JobState:
        from lightkube import ApiError
        from lightkube.resources.core_v1 import Pod

        with self._calls():
            try:
                pod = self.client.get(Pod, state.ref, namespace=self.args.namespace)
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
                raise PermanentError(
                    f"pod {state.ref} in {self.where} was deleted before it ended (by someone else: "
                    "argoplug deletes it only once it has ended, or when the sidecar stops)",
                    outputs={"pod_name": state.ref, "phase": "Deleted"},
                ) from None
        return self._state(pod)

    def cancel(self, state: JobState) -> str:
        self._delete(state.ref)
        return f"deleted pod {state.ref} in {self.where}"

    # -- the pod's state ------------------------------------------------------------------------------------

    def _state(self, pod: Any) -> JobState:
        name = str(pod.metadata.name)
        attempt = int((pod.metadata.annotations or {}).get(ATTEMPT_ANNOTATION, "1"))
        status = pod.status
        phase = str(status.phase) if status is not None and status.phase else "Pending"
        outputs: dict[str, Any] = {**dict.fromkeys(OUTPUT_NAMES, ""), "pod_name": name, "phase": phase}
        if phase in ("Succeeded", "Failed"):
            return self._ended(pod, name, phase, attempt, outputs)
        if phase == "Pending":
            stuck = self._stuck(pod)
            if stuck:
                outputs["termination_message"] = stuck
                if self.args.on_finish == "delete":
                    self._delete(name)
                return JobState(name, JobStatus.FAILED, stuck, outputs, attempt)
        return JobState(name, JobStatus.RUNNING, f"pod {name} in {self.where} is {phase}", outputs, attempt)

    def _stuck(self, pod: Any) -> str:
        """Why a Pending pod will not start, once it is past `startup_timeout`; "" while it may yet."""
        created = pod.metadata.creationTimestamp
        age = self.clock() - calendar.timegm(created.utctimetuple()) if created is not None else 0.0
        if age < self.startup_timeout:
            return ""
        reasons = []
        for status in (pod.status.containerStatuses or []) if pod.status else []:
            waiting = status.state.waiting if status.state else None
            if waiting is not None and waiting.reason in _STUCK_REASONS:
                reasons.append(
                    f"container {status.name} is waiting: {waiting.reason}: {waiting.message or ''}"
                )
        for condition in (pod.status.conditions or []) if pod.status else []:
            if condition.type == "PodScheduled" and condition.status == "False":
                reasons.append(f"not scheduled: {condition.reason}: {condition.message or ''}")
        if not reasons:
            return ""
        return (
            f"pod {pod.metadata.name} in {self.where} did not start within {self.startup_timeout:g}s: "
            + "; ".join(reason.rstrip(": ") for reason in reasons)
        )

    def _ended(self, pod: Any, name: str, phase: str, attempt: int, outputs: dict[str, Any]) -> JobState:
        container = _reported_container(pod)
        terminated = _terminated(pod, container)
        if terminated is not None:
            outputs["exit_code"] = str(terminated.exitCode)
            outputs["termination_message"] = (terminated.message or "").strip()
        if self.args.get_logs and self.args.log_lines:
            outputs["logs"] = self._logs(name, container)
        if self.args.on_finish == "delete" or (
            self.args.on_finish == "delete_succeeded" and phase == "Succeeded"
        ):
            self._delete(name)
        exit_code = outputs["exit_code"] or "unknown"
        message = f"pod {name} in {self.where} {phase} (exit code {exit_code})"
        if phase == "Failed" and outputs["termination_message"]:
            # The end of what it said (a `bash -x` trace ends with the command that exited).
            tail = [line for line in outputs["termination_message"].splitlines() if line.strip()][-3:]
            message += f": {' / '.join(tail)[-500:]}"
        status = JobStatus.SUCCEEDED if phase == "Succeeded" else JobStatus.FAILED
        return JobState(name, status, message, outputs, attempt)

    def _logs(self, name: str, container: str) -> str:
        with self._calls():
            lines = list(
                self.client.log(
                    name,
                    namespace=self.args.namespace,
                    container=container or None,
                    tail_lines=self.args.log_lines,
                )
            )
        text = "".join(lines)
        raw = text.encode()
        if len(raw) > MAX_OUTPUT_BYTES:  # keep the end: that is where a failure says why
            text = raw[-MAX_OUTPUT_BYTES:].decode("utf-8", "ignore")
        return text

    def _delete(self, name: str) -> None:
        from lightkube import ApiError
        from lightkube.resources.core_v1 import Pod

        with self._calls():
            try:
                self.client.delete(Pod, name, namespace=self.args.namespace)
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
        log.info("deleted pod %s/%s", self.args.namespace, name)


def _reported_container(pod: Any) -> str:
    containers = pod.spec.containers if pod.spec is not None else []
    return str(containers[0].name) if containers else ""


def _terminated(pod: Any, container: str) -> Any:
    for status in (pod.status.containerStatuses or []) if pod.status else []:
        if status.name == container and status.state is not None:
            return status.state.terminated
    return None


@contextlib.contextmanager
def _chain(cluster: str, principal: str, namespace: str) -> Iterator[None]:
    """lightkube's and argoplug.kube's errors as the link of the chain that broke.

    EKS answers 401 to a token whose principal has no access entry (or aws-auth mapping), and a request
    as `system:anonymous` means no token reached it; the others are `argoplug.kube.errors`' translation
    (a 403 names the user, the verb and the RBAC rule that would allow it).
    """
    from lightkube import ApiError

    from argoplug.kube.errors import error_for

    try:
        yield
    except ApiError as exc:
        code = exc.status.code
        message = exc.status.message or ""
        if code == 401 or (code == 403 and "system:anonymous" in message):
            raise PermanentError(
                f"EKS cluster {cluster} does not map {principal} to a Kubernetes user ({code}: {message}): "
                f"give it an access entry (aws eks create-access-entry --cluster-name {cluster} "
                f"--principal-arn <role ARN> --username <user>) or a mapRoles entry in the aws-auth "
                f"ConfigMap, then bind that user to a Role in namespace {namespace!r} (argoplug build "
                "writes both)"
            ) from exc
        translated = error_for(exc, identity=principal)
        if translated is None:
            raise
        if code == 403 and isinstance(translated, PermanentError):
            translated = PermanentError(
                f"{translated.message} (the user is the one the access entry of {principal} names on "
                f"cluster {cluster})"
            )
        raise translated from exc
    except (PermanentError, TemporaryError):
        raise
    except Exception as exc:
        translated = error_for(exc, identity=principal)
        if translated is None:
            raise
        raise translated from exc
