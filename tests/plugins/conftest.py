"""Fixtures for the AWS plugin tests: moto's server (through AwsSandbox), a clean AWS environment, Stubbers.

Every test gets fresh JobTrackers (SageMaker, Glue, Step Functions) and an empty client cache, so no state
leaks between tests. Tests that stub botocore point AWS_ENDPOINT_URL at a closed loopback port: nothing can
reach real AWS.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sagemaker_support import ACCOUNT, REGION, FakeClock, Stubs

from argoplug import aws
from argoplug.aws.sandbox import AwsSandbox, SandboxPipeline
from argoplug.jobs import JobTracker
from argoplug.plugins import glue, sagemaker, step_functions
from argoplug.testing import LiveServer

# Variables that would let botocore find credentials or endpoints outside the test's control.
_AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SAGEMAKER",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_GLUE",
    "AWS_ENDPOINT_URL_SFN",
    "AWS_ENDPOINT_URL_LAMBDA",
    "AWS_ENDPOINT_URL_EKS",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


@pytest.fixture(autouse=True)
def isolated_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[JobTracker]:
    """No AWS configuration from the machine, no cached clients, and a fresh JobTracker."""
    for name in _AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    aws.clear_cache()
    tracker = sagemaker.use_tracker()
    glue.use_tracker()
    step_functions.use_tracker()
    yield tracker
    aws.clear_cache()
    sagemaker.use_tracker()
    glue.use_tracker()
    step_functions.use_tracker()


@pytest.fixture(scope="module")
def moto_sandbox() -> Iterator[AwsSandbox]:
    """moto's HTTP server on a free loopback port, account 100000000002, region us-west-2, MyPipeline.

    Started once per module (about a second); tests that need another state create it themselves.
    """
    sandbox = AwsSandbox(account=ACCOUNT, region=REGION, pipelines=[SandboxPipeline(name="MyPipeline")])
    with sandbox:
        yield sandbox


@pytest.fixture
def moto(moto_sandbox: AwsSandbox, monkeypatch: pytest.MonkeyPatch) -> AwsSandbox:
    """Point AWS_ENDPOINT_URL (and fake credentials, the region) at the module's moto server."""
    for name, value in moto_sandbox.env.items():
        monkeypatch.setenv(name, value)
    return moto_sandbox


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    """A live argoplug server with both SageMaker plugins, over real loopback sockets.

    Shared by a module's tests: the server holds no state of its own (the JobTracker is reset per test).
    """
    with LiveServer(list(sagemaker.plugins)) as live:
        yield live


@pytest.fixture
def stubs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubs]:
    """Stub the SageMaker client of region us-west-2; the plugins' time budget runs on a FakeClock."""
    from botocore.stub import Stubber

    # A closed port: a call that is not stubbed can never leave the machine.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    sm = aws.client("sagemaker", region=REGION)
    calls: list[str] = []
    clock = FakeClock()
    sagemaker.use_tracker(clock=clock)
    # before-parameter-build runs for every call, stubbed or not (before-call stops at the Stubber).
    sm.meta.events.register("before-parameter-build.sagemaker", lambda model, **_: calls.append(model.name))
    sm.meta.events.register("before-parameter-build.sagemaker", clock.on_call)
    with Stubber(sm) as sm_stub:
        yield Stubs(sm_stub, calls, clock)
