"""The sandbox's authentication and RBAC (argoplug.kube.sandbox.rbac): tokens, decisions and the API server's
exact messages, without a server."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from argoplug.kube.sandbox.rbac import (
    ANONYMOUS,
    Authenticator,
    Authorizer,
    Decision,
    RequestAttributes,
    RequestRejected,
    UserInfo,
    request_attributes,
)

ISSUER = "https://kubernetes.default.svc.cluster.local"
NOW = 1_700_000_000.0
SA = "system:serviceaccount:ns:sa"
SA_USER = UserInfo(
    username=SA,
    uid="uid-1",
    groups=("system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"),
)
RBAC = "rbac.authorization.k8s.io"


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.fixture
def authenticator() -> Authenticator:
    return Authenticator()


def issue(authenticator: Authenticator, **options: Any) -> str:
    token, _ = authenticator.issue_service_account_token(
        namespace="ns", name="sa", uid="uid-1", now=NOW, **options
    )
    return token


class TestServiceAccountTokens:
    def test_claims_are_a_projected_tokens(self, authenticator: Authenticator) -> None:
        token, expires = authenticator.issue_service_account_token(
            namespace="ns", name="sa", uid="uid-1", now=NOW, expiration_seconds=3600
        )
        claims = claims_of(token)
        assert claims.pop("jti")
        assert claims == {
            "aud": [ISSUER],
            "exp": 1_700_003_600,
            "iat": 1_700_000_000,
            "iss": ISSUER,
            "kubernetes.io": {"namespace": "ns", "serviceaccount": {"name": "sa", "uid": "uid-1"}},
            "nbf": 1_700_000_000,
            "sub": SA,
        }
        assert expires == "2023-11-14T23:13:20Z"

    def test_a_bearer_token_is_its_service_account(self, authenticator: Authenticator) -> None:
        token = issue(authenticator)
        user = authenticator.authenticate(f"Bearer {token}", now=NOW + 10)
        assert user is not None
        assert (user.username, user.uid, user.groups) == (SA_USER.username, SA_USER.uid, SA_USER.groups)
        assert user.extra == {
            "authentication.kubernetes.io/credential-id": (f"JTI={claims_of(token)['jti']}",)
        }

    @pytest.mark.parametrize(
        "header", [None, "", "   ", "Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer  x"]
    )
    def test_no_bearer_token_is_anonymous(self, authenticator: Authenticator, header: str | None) -> None:
        assert authenticator.authenticate(header) == ANONYMOUS
        assert UserInfo(username="system:anonymous", groups=("system:unauthenticated",)) == ANONYMOUS

    def test_the_scheme_is_case_insensitive(self, authenticator: Authenticator) -> None:
        assert authenticator.authenticate(f"bearer {issue(authenticator)}", now=NOW) is not None

    def test_expiry_has_go_joses_minute_of_leeway(self, authenticator: Authenticator) -> None:
        token = issue(authenticator, expiration_seconds=600)
        assert authenticator.authenticate(f"Bearer {token}", now=NOW + 660) is not None
        assert authenticator.authenticate(f"Bearer {token}", now=NOW + 661) is None
        assert authenticator.token_review({"token": token}, now=NOW + 661) == {
            "user": {},
            "error": "[invalid bearer token, service account token has expired]",
        }

    def test_a_token_from_the_future_is_not_valid_yet(self, authenticator: Authenticator) -> None:
        token = issue(authenticator)
        assert authenticator.authenticate(f"Bearer {token}", now=NOW - 61) is None
        assert authenticator.token_review({"token": token}, now=NOW - 61)["error"] == (
            "[invalid bearer token, service account token is not valid yet]"
        )

    def test_the_tokens_of_a_deleted_service_account_stop_working(self, authenticator: Authenticator) -> None:
        token = issue(authenticator)
        authenticator.revoke_service_account("ns", "sa")
        assert authenticator.authenticate(f"Bearer {token}", now=NOW) is None
        assert authenticator.token_review({"token": token}, now=NOW)["error"] == (
            '[invalid bearer token, serviceaccounts "sa" not found]'
        )

    def test_a_recreated_service_account_does_not_take_the_old_tokens(
        self, authenticator: Authenticator
    ) -> None:
        old = issue(authenticator)
        authenticator.revoke_service_account("ns", "sa")
        new, _ = authenticator.issue_service_account_token(namespace="ns", name="sa", uid="uid-2", now=NOW)
        assert authenticator.authenticate(f"Bearer {new}", now=NOW) is not None
        assert authenticator.token_review({"token": old}, now=NOW)["error"] == (
            "[invalid bearer token, service account UID (uid-2) does not match claim (uid-1)]"
        )

    def test_a_tampered_token_fails_its_signature(self, authenticator: Authenticator) -> None:
        header, payload, signature = issue(authenticator).split(".")
        claims = claims_of(f"{header}.{payload}.{signature}")
        claims["kubernetes.io"]["serviceaccount"]["name"] = "admin"
        forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        forged = f"{header}.{forged_payload}.{signature}"
        assert authenticator.authenticate(f"Bearer {forged}", now=NOW) is None
        assert authenticator.token_review({"token": forged}, now=NOW) == {
            "user": {},
            "error": "[invalid bearer token, go-jose/go-jose: error in cryptographic primitive]",
        }

    def test_another_sandboxs_token_has_no_key(self, authenticator: Authenticator) -> None:
        foreign = issue(Authenticator())
        assert authenticator.authenticate(f"Bearer {foreign}", now=NOW) is None
        assert authenticator.token_review({"token": foreign}, now=NOW)["error"] == (
            "[invalid bearer token, invalid signature, no keys found]"
        )

    @pytest.mark.parametrize(
        "token", ["garbage", "a.b.c", "{}", issue(Authenticator(issuer="https://other"))]
    )
    def test_an_unknown_token_is_only_an_invalid_bearer_token(
        self, authenticator: Authenticator, token: str
    ) -> None:
        assert authenticator.authenticate(f"Bearer {token}", now=NOW) is None
        assert authenticator.token_review({"token": token}, now=NOW) == {
            "user": {},
            "error": "invalid bearer token",
        }

    @given(segment=st.sampled_from([0, 1, 2]), position=st.integers(min_value=0), bit=st.integers(0, 7))
    def test_any_flipped_bit_is_refused(self, segment: int, position: int, bit: int) -> None:
        # Bits, not base64 characters: the last character of a segment has padding bits a decoder ignores.
        authenticator = Authenticator()
        parts = issue(authenticator).split(".")
        data = bytearray(base64.urlsafe_b64decode(parts[segment] + "=" * (-len(parts[segment]) % 4)))
        data[position % len(data)] ^= 1 << bit
        parts[segment] = base64.urlsafe_b64encode(bytes(data)).rstrip(b"=").decode()
        assert authenticator.authenticate(f"Bearer {'.'.join(parts)}", now=NOW) is None

    @pytest.mark.parametrize(
        ("seconds", "detail"),
        [(599, "may not specify a duration less than 10 minutes"), (2**32 + 1, "larger than 2^32 seconds")],
    )
    def test_a_token_request_needs_a_sane_duration(
        self, authenticator: Authenticator, seconds: int, detail: str
    ) -> None:
        with pytest.raises(RequestRejected) as refused:
            issue(authenticator, expiration_seconds=seconds)
        assert refused.value.code == 422
        assert str(refused.value).startswith(
            'TokenRequest.authentication.k8s.io "sa" is invalid: '
            f"spec.expirationSeconds: Invalid value: {seconds}: "
        )
        assert str(refused.value).endswith(detail)


class TestTokenReview:
    def test_a_valid_token(self, authenticator: Authenticator) -> None:
        token = issue(authenticator)
        assert authenticator.token_review({"token": token}, now=NOW) == {
            "authenticated": True,
            "user": {
                "username": SA,
                "uid": "uid-1",
                "groups": list(SA_USER.groups),
                "extra": {"authentication.kubernetes.io/credential-id": [f"JTI={claims_of(token)['jti']}"]},
            },
            "audiences": [ISSUER],
        }

    def test_the_audiences_are_the_intersection_in_the_reviews_order(
        self, authenticator: Authenticator
    ) -> None:
        token = issue(authenticator, audiences=["vault", "istio-ca"])
        status = authenticator.token_review(
            {"token": token, "audiences": ["other", "istio-ca", "vault"]}, now=NOW
        )
        assert status["authenticated"] is True
        assert status["audiences"] == ["istio-ca", "vault"]

    def test_a_token_for_another_audience_is_refused(self, authenticator: Authenticator) -> None:
        token = issue(authenticator, audiences=["vault"])
        assert authenticator.authenticate(f"Bearer {token}", now=NOW) is None
        assert authenticator.token_review({"token": token}, now=NOW)["error"] == (
            '[invalid bearer token, token audiences ["vault"] is invalid '
            f'for the target audiences ["{ISSUER}"]]'
        )
        assert authenticator.token_review({"token": token, "audiences": ["a", "b"]}, now=NOW)["error"] == (
            '[invalid bearer token, token audiences ["vault"] is invalid for the target audiences ["a" "b"]]'
        )

    def test_a_token_is_required(self, authenticator: Authenticator) -> None:
        with pytest.raises(
            RequestRejected, match=r"^token is required for TokenReview in authentication$"
        ) as err:
            authenticator.token_review({"token": ""})
        assert (err.value.code, err.value.reason) == (400, "BadRequest")

    def test_a_static_token_is_authenticated_for_the_api_servers_audience_only(
        self, authenticator: Authenticator
    ) -> None:
        admin = UserInfo(username="sandbox-admin", uid="0", groups=("system:masters",))
        authenticator.add_token("s3cret", admin)
        user = authenticator.authenticate("Bearer s3cret")
        assert user == UserInfo(
            username="sandbox-admin", uid="0", groups=("system:masters", "system:authenticated")
        )
        assert authenticator.token_review({"token": "s3cret"}) == {
            "authenticated": True,
            "user": {
                "username": "sandbox-admin",
                "uid": "0",
                "groups": ["system:masters", "system:authenticated"],
            },
            "audiences": [ISSUER],
        }
        assert authenticator.token_review({"token": "s3cret", "audiences": ["vault"]}) == {
            "user": {},
            "error": "invalid bearer token",
        }


class Objects:
    """The stored RBAC objects an Authorizer reads, by kind."""

    def __init__(self, *objects: Mapping[str, Any]) -> None:
        self.objects = list(objects)

    def __call__(self, kind: str, namespace: str | None) -> Iterable[Mapping[str, Any]]:
        return [
            obj
            for obj in self.objects
            if obj["kind"] == kind and (namespace is None or obj["metadata"].get("namespace") == namespace)
        ]


def role(name: str, *rules: Mapping[str, Any], namespace: str | None = "ns") -> dict[str, Any]:
    kind = "Role" if namespace else "ClusterRole"
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"kind": kind, "metadata": metadata, "rules": list(rules)}


def binding(
    name: str, role_kind: str, role_name: str, *subjects: Mapping[str, Any], namespace: str | None = "ns"
) -> dict[str, Any]:
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    ref = {"apiGroup": RBAC, "kind": role_kind, "name": role_name}
    return {"kind": kind, "metadata": metadata, "roleRef": ref, "subjects": list(subjects)}


def rule(
    verbs: list[str], resources: list[str], groups: list[str] | None = None, **more: Any
) -> dict[str, Any]:
    return {"apiGroups": [""] if groups is None else groups, "resources": resources, "verbs": verbs, **more}


SA_SUBJECT = {"kind": "ServiceAccount", "name": "sa"}


def attrs(verb: str, resource: str, **fields: Any) -> RequestAttributes:
    user = fields.pop("user", SA_USER)
    return RequestAttributes(
        user=user, verb=verb, api_group=fields.pop("api_group", ""), resource=resource, **fields
    )


def allowed(authorizer: Authorizer, verb: str, resource: str, **fields: Any) -> bool:
    return authorizer.authorize(attrs(verb, resource, **fields)).allowed


class TestBindings:
    def test_nothing_is_allowed_without_a_binding(self) -> None:
        authorizer = Authorizer(Objects())
        assert authorizer.authorize(attrs("get", "secrets", namespace="ns", name="x")) == Decision(False, "")

    def test_a_role_binding_grants_its_role_in_its_namespace_only(self) -> None:
        authorizer = Authorizer(
            Objects(role("reader", rule(["get"], ["secrets"])), binding("read", "Role", "reader", SA_SUBJECT))
        )
        assert authorizer.authorize(attrs("get", "secrets", namespace="ns", name="x")) == Decision(
            True, 'RBAC: allowed by RoleBinding "read/ns" of Role "reader" to ServiceAccount "sa/ns"'
        )
        assert not allowed(authorizer, "get", "secrets", namespace="other", name="x")
        assert not allowed(authorizer, "get", "secrets", name="x")
        assert not allowed(authorizer, "list", "secrets", namespace="ns")

    def test_a_role_binding_to_a_cluster_role_grants_it_in_the_bindings_namespace(self) -> None:
        authorizer = Authorizer(
            Objects(
                role("reader", rule(["get", "list"], ["configmaps"]), namespace=None),
                binding("read", "ClusterRole", "reader", SA_SUBJECT),
            )
        )
        assert authorizer.authorize(attrs("list", "configmaps", namespace="ns")).reason == (
            'RBAC: allowed by RoleBinding "read/ns" of ClusterRole "reader" to ServiceAccount "sa/ns"'
        )
        assert not allowed(authorizer, "list", "configmaps", namespace="other")
        assert not allowed(authorizer, "list", "configmaps")

    def test_a_cluster_role_binding_grants_everywhere(self) -> None:
        subject = {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}
        authorizer = Authorizer(
            Objects(
                role("reader", rule(["list"], ["namespaces", "configmaps"]), namespace=None),
                binding("read", "ClusterRole", "reader", subject, namespace=None),
            )
        )
        assert authorizer.authorize(attrs("list", "namespaces")).reason == (
            'RBAC: allowed by ClusterRoleBinding "read" of ClusterRole "reader" to ServiceAccount "sa/ns"'
        )
        assert allowed(authorizer, "list", "configmaps", namespace="anywhere")

    def test_a_service_account_subject_defaults_to_the_role_bindings_namespace(self) -> None:
        objects = Objects(
            role("reader", rule(["get"], ["pods"]), namespace="ns"),
            role("reader", rule(["get"], ["pods"]), namespace="other"),
            binding("read", "Role", "reader", SA_SUBJECT, namespace="ns"),
            binding("read", "Role", "reader", SA_SUBJECT, namespace="other"),
        )
        authorizer = Authorizer(objects)
        assert allowed(authorizer, "get", "pods", namespace="ns", name="p")
        # In "other" the subject means other:sa, not ns:sa.
        assert not allowed(authorizer, "get", "pods", namespace="other", name="p")

    def test_a_cluster_role_binding_names_a_service_accounts_namespace_or_no_one(self) -> None:
        authorizer = Authorizer(
            Objects(
                role("all", rule(["*"], ["*"], ["*"]), namespace=None),
                binding("all", "ClusterRole", "all", SA_SUBJECT, namespace=None),
            )
        )
        assert not allowed(authorizer, "get", "pods", namespace="ns", name="p")

    def test_user_and_group_subjects(self) -> None:
        authorizer = Authorizer(
            Objects(
                role("reader", rule(["get"], ["pods"])),
                binding("by-user", "Role", "reader", {"kind": "User", "name": "alice"}),
                binding("by-group", "Role", "reader", {"kind": "Group", "name": "team"}),
            )
        )
        alice = UserInfo(username="alice")
        bob = UserInfo(username="bob", groups=("team",))
        assert authorizer.authorize(attrs("get", "pods", namespace="ns", name="p", user=alice)).reason == (
            'RBAC: allowed by RoleBinding "by-user/ns" of Role "reader" to User "alice"'
        )
        assert authorizer.authorize(attrs("get", "pods", namespace="ns", name="p", user=bob)).reason == (
            'RBAC: allowed by RoleBinding "by-group/ns" of Role "reader" to Group "team"'
        )
        assert not allowed(
            authorizer, "get", "pods", namespace="ns", name="p", user=UserInfo(username="carol")
        )

    def test_system_masters_may_do_anything_without_a_reason(self) -> None:
        admin = UserInfo(username="admin", groups=("system:masters",))
        authorizer = Authorizer(Objects())
        assert authorizer.authorize(attrs("delete", "nodes", name="n", user=admin)) == Decision(True, "")
        nonresource = RequestAttributes(user=admin, verb="post", api_group="", resource="", path="/x")
        assert authorizer.authorize(nonresource).allowed

    def test_a_missing_role_is_the_denials_reason(self) -> None:
        authorizer = Authorizer(
            Objects(
                binding("read", "Role", "gone", SA_SUBJECT),
                binding("other", "Role", "other", {"kind": "User", "name": "someone-else"}),
            )
        )
        decision = authorizer.authorize(attrs("get", "pods", namespace="ns", name="p"))
        assert decision == Decision(False, 'RBAC: role.rbac.authorization.k8s.io "gone" not found')
        assert authorizer.forbidden_message(attrs("get", "pods", namespace="ns", name="p")) == (
            f'pods "p" is forbidden: User "{SA}" cannot get resource "pods" in API group "" '
            'in the namespace "ns": '
            'RBAC: role.rbac.authorization.k8s.io "gone" not found'
        )

    def test_several_missing_roles_are_an_aggregate(self) -> None:
        authorizer = Authorizer(
            Objects(
                binding("a", "ClusterRole", "gone", SA_SUBJECT),
                binding("b", "ClusterRole", "gone", SA_SUBJECT),
                binding("c", "Role", "missing", SA_SUBJECT),
            )
        )
        assert authorizer.authorize(attrs("get", "pods", namespace="ns", name="p")).reason == (
            'RBAC: [clusterrole.rbac.authorization.k8s.io "gone" not found, '
            'role.rbac.authorization.k8s.io "missing" not found]'
        )

    def test_a_missing_role_does_not_hide_another_bindings_grant(self) -> None:
        authorizer = Authorizer(
            Objects(
                binding("broken", "Role", "gone", SA_SUBJECT),
                role("reader", rule(["get"], ["pods"])),
                binding("read", "Role", "reader", SA_SUBJECT),
            )
        )
        assert allowed(authorizer, "get", "pods", namespace="ns", name="p")


def authorizer_with(*rules: Mapping[str, Any]) -> Authorizer:
    return Authorizer(Objects(role("r", *rules), binding("b", "Role", "r", SA_SUBJECT)))


class TestRules:
    def test_resource_names_limit_the_named_verbs_and_never_allow_create_or_list(self) -> None:
        authorizer = authorizer_with(
            rule(["get", "create", "list", "update"], ["secrets"], resourceNames=["x"])
        )
        assert allowed(authorizer, "get", "secrets", namespace="ns", name="x")
        assert allowed(authorizer, "update", "secrets", namespace="ns", name="x")
        assert not allowed(authorizer, "get", "secrets", namespace="ns", name="y")
        assert not allowed(authorizer, "create", "secrets", namespace="ns")
        assert not allowed(authorizer, "list", "secrets", namespace="ns")

    def test_a_subresource_needs_its_own_rule(self) -> None:
        authorizer = authorizer_with(rule(["get"], ["pods"]))
        assert allowed(authorizer, "get", "pods", namespace="ns", name="p")
        assert not allowed(authorizer, "get", "pods", subresource="log", namespace="ns", name="p")
        assert allowed(
            authorizer_with(rule(["get"], ["pods/log"])),
            "get",
            "pods",
            subresource="log",
            namespace="ns",
            name="p",
        )
        assert not allowed(
            authorizer_with(rule(["get"], ["pods/log"])), "get", "pods", namespace="ns", name="p"
        )

    def test_star_slash_subresource_matches_that_subresource_of_any_resource(self) -> None:
        authorizer = authorizer_with(rule(["update"], ["*/status"], ["*"]))
        assert allowed(authorizer, "update", "pods", subresource="status", namespace="ns", name="p")
        assert allowed(
            authorizer, "update", "jobs", api_group="batch", subresource="status", namespace="ns", name="j"
        )
        assert not allowed(authorizer, "update", "pods", subresource="log", namespace="ns", name="p")
        assert not allowed(authorizer, "update", "pods", namespace="ns", name="p")

    def test_star_resource_matches_resources_and_subresources(self) -> None:
        authorizer = authorizer_with(rule(["get"], ["*"]))
        assert allowed(authorizer, "get", "pods", subresource="log", namespace="ns", name="p")
        assert allowed(authorizer, "get", "secrets", namespace="ns", name="s")
        assert not allowed(authorizer, "get", "jobs", api_group="batch", namespace="ns", name="j")

    def test_api_groups_and_verbs(self) -> None:
        authorizer = authorizer_with(rule(["*"], ["jobs"], ["batch"]), rule(["get"], ["workflows"], ["*"]))
        for verb in ("get", "create", "deletecollection", "escalate"):
            assert allowed(authorizer, verb, "jobs", api_group="batch", namespace="ns", name="j")
        assert not allowed(authorizer, "get", "jobs", api_group="", namespace="ns", name="j")
        assert allowed(authorizer, "get", "workflows", api_group="argoproj.io", namespace="ns", name="w")
        assert not allowed(authorizer, "list", "workflows", api_group="argoproj.io", namespace="ns")

    def test_non_resource_urls_of_a_cluster_role(self) -> None:
        authorizer = Authorizer(
            Objects(
                role("urls", {"nonResourceURLs": ["/metrics", "/logs/*"], "verbs": ["get"]}, namespace=None),
                binding("urls", "ClusterRole", "urls", {"kind": "User", "name": "u"}, namespace=None),
            )
        )
        user = UserInfo(username="u")

        def can(verb: str, path: str) -> bool:
            return authorizer.authorize(RequestAttributes(user, verb, "", "", path=path)).allowed

        assert can("get", "/metrics")
        assert can("get", "/logs/")
        assert can("get", "/logs/kube-apiserver.log")
        assert not can("get", "/logs")
        assert not can("get", "/metrics/extra")
        assert not can("post", "/metrics")


class TestBootstrapRoles:
    def test_any_authenticated_user_may_discover(self) -> None:
        authorizer = Authorizer(Objects())
        for path in ("/api", "/api/v1", "/apis", "/apis/batch/v1", "/version", "/healthz", "/openapi/v2"):
            decision = authorizer.authorize(RequestAttributes(SA_USER, "get", "", "", path=path))
            assert decision.allowed, path
        assert authorizer.authorize(RequestAttributes(SA_USER, "get", "", "", path="/api")).reason == (
            'RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole "system:discovery" '
            'to Group "system:authenticated"'
        )
        assert not authorizer.authorize(RequestAttributes(SA_USER, "get", "", "", path="/metrics")).allowed

    def test_anonymous_may_read_only_the_public_info(self) -> None:
        authorizer = Authorizer(Objects())
        for path in ("/healthz", "/version", "/livez", "/readyz"):
            assert authorizer.authorize(RequestAttributes(ANONYMOUS, "get", "", "", path=path)).allowed
        assert not authorizer.authorize(RequestAttributes(ANONYMOUS, "get", "", "", path="/api")).allowed

    def test_any_authenticated_user_may_review_itself(self) -> None:
        authorizer = Authorizer(Objects())
        for resource in ("selfsubjectaccessreviews", "selfsubjectrulesreviews"):
            assert allowed(authorizer, "create", resource, api_group="authorization.k8s.io")
        assert allowed(authorizer, "create", "selfsubjectreviews", api_group="authentication.k8s.io")
        assert not allowed(authorizer, "create", "subjectaccessreviews", api_group="authorization.k8s.io")
        assert not allowed(
            authorizer, "create", "selfsubjectaccessreviews", api_group="authorization.k8s.io", user=ANONYMOUS
        )

    def test_a_binding_may_reference_cluster_admin(self) -> None:
        authorizer = Authorizer(Objects(binding("admin", "ClusterRole", "cluster-admin", SA_SUBJECT)))
        assert allowed(authorizer, "delete", "secrets", namespace="ns", name="s")
        assert not allowed(authorizer, "delete", "secrets", namespace="other", name="s")

    def test_a_stored_cluster_role_replaces_the_built_in_one(self) -> None:
        authorizer = Authorizer(
            Objects(
                role("cluster-admin", rule(["get"], ["pods"]), namespace=None),
                binding("admin", "ClusterRole", "cluster-admin", SA_SUBJECT),
            )
        )
        assert allowed(authorizer, "get", "pods", namespace="ns", name="p")
        assert not allowed(authorizer, "delete", "pods", namespace="ns", name="p")


class TestForbiddenMessage:
    authorizer = Authorizer(Objects())

    @pytest.mark.parametrize(
        ("attributes", "message"),
        [
            (
                attrs("create", "secrets", namespace="ns", name="x"),
                f'secrets "x" is forbidden: User "{SA}" cannot create resource "secrets" in API group "" '
                'in the namespace "ns"',
            ),
            (
                attrs("list", "secrets", namespace="ns"),
                f'secrets is forbidden: User "{SA}" cannot list resource "secrets" in API group "" '
                'in the namespace "ns"',
            ),
            (
                attrs("list", "namespaces"),
                f'namespaces is forbidden: User "{SA}" cannot list resource "namespaces" in API group "" '
                "at the cluster scope",
            ),
            (
                attrs("get", "pods", subresource="log", namespace="ns", name="p"),
                f'pods "p" is forbidden: User "{SA}" cannot get resource "pods/log" in API group "" '
                'in the namespace "ns"',
            ),
            (
                attrs("watch", "workflows", api_group="argoproj.io", namespace="ns"),
                f'workflows.argoproj.io is forbidden: User "{SA}" cannot watch resource "workflows" '
                'in API group "argoproj.io" in the namespace "ns"',
            ),
            (
                attrs("get", "clusterroles", api_group=RBAC, name="admin"),
                f'clusterroles.rbac.authorization.k8s.io "admin" is forbidden: User "{SA}" cannot get '
                f'resource "clusterroles" in API group "{RBAC}" at the cluster scope',
            ),
            (
                RequestAttributes(UserInfo(username="x"), "get", "", "", path="/foo"),
                'forbidden: User "x" cannot get path "/foo"',
            ),
            (
                RequestAttributes(ANONYMOUS, "get", "", "", path="/<b>&"),
                'forbidden: User "system:anonymous" cannot get path "/&lt;b&gt;&amp;"',
            ),
            (
                attrs("get", "secrets", namespace="ns", name='we"ird', user=UserInfo(username="a\\b")),
                'secrets "we\\"ird" is forbidden: User "a\\\\b" cannot get resource "secrets" '
                'in API group "" in the namespace "ns"',
            ),
        ],
    )
    def test_the_api_servers_text(self, attributes: RequestAttributes, message: str) -> None:
        assert self.authorizer.forbidden_message(attributes) == message


class TestAccessReviews:
    authorizer = Authorizer(
        Objects(
            role("reader", rule(["get"], ["pods"])),
            binding("read", "Role", "reader", SA_SUBJECT),
            binding("team", "Role", "reader", {"kind": "Group", "name": "team"}),
        )
    )

    def test_a_subject_access_review_judges_the_user_it_names(self) -> None:
        spec = {"user": SA, "resourceAttributes": {"namespace": "ns", "verb": "get", "resource": "pods"}}
        assert self.authorizer.access_review_status(spec) == {
            "allowed": True,
            "reason": 'RBAC: allowed by RoleBinding "read/ns" of Role "reader" to ServiceAccount "sa/ns"',
        }
        spec["resourceAttributes"]["verb"] = "delete"
        assert self.authorizer.access_review_status(spec) == {"allowed": False}

    def test_a_subject_access_reviews_groups_are_taken_as_given(self) -> None:
        attributes = {"namespace": "ns", "verb": "get", "resource": "pods"}
        assert self.authorizer.access_review_status(
            {"groups": ["team"], "resourceAttributes": attributes}
        ) == {
            "allowed": True,
            "reason": 'RBAC: allowed by RoleBinding "team/ns" of Role "reader" to Group "team"',
        }
        # No system:authenticated is added: the discovery grant does not apply.
        nonresource = {"user": "u", "nonResourceAttributes": {"path": "/api", "verb": "get"}}
        assert self.authorizer.access_review_status(nonresource) == {"allowed": False}

    def test_a_self_subject_access_review_judges_the_caller(self) -> None:
        spec = {"resourceAttributes": {"namespace": "ns", "verb": "get", "resource": "pods", "name": "p"}}
        assert self.authorizer.access_review_status(spec, SA_USER)["allowed"] is True
        assert self.authorizer.access_review_status(spec, UserInfo(username="u")) == {"allowed": False}
        nonresource = {"nonResourceAttributes": {"path": "/version", "verb": "get"}}
        assert self.authorizer.access_review_status(nonresource, ANONYMOUS)["allowed"] is True

    def test_exactly_one_kind_of_attributes_and_a_subject(self) -> None:
        with pytest.raises(RequestRejected) as neither:
            self.authorizer.access_review_status({})
        assert neither.value.code == 422
        assert str(neither.value) == (
            'SubjectAccessReview.authorization.k8s.io "" is invalid: [spec.resourceAttributes: '
            'Invalid value: "null": exactly one of nonResourceAttributes or resourceAttributes must be '
            'specified, spec.user: Invalid value: "": at least one of user or group must be specified]'
        )
        both = {"resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"path": "/x", "verb": "get"}}
        with pytest.raises(RequestRejected) as twice:
            self.authorizer.access_review_status(both, SA_USER)
        assert str(twice.value) == (
            'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec.nonResourceAttributes: '
            'Invalid value: "{\\"path\\":\\"/x\\",\\"verb\\":\\"get\\"}": '
            "cannot be specified in combination with resourceAttributes"
        )


NOBODY = UserInfo(username="u")


def parsed(method: str, path: str, query: Mapping[str, str] | None = None) -> tuple[str, ...]:
    a = request_attributes(method, path, query or {}, NOBODY)
    return (a.verb, a.api_group, a.resource, a.subresource, a.namespace, a.name)


class TestRequestAttributes:
    @pytest.mark.parametrize(
        ("method", "path", "query", "expected"),
        [
            ("GET", "/api/v1/namespaces/ns/pods", {}, ("list", "", "pods", "", "ns", "")),
            ("GET", "/api/v1/namespaces/ns/pods", {"watch": "true"}, ("watch", "", "pods", "", "ns", "")),
            ("GET", "/api/v1/namespaces/ns/pods", {"watch": "1"}, ("watch", "", "pods", "", "ns", "")),
            ("GET", "/api/v1/namespaces/ns/pods", {"watch": "False"}, ("list", "", "pods", "", "ns", "")),
            ("GET", "/api/v1/namespaces/ns/pods", {"watch": "0"}, ("list", "", "pods", "", "ns", "")),
            ("GET", "/api/v1/pods", {}, ("list", "", "pods", "", "", "")),
            ("GET", "/api/v1/namespaces/ns/pods/p", {}, ("get", "", "pods", "", "ns", "p")),
            ("HEAD", "/api/v1/namespaces/ns/pods/p", {}, ("get", "", "pods", "", "ns", "p")),
            ("GET", "/api/v1/namespaces/ns/pods/p", {"watch": "true"}, ("get", "", "pods", "", "ns", "p")),
            ("GET", "/api/v1/namespaces/ns/pods/p/log", {}, ("get", "", "pods", "log", "ns", "p")),
            ("POST", "/api/v1/namespaces/ns/secrets", {}, ("create", "", "secrets", "", "ns", "")),
            ("PUT", "/api/v1/namespaces/ns/secrets/s", {}, ("update", "", "secrets", "", "ns", "s")),
            ("PATCH", "/api/v1/namespaces/ns/secrets/s", {}, ("patch", "", "secrets", "", "ns", "s")),
            ("DELETE", "/api/v1/namespaces/ns/secrets/s", {}, ("delete", "", "secrets", "", "ns", "s")),
            (
                "DELETE",
                "/api/v1/namespaces/ns/secrets",
                {},
                ("deletecollection", "", "secrets", "", "ns", ""),
            ),
            (
                "PUT",
                "/apis/batch/v1/namespaces/ns/jobs/j/status",
                {},
                ("update", "batch", "jobs", "status", "ns", "j"),
            ),
            (
                "GET",
                "/apis/argoproj.io/v1alpha1/workflows",
                {},
                ("list", "argoproj.io", "workflows", "", "", ""),
            ),
            (
                "GET",
                f"/apis/{RBAC}/v1/clusterroles/admin",
                {},
                ("get", RBAC, "clusterroles", "", "", "admin"),
            ),
            ("GET", "/api/v1/namespaces", {}, ("list", "", "namespaces", "", "", "")),
            ("GET", "/api/v1/namespaces/team", {}, ("get", "", "namespaces", "", "team", "team")),
            ("DELETE", "/api/v1/namespaces/team", {}, ("delete", "", "namespaces", "", "team", "team")),
            (
                "PUT",
                "/api/v1/namespaces/team/status",
                {},
                ("update", "", "namespaces", "status", "team", "team"),
            ),
            (
                "PUT",
                "/api/v1/namespaces/team/finalize",
                {},
                ("update", "", "namespaces", "finalize", "team", "team"),
            ),
            ("GET", "/api/v1/watch/namespaces/ns/pods", {}, ("watch", "", "pods", "", "ns", "")),
            ("GET", "/api/v1/watch/namespaces/ns/pods/p", {}, ("watch", "", "pods", "", "ns", "p")),
            ("GET", "/api/v1/proxy/namespaces/ns/pods/p/x/y", {}, ("proxy", "", "pods", "", "ns", "p")),
            (
                "GET",
                "/api/v1/namespaces/ns/secrets",
                {"fieldSelector": "metadata.name=s"},
                ("list", "", "secrets", "", "ns", "s"),
            ),
            (
                "GET",
                "/api/v1/namespaces/ns/secrets",
                {"fieldSelector": "type=Opaque,metadata.name==s", "watch": "true"},
                ("watch", "", "secrets", "", "ns", "s"),
            ),
            (
                "GET",
                "/api/v1/namespaces/ns/secrets",
                {"fieldSelector": "metadata.name!=s"},
                ("list", "", "secrets", "", "ns", ""),
            ),
            ("OPTIONS", "/api/v1/namespaces/ns/pods", {}, ("", "", "pods", "", "ns", "")),
        ],
    )
    def test_resource_requests(
        self, method: str, path: str, query: dict[str, str], expected: tuple[str, ...]
    ) -> None:
        assert parsed(method, path, query) == expected

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/api"),
            ("GET", "/api/v1"),
            ("GET", "/apis"),
            ("GET", "/apis/batch"),
            ("GET", "/apis/batch/v1"),
            ("GET", "/version"),
            ("GET", "/healthz"),
            ("POST", "/foo/bar/baz"),
            ("GET", "/openapi/v2"),
        ],
    )
    def test_non_resource_requests(self, method: str, path: str) -> None:
        attributes = request_attributes(method, path, {}, NOBODY)
        assert attributes == RequestAttributes(NOBODY, method.lower(), "", "", path=path)

    def test_the_user_and_path_are_kept(self) -> None:
        attributes = request_attributes("GET", "/api/v1/namespaces/ns/pods/p", {}, SA_USER)
        assert (attributes.user, attributes.path) == (SA_USER, "/api/v1/namespaces/ns/pods/p")

    def test_a_special_verb_needs_something_after_it(self) -> None:
        with pytest.raises(
            ValueError, match=r"^unable to determine kind and namespace from url, /api/v1/watch$"
        ):
            request_attributes("GET", "/api/v1/watch", {}, NOBODY)

    @given(
        namespace=st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True),
        resource=st.sampled_from(["pods", "secrets", "configmaps", "services"]),
        name=st.from_regex(r"[a-z0-9]([-.a-z0-9]{0,20}[a-z0-9])?", fullmatch=True),
        method=st.sampled_from(["GET", "PUT", "PATCH", "DELETE"]),
    )
    def test_an_object_path_names_its_object(
        self, namespace: str, resource: str, name: str, method: str
    ) -> None:
        path = f"/api/v1/namespaces/{namespace}/{resource}/{name}"
        verb = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
        assert parsed(method, path) == (verb, "", resource, "", namespace, name)
