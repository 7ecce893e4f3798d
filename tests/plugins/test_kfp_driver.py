"""The `driver-plugin` plugin over real sockets: Argo's agent (LiveServer's AgentClient) calls argoplug's
server, which forwards each KFP driver template to a test double of the central driver server
(kfp_driver_double.py, answering as kubeflow/pipelines' driverapi does) as the plugin's ServiceAccount.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kfp_driver_double import KfpDriverDouble

from argoplug.plugins import kfp_driver
from argoplug.testing import LiveServer, NodeUpdate

SA_TOKEN = "eyJhbGciOiJSUzI1NiJ9.service-account-token.first"
ROTATED = "eyJhbGciOiJSUzI1NiJ9.service-account-token.rotated"
CONTAINER_ARGS = {
    "type": "CONTAINER",
    "pipeline_name": "namespace/n1/pipeline/hello-world",
    "run_id": "a5f6c1b2-0000-4000-8000-000000000001",
    "dag_execution_id": "7",
    "iteration_index": "-1",
    "component": '{"executorLabel":"exec-hello-world"}',
    "task": '{"taskInfo":{"name":"hello-world"}}',
    "container": '{"image":"python:3.9"}',
    "kubernetes_config": "",
    "namespace": "n1",
}


@pytest.fixture
def token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "serviceaccount" / "token"
    path.parent.mkdir()
    path.write_text(SA_TOKEN + "\n")
    monkeypatch.setenv("KFP_DRIVER_TOKEN_FILE", str(path))
    return path


@pytest.fixture
def driver(token_file: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KfpDriverDouble]:
    with KfpDriverDouble() as double:
        monkeypatch.setenv("KFP_DRIVER_URL", double.template_execute_url)
        kfp_driver.reset_client()
        yield double
    kfp_driver.reset_client()


@pytest.fixture
def server() -> Iterator[LiveServer]:
    with LiveServer([kfp_driver.driver_plugin]) as live:
        yield live


def block(**args: Any) -> dict[str, Any]:
    return {"driver-plugin": {"args": {**CONTAINER_ARGS, **args}}}


def outputs(node: NodeUpdate) -> dict[str, str]:
    assert node.outputs is not None
    return {p.name: str(p.value) for p in node.outputs.parameters or []}


def test_a_foreign_plugin_key_gets_an_empty_reply_without_a_token(server: LiveServer) -> None:
    from argoplug.testing import make_request

    reply = server.post(make_request({"other-plugin": {"args": {}}}), token=None)
    assert reply.status_code == 200 and reply.json() == {}


def test_the_agent_token_is_enforced(server: LiveServer, driver: KfpDriverDouble) -> None:
    from argoplug.testing import make_request

    assert server.post(make_request(block()), token=None).status_code == 403
    assert server.post(make_request(block()), token="not-the-agent-token").status_code == 403
    assert driver.requests == []


def test_the_driver_gets_the_template_with_the_service_account_token_not_the_agents(
    server: LiveServer, driver: KfpDriverDouble
) -> None:
    node = server.call_as_agent(block(), workflow="hello-world-x7", namespace="n1")
    assert node.phase == "Succeeded", node.message
    out = outputs(node)
    assert set(kfp_driver.OUTPUT_DEFAULTS) <= set(out)
    assert out["execution-id"] == "1" and out["cached-decision"] == "false"
    assert out["pod-spec-patch"] == '{"containers": [{"name": "main"}]}'
    assert out["iteration-count"] == "0"  # the declared default, which the driver does not send for CONTAINER
    [(path, authorization, body)] = driver.requests
    assert path == "/api/v1/template.execute"
    assert authorization == f"Bearer {SA_TOKEN}" and server.token not in authorization
    assert body["template"]["plugin"]["driver-plugin"]["args"] == CONTAINER_ARGS
    assert body["workflow"]["metadata"]["name"] == "hello-world-x7"


def test_the_proposals_execute_endpoint_gets_the_args_alone(
    server: LiveServer, driver: KfpDriverDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFP_DRIVER_URL", driver.execute_url)
    node = server.call_as_agent(block(type="ROOT_DAG"))
    assert node.phase == "Succeeded", node.message
    assert outputs(node)["iteration-count"] == "0" and outputs(node)["execution-id"] == "1"
    [(path, _, body)] = driver.requests
    assert path == "/api/v1/execute" and body == {**CONTAINER_ARGS, "type": "ROOT_DAG"}


def test_a_rotated_token_file_is_picked_up(
    server: LiveServer, driver: KfpDriverDouble, token_file: Path
) -> None:
    assert server.call_as_agent(block()).phase == "Succeeded"
    # The kubelet rotates a projected token by swapping the file (a new inode).
    new = token_file.with_name("token.new")
    new.write_text(ROTATED)
    os.replace(new, token_file)
    assert server.call_as_agent(block(run_id="another-run")).phase == "Succeeded"
    assert [authorization for _, authorization, _ in driver.requests] == [
        f"Bearer {SA_TOKEN}",
        f"Bearer {ROTATED}",
    ]


def test_a_token_the_driver_refuses_fails_saying_whose(server: LiveServer, driver: KfpDriverDouble) -> None:
    driver.tokens = {"some-other-token"}
    node = server.call_as_agent(block())
    assert node.phase == "Failed"
    assert "refused this plugin's ServiceAccount token (401" in node.message
    assert "driver-plugin-executor-plugin" in node.message
    assert outputs(node) == dict(kfp_driver.OUTPUT_DEFAULTS)
    assert len(driver.requests) == 2  # the token file was read again once after the first 401


@pytest.mark.slow
def test_a_40_second_driver_call_ends_succeeded_through_requeue(
    server: LiveServer, driver: KfpDriverDouble
) -> None:
    driver.delay = 40.0
    started = time.monotonic()
    first = server.call_as_agent(block())
    # The server answers within its handler deadline (20 s, under the agent's 30 s call timeout).
    assert first.phase == "Running" and first.requeue is not None
    assert time.monotonic() - started < 30
    done = server.run_task(block())
    assert done.phase == "Succeeded", done.message
    assert outputs(done)["execution-id"] == "1"
    assert len(driver.requests) == 1  # the later calls took the first call's result: one driver run


def test_a_driver_failure_fails_the_node_with_every_output(
    server: LiveServer, driver: KfpDriverDouble
) -> None:
    driver.fail = "failed to resolve inputs"
    node = server.call_as_agent(block())
    assert node.phase == "Failed"
    assert node.message == "unable to drive execution: KFP driver: failed to resolve inputs"
    assert outputs(node) == dict(kfp_driver.OUTPUT_DEFAULTS)


def test_an_upstream_4xx_fails_with_its_message(
    server: LiveServer, driver: KfpDriverDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFP_DRIVER_URL", driver.base + "/api/v2/execute")
    node = server.call_as_agent(block())
    assert node.phase == "Failed"
    assert node.message == "the KFP driver refused the task (404): 404 page not found"
    assert set(outputs(node)) == set(kfp_driver.OUTPUT_DEFAULTS)


def test_an_unavailable_driver_is_tried_again(server: LiveServer, driver: KfpDriverDouble) -> None:
    driver.unavailable = 1
    first = server.call_as_agent(block())
    assert first.phase == "Running" and first.requeue == 10.0
    assert "answered 503" in first.message
    assert server.call_as_agent(block()).phase == "Succeeded"


def test_an_unreachable_driver_is_tried_again(
    server: LiveServer, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFP_DRIVER_URL", "http://127.0.0.1:9/api/v1/template.execute")
    kfp_driver.reset_client()
    node = server.call_as_agent(block())
    assert node.phase == "Running" and node.requeue is not None
    assert "cannot reach the KFP driver at http://127.0.0.1:9" in node.message


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ({"type": ""}, "`args.type`: required: ROOT_DAG, DAG or CONTAINER"),
        ({"type": "TASK"}, "`args.type`: expected ROOT_DAG, DAG or CONTAINER, got 'TASK'"),
        ({"http_proxy": "unset"}, "`args.http_proxy`: is required but can be an empty value"),
        ({"no_proxy": "unset"}, "`args.no_proxy`: is required but can be an empty value"),
    ],
)
def test_what_the_driver_would_refuse_fails_before_the_call(
    server: LiveServer, driver: KfpDriverDouble, args: dict[str, str], says: str
) -> None:
    node = server.call_as_agent(block(**args))
    assert node.phase == "Failed" and says in node.message
    assert outputs(node) == dict(kfp_driver.OUTPUT_DEFAULTS)
    assert driver.requests == []


def test_over_tls_the_driver_is_verified_with_the_configured_ca(
    server: LiveServer, token_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trustme

    ca = trustme.CA()
    ca_file = tmp_path / "driver-ca.crt"
    ca.cert_pem.write_to_path(str(ca_file))
    with KfpDriverDouble(tls=ca.issue_cert("127.0.0.1")) as double:
        monkeypatch.setenv("KFP_DRIVER_URL", double.template_execute_url)
        kfp_driver.reset_client()
        untrusted = server.call_as_agent(block())
        assert untrusted.phase == "Failed" and "does not trust" in untrusted.message
        assert "KFP_DRIVER_CA_FILE" in untrusted.message
        monkeypatch.setenv("KFP_DRIVER_CA_FILE", str(ca_file))
        trusted = server.call_as_agent(block())
        assert trusted.phase == "Succeeded", trusted.message
        assert double.base.startswith("https://")
    kfp_driver.reset_client()


def test_without_a_service_account_token_the_node_errors_saying_how(
    server: LiveServer, driver: KfpDriverDouble, token_file: Path
) -> None:
    token_file.unlink()
    node = server.call_as_agent(block())
    assert node.phase == "Error"
    assert "serviceAccount.automountToken: true" in node.message
    assert driver.requests == []
