"""Fixtures of the Kubernetes tests: every test runs against the embedded sandbox (over TLS, with a throwaway
CA, as a pod reaches its API server) and, marked `cluster`, against the cluster `KUBECONFIG` points at.

`pytest -m cluster` runs only the cluster half; without a reachable KUBECONFIG it is skipped, with the
reason. Each test gets a namespace of its own (`kube_namespace`), deleted afterwards.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import trustme
from lightkube import ApiError, Client
from lightkube.config.kubeconfig import KubeConfig
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import PolicyRule, RoleRef, Subject
from lightkube.resources.core_v1 import Namespace, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding

from argoplug.kube.access import ClusterAccess, StaticToken
from argoplug.kube.sandbox import KubeSandbox, SandboxTLS

TEST_LABEL = "argoplug.dev/test"


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy (returned); AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {predicate}")
        time.sleep(interval)


def api_error(call: Any, *args: Any, **kwargs: Any) -> ApiError:
    """The ApiError that `call(*args, **kwargs)` raises (AssertionError when it raises none)."""
    with pytest.raises(ApiError) as caught:
        call(*args, **kwargs)
    return caught.value


def status_body(error: ApiError) -> dict[str, Any]:
    """The Status the API answered, as the bytes said it (not lightkube's decoding of it)."""
    assert error.response is not None
    assert error.response.headers["content-type"] == "application/json"
    body: dict[str, Any] = error.response.json()
    return body


@dataclasses.dataclass
class KubeTarget:
    """Where a test's requests go: `name` "sandbox" or "cluster", `config` a lightkube KubeConfig of an
    administrator, `sandbox` the KubeSandbox (None on a real cluster)."""

    name: str
    config: KubeConfig
    sandbox: KubeSandbox | None = None
    _clients: list[Client] = dataclasses.field(default_factory=list)

    def client(self) -> Client:
        """The administrator's client (one for the session, closed at its end)."""
        if not self._clients:
            self._clients.append(Client(self.config, field_manager="argoplug-tests"))
        return self._clients[0]

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()

    def service_account_token(self, namespace: str, name: str, rules: Sequence[dict[str, Any]] = ()) -> str:
        """Create ServiceAccount `name` in `namespace`, bound to a Role `name` with `rules` when there are
        any, and return a token of it from a TokenRequest."""
        client = self.client()
        client.create(ServiceAccount(metadata=ObjectMeta(name=name, namespace=namespace)))
        if rules:
            client.create(
                Role(
                    metadata=ObjectMeta(name=name, namespace=namespace),
                    rules=[PolicyRule(**rule) for rule in rules],
                )
            )
            client.create(
                RoleBinding(
                    metadata=ObjectMeta(name=name, namespace=namespace),
                    roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="Role", name=name),
                    subjects=[Subject(kind="ServiceAccount", name=name, namespace=namespace)],
                )
            )
        request = ServiceAccount.Token(
            metadata=ObjectMeta(), spec=TokenRequestSpec(audiences=[], expirationSeconds=3600)
        )
        return str(client.create(request, name, namespace=namespace).status.token)

    def access_as(self, namespace: str, name: str, rules: Sequence[dict[str, Any]] = ()) -> ClusterAccess:
        """`service_account_token`'s account as a ClusterAccess (as the plugin's sidecar has it)."""
        token = self.service_account_token(namespace, name, rules)
        cluster = self.config.get().cluster
        return ClusterAccess.from_endpoint(
            cluster.server,
            token=StaticToken(token),
            ca_data=cluster.certificate_auth_data,
            ca_file=cluster.certificate_auth,
            namespace=namespace,
            identity=f"system:serviceaccount:{namespace}:{name}",
        )

    def client_as(self, namespace: str, name: str, rules: Sequence[dict[str, Any]] = ()) -> Client:
        """A lightkube Client authenticated as `service_account_token`'s account (closed with the target)."""
        client = self.access_as(namespace, name, rules).client()
        self._clients.append(client)
        return client


def _sandbox_tls(folder: Path) -> SandboxTLS:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = folder / "ca.crt", folder / "tls.crt", folder / "tls.key"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    return SandboxTLS(cert_file=str(cert_file), key_file=str(key_file), ca_file=str(ca_file))


def _cluster_config() -> KubeConfig:
    path = os.environ.get("KUBECONFIG")
    if not path:
        pytest.skip("cluster tests need KUBECONFIG pointing at a cluster (it is not set)")
    try:
        config = KubeConfig.from_file(path.split(os.pathsep)[0])
        with Client(config) as client:
            next(iter(client.list(Namespace, limit=1)), None)
    except Exception as exc:  # any failure to reach it is a reason to skip, said as it is
        pytest.skip(f"cluster tests need a reachable cluster: KUBECONFIG={path}: {type(exc).__name__}: {exc}")
    return config


@pytest.fixture(scope="session")
def kube_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeSandbox]:
    """One sandbox for the session, served over TLS."""
    with KubeSandbox(tls=_sandbox_tls(tmp_path_factory.mktemp("kube-sandbox-tls"))) as sandbox:
        yield sandbox


@pytest.fixture(scope="session", params=["sandbox", pytest.param("cluster", marks=pytest.mark.cluster)])
def kube_target(request: pytest.FixtureRequest) -> Iterator[KubeTarget]:
    """The sandbox, then (marked `cluster`) the cluster of KUBECONFIG."""
    if request.param == "cluster":
        target = KubeTarget("cluster", _cluster_config())
    else:
        sandbox: KubeSandbox = request.getfixturevalue("kube_sandbox")
        target = KubeTarget("sandbox", sandbox.config(), sandbox)
    yield target
    target.close()


@pytest.fixture
def kube_namespace(kube_target: KubeTarget) -> Iterator[str]:
    """A new namespace for this test (`argoplug-test-<random>`), deleted after it."""
    name = f"argoplug-test-{uuid.uuid4().hex[:10]}"
    client = kube_target.client()
    client.create(Namespace(metadata=ObjectMeta(name=name, labels={TEST_LABEL: "true"})))
    # The ServiceAccount controller gives every namespace its `default` account; a real one takes a moment.
    wait_until(
        lambda: any(sa.metadata.name == "default" for sa in client.list(ServiceAccount, namespace=name))
    )
    yield name
    client.delete(Namespace, name)
