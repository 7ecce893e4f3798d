"""The sandbox's authentication and authorization through lightkube's real client, as the API server answers
(and, marked `cluster`, the same tests against the cluster of KUBECONFIG): TokenRequest, TokenReview, the 401
of a bad bearer token, SelfSubjectAccessReview, SubjectAccessReview and the 403 of a request RBAC does not
allow.

The expected texts are the API server's (k8s.io/apiserver's endpoints/handlers/responsewriters and
authentication filters, plugin/pkg/auth/authorizer/rbac and pkg/registry/rbac/validation/rule.go for the
reasons, apimachinery's apierrors.NewForbidden), so a real cluster passes them too.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from lightkube import Client
from lightkube.config.client_adapter import Client as lightkube_http_client
from lightkube.config.client_adapter import ConnectionParams
from lightkube.config.models import User
from lightkube.models.authentication_v1 import TokenRequestSpec, TokenReviewSpec
from lightkube.models.authorization_v1 import (
    ResourceAttributes,
    SelfSubjectAccessReviewSpec,
    SubjectAccessReviewSpec,
)
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.authentication_v1 import TokenReview
from lightkube.resources.authorization_v1 import SelfSubjectAccessReview, SubjectAccessReview
from lightkube.resources.core_v1 import ConfigMap, Secret, ServiceAccount

from argoplug.kube.access import ClusterAccess, StaticToken

from .conftest import KubeTarget, api_error, status_body

ACCOUNT = "reader"
# The Role the ServiceAccount `reader` is bound to: read configmaps, nothing else.
READ_CONFIG_MAPS = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]
UNAUTHORIZED = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Unauthorized",
    "reason": "Unauthorized",
    "code": 401,
}


@pytest.fixture
def bad_token_http(kube_target: KubeTarget) -> Iterator[httpx2.Client]:
    """lightkube's httpx client for the administrator's cluster (its server and CA) with the user replaced by
    a bearer token the API server never issued (no client certificate, no exec plugin)."""
    admin: Any = kube_target.config.get()
    single = admin._replace(user=User(token="nope"))
    with lightkube_http_client(single, ConnectionParams(trust_env=False)) as client:
        yield client


def account_user(namespace: str, name: str = ACCOUNT) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def account_groups(namespace: str) -> list[str]:
    return ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]


def config_maps(verb: str, namespace: str) -> ResourceAttributes:
    return ResourceAttributes(verb=verb, group="", resource="configmaps", namespace=namespace)


def allowed_reason(namespace: str, name: str = ACCOUNT) -> str:
    # rbac.go's authorizingVisitor with rule.go's roleBindingDescriber and describeSubject: name/namespace.
    return (
        f'RBAC: allowed by RoleBinding "{name}/{namespace}" of Role "{name}" '
        f'to ServiceAccount "{name}/{namespace}"'
    )


class TestTokenRequest:
    def test_a_token_request_gives_a_token_and_its_expiry(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = kube_target.client()
        client.create(ServiceAccount(metadata=ObjectMeta(name=ACCOUNT, namespace=kube_namespace)))
        request = ServiceAccount.Token(
            metadata=ObjectMeta(), spec=TokenRequestSpec(audiences=[], expirationSeconds=3600)
        )
        before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        answer: Any = client.create(request, ACCOUNT, namespace=kube_namespace)
        after = datetime.datetime.now(datetime.UTC)
        assert answer.kind == "TokenRequest" and answer.apiVersion == "authentication.k8s.io/v1"
        assert answer.status.token and answer.status.token.count(".") == 2  # a JWT
        expires = answer.status.expirationTimestamp
        assert isinstance(expires, datetime.datetime)
        hour = datetime.timedelta(seconds=3600)
        assert before + hour - datetime.timedelta(seconds=1) <= expires <= after + hour
        assert answer.spec.expirationSeconds == 3600
        assert answer.spec.audiences  # none asked: the API server's own

    def test_the_token_authenticates_as_its_service_account(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        admin = kube_target.client()
        admin.create(
            ConfigMap(metadata=ObjectMeta(name="visible", namespace=kube_namespace), data={"k": "v"})
        )
        client = kube_target.client_as(kube_namespace, ACCOUNT, READ_CONFIG_MAPS)
        listed: Any = client.list(ConfigMap, namespace=kube_namespace)
        assert "visible" in {m.metadata.name for m in listed}
        assert client.get(ConfigMap, "visible", namespace=kube_namespace).data == {"k": "v"}


class TestTokenReview:
    def test_a_service_account_token_is_its_user(self, kube_target: KubeTarget, kube_namespace: str) -> None:
        token = kube_target.service_account_token(kube_namespace, ACCOUNT)
        client = kube_target.client()
        account: Any = client.get(ServiceAccount, ACCOUNT, namespace=kube_namespace)
        uid = account.metadata.uid
        review: Any = client.create(TokenReview(spec=TokenReviewSpec(token=token)))
        assert review.status.authenticated is True
        assert not review.status.error
        user = review.status.user
        assert user.username == account_user(kube_namespace)
        assert user.uid == uid
        assert set(user.groups) >= set(account_groups(kube_namespace))
        assert review.status.audiences

    def test_a_garbage_token_is_not_authenticated_and_not_an_error(self, kube_target: KubeTarget) -> None:
        review: Any = kube_target.client().create(TokenReview(spec=TokenReviewSpec(token="not-a-token")))
        assert not review.status.authenticated  # false, omitted on the wire
        assert review.status.user is None or not review.status.user.username


class TestUnauthorized:
    def test_a_bad_bearer_token_is_a_401_status(self, bad_token_http: httpx2.Client) -> None:
        answer = bad_token_http.get("/api/v1/namespaces/default/configmaps")
        assert answer.status_code == 401
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == UNAUTHORIZED

    def test_lightkube_raises_the_401_after_argoplugs_one_retry(self, kube_target: KubeTarget) -> None:
        admin: Any = kube_target.config.get()
        cluster = admin.cluster
        access = ClusterAccess.from_endpoint(
            cluster.server,
            token=StaticToken("not-a-token"),
            ca_data=cluster.certificate_auth_data,
            ca_file=cluster.certificate_auth,
        )
        with access.client() as client:
            error = api_error(client.get, ConfigMap, "anything", namespace="default")
        assert error.status.code == 401
        assert status_body(error) == UNAUTHORIZED


class TestSelfSubjectAccessReview:
    def review(self, client: Client, attributes: ResourceAttributes) -> Any:
        answer = client.create(
            SelfSubjectAccessReview(spec=SelfSubjectAccessReviewSpec(resourceAttributes=attributes))
        )
        assert answer.kind == "SelfSubjectAccessReview"
        return answer.status

    def test_the_role_allows_get_in_its_namespace(self, kube_target: KubeTarget, kube_namespace: str) -> None:
        client = kube_target.client_as(kube_namespace, ACCOUNT, READ_CONFIG_MAPS)
        status = self.review(client, config_maps("get", kube_namespace))
        assert status.allowed is True
        assert status.reason == allowed_reason(kube_namespace)

    def test_not_delete_nor_another_namespace(self, kube_target: KubeTarget, kube_namespace: str) -> None:
        client = kube_target.client_as(kube_namespace, ACCOUNT, READ_CONFIG_MAPS)
        for attributes in (
            config_maps("delete", kube_namespace),
            config_maps("get", f"{kube_namespace}-other"),
        ):
            status = self.review(client, attributes)
            assert status.allowed is False
            assert not status.denied  # RBAC never denies, it only does not allow


class TestSubjectAccessReview:
    def review(self, client: Client, namespace: str, attributes: ResourceAttributes) -> Any:
        spec = SubjectAccessReviewSpec(
            user=account_user(namespace), groups=account_groups(namespace), resourceAttributes=attributes
        )
        answer = client.create(SubjectAccessReview(spec=spec))
        assert answer.kind == "SubjectAccessReview"
        return answer.status

    def test_the_administrator_asks_about_the_service_account(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        kube_target.service_account_token(kube_namespace, ACCOUNT, READ_CONFIG_MAPS)
        admin = kube_target.client()
        status = self.review(admin, kube_namespace, config_maps("get", kube_namespace))
        assert status.allowed is True
        assert status.reason == allowed_reason(kube_namespace)
        assert self.review(admin, kube_namespace, config_maps("delete", kube_namespace)).allowed is False
        other = config_maps("get", f"{kube_namespace}-other")
        assert self.review(admin, kube_namespace, other).allowed is False


class TestForbidden:
    def test_listing_what_the_role_does_not_allow_is_a_403_status(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = kube_target.client_as(kube_namespace, ACCOUNT, READ_CONFIG_MAPS)
        error = api_error(list, client.list(Secret, namespace=kube_namespace))
        assert error.status.code == 403
        assert error.status.reason == "Forbidden"
        user = account_user(kube_namespace)
        assert status_body(error) == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f'secrets is forbidden: User "{user}" cannot list resource "secrets" in API group "" '
            f'in the namespace "{kube_namespace}"',
            "reason": "Forbidden",
            "details": {"kind": "secrets"},
            "code": 403,
        }
