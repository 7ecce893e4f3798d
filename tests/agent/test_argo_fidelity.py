"""What real WorkflowTemplates use and the local run now runs as Argo does: outputs of steps/DAG templates
from `valueFrom.expression`, inputs from ConfigMaps, jsonpath as Argo's library reads it, and an expression
that fails inside `{{=...}}` failing its node instead of passing on as text.

The first workflow is Argo's examples/conditional-parameters.yaml (argoproj/argo-workflows at commit
f016ad89eb269d282aec06dc491c29f396a38df4) with its script templates, which cannot run here, replaced by
plugin templates giving the same results; its steps, `when`s and output expression are unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from argoplug.agent.configmaps import ConfigMaps
from argoplug.agent.nodes import NodePhase
from argoplug.agent.workflow import load_documents, resolve_workflow

from .agent_test_plugins import echo, emit
from .helpers import FakeSleep, run_engine, workflow_from
from .test_data_flow import by_name, endpoint

# The example's output expression, as written there.
EXPRESSION = (
    "steps['flip-coin'].outputs.result == 'heads' ? steps.heads.outputs.result : steps.tails.outputs.result"
)
CONDITIONAL_PARAMETERS = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: conditional-parameter
spec:
  entrypoint: main
  templates:
    - name: main
      steps:
        - - name: flip-coin
            template: flip-coin
        - - name: heads
            template: heads
            when: "{{steps.flip-coin.outputs.result}} == heads"
          - name: tails
            template: tails
            when: "{{steps.flip-coin.outputs.result}} == tails"
      outputs:
        parameters:
          - name: stepresult
            valueFrom:
              expression: "EXPRESSION"
    - name: flip-coin
      plugin: {emit: {result: COIN}}
    - name: heads
      plugin: {emit: {result: heads}}
    - name: tails
      plugin: {emit: {result: tails}}
"""


@pytest.mark.parametrize("coin", ["heads", "tails"])
def test_a_steps_template_output_comes_from_its_expression(live_server, tmp_path, coin) -> None:
    text = CONDITIONAL_PARAMETERS.replace("EXPRESSION", EXPRESSION).replace("COIN", coin)
    workflow = workflow_from(text, tmp_path=tmp_path)
    status = run_engine(workflow, [endpoint(live_server([emit]))])
    main = by_name(status)["conditional-parameter"]
    assert main.phase is NodePhase.SUCCEEDED, main.message
    assert [(p.name, p.value) for p in main.outputs.parameters] == [("stepresult", coin)]


def outputs_workflow(expression: str, default: str | None = None) -> str:
    value_from = f"{{expression: {expression!r}" + (f", default: {default!r}}}" if default else "}")
    return f"""\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: expr}}
spec:
  entrypoint: main
  templates:
    - name: main
      dag:
        tasks:
          - {{name: get, template: get}}
      outputs:
        parameters:
          - {{name: out, valueFrom: {value_from}}}
    - name: get
      plugin: {{emit: {{result: '{{"results": [{{"n": 2}}]}}', outputs: {{count: "3"}}}}}}
"""


@pytest.mark.parametrize(
    ("expression", "default", "phase", "value"),
    [
        # A number is written as Go's %v writes it (AnyStringPtr): 2 + 3 → "5", 5 / 2 → "2.5".
        ("asInt(tasks.get.outputs.parameters.count) + 2", None, NodePhase.SUCCEEDED, "5"),
        ("asInt(tasks.get.outputs.parameters.count) / 2", None, NodePhase.SUCCEEDED, "1.5"),
        ("tasks.get.status == 'Succeeded'", None, NodePhase.SUCCEEDED, "true"),
        # jsonpath as evilmonkeyinc/jsonpath reads it: `.[0]` is `[0]`.
        ("jsonpath(tasks.get.outputs.result, '$.results.[0].n')", None, NodePhase.SUCCEEDED, "2"),
        ("tasks.nope.outputs.result", "fallback", NodePhase.SUCCEEDED, "fallback"),
        ("tasks.nope.outputs.result", None, NodePhase.ERROR, None),
    ],
)
def test_output_expressions_are_stringified_as_argo_does(
    live_server, tmp_path, expression: str, default: str | None, phase: NodePhase, value: str | None
) -> None:
    workflow = workflow_from(outputs_workflow(expression, default), tmp_path=tmp_path)
    status = run_engine(workflow, [endpoint(live_server([emit]))])
    main = by_name(status)["expr"]
    assert main.phase is phase, main.message
    if value is not None:
        assert main.outputs.parameters[0].value == value
    else:
        assert "tasks" in main.message and "nope" in main.message


CONFIGMAP_WORKFLOW = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: cm, namespace: argo}
spec:
  entrypoint: main
  arguments: {parameters: [{name: cm, value: nautobot}]}
  templates:
    - name: main
      inputs:
        parameters:
          - name: url
            valueFrom: {configMapKeyRef: {name: "{{workflow.parameters.cm}}", key: url}}
          - name: token-header
            valueFrom: {configMapKeyRef: {name: "{{workflow.parameters.cm}}", key: header}, default: Token}
      plugin: {echo: {url: "{{inputs.parameters.url}}", header: "{{inputs.parameters.token-header}}"}}
"""


def configmaps(tmp_path: Path, labelled: bool = True) -> ConfigMaps:
    labels = "  labels: {workflows.argoproj.io/configmap-type: Parameter}\n" if labelled else ""
    path = tmp_path / "configmaps.yaml"
    path.write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nautobot\n{labels}data:\n  url: https://n/api\n"
    )
    return ConfigMaps.from_file(path, namespace="argo")


def run_with(configmaps: ConfigMaps | None, live_server, tmp_path):
    import asyncio

    from argoplug.agent.client import AgentClient
    from argoplug.agent.engine import Engine

    path = tmp_path / "workflow.yaml"
    path.write_text(CONFIGMAP_WORKFLOW)
    workflow = resolve_workflow(load_documents([path]))
    server = live_server([echo])

    async def main():
        async with AgentClient([endpoint(server)], sleep=FakeSleep()) as client:
            return await Engine(workflow, client, configmaps=configmaps).run()

    return by_name(asyncio.run(main()))["cm"]


def test_an_input_is_read_from_its_configmap_key_and_a_missing_key_takes_the_default(live_server, tmp_path):
    node = run_with(configmaps(tmp_path), live_server, tmp_path)
    assert node.phase is NodePhase.SUCCEEDED, node.message
    assert node.inputs == {"url": "https://n/api", "token-header": "Token"}


@pytest.mark.parametrize(
    ("labelled", "message"),
    [
        (
            False,
            "unable to retrieve inputs.parameters.url from ConfigMap: ConfigMap 'nautobot' needs to have the "
            "label workflows.argoproj.io/configmap-type: Parameter to load parameters",
        ),
        (
            None,
            "unable to retrieve inputs.parameters.url from ConfigMap: ConfigMap 'nautobot' does not exist. "
            "Please make sure it has the label workflows.argoproj.io/configmap-type: Parameter to be "
            "detectable by the controller",
        ),
    ],
)
def test_a_configmap_argo_cannot_read_errors_the_node_with_its_message(
    live_server, tmp_path, labelled, message
):
    store = None if labelled is None else configmaps(tmp_path, labelled=labelled)
    node = run_with(store, live_server, tmp_path)
    assert (node.phase, node.message) == (NodePhase.ERROR, message)


def test_an_argument_expression_that_fails_fails_its_node_with_the_error(live_server, tmp_path) -> None:
    workflow = workflow_from(
        """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: bad}
spec:
  entrypoint: main
  templates:
    - name: main
      steps:
        - - name: use
            template: use
            arguments: {parameters: [{name: v, value: "{{=jsonpath('not json', '$.a')}}"}]}
    - name: use
      inputs: {parameters: [{name: v}]}
      plugin: {echo: {v: "{{inputs.parameters.v}}"}}
""",
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo]))])
    node = by_name(status)["bad[0].use"]
    assert node.phase is NodePhase.ERROR
    assert node.message.startswith("failed to evaluate expression {{=jsonpath('not json', '$.a')}}: ")
    assert "invalid JSON" in node.message


class SlowServer:
    """An HTTP server on loopback whose every answer takes 0.3 s; records the most requests at once."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.active = self.most = 0
        lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                import time

                with lock:
                    server.active += 1
                    server.most = max(server.most, server.active)
                time.sleep(0.3)
                with lock:
                    server.active -= 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.mark.parametrize("workers", [1, 3])
def test_http_and_plugin_tasks_share_the_agents_task_workers(live_server, tmp_path, workers: int) -> None:
    import asyncio

    from argoplug.agent.client import AgentClient
    from argoplug.agent.engine import Engine
    from argoplug.agent.http_template import HttpTemplateRunner

    slow = SlowServer()
    workflow = workflow_from(
        f"""\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: pool}}
spec:
  entrypoint: main
  templates:
    - name: main
      dag:
        tasks:
          - {{name: a, template: get}}
          - {{name: b, template: get}}
          - {{name: c, template: get}}
    - name: get
      http: {{url: "{slow.url}"}}
""",
        tmp_path=tmp_path,
    )

    async def main():
        async with (
            AgentClient([endpoint(live_server([echo]))], sleep=FakeSleep(), workers=workers) as client,
            HttpTemplateRunner(slots=client.slots) as http,
        ):
            return await Engine(workflow, client, http=http).run()

    try:
        status = asyncio.run(main())
    finally:
        slow.httpd.shutdown()
        slow.httpd.server_close()
    assert str(status.phase) == "Succeeded"
    assert slow.most == workers  # ARGO_AGENT_TASK_WORKERS bounds HTTP tasks too


def test_a_container_template_with_a_retry_strategy_gets_its_retry_node(live_server, tmp_path) -> None:
    workflow = workflow_from(
        """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: retried}
spec:
  entrypoint: main
  templates:
    - name: main
      retryStrategy: {limit: 2, retryPolicy: Always}
      container: {image: alpine, command: [sh, -c, exit 1]}
""",
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo]))], engine_sleep=FakeSleep())
    nodes = by_name(status)
    retry = nodes["retried"]
    assert (str(retry.type), str(retry.phase)) == ("Retry", "Error")
    attempts = [nodes[f"retried({i})"] for i in range(3)]
    assert [(str(a.type), str(a.phase)) for a in attempts] == [("Pod", "Error")] * 3
    assert "cannot run container templates" in attempts[0].message
