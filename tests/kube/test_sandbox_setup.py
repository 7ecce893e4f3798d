"""What a sandbox starts with and how it is set up: Argo's CRDs served as custom resources through lightkube's
real client (and, marked `cluster`, the same tests against the cluster of KUBECONFIG, with Argo's CRDs
installed), `KubeSandbox.from_file` with a YAML file in any order and the `SandboxError` each kind of bad file
gives, and the sandbox's `pods/log` (a pod's log is its `argoplug.dev/sandbox-log` annotation).

The custom resource rules are the apiextensions-apiserver's (pkg/registry/customresource/strategy.go and
status_strategy.go): generation 1 on create, a status subresource's `.status` dropped on create and kept by
writes of the main resource, its `status` endpoint changing nothing but `.status`.
"""

from __future__ import annotations

import contextlib
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from lightkube import Client
from lightkube.config.client_adapter import Client as lightkube_http_client
from lightkube.config.client_adapter import ConnectionParams
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.core_v1 import Container, PodSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import ConfigMap, Namespace, Pod, Secret, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding
from lightkube.types import PatchType

from argoplug.kube.sandbox import KubeSandbox, SandboxError, load_objects

from .conftest import KubeTarget, api_error

Workflow = create_namespaced_resource("argoproj.io", "v1alpha1", "Workflow", "workflows")
WorkflowTemplate = create_namespaced_resource(
    "argoproj.io", "v1alpha1", "WorkflowTemplate", "workflowtemplates"
)
WorkflowTaskSet = create_namespaced_resource("argoproj.io", "v1alpha1", "WorkflowTaskSet", "workflowtasksets")
ARGO_CRDS = {
    "clusterworkflowtemplates.argoproj.io",
    "cronworkflows.argoproj.io",
    "workflows.argoproj.io",
    "workflowtasksets.argoproj.io",
    "workflowtemplates.argoproj.io",
}
# An instance id no workflow controller has (argo's --instanceid): a real cluster's controller leaves the
# tests' Workflows as they are written.
NO_CONTROLLER = {"workflows.argoproj.io/controller-instanceid": "argoplug-test"}
SUSPENDED = {"entrypoint": "main", "templates": [{"name": "main", "suspend": {}}]}
LOG_ANNOTATION = "argoplug.dev/sandbox-log"


def workflow(namespace: str, name: str, *, spec: dict[str, Any] | None = None, **labels: str) -> Any:
    return Workflow(
        metadata=ObjectMeta(name=name, namespace=namespace, labels={**NO_CONTROLLER, **labels}),
        spec=spec or SUSPENDED,
    )


def task_set(namespace: str, name: str, labels: dict[str, str] | None = None, **extra: Any) -> Any:
    """A WorkflowTaskSet of one plugin task (node id `<name>-1`), as the controller writes them."""
    tasks = {f"{name}-1": {"name": "main", "plugin": {"argoplug": {"greeting": "hello"}}}}
    return WorkflowTaskSet(
        metadata=ObjectMeta(name=name, namespace=namespace, labels=labels), spec={"tasks": tasks}, **extra
    )


def node_status(name: str, phase: str, message: str = "") -> dict[str, Any]:
    return {"nodes": {f"{name}-1": {"phase": phase, "message": message}}}


def admin(target: KubeTarget) -> Any:
    """The administrator's client, typed Any: generic resources are dicts, and lightkube types every field
    of its models Optional."""
    return target.client()


@contextlib.contextmanager
def sandbox_client(
    sandbox: KubeSandbox, token: str | None = None, *, namespace: str = "default"
) -> Iterator[Any]:
    """A lightkube Client of `sandbox` (the admin's unless `token`), closed after the block; typed Any as
    `admin`."""
    with Client(sandbox.config(token, namespace=namespace), field_manager="argoplug-tests") as client:
        yield client


class TestArgoCrds:
    def test_the_argo_crds_are_listed_and_established(self, kube_target: KubeTarget) -> None:
        crds = {crd.metadata.name: crd for crd in admin(kube_target).list(CustomResourceDefinition)}
        assert set(crds) >= ARGO_CRDS
        for name in ARGO_CRDS:
            conditions = {c.type: c.status for c in crds[name].status.conditions}
            assert conditions.get("Established") == "True", name
            assert crds[name].spec.group == "argoproj.io"
        assert crds["workflows.argoproj.io"].spec.names.kind == "Workflow"
        assert crds["workflows.argoproj.io"].spec.scope == "Namespaced"

    def test_only_the_task_set_has_a_status_subresource(self, kube_target: KubeTarget) -> None:
        client = admin(kube_target)

        def status_subresource(name: str) -> Any:
            version = client.get(CustomResourceDefinition, name).spec.versions[0]
            return version.subresources.status if version.subresources else None

        assert status_subresource("workflowtasksets.argoproj.io") == {}
        assert status_subresource("workflows.argoproj.io") is None


class TestWorkflow:
    def test_create_then_get_gives_the_server_metadata(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = admin(kube_target)
        made = client.create(workflow(kube_namespace, "hello"))
        assert made.kind == "Workflow" and made.apiVersion == "argoproj.io/v1alpha1"
        assert made.metadata.uid and made.metadata.resourceVersion and made.metadata.creationTimestamp
        assert made.metadata.generation == 1
        got = client.get(Workflow, "hello", namespace=kube_namespace)
        assert got.metadata.uid == made.metadata.uid
        assert got.metadata.resourceVersion == made.metadata.resourceVersion
        assert got.metadata.namespace == kube_namespace
        assert got["spec"] == SUSPENDED

    def test_list_by_label_selector(self, kube_target: KubeTarget, kube_namespace: str) -> None:
        client = admin(kube_target)
        client.create(workflow(kube_namespace, "picked", team="blue"))
        client.create(workflow(kube_namespace, "other", team="red"))
        client.create(workflow(kube_namespace, "unlabelled"))
        listed = client.list(Workflow, namespace=kube_namespace, labels={"team": "blue"})
        assert [w.metadata.name for w in listed] == ["picked"]
        every = client.list(Workflow, namespace=kube_namespace)
        assert sorted(w.metadata.name for w in every) == ["other", "picked", "unlabelled"]

    def test_a_spec_change_is_a_new_generation_a_label_change_is_not(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = admin(kube_target)
        client.create(workflow(kube_namespace, "gen"))
        labelled = client.patch(
            Workflow,
            "gen",
            {"metadata": {"labels": {"x": "1"}}},
            namespace=kube_namespace,
            patch_type=PatchType.MERGE,
        )
        assert labelled.metadata.generation == 1
        spec = {**SUSPENDED, "arguments": {"parameters": [{"name": "p", "value": "v"}]}}
        changed = client.patch(
            Workflow, "gen", {"spec": spec}, namespace=kube_namespace, patch_type=PatchType.MERGE
        )
        assert changed.metadata.generation == 2
        assert changed["spec"]["arguments"] == spec["arguments"]

    def test_a_strategic_merge_patch_of_a_custom_resource_is_unsupported_media(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        # crdHandler.ServeHTTP: a custom resource takes JSON patch, merge patch and apply, no strategic merge
        # patch (lightkube's default patch type), whose types have no patch strategies to follow.
        client = admin(kube_target)
        client.create(workflow(kube_namespace, "smp"))
        error = api_error(
            client.patch,
            Workflow,
            "smp",
            {"metadata": {"labels": {"x": "1"}}},
            namespace=kube_namespace,
            patch_type=PatchType.STRATEGIC,
        )
        assert (error.status.code, error.status.reason) == (415, "UnsupportedMediaType")
        assert str(error.status.message).startswith(
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        )

    def test_a_workflow_has_no_status_subresource_so_its_status_is_written_with_it(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        # As argo's controller writes it: the whole Workflow, status included.
        client = admin(kube_target)
        made = client.create(
            Workflow(
                metadata=ObjectMeta(name="st", namespace=kube_namespace, labels=NO_CONTROLLER),
                spec=SUSPENDED,
                status={"phase": "Pending"},
            )
        )
        assert made["status"] == {"phase": "Pending"}
        patched = client.patch(
            Workflow,
            "st",
            {"status": {"phase": "Running"}},
            namespace=kube_namespace,
            patch_type=PatchType.MERGE,
        )
        assert patched["status"] == {"phase": "Running"}
        assert client.get(Workflow, "st", namespace=kube_namespace)["status"] == {"phase": "Running"}

    def test_without_a_status_subresource_a_status_change_is_a_new_generation(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        # customResourceStrategy.PrepareForUpdate: any change but to metadata increments the generation;
        # `.status` is only left out when the CRD has a status subresource.
        client = admin(kube_target)
        client.create(workflow(kube_namespace, "st-gen"))
        patched = client.patch(
            Workflow,
            "st-gen",
            {"status": {"phase": "Running"}},
            namespace=kube_namespace,
            patch_type=PatchType.MERGE,
        )
        assert patched.metadata.generation == 2


class TestWorkflowTemplate:
    def test_create_get_and_list_by_label(self, kube_target: KubeTarget, kube_namespace: str) -> None:
        client = admin(kube_target)
        spec = {"templates": [{"name": "main", "container": {"image": "busybox", "command": ["true"]}}]}
        made = client.create(
            WorkflowTemplate(
                metadata=ObjectMeta(name="tpl", namespace=kube_namespace, labels={"kit": "yes"}), spec=spec
            )
        )
        client.create(
            WorkflowTemplate(metadata=ObjectMeta(name="tpl-other", namespace=kube_namespace), spec=spec)
        )
        assert made.metadata.uid and made.metadata.resourceVersion and made.metadata.creationTimestamp
        assert made.metadata.generation == 1
        got = client.get(WorkflowTemplate, "tpl", namespace=kube_namespace)
        assert got.metadata.uid == made.metadata.uid and got["spec"] == spec
        listed = client.list(WorkflowTemplate, namespace=kube_namespace, labels={"kit": "yes"})
        assert [t.metadata.name for t in listed] == ["tpl"]


class TestWorkflowTaskSet:
    def test_create_gives_the_server_metadata_and_drops_the_status(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = admin(kube_target)
        made = client.create(task_set(kube_namespace, "ts", status=node_status("ts", "Succeeded")))
        assert made.metadata.uid and made.metadata.resourceVersion and made.metadata.creationTimestamp
        assert made.metadata.generation == 1
        assert made.get("status") is None
        got = client.get(WorkflowTaskSet, "ts", namespace=kube_namespace)
        assert got.get("status") is None and got["spec"] == task_set(kube_namespace, "ts")["spec"]

    def test_list_by_label_selector(self, kube_target: KubeTarget, kube_namespace: str) -> None:
        client = admin(kube_target)
        client.create(task_set(kube_namespace, "ts-a", {"workflows.argoproj.io/completed": "false"}))
        client.create(task_set(kube_namespace, "ts-b"))
        listed = client.list(
            WorkflowTaskSet, namespace=kube_namespace, labels={"workflows.argoproj.io/completed": "false"}
        )
        assert [t.metadata.name for t in listed] == ["ts-a"]

    def test_the_status_endpoint_changes_only_the_status(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = admin(kube_target)
        made = client.create(task_set(kube_namespace, "ts"))
        patched = client.patch(
            WorkflowTaskSet.Status,
            "ts",
            {
                "status": node_status("ts", "Succeeded", "done"),
                "spec": {"tasks": {}},
                "metadata": {"labels": {"sneaked": "in"}},
            },
            namespace=kube_namespace,
            patch_type=PatchType.MERGE,
        )
        assert patched["status"] == node_status("ts", "Succeeded", "done")
        got = client.get(WorkflowTaskSet, "ts", namespace=kube_namespace)
        assert got["status"] == node_status("ts", "Succeeded", "done")
        assert got["spec"] == made["spec"]
        assert not (got.metadata.labels or {}).get("sneaked")
        assert got.metadata.generation == 1
        assert int(got.metadata.resourceVersion) > int(made.metadata.resourceVersion)

    def test_a_merge_patch_of_the_main_resource_keeps_the_status(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = admin(kube_target)
        client.create(task_set(kube_namespace, "ts"))
        client.patch(
            WorkflowTaskSet.Status,
            "ts",
            {"status": node_status("ts", "Running")},
            namespace=kube_namespace,
            patch_type=PatchType.MERGE,
        )
        patched = client.patch(
            WorkflowTaskSet,
            "ts",
            {"status": node_status("ts", "Failed", "overwritten"), "metadata": {"labels": {"a": "b"}}},
            namespace=kube_namespace,
            patch_type=PatchType.MERGE,
        )
        assert patched["status"] == node_status("ts", "Running")
        assert patched.metadata.labels == {"a": "b"}
        assert client.get(WorkflowTaskSet, "ts", namespace=kube_namespace)["status"] == node_status(
            "ts", "Running"
        )

    def test_a_replace_of_the_main_resource_keeps_the_status(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = admin(kube_target)
        client.create(task_set(kube_namespace, "ts"))
        client.patch(
            WorkflowTaskSet.Status,
            "ts",
            {"status": node_status("ts", "Running")},
            namespace=kube_namespace,
            patch_type=PatchType.MERGE,
        )
        current = client.get(WorkflowTaskSet, "ts", namespace=kube_namespace)
        current["spec"] = {"tasks": {}}
        current["status"] = node_status("ts", "Failed", "overwritten")
        replaced = client.replace(current)
        assert replaced["spec"] == {"tasks": {}}
        assert replaced["status"] == node_status("ts", "Running")
        assert replaced.metadata.generation == 2
        current = client.get(WorkflowTaskSet, "ts", namespace=kube_namespace)
        del current["status"]
        assert client.replace(current)["status"] == node_status("ts", "Running")


# -- KubeSandbox.from_file -------------------------------------------------------------------------------

# A RoleBinding and a ConfigMap of namespace `team` before the Namespace; the ServiceAccount and the Role the
# binding names after it; an empty document and a comment-only one in between.
AWKWARD = """
    apiVersion: rbac.authorization.k8s.io/v1
    kind: RoleBinding
    metadata: {name: bot-reads, namespace: team}
    roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
    subjects: [{kind: ServiceAccount, name: bot, namespace: team}]
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: settings, namespace: team}
    data: {mode: fast}
    ---
    ---
    # nothing but a comment
    ---
    apiVersion: v1
    kind: Namespace
    metadata: {name: team}
    ---
    apiVersion: v1
    kind: ServiceAccount
    metadata: {name: bot, namespace: team}
    ---
    apiVersion: rbac.authorization.k8s.io/v1
    kind: Role
    metadata: {name: reader, namespace: team}
    rules: [{apiGroups: [""], resources: [configmaps], verbs: [get, list]}]
"""
GADGET_CRD = """
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata: {name: gadgets.example.com}
    spec:
      group: example.com
      names: {kind: Gadget, plural: gadgets, singular: gadget, listKind: GadgetList}
      scope: Namespaced
      versions:
      - name: v1
        served: true
        storage: true
        schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"""
GADGET = """
    apiVersion: example.com/v1
    kind: Gadget
    metadata: {name: widget}
    spec: {size: 3}
"""


def write(tmp_path: Path, *documents: str, name: str = "objects.yaml") -> Path:
    """A YAML file of `documents` (each dedented), separated by `---`."""
    path = tmp_path / name
    path.write_text("---\n".join(textwrap.dedent(d).lstrip("\n") for d in documents), encoding="utf-8")
    return path


def start_error(sandbox: KubeSandbox) -> str:
    """The SandboxError message of `sandbox.start()`; the sandbox is stopped after it (a failed start
    leaves its socket open: see `test_a_failed_start_releases_its_port`)."""
    try:
        with pytest.raises(SandboxError) as caught:
            sandbox.start()
    finally:
        sandbox.stop()
    return str(caught.value)


def read_error(path: Path) -> str:
    """The SandboxError message of `KubeSandbox.from_file(path)`."""
    with pytest.raises(SandboxError) as caught:
        KubeSandbox.from_file(path)
    return str(caught.value)


class TestFromFile:
    def test_objects_in_an_awkward_order_are_all_created(self, tmp_path: Path) -> None:
        path = write(tmp_path, AWKWARD)
        with KubeSandbox.from_file(path) as sandbox, sandbox_client(sandbox) as client:
            assert client.get(Namespace, "team").status.phase == "Active"
            assert client.get(ConfigMap, "settings", namespace="team").data == {"mode": "fast"}
            assert client.get(ServiceAccount, "bot", namespace="team").metadata.uid
            assert client.get(Role, "reader", namespace="team").rules[0].resources == ["configmaps"]
            binding = client.get(RoleBinding, "bot-reads", namespace="team")
            assert binding.roleRef.name == "reader" and binding.subjects[0].name == "bot"
            # ... and what the controllers give every namespace.
            assert client.get(ServiceAccount, "default", namespace="team").metadata.uid
            assert "kube-root-ca.crt" in {c.metadata.name for c in client.list(ConfigMap, namespace="team")}
            names = {o["metadata"]["name"] for o in sandbox.objects("v1", "ConfigMap", "team")}
            assert "settings" in names

    def test_the_file_rbac_is_in_force(self, tmp_path: Path) -> None:
        with KubeSandbox.from_file(write(tmp_path, AWKWARD)) as sandbox:
            token = sandbox.issue_token("team", "bot")
            with sandbox_client(sandbox, token, namespace="team") as bot:
                assert bot.get(ConfigMap, "settings").data == {"mode": "fast"}
                error = api_error(bot.get, Secret, "anything")
                assert (error.status.code, error.status.reason) == (403, "Forbidden")
                assert error.status.message == (
                    'secrets "anything" is forbidden: User "system:serviceaccount:team:bot" cannot get '
                    'resource "secrets" in API group "" in the namespace "team"'
                )

    def test_a_custom_resource_before_its_crd(self, tmp_path: Path) -> None:
        with KubeSandbox.from_file(write(tmp_path, GADGET, GADGET_CRD)) as sandbox:
            gadgets = list(sandbox.objects("example.com/v1", "Gadget", "default"))
            assert [(g["metadata"]["name"], g["spec"]) for g in gadgets] == [("widget", {"size": 3})]
            assert gadgets[0]["metadata"]["generation"] == 1

    def test_a_list_document_is_expanded(self, tmp_path: Path) -> None:
        listed = """
            apiVersion: v1
            kind: List
            items:
            - {apiVersion: v1, kind: ConfigMap, metadata: {name: one}}
            - {apiVersion: v1, kind: ConfigMap, metadata: {name: two}}
        """
        with KubeSandbox.from_file(write(tmp_path, listed)) as sandbox:
            names = {o["metadata"]["name"] for o in sandbox.objects("v1", "ConfigMap", "default")}
            assert {"one", "two"} <= names

    def test_empty_documents_are_skipped(self, tmp_path: Path) -> None:
        assert load_objects(write(tmp_path, "", name="empty.yaml")) == []
        assert load_objects(write(tmp_path, "---\n", name="separator.yaml")) == []
        assert load_objects(write(tmp_path, "# only a comment\n", name="comment.yaml")) == []
        assert [o["kind"] for o in load_objects(write(tmp_path, AWKWARD))] == [
            "RoleBinding",
            "ConfigMap",
            "Namespace",
            "ServiceAccount",
            "Role",
        ]

    def test_a_file_of_a_separator_alone_starts_with_the_defaults(self, tmp_path: Path) -> None:
        path = write(tmp_path, "---\n")
        with KubeSandbox.from_file(path) as sandbox, sandbox_client(sandbox) as client:
            assert {n.metadata.name for n in client.list(Namespace)} == {
                "default",
                "kube-public",
                "kube-system",
            }
            crds = {c.metadata.name for c in client.list(CustomResourceDefinition)}
            assert crds == ARGO_CRDS


class TestFromFileErrors:
    def test_a_yaml_syntax_error_names_the_file_and_the_line(self, tmp_path: Path) -> None:
        path = write(tmp_path, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: [unclosed\n")
        message = read_error(path)
        assert message.startswith(f"cannot read {path}: while parsing a flow sequence")
        assert "line 5, column 11" in message

    def test_a_missing_file_names_it(self, tmp_path: Path) -> None:
        path = tmp_path / "absent.yaml"
        assert read_error(path) == f"cannot read {path}: [Errno 2] No such file or directory: '{path}'"

    def test_a_document_without_api_version_names_the_file_and_the_document(self, tmp_path: Path) -> None:
        # The empty document counts: document 3 is the third in the file.
        path = write(
            tmp_path,
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\n",
            "",
            "kind: ConfigMap\nmetadata: {name: no-version}\n",
        )
        assert read_error(path) == f"{path}, document 3: apiVersion is required (a string)"

    def test_a_document_without_a_kind_or_a_name(self, tmp_path: Path) -> None:
        no_kind = write(tmp_path, "apiVersion: v1\nmetadata: {name: x}\n", name="no-kind.yaml")
        assert read_error(no_kind) == f"{no_kind}, document 1: kind is required (a string)"
        no_name = write(tmp_path, "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", name="no-name.yaml")
        assert read_error(no_name) == f"{no_name}, document 1: metadata.name is required"

    def test_a_document_that_is_not_an_object(self, tmp_path: Path) -> None:
        path = write(tmp_path, "- just\n- a list\n")
        assert read_error(path) == (
            f"{path}, document 1: expected a Kubernetes object (apiVersion, kind, metadata)"
        )

    def test_an_unknown_kind_names_the_kind_and_its_api_version(self, tmp_path: Path) -> None:
        sandbox = KubeSandbox.from_file(write(tmp_path, GADGET))
        assert start_error(sandbox) == "Gadget example.com/v1 is not a kind this sandbox serves"

    def test_two_objects_of_one_name_are_already_exists(self, tmp_path: Path) -> None:
        twice = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dup}\n"
        sandbox = KubeSandbox.from_file(write(tmp_path, twice, twice))
        assert start_error(sandbox) == "cannot create ConfigMap 'dup': configmaps \"dup\" already exists"

    def test_an_object_in_a_namespace_no_document_makes_is_not_found(self, tmp_path: Path) -> None:
        stray = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: stray, namespace: nowhere}\n"
        sandbox = KubeSandbox.from_file(write(tmp_path, stray))
        assert start_error(sandbox) == "cannot create ConfigMap 'stray': namespaces \"nowhere\" not found"

    def test_an_invalid_name_gives_the_api_message(self, tmp_path: Path) -> None:
        bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_A_Name}\n"
        message = start_error(KubeSandbox.from_file(write(tmp_path, bad)))
        assert message.startswith(
            "cannot create ConfigMap 'Not_A_Name': ConfigMap \"Not_A_Name\" is invalid: "
            'metadata.name: Invalid value: "Not_A_Name": a lowercase RFC 1123 subdomain'
        )

    def test_a_failed_start_releases_its_port(self, tmp_path: Path) -> None:
        twice = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dup}\n"
        sandbox = KubeSandbox.from_file(write(tmp_path, twice, twice))
        try:
            with pytest.raises(SandboxError), sandbox:
                pass
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind(("127.0.0.1", sandbox.port))  # EADDRINUSE while the sandbox's socket is open
        finally:
            sandbox.stop()


# -- pods/log --------------------------------------------------------------------------------------------


@pytest.fixture
def sandbox_target(kube_target: KubeTarget) -> KubeTarget:
    """`kube_target` when it is the sandbox: a pod's log from an annotation is the sandbox's stand-in for a
    kubelet."""
    if kube_target.sandbox is None:
        pytest.skip("the sandbox-log annotation is the sandbox's; a cluster's pods/log comes from a kubelet")
    return kube_target


def log_pod(namespace: str, name: str, log: str | None = None) -> Pod:
    annotations = {LOG_ANNOTATION: log} if log is not None else None
    return Pod(
        metadata=ObjectMeta(name=name, namespace=namespace, annotations=annotations),
        spec=PodSpec(containers=[Container(name="main", image="busybox")]),
    )


@pytest.fixture
def http(sandbox_target: KubeTarget) -> Iterator[httpx2.Client]:
    """The httpx client lightkube builds from the administrator's config, to read a reply's raw bytes."""
    config = sandbox_target.config.get()
    assert config is not None
    with lightkube_http_client(config, ConnectionParams(trust_env=False)) as client:
        yield client


class TestPodLog:
    def test_the_annotation_is_the_log(self, sandbox_target: KubeTarget, kube_namespace: str) -> None:
        client = admin(sandbox_target)
        client.create(log_pod(kube_namespace, "talker", "hello\n"))
        assert list(client.log("talker", namespace=kube_namespace)) == ["hello\n"]

    def test_lines_with_and_without_newlines(self, sandbox_target: KubeTarget, kube_namespace: str) -> None:
        client = admin(sandbox_target)
        client.create(log_pod(kube_namespace, "lines", "one\ntwo\n"))
        assert list(client.log("lines", namespace=kube_namespace)) == ["one\n", "two\n"]
        assert list(client.log("lines", namespace=kube_namespace, newlines=False)) == ["one", "two"]

    def test_the_body_is_the_annotation_as_plain_text(
        self, sandbox_target: KubeTarget, kube_namespace: str, http: httpx2.Client
    ) -> None:
        admin(sandbox_target).create(log_pod(kube_namespace, "raw", "no newline at the end"))
        answer = http.get(f"/api/v1/namespaces/{kube_namespace}/pods/raw/log")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        assert answer.text == "no newline at the end"

    def test_a_pod_without_the_annotation_has_an_empty_log(
        self, sandbox_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = admin(sandbox_target)
        client.create(log_pod(kube_namespace, "quiet"))
        assert list(client.log("quiet", namespace=kube_namespace)) == []

    def test_the_log_of_a_missing_pod_is_not_found(
        self, sandbox_target: KubeTarget, kube_namespace: str
    ) -> None:
        error = api_error(admin(sandbox_target).log, "nowhere", namespace=kube_namespace)
        assert (error.status.code, error.status.reason) == (404, "NotFound")
        assert error.status.message == 'pods "nowhere" not found'
