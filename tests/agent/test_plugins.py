"""Plugins of every kind as sidecars (`agent.plugins`); several at once, asked as the real agent asks them.

Real subprocesses and sockets: the hello plugin of Argo's own e2e suite run from its folder and from its
built ConfigMap, servers that misbehave in each way of docs/contract.md §3 (`misbehaving_plugins`),
bundles, URLs.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from argoplug.agent.client import AgentClient, PluginEndpoint, plugin_order
from argoplug.agent.engine import DEADLINE_MESSAGE, Engine
from argoplug.agent.nodes import WorkflowStatus
from argoplug.agent.plugins import TOKEN_PATH, PluginError, PluginSidecars, load_container

from .helpers import HERE, ROOT, FakeSleep, workflow_from
from .misbehaving_plugins import MisbehavingPlugin, plugin_folder

VECTORS = ROOT / "tests" / "vectors"
HELLO_FOLDER = VECTORS / "hello-plugin-src"
HELLO_CONFIGMAP = VECTORS / "hello-executor-plugin-configmap.yaml"
HELLO_WORKFLOW = HERE / "workflows" / "hello-example.yaml"
HELLO_PORT = 4355

# Two steps, one after the other: the good plugin's template, then the bad plugin's.
TWO_PLUGINS = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: two-plugins}
spec:
  entrypoint: main
  templates:
    - name: main
      steps:
        - - {name: first, template: good}
        - - {name: second, template: bad}
    - name: good
      plugin: {good: {said: hi}}
    - name: bad
      plugin: {bad: {}}
"""


def argoplug(*args: str | Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run(
        [sys.executable, "-m", "argoplug", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int) -> bool:
    try:
        socket.create_connection(("localhost", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def seed_for(wanted: Sequence[str], given: Sequence[str]) -> int:
    """A seed with which plugins given in the order `given` are asked in the order `wanted` (names)."""
    for seed in range(1000):
        if plugin_order(given, seed) == list(wanted):
            return seed
    raise AssertionError(f"no seed orders {given} as {wanted}")  # pragma: no cover


def run_engine(
    text: str,
    endpoints: Sequence[PluginEndpoint],
    *,
    seed: int,
    tmp_path: Path,
    timeout: float = 30.0,
    deadline_after: float | None = None,
) -> WorkflowStatus:
    """Run a workflow written as YAML against `endpoints` as `argoplug run` does, requeues not waited out.

    `deadline_after`: real seconds after which the workflow's `activeDeadlineSeconds` has passed.
    """
    workflow = workflow_from(text, tmp_path=tmp_path)

    async def deadline(seconds: float) -> None:
        await asyncio.sleep(deadline_after or 0)

    async def main() -> WorkflowStatus:
        async with AgentClient(endpoints, seed=seed, sleep=FakeSleep(), timeout=timeout) as client:
            options: dict[str, Any] = {} if deadline_after is None else {"sleep": deadline}
            return await Engine(workflow, client, **options).run()

    return asyncio.run(main())


def plugin_nodes(status: WorkflowStatus) -> dict[str, tuple[str, str]]:
    """Plugin nodes by display name → (phase, message)."""
    return {n.display_name: (str(n.phase), n.message) for n in status.nodes.values() if n.type == "Plugin"}


# --- the hello plugin of Argo's e2e suite, from its folder and from its built ConfigMap ---------------------


@pytest.fixture
def hello_port_and_token() -> Iterator[None]:
    """Hold a lock file while the hello plugin runs: port 4355 and its token file exist once per machine."""
    import fcntl
    import tempfile

    with open(Path(tempfile.gettempdir()) / "argoplug-tests-hello-plugin.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _hello_preconditions()
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _hello_preconditions() -> None:
    folder = Path("/var/run/argo")
    probe = folder if folder.exists() else folder.parent
    if not os.access(probe, os.W_OK):
        pytest.skip(f"{probe} is not writable here: the hello plugin reads its token at {TOKEN_PATH}")
    if TOKEN_PATH.exists():
        pytest.skip(f"{TOKEN_PATH} already exists here: the test would not see the token file it writes")
    if listening(HELLO_PORT):
        pytest.skip(f"port {HELLO_PORT}, the hello plugin's, is in use here")


@pytest.mark.slow
@pytest.mark.parametrize("plugin", [HELLO_FOLDER, HELLO_CONFIGMAP], ids=["folder", "configmap"])
@pytest.mark.usefixtures("hello_port_and_token")
def test_the_hello_plugin_runs_from_its_folder_and_its_configmap_and_succeeds_with_foo_bar(plugin):
    done = argoplug("run", HELLO_WORKFLOW, "--plugin", plugin)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Status:              Succeeded" in out
    assert "foo:             bar" in out
    # The run says what it did: the command, the port and the token file.
    script = "<server.py: 44 lines>" if plugin == HELLO_FOLDER else "<script: 44 lines>"
    assert f"  started: python -c {script}" in out
    assert (
        f"Plugin hello ({plugin if plugin == HELLO_CONFIGMAP else plugin / 'plugin.yaml'}, meant for image "
        in out
    )
    assert "  listening on: http://localhost:4355" in out
    owner = "uid 8737, gid 0, " if os.geteuid() == 0 else ""  # as Argo's init container leaves it
    assert (
        f"  token file: /var/run/argo/token (a fresh token, {owner}mode 0440; removed after the run)" in out
    )
    assert "  user in the agent pod: uid 1000, gid 0 (no runAsGroup: the image's /etc/passwd decides" in out
    # ... and undid it: the sidecar is stopped, its token file removed.
    assert not listening(HELLO_PORT)
    assert not TOKEN_PATH.exists() and not TOKEN_PATH.parent.exists()
    assert "Traceback" not in done.stderr


def test_the_folder_and_its_configmap_give_the_same_sidecar():
    folder, configmap = load_container(HELLO_FOLDER), load_container(HELLO_CONFIGMAP)
    assert folder.argv == configmap.argv
    assert folder.argv[:2] == ["python", "-c"] and folder.argv[2] == (HELLO_FOLDER / "server.py").read_text()
    assert (folder.plugin, folder.port, folder.image) == ("hello", 4355, "python:alpine3.23")
    assert (configmap.plugin, configmap.port, configmap.name) == ("hello", 4355, "hello-executor-plugin")
    assert folder.server_file == "server.py" and configmap.server_file == ""


# --- several plugins at once, asked in a random order -----------------------------------------------------


def test_a_seed_gives_one_order_and_over_seeds_every_order_happens():
    names = ["a", "b", "c"]
    assert plugin_order(names, 7) == plugin_order(names, 7)
    assert plugin_order(names, None) == names
    orders = {tuple(plugin_order(names, seed)) for seed in range(200)}
    assert len(orders) == 6  # all 3! permutations


def test_the_client_asks_the_plugins_in_its_seeded_order_for_every_task():
    with MisbehavingPlugin("good", "a") as a, MisbehavingPlugin("good", "b") as b:
        endpoints = [a.endpoint(), b.endpoint()]
        for first, second in ((a, b), (b, a)):
            seed = seed_for([first.key, second.key], ["a", "b"])
            first.calls.clear()
            second.calls.clear()

            async def main(seed: int) -> tuple[list[str], list[str]]:
                async with AgentClient(endpoints, seed=seed) as client:
                    updates = [await client.execute(_request(key)) for key in ("a", "b", "a")]
                    return [u.phase for u in updates], [e.name for e in client.order]

            phases, order = asyncio.run(main(seed))
            assert phases == ["Succeeded"] * 3
            assert order == [first.endpoint().name, second.endpoint().name]
            # The first in the order is asked about every task; the second only about what the first refused.
            assert first.calls == ["a", "b", "a"]
            assert second.calls == [key for key in ["a", "b", "a"] if key != first.key]


def _request(key: str) -> dict[str, Any]:
    from argoplug.testing import make_request

    return make_request({key: {}}, template_name=key)


# --- misbehaving plugins, node by node (docs/contract.md §3) -----------------------------------------


@pytest.mark.parametrize("bad_first", [True, False], ids=["bad-first", "good-first"])
def test_a_plugin_answering_404_for_foreign_keys_is_disabled_for_the_rest_of_the_workflow(
    tmp_path, bad_first
):
    with MisbehavingPlugin("good", "good") as good, MisbehavingPlugin("404-foreign", "bad") as bad:
        endpoints = [good.endpoint(), bad.endpoint()]
        seed = seed_for(["bad", "good"] if bad_first else ["good", "bad"], ["good", "bad"])
        status = run_engine(TWO_PLUGINS, endpoints, seed=seed, tmp_path=tmp_path)
    if bad_first:
        # Asked about the good plugin's template first, it answers 404 and is never called again: the good
        # plugin still runs its own templates, but nobody takes the bad plugin's.
        assert plugin_nodes(status) == {
            "first": ("Succeeded", "good done"),
            "second": (
                "Failed",
                "no plugin executed the template (plugin key 'bad' asked; bad (404-foreign) answered 404 "
                "(not asked any more); good (good) answered {} (its keys are not known))",
            ),
        }
        assert bad.calls == ["good"]
        assert str(status.phase) == "Failed"
    else:
        assert plugin_nodes(status) == {
            "first": ("Succeeded", "good done"),
            "second": ("Succeeded", "bad done"),
        }
        assert bad.calls == ["bad"]
        assert str(status.phase) == "Succeeded"
    assert good.calls == ["good", "bad"]


def test_a_plugin_answering_404_to_everything_is_asked_once_and_the_others_go_on(tmp_path):
    with (
        MisbehavingPlugin("404-all", "bad") as bad,
        MisbehavingPlugin("good", "good") as good,
        MisbehavingPlugin("good", "extra") as extra,
    ):
        endpoints = [bad.endpoint(), good.endpoint(), extra.endpoint()]
        text = TWO_PLUGINS.replace("plugin: {bad: {}}", "plugin: {extra: {said: x}}")
        status = run_engine(
            text,
            endpoints,
            seed=seed_for(["bad", "good", "extra"], ["bad", "good", "extra"]),
            tmp_path=tmp_path,
        )
    assert plugin_nodes(status) == {
        "first": ("Succeeded", "good done"),
        "second": ("Succeeded", "extra done"),
    }
    assert bad.calls == ["good"]  # and never again, for any task
    assert good.calls == ["good", "extra"] and extra.calls == ["extra"]


@pytest.mark.parametrize("behaviour", ["400-foreign", "403-foreign"])
@pytest.mark.parametrize("bad_first", [True, False], ids=["bad-first", "good-first"])
def test_an_error_status_for_a_foreign_key_fails_the_node_and_no_later_plugin_is_asked(
    tmp_path, behaviour, bad_first
):
    with MisbehavingPlugin("good", "good") as good, MisbehavingPlugin(behaviour, "bad") as bad:
        endpoints = [good.endpoint(), bad.endpoint()]
        seed = seed_for(["bad", "good"] if bad_first else ["good", "bad"], ["good", "bad"])
        status = run_engine(TWO_PLUGINS, endpoints, seed=seed, tmp_path=tmp_path)
    if bad_first:
        # Every workflow that uses the good plugin fails while the bad one is ahead of it in the order;
        # Argo draws that order anew for each agent pod, so such failures come and go.
        message = {
            "400-foreign": '400 Bad Request: {"error": "unknown plugin"}',
            "403-foreign": "403 Forbidden: forbidden",
        }[behaviour]
        assert plugin_nodes(status) == {"first": ("Failed", message)}
        assert good.calls == [] and bad.calls == ["good"]
        assert str(status.phase) == "Failed"
    else:
        assert plugin_nodes(status) == {
            "first": ("Succeeded", "good done"),
            "second": ("Succeeded", "bad done"),
        }
        assert str(status.phase) == "Succeeded"


# The bad plugin's own template, each way of getting its answer wrong: (phase, message) of its node.
OWN_KEY_OUTCOMES = {
    "empty-body": ("Failed", "EOF"),
    "number-requeue": ("Failed", "json: cannot unmarshal number into Go value of type string"),
    "terminal-requeue": ("Failed", "broke"),
    "500": ("Failed", "500 Internal Server Error: internal error"),
}

PARALLEL = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: parallel}
spec:
  entrypoint: main
  templates:
    - name: main
      steps:
        - - {name: first, template: good}
          - {name: second, template: bad}
          - {name: third, template: extra}
    - name: good
      plugin: {good: {said: hi}}
    - name: bad
      plugin: {bad: {}}
    - name: extra
      plugin: {extra: {said: x}}
"""


@pytest.mark.parametrize("behaviour", sorted(OWN_KEY_OUTCOMES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_wrong_answer_for_its_own_template_fails_that_node_only(tmp_path, behaviour, seed):
    with (
        MisbehavingPlugin("good", "good") as good,
        MisbehavingPlugin(behaviour, "bad") as bad,
        MisbehavingPlugin("good", "extra") as extra,
    ):
        status = run_engine(
            PARALLEL, [good.endpoint(), bad.endpoint(), extra.endpoint()], seed=seed, tmp_path=tmp_path
        )
    assert plugin_nodes(status) == {
        "first": ("Succeeded", "good done"),
        "second": OWN_KEY_OUTCOMES[behaviour],
        "third": ("Succeeded", "extra done"),
    }
    assert bad.calls.count("bad") == 1  # a decode error or fatal status is not retried
    second = next(n for n in status.nodes.values() if n.display_name == "second")
    if behaviour == "terminal-requeue":
        assert "Argo's agent would call it again" in second.warning
    assert str(status.phase) == "Failed"


def test_a_reply_slower_than_the_timeout_is_retried_five_times_then_fails_the_node(tmp_path):
    with MisbehavingPlugin("good", "good") as good, MisbehavingPlugin("slow", "bad", delay=0.5) as bad:
        endpoints = [good.endpoint(), bad.endpoint()]
        status = run_engine(TWO_PLUGINS, endpoints, seed=0, tmp_path=tmp_path, timeout=0.1)
    phase, message = plugin_nodes(status)["second"]
    assert phase == "Failed"
    assert message == (
        f'Post "{bad.url}/api/v1/template.execute": context deadline exceeded '
        "(Client.Timeout exceeded while awaiting headers)"
    )
    assert bad.calls.count("bad") == 5  # called again while still working, as docs/contract.md §3.5 warns


def test_running_without_requeue_hangs_until_the_workflow_deadline(tmp_path):
    text = PARALLEL.replace("spec:\n", "spec:\n  activeDeadlineSeconds: 5\n")
    with (
        MisbehavingPlugin("good", "good") as good,
        MisbehavingPlugin("running-no-requeue", "bad") as bad,
        MisbehavingPlugin("good", "extra") as extra,
    ):
        endpoints = [good.endpoint(), bad.endpoint(), extra.endpoint()]
        status = run_engine(text, endpoints, seed=0, tmp_path=tmp_path, deadline_after=0.5)
    nodes = plugin_nodes(status)
    assert nodes["first"] == ("Succeeded", "good done") and nodes["third"] == ("Succeeded", "extra done")
    assert nodes["second"] == ("Failed", DEADLINE_MESSAGE)
    second = next(n for n in status.nodes.values() if n.display_name == "second")
    assert second.hangs  # the report says why it never finished
    assert bad.calls.count("bad") == 1  # never called again
    assert (str(status.phase), status.message) == ("Failed", DEADLINE_MESSAGE)


# --- `argoplug run` with several plugin folders at once -----------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("bad_first", [True, False], ids=["bad-first", "good-first"])
def test_run_starts_each_folder_on_its_port_and_shows_what_the_agent_would_do(tmp_path, bad_first):
    token_file = tmp_path / "run" / "token"
    good_port, bad_port = free_port(), free_port()
    good = plugin_folder(tmp_path / "good", "good", "good", good_port, token_file)
    bad = plugin_folder(tmp_path / "bad", "400-foreign", "bad", bad_port, token_file)
    workflow = tmp_path / "workflow.yaml"
    workflow.write_text(TWO_PLUGINS)
    seed = seed_for(["bad", "good"] if bad_first else ["good", "bad"], ["good", "bad"])
    done = argoplug(
        "run", workflow, "--plugin", good, "--plugin", bad, "--plugin-token-file", token_file, "--seed", seed
    )
    out = done.stdout
    order = "bad, good" if bad_first else "good, bad"
    assert (
        f"Each plugin task is offered to: {order}, in this order (seed {seed}: --seed {seed} repeats it)"
        in out
    )
    for name, port in (("good", good_port), ("bad", bad_port)):
        assert (
            f"Plugin {name} ({tmp_path / name / 'plugin.yaml'}, meant for image example.org/{name}:latest):"
            in out
        )
        assert f"  listening on: http://localhost:{port}" in out
    owner = "uid 8737, gid 0, " if os.geteuid() == 0 else ""
    assert f"  token file: {token_file} (a fresh token, {owner}mode 0440; removed after the run)" in out
    if bad_first:
        assert done.returncode == 1, out + done.stderr
        assert "✖ first    good      " in out and '400 Bad Request: {"error": "unknown plugin"}' in out
        assert "The log of bad: " in out and "The log of good: " in out
    else:
        assert done.returncode == 0, out + done.stderr
        assert "said:            hi" in out
    assert not listening(good_port) and not listening(bad_port)
    assert not token_file.exists() and not token_file.parent.exists()
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_run_shows_a_node_that_hangs_until_the_deadline(tmp_path):
    token_file = tmp_path / "token"
    port = free_port()
    folder = plugin_folder(tmp_path / "bad", "running-no-requeue", "bad", port, token_file)
    workflow = tmp_path / "workflow.yaml"
    workflow.write_text(
        TWO_PLUGINS.replace("spec:\n", "spec:\n  activeDeadlineSeconds: 2\n").replace(
            "{good: {said: hi}}", "{bad: {}}"
        )
    )
    done = argoplug("run", workflow, "--plugin", folder, "--plugin-token-file", token_file)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"Message:             {DEADLINE_MESSAGE}" in done.stdout
    assert "no requeue" in done.stdout  # why it never finished


# --- the other kinds: URL, bundle, installed plugins, all at once -------------------------------------------


@pytest.mark.slow
def test_run_uses_a_url_a_bundle_and_installed_plugins_at_once(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("url-token")
    bundle = tmp_path / "argoplug.yaml"
    bundle.write_text(
        textwrap.dedent("""\
            name: from-bundle
            image: example.org/bundle:1
            plugins: ["agent_test_plugins:environ"]
            env:
              - {name: FROM_BUNDLE, value: set by the bundle}
              - {name: SECRET, valueFrom: {secretKeyRef: {name: s, key: k}}}
            logLevel: debug
            """)
    )
    workflow = tmp_path / "workflow.yaml"
    workflow.write_text(
        textwrap.dedent("""\
            apiVersion: argoproj.io/v1alpha1
            kind: Workflow
            metadata: {name: three-kinds}
            spec:
              entrypoint: main
              templates:
                - name: main
                  steps:
                    - - {name: url, template: url}
                      - {name: bundle, template: bundle}
                      - {name: installed, template: installed}
                - name: url
                  outputs: {parameters: [{name: said}]}
                  plugin: {remote: {said: from the url}}
                - name: bundle
                  outputs: {parameters: [{name: value}]}
                  plugin: {environ: {name: FROM_BUNDLE}}
                - name: installed
                  outputs: {parameters: [{name: said}]}
                  plugin: {echo: {said: from installed}}
            """)
    )
    with MisbehavingPlugin("good", "remote", token="url-token") as remote:
        done = argoplug(
            "run", workflow, "--plugin", remote.url, "--plugin", bundle,
            "--plugin", "agent_test_plugins:echo",
            "--plugin-token-file", token_file, "--seed", "3", "--workers", "2",
        )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "from the url" in out and "set by the bundle" in out and "from installed" in out
    assert f"Plugin at {remote.url}: already running, used as it is\n  token: {token_file}" in out
    assert (
        f"Plugin bundle from-bundle ({bundle}): argoplug serve --plugin agent_test_plugins:environ "
        "--log-level debug" in out
    )
    assert "  not set here (valueFrom): SECRET" in out
    assert "Plugin server: argoplug serve --plugin agent_test_plugins:echo" in out
    assert "; 2 task workers" in out
    assert token_file.read_text() == "url-token"  # the user's file is read, never removed


# --- what cannot run, said clearly ------------------------------------------------------------------------


def sidecars(values: Sequence[str | Path], tmp_path: Path, **options: Any) -> PluginSidecars:
    lines: list[str] = []
    return PluginSidecars([str(v) for v in values], workdir=tmp_path / "work", say=lines.append, **options)


def test_a_command_that_is_not_here_names_the_command_and_its_image(tmp_path):
    port = free_port()
    folder = plugin_folder(tmp_path / "p", "good", "p", port)
    text = (
        (folder / "plugin.yaml").read_text().replace(f'["{sys.executable}", "-u"]', '["no-such-interpreter"]')
    )
    (folder / "plugin.yaml").write_text(text)
    with pytest.raises(PluginError) as caught, sidecars([folder], tmp_path, token_file=tmp_path / "t"):
        pass
    assert str(caught.value) == (
        f"plugin p ({folder / 'plugin.yaml'}): its command 'no-such-interpreter' is not found here (not on "
        "PATH), it was meant to run in image example.org/p:latest; install it, or run the image yourself and "
        f"pass --plugin http://localhost:{port}"
    )
    assert not (tmp_path / "t").exists()


def test_a_sidecar_that_exits_at_once_fails_with_its_output(tmp_path):
    folder = plugin_folder(tmp_path / "p", "no-such-behaviour", "p", free_port(), tmp_path / "t")
    with pytest.raises(PluginError) as caught, sidecars([folder], tmp_path, token_file=tmp_path / "t"):
        pass
    message = str(caught.value)
    assert "exited with code 1 before listening on port" in message
    assert "ValueError: unknown behaviour 'no-such-behaviour'" in message


def test_a_sidecar_that_never_listens_fails_after_the_wait(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    port = free_port()
    (folder / "plugin.yaml").write_text(
        "kind: ExecutorPlugin\nmetadata: {name: sleepy}\nspec:\n  sidecar:\n    container:\n"
        f"      command: [{sys.executable}, -c, 'import time; print(\"not yet\", flush=True); time.sleep(9)']"
        "\n"
        f"      ports: [{{containerPort: {port}}}]\n      resources: {{requests: {{}}, limits: {{}}}}\n"
        "      securityContext: {}\n"
    )
    with (
        pytest.raises(PluginError) as caught,
        sidecars([folder], tmp_path, token_file=tmp_path / "t", wait_timeout=0.5),
    ):
        pass
    message = str(caught.value)
    assert f"did not listen on port {port} within 0.5s (Argo's agent gives a sidecar about 15 s" in message
    assert message.endswith("its output:\n  not yet")


def test_a_port_already_taken_is_refused(tmp_path):
    with MisbehavingPlugin("good", "p") as other:
        folder = plugin_folder(tmp_path / "p", "good", "p", other.port)
        with (
            pytest.raises(PluginError, match=rf"port {other.port} .* is already in use here"),
            sidecars([folder], tmp_path, token_file=tmp_path / "t"),
        ):
            pass


def test_two_plugins_on_one_port_are_refused(tmp_path):
    port = free_port()
    first = plugin_folder(tmp_path / "a", "good", "a", port, tmp_path / "t")
    second = plugin_folder(tmp_path / "b", "good", "b", port, tmp_path / "t")
    with (
        pytest.raises(PluginError, match=rf"port {port} .* is already in use"),
        sidecars([first, second], tmp_path, token_file=tmp_path / "t"),
    ):
        pass
    assert not listening(port)


def test_a_token_file_that_cannot_be_written_names_the_option(tmp_path):
    (tmp_path / "a-file").write_text("")
    folder = plugin_folder(tmp_path / "p", "good", "p", free_port())
    with (
        pytest.raises(PluginError) as caught,
        sidecars([folder], tmp_path, token_file=tmp_path / "a-file" / "token"),
    ):
        pass
    assert f"cannot write the token file {tmp_path / 'a-file' / 'token'} (Not a directory)" in str(
        caught.value
    )
    assert "--plugin-token-file PATH" in str(caught.value)


def test_the_token_file_is_written_as_argo_writes_it_and_an_existing_one_is_kept(tmp_path):
    token_file = tmp_path / "argo" / "token"
    folder = plugin_folder(tmp_path / "p", "good", "p", free_port(), token_file)
    with sidecars([folder], tmp_path, token_file=token_file) as running:
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o440
        assert not token_file.read_text().endswith("\n")
        assert running.endpoints[0].token == token_file.read_text()
    assert not token_file.parent.exists()
    token_file.parent.mkdir()
    token_file.write_text("mine\n")
    with sidecars([folder], tmp_path, token_file=token_file) as running:
        assert running.endpoints[0].token == "mine"
    assert token_file.read_text() == "mine\n"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("no/such/folder", "--plugin no/such/folder: no such file or folder"),
        ("missing.yaml", "--plugin missing.yaml: no such file or folder"),
        ("http://127.0.0.1:{port}", "--plugin http://127.0.0.1:{port}: nothing answers there"),
        ("ftp://example.org/x", "--plugin ftp://example.org/x: expected a URL like http://localhost:4355"),
    ],
)
def test_bad_plugin_values_are_named(tmp_path, value, message):
    port = free_port()
    with pytest.raises(PluginError) as caught, sidecars([value.format(port=port)], tmp_path):
        pass
    assert str(caught.value).startswith(message.format(port=port))


def test_a_yaml_file_of_another_kind_is_refused(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text("kind: Workflow\nmetadata: {name: x}\n")
    with (
        pytest.raises(PluginError, match=r"not an argoplug bundle .* nor a built ConfigMap"),
        sidecars([path], tmp_path),
    ):
        pass
    path.write_text("kind: ConfigMap\nmetadata: {name: x}\ndata: {}\n")
    with (
        pytest.raises(PluginError, match="ConfigMap 'x' is not an executor plugin"),
        sidecars([path], tmp_path),
    ):
        pass


def test_a_plugin_yaml_without_ports_fails_as_argo_build_does(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "plugin.yaml").write_text(
        "kind: ExecutorPlugin\nmetadata: {name: p}\nspec: {sidecar: {container: {}}}\n"
    )
    with pytest.raises(PluginError) as caught:
        load_container(folder)
    assert (
        str(caught.value) == f"{folder / 'plugin.yaml'}: sidecar is invalid: at least one port is mandatory"
    )
    (folder / "server.py").write_text("")
    (folder / "server.sh").write_text("")
    (folder / "plugin.yaml").write_text(
        "kind: ExecutorPlugin\nmetadata: {name: p}\n"
        "spec: {sidecar: {container: {ports: [{containerPort: 1}]}}}\n"
    )
    with pytest.raises(PluginError, match=r"plugin p has more than one server\.\* file"):
        load_container(folder)


def test_kubernetes_variable_references_in_the_command_are_expanded(tmp_path):
    path = tmp_path / "cm.yaml"
    path.write_text(
        textwrap.dedent("""\
            kind: ConfigMap
            metadata:
              name: v-executor-plugin
              labels: {workflows.argoproj.io/configmap-type: ExecutorPlugin}
            data:
              sidecar.container: |
                command: [serve, "--port=$(PORT)", "$$(PORT)", "$(UNKNOWN)"]
                env: [{name: PORT, value: "7000"}, {name: KEY, valueFrom: {secretKeyRef: {name: s, key: k}}}]
                ports: [{containerPort: 7000}]
            """)
    )
    container = load_container(path)
    assert container.argv == ["serve", "--port=7000", "$(PORT)", "$(UNKNOWN)"]
    assert container.plugin == "v" and container.env == {"PORT": "7000"}
    assert container.unresolved == ["KEY (valueFrom)"]
