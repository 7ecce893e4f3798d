"""The sandbox's API through lightkube's real client, as the API server answers (and, marked `cluster`, the
same tests against the cluster of KUBECONFIG): discovery, create with `generateName`, list with label and
field selectors, replace, JSON merge patch, JSON patch, server-side apply and its conflicts, `resourceVersion`
with 409 on a stale write, and `Status` bodies with `Content-Type: application/json`.

The expected texts are the API server's (k8s.io/apimachinery/pkg/api/errors/errors.go, apiserver's
pkg/endpoints/handlers/responsewriters), so a real cluster passes them too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from lightkube import operators as op
from lightkube.config.client_adapter import Client as lightkube_http_client
from lightkube.config.client_adapter import ConnectionParams
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap
from lightkube.types import PatchType

from .conftest import KubeTarget, api_error, status_body


@pytest.fixture
def http(kube_target: KubeTarget) -> Iterator[httpx.Client]:
    """The httpx client lightkube builds from the administrator's config (its TLS and bearer token), for
    the few requests lightkube has no method for (discovery) or whose raw bytes a test reads."""
    with lightkube_http_client(kube_target.config.get(), ConnectionParams(trust_env=False)) as client:
        yield client


def config_map(
    namespace: str, name: str = "", *, data: dict[str, str] | None = None, **meta: Any
) -> ConfigMap:
    return ConfigMap(metadata=ObjectMeta(name=name or None, namespace=namespace, **meta), data=data)


class TestDiscovery:
    def test_the_core_group_lists_v1(self, http: httpx.Client) -> None:
        answer = http.get("/api")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        body = answer.json()
        assert body["kind"] == "APIVersions" and body["versions"] == ["v1"]
        assert body["serverAddressByClientCIDRs"][0]["clientCIDR"] == "0.0.0.0/0"

    def test_the_core_resources_say_their_scope_verbs_and_subresources(self, http: httpx.Client) -> None:
        body = http.get("/api/v1").json()
        assert body["kind"] == "APIResourceList" and body["groupVersion"] == "v1"
        resources = {r["name"]: r for r in body["resources"]}
        assert resources["configmaps"]["namespaced"] is True
        assert resources["configmaps"]["kind"] == "ConfigMap"
        assert "cm" in resources["configmaps"]["shortNames"]
        assert set(resources["configmaps"]["verbs"]) >= {"create", "delete", "get", "list", "patch", "watch"}
        assert resources["namespaces"]["namespaced"] is False
        assert "pods/log" in resources and "pods/status" in resources
        assert resources["serviceaccounts/token"]["kind"] == "TokenRequest"

    def test_the_groups_include_rbac_and_argo(self, http: httpx.Client) -> None:
        body = http.get("/apis").json()
        assert body["kind"] == "APIGroupList"
        groups = {g["name"]: g for g in body["groups"]}
        assert groups["rbac.authorization.k8s.io"]["preferredVersion"]["version"] == "v1"
        assert groups["argoproj.io"]["preferredVersion"]["groupVersion"] == "argoproj.io/v1alpha1"
        argo = {r["name"]: r for r in http.get("/apis/argoproj.io/v1alpha1").json()["resources"]}
        assert argo["workflows"]["kind"] == "Workflow" and argo["workflows"]["namespaced"] is True
        assert "wf" in argo["workflows"]["shortNames"]
        assert argo["workflowtasksets"]["kind"] == "WorkflowTaskSet"

    def test_an_unknown_group_is_a_404_status(self, http: httpx.Client) -> None:
        answer = http.get("/apis/no.such.group/v1/things")
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/json"
        body = answer.json()
        assert (body["kind"], body["status"], body["reason"], body["code"]) == (
            "Status",
            "Failure",
            "NotFound",
            404,
        )


class TestCreateAndList:
    def test_generate_name_gets_a_random_suffix(self, kube_target: KubeTarget, kube_namespace: str) -> None:
        client = kube_target.client()
        made = [client.create(config_map(kube_namespace, generateName="gen-")) for _ in range(3)]
        names = [m.metadata.name for m in made]
        assert len(set(names)) == 3
        for name in names:
            assert name.startswith("gen-") and len(name) == len("gen-") + 5
            assert name[4:].isalnum() and name[4:].islower()
        for m in made:
            assert m.metadata.generateName == "gen-"
            assert m.metadata.uid and m.metadata.resourceVersion and m.metadata.creationTimestamp

    def test_create_of_an_existing_name_is_already_exists(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = kube_target.client()
        client.create(config_map(kube_namespace, "once"))
        error = api_error(client.create, config_map(kube_namespace, "once"))
        assert error.status.code == 409
        assert status_body(error) == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": 'configmaps "once" already exists',
            "reason": "AlreadyExists",
            "details": {"name": "once", "kind": "configmaps"},
            "code": 409,
        }

    def test_get_of_a_missing_name_is_not_found(self, kube_target: KubeTarget, kube_namespace: str) -> None:
        error = api_error(kube_target.client().get, ConfigMap, "nowhere", namespace=kube_namespace)
        assert status_body(error) == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": 'configmaps "nowhere" not found',
            "reason": "NotFound",
            "details": {"name": "nowhere", "kind": "configmaps"},
            "code": 404,
        }

    def test_an_invalid_name_is_unprocessable_naming_the_field(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        error = api_error(kube_target.client().create, config_map(kube_namespace, "Not_A_Name"))
        body = status_body(error)
        assert (body["code"], body["reason"]) == (422, "Invalid")
        assert body["message"].startswith('ConfigMap "Not_A_Name" is invalid: metadata.name: Invalid value:')
        assert body["details"]["name"] == "Not_A_Name" and body["details"]["kind"] == "ConfigMap"
        assert body["details"]["causes"][0]["field"] == "metadata.name"
        assert body["details"]["causes"][0]["reason"] == "FieldValueInvalid"

    def test_label_selectors(self, kube_target: KubeTarget, kube_namespace: str) -> None:
        client = kube_target.client()
        for name, labels in {
            "a": {"app": "web", "tier": "front"},
            "b": {"app": "web", "tier": "back"},
            "c": {"app": "db"},
            "d": {},
        }.items():
            client.create(config_map(kube_namespace, name, labels=labels))

        def names(**selector: Any) -> list[str]:
            listed = client.list(ConfigMap, namespace=kube_namespace, **selector)
            return sorted(m.metadata.name for m in listed if m.metadata.name != "kube-root-ca.crt")

        assert names(labels={"app": "web"}) == ["a", "b"]
        assert names(labels={"app": "web", "tier": "back"}) == ["b"]
        assert names(labels={"app": op.in_(["web", "db"])}) == ["a", "b", "c"]
        assert names(labels={"app": op.not_in(["web"])}) == ["c", "d"]
        assert names(labels={"tier": op.exists()}) == ["a", "b"]
        assert names(labels={"tier": op.not_exists()}) == ["c", "d"]
        assert names(labels={"app": op.not_equal("web")}) == ["c", "d"]

    def test_field_selectors(self, kube_target: KubeTarget, kube_namespace: str) -> None:
        client = kube_target.client()
        for name in ("one", "two"):
            client.create(config_map(kube_namespace, name))
        listed = client.list(ConfigMap, namespace=kube_namespace, fields={"metadata.name": "two"})
        assert [m.metadata.name for m in listed] == ["two"]
        listed = client.list(
            ConfigMap, namespace=kube_namespace, fields={"metadata.namespace": kube_namespace}
        )
        assert {"one", "two"} <= {m.metadata.name for m in listed}
        everywhere = client.list(ConfigMap, namespace="*", fields={"metadata.name": op.equal("one")})
        assert {(m.metadata.namespace, m.metadata.name) for m in everywhere} >= {(kube_namespace, "one")}

    def test_a_field_a_kind_cannot_select_on_is_a_bad_request(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        listed = kube_target.client().list(ConfigMap, namespace=kube_namespace, fields={"data.key": "x"})
        error = api_error(list, listed)
        body = status_body(error)
        assert (body["code"], body["reason"]) == (400, "BadRequest")
        assert body["message"] == "field label not supported: data.key"

    def test_list_pages_with_limit_and_continue(self, kube_target: KubeTarget, kube_namespace: str) -> None:
        client = kube_target.client()
        for index in range(7):
            client.create(config_map(kube_namespace, f"page-{index}", labels={"paged": "yes"}))
        listed = client.list(ConfigMap, namespace=kube_namespace, labels={"paged": "yes"}, chunk_size=3)
        assert sorted(m.metadata.name for m in listed) == [f"page-{i}" for i in range(7)]


class TestWrites:
    def test_replace_bumps_the_resource_version(self, kube_target: KubeTarget, kube_namespace: str) -> None:
        client = kube_target.client()
        made = client.create(config_map(kube_namespace, "rep", data={"a": "1"}))
        made.data = {"b": "2"}
        replaced = client.replace(made)
        assert replaced.data == {"b": "2"}
        assert int(replaced.metadata.resourceVersion) > int(made.metadata.resourceVersion)
        assert replaced.metadata.uid == made.metadata.uid
        assert client.get(ConfigMap, "rep", namespace=kube_namespace).data == {"b": "2"}

    def test_a_stale_resource_version_is_a_409_conflict(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = kube_target.client()
        first = client.create(config_map(kube_namespace, "stale", data={"v": "0"}))
        fresh = client.get(ConfigMap, "stale", namespace=kube_namespace)
        fresh.data = {"v": "1"}
        client.replace(fresh)
        first.data = {"v": "lost update"}
        error = api_error(client.replace, first)
        assert status_body(error) == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": 'Operation cannot be fulfilled on configmaps "stale": the object has been modified; '
            "please apply your changes to the latest version and try again",
            "reason": "Conflict",
            "details": {"name": "stale", "kind": "configmaps"},
            "code": 409,
        }
        assert client.get(ConfigMap, "stale", namespace=kube_namespace).data == {"v": "1"}

    def test_a_stale_resource_version_in_a_merge_patch_is_a_conflict_too(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = kube_target.client()
        made = client.create(config_map(kube_namespace, "stale-patch", data={"v": "0"}))
        client.patch(ConfigMap, "stale-patch", {"data": {"v": "1"}}, namespace=kube_namespace)
        stale = {"metadata": {"resourceVersion": made.metadata.resourceVersion}, "data": {"v": "2"}}
        error = api_error(
            client.patch,
            ConfigMap,
            "stale-patch",
            stale,
            namespace=kube_namespace,
            patch_type=PatchType.MERGE,
        )
        assert (error.status.code, error.status.reason) == (409, "Conflict")

    def test_json_merge_patch_sets_and_removes_keys(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = kube_target.client()
        client.create(config_map(kube_namespace, "merge", data={"keep": "k", "drop": "d"}, labels={"x": "1"}))
        patched = client.patch(
            ConfigMap,
            "merge",
            {"data": {"drop": None, "new": "n"}, "metadata": {"labels": {"y": "2"}}},
            namespace=kube_namespace,
            patch_type=PatchType.MERGE,
        )
        assert patched.data == {"keep": "k", "new": "n"}
        assert patched.metadata.labels == {"x": "1", "y": "2"}

    def test_json_patch_operations_and_a_failed_test(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = kube_target.client()
        client.create(config_map(kube_namespace, "jsonpatch", data={"a": "1", "b": "2"}))
        patched = client.patch(
            ConfigMap,
            "jsonpatch",
            [
                {"op": "test", "path": "/data/a", "value": "1"},
                {"op": "replace", "path": "/data/a", "value": "one"},
                {"op": "remove", "path": "/data/b"},
                {"op": "add", "path": "/data/c", "value": "3"},
            ],
            namespace=kube_namespace,
            patch_type=PatchType.JSON,
        )
        assert patched.data == {"a": "one", "c": "3"}
        error = api_error(
            client.patch,
            ConfigMap,
            "jsonpatch",
            [{"op": "test", "path": "/data/a", "value": "1"}, {"op": "remove", "path": "/data/a"}],
            namespace=kube_namespace,
            patch_type=PatchType.JSON,
        )
        assert error.status.code == 422
        assert client.get(ConfigMap, "jsonpatch", namespace=kube_namespace).data == {"a": "one", "c": "3"}

    def test_a_patch_of_a_missing_object_is_not_found(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        error = api_error(
            kube_target.client().patch, ConfigMap, "absent", {"data": {"a": "1"}}, namespace=kube_namespace
        )
        assert (error.status.code, error.status.reason) == (404, "NotFound")

    def test_delete_answers_and_then_the_object_is_gone(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = kube_target.client()
        client.create(config_map(kube_namespace, "gone"))
        client.delete(ConfigMap, "gone", namespace=kube_namespace)
        assert api_error(client.get, ConfigMap, "gone", namespace=kube_namespace).status.code == 404
        assert api_error(client.delete, ConfigMap, "gone", namespace=kube_namespace).status.code == 404


class TestServerSideApply:
    def test_apply_creates_then_updates_and_records_the_manager(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = kube_target.client()
        applied = client.apply(config_map(kube_namespace, "ssa", data={"a": "1"}), field_manager="alice")
        assert applied.data == {"a": "1"}
        again = client.apply(
            config_map(kube_namespace, "ssa", data={"a": "1", "b": "2"}), field_manager="alice"
        )
        assert again.data == {"a": "1", "b": "2"}
        managers = {(m.manager, m.operation) for m in again.metadata.managedFields}
        assert ("alice", "Apply") in managers

    def test_a_field_owned_by_another_manager_is_a_conflict_naming_it(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = kube_target.client()
        client.apply(config_map(kube_namespace, "owned", data={"a": "1"}), field_manager="alice")
        error = api_error(
            client.apply, config_map(kube_namespace, "owned", data={"a": "2"}), field_manager="bob"
        )
        body = status_body(error)
        assert (body["code"], body["reason"]) == (409, "Conflict")
        assert body["message"] == 'Apply failed with 1 conflict: conflict with "alice": .data.a'
        assert body["details"]["causes"] == [
            {"reason": "FieldManagerConflict", "message": 'conflict with "alice"', "field": ".data.a"}
        ]
        assert client.get(ConfigMap, "owned", namespace=kube_namespace).data == {"a": "1"}

    def test_force_takes_the_field_over(self, kube_target: KubeTarget, kube_namespace: str) -> None:
        client = kube_target.client()
        client.apply(config_map(kube_namespace, "forced", data={"a": "1"}), field_manager="alice")
        taken = client.apply(
            config_map(kube_namespace, "forced", data={"a": "2"}), field_manager="bob", force=True
        )
        assert taken.data == {"a": "2"}
        owners = {m.manager for m in taken.metadata.managedFields if m.operation == "Apply"}
        assert "bob" in owners

    def test_the_same_value_is_shared_without_conflict(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = kube_target.client()
        client.apply(config_map(kube_namespace, "shared", data={"a": "1"}), field_manager="alice")
        shared = client.apply(config_map(kube_namespace, "shared", data={"a": "1"}), field_manager="bob")
        assert shared.data == {"a": "1"}

    def test_a_field_the_manager_no_longer_applies_is_removed(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = kube_target.client()
        client.apply(config_map(kube_namespace, "shrink", data={"a": "1", "b": "2"}), field_manager="alice")
        shrunk = client.apply(config_map(kube_namespace, "shrink", data={"a": "1"}), field_manager="alice")
        assert shrunk.data == {"a": "1"}

    def test_apply_needs_a_field_manager(self, http: httpx.Client, kube_namespace: str) -> None:
        # lightkube refuses to send it; the bytes as another client would.
        answer = http.patch(
            f"/api/v1/namespaces/{kube_namespace}/configmaps/nomanager",
            content=b'{"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"}}',
            headers={"content-type": "application/apply-patch+yaml"},
        )
        assert answer.headers["content-type"] == "application/json"
        body = answer.json()
        assert (answer.status_code, body["code"], body["reason"]) == (422, 422, "Invalid")
        assert "fieldManager: Required value: is required for apply patch" in body["message"]
