"""Pods run by the sandbox's scheduler and kubelet (`argoplug.kube.sandbox.kubelet`), through lightkube's real
client: a command runs to Succeeded or Failed with the kubelet's states, conditions and termination message,
env and fieldRefs reach it, restarts count, a delete kills the process, and `pods/log` answers as the API
server and kubelet do (tailLines, limitBytes, previous, the 400s).

The tests that hold on any cluster also run, marked `cluster`, against the cluster of KUBECONFIG (the image
`bash:5.2` is pulled there; the sandbox runs the command on this machine). Scripts, ErrImagePull for a
missing executable, the annotations and process ids are the sandbox's own.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from lightkube import ApiError, Client
from lightkube.config.client_adapter import Client as lightkube_http_client
from lightkube.config.client_adapter import ConnectionParams
from lightkube.resources.core_v1 import ConfigMap, Pod, Secret

from argoplug.kube.sandbox import KubeSandbox
from argoplug.kube.sandbox.kubelet import ScriptError, parse_script

from .conftest import KubeTarget, wait_until

IMAGE = "bash:5.2"
SCRIPT = "argoplug.dev/sandbox-script"


def pod(
    namespace: str,
    name: str,
    command: list[str] | None,
    *,
    restart: str | None = "Never",
    annotations: dict[str, str] | None = None,
    grace: int | None = None,
    **container: Any,
) -> Pod:
    """A pod of one container `main` of IMAGE running `command` (None: the image's entrypoint)."""
    main = {"name": "main", "image": IMAGE, **({"command": command} if command else {}), **container}
    spec: dict[str, Any] = {"containers": [main]}
    if restart:
        spec["restartPolicy"] = restart
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return Pod.from_dict(
        {"metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}}, "spec": spec}
    )


def patience(target: KubeTarget) -> float:
    return 20.0 if target.sandbox else 180.0  # a cluster pulls the image first


def pod_when(client: Client, namespace: str, name: str, check: Any, timeout: float = 20.0) -> Pod:
    """The pod once `check(pod)` holds."""

    def ready() -> Pod | None:
        found = client.get(Pod, name, namespace=namespace)
        return found if check(found) else None

    result: Pod = wait_until(ready, timeout=timeout)
    return result


def wait_for(target: KubeTarget, namespace: str, name: str, check: Any) -> Pod:
    return pod_when(target.client(), namespace, name, check, patience(target))


def in_phase(*phases: str) -> Any:
    return lambda p: p.status is not None and p.status.phase in phases


def main_status(p: Pod) -> Any:
    assert p.status is not None and p.status.containerStatuses
    return p.status.containerStatuses[0]


def has_status(p: Pod) -> bool:
    """The kubelet wrote the pod's container statuses."""
    return bool(p.status and p.status.containerStatuses)


def restarted(times: int) -> Any:
    return lambda p: has_status(p) and main_status(p).restartCount >= times


def conditions(p: Pod) -> dict[str, tuple[str, str | None]]:
    assert p.status is not None
    return {c.type: (c.status, c.reason) for c in p.status.conditions or ()}


def pid_of(p: Pod) -> int:
    container_id = main_status(p).containerID
    assert container_id.startswith("argoplug-sandbox://")
    return int(container_id.rpartition("/")[2])


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def api_error(call: Any, *args: Any, **kwargs: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        list(call(*args, **kwargs))
    return caught.value


@pytest.fixture
def sandbox_target(kube_target: KubeTarget) -> KubeTarget:
    if kube_target.sandbox is None:
        pytest.skip("the sandbox's own behaviour: a cluster pulls images and runs no scripts")
    return kube_target


@pytest.fixture
def http(kube_target: KubeTarget) -> Iterator[httpx2.Client]:
    """Raw requests (lightkube's `log` has no `previous` nor `limitBytes`)."""
    with lightkube_http_client(kube_target.config.get(), ConnectionParams(trust_env=False)) as client:
        yield client


# -- running a command ---------------------------------------------------------------------------------------


class TestCommand:
    def test_a_command_runs_to_succeeded_with_its_log(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = kube_target.client()
        client.create(pod(kube_namespace, "hello", ["bash", "-cx", "echo 'hello world!'"]))
        done = wait_for(kube_target, kube_namespace, "hello", in_phase("Succeeded", "Failed"))
        assert done.status is not None and done.status.phase == "Succeeded"
        terminated = main_status(done).state.terminated
        assert (terminated.exitCode, terminated.reason) == (0, "Completed")
        assert terminated.startedAt and terminated.finishedAt
        assert conditions(done)["Ready"] == ("False", "PodCompleted")
        assert conditions(done)["PodScheduled"] == ("True", None)
        assert list(client.log("hello", namespace=kube_namespace)) == [
            "+ echo 'hello world!'\n",
            "hello world!\n",
        ]
        if kube_target.sandbox:
            assert done.spec is not None and done.spec.nodeName == "argoplug-sandbox"
            assert (done.status.hostIP, done.status.podIP) == ("127.0.0.1", "127.0.0.1")
            assert done.status.startTime is not None
            assert done.metadata.annotations["argoplug.dev/sandbox-ran"] == (
                '["bash", "-cx", "echo \'hello world!\'"]; the image bash:5.2 is not pulled: '
                "the command ran on this machine"
            )
            assert {(m.manager, m.subresource) for m in done.metadata.managedFields} >= {
                ("kubelet", "status")
            }

    def test_a_non_zero_exit_fails_with_the_log_as_message(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        command = ["bash", "-c", "echo one; echo two >&2; exit 3"]
        kube_target.client().create(
            pod(kube_namespace, "failing", command, terminationMessagePolicy="FallbackToLogsOnError")
        )
        done = wait_for(kube_target, kube_namespace, "failing", in_phase("Succeeded", "Failed"))
        assert done.status is not None and done.status.phase == "Failed"
        terminated = main_status(done).state.terminated
        assert (terminated.exitCode, terminated.reason, terminated.message) == (3, "Error", "one\ntwo\n")
        assert conditions(done)["Ready"] == ("False", "PodFailed")

    def test_without_fallback_to_logs_there_is_no_message(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        kube_target.client().create(pod(kube_namespace, "quiet", ["bash", "-c", "echo said; exit 1"]))
        done = wait_for(kube_target, kube_namespace, "quiet", in_phase("Failed"))
        assert main_status(done).state.terminated.message is None

    def test_a_running_pod_is_ready_and_a_delete_kills_its_process(
        self, sandbox_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = sandbox_target.client()
        client.create(pod(kube_namespace, "sleeper", ["sleep", "60"]))
        running = wait_for(sandbox_target, kube_namespace, "sleeper", in_phase("Running"))
        status = main_status(running)
        assert status.state.running.startedAt and status.ready and status.started
        assert conditions(running)["Ready"] == ("True", None)
        assert conditions(running)["ContainersReady"] == ("True", None)
        pid = pid_of(running)
        assert not gone(pid)
        client.delete(Pod, "sleeper", namespace=kube_namespace)
        wait_until(lambda: gone(pid), timeout=5)

    def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_period(
        self, sandbox_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = sandbox_target.client()
        command = ["bash", "-c", "trap '' TERM; echo trapped; sleep 60"]
        client.create(pod(kube_namespace, "stubborn", command, grace=1))
        running = wait_for(sandbox_target, kube_namespace, "stubborn", in_phase("Running"))
        wait_until(lambda: list(client.log("stubborn", namespace=kube_namespace)) == ["trapped\n"])
        pid, deleted = pid_of(running), time.monotonic()
        client.delete(Pod, "stubborn", namespace=kube_namespace)
        time.sleep(0.3)
        assert not gone(pid)  # SIGTERM is ignored ...
        wait_until(lambda: gone(pid), timeout=5)  # ... SIGKILL comes after the grace period
        assert time.monotonic() - deleted >= 0.9

    def test_env_values_and_field_refs_reach_the_process(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = kube_target.client()
        client.create(
            Secret.from_dict(
                {"metadata": {"name": "s", "namespace": kube_namespace}, "stringData": {"k": "secret"}}
            )
        )
        client.create(
            ConfigMap.from_dict(
                {"metadata": {"name": "c", "namespace": kube_namespace}, "data": {"k": "config"}}
            )
        )
        names = [
            "GREETING",
            "TWICE",
            "POD_NAME",
            "POD_NAMESPACE",
            "POD_UID",
            "NODE",
            "POD_IP",
            "SECRET",
            "CONFIG",
        ]
        script = (
            f'echo "arg=$1"; for v in {" ".join(names)}; do echo "$v=${{!v}}"; done; '
            'echo "leak=${PYTEST_CURRENT_TEST:-none}"'
        )

        def field(path: str) -> dict[str, Any]:
            return {"fieldRef": {"fieldPath": path}}

        env = [
            {"name": "GREETING", "value": "hello"},
            {"name": "TWICE", "value": "$(GREETING) $(GREETING) $$(GREETING) $(MISSING)"},
            {"name": "POD_NAME", "valueFrom": field("metadata.name")},
            {"name": "POD_NAMESPACE", "valueFrom": field("metadata.namespace")},
            {"name": "POD_UID", "valueFrom": field("metadata.uid")},
            {"name": "NODE", "valueFrom": field("spec.nodeName")},
            {"name": "POD_IP", "valueFrom": field("status.podIP")},
            {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "CONFIG", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
        ]
        created = client.create(
            pod(kube_namespace, "env", ["bash", "-c"], args=[script, "bash", "$(GREETING) world"], env=env)
        )
        done = wait_for(kube_target, kube_namespace, "env", in_phase("Succeeded", "Failed"))
        assert done.spec is not None and done.status is not None
        assert list(client.log("env", namespace=kube_namespace, newlines=False)) == [
            "arg=hello world",
            "GREETING=hello",
            "TWICE=hello hello $(GREETING) $(MISSING)",
            "POD_NAME=env",
            f"POD_NAMESPACE={kube_namespace}",
            f"POD_UID={created.metadata.uid}",
            f"NODE={done.spec.nodeName}",
            f"POD_IP={done.status.podIP}",
            "SECRET=secret",
            "CONFIG=config",
            "leak=none",
        ]

    def test_a_missing_secret_is_a_create_container_config_error(
        self, sandbox_target: KubeTarget, kube_namespace: str
    ) -> None:
        env = [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]
        sandbox_target.client().create(pod(kube_namespace, "unset", ["true"], env=env))
        waiting = wait_for(sandbox_target, kube_namespace, "unset", has_status)
        state = main_status(waiting).state.waiting
        assert (state.reason, state.message) == ("CreateContainerConfigError", 'secret "absent" not found')
        assert waiting.status is not None and waiting.status.phase == "Pending"

    def test_a_missing_executable_waits_with_err_image_pull(
        self, sandbox_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = sandbox_target.client()
        client.create(pod(kube_namespace, "absent", ["argoplug-no-such-executable", "--flag"]))
        waiting = wait_for(sandbox_target, kube_namespace, "absent", has_status)
        assert waiting.status is not None and waiting.status.phase == "Pending"
        state = main_status(waiting).state.waiting
        assert state.reason == "ErrImagePull"
        assert state.message == (
            'argoplug sandbox: no executable "argoplug-no-such-executable" on this machine to run for image '
            '"bash:5.2", and no argoplug.dev/sandbox-script annotation'
        )
        assert conditions(waiting)["Ready"] == ("False", "ContainersNotReady")
        time.sleep(0.2)
        assert client.get(Pod, "absent", namespace=kube_namespace).status.phase == "Pending"  # it stays so

    def test_on_failure_restarts_and_counts(
        self, kube_target: KubeTarget, kube_namespace: str, http: httpx2.Client
    ) -> None:
        command = ["bash", "-c", "echo run; exit 1"]
        kube_target.client().create(pod(kube_namespace, "again", command, restart="OnFailure"))
        again = wait_for(kube_target, kube_namespace, "again", restarted(2))
        assert again.status is not None and again.status.phase == "Running"
        assert main_status(again).lastState.terminated.exitCode == 1
        answer = http.get(f"/api/v1/namespaces/{kube_namespace}/pods/again/log", params={"previous": "true"})
        assert (answer.status_code, answer.text) == (200, "run\n")

    def test_restart_policy_always_is_the_default_and_restarts_a_success(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        kube_target.client().create(pod(kube_namespace, "forever", ["true"], restart=None))
        forever = wait_for(kube_target, kube_namespace, "forever", restarted(1))
        assert forever.spec is not None and forever.spec.restartPolicy == "Always"
        assert forever.status is not None and forever.status.phase == "Running"
        assert main_status(forever).lastState.terminated.reason == "Completed"

    def test_a_pod_on_another_node_is_not_run(self, sandbox_target: KubeTarget, kube_namespace: str) -> None:
        client = sandbox_target.client()
        elsewhere = pod(kube_namespace, "elsewhere", ["bash", "-c", "echo ran"])
        assert elsewhere.spec is not None
        elsewhere.spec.nodeName = "argoplug-no-such-node"
        client.create(elsewhere)
        client.create(pod(kube_namespace, "after", ["true"]))
        # The kubelet takes pods in the order of their events: once the later one ran, it saw the first.
        wait_for(sandbox_target, kube_namespace, "after", in_phase("Succeeded"))
        untouched = client.get(Pod, "elsewhere", namespace=kube_namespace)
        assert untouched.status is not None
        assert (untouched.status.phase, untouched.status.containerStatuses) == ("Pending", None)
        assert "argoplug.dev/sandbox-ran" not in (untouched.metadata.annotations or {})


# -- logs ------------------------------------------------------------------------------------------------


class TestLog:
    @pytest.fixture
    def counted(self, kube_target: KubeTarget, kube_namespace: str) -> str:
        kube_target.client().create(pod(kube_namespace, "counted", ["seq", "1", "5"]))
        wait_for(kube_target, kube_namespace, "counted", in_phase("Succeeded"))
        return "counted"

    def test_tail_lines(self, kube_target: KubeTarget, kube_namespace: str, counted: str) -> None:
        client = kube_target.client()
        assert list(client.log(counted, namespace=kube_namespace, tail_lines=2)) == ["4\n", "5\n"]
        assert list(client.log(counted, namespace=kube_namespace, tail_lines=0)) == []
        assert len(list(client.log(counted, namespace=kube_namespace))) == 5

    def test_limit_bytes(self, kube_namespace: str, counted: str, http: httpx2.Client) -> None:
        answer = http.get(f"/api/v1/namespaces/{kube_namespace}/pods/{counted}/log", params={"limitBytes": 3})
        assert (answer.status_code, answer.text) == (200, "1\n2")

    def test_an_unknown_container_is_a_bad_request(
        self, kube_target: KubeTarget, kube_namespace: str, counted: str
    ) -> None:
        error = api_error(kube_target.client().log, counted, namespace=kube_namespace, container="nope")
        assert (error.status.code, error.status.reason) == (400, "BadRequest")
        assert error.status.message == f"container nope is not valid for pod {counted}"

    def test_previous_without_a_restart_is_a_bad_request(
        self, kube_namespace: str, counted: str, http: httpx2.Client
    ) -> None:
        answer = http.get(
            f"/api/v1/namespaces/{kube_namespace}/pods/{counted}/log", params={"previous": "true"}
        )
        assert answer.status_code == 400
        assert (
            answer.json()["message"] == f'previous terminated container "main" in pod "{counted}" not found'
        )

    def test_a_pod_of_several_containers_needs_one_named(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = kube_target.client()
        two = pod(kube_namespace, "two", ["bash", "-c", "echo first"])
        assert two.spec is not None
        two.spec.containers.append(pod(kube_namespace, "x", ["bash", "-c", "echo second"]).spec.containers[0])
        two.spec.containers[1].name = "second"
        client.create(two)
        wait_for(kube_target, kube_namespace, "two", in_phase("Succeeded"))
        error = api_error(client.log, "two", namespace=kube_namespace)
        assert (
            error.status.message
            == "a container name must be specified for pod two, choose one of: [main second]"
        )
        assert list(client.log("two", namespace=kube_namespace, container="second")) == ["second\n"]

    def test_a_container_not_started_yet_is_waiting(
        self, sandbox_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = sandbox_target.client()
        script = json.dumps([{"after": 60, "phase": "Running"}])
        client.create(pod(kube_namespace, "later", None, annotations={SCRIPT: script}))
        wait_for(sandbox_target, kube_namespace, "later", has_status)
        error = api_error(client.log, "later", namespace=kube_namespace)
        assert (error.status.code, error.status.reason) == (400, "BadRequest")
        assert (
            error.status.message == 'container "main" in pod "later" is waiting to start: ContainerCreating'
        )


# -- scripts ---------------------------------------------------------------------------------------------


class TestScript:
    def test_a_scripted_pod_goes_pending_running_succeeded(
        self, sandbox_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = sandbox_target.client()
        script = [
            {"phase": "Pending", "waiting": {"reason": "ContainerCreating"}},
            {"after": 0.1, "phase": "Running", "log": "started\n"},
            {"after": 0.1, "log": "working\n"},
            {"after": 0.1, "phase": "Succeeded", "log": "done\n"},
        ]
        created = client.create(
            pod(kube_namespace, "scripted", None, annotations={SCRIPT: json.dumps(script)})
        )
        phases: list[str] = []
        stream = client.watch(
            Pod,
            namespace=kube_namespace,
            fields={"metadata.name": "scripted"},
            resource_version=created.metadata.resourceVersion,
            server_timeout=10,
        )
        try:
            for _, seen in stream:
                phase = seen.status.phase
                if not phases or phases[-1] != phase:
                    phases.append(phase)
                if phase == "Succeeded":
                    break
        finally:
            stream.close()
        assert phases == ["Pending", "Running", "Succeeded"]
        done = client.get(Pod, "scripted", namespace=kube_namespace)
        terminated = main_status(done).state.terminated
        assert (terminated.exitCode, terminated.reason) == (0, "Completed")
        assert list(client.log("scripted", namespace=kube_namespace)) == ["started\n", "working\n", "done\n"]

    def test_a_scripted_failure_with_its_reason(
        self, sandbox_target: KubeTarget, kube_namespace: str
    ) -> None:
        script = [
            {"phase": "Running"},
            {"phase": "Failed", "exitCode": 137, "terminated": {"reason": "OOMKilled"}},
        ]
        sandbox_target.client().create(
            pod(kube_namespace, "oom", ["bash"], annotations={SCRIPT: json.dumps(script)})
        )
        done = wait_for(sandbox_target, kube_namespace, "oom", in_phase("Failed"))
        terminated = main_status(done).state.terminated
        assert (terminated.exitCode, terminated.reason) == (137, "OOMKilled")
        assert "argoplug.dev/sandbox-ran" not in (done.metadata.annotations or {})  # the script wins

    def test_a_bad_script_is_a_create_container_config_error(
        self, sandbox_target: KubeTarget, kube_namespace: str
    ) -> None:
        script = json.dumps([{"phase": "Done"}])
        sandbox_target.client().create(pod(kube_namespace, "bad", None, annotations={SCRIPT: script}))
        waiting = wait_for(sandbox_target, kube_namespace, "bad", has_status)
        state = main_status(waiting).state.waiting
        assert state.reason == "CreateContainerConfigError"
        assert state.message == (
            "argoplug sandbox: the argoplug.dev/sandbox-script annotation is not a valid script: step 1: "
            'phase must be one of Pending, Running, Succeeded, Failed, got "Done"'
        )

    @pytest.mark.parametrize(
        ("script", "problem"),
        [
            ("[", "not JSON: "),
            ("{}", "expected a JSON list of one or more steps (objects)"),
            ("[]", "expected a JSON list of one or more steps (objects)"),
            ('["Running"]', 'step 1: expected an object, got "Running"'),
            ('[{"phase": "Running", "colour": 1}]', "step 1: unknown key 'colour'"),
            ('[{"after": -1}]', "step 1: after must be a number of seconds >= 0, got -1"),
            ('[{"phase": "Succeeded"}, {"log": "x"}]', "step 2: comes after the terminal step 1 (Succeeded)"),
            ('[{"phase": "Failed", "exitCode": 0}]', "step 1: a Failed step cannot have exitCode 0"),
            ('[{"phase": "Running", "exitCode": 1}]', "step 1: exitCode is for a Succeeded or Failed step"),
            ('[{"phase": "Running", "waiting": {"reason": "X"}}]', "step 1: waiting is for a Pending step"),
            ('[{"phase": "Pending", "waiting": {}}]', "step 1: waiting needs a reason"),
            ('[{"log": 3}]', "step 1: log must be a string, got 3"),
        ],
    )
    def test_what_a_script_may_not_be(self, script: str, problem: str) -> None:
        with pytest.raises(ScriptError) as caught:
            parse_script(script)
        assert str(caught.value).startswith(problem)

    def test_a_script_parses_with_defaults(self) -> None:
        (failed,) = parse_script('[{"after": 2, "phase": "Failed"}]')
        assert (failed.after, failed.phase, failed.exit_code, failed.log) == (2.0, "Failed", 1, "")


# -- the sandbox's life --------------------------------------------------------------------------------------


def kubelet_threads() -> list[str]:
    prefixes = ("kube-sandbox-kubelet", "kube-sandbox-pod-", "kube-sandbox-log-")
    return [t.name for t in threading.enumerate() if t.name.startswith(prefixes)]


def test_stop_kills_every_process_and_leaves_no_thread() -> None:
    before = kubelet_threads()
    with KubeSandbox() as sandbox, Client(sandbox.config(), field_manager="t") as client:
        client.create(pod("default", "sleeper", ["sleep", "60"]))
        client.create(pod("default", "crashing", ["false"], restart="Always"))
        pid = pid_of(pod_when(client, "default", "sleeper", in_phase("Running")))
    assert gone(pid)
    assert kubelet_threads() == before


def test_run_pods_false_leaves_pods_as_written() -> None:
    with KubeSandbox(run_pods=False) as sandbox, Client(sandbox.config(), field_manager="t") as client:
        client.create(pod("default", "still", ["true"]))
        still = client.get(Pod, "still")
        assert still.spec is not None and still.spec.nodeName is None
        assert still.status is not None
        assert (still.status.phase, still.status.containerStatuses) == ("Pending", None)
        assert sandbox.kubelet is None
