"""The sandbox's watches, `status` subresource and garbage collector through lightkube's real client, as the
API server and kube-controller-manager behave (and, marked `cluster`, the same tests against KUBECONFIG's
cluster).

Sources: the watch cache (k8s.io/apiserver/pkg/storage/cacher: ADDED/MODIFIED/DELETED from a
resourceVersion, 410 `Expired` for one it no longer has), the registry's status strategies (pkg/registry/
core/pod/strategy.go: an update of the pod ignores `status`, an update of `pods/status` changes only it) and
pkg/controller/garbagecollector (Background, Orphan and Foreground propagation, `blockOwnerDeletion`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from lightkube import ApiError, Client
from lightkube.models.core_v1 import Container, PodSpec
from lightkube.models.meta_v1 import ObjectMeta, OwnerReference
from lightkube.resources.core_v1 import ConfigMap, Pod
from lightkube.types import CascadeType, PatchType

from argoplug.kube.sandbox import KubeSandbox

from .conftest import KubeTarget, wait_until

WATCH_SECONDS = 30


def config_map(namespace: str, name: str, **meta: Any) -> ConfigMap:
    return ConfigMap(metadata=ObjectMeta(name=name, namespace=namespace, **meta), data={"k": "v"})


class Watcher:
    """A watch of ConfigMaps in a thread (lightkube's watch blocks), its events on `events` as (type,
    name, resourceVersion) or ("ERROR", ApiError)."""

    def __init__(self, client: Client, namespace: str, resource_version: str, **options: Any) -> None:
        self.events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._stream = client.watch(
            ConfigMap,
            namespace=namespace,
            resource_version=resource_version,
            server_timeout=WATCH_SECONDS,
            **options,
        )
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for kind, obj in self._stream:
                self.events.put((kind, obj.metadata.name, obj.metadata.resourceVersion))
        except ApiError as error:
            self.events.put(("ERROR", error))
        except Exception as error:  # the sandbox stopped under a watch still open (the session's end)
            self.events.put(("LOST", error))

    def next(self) -> tuple[Any, ...]:
        return self.events.get(timeout=WATCH_SECONDS)


class TestWatch:
    def test_events_from_a_resource_version_in_order(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = kube_target.client()
        start = client.create(config_map(kube_namespace, "before")).metadata.resourceVersion
        watcher = Watcher(client, kube_namespace, start)
        created = client.create(config_map(kube_namespace, "watched"))
        patched = client.patch(
            ConfigMap, "watched", {"data": {"k": "w"}}, namespace=kube_namespace, patch_type=PatchType.MERGE
        )
        client.delete(ConfigMap, "watched", namespace=kube_namespace)
        assert watcher.next() == ("ADDED", "watched", created.metadata.resourceVersion)
        assert watcher.next() == ("MODIFIED", "watched", patched.metadata.resourceVersion)
        kind, name, _ = watcher.next()
        assert (kind, name) == ("DELETED", "watched")

    def test_a_label_selector_sees_an_object_leave_and_enter_it(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = kube_target.client()
        start = client.create(config_map(kube_namespace, "x")).metadata.resourceVersion
        watcher = Watcher(client, kube_namespace, start, labels={"team": "a"})
        client.create(config_map(kube_namespace, "y", labels={"team": "b"}))
        for team in ("a", "b", "a"):
            client.patch(
                ConfigMap,
                "y",
                {"metadata": {"labels": {"team": team}}},
                namespace=kube_namespace,
                patch_type=PatchType.MERGE,
            )
        # Not seen while it is team b; an object that comes into the selector is ADDED, one that leaves it
        # DELETED (cacher.go's watchCacheEvent filtering with the previous object).
        assert [watcher.next()[:2] for _ in range(3)] == [("ADDED", "y"), ("DELETED", "y"), ("ADDED", "y")]

    def test_a_resource_version_older_than_the_history_is_expired(self, tmp_path: Any) -> None:
        # Sandbox only: a real API server keeps its watch history for a time, not a count a test can pass.
        with KubeSandbox(watch_history=5) as sandbox, Client(sandbox.config(), field_manager="t") as client:
            first = client.create(config_map("default", "c0")).metadata.resourceVersion
            for n in range(1, 8):
                client.create(config_map("default", f"c{n}"))
            watcher = Watcher(client, "default", first)
            kind, error = watcher.next()
        assert kind == "ERROR"
        assert error.status.code == 410 and error.status.reason == "Expired"
        assert error.status.message.startswith(f"too old resource version: {first} (")


def pod(namespace: str, name: str, **meta: Any) -> Pod:
    return Pod(
        metadata=ObjectMeta(name=name, namespace=namespace, **meta),
        spec=PodSpec(containers=[Container(name="main", image="busybox", command=["true"])]),
    )


class TestStatusSubresource:
    @pytest.fixture
    def pod_name(self, kube_target: KubeTarget, kube_namespace: str) -> Iterator[str]:
        # A pod no node runs (a name that is no node): its phase stays what the test writes.
        created = pod(kube_namespace, "held")
        assert created.spec is not None
        created.spec.nodeName = "argoplug-no-such-node"
        kube_target.client().create(created)
        yield "held"

    def test_status_is_written_through_the_subresource_only(
        self, kube_target: KubeTarget, kube_namespace: str, pod_name: str
    ) -> None:
        client = kube_target.client()
        patched = client.patch(
            Pod.Status,
            pod_name,
            {"status": {"message": "by the test"}, "metadata": {"labels": {"ignored": "yes"}}},
            namespace=kube_namespace,
            patch_type=PatchType.MERGE,
        )
        assert patched.status is not None and patched.status.message == "by the test"
        assert "ignored" not in (patched.metadata.labels or {})  # pods/status changes status only

        current = client.get(Pod, pod_name, namespace=kube_namespace)
        assert current.status is not None
        current.status.message = "by a replace of the pod"
        current.metadata.labels = {"replaced": "yes"}
        replaced = client.replace(current)
        assert replaced.status is not None and replaced.status.message == "by the test"
        assert replaced.metadata.labels == {"replaced": "yes"}

    def test_a_status_write_keeps_the_generation(
        self, kube_target: KubeTarget, kube_namespace: str, pod_name: str
    ) -> None:
        client = kube_target.client()
        before = client.get(Pod, pod_name, namespace=kube_namespace)
        after = client.patch(
            Pod.Status,
            pod_name,
            {"status": {"reason": "Test"}},
            namespace=kube_namespace,
            patch_type=PatchType.MERGE,
        )
        assert after.metadata.generation == before.metadata.generation
        assert int(after.metadata.resourceVersion or 0) > int(before.metadata.resourceVersion or 0)


def owned_by(owner: ConfigMap, *, block: bool = False) -> list[OwnerReference]:
    return [
        OwnerReference(
            apiVersion="v1",
            kind="ConfigMap",
            name=str(owner.metadata.name),
            uid=str(owner.metadata.uid),
            blockOwnerDeletion=block,
        )
    ]


def exists(client: Client, namespace: str, name: str) -> ConfigMap | None:
    try:
        return client.get(ConfigMap, name, namespace=namespace)
    except ApiError as error:
        if error.status.code == 404:
            return None
        raise


class TestGarbageCollection:
    def owner_and_dependents(
        self, client: Client, namespace: str, *, block: bool = False, hold: bool = False
    ) -> ConfigMap:
        owner = client.create(config_map(namespace, "owner"))
        for n in (1, 2):
            client.create(
                config_map(
                    namespace,
                    f"dependent-{n}",
                    ownerReferences=owned_by(owner, block=block),
                    finalizers=["argoplug.dev/test-hold"] if hold else None,
                )
            )
        return owner

    def test_background_deletes_the_dependents_after_the_owner(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = kube_target.client()
        self.owner_and_dependents(client, kube_namespace)
        client.delete(ConfigMap, "owner", namespace=kube_namespace, cascade=CascadeType.BACKGROUND)
        assert exists(client, kube_namespace, "owner") is None
        wait_until(lambda: not any(exists(client, kube_namespace, f"dependent-{n}") for n in (1, 2)))

    def test_orphan_keeps_the_dependents_without_the_reference(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = kube_target.client()
        self.owner_and_dependents(client, kube_namespace)
        client.delete(ConfigMap, "owner", namespace=kube_namespace, cascade=CascadeType.ORPHAN)
        wait_until(lambda: exists(client, kube_namespace, "owner") is None)
        for n in (1, 2):
            kept = wait_until(
                lambda n=n: (
                    (cm := exists(client, kube_namespace, f"dependent-{n}"))
                    and not cm.metadata.ownerReferences
                    and cm
                )
            )
            assert kept.metadata.deletionTimestamp is None

    def test_foreground_holds_the_owner_until_its_blocking_dependents_are_gone(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = kube_target.client()
        self.owner_and_dependents(client, kube_namespace, block=True, hold=True)
        client.delete(ConfigMap, "owner", namespace=kube_namespace, cascade=CascadeType.FOREGROUND)
        owner = exists(client, kube_namespace, "owner")
        assert owner is not None and owner.metadata.deletionTimestamp is not None
        assert "foregroundDeletion" in (owner.metadata.finalizers or [])
        # The collector deletes the dependents; each stays (in deletion) while its own finalizer holds it.
        for n in (1, 2):
            wait_until(
                lambda n=n: (
                    (cm := exists(client, kube_namespace, f"dependent-{n}")) and cm.metadata.deletionTimestamp
                )
            )

        def release(name: str) -> None:  # drop the dependent's own finalizer
            client.patch(
                ConfigMap,
                name,
                {"metadata": {"finalizers": None}},
                namespace=kube_namespace,
                patch_type=PatchType.MERGE,
            )

        release("dependent-1")
        wait_until(lambda: exists(client, kube_namespace, "dependent-1") is None)
        assert exists(client, kube_namespace, "owner") is not None  # dependent-2 still blocks it
        release("dependent-2")
        wait_until(lambda: exists(client, kube_namespace, "owner") is None)

    def test_a_dependent_of_an_owner_that_never_existed_is_collected(
        self, kube_target: KubeTarget, kube_namespace: str
    ) -> None:
        client = kube_target.client()
        ghost = config_map(kube_namespace, "ghost")
        ghost.metadata.uid = "00000000-0000-4000-8000-000000000000"
        client.create(config_map(kube_namespace, "orphaned", ownerReferences=owned_by(ghost)))
        wait_until(lambda: exists(client, kube_namespace, "orphaned") is None)
