"""`KubeSandbox`: the Kubernetes API sandbox served on a loopback port, in a background thread.

It puts together the store (`argoplug.kube.sandbox.store`), the controllers (`collector`: garbage
collection, namespaces, each namespace's `default` ServiceAccount), the scheduler and kubelet that run pods
(`kubelet`), authentication and RBAC (`rbac`) and the HTTP API (`app`), preloads Argo's CRDs (`crds/`,
copied from argo-workflows' manifests/base/crds/minimal) and the objects given, and serves it with uvicorn,
over TLS when given a certificate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from argoplug.kube.sandbox.app import SandboxApp
from argoplug.kube.sandbox.collector import Collector
from argoplug.kube.sandbox.errors import ApiStatusError
from argoplug.kube.sandbox.kubelet import Kubelet
from argoplug.kube.sandbox.rbac import Authenticator, Authorizer, UserInfo
from argoplug.kube.sandbox.resources import ResourceType
from argoplug.kube.sandbox.store import Store, crd_registrar

__all__ = ["ADMIN_USER", "KubeSandbox", "SandboxError", "SandboxTLS", "load_objects"]

# The sandbox's administrator: a static token of a user in system:masters (the API server's
# --token-auth-file; system:masters passes every authorization check).
ADMIN_USER = UserInfo(username="sandbox-admin", uid="0", groups=("system:masters",))
_RBAC_GROUP = "rbac.authorization.k8s.io"
_RBAC_PLURALS = {
    "Role": "roles",
    "ClusterRole": "clusterroles",
    "RoleBinding": "rolebindings",
    "ClusterRoleBinding": "clusterrolebindings",
}
# Objects of a FILE are created in this order (a namespace before what lives in it, a CRD before its
# resources); kinds not named come after them, in the file's order.
_FIRST_KINDS = ("Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "Role")
_START_SECONDS = 10.0


class SandboxError(Exception):
    """The sandbox could not start or could not create an object given to it: the message says which
    document and the API's answer."""


@dataclasses.dataclass(frozen=True)
class SandboxTLS:
    """Serve HTTPS with `cert_file` and `key_file` (PEM); `ca_file` is the CA that signed them, written into
    kubeconfigs and every namespace's `kube-root-ca.crt` ConfigMap."""

    cert_file: str
    key_file: str
    ca_file: str


def load_objects(path: str | Path) -> list[dict[str, Any]]:
    """The objects of a YAML FILE (one or more documents, `kind: List` expanded; empty documents skipped).

    Raises SandboxError when the file cannot be read or a document is not a Kubernetes object (a mapping
    with `apiVersion`, `kind` and `metadata.name` or `metadata.generateName`).
    """
    try:
        documents = list(yaml.safe_load_all(Path(path).read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SandboxError(f"cannot read {path}: {exc}") from None
    objects: list[dict[str, Any]] = []
    for index, document in enumerate(documents, start=1):
        if document is None:
            continue
        items = (
            document.get("items") if isinstance(document, dict) and document.get("kind") == "List" else None
        )
        for obj in items if isinstance(items, list) else [document]:
            where = f"{path}, document {index}"
            if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
                raise SandboxError(f"{where}: expected a Kubernetes object (apiVersion, kind, metadata)")
            for field in ("apiVersion", "kind"):
                if not isinstance(obj.get(field), str) or not obj[field]:
                    raise SandboxError(f"{where}: {field} is required (a string)")
            if not obj["metadata"].get("name") and not obj["metadata"].get("generateName"):
                raise SandboxError(f"{where}: metadata.name is required")
            objects.append(obj)
    return objects


def _argo_crds() -> list[dict[str, Any]]:
    folder = resources.files("argoplug.kube.sandbox") / "crds"
    return [
        yaml.safe_load(entry.read_text(encoding="utf-8"))
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".yaml")
    ]


class KubeSandbox:
    """The Kubernetes API sandbox on `127.0.0.1:<free port>`; use it as a context manager (or `start` /
    `stop`).

    On start it has the namespaces `default`, `kube-system` and `kube-public` (each with its `default`
    ServiceAccount and `kube-root-ca.crt` ConfigMap), Argo's CRDs (Workflow, WorkflowTemplate,
    ClusterWorkflowTemplate, CronWorkflow, WorkflowTaskSet) and `objects`, created in dependency order
    (namespaces, CRDs, ServiceAccounts and roles first). `admin_token` authenticates as `sandbox-admin`
    (system:masters); ServiceAccount tokens come from TokenRequests (`serviceaccounts/<name>/token`),
    checked with the Roles and bindings stored. `tls` serves HTTPS; else plain HTTP. `watch_history` is how
    many events the watch cache keeps: a watch from a resourceVersion older than them gets 410 Expired (the
    API server keeps them for a time, `--watch-cache-sizes`; a count is what a test can reach).

    `run_pods` (default True) runs pods as a scheduler and kubelet would (`argoplug.kube.sandbox.kubelet`):
    a pod without a node is bound to the node `argoplug-sandbox`, its containers' commands run as processes
    on this machine (or its `argoplug.dev/sandbox-script` annotation is followed), its status and log are the
    kubelet's; `stop` kills them. With False, a pod stays as written and its log is its
    `argoplug.dev/sandbox-log` annotation.

    Raises SandboxError from `start` when an object cannot be created (which object, the API's message)
    or the server does not answer within 10 seconds.
    """

    def __init__(
        self,
        objects: Iterable[Mapping[str, Any]] = (),
        *,
        tls: SandboxTLS | None = None,
        watch_history: int = 1000,
        run_pods: bool = True,
    ) -> None:
        self.tls = tls
        self.store = Store(history=watch_history)
        crd_registrar(self.store)
        self.authenticator = Authenticator()
        self.admin_token = secrets.token_urlsafe(32)
        self.authenticator.add_token(self.admin_token, ADMIN_USER)
        self.authorizer = Authorizer(self._rbac_objects)
        self.store.on_deleted(self._forget_account)
        self._objects = [dict(obj) for obj in objects]
        self.collector = Collector(self.store, ca_pem=Path(tls.ca_file).read_text() if tls else "")
        self.kubelet = Kubelet(self.store) if run_pods else None
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.app = SandboxApp(
            self.store,
            self.authenticator,
            self.authorizer,
            server_address=f"127.0.0.1:{self.port}",
            kubelet=self.kubelet,
        )
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @classmethod
    def from_file(
        cls, path: str | Path, *, tls: SandboxTLS | None = None, run_pods: bool = True
    ) -> KubeSandbox:
        """A sandbox that creates the objects of the YAML file `path` first (`load_objects`)."""
        return cls(load_objects(path), tls=tls, run_pods=run_pods)

    @property
    def ca_file(self) -> str | None:
        """The CA file a client needs (None over plain HTTP)."""
        return self.tls.ca_file if self.tls else None

    # -- life ----------------------------------------------------------------------------------------------

    def start(self) -> KubeSandbox:
        """Create the preloaded objects, start the controllers (and the kubelet) and the server; return when
        it answers."""
        import uvicorn

        for crd in _argo_crds():
            self.create(crd)
        for namespace in ("default", "kube-system", "kube-public"):
            self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        self.collector.run_once()
        try:
            self._create_given()
        except SandboxError:
            self.stop()  # the bound socket and what started go too: the port is free again
            raise
        self.collector.run_once()
        self.collector.start()
        if self.kubelet is not None:
            self.kubelet.start()
        options: dict[str, Any] = {}
        if self.tls:
            options = {"ssl_certfile": self.tls.cert_file, "ssl_keyfile": self.tls.key_file}
        config = uvicorn.Config(
            self.app,
            access_log=False,
            log_config=None,
            log_level="warning",
            lifespan="on",
            ws="none",
            **options,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="kube-sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _START_SECONDS
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.stop()
                raise SandboxError("the Kubernetes sandbox did not start")
            time.sleep(0.01)
        return self

    def _serve(self) -> None:
        with contextlib.suppress(SystemExit):
            self._server.run(sockets=[self._sock])

    def stop(self) -> None:
        """Stop the server, the kubelet (its processes killed) and the controllers; open watches end."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None and self._thread.ident is not None:
            self._thread.join(timeout=10)
        if self.kubelet is not None:
            self.kubelet.stop()
        self.collector.stop()
        self._sock.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> KubeSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- objects -------------------------------------------------------------------------------------------

    def _type_of(self, obj: Mapping[str, Any]) -> tuple[ResourceType, str]:
        api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
        rtype = self.store.type_of(api_version, kind)
        if rtype is None:
            raise SandboxError(f"{kind} {api_version} is not a kind this sandbox serves")
        return rtype, api_version.rpartition("/")[2]

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create `obj` as the sandbox admin (its namespace defaults to `default`); return it as stored.

        Raises SandboxError with the API's message when the API refuses it (exists, invalid, ...).
        """
        rtype, version = self._type_of(obj)
        namespace = str(obj["metadata"].get("namespace") or "default") if rtype.namespaced else ""
        try:
            return self.store.create(rtype, namespace, obj, version=version, manager="argoplug-sandbox")
        except ApiStatusError as error:
            name = obj["metadata"].get("name") or obj["metadata"].get("generateName")
            raise SandboxError(
                f"cannot create {obj.get('kind')} {name!r}: {error.status['message']}"
            ) from None

    def _create_given(self) -> None:
        def rank(indexed: tuple[int, dict[str, Any]]) -> tuple[int, int]:
            kind = indexed[1].get("kind")
            return (_FIRST_KINDS.index(kind) if kind in _FIRST_KINDS else len(_FIRST_KINDS), indexed[0])

        for _, obj in sorted(enumerate(self._objects), key=rank):
            self.create(obj)
            if obj.get("kind") == "Namespace":
                self.collector.run_once()  # its default ServiceAccount, as the controllers make it

    def _rbac_objects(self, kind: str, namespace: str | None) -> list[dict[str, Any]]:
        rtype = self.store.resolve(_RBAC_GROUP, "v1", _RBAC_PLURALS[kind])
        return self.store.objects(rtype, namespace)

    def _forget_account(self, rtype: ResourceType, obj: dict[str, Any]) -> None:
        if rtype.key == ("", "serviceaccounts"):
            self.authenticator.revoke_service_account(
                obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
            )

    # -- clients -------------------------------------------------------------------------------------------

    def issue_token(self, namespace: str, service_account: str, *, seconds: int = 3600) -> str:
        """A token of ServiceAccount `namespace/service_account` (as a TokenRequest gives it).

        Raises SandboxError when the ServiceAccount does not exist.
        """
        accounts = self.store.resolve("", "v1", "serviceaccounts")
        account = self.store.find(accounts, namespace, service_account)
        if account is None:
            raise SandboxError(f'serviceaccount "{service_account}" not found in namespace "{namespace}"')
        token, _ = self.authenticator.issue_service_account_token(
            namespace=namespace,
            name=service_account,
            uid=account["metadata"]["uid"],
            expiration_seconds=seconds,
        )
        return token

    def kubeconfig_dict(self, *, token: str | None = None, namespace: str = "default") -> dict[str, Any]:
        """A kubeconfig (as a dict) for this sandbox: context `argoplug-sandbox`, the admin's token unless
        `token` is given, `namespace` as the context's namespace."""
        cluster: dict[str, Any] = {"server": self.url}
        if self.tls:
            cluster["certificate-authority"] = self.tls.ca_file
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "argoplug-sandbox", "cluster": cluster}],
            "users": [{"name": "argoplug-sandbox", "user": {"token": token or self.admin_token}}],
            "contexts": [
                {
                    "name": "argoplug-sandbox",
                    "context": {
                        "cluster": "argoplug-sandbox",
                        "user": "argoplug-sandbox",
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": "argoplug-sandbox",
        }

    def kubeconfig(
        self, path: str | Path | None = None, *, token: str | None = None, namespace: str = "default"
    ) -> Path:
        """Write `kubeconfig_dict` to `path` (mode 0600; default: a file in a folder removed by `stop`)."""
        if path is None:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="argoplug-kube-sandbox-")
            path = Path(self._tmp.name) / f"kubeconfig-{secrets.token_hex(4)}"
        target = Path(path)
        target.touch(mode=0o600)
        target.chmod(0o600)
        target.write_text(
            yaml.safe_dump(self.kubeconfig_dict(token=token, namespace=namespace)), encoding="utf-8"
        )
        return target

    def config(self, token: str | None = None, *, namespace: str = "default") -> Any:
        """A lightkube `KubeConfig` for this sandbox (the admin's token unless `token`)."""
        from lightkube.config.kubeconfig import KubeConfig

        return KubeConfig.from_dict(self.kubeconfig_dict(token=token, namespace=namespace))

    def objects(self, api_version: str, kind: str, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        """The stored objects of a kind (in `namespace`, or all), as the API returns them."""
        rtype, version = self._type_of({"apiVersion": api_version, "kind": kind})
        for obj in self.store.objects(rtype, namespace):
            yield self.store.output(obj, rtype, version)
