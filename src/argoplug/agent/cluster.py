"""The Kubernetes cluster of `argoplug run --kube-sandbox [FILE]` or `--kubeconfig/--context`: the
Workflow object the run is submitted as, the Secrets and ConfigMaps its steps read, and the clean-up.

A Workflow object is created for the run, so that what plugins create owned by it has a real uid, and
deleting it at the end garbage-collects them (`RunCluster.finish` says what went). It carries the label
`workflows.argoproj.io/controller-instanceid: argoplug-run`, so no Argo controller in that cluster runs it
too (a controller without an instance ID selects only workflows without the label:
util/instanceid/service.go). `valueFrom.configMapKeyRef` inputs and `secretKeyRef` headers are read from
the cluster when they are needed (a Secret a step created is there for the next). The sidecars get a
kubeconfig in the run's folder (`KUBECONFIG`). Only `argoplug.agent.command` imports this module, behind
those options.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from argoplug.agent.configmaps import ConfigMaps
from argoplug.agent.http_template import SecretError, SecretStore
from argoplug.agent.workflow import Workflow
from argoplug.kube.access import ClusterAccess, KubeSetupError
from argoplug.kube.errors import error_for

__all__ = [
    "GC_SECONDS",
    "INSTANCE_ID",
    "INSTANCE_ID_LABEL",
    "ClusterConfigMaps",
    "ClusterError",
    "ClusterSecrets",
    "RunCluster",
    "cluster_access",
    "sandbox_access",
]

INSTANCE_ID_LABEL = "workflows.argoproj.io/controller-instanceid"
INSTANCE_ID = "argoplug-run"
# Seconds `finish` waits for the garbage collector to delete what the Workflow owned.
GC_SECONDS = 30.0


class ClusterError(Exception):
    """The cluster of the run cannot be used: the message says what failed and with which object."""


def _problem(exc: Exception) -> str:
    translated = error_for(exc)
    return translated.message if translated is not None else f"{type(exc).__name__}: {exc}"


class ClusterSecrets(SecretStore):
    """The Secrets of one namespace, read from the cluster at each lookup (never cached: a Secret a step
    created is there for the next). Values never appear in messages or logs."""

    def __init__(self, client: Any, namespace: str, *, source: str) -> None:
        super().__init__({}, source=source)
        self._client = client
        self._namespace = namespace

    def get(self, name: str, key: str) -> str:
        """The value of `key` of Secret `name`; raises SecretError with Argo's words when it is missing."""
        from lightkube import ApiError
        from lightkube.resources.core_v1 import Secret

        try:
            secret = self._client.get(Secret, name, namespace=self._namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                raise SecretError(f'secrets "{name}" not found in namespace "{self._namespace}"') from None
            raise SecretError(f"cannot read secret '{name}': {_problem(exc)}") from None
        except Exception as exc:
            raise SecretError(f"cannot read secret '{name}': {_problem(exc)}") from None
        data = dict(secret.data or {})
        if key not in data:
            known = ", ".join(repr(k) for k in sorted(data)) or "no keys"
            raise SecretError(f"secret '{name}' does not have the key '{key}' (it has {known})")
        try:
            return base64.b64decode(data[key]).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise SecretError(
                f"secret '{name}' key '{key}' is not UTF-8 text, so it cannot be a header"
            ) from None


class ClusterConfigMaps(ConfigMaps):
    """ConfigMaps read from the cluster at each lookup, judged as the controller judges them
    (`ConfigMaps.value`: Argo's parameter label and messages)."""

    def __init__(self, client: Any) -> None:
        super().__init__()
        self._client = client

    def value(self, namespace: str, name: str, key: str) -> str:
        """The value of `key` of ConfigMap `namespace/name`, with ConfigMaps.value's errors."""
        from lightkube import ApiError
        from lightkube.resources.core_v1 import ConfigMap

        try:
            found = self._client.get(ConfigMap, name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code != 404:
                raise ValueError(f"cannot read ConfigMap '{name}': {_problem(exc)}") from None
            return ConfigMaps().value(namespace, name, key)
        except Exception as exc:
            raise ValueError(f"cannot read ConfigMap '{name}': {_problem(exc)}") from None
        body = {"metadata": {"labels": dict(found.metadata.labels or {})}, "data": dict(found.data or {})}
        return ConfigMaps({(namespace, name): body}).value(namespace, name, key)


class RunCluster:
    """The cluster one `argoplug run` uses; a context manager.

    `sandbox`: a started `argoplug.kube.sandbox.KubeSandbox` (the run's own), or None with `access` (a
    kubeconfig's cluster). `service_account`: the ServiceAccount (in the workflow's namespace) whose
    token the sidecars get, as Argo mounts `<plugin>-executor-plugin`'s; "" gives them the run's own
    credentials. `say` prints a line of the run's output.
    """

    def __init__(
        self,
        *,
        access: ClusterAccess,
        sandbox: Any = None,
        service_account: str = "",
        say: Callable[[str], None] = print,
    ) -> None:
        self.access = access
        self.sandbox = sandbox
        self.service_account = service_account
        self._say = say
        self._client: Any = None
        self._workflow: Workflow | None = None
        self._finished = False

    @property
    def client(self) -> Any:
        """The run's lightkube Client (its own credentials)."""
        if self._client is None:
            self._client = self.access.client(timeout=10.0)
        return self._client

    def describe(self) -> str:
        """One line saying which cluster the run uses."""
        if self.sandbox is not None:
            return f"Kubernetes sandbox at {self.sandbox.url} (argoplug.kube.sandbox)"
        return f"Kubernetes cluster {self.access.server} ({self.access.source})"

    def submit(self, workflow: Workflow) -> Workflow:
        """Create the Workflow object of the run; return `workflow` with the cluster's uid.

        In a sandbox, a namespace that does not exist is created first. Raises ClusterError naming the
        namespace and the API server's message.
        """
        import dataclasses

        from lightkube.generic_resource import create_namespaced_resource
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.core_v1 import Namespace

        client = self.client
        try:
            if self.sandbox is not None:
                try:
                    client.get(Namespace, workflow.namespace)
                except Exception:
                    client.create(Namespace(metadata=ObjectMeta(name=workflow.namespace)))
            resource = _workflow_resource(create_namespaced_resource)
            labels = {**workflow.labels, INSTANCE_ID_LABEL: INSTANCE_ID}
            body = resource(
                apiVersion="argoproj.io/v1alpha1",
                kind="Workflow",
                metadata=ObjectMeta(
                    name=workflow.name,
                    namespace=workflow.namespace,
                    labels=labels,
                    annotations=dict(workflow.annotations) or None,
                ),
                spec=dict(workflow.spec),
            )
            created = client.create(body, namespace=workflow.namespace)
        except Exception as exc:
            raise ClusterError(
                f"cannot create the run's Workflow {workflow.name} in namespace {workflow.namespace!r}: "
                f"{_problem(exc)}"
            ) from None
        uid = created.metadata.uid or workflow.uid
        self._workflow = dataclasses.replace(workflow, uid=uid)
        self._say(
            f"Workflow {workflow.namespace}/{workflow.name} created in the cluster (uid {uid}, label "
            f"{INSTANCE_ID_LABEL}={INSTANCE_ID}: no controller runs it); deleted at the end"
        )
        return self._workflow

    def secrets(self, namespace: str) -> ClusterSecrets:
        """The Secrets `secretKeyRef` headers read."""
        return ClusterSecrets(self.client, namespace, source=f"namespace {namespace!r} of the cluster")

    def configmaps(self) -> ClusterConfigMaps:
        """The ConfigMaps `configMapKeyRef` inputs read."""
        return ClusterConfigMaps(self.client)

    def sidecar_env(self, folder: Path, namespace: str) -> dict[str, str]:
        """Write the sidecars' kubeconfig into `folder` (mode 0600) and return `{"KUBECONFIG": path}`.

        With `service_account`, its token (a TokenRequest, one hour) in `namespace`; otherwise the run's
        own credentials. Raises ClusterError when the token cannot be had.
        """
        path = folder / "kubeconfig"
        if self.service_account:
            token = self._service_account_token(namespace)
            config = _kubeconfig(self.access, token=token, namespace=namespace)
            who = f"ServiceAccount {namespace}/{self.service_account}"
        elif self.sandbox is not None:
            config = _kubeconfig(self.access, token=self.sandbox.admin_token, namespace=namespace)
            who = "the sandbox's admin (no --kube-service-account)"
        else:
            config = _kubeconfig_copy(self.access, namespace)
            who = self.access.source
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(config, handle, sort_keys=False)
        self._say(f"The sidecars reach the cluster as {who} (KUBECONFIG={path})")
        return {"KUBECONFIG": str(path)}

    def _service_account_token(self, namespace: str) -> str:
        from lightkube.models.authentication_v1 import TokenRequestSpec
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.core_v1 import ServiceAccount

        request = ServiceAccount.Token(
            metadata=ObjectMeta(), spec=TokenRequestSpec(audiences=[], expirationSeconds=3600)
        )
        try:
            answer = self.client.create(request, self.service_account, namespace=namespace)
        except Exception as exc:
            raise ClusterError(
                f"cannot get a token of ServiceAccount {namespace}/{self.service_account} for the sidecars: "
                f"{_problem(exc)}"
            ) from None
        return str(answer.status.token)

    def finish(self) -> list[str]:
        """Delete the run's Workflow and wait (up to GC_SECONDS) until the garbage collector deleted what
        it owned (Secrets, ConfigMaps, Pods of its namespace); return the lines saying what went."""
        if self._finished or self._workflow is None:
            return []
        self._finished = True
        workflow = self._workflow
        from lightkube.generic_resource import create_namespaced_resource

        owned = self._owned(workflow)
        try:
            self.client.delete(
                _workflow_resource(create_namespaced_resource), workflow.name, namespace=workflow.namespace
            )
        except Exception as exc:
            return [f"cannot delete the run's Workflow {workflow.namespace}/{workflow.name}: {_problem(exc)}"]
        lines = [f"Workflow {workflow.namespace}/{workflow.name} deleted"]
        deadline = time.monotonic() + GC_SECONDS
        left = owned
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = [item for item in left if self._exists(item, workflow.namespace)]
        gone = [item for item in owned if item not in left]
        if gone:
            lines.append(
                "Garbage-collected with it: " + ", ".join(f"{kind.lower()}/{name}" for kind, name in gone)
            )
        if left:
            lines.append(
                f"Still there after {GC_SECONDS:g} s: "
                + ", ".join(f"{kind.lower()}/{name}" for kind, name in left)
            )
        return lines

    def _owned(self, workflow: Workflow) -> list[tuple[str, str]]:
        from lightkube.resources.core_v1 import ConfigMap, Pod, Secret

        found = []
        for kind in (Secret, ConfigMap, Pod):
            with contextlib.suppress(Exception):
                for item in self.client.list(kind, namespace=workflow.namespace):
                    owners = item.metadata.ownerReferences or []
                    if any(owner.uid == workflow.uid for owner in owners):
                        found.append((kind.__name__, item.metadata.name))
        return found

    def _exists(self, item: tuple[str, str], namespace: str) -> bool:
        from lightkube import ApiError
        from lightkube.resources.core_v1 import ConfigMap, Pod, Secret

        kind = {"Secret": Secret, "ConfigMap": ConfigMap, "Pod": Pod}[item[0]]
        try:
            self.client.get(kind, item[1], namespace=namespace)
        except ApiError as exc:
            return exc.status.code != 404
        except Exception:
            return True
        return True

    def __enter__(self) -> RunCluster:
        return self

    def __exit__(self, *args: object) -> None:
        for line in self.finish():
            self._say(line)
        if self._client is not None:
            self._client.close()


def _workflow_resource(create_namespaced_resource: Callable[..., Any]) -> Any:
    return create_namespaced_resource("argoproj.io", "v1alpha1", "Workflow", "workflows")


def _kubeconfig(access: ClusterAccess, *, token: str, namespace: str) -> dict[str, Any]:
    cluster: dict[str, Any] = {"server": access.server}
    if access.ca_data:
        cluster["certificate-authority-data"] = base64.b64encode(access.ca_data.encode()).decode()
    elif access.ca_file:
        cluster["certificate-authority"] = str(Path(access.ca_file).resolve())
    if access.kubeconfig is not None:
        single = access.kubeconfig
        cluster = {"server": single.cluster.server}
        if single.cluster.certificate_auth_data:
            cluster["certificate-authority-data"] = single.cluster.certificate_auth_data
        elif single.cluster.certificate_auth:
            cluster["certificate-authority"] = str(single.abs_file(single.cluster.certificate_auth))
        if single.cluster.insecure:
            cluster["insecure-skip-tls-verify"] = True
    return _one_context(cluster, {"token": token}, namespace)


def _kubeconfig_copy(access: ClusterAccess, namespace: str) -> dict[str, Any]:
    """The run's kubeconfig context alone, its file paths made absolute (the copy lives elsewhere)."""
    import msgspec

    single = access.kubeconfig
    if single is None:
        raise ClusterError("the run's cluster access has no kubeconfig to hand to the sidecars")
    cluster = msgspec.to_builtins(single.cluster)
    user = msgspec.to_builtins(single.user) if single.user is not None else {}
    paths = ((cluster, ("certificate-authority",)), (user, ("client-certificate", "client-key", "tokenFile")))
    for section, keys in paths:
        for key in keys:
            if section.get(key):
                section[key] = str(single.abs_file(section[key]))
    return _one_context(cluster, user, namespace)


def _one_context(cluster: dict[str, Any], user: dict[str, Any], namespace: str) -> dict[str, Any]:
    name = "argoplug-run"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": name,
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}],
    }


def sandbox_access(sandbox: Any) -> ClusterAccess:
    """The run's access to a started KubeSandbox: its URL (or TLS URL and CA) and its admin token."""
    from argoplug.kube.access import StaticToken

    return ClusterAccess.from_endpoint(
        sandbox.url,
        token=StaticToken(sandbox.admin_token),
        ca_file=getattr(sandbox, "ca_file", None),
        identity="sandbox-admin",
        source="the Kubernetes sandbox's admin",
    )


def cluster_access(kubeconfig: Path | None, context: str | None) -> ClusterAccess:
    """The run's access from `--kubeconfig`/`--context`; raises ClusterError with KubeSetupError's text."""
    try:
        return ClusterAccess.from_kubeconfig(kubeconfig, context=context)
    except KubeSetupError as exc:
        raise ClusterError(str(exc)) from None
