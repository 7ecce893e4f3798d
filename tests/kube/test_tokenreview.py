"""The central server's caller check (`argoplug.kube.tokenreview`) against the Kubernetes sandbox (or, marked
`cluster`, the cluster KUBECONFIG names): real TokenReviews, made as a ServiceAccount bound to
`system:auth-delegator`, of real ServiceAccount tokens; the middleware and `argoplug serve --upstream-auth
tokenreview` over real sockets.

What a user relies on: only `driver-plugin-executor-plugin` of the allowed namespaces gets in (401 for no
valid token, 403 naming who it is and who is allowed), a reviewer without the RBAC to review says so (503,
naming `system:auth-delegator`), an accepted token is not reviewed again for a minute (nor past its `exp`),
and a foreign plugin key still gets `{}`.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
import yaml
from lightkube import ApiError
from lightkube.models.authentication_v1 import TokenReviewSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import PolicyRule, RoleRef, Subject
from lightkube.resources.authentication_v1 import TokenReview
from lightkube.resources.core_v1 import Namespace, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import ClusterRole, ClusterRoleBinding
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from argoplug import Plugin, Result, Task
from argoplug.kube.access import ClusterAccess, StaticToken
from argoplug.kube.tokenreview import (
    AUTH_DELEGATOR,
    DEFAULT_SERVICE_ACCOUNT,
    CallerRefused,
    TokenReviewer,
    TokenReviewMiddleware,
)
from argoplug.protocol import EXECUTE_PATH
from argoplug.server import ServerSettings, create_app, uvicorn_config
from argoplug.testing import make_request

from .conftest import TEST_LABEL, KubeTarget, wait_until

ROOT = Path(__file__).resolve().parents[2]
CENTRAL = "central-driver"  # the central server's own ServiceAccount
# The rules of Kubernetes' bootstrap ClusterRole system:auth-delegator (plugin/pkg/auth/authorizer/rbac/
# bootstrappolicy/policy.go), which the sandbox does not preload.
AUTH_DELEGATOR_RULES = [
    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
    {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
]


def user(namespace: str, name: str = DEFAULT_SERVICE_ACCOUNT) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def refusal(reviewer: TokenReviewer, token: str) -> CallerRefused:
    with pytest.raises(CallerRefused) as refused:
        reviewer.review(token)
    return refused.value


def can_review(access: ClusterAccess) -> bool:
    client = access.client()
    try:
        client.create(TokenReview(spec=TokenReviewSpec(token="not-a-token")))
    except ApiError as exc:
        if exc.status.code == 403:
            return False
        raise
    finally:
        client.close()
    return True


@pytest.fixture
def central_access(kube_target: KubeTarget, kube_namespace: str) -> Iterator[ClusterAccess]:
    """The central server's ServiceAccount, bound to the ClusterRole system:auth-delegator."""
    client = kube_target.client()
    if kube_target.sandbox is not None:
        with contextlib.suppress(ApiError):  # made by an earlier test of the session
            client.create(
                ClusterRole(
                    metadata=ObjectMeta(name=AUTH_DELEGATOR),
                    rules=[PolicyRule(**rule) for rule in AUTH_DELEGATOR_RULES],
                )
            )
    access = kube_target.access_as(kube_namespace, CENTRAL)
    binding = f"{kube_namespace}-{CENTRAL}"
    client.create(
        ClusterRoleBinding(
            metadata=ObjectMeta(name=binding, labels={TEST_LABEL: "true"}),
            roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name=AUTH_DELEGATOR),
            subjects=[Subject(kind="ServiceAccount", name=CENTRAL, namespace=kube_namespace)],
        )
    )
    try:
        wait_until(lambda: can_review(access))  # a real API server's RBAC cache takes a moment
        yield access
    finally:
        client.delete(ClusterRoleBinding, binding)


@pytest.fixture
def other_namespace(kube_target: KubeTarget) -> Iterator[str]:
    """A second namespace (another profile), deleted after the test."""
    name = f"argoplug-test-{uuid.uuid4().hex[:10]}"
    client = kube_target.client()
    client.create(Namespace(metadata=ObjectMeta(name=name, labels={TEST_LABEL: "true"})))
    yield name
    client.delete(Namespace, name)


@pytest.fixture
def reviewer(central_access: ClusterAccess, kube_namespace: str) -> Iterator[TokenReviewer]:
    with TokenReviewer(central_access, namespaces={kube_namespace}) as made:
        yield made


# -- who gets in ---------------------------------------------------------------------------------------------


def test_the_plugin_account_of_an_allowed_namespace_is_accepted(
    reviewer: TokenReviewer, kube_target: KubeTarget, kube_namespace: str
) -> None:
    token = kube_target.service_account_token(kube_namespace, DEFAULT_SERVICE_ACCOUNT)
    assert reviewer.review(token) == user(kube_namespace)


def test_the_same_account_of_another_namespace_is_403_naming_both(
    central_access: ClusterAccess, kube_target: KubeTarget, kube_namespace: str, other_namespace: str
) -> None:
    token = kube_target.service_account_token(other_namespace, DEFAULT_SERVICE_ACCOUNT)
    with TokenReviewer(central_access, namespaces={kube_namespace}) as one:
        refused = refusal(one, token)
    assert refused.status == 403
    assert refused.message == (
        f"{user(other_namespace)} is not allowed: expected the ServiceAccount {DEFAULT_SERVICE_ACCOUNT} of "
        f"namespace {kube_namespace}"
    )
    with TokenReviewer(central_access, namespaces={"team-a", "team-c", kube_namespace}) as several:
        refused = refusal(several, token)
    first, second = sorted([kube_namespace, "team-a"])
    assert refused.message.endswith(f"of namespace {first}, {second} or team-c")
    with TokenReviewer(central_access) as anywhere:
        assert anywhere.review(token) == user(other_namespace)


def test_another_account_of_the_allowed_namespace_is_403(
    reviewer: TokenReviewer, kube_target: KubeTarget, kube_namespace: str
) -> None:
    token = kube_target.service_account_token(kube_namespace, "default-workflow")
    refused = refusal(reviewer, token)
    assert refused.status == 403
    assert refused.message.startswith(f"{user(kube_namespace, 'default-workflow')} is not allowed: expected ")


def test_a_garbage_token_is_401_with_the_reviews_error(reviewer: TokenReviewer) -> None:
    for garbage in ("not-a-token", "a.b.c", "x" * 2000):
        refused = refusal(reviewer, garbage)
        assert refused.status == 401
        assert refused.message.startswith("the token is not valid: "), refused.message
        assert garbage not in refused.message


def test_the_token_of_a_deleted_service_account_is_401(
    central_access: ClusterAccess, kube_target: KubeTarget, kube_namespace: str
) -> None:
    token = kube_target.service_account_token(kube_namespace, DEFAULT_SERVICE_ACCOUNT)
    with TokenReviewer(central_access, namespaces={kube_namespace}, cache_seconds=0) as fresh:
        assert fresh.review(token) == user(kube_namespace)
        kube_target.client().delete(ServiceAccount, DEFAULT_SERVICE_ACCOUNT, namespace=kube_namespace)

        def refused() -> CallerRefused | None:
            try:
                fresh.review(token)
            except CallerRefused as exc:
                return exc
            return None

        found = wait_until(refused)
    assert found.status == 401
    assert found.message.startswith("the token is not valid: ")


def test_no_bearer_token_is_401() -> None:
    from argoplug.kube.tokenreview import bearer_token

    for header in (None, "", "Basic dXNlcjpwYXNz", "Bearer ", "Bearer"):
        with pytest.raises(CallerRefused) as refused:
            bearer_token(header)
        assert refused.value.status == 401
    assert bearer_token("bearer abc") == "abc"


# -- when the review itself fails ----------------------------------------------------------------------------


def test_a_reviewer_without_create_tokenreviews_is_503_naming_system_auth_delegator(
    kube_target: KubeTarget, kube_namespace: str
) -> None:
    token = kube_target.service_account_token(kube_namespace, DEFAULT_SERVICE_ACCOUNT)
    lonely = kube_target.access_as(kube_namespace, "no-delegation")
    with TokenReviewer(lonely, namespaces={kube_namespace}) as reviewer:
        refused = refusal(reviewer, token)
    assert refused.status == 503
    assert f"{user(kube_namespace, 'no-delegation')} may not create tokenreviews" in refused.message
    assert f"Bind the ClusterRole {AUTH_DELEGATOR} to the server's ServiceAccount" in refused.message
    assert token not in refused.message


def test_an_unreachable_api_server_is_503() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    access = ClusterAccess.from_endpoint(f"http://127.0.0.1:{port}", token=StaticToken("admin"))
    with TokenReviewer(access, timeout=2) as reviewer:
        refused = refusal(reviewer, "some.caller.token")
    assert refused.status == 503
    assert refused.message.startswith("cannot review the caller's token: cannot reach the Kubernetes API")


def test_bad_options_are_value_errors() -> None:
    access = ClusterAccess.from_endpoint("http://127.0.0.1:1", token=StaticToken("admin"))
    for options in (
        {"namespaces": []},
        {"namespaces": [""]},
        {"namespaces": "team-a"},
        {"service_account": ""},
        {"cache_seconds": -1},
    ):
        with pytest.raises(ValueError):
            TokenReviewer(access, **options)


# -- the cache -----------------------------------------------------------------------------------------------


class _CountingClient:
    """A lightkube Client that counts the TokenReviews created through it."""

    def __init__(self, inner: Any, reviews: list[str]) -> None:
        self._inner = inner
        self._reviews = reviews

    def create(self, obj: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(obj, TokenReview):
            self._reviews.append("review")
        return self._inner.create(obj, *args, **kwargs)

    def close(self) -> None:
        self._inner.close()


@dataclasses.dataclass(frozen=True)
class _CountingAccess(ClusterAccess):
    reviews: list[str] = dataclasses.field(default_factory=list, compare=False)

    def client(self, **options: Any) -> Any:
        return _CountingClient(super().client(**options), self.reviews)


def counting(access: ClusterAccess) -> _CountingAccess:
    return _CountingAccess(
        **{field.name: getattr(access, field.name) for field in dataclasses.fields(access)}
    )


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def expiry(token: str) -> float:
    payload = token.split(".")[1]
    return float(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"])


def test_an_accepted_token_is_not_reviewed_again_for_a_minute(
    central_access: ClusterAccess, kube_target: KubeTarget, kube_namespace: str, other_namespace: str
) -> None:
    access = counting(central_access)
    clock = FakeClock(time.time())
    token = kube_target.service_account_token(kube_namespace, DEFAULT_SERVICE_ACCOUNT)
    foreign = kube_target.service_account_token(other_namespace, DEFAULT_SERVICE_ACCOUNT)
    with TokenReviewer(access, namespaces={kube_namespace}, clock=clock) as reviewer:
        assert reviewer.review(token) == user(kube_namespace)
        clock.now += 59
        assert reviewer.review(token) == user(kube_namespace)
        assert access.reviews == ["review"]
        clock.now += 2
        assert reviewer.review(token) == user(kube_namespace)
        assert len(access.reviews) == 2
        # Who a token is is remembered, allowed or not: a 403 asked twice is reviewed once.
        assert refusal(reviewer, foreign).status == 403
        assert refusal(reviewer, foreign).status == 403
        assert len(access.reviews) == 3
        # Refusals are not remembered.
        assert refusal(reviewer, "not-a-token").status == 401
        assert refusal(reviewer, "not-a-token").status == 401
        assert len(access.reviews) == 5


def test_an_accepted_token_is_not_remembered_past_its_exp(
    central_access: ClusterAccess, kube_target: KubeTarget, kube_namespace: str
) -> None:
    access = counting(central_access)
    token = kube_target.service_account_token(kube_namespace, DEFAULT_SERVICE_ACCOUNT)
    clock = FakeClock(expiry(token) - 10)
    with TokenReviewer(access, namespaces={kube_namespace}, clock=clock) as reviewer:
        reviewer.review(token)
        clock.now += 9
        reviewer.review(token)
        assert len(access.reviews) == 1
        clock.now += 1  # the token's exp: asked again (the API server's clock says it is still valid)
        reviewer.review(token)
        assert len(access.reviews) == 2


# -- over real sockets ---------------------------------------------------------------------------------------


class Served:
    """An ASGI app on uvicorn on a free loopback port, in a thread."""

    def __init__(self, config: uvicorn.Config) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with contextlib.suppress(SystemExit):
            self._server.run(sockets=[self._sock])

    def __enter__(self) -> Served:
        self._thread.start()
        wait_until(lambda: self._server.started or not self._thread.is_alive(), timeout=10)
        assert self._server.started, "the server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


def plain_config(app: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app, access_log=False, log_config=None, log_level="warning", lifespan="on", ws="none"
    )


def test_the_middleware_answers_401_403_and_passes_the_caller(
    reviewer: TokenReviewer, kube_target: KubeTarget, kube_namespace: str, other_namespace: str
) -> None:
    async def execute(request: Request) -> JSONResponse:
        return JSONResponse({"caller": request.state.caller, "body": (await request.json())["x"]})

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    inner = Starlette(routes=[Route(EXECUTE_PATH, execute, methods=["POST"]), Route("/healthz", healthz)])
    allowed = kube_target.service_account_token(kube_namespace, DEFAULT_SERVICE_ACCOUNT)
    foreign = kube_target.service_account_token(other_namespace, DEFAULT_SERVICE_ACCOUNT)
    with Served(plain_config(TokenReviewMiddleware(inner, reviewer))) as served, httpx.Client() as http:
        url = served.url + EXECUTE_PATH

        def post(token: str | None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
            return http.post(url, json={"x": 1}, headers=headers)

        missing = post(None)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.json() == {
            "error": "missing Authorization header: send `Authorization: Bearer <token>`"
        }
        garbage = post("not-a-token")
        assert garbage.status_code == 401
        assert garbage.json()["error"].startswith("the token is not valid: ")
        other = post(foreign)
        assert other.status_code == 403
        assert other.json()["error"].startswith(f"{user(other_namespace)} is not allowed: ")
        assert kube_namespace in other.json()["error"]
        accepted = post(allowed)
        assert accepted.status_code == 200
        assert accepted.json() == {"caller": user(kube_namespace), "body": 1}
        assert http.get(served.url + "/healthz").status_code == 200  # other paths pass unchecked


class EchoArgs(msgspec.Struct):
    word: str = "hi"


echo = Plugin("echo", args=EchoArgs)


@echo.handler
def echo_word(task: Task, args: EchoArgs) -> Result:
    return Result.succeeded(outputs={"word": args.word})


def test_create_app_takes_a_caller_check_asked_only_for_served_keys() -> None:
    asked: list[str | None] = []

    async def check(authorization: str | None) -> tuple[int, str] | None:
        asked.append(authorization)
        if authorization == "Bearer boom":
            raise RuntimeError("the check broke")
        return None if authorization == "Bearer good" else (401, "who are you?")

    app = create_app([echo], ServerSettings(tune_gc=False, token_file="/nonexistent"), caller_check=check)
    with Served(uvicorn_config(app)) as served, httpx.Client(base_url=served.url) as http:

        def post(block: dict[str, Any], token: str | None = None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return http.post(EXECUTE_PATH, json=make_request(block), headers=headers)

        assert post({"other-plugin": {}}).json() == {}
        assert asked == []
        refused = post({"echo": {}}, "bad")
        assert (refused.status_code, refused.json()) == (401, {"error": "who are you?"})
        broken = post({"echo": {}}, "boom")
        assert (broken.status_code, broken.json()) == (
            503,
            {"error": "the caller check failed: RuntimeError"},
        )
        accepted = post({"echo": {"word": "yo"}}, "good")
        assert accepted.status_code == 200
        assert accepted.json()["node"]["outputs"]["parameters"] == [{"name": "word", "value": "yo"}]
        assert asked == ["Bearer bad", "Bearer boom", "Bearer good"]


# -- argoplug serve --upstream-auth tokenreview --------------------------------------------------------------


def write_kubeconfig(target: KubeTarget, token: str, path: Path, namespace: str) -> Path:
    """A kubeconfig of the target's cluster authenticating with `token`."""
    if target.sandbox is not None:
        return target.sandbox.kubeconfig(path, token=token, namespace=namespace)
    cluster = target.config.get().cluster
    entry: dict[str, Any] = {"server": cluster.server}
    if cluster.certificate_auth_data:
        entry["certificate-authority-data"] = cluster.certificate_auth_data
    elif cluster.certificate_auth:
        entry["certificate-authority"] = str(cluster.certificate_auth)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": entry}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": namespace}}],
        "current-context": "c",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def serve_command(port: int, *options: str) -> list[str]:
    return [sys.executable, "-m", "argoplug", "serve", "--host", "127.0.0.1", "--port", str(port), *options]


def environment() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name != "KUBECONFIG"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "examples" / "greet"), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.slow
def test_argoplug_serve_with_tokenreview_lets_only_the_allowed_account_reach_the_plugin(
    central_access: ClusterAccess,
    kube_target: KubeTarget,
    kube_namespace: str,
    other_namespace: str,
    tmp_path: Path,
) -> None:
    assert central_access.token_source is not None
    central_token = central_access.token_source.token()
    kubeconfig = write_kubeconfig(kube_target, central_token, tmp_path / "kubeconfig", kube_namespace)
    allowed = kube_target.service_account_token(kube_namespace, DEFAULT_SERVICE_ACCOUNT)
    foreign = kube_target.service_account_token(other_namespace, DEFAULT_SERVICE_ACCOUNT)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = serve_command(
        port,
        *("--plugin", "greet:greet", "--upstream-auth", "tokenreview"),
        *("--allow-namespace", kube_namespace, "--kubeconfig", str(kubeconfig), "--log-format", "json"),
    )
    log_path = tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=environment()
        )
    try:
        with httpx.Client(base_url=url, timeout=30) as http:

            def healthy() -> bool:
                assert process.poll() is None, log_path.read_text()
                with contextlib.suppress(httpx.HTTPError):
                    return http.get("/healthz").status_code == 200
                return False

            wait_until(healthy, timeout=30)

            def post(block: dict[str, Any], token: str | None) -> httpx.Response:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                return http.post(EXECUTE_PATH, json=make_request(block), headers=headers)

            reached = post({"greet": {"name": "profile"}}, allowed)
            assert reached.status_code == 200, reached.text
            assert reached.json()["node"]["phase"] == "Succeeded"
            assert reached.json()["node"]["outputs"]["parameters"] == [
                {"name": "greeting", "value": "hello profile"}
            ]
            other = post({"greet": {"name": "profile"}}, foreign)
            assert other.status_code == 403
            assert other.json() == {
                "error": f"{user(other_namespace)} is not allowed: expected the ServiceAccount "
                f"{DEFAULT_SERVICE_ACCOUNT} of namespace {kube_namespace}"
            }
            assert post({"greet": {"name": "profile"}}, None).status_code == 401
            assert post({"greet": {"name": "profile"}}, "not-a-token").status_code == 401
            foreign_key = post({"other-plugin": {}}, None)
            assert (foreign_key.status_code, foreign_key.json()) == (200, {})
    finally:
        process.terminate()
        process.wait(timeout=15)
    text = log_path.read_text()
    assert "callers are checked by TokenReview" in text
    assert "token file" not in text  # the agent's token file is not read, nor warned about
    for secret in (central_token, allowed, foreign):
        assert secret not in text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--allow-namespace", "team-a"], "--allow-namespace: only with --upstream-auth tokenreview"),
        (["--kubeconfig", "k", "--context", "c"], "--kubeconfig, --context: only with --upstream-auth"),
        (["--upstream-auth", "tokenreview", "--token-file", "t"], "--token-file is the Argo agent's token"),
    ],
)
def test_serve_refuses_options_that_do_not_go_together(
    options: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from argoplug.cli.serve import serve

    with pytest.raises(SystemExit) as exited:
        serve(options)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_serve_with_a_kubeconfig_it_cannot_use_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "no-kubeconfig"
    done = subprocess.run(
        serve_command(
            0, "--plugin", "greet:greet", "--upstream-auth", "tokenreview", "--kubeconfig", str(missing)
        ),
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(),
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(
        f"argoplug serve: --upstream-auth tokenreview: cannot use kubeconfig {missing}"
    )


def test_serve_defaults_to_the_reviewers_account_and_imports_no_kube_without_tokenreview() -> None:
    from argoplug.cli import serve

    assert serve._SERVICE_ACCOUNT == DEFAULT_SERVICE_ACCOUNT
    code = (
        "import sys\n"
        "from argoplug.cli.serve import serve\n"
        "code = serve(['--plugin', 'no-such-plugin'])\n"
        "print(code, sorted(m for m in ('lightkube', 'argoplug.kube') if m in sys.modules), flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split("\n")[0] == "2 []", (done.returncode, done.stdout + done.stderr)
