"""argoplug.kube's error translation: what a plugin's node says when the Kubernetes API refuses or fails.

The Status bodies are the API server's own shapes (k8s.io/apimachinery/pkg/api/errors); the requests are
the ones lightkube sends, so the verb, resource and namespace come from the URL as the API server reads it.
"""

from __future__ import annotations

import httpx2
import pytest
from lightkube import ApiError

from argoplug.kube.errors import error_for, rbac_rule, translated_errors
from argoplug.kube.request_info import request_info
from argoplug.plugin import PermanentError, TemporaryError

SA = "system:serviceaccount:team-a:kubernetes-secret-executor-plugin"


def api_error(method: str, url: str, code: int, reason: str, message: str, **headers: str) -> ApiError:
    request = httpx2.Request(method, url)
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    response = httpx2.Response(
        code, json=body, headers={"Content-Type": "application/json", **headers}, request=request
    )
    return ApiError(request=request, response=response)


def test_a_403_names_the_verb_resource_namespace_identity_and_the_rule_that_would_allow_it() -> None:
    exc = api_error(
        "POST",
        "https://k8s/api/v1/namespaces/team-a/secrets",
        403,
        "Forbidden",
        f'secrets is forbidden: User "{SA}" cannot create resource "secrets" in API group "" in the '
        'namespace "team-a"',
    )
    error = error_for(exc)
    assert isinstance(error, PermanentError)
    assert error.message.startswith(
        f'cannot create secrets in namespace "team-a" as {SA}: secrets is forbidden'
    )
    assert error.message.endswith(
        f'Grant it with a Role in "team-a" bound to {SA}, with the rule '
        '{apiGroups: [""], resources: ["secrets"], verbs: ["create"]}'
    )


def test_a_403_on_a_named_subresource_of_a_group_names_the_group_the_subresource_and_the_name() -> None:
    exc = api_error(
        "PATCH",
        "https://k8s/apis/argoproj.io/v1alpha1/namespaces/argo/workflowtasksets/wf-1/status",
        403,
        "Forbidden",
        'workflowtasksets.argoproj.io "wf-1" is forbidden: ...',
    )
    error = error_for(exc, identity="system:serviceaccount:argo:agent")
    assert isinstance(error, PermanentError)
    assert (
        'cannot patch workflowtasksets/status "wf-1" in namespace "argo" as system:serviceaccount:argo:agent'
        in (error.message)
    )
    assert (
        '{apiGroups: ["argoproj.io"], resources: ["workflowtasksets/status"], verbs: ["patch"], '
        'resourceNames: ["wf-1"]}' in error.message
    )


def test_a_403_at_the_cluster_scope_asks_for_a_cluster_role() -> None:
    exc = api_error("GET", "https://k8s/api/v1/namespaces", 403, "Forbidden", 'User "bob" cannot list ...')
    error = error_for(exc)
    assert isinstance(error, PermanentError)
    assert "Grant it with a ClusterRole bound to bob" in error.message
    assert 'verbs: ["list"]' in error.message


@pytest.mark.parametrize(
    ("code", "reason", "message"),
    [
        (404, "NotFound", 'secrets "db" not found'),
        (409, "AlreadyExists", 'secrets "db" already exists'),
        (
            422,
            "Invalid",
            'Secret "DB" is invalid: metadata.name: Invalid value: "DB": a lowercase RFC 1123 ...',
        ),
        (400, "BadRequest", "the body of the request was in an unknown format"),
    ],
)
def test_client_errors_are_permanent_with_the_api_servers_message(code, reason, message) -> None:
    exc = api_error("GET", "https://k8s/api/v1/namespaces/team-a/secrets/db", code, reason, message)
    error = error_for(exc)
    assert isinstance(error, PermanentError)
    assert error.message == f'cannot get secrets "db" in namespace "team-a": {message}'


@pytest.mark.parametrize("code", [429, 500, 503, 504])
def test_throttling_and_server_errors_are_temporary_and_honour_retry_after(code) -> None:
    exc = api_error(
        "PUT",
        "https://k8s/api/v1/namespaces/a/secrets/s",
        code,
        "TooManyRequests",
        "slow down",
        **{"Retry-After": "3"},
    )
    error = error_for(exc)
    assert isinstance(error, TemporaryError)
    assert error.delay == 3.0
    assert (
        error.message
        == f'the Kubernetes API answered {code} to update secrets "s" in namespace "a": slow down'
    )


def test_a_401_after_the_refresh_is_permanent_and_names_the_identity() -> None:
    exc = api_error("GET", "https://k8s/api/v1/namespaces/a/secrets/s", 401, "Unauthorized", "Unauthorized")
    error = error_for(exc, identity="system:serviceaccount:a:b")
    assert isinstance(error, PermanentError)
    assert "did not accept the token of system:serviceaccount:a:b" in error.message


def test_a_non_json_error_page_is_translated_by_its_code() -> None:
    request = httpx2.Request("GET", "https://k8s/api/v1/namespaces/a/pods")
    response = httpx2.Response(502, text="<html>bad gateway</html>", request=request)
    error = error_for(httpx2.HTTPStatusError("502", request=request, response=response))
    assert isinstance(error, TemporaryError)
    assert "<html>bad gateway</html>" in error.message


@pytest.mark.parametrize(
    "exc",
    [
        httpx2.ConnectError("connection refused", request=httpx2.Request("GET", "https://k8s:6443/api")),
        httpx2.ReadTimeout("timed out", request=httpx2.Request("GET", "https://k8s:6443/api")),
        httpx2.RemoteProtocolError("peer closed", request=httpx2.Request("GET", "https://k8s:6443/api")),
    ],
)
def test_lost_connections_and_timeouts_are_temporary_and_name_the_server(exc) -> None:
    error = error_for(exc)
    assert isinstance(error, TemporaryError)
    assert "https://k8s:6443/" in error.message


def test_translated_errors_chains_and_leaves_other_exceptions_alone() -> None:
    exc = api_error(
        "GET", "https://k8s/api/v1/namespaces/a/secrets/s", 404, "NotFound", 'secrets "s" not found'
    )
    with pytest.raises(PermanentError) as raised, translated_errors():
        raise exc
    assert raised.value.__cause__ is exc
    with pytest.raises(KeyError), translated_errors():
        raise KeyError("x")


def test_the_rule_for_a_create_never_lists_resource_names() -> None:
    # RBAC cannot limit create by name (the name is not known to the authorizer before the object exists).
    info = request_info("POST", "/api/v1/namespaces/a/secrets", {})
    assert rbac_rule(info) == '{apiGroups: [""], resources: ["secrets"], verbs: ["create"]}'


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/x/secrets", {}, ("list", "", "secrets", "", "x", "")),
        ("GET", "/api/v1/namespaces/x/secrets", {"watch": "true"}, ("watch", "", "secrets", "", "x", "")),
        ("GET", "/api/v1/namespaces/x", {}, ("get", "", "namespaces", "", "x", "x")),
        ("PUT", "/api/v1/namespaces/x/finalize", {}, ("update", "", "namespaces", "finalize", "x", "x")),
        ("GET", "/api/v1/namespaces/n/pods/p/log", {}, ("get", "", "pods", "log", "n", "p")),
        (
            "DELETE",
            "/apis/apps/v1/namespaces/n/deployments",
            {},
            ("deletecollection", "apps", "deployments", "", "n", ""),
        ),
        ("GET", "/api/v1/watch/namespaces/n/pods", {}, ("watch", "", "pods", "", "n", "")),
        (
            "GET",
            "/api/v1/namespaces/n/pods",
            {"fieldSelector": "metadata.name=p"},
            ("list", "", "pods", "", "n", "p"),
        ),
        ("GET", "/api/v1/nodes/node-1", {}, ("get", "", "nodes", "", "", "node-1")),
        (
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            {},
            ("create", "authorization.k8s.io", "selfsubjectaccessreviews", "", "", ""),
        ),
    ],
)
def test_request_info_reads_a_request_as_the_api_server_does(method, path, query, expected) -> None:
    info = request_info(method, path, query)
    assert (info.verb, info.api_group, info.resource, info.subresource, info.namespace, info.name) == expected


@pytest.mark.parametrize("path", ["/api", "/apis", "/apis/argoproj.io/v1alpha1", "/version", "/healthz"])
def test_discovery_and_other_paths_are_non_resource_requests(path) -> None:
    info = request_info("GET", path, {})
    assert not info.is_resource_request
    assert (info.verb, info.path) == ("get", path)
