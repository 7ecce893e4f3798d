"""argoplug.aws: error translation, the client cache, the endpoint override, and lazy imports."""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
from botocore import exceptions as bx

from argoplug import aws
from argoplug.plugin import PermanentError, TemporaryError
from argoplug.plugins.sagemaker.executions import CALL_SECONDS
from argoplug.server import ServerSettings


def client_error(code: str, status: int, message: str = "the message") -> bx.ClientError:
    response = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return bx.ClientError(response, "DescribePipeline")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "code",
    [
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottledException",
        "SlowDown",
    ],
)
def test_throttling_is_temporary(code: str) -> None:
    mapped = aws.error_for(client_error(code, 400), delay=7)
    assert isinstance(mapped, TemporaryError)
    assert mapped.delay == 7
    assert f"AWS throttled DescribePipeline ({code}: the message)" in mapped.message


@pytest.mark.parametrize(
    ("code", "status"), [("InternalFailure", 500), ("", 502), ("Whatever", 503), ("", 429)]
)
def test_5xx_and_429_are_temporary(code: str, status: int) -> None:
    assert isinstance(aws.error_for(client_error(code, status)), TemporaryError)


@pytest.mark.parametrize(
    "exc",
    [
        bx.EndpointConnectionError(endpoint_url="https://api.sagemaker.us-west-2.amazonaws.com"),
        bx.ConnectTimeoutError(endpoint_url="https://api.sagemaker.us-west-2.amazonaws.com"),
        bx.ReadTimeoutError(endpoint_url="https://api.sagemaker.us-west-2.amazonaws.com"),
        bx.ConnectionClosedError(endpoint_url="https://api.sagemaker.us-west-2.amazonaws.com"),
    ],
)
def test_connection_trouble_is_temporary(exc: Exception) -> None:
    mapped = aws.error_for(exc)
    assert isinstance(mapped, TemporaryError)
    assert mapped.message.startswith("cannot reach AWS")


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("AccessDenied", 403),
        ("AccessDeniedException", 400),
        ("UnauthorizedOperation", 403),
        ("ValidationException", 400),
        ("ResourceNotFound", 400),
        ("ConflictException", 409),
    ],
)
def test_refusals_are_permanent_with_aws_message(code: str, status: int) -> None:
    mapped = aws.error_for(client_error(code, status, "Could not find pipeline X."))
    assert isinstance(mapped, PermanentError)
    assert mapped.message == f"DescribePipeline failed: {code}: Could not find pipeline X."


@pytest.mark.parametrize(
    "exc",
    [
        bx.NoCredentialsError(),
        bx.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
        client_error("InvalidClientTokenId", 403),
        client_error("ExpiredTokenException", 400),
    ],
)
def test_credentials_trouble_is_a_setup_error_saying_how_to_fix_it(exc: Exception) -> None:
    mapped = aws.error_for(exc)
    assert isinstance(mapped, aws.AwsSetupError)
    text = str(mapped)
    assert "\n" not in text  # the server keeps the first line only
    for hint in (
        "eks.amazonaws.com/role-arn",
        "<plugin name>-executor-plugin",
        "AWS_ACCESS_KEY_ID",
        "AWS_PROFILE",
    ):
        assert hint in text


def test_a_missing_region_is_a_setup_error() -> None:
    mapped = aws.error_for(bx.NoRegionError())
    assert isinstance(mapped, aws.AwsSetupError)
    assert "AWS_REGION" in str(mapped)


def test_parameter_validation_is_permanent() -> None:
    exc = bx.ParamValidationError(
        report="Invalid length for parameter PipelineName, value: 0, valid min length: 1"
    )
    mapped = aws.error_for(exc)
    assert isinstance(mapped, PermanentError)
    assert "Invalid length for parameter PipelineName" in mapped.message


def test_other_exceptions_pass_unchanged() -> None:
    exc = KeyError("x")
    assert aws.error_for(exc) is exc
    permanent = PermanentError("ours")
    assert aws.error_for(permanent) is permanent


def test_translated_errors_chains_the_cause() -> None:
    original = client_error("AccessDenied", 403)
    with pytest.raises(PermanentError) as caught, aws.translated_errors():
        raise original
    assert caught.value.__cause__ is original


def test_botocore_reads_aws_endpoint_url_and_the_cache_follows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    first = aws.client("sagemaker", region="us-west-2")
    assert first.meta.endpoint_url == "http://127.0.0.1:9"
    assert aws.client("sagemaker", region="us-west-2") is first
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:10")
    moved = aws.client("sagemaker", region="us-west-2")
    assert moved is not first and moved.meta.endpoint_url == "http://127.0.0.1:10"
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    assert (
        aws.client("sagemaker", region="us-west-2").meta.endpoint_url
        == "https://api.sagemaker.us-west-2.amazonaws.com"
    )


def test_clients_retry_little_and_time_out_soon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    config = aws.client("sagemaker", region="us-west-2").meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": aws.MAX_ATTEMPTS}
    assert config.connect_timeout == aws.CONNECT_TIMEOUT and config.read_timeout == aws.READ_TIMEOUT
    assert aws.REQUEST_SECONDS == aws.MAX_ATTEMPTS * (aws.CONNECT_TIMEOUT + aws.READ_TIMEOUT)


def test_a_calls_aws_time_fits_in_the_handler_deadline() -> None:
    # A call needs at most two requests to progress; every other one is sent only if it fits.
    assert 2 * aws.REQUEST_SECONDS <= CALL_SECONDS <= ServerSettings().handler_deadline - 5


def test_parallel_first_calls_assume_the_role_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assumed: list[str] = []

    def assume(region: str | None, role_arn: str, name: str) -> Any:
        assumed.append(role_arn)
        time.sleep(0.2)  # AssumeRole's round trip, while the other calls arrive
        return aws._Session(boto3.session.Session(region_name=region), time.time() + 3600)

    monkeypatch.setattr(aws, "_assume", assume)
    role = "arn:aws:iam::100000000002:role/pipelines"
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        clients = list(
            pool.map(lambda _: aws.client("sagemaker", region="us-west-2", role_arn=role), range(8))
        )
    assert assumed == [role]
    assert all(c is clients[0] for c in clients)


def test_session_name_is_what_assume_role_accepts() -> None:
    assert aws.session_name("sm-pipelines-r58tg", "argo") == "argo-argo-sm-pipelines-r58tg"
    long = aws.session_name("w" * 100, "team a/b")
    assert len(long) == 64 and long.startswith("argo-team-a-b-")


def test_importing_the_plugin_modules_imports_no_aws_sdk() -> None:
    code = textwrap.dedent(
        """
        import json, sys, time
        started = time.perf_counter()
        import argoplug.aws, argoplug.aws.sandbox, argoplug.plugins.sagemaker
        elapsed = time.perf_counter() - started
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore", "moto"))
        print(json.dumps({"heavy": heavy, "elapsed": elapsed}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    found = json.loads(done.stdout)
    assert found["heavy"] == []
