"""The `kubernetes-secret` plugin through argoplug's server (real sockets) against the Kubernetes sandbox
(or, marked `cluster`, the cluster KUBECONFIG names), reached through lightkube as the sidecar's
ServiceAccount with exactly the RBAC its build hook gives.

What a user relies on: the Secret is owned by the Workflow (so a later step can mount it and it goes with
the Workflow), 16 concurrent creates of one name end with one Secret and no failure, a missing RBAC rule
fails the node with the rule named, and no secret value appears in a log line or a reply.
"""

from __future__ import annotations

import base64
import concurrent.futures
import logging
import uuid

import pytest
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Secret, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding

from argoplug.kube.access import ClusterAccess, StaticToken
from argoplug.plugins import kubernetes_secret
from argoplug.plugins.kubernetes_secret import RULES, secret_plugin
from argoplug.testing import LiveServer

from .conftest import wait_until

Workflow = create_namespaced_resource("argoproj.io", "v1alpha1", "Workflow", "workflows")
PASSWORD = "hunter2-" + uuid.uuid4().hex  # unique, so finding it anywhere is a leak
USERNAME = "obm-admin-" + uuid.uuid4().hex[:8]


def make_workflow(kube_target, namespace: str, name: str = "obm-credentials-x1") -> str:
    """A Workflow object no controller runs (instance-id label); its uid."""
    created = kube_target.client().create(
        Workflow(
            metadata=ObjectMeta(
                name=name,
                namespace=namespace,
                labels={"workflows.argoproj.io/controller-instanceid": "argoplug-test"},
            ),
            spec={"entrypoint": "main", "templates": [{"name": "main", "suspend": {}}]},
        ),
        namespace=namespace,
    )
    return str(created.metadata.uid)


@pytest.fixture
def plugin_server(kube_target, kube_namespace):
    """The plugin served as its sidecar runs it: with the plugin's own RBAC rules, nothing more."""
    kubernetes_secret.use_access(
        kube_target.access_as(kube_namespace, "kubernetes-secret-executor-plugin", RULES)
    )
    with LiveServer([secret_plugin]) as server:
        yield server
    kubernetes_secret.use_access(None)


def call(server: LiveServer, namespace: str, uid: str, block, workflow: str = "obm-credentials-x1"):
    return server.execute({"kubernetes-secret": block}, namespace=namespace, uid=uid, workflow=workflow)


def test_the_secret_is_owned_by_the_workflow_labelled_and_holds_the_data(
    kube_target, kube_namespace, plugin_server
) -> None:
    uid = make_workflow(kube_target, kube_namespace)
    reply = call(plugin_server, kube_namespace, uid, {"data": {"username": USERNAME, "password": PASSWORD}})
    assert reply["node"]["phase"] == "Succeeded", reply
    name = f"argoplug-{uid}"
    assert reply["node"]["outputs"] == {"parameters": [{"name": "name", "value": name}]}
    secret = kube_target.client().get(Secret, name, namespace=kube_namespace)
    (owner,) = secret.metadata.ownerReferences
    assert (owner.apiVersion, owner.kind, owner.name, owner.uid) == (
        "argoproj.io/v1alpha1",
        "Workflow",
        "obm-credentials-x1",
        uid,
    )
    assert owner.blockOwnerDeletion is False
    assert secret.metadata.labels["workflows.argoproj.io/workflow"] == "obm-credentials-x1"
    assert {k: base64.b64decode(v).decode() for k, v in secret.data.items()} == {
        "username": USERNAME,
        "password": PASSWORD,
    }


def test_deleting_the_workflow_garbage_collects_its_secret(
    kube_target, kube_namespace, plugin_server
) -> None:
    uid = make_workflow(kube_target, kube_namespace)
    assert (
        call(plugin_server, kube_namespace, uid, {"name": "obm-creds", "data": {"p": PASSWORD}})["node"][
            "phase"
        ]
        == "Succeeded"
    )
    client = kube_target.client()
    client.delete(Workflow, "obm-credentials-x1", namespace=kube_namespace)
    wait_until(
        lambda: (
            not [s for s in client.list(Secret, namespace=kube_namespace) if s.metadata.name == "obm-creds"]
        )
    )


def test_sixteen_concurrent_creates_of_one_name_all_succeed_with_one_secret(
    kube_target, kube_namespace, plugin_server
) -> None:
    uid = make_workflow(kube_target, kube_namespace)
    block = {"name": "shared", "data": {"password": PASSWORD}}
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda _: call(plugin_server, kube_namespace, uid, block), range(16)))
    assert [reply["node"]["phase"] for reply in replies] == ["Succeeded"] * 16, [r["node"] for r in replies]
    secrets = [
        s for s in kube_target.client().list(Secret, namespace=kube_namespace) if s.metadata.name == "shared"
    ]
    assert len(secrets) == 1
    assert len(secrets[0].metadata.ownerReferences) == 1
    assert base64.b64decode(secrets[0].data["password"]).decode() == PASSWORD


def test_a_second_create_replaces_the_data_of_the_workflows_own_secret(
    kube_target, kube_namespace, plugin_server
) -> None:
    uid = make_workflow(kube_target, kube_namespace)
    call(plugin_server, kube_namespace, uid, {"name": "rotating", "data": {"password": "first-" + PASSWORD}})
    reply = call(plugin_server, kube_namespace, uid, {"name": "rotating", "data": {"password": PASSWORD}})
    assert reply["node"]["phase"] == "Succeeded"
    assert reply["node"]["message"] == f'Secret "rotating" in namespace "{kube_namespace}" updated'
    secret = kube_target.client().get(Secret, "rotating", namespace=kube_namespace)
    assert base64.b64decode(secret.data["password"]).decode() == PASSWORD


def test_a_secret_another_owner_holds_is_left_untouched_and_the_node_fails(
    kube_target, kube_namespace, plugin_server
) -> None:
    client = kube_target.client()
    client.create(
        Secret(metadata=ObjectMeta(name="hand-made", namespace=kube_namespace), stringData={"a": "keep"})
    )
    uid = make_workflow(kube_target, kube_namespace)
    reply = call(plugin_server, kube_namespace, uid, {"name": "hand-made", "data": {"a": PASSWORD}})
    assert reply["node"]["phase"] == "Failed"
    assert "already exists and is not this workflow's: its owner is no owner" in reply["node"]["message"]
    assert base64.b64decode(client.get(Secret, "hand-made", namespace=kube_namespace).data["a"]) == b"keep"


def test_delete_removes_the_workflows_secret_and_is_idempotent(
    kube_target, kube_namespace, plugin_server
) -> None:
    uid = make_workflow(kube_target, kube_namespace)
    call(plugin_server, kube_namespace, uid, {"name": "short-lived", "data": {"a": PASSWORD}})
    first = call(plugin_server, kube_namespace, uid, {"action": "delete", "name": "short-lived"})
    again = call(plugin_server, kube_namespace, uid, {"action": "delete", "name": "short-lived"})
    assert (first["node"]["phase"], again["node"]["phase"]) == ("Succeeded", "Succeeded")
    assert again["node"]["message"].endswith("does not exist (already deleted)")
    assert again["node"]["outputs"] == {"parameters": [{"name": "name", "value": "short-lived"}]}


@pytest.mark.parametrize(
    ("verbs", "missing", "second_call"),
    [
        ([], "create", False),  # no Role at all
        (["create", "get"], "update", True),  # the replace of an existing Secret
    ],
)
def test_a_missing_rbac_rule_fails_the_node_naming_the_rule(
    kube_target, kube_namespace, verbs, missing, second_call, caplog
) -> None:
    rules = [{"apiGroups": [""], "resources": ["secrets"], "verbs": verbs}] if verbs else []
    kubernetes_secret.use_access(kube_target.access_as(kube_namespace, "narrow", rules))
    uid = make_workflow(kube_target, kube_namespace)
    caplog.set_level(logging.DEBUG)
    try:
        with LiveServer([secret_plugin]) as server:
            block = {"name": "creds", "data": {"password": PASSWORD}}
            if second_call:
                assert call(server, kube_namespace, uid, block)["node"]["phase"] == "Succeeded"
            reply = call(server, kube_namespace, uid, block)
    finally:
        kubernetes_secret.use_access(None)
    node = reply["node"]
    assert node["phase"] == "Failed"
    who = f"system:serviceaccount:{kube_namespace}:narrow"
    assert f"cannot {missing} secrets" in node["message"]
    assert f'Grant it with a Role in "{kube_namespace}" bound to {who}' in node["message"]
    assert f'{{apiGroups: [""], resources: ["secrets"], verbs: ["{missing}"]' in node["message"]
    assert node["outputs"] == {"parameters": [{"name": "name", "value": "creds"}]}
    assert PASSWORD not in str(reply) and PASSWORD not in caplog.text


def test_no_secret_value_appears_in_any_log_line_or_reply(
    kube_target, kube_namespace, plugin_server, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    uid = make_workflow(kube_target, kube_namespace)
    replies = [
        call(
            plugin_server,
            kube_namespace,
            uid,
            {"name": "c1", "data": {"password": PASSWORD, "user": USERNAME}},
        ),
        call(
            plugin_server,
            kube_namespace,
            uid,
            {"name": "c1", "data": {"password": PASSWORD, "user": USERNAME}},
        ),
        # Bad input: a key Kubernetes refuses, and a value that is not a string.
        call(plugin_server, kube_namespace, uid, {"name": "c2", "data": {"bad key!": PASSWORD}}),
        call(plugin_server, kube_namespace, uid, {"name": "c3", "data": {"password": [PASSWORD]}}),
        call(plugin_server, kube_namespace, uid, {"name": "Not_A_Name", "data": {"password": PASSWORD}}),
    ]
    phases = [reply["node"]["phase"] for reply in replies]
    assert phases == ["Succeeded", "Succeeded", "Failed", "Failed", "Failed"]
    assert "'bad key!'" in replies[2]["node"]["message"]
    assert "`data.password`" in replies[3]["node"]["message"] or "data" in replies[3]["node"]["message"]
    assert "'Not_A_Name' is not a valid Secret name" in replies[4]["node"]["message"]
    for text in (str(replies), caplog.text):
        assert PASSWORD not in text
        assert USERNAME not in text
        assert base64.b64encode(PASSWORD.encode()).decode() not in text


def test_the_built_rbac_is_exactly_what_the_plugin_needs(kube_target, kube_namespace, tmp_path) -> None:
    """`argoplug build` of a bundle with the plugin: the token is mounted, and the Role and RoleBinding it
    writes, applied to the cluster, let the plugin create, replace and delete, and nothing else."""
    import yaml

    from argoplug.build.writer import build_bundle

    bundle = tmp_path / "argoplug.yaml"
    bundle.write_text(
        yaml.safe_dump(
            {"name": "secrets", "image": "registry.example/secrets:1", "plugins": ["kubernetes-secret"]}
        )
    )
    files = {p.name: p.read_text() for p in build_bundle(bundle, tmp_path / "out")}
    assert yaml.safe_load(files["plugin.yaml"])["spec"]["sidecar"]["automountServiceAccountToken"] is True
    role, binding = yaml.safe_load_all(files["plugin-role.yaml"])
    assert role["rules"] == [dict(rule) for rule in RULES]
    client = kube_target.client()
    client.create(
        ServiceAccount(metadata=ObjectMeta(name="secrets-executor-plugin", namespace=kube_namespace))
    )
    for document in (role, binding):
        document["metadata"]["namespace"] = kube_namespace
        for subject in document.get("subjects", []):
            subject["namespace"] = kube_namespace
    client.create(Role.from_dict(role))
    client.create(RoleBinding.from_dict(binding))
    token = client.create(
        ServiceAccount.Token(
            metadata=ObjectMeta(), spec=TokenRequestSpec(audiences=[], expirationSeconds=3600)
        ),
        "secrets-executor-plugin",
        namespace=kube_namespace,
    ).status.token
    cluster = kube_target.config.get().cluster
    kubernetes_secret.use_access(
        ClusterAccess.from_endpoint(
            cluster.server,
            token=StaticToken(token),
            ca_data=cluster.certificate_auth_data,
            ca_file=cluster.certificate_auth,
        )
    )
    uid = make_workflow(kube_target, kube_namespace)
    try:
        with LiveServer([secret_plugin]) as server:
            phases = [
                call(server, kube_namespace, uid, block)["node"]["phase"]
                for block in (
                    {"name": "built", "data": {"a": "1"}},
                    {"name": "built", "data": {"a": "2"}},
                    {"action": "delete", "name": "built"},
                )
            ]
    finally:
        kubernetes_secret.use_access(None)
    assert phases == ["Succeeded", "Succeeded", "Succeeded"]
