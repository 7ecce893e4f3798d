"""Wire types and Go durations: the request vectors decode, replies encode as Argo reads them."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from argoplug.protocol import (
    ExecuteTemplateArgs,
    ExecuteTemplateReply,
    NodeResult,
    Outputs,
    Parameter,
    Phase,
    encode_parameter_value,
    format_duration,
    parse_duration,
)

VECTORS = Path(__file__).parent / "vectors"


def decode(path: str) -> ExecuteTemplateArgs:
    return msgspec.json.decode((VECTORS / path).read_bytes(), type=ExecuteTemplateArgs)


def test_awf_aws_request_vector_decodes() -> None:
    args = decode("awf-aws/request.json")
    assert args.workflow.metadata.name == "sm-pipelines-r58tg"
    assert args.workflow.metadata.namespace == "argo"
    assert args.workflow.metadata.uid == "27c01e7c-9d93-450f-a001-c64d649aac99"
    assert args.template.name == "validate_pipeline"
    assert args.template.plugin == {
        "awf-aws-plugin": {
            "account_id": "100000000002",
            "action": "validate",
            "pipeline_name": "MyPipeline",
            "region_name": "us-west-2",
        }
    }


def test_docs_hello_request_vector_decodes_without_namespace_or_uid() -> None:
    args = decode("docs-hello/request.json")
    assert args.workflow.metadata.name == "my-wf"
    assert args.workflow.metadata.namespace == ""
    assert args.workflow.metadata.uid == ""
    assert args.template.plugin == {"hello": {}}


def test_wasm_request_vector_keeps_parameters_artifacts_and_nested_arguments() -> None:
    args = decode("wasm/request.json")
    assert args.template.inputs.parameters == [Parameter(name="name", value="felix")]
    assert args.template.inputs.artifacts[0]["s3"]["key"].endswith("hello-art.tgz")
    assert args.template.outputs.parameters == [Parameter(name="message", value="")]
    assert args.template.plugin["hello"]["some"]["nested"] == {"args": 42, "bool": True, "str": "str"}


def test_unknown_request_fields_are_tolerated() -> None:
    body = {
        "workflow": {"metadata": {"name": "w", "labels": {"a": "b"}}, "spec": {}},
        "template": {"name": "t", "plugin": {"x": {}}, "retryStrategy": {"limit": 3}, "newField": [1]},
        "extra": True,
    }
    args = msgspec.json.decode(json.dumps(body), type=ExecuteTemplateArgs)
    assert args.template.plugin == {"x": {}}


@pytest.mark.parametrize("name", ["reply-succeeded.json", "reply-requeue.json"])
def test_reply_vectors_round_trip(name: str) -> None:
    raw = (VECTORS / "docs-hello" / name).read_bytes()
    reply = msgspec.json.decode(raw, type=ExecuteTemplateReply)
    assert json.loads(msgspec.json.encode(reply)) == json.loads(raw)


def test_wasm_reply_vector_round_trips_non_ascii() -> None:
    raw = (VECTORS / "wasm" / "reply.json").read_bytes()
    reply = msgspec.json.decode(raw, type=ExecuteTemplateReply)
    assert reply.node is not None and reply.node.outputs is not None
    assert reply.node.outputs.parameters[0].value == "The Länd"


def test_empty_reply_is_not_my_template() -> None:
    assert msgspec.json.encode(ExecuteTemplateReply()) == b"{}"


def test_reply_encodes_requeue_as_string_and_phase_as_its_name() -> None:
    reply = ExecuteTemplateReply(
        node=NodeResult(phase=Phase.RUNNING, message="m", outputs=Outputs(parameters=[Parameter("a", "1")])),
        requeue="30s",
    )
    assert json.loads(msgspec.json.encode(reply)) == {
        "node": {
            "phase": "Running",
            "message": "m",
            "outputs": {"parameters": [{"name": "a", "value": "1"}]},
        },
        "requeue": "30s",
    }


def test_only_succeeded_failed_error_are_terminal() -> None:
    assert {p for p in Phase if p.terminal} == {Phase.SUCCEEDED, Phase.FAILED, Phase.ERROR}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", "plain"),
        (None, ""),
        (True, "true"),
        (3, "3"),
        (1.5, "1.5"),
        ({"a": [1, 2]}, '{"a":[1,2]}'),
        (["x"], '["x"]'),
        (Phase.FAILED, "Failed"),
    ],
)
def test_output_parameter_values_are_strings(value: object, text: str) -> None:
    assert encode_parameter_value(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (1e-10, "1ms"),
        (0.25, "250ms"),
        (1.5, "1.5s"),
        (30, "30s"),
        (120, "2m"),
        (5400, "1h30m"),
        (3661, "1h1m1s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("2m", 120),
        ("1h30m", 5400),
        ("1.5s", 1.5),
        ("300ms", 0.3),
        ("0", 0),
        ("-1m", -60),
        ("1m0s", 60),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["30", "", "2 min", "1d", "s", "1h30", "abc"])
def test_parse_duration_rejects_what_go_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize("bad", [-1, float("inf"), float("nan")])
def test_format_duration_rejects_negative_and_non_finite(bad: float) -> None:
    with pytest.raises(ValueError):
        format_duration(bad)


@given(st.integers(min_value=0, max_value=10_000_000))
def test_whole_seconds_round_trip(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.floats(min_value=0.001, max_value=100_000, allow_nan=False))
def test_formatted_duration_is_never_shorter_than_asked_by_more_than_a_millisecond(seconds: float) -> None:
    parsed = parse_duration(format_duration(seconds))
    assert seconds - 1e-9 <= parsed <= seconds + 0.001 + 1e-9
