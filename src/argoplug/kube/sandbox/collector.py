"""The controllers of the Kubernetes API sandbox: the garbage collector, the namespace controller, and the
ServiceAccount and root-CA publishers that give every namespace its `default` ServiceAccount and
`kube-root-ca.crt` ConfigMap.

As pkg/controller/garbagecollector (garbagecollector.go's attemptToDeleteItem / orphanDependents): a
dependent whose owners are all gone is deleted; one with some owners gone loses those references; the
dependents of an owner deleted in the Foreground are deleted before it; those of an Orphan delete lose their
reference. Runs in a background thread, woken by every write, so deletion is asynchronous but prompt.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from argoplug.kube.sandbox.errors import ApiStatusError
from argoplug.kube.sandbox.store import FOREGROUND, ORPHAN, Store

__all__ = ["Collector"]

_PLACEHOLDER_CA = (
    "-----BEGIN CERTIFICATE-----\n"
    "(the argoplug Kubernetes sandbox serves plain HTTP: there is no cluster CA)\n"
    "-----END CERTIFICATE-----\n"
)


class Collector:
    """Runs the sandbox's controllers over `store` in a daemon thread until `stop`; `ca_pem` is the data of
    every namespace's `kube-root-ca.crt` ConfigMap. `run_once` does one round synchronously."""

    def __init__(self, store: Store, *, ca_pem: str = "") -> None:
        self.store = store
        self.ca_pem = ca_pem or _PLACEHOLDER_CA
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kube-sandbox-collector", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.store.changed.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.store.changed.wait(timeout=1.0)
            self.store.changed.clear()
            if self._stop.is_set():
                return
            self.run_once()

    def run_once(self) -> None:
        """Run the controllers until they change nothing more (at most 50 rounds)."""
        for _ in range(50):
            with self.store.lock:
                rv = self.store.resource_version
                self._namespaces()
                self._collect()
                if self.store.resource_version == rv:
                    return

    def _namespaces(self) -> None:
        store = self.store
        namespaces = store.resolve("", "v1", "namespaces")
        for ns in list(store.objects(namespaces)):
            name = ns["metadata"]["name"]
            if not ns["metadata"].get("deletionTimestamp"):
                self._publish(name)
                continue
            left = False
            for rtype, obj in list(store.all_objects()):
                if rtype.namespaced and obj["metadata"].get("namespace") == name:
                    left = True
                    if not obj["metadata"].get("deletionTimestamp"):
                        with contextlib.suppress(ApiStatusError):
                            store.delete(rtype, name, obj["metadata"]["name"], version=rtype.versions[0])
            if not left:
                store.finish_namespace(ns)

    def _publish(self, namespace: str) -> None:
        store = self.store
        accounts = store.resolve("", "v1", "serviceaccounts")
        if store.find(accounts, namespace, "default") is None:
            with contextlib.suppress(ApiStatusError):
                store.create(
                    accounts,
                    namespace,
                    {"metadata": {"name": "default"}},
                    version="v1",
                    manager="kube-controller-manager",
                )
        configmaps = store.resolve("", "v1", "configmaps")
        if store.find(configmaps, namespace, "kube-root-ca.crt") is None:
            body = {
                "metadata": {
                    "name": "kube-root-ca.crt",
                    "annotations": {
                        "kubernetes.io/description": (
                            "Contains a CA bundle that can be used to verify the kube-apiserver when using "
                            "internal endpoints such as the internal service IP or kubernetes.default.svc. "
                            "No other usage is guaranteed across distributions of Kubernetes clusters."
                        )
                    },
                },
                "data": {"ca.crt": self.ca_pem},
            }
            with contextlib.suppress(ApiStatusError):
                store.create(configmaps, namespace, body, version="v1", manager="kube-controller-manager")

    def _collect(self) -> None:
        store = self.store
        everything = list(store.all_objects())
        by_uid = {obj["metadata"]["uid"]: obj for _, obj in everything}
        dependents: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
        for rtype, obj in everything:
            for ref in obj["metadata"].get("ownerReferences") or ():
                dependents.setdefault(str(ref.get("uid", "")), []).append((rtype, obj))
        for rtype, obj in everything:
            meta = obj["metadata"]
            refs = meta.get("ownerReferences") or ()
            if refs and not meta.get("deletionTimestamp"):
                self._dependent(rtype, obj, refs, by_uid, dependents)
            finalizers = meta.get("finalizers") or ()
            if meta.get("deletionTimestamp") and (FOREGROUND in finalizers or ORPHAN in finalizers):
                self._owner(rtype, obj, dependents.get(meta["uid"], []))

    def _dependent(
        self,
        rtype: Any,
        obj: dict[str, Any],
        refs: Any,
        by_uid: dict[str, dict[str, Any]],
        dependents: dict[str, list[tuple[Any, dict[str, Any]]]],
    ) -> None:
        """attemptToDeleteItem: classify the owner references as solid, dangling or waiting for dependents."""
        solid, dangling, waiting = [], [], []
        for ref in refs:
            owner = by_uid.get(str(ref.get("uid", "")))
            if owner is None or owner["metadata"]["name"] != ref.get("name"):
                dangling.append(ref)
            elif owner["metadata"].get("deletionTimestamp") and FOREGROUND in (
                owner["metadata"].get("finalizers") or ()
            ):
                waiting.append(ref)
            elif owner["metadata"].get("deletionTimestamp") and ORPHAN in (
                owner["metadata"].get("finalizers") or ()
            ):
                continue  # the owner's orphaning removes the reference
            else:
                solid.append(ref)
        namespace, name = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
        if solid:
            if dangling or waiting:
                gone = {id(ref) for ref in (*dangling, *waiting)}
                keep = [ref for ref in refs if id(ref) not in gone]

                def drop(new: dict[str, Any]) -> None:
                    new["metadata"]["ownerReferences"] = keep

                self.store.set_fields(rtype, obj, drop)
            return
        if not dangling and not waiting:
            return
        has_dependents = bool(dependents.get(obj["metadata"]["uid"]))
        policy = "Foreground" if waiting and has_dependents else "Background"
        with contextlib.suppress(ApiStatusError):
            self.store.delete(rtype, namespace, name, version=rtype.versions[0], propagation=policy)

    def _owner(self, rtype: Any, obj: dict[str, Any], deps: list[tuple[Any, dict[str, Any]]]) -> None:
        """Finish a Foreground delete once its dependents are gone; orphan the dependents of an Orphan one."""
        finalizers = obj["metadata"].get("finalizers") or ()
        uid = obj["metadata"]["uid"]
        if ORPHAN in finalizers:
            for dep_type, dep in deps:

                def unown(new: dict[str, Any]) -> None:
                    refs = [r for r in new["metadata"].get("ownerReferences") or () if r.get("uid") != uid]
                    if refs:
                        new["metadata"]["ownerReferences"] = refs
                    else:
                        new["metadata"].pop("ownerReferences", None)

                self.store.set_fields(dep_type, dep, unown)
        elif deps:
            return  # Foreground: the dependents are being deleted (each by _dependent: its owner is waiting)

        def finish(new: dict[str, Any]) -> None:
            left = [f for f in new["metadata"].get("finalizers") or () if f not in (FOREGROUND, ORPHAN)]
            if left:
                new["metadata"]["finalizers"] = left
            else:
                new["metadata"].pop("finalizers", None)

        self.store.set_fields(rtype, obj, finish)
