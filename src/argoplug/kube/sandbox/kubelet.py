"""The sandbox's scheduler and kubelet: pods bound to the one node `argoplug-sandbox`, their containers run
as local processes (or as a script says), their status written as a kubelet writes it, their logs served.

Reproduces, in its own code: the kubelet's status (pkg/kubelet/status/generate.go: the conditions
PodReadyToStartContainers, Initialized, Ready, ContainersReady and PodScheduled with their reasons; the
container states of kuberuntime), the pod phase (pkg/kubelet/kubelet_pods.go getPhase), restarts with
back-off (kuberuntime_manager.go), the termination message of `FallbackToLogsOnError`
(kuberuntime_container.go: the last 80 lines of the log, at most 2048 bytes), `$(VAR)` expansion of env,
command and args (third_party/forked/golang/expansion), and the log endpoint's answers (the API server's
ValidateContainer, the kubelet's validateContainerLogStatus).

- A pod created without `spec.nodeName` is bound to `argoplug-sandbox` (spec.nodeName, condition
  PodScheduled); a pod bound to another node is left as written. The kubelet then writes its status through
  the `status` subresource (manager `kubelet`): phase Pending, hostIP and podIP 127.0.0.1, startTime.
- Each container whose `command[0]` is an executable here (`shutil.which`) runs as a process: argv is
  command + args (the image is not pulled and its entrypoint is unknown, so a container without `command`
  does not run), cwd a temporary folder of the pod (removed when it is done), env PATH, HOME and HOSTNAME
  then the container's `env` (values; fieldRef of metadata.name/namespace/uid/labels/annotations,
  spec.nodeName/serviceAccountName, status.podIP/hostIP; secretKeyRef, configMapKeyRef; `envFrom` of Secrets
  and ConfigMaps; anything else is a CreateContainerConfigError, not retried). stdout and stderr go,
  interleaved, to the container's log (the last 10 MiB kept, and the previous run's). The annotation
  `argoplug.dev/sandbox-ran` says, a line per container run, `<argv as JSON>; the image <image> is not
  pulled: the command ran on this machine`. Running: state.running, ready, started. Exited: state.terminated
  (exitCode, reason Completed or Error, a killed process 128+signal, containerID
  `argoplug-sandbox://<pid>`); restartPolicy Always (the default) and OnFailure restart it (restartCount,
  lastState; the first restart at once, then CrashLoopBackOff from 0.5 s doubling to 10 s).
- A pod with the annotation `argoplug.dev/sandbox-script` is not run: its script is followed instead
  (`parse_script` gives the format; an invalid one is a CreateContainerConfigError naming the problem).
- Any other container waits with reason ErrImagePull (no executable, no script), its pod Pending.
- A pod deleted (or given a deletionTimestamp) has its processes sent SIGTERM, then SIGKILL after its
  terminationGracePeriodSeconds (at most 5 s here); `Kubelet.stop` kills every process at once.
- `pod_log` answers `pods/<name>/log` (`container`, `previous`, `tailLines`, `limitBytes`, `sinceSeconds`,
  `timestamps`; `follow` is answered as without it). A container the kubelet does not run answers the
  annotation `argoplug.dev/sandbox-log` (empty without it), as the sandbox did before it ran pods.

Init containers, probes, volumes and resources are not modelled.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import IO, Any

from argoplug.kube.sandbox.errors import ApiStatusError, FieldError, bad_request, invalid
from argoplug.kube.sandbox.resources import ResourceType
from argoplug.kube.sandbox.store import Event, Store, rfc3339

__all__ = [
    "LOG_ANNOTATION",
    "NODE_NAME",
    "RAN_ANNOTATION",
    "SCRIPT_ANNOTATION",
    "ContainerLog",
    "Kubelet",
    "ScriptError",
    "Step",
    "parse_script",
    "pod_log",
]

NODE_NAME = "argoplug-sandbox"
RAN_ANNOTATION = "argoplug.dev/sandbox-ran"
SCRIPT_ANNOTATION = "argoplug.dev/sandbox-script"
LOG_ANNOTATION = "argoplug.dev/sandbox-log"
_NODE_IP = "127.0.0.1"
_LOG_BYTES = 10 * 1024 * 1024
_GRACE_CAP = 5.0
_BACKOFF_START, _BACKOFF_CAP = 0.5, 10.0
_MESSAGE_LINES, _MESSAGE_BYTES = 80, 2048
_TERMINAL = ("Succeeded", "Failed")
_PHASES = ("Pending", "Running", *_TERMINAL)
_KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
_STEP_KEYS = ("after", "phase", "exitCode", "waiting", "terminated", "log")
_REFERENCE = re.compile(r"\$(\$|\(([^)]*)\))")
_LABEL_PATH = re.compile(r"metadata\.(labels|annotations)\['([^']*)'\]$")


# -- logs ------------------------------------------------------------------------------------------------


class ContainerLog:
    """One run's output: lines with the time each began, the oldest dropped past `limit` bytes."""

    def __init__(self, *, limit: int = _LOG_BYTES) -> None:
        self._limit = limit
        self._lines: deque[tuple[float, bytes]] = deque()
        self._partial = bytearray()
        self._partial_time = 0.0
        self._size = 0
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        now = time.time()
        with self._lock:
            start = 0
            while (end := data.find(b"\n", start)) >= 0:
                if self._partial:
                    self._lines.append((self._partial_time, bytes(self._partial) + data[start : end + 1]))
                    self._partial.clear()
                else:
                    self._lines.append((now, data[start : end + 1]))
                start = end + 1
            if start < len(data):
                if not self._partial:
                    self._partial_time = now
                self._partial += data[start:]
            self._size += len(data)
            while self._size > self._limit and self._lines:
                self._size -= len(self._lines.popleft()[1])
            if self._size > self._limit:
                del self._partial[: self._size - self._limit]
                self._size = self._limit

    def read(self, *, tail: int | None = None, since: float | None = None, timestamps: bool = False) -> bytes:
        """The log: its last `tail` lines, those begun at or after `since` (epoch seconds), each prefixed
        with its RFC 3339 time when `timestamps` (as the kubelet's `--timestamps`)."""
        with self._lock:
            lines = list(self._lines)
            if self._partial:
                lines.append((self._partial_time, bytes(self._partial)))
        if since is not None:
            lines = [line for line in lines if line[0] >= since]
        if tail is not None:
            lines = lines[-tail:] if tail else []
        if timestamps:
            return b"".join(_nano_time(at).encode() + b" " + text for at, text in lines)
        return b"".join(text for _, text in lines)


def _nano_time(seconds: float) -> str:
    # Go's RFC3339Nano: the fraction without its trailing zeros.
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def _tail(data: bytes, lines: int | None) -> bytes:
    if lines is None:
        return data
    log = ContainerLog(limit=len(data) + 1)
    log.write(data)
    return log.read(tail=lines)


# -- scripts ---------------------------------------------------------------------------------------------


class ScriptError(ValueError):
    """A `argoplug.dev/sandbox-script` annotation that is not a valid script; the message says where."""


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of a script: after `after` seconds, append `log` and put the pod in `phase` (None: keep)."""

    after: float = 0.0
    phase: str | None = None
    exit_code: int = 0
    waiting: Mapping[str, str] | None = None
    terminated: Mapping[str, str] | None = None
    log: str = ""


def parse_script(text: str) -> list[Step]:
    """The steps of an `argoplug.dev/sandbox-script` annotation: a JSON list of one or more objects, each

        {"after": 0.5, "phase": "Pending" | "Running" | "Succeeded" | "Failed", "log": "text\\n",
         "waiting": {"reason": "ImagePullBackOff", "message": "..."},          (phase Pending only)
         "exitCode": 3, "terminated": {"reason": "OOMKilled", "message": "..."}} (Succeeded/Failed only)

    every key optional: `after` seconds after the step before (default 0); `phase` the pod's phase from then,
    every container's state following it (Pending: waiting, reason ContainerCreating unless `waiting` says;
    Running: running and ready; Succeeded: terminated with exitCode 0; Failed: terminated with `exitCode`,
    default 1, never 0); `log` appended to the first container's log. A terminal step is the last. The
    restartPolicy is not applied: the script says what happens.

    Raises ScriptError naming the step and the problem.
    """
    try:
        steps = json.loads(text)
    except ValueError as exc:
        raise ScriptError(f"not JSON: {exc}") from None
    if not isinstance(steps, list) or not steps:
        raise ScriptError("expected a JSON list of one or more steps (objects)")
    parsed: list[Step] = []
    for number, step in enumerate(steps, start=1):
        where = f"step {number}"
        if not isinstance(step, dict):
            raise ScriptError(f"{where}: expected an object, got {json.dumps(step)}")
        if parsed and parsed[-1].phase in _TERMINAL:
            raise ScriptError(f"{where}: comes after the terminal step {number - 1} ({parsed[-1].phase})")
        unknown = [key for key in step if key not in _STEP_KEYS]
        if unknown:
            raise ScriptError(f"{where}: unknown key {unknown[0]!r} (the keys are {', '.join(_STEP_KEYS)})")
        after = step.get("after", 0)
        if isinstance(after, bool) or not isinstance(after, int | float) or after < 0:
            raise ScriptError(f"{where}: after must be a number of seconds >= 0, got {json.dumps(after)}")
        phase = step.get("phase")
        if phase is not None and phase not in _PHASES:
            raise ScriptError(f"{where}: phase must be one of {', '.join(_PHASES)}, got {json.dumps(phase)}")
        log = step.get("log", "")
        if not isinstance(log, str):
            raise ScriptError(f"{where}: log must be a string, got {json.dumps(log)}")
        exit_code = step.get("exitCode", 1 if phase == "Failed" else 0)
        if "exitCode" in step and phase not in _TERMINAL:
            raise ScriptError(f"{where}: exitCode is for a Succeeded or Failed step")
        if isinstance(exit_code, bool) or not isinstance(exit_code, int):
            raise ScriptError(f"{where}: exitCode must be an integer, got {json.dumps(exit_code)}")
        if (phase == "Succeeded") != (exit_code == 0) and phase in _TERMINAL:
            raise ScriptError(f"{where}: a {phase} step cannot have exitCode {exit_code}")
        states: dict[str, Mapping[str, str] | None] = {}
        for key, allowed in (("waiting", ("Pending",)), ("terminated", _TERMINAL)):
            value = step.get(key)
            states[key] = value
            if value is None:
                continue
            if phase not in allowed:
                raise ScriptError(f"{where}: {key} is for a {' or '.join(allowed)} step")
            if not isinstance(value, dict) or any(k not in ("reason", "message") for k in value):
                raise ScriptError(f"{where}: {key} must be an object of reason and message")
            if not all(isinstance(v, str) for v in value.values()):
                raise ScriptError(f"{where}: {key}'s reason and message must be strings")
            if key == "waiting" and not value.get("reason"):
                raise ScriptError(f"{where}: waiting needs a reason")
        parsed.append(Step(float(after), phase, exit_code, states["waiting"], states["terminated"], log))
    return parsed


# -- what a container runs -------------------------------------------------------------------------------


class _ConfigError(Exception):
    """CreateContainerConfigError: the container's configuration cannot be made (the message says why)."""


def _expand(text: str, env: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(1) == "$":
            return "$"
        name = match.group(2)
        return env[name] if name in env else match.group(0)

    return _REFERENCE.sub(one, text)


def _field(pod: Mapping[str, Any], path: str) -> str:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName") or NODE_NAME,
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": _NODE_IP,
        "status.hostIP": _NODE_IP,
    }
    if path in simple:
        return str(simple[path] or "")
    match = _LABEL_PATH.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise _ConfigError(f"the fieldRef {path!r} is not one the argoplug sandbox provides")


class _Sources:
    """The pod's Secrets and ConfigMaps, read from the store as the kubelet reads them from the API."""

    def __init__(self, store: Store, namespace: str) -> None:
        self.store, self.namespace = store, namespace

    def data(self, kind: str, name: str, optional: bool) -> dict[str, str] | None:
        rtype = self.store.resolve("", "v1", "secrets" if kind == "Secret" else "configmaps")
        obj = self.store.find(rtype, self.namespace, name)
        if obj is None:
            if optional:
                return None
            raise _ConfigError(f'{kind.lower()} "{name}" not found')
        data = {k: str(v) for k, v in (obj.get("data") or {}).items()}
        if kind == "Secret":
            data = {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in data.items()}
        return data

    def key(self, kind: str, ref: Mapping[str, Any]) -> str | None:
        name, key, optional = str(ref.get("name", "")), str(ref.get("key", "")), bool(ref.get("optional"))
        data = self.data(kind, name, optional)
        if data is None:
            return None
        if key not in data:
            if optional:
                return None
            raise _ConfigError(f"couldn't find key {key} in {kind} {self.namespace}/{name}")
        return data[key]


def _container_env(pod: Mapping[str, Any], container: Mapping[str, Any], store: Store) -> dict[str, str]:
    """The container's declared environment (envFrom, then env in order, `$(VAR)` expanded)."""
    sources = _Sources(store, str(pod["metadata"].get("namespace", "")))
    env: dict[str, str] = {}
    for source in container.get("envFrom") or ():
        prefix = str(source.get("prefix") or "")
        for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(field)
            if ref is not None:
                data = sources.data(kind, str(ref.get("name", "")), bool(ref.get("optional")))
                env.update({prefix + k: v for k, v in (data or {}).items()})
    for var in container.get("env") or ():
        name, source = str(var.get("name", "")), var.get("valueFrom")
        value: str | None
        if source is None:
            value = _expand(str(var.get("value") or ""), env)
        elif "fieldRef" in source:
            value = _field(pod, str(source["fieldRef"].get("fieldPath", "")))
        elif "secretKeyRef" in source:
            value = sources.key("Secret", source["secretKeyRef"])
        elif "configMapKeyRef" in source:
            value = sources.key("ConfigMap", source["configMapKeyRef"])
        else:
            raise _ConfigError(
                f"env {name}: valueFrom {', '.join(source)} is not one the argoplug sandbox provides"
            )
        if value is not None:
            env[name] = value
    return env


@dataclasses.dataclass
class _Plan:
    argv: list[str]
    env: dict[str, str]
    executable: str  # argv[0] found on the sandbox's PATH (the container's own PATH may not have it)


def _plan(pod: Mapping[str, Any], container: Mapping[str, Any], store: Store) -> _Plan | str:
    """What the container runs here, or the message of its ErrImagePull. Raises _ConfigError."""
    image = str(container.get("image", ""))
    command = [str(part) for part in container.get("command") or ()]
    tail = f'for image "{image}", and no {SCRIPT_ANNOTATION} annotation'
    if not command:
        return f"argoplug sandbox: no command (the image's entrypoint is not known here) to run {tail}"
    path = os.environ.get("PATH", os.defpath)
    executable = shutil.which(command[0], path=path)
    if executable is None:  # the image is "pulled" before the environment is made, as kuberuntime does
        return f'argoplug sandbox: no executable "{command[0]}" on this machine to run {tail}'
    declared = _container_env(pod, container, store)
    base = {"PATH": path, "HOME": os.environ.get("HOME", "/"), "HOSTNAME": str(pod["metadata"]["name"])}
    args = [str(part) for part in container.get("args") or ()]
    return _Plan([_expand(part, declared) for part in command + args], base | declared, executable)


# -- the kubelet's records -------------------------------------------------------------------------------


@dataclasses.dataclass
class _Container:
    name: str
    image: str
    message_policy: str
    runs: bool = False  # the kubelet runs it (a process or the script): it answers its log
    state: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}}
    )
    last_state: dict[str, Any] = dataclasses.field(default_factory=dict)
    restart_count: int = 0
    container_id: str = ""
    log: ContainerLog = dataclasses.field(default_factory=ContainerLog)
    previous: ContainerLog | None = None
    process: subprocess.Popen[bytes] | None = None

    def wire(self) -> dict[str, Any]:
        running = "running" in self.state
        out: dict[str, Any] = {
            "name": self.name,
            "state": self.state,
            "lastState": self.last_state,
            "ready": running,
            "restartCount": self.restart_count,
            "image": self.image,
            "imageID": "",
        }
        if self.container_id:
            out["containerID"] = self.container_id
        out["started"] = running
        return out

    def start_run(self, container_id: str, started: str) -> None:
        if self.container_id:  # a restart: this run's log is new, the last one is `previous`
            self.previous, self.log = self.log, ContainerLog()
            self.last_state = {"terminated": self.state.get("terminated") or self.last_state["terminated"]}
            self.restart_count += 1
        self.container_id = container_id
        self.state = {"running": {"startedAt": started}}


@dataclasses.dataclass
class _Pod:
    uid: str
    namespace: str
    name: str
    restart_policy: str
    start_time: str
    containers: list[_Container]
    script_phase: str | None = None
    cwd: str | None = None
    ran: list[str] = dataclasses.field(default_factory=list)
    stopping: threading.Event = dataclasses.field(default_factory=threading.Event)
    threads: list[threading.Thread] = dataclasses.field(default_factory=list)
    live: int = 0

    def phase(self) -> str:
        """getPhase over the containers (a script's phase when it gives one)."""
        if self.script_phase:
            return self.script_phase
        running = waiting = stopped = succeeded = 0
        for c in self.containers:
            if "running" in c.state:
                running += 1
            elif "terminated" in c.state:
                stopped += 1
                succeeded += c.state["terminated"]["exitCode"] == 0
            elif "terminated" in c.last_state:
                stopped += 1
            else:
                waiting += 1
        if waiting:
            return "Pending"
        if running:
            return "Running"
        if not stopped:
            return "Pending"
        if self.stopping.is_set():  # podIsTerminal: nothing restarts any more
            return "Succeeded" if stopped == succeeded else "Failed"
        if self.restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if self.restart_policy == "Never" else "Running"

    def signal(self, signum: int) -> None:
        for c in self.containers:
            process = c.process
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signum)

    def remove_folder(self) -> None:
        if self.cwd is not None:
            shutil.rmtree(self.cwd, ignore_errors=True)
            self.cwd = None


def _condition(kind: str, true: bool, reason: str = "", message: str = "") -> dict[str, Any]:
    condition: dict[str, Any] = {"type": kind, "status": "True" if true else "False", "lastProbeTime": None}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def _status(pod: _Pod, old: Mapping[str, Any], now: str) -> dict[str, Any]:
    """generate.go's conditions and the kubelet's status of `pod`, transition times kept from `old`."""
    phase = pod.phase()
    unready = [c.name for c in pod.containers if "running" not in c.state]
    if phase in _TERMINAL:
        ready = ("False", "PodCompleted" if phase == "Succeeded" else "PodFailed", "")
    elif unready:
        ready = ("False", "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]")
    else:
        ready = ("True", "", "")
    conditions = [
        _condition("PodReadyToStartContainers", phase not in _TERMINAL),
        _condition("Initialized", True, "PodCompleted" if phase == "Succeeded" else ""),
        _condition("Ready", ready[0] == "True", *ready[1:]),
        _condition("ContainersReady", ready[0] == "True", *ready[1:]),
        _condition("PodScheduled", True),
    ]
    before = {c.get("type"): c for c in old.get("conditions") or ()}
    for condition in conditions:
        previous = before.get(condition["type"]) or {}
        same = previous.get("status") == condition["status"] and previous.get("lastTransitionTime")
        condition["lastTransitionTime"] = previous["lastTransitionTime"] if same else now
        # the Go struct's field order: type, status, lastProbeTime, lastTransitionTime, reason, message
        for key in ("reason", "message"):
            if key in condition:
                condition[key] = condition.pop(key)
    others = [c for c in old.get("conditions") or () if c.get("type") not in _KUBELET_CONDITIONS]
    return {
        "phase": phase,
        "conditions": conditions + others,
        "hostIP": _NODE_IP,
        "hostIPs": [{"ip": _NODE_IP}],
        "podIP": _NODE_IP,
        "podIPs": [{"ip": _NODE_IP}],
        "startTime": pod.start_time,
        "containerStatuses": [c.wire() for c in pod.containers],
        "qosClass": old.get("qosClass", "BestEffort"),
    }


def _grace(pod: Mapping[str, Any]) -> float:
    """terminationGracePeriodSeconds (default 30), at most 5 s in the sandbox."""
    grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return min(float(30 if grace is None else grace), _GRACE_CAP)


def _go_duration(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms" if seconds < 1 else f"{seconds:g}s"


# -- the kubelet -----------------------------------------------------------------------------------------


class Kubelet:
    """Binds and runs the pods of `store` (see the module's docstring) in a thread, woken by the store's
    pod events, until `stop`; `node_name` is the node it binds pods to and runs them on."""

    def __init__(self, store: Store, *, node_name: str = NODE_NAME) -> None:
        self.store = store
        self.node_name = node_name
        self._pods_type: ResourceType = store.resolve("", "v1", "pods")
        self._events: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self._pods: dict[str, _Pod] = {}
        self._retired: list[_Pod] = []
        self._kills: dict[str, tuple[float, _Pod]] = {}
        self._thread = threading.Thread(target=self._loop, name="kube-sandbox-kubelet", daemon=True)
        self._watching = False

    def start(self) -> None:
        for event in self.store.watch(self._pods_type, None, "", self._listen):
            self._events.put(event)
        self._watching = True
        self._thread.start()

    def stop(self) -> None:
        """Stop the kubelet: every process killed (SIGKILL), every thread joined, every pod folder removed."""
        if self._watching:
            self.store.unwatch(self._listen)
            self._watching = False
        if self._thread.ident is not None:
            self._events.put(None)
            self._thread.join(timeout=10)
        with self.store.lock:
            pods = [*self._pods.values(), *self._retired]
            for pod in pods:
                pod.stopping.set()
                pod.signal(signal.SIGKILL)
        for pod in pods:
            for thread in pod.threads:
                thread.join(timeout=10)
            with self.store.lock:
                pod.remove_folder()

    def _listen(self, event: Event) -> None:
        # Called by the store under its lock: only queue it.
        if event.rtype.key == self._pods_type.key:
            self._events.put(event)

    def _loop(self) -> None:
        while True:
            timeout = None
            if self._kills:
                timeout = max(0.0, min(at for at, _ in self._kills.values()) - time.monotonic())
            try:
                event = self._events.get(timeout=timeout)
            except queue.Empty:
                event = None
            else:
                if event is None:
                    return
                self._handle(event)
            now = time.monotonic()
            for uid, (at, pod) in list(self._kills.items()):
                if at <= now:
                    del self._kills[uid]
                    with self.store.lock:
                        pod.signal(signal.SIGKILL)
            self._retired = [p for p in self._retired if any(t.is_alive() for t in p.threads)]

    def _handle(self, event: Event) -> None:
        meta = event.obj["metadata"]
        uid = str(meta["uid"])
        if event.type == "DELETED":
            self._terminate(uid, event.obj, forget=True)
            return
        if uid in self._pods:
            if meta.get("deletionTimestamp"):
                self._terminate(uid, event.obj, forget=False)
            return
        node = (event.obj.get("spec") or {}).get("nodeName")
        if meta.get("deletionTimestamp") or (node and node != self.node_name):
            return
        with self.store.lock:
            current = self.store.find(self._pods_type, str(meta.get("namespace", "")), str(meta["name"]))
            if current is None or current["metadata"]["uid"] != uid:
                return
            if not (current.get("spec") or {}).get("nodeName"):
                self._bind(current)
            elif current["spec"]["nodeName"] != self.node_name:
                return
            self._admit(uid, str(meta.get("namespace", "")), str(meta["name"]))

    def _bind(self, obj: dict[str, Any]) -> None:
        """The scheduler's binding (pods/binding): spec.nodeName and the PodScheduled condition."""
        now = rfc3339(self.store.clock())

        def bind(new: dict[str, Any]) -> None:
            new.setdefault("spec", {})["nodeName"] = self.node_name
            status = new.setdefault("status", {})
            conditions = [c for c in status.get("conditions") or () if c.get("type") != "PodScheduled"]
            scheduled = {"type": "PodScheduled", "status": "True", "lastProbeTime": None}
            status["conditions"] = [*conditions, scheduled | {"lastTransitionTime": now}]

        self.store.set_fields(self._pods_type, obj, bind)

    def _admit(self, uid: str, namespace: str, name: str) -> None:
        """Take the bound pod: its first status, then its processes or its script (under the store lock)."""
        obj = self.store.find(self._pods_type, namespace, name)
        assert obj is not None
        spec, annotations = obj.get("spec") or {}, obj["metadata"].get("annotations") or {}
        pod = _Pod(
            uid=uid,
            namespace=namespace,
            name=name,
            restart_policy=str(spec.get("restartPolicy") or "Always"),
            start_time=rfc3339(self.store.clock()),
            containers=[
                _Container(
                    name=str(c.get("name", "")),
                    image=str(c.get("image", "")),
                    message_policy=str(c.get("terminationMessagePolicy") or "File"),
                )
                for c in spec.get("containers") or ()
            ],
        )
        self._pods[uid] = pod
        work: list[tuple[Any, tuple[Any, ...]]] = []
        script = annotations.get(SCRIPT_ANNOTATION)
        if script is not None:
            try:
                steps = parse_script(str(script))
            except ScriptError as error:
                message = (
                    f"argoplug sandbox: the {SCRIPT_ANNOTATION} annotation is not a valid script: {error}"
                )
                for c in pod.containers:
                    c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": message}}
            else:
                work.append((self._run_script, (pod, steps)))
            for c in pod.containers:
                c.runs = True
        else:
            for c, container in zip(pod.containers, spec.get("containers") or (), strict=True):
                try:
                    plan = _plan(obj, container, self.store)
                except _ConfigError as error:
                    c.runs = True
                    c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(error)}}
                    continue
                if isinstance(plan, str):
                    c.state = {"waiting": {"reason": "ErrImagePull", "message": plan}}
                    continue
                c.runs = True
                if pod.cwd is None:
                    pod.cwd = tempfile.mkdtemp(prefix=f"argoplug-pod-{name[:40]}-")
                work.append((self._run_process, (pod, c, plan)))
        self._publish(pod)
        for target, args in work:
            thread = threading.Thread(
                target=self._worker, args=(pod, target, args), name=f"kube-sandbox-pod-{name}", daemon=True
            )
            pod.threads.append(thread)
            pod.live += 1
            thread.start()

    def _terminate(self, uid: str, obj: Mapping[str, Any], *, forget: bool) -> None:
        """Stop the pod's processes: SIGTERM, SIGKILL after the grace period of `obj` (the pod as deleted)."""
        with self.store.lock:
            pod = self._pods.pop(uid, None) if forget else self._pods.get(uid)
            if pod is None:
                return
            if forget:
                self._retired.append(pod)
                if not pod.live:
                    pod.remove_folder()
            if pod.stopping.is_set():
                return
            pod.stopping.set()
            grace = _grace(obj)
            pod.signal(signal.SIGTERM if grace > 0 else signal.SIGKILL)
            self._kills[uid] = (time.monotonic() + grace, pod)

    def _publish(self, pod: _Pod) -> None:
        """Write the pod's status through its `status` subresource, as the kubelet's status manager does."""
        with self.store.lock:
            current = self.store.find(self._pods_type, pod.namespace, pod.name)
            if current is None or current["metadata"]["uid"] != pod.uid:
                return
            body = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod.name,
                    "namespace": pod.namespace,
                    "resourceVersion": current["metadata"]["resourceVersion"],
                },
                "status": _status(pod, current.get("status") or {}, rfc3339(self.store.clock())),
            }
            with contextlib.suppress(ApiStatusError):
                self.store.replace(
                    self._pods_type,
                    pod.namespace,
                    pod.name,
                    body,
                    version="v1",
                    manager="kubelet",
                    subresource="status",
                )

    def _worker(self, pod: _Pod, target: Any, args: tuple[Any, ...]) -> None:
        try:
            target(*args)
        finally:
            with self.store.lock:
                pod.live -= 1
                if not pod.live:
                    pod.remove_folder()

    def _run_script(self, pod: _Pod, steps: list[Step]) -> None:
        for step in steps:
            if pod.stopping.wait(step.after):
                return
            with self.store.lock:
                if step.log and pod.containers:
                    pod.containers[0].log.write(step.log.encode())
                if step.phase is not None:
                    pod.script_phase = step.phase
                    for c in pod.containers:
                        self._script_state(pod, c, step)
                self._publish(pod)

    def _script_state(self, pod: _Pod, c: _Container, step: Step) -> None:
        now = rfc3339(self.store.clock())
        if step.phase == "Pending":
            c.state = {"waiting": dict(step.waiting or {"reason": "ContainerCreating"})}
        elif step.phase == "Running":
            if "running" not in c.state:
                c.container_id = f"argoplug-sandbox://script-{pod.uid[:8]}"
                c.state = {"running": {"startedAt": now}}
        else:
            started = (c.state.get("running") or {}).get("startedAt", now)
            given = dict(step.terminated or {})
            reason = given.get("reason") or ("Completed" if step.exit_code == 0 else "Error")
            terminated: dict[str, Any] = {"exitCode": step.exit_code, "reason": reason}
            if given.get("message"):
                terminated["message"] = given["message"]
            c.container_id = c.container_id or f"argoplug-sandbox://script-{pod.uid[:8]}"
            terminated |= {"startedAt": started, "finishedAt": now, "containerID": c.container_id}
            c.state = {"terminated": terminated}

    def _run_process(self, pod: _Pod, c: _Container, plan: _Plan) -> None:
        backoff = 0.0
        while not pod.stopping.is_set():
            started = time.monotonic()
            terminated = self._run_once(pod, c, plan)
            restart = not pod.stopping.is_set() and (
                pod.restart_policy == "Always"
                or (pod.restart_policy == "OnFailure" and terminated["exitCode"] != 0)
            )
            with self.store.lock:
                c.state = {"terminated": terminated}
                self._publish(pod)
            if not restart:
                return
            if time.monotonic() - started > 2 * _BACKOFF_CAP:
                backoff = 0.0  # it ran long enough: as the kubelet forgets a back-off
            delay, backoff = backoff, min(backoff * 2, _BACKOFF_CAP) if backoff else _BACKOFF_START
            if delay:
                message = (
                    f"back-off {_go_duration(delay)} restarting failed container={c.name} "
                    f"pod={pod.name}_{pod.namespace}({pod.uid})"
                )
                with self.store.lock:
                    c.last_state = {"terminated": terminated}
                    c.state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
                    self._publish(pod)
                if pod.stopping.wait(delay):
                    return

    def _run_once(self, pod: _Pod, c: _Container, plan: _Plan) -> dict[str, Any]:
        """Run the container's process once; its `terminated` state."""
        started = rfc3339(self.store.clock())
        try:
            process = subprocess.Popen(
                plan.argv,
                executable=plan.executable,
                cwd=pod.cwd,
                env=plan.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: signals reach what it starts
            )
        except OSError as exc:
            with self.store.lock:
                c.start_run(f"argoplug-sandbox://failed-{pod.uid[:8]}", started)
                failed = {
                    "exitCode": 128,
                    "reason": "StartError",
                    "message": f"argoplug sandbox: cannot run {json.dumps(plan.argv)}: {exc}",
                    "startedAt": started,
                    "finishedAt": rfc3339(self.store.clock()),
                    "containerID": c.container_id,
                }
                c.state = {"terminated": failed}
            return failed
        assert process.stdout is not None
        reader = threading.Thread(
            target=_pump, args=(process.stdout, c), name=f"kube-sandbox-log-{pod.name}", daemon=True
        )
        with self.store.lock:
            c.start_run(f"argoplug-sandbox://{process.pid}", started)
            c.process = process
            reader.start()
            if pod.stopping.is_set():
                pod.signal(signal.SIGKILL)
            self._note_ran(pod, c, plan.argv)
            self._publish(pod)
        code = process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # what it left behind dies with it, as in a container
        reader.join(timeout=5)
        if not reader.is_alive():
            process.stdout.close()
        with self.store.lock:
            c.process = None
        exit_code = code if code >= 0 else 128 - code
        terminated: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
        }
        if exit_code != 0 and c.message_policy == "FallbackToLogsOnError":
            message = c.log.read(tail=_MESSAGE_LINES)[-_MESSAGE_BYTES:]
            if message:
                terminated["message"] = message.decode("utf-8", "replace")
        terminated |= {
            "startedAt": started,
            "finishedAt": rfc3339(self.store.clock()),
            "containerID": c.container_id,
        }
        return terminated

    def _note_ran(self, pod: _Pod, c: _Container, argv: list[str]) -> None:
        line = f"{json.dumps(argv)}; the image {c.image} is not pulled: the command ran on this machine"
        if line in pod.ran:
            return
        pod.ran.append(line)
        current = self.store.find(self._pods_type, pod.namespace, pod.name)
        if current is None or current["metadata"]["uid"] != pod.uid:
            return

        def note(new: dict[str, Any]) -> None:
            new["metadata"].setdefault("annotations", {})[RAN_ANNOTATION] = "\n".join(pod.ran)

        self.store.set_fields(self._pods_type, current, note)

    # -- logs --------------------------------------------------------------------------------------------

    def container_log(self, pod: Mapping[str, Any], container: str, *, previous: bool) -> ContainerLog | None:
        """The log of `container` of `pod` (its last run's, or the one before with `previous`), or None
        when this kubelet does not run it. Raises 400 as the kubelet's validateContainerLogStatus."""
        meta = pod["metadata"]
        with self.store.lock:
            record = self._pods.get(str(meta.get("uid")))
            found = next((c for c in record.containers if c.name == container), None) if record else None
            if found is None or not found.runs:
                return None
            state, last = found.state, found.last_state
            where = f'container "{container}" in pod "{meta["name"]}"'
            if previous:
                if "terminated" not in last or found.previous is None:
                    raise bad_request(
                        f'previous terminated container "{container}" in pod "{meta["name"]}" not found'
                    )
                return found.previous
            if "running" in state or "terminated" in state or "terminated" in last:
                return found.log
            reason = str((state.get("waiting") or {}).get("reason", ""))
            why = {
                "ErrImagePull": "image can't be pulled",
                "ImagePullBackOff": "trying and failing to pull image",
            }
            raise bad_request(
                f"{where} is waiting to start: {why.get(reason, reason or 'ContainerCreating')}"
            )


def _pump(stream: IO[bytes], c: _Container) -> None:
    log = c.log
    read = getattr(stream, "read1", stream.read)
    with contextlib.suppress(OSError, ValueError):
        while chunk := read(65536):
            log.write(chunk)


def _int_option(query: Mapping[str, str], key: str, name: str, minimum: int) -> int | None:
    value = query.get(key)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise bad_request(f'strconv.ParseInt: parsing "{value}": invalid syntax') from None
    if number < minimum:
        detail = "must be greater than or equal to 0" if minimum == 0 else "must be greater than 0"
        raise invalid("", "PodLogOptions", name, [FieldError.invalid(key, number, detail)])
    return number


def pod_log(kubelet: Kubelet | None, pod: Mapping[str, Any], query: Mapping[str, str]) -> bytes:
    """The body of GET pods/<name>/log for `pod` with the request's `query`.

    Raises 400 BadRequest for a container the pod does not have (or none named in a pod of several), a
    container waiting to start, `previous` without a previous run; 422 for a negative tailLines or a
    limitBytes / sinceSeconds below 1.
    """
    name = str(pod["metadata"]["name"])
    containers = [str(c.get("name", "")) for c in (pod.get("spec") or {}).get("containers") or ()]
    container = query.get("container") or ""
    if not container:
        if len(containers) != 1:
            choose = f", choose one of: [{' '.join(containers)}]" if containers else ""
            raise bad_request(f"a container name must be specified for pod {name}{choose}")
        container = containers[0]
    elif container not in containers:
        raise bad_request(f"container {container} is not valid for pod {name}")
    tail = _int_option(query, "tailLines", name, 0)
    limit = _int_option(query, "limitBytes", name, 1)
    since_seconds = _int_option(query, "sinceSeconds", name, 1)
    previous = query.get("previous", "").lower() in ("true", "1")
    timestamps = query.get("timestamps", "").lower() in ("true", "1")
    log = kubelet.container_log(pod, container, previous=previous) if kubelet is not None else None
    if log is not None:
        since = None if since_seconds is None else time.time() - since_seconds
        data = log.read(tail=tail, since=since, timestamps=timestamps)
    elif previous:
        raise bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
    else:
        annotations = pod["metadata"].get("annotations") or {}
        data = _tail(str(annotations.get(LOG_ANNOTATION, "")).encode(), tail)
    return data if limit is None else data[:limit]
