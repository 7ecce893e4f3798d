"""`argoplug deploy` and `argoplug destroy` against the Kubernetes sandbox through lightkube (and, marked
`cluster`, against KUBECONFIG's cluster): what is applied is exactly what `argoplug build` writes, `--prune`
removes only what the bundle no longer declares, `--dry-run` writes nothing, destroy leaves nothing owned,
a failing hook rolls back its namespace alone, and a bad parameter fails before any write.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Namespace

from argoplug.build.bundle import BundleError, parse_bundle
from argoplug.build.writer import render_bundle
from argoplug.deploy import BUNDLE_LABEL, deploy, destroy
from argoplug.deploy.deployment import _owned

from .conftest import TEST_LABEL, KubeTarget

ROOT = Path(__file__).resolve().parents[2]
HOOKED = "tests.deploy_hook_plugins:plugins"


@pytest.fixture(autouse=True)
def importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))


@pytest.fixture
def namespaces(kube_target: KubeTarget, kube_namespace: str) -> Iterator[list[str]]:
    """Two namespaces (teams) of this test."""
    client = kube_target.client()
    second = f"argoplug-test-{uuid.uuid4().hex[:10]}"
    client.create(Namespace(metadata=ObjectMeta(name=second, labels={TEST_LABEL: "true"})))
    yield [kube_namespace, second]
    client.delete(Namespace, second)


def bundle(name: str, **fields: Any) -> Any:
    return parse_bundle({"name": name, "image": "registry.example/plugins:1", **fields})


def owned(kube_target: KubeTarget, name: str) -> set[tuple[str, str, str]]:
    found = _owned(kube_target.client(), name)
    return {(ns, obj.kind, obj.metadata.name) for ns, objs in found.items() for obj in objs}


def built(b: Any) -> set[tuple[str, str, str]]:
    files = render_bundle(b)
    names = [
        f"{b.sidecar_name}-configmap.yaml",
        "service-account.yaml",
        "plugin-role.yaml",
        "agent-role.yaml",
    ]
    return {
        (doc["metadata"]["namespace"], doc["kind"], doc["metadata"]["name"])
        for name in names
        for doc in yaml.safe_load_all(files.get(name, ""))
        if doc
    }


def test_deploy_creates_exactly_the_built_objects(kube_target: KubeTarget, namespaces: list[str]) -> None:
    name = f"d{uuid.uuid4().hex[:8]}"
    b = bundle(name, plugins=["kubernetes-secret"], namespaces=namespaces)
    outcomes = deploy(b, kube_target.client())
    assert [o.error for o in outcomes] == ["", ""]
    assert owned(kube_target, name) == built(b)
    assert {c.action for o in outcomes for c in o.changes} == {"created"}
    # The ConfigMap as built, with the bundle's labels on top.
    configmap = kube_target.client().get(ConfigMap, f"{name}-executor-plugin", namespace=namespaces[0])
    expected = yaml.safe_load(render_bundle(b)[f"{name}-executor-plugin-configmap.yaml"].split("---")[0])
    assert configmap.data == expected["data"]
    assert configmap.metadata.labels[BUNDLE_LABEL] == name
    # Again: nothing changes; destroy: nothing owned is left.
    again = deploy(b, kube_target.client())
    assert {c.action for o in again for c in o.changes} == {"unchanged"}
    destroy(b, kube_target.client())
    assert owned(kube_target, name) == set()


def test_prune_deletes_only_the_removed_instances_objects(
    kube_target: KubeTarget, namespaces: list[str]
) -> None:
    name = f"p{uuid.uuid4().hex[:8]}"
    a, b_ns = namespaces
    both = [
        {"namespace": a, "name": "secrets", "plugin": "kubernetes-secret"},
        {"namespace": b_ns, "name": "secrets", "plugin": "kubernetes-secret"},
        {"namespace": b_ns, "name": "hooked", "plugin": HOOKED, "parameters": {"note": "hi"}},
    ]
    full = bundle(name, instances=both)
    deploy(full, kube_target.client())
    before = owned(kube_target, name)
    assert ("" not in {ns for ns, _, _ in before}) and (b_ns, "ConfigMap", "hooked-executor-plugin") in before
    note = kube_target.client().get(ConfigMap, "hooked-note", namespace=b_ns)
    assert note.data == {"note": "hi"}
    smaller = bundle(name, instances=both[:2])
    dry = deploy(smaller, kube_target.client(), prune=True, dry_run=True)
    assert owned(kube_target, name) == before  # a dry run writes nothing
    deleted = {(o.namespace, c.kind, c.name) for o in dry for c in o.changes if c.action == "deleted"}
    hooked = {item for item in before if item[2].startswith("hooked")}
    assert deleted == hooked
    deploy(smaller, kube_target.client(), prune=True)
    assert owned(kube_target, name) == before - hooked
    destroy(full, kube_target.client())
    assert owned(kube_target, name) == set()


def test_dry_run_writes_nothing_and_says_what_would_change(
    kube_target: KubeTarget, namespaces: list[str]
) -> None:
    name = f"r{uuid.uuid4().hex[:8]}"
    b = bundle(name, plugins=["kubernetes-secret"], namespaces=namespaces[:1])
    first = deploy(b, kube_target.client(), dry_run=True)
    assert owned(kube_target, name) == set()
    assert {c.action for c in first[0].changes} == {"created"}
    deploy(b, kube_target.client())
    changed = bundle(name, plugins=["kubernetes-secret"], namespaces=namespaces[:1], port=7744)
    dry = deploy(changed, kube_target.client(), dry_run=True)
    actions = {(c.kind, c.action) for c in dry[0].changes}
    assert ("ConfigMap", "changed") in actions and ("ServiceAccount", "unchanged") in actions
    configmap = kube_target.client().get(ConfigMap, f"{name}-executor-plugin", namespace=namespaces[0])
    assert "7744" not in str(configmap.data)
    destroy(b, kube_target.client())


def test_a_failing_hook_rolls_back_its_namespace_alone(
    kube_target: KubeTarget, namespaces: list[str]
) -> None:
    name = f"h{uuid.uuid4().hex[:8]}"
    a, b_ns = namespaces
    b = bundle(
        name,
        instances=[
            {"namespace": a, "name": "hooked", "plugin": HOOKED},
            {
                "namespace": b_ns,
                "name": "hooked",
                "plugin": HOOKED,
                "parameters": {"fail": "argoplug_post_deploy"},
            },
        ],
    )
    outcomes = {o.namespace: o for o in deploy(b, kube_target.client())}
    assert outcomes[a].error == ""
    assert HOOKED in outcomes[b_ns].error and "argoplug_post_deploy refused" in outcomes[b_ns].error
    left = owned(kube_target, name)
    assert {ns for ns, _, _ in left} == {a}
    with pytest.raises(ApiError):  # what the hook made through its client went too
        kube_target.client().get(ConfigMap, "hooked-note", namespace=b_ns)
    assert kube_target.client().get(ConfigMap, "hooked-note", namespace=a).data == {"note": ""}
    destroy(b, kube_target.client())
    assert owned(kube_target, name) == set()


def test_a_bad_parameter_fails_before_any_write(kube_target: KubeTarget, namespaces: list[str]) -> None:
    name = f"b{uuid.uuid4().hex[:8]}"
    b = bundle(
        name,
        instances=[
            {"namespace": namespaces[0], "name": "fine", "plugin": "kubernetes-secret"},
            {"namespace": namespaces[1], "name": "hooked", "plugin": HOOKED, "parameters": {"nots": 1}},
        ],
    )
    with pytest.raises(BundleError) as raised:
        deploy(b, kube_target.client())
    message = str(raised.value)
    assert f"instances[1] (namespace {namespaces[1]}, instance hooked" in message
    assert "Object contains unknown field `nots`" in message
    assert owned(kube_target, name) == set()


def test_the_commands_against_a_kubeconfig(
    kube_target: KubeTarget, namespaces: list[str], tmp_path: Path
) -> None:
    if kube_target.sandbox is None:
        pytest.skip("the sandbox's kubeconfig; the cluster run is the API tests above")
    name = f"c{uuid.uuid4().hex[:8]}"
    (tmp_path / "argoplug.yaml").write_text(
        yaml.safe_dump(
            {
                "name": name,
                "image": "r.example/p:1",
                "plugins": ["kubernetes-secret"],
                "namespaces": namespaces,
            }
        )
    )
    kubeconfig = kube_target.sandbox.kubeconfig(tmp_path / "kubeconfig")

    def argoplug(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "argoplug", *args, str(tmp_path / "argoplug.yaml")]
        return subprocess.run(
            [*command, "--kubeconfig", str(kubeconfig)],
            capture_output=True,
            text=True,
            timeout=120,
            env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        )

    dry = argoplug("deploy", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "(dry run: nothing is written)" in dry.stdout and "created   ConfigMap/" in dry.stdout
    assert owned(kube_target, name) == set()
    done = argoplug("deploy")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(owned(kube_target, name)) == len(
        built(parse_bundle(yaml.safe_load((tmp_path / "argoplug.yaml").read_text())))
    )
    gone = argoplug("destroy")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert owned(kube_target, name) == set()


def test_a_namespace_selector_deploys_to_every_namespace_with_the_labels(
    kube_target: KubeTarget, namespaces: list[str]
) -> None:
    """As KFP labels its profile namespaces: the bundle names the label, deploy finds the namespaces."""
    from lightkube.types import PatchType

    name = f"s{uuid.uuid4().hex[:8]}"
    label = {"argoplug.dev/test-profile": name}
    client = kube_target.client()
    client.patch(Namespace, namespaces[1], {"metadata": {"labels": label}}, patch_type=PatchType.MERGE)
    b = bundle(name, plugins=["kubernetes-secret"], namespaceSelector=label)
    deploy(b, client)
    assert {ns for ns, _, _ in owned(kube_target, name)} == {namespaces[1]}
    client.patch(Namespace, namespaces[0], {"metadata": {"labels": label}}, patch_type=PatchType.MERGE)
    deploy(b, client)
    assert {ns for ns, _, _ in owned(kube_target, name)} == set(namespaces)
    destroy(b, client)
    assert owned(kube_target, name) == set()
    with pytest.raises(BundleError) as raised:
        deploy(
            bundle(name, plugins=["kubernetes-secret"], namespaceSelector={"argoplug.dev/none": name}), client
        )
    assert "no namespace carries the labels" in str(raised.value)
