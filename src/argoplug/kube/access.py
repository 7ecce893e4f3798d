"""Where a Kubernetes cluster is and who argoplug is to it: `ClusterAccess`, and the lightkube clients
built from it.

Three sources: the pod's own ServiceAccount (`ClusterAccess.in_cluster`: the projected token, re-read
when the kubelet rotates it, the CA and the namespace file), a kubeconfig and context
(`ClusterAccess.from_kubeconfig`), or an endpoint, CA and token source given at run time
(`ClusterAccess.from_endpoint`, e.g. an EKS cluster's endpoint and its presigned-STS token). Plugins,
`argoplug run` and the tests call it. lightkube (and its HTTP client, httpx2) is imported when a client is
built, never at import time.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import json
import os
import ssl
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    import lightkube

__all__ = [
    "FIELD_MANAGER",
    "REQUEST_TIMEOUT",
    "SERVICE_ACCOUNT_DIR",
    "ClusterAccess",
    "KubeSetupError",
    "StaticToken",
    "TokenFile",
    "TokenSource",
    "token_subject",
]

# Where the kubelet mounts a pod's ServiceAccount token, CA and namespace (client-go's rest.InClusterConfig).
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# Seconds one API request may take (connect, read, write, pool each): well inside the server's 20 s handler
# deadline and the agent's 30 s call timeout, so a slow API server makes a TemporaryError, not a lost call.
REQUEST_TIMEOUT = 5.0
# The field manager of argoplug's server-side applies (managedFields[].manager).
FIELD_MANAGER = "argoplug"


class KubeSetupError(Exception):
    """No cluster can be reached as configured: a missing token file or CA, an unknown context, an
    environment without `KUBERNETES_SERVICE_HOST`. The message names what is missing and how to give it."""


class TokenSource(Protocol):
    """Gives the bearer token of each request; `refresh=True` after the API server answered 401."""

    def token(self, *, refresh: bool = False) -> str:
        """Return the token to send (without `Bearer `)."""
        ...


class StaticToken:
    """A token that never changes (a test's, or one given on the command line)."""

    def __init__(self, value: str) -> None:
        self._value = value

    def token(self, *, refresh: bool = False) -> str:
        """Return the token; `refresh` changes nothing."""
        return self._value

    def __repr__(self) -> str:
        return "StaticToken(<hidden>)"


class TokenFile:
    """A projected ServiceAccount token file, re-read when the kubelet rotates it.

    The kubelet rewrites the file (an atomic symlink swap, new inode) at 80% of the token's life; each
    request stats the file and re-reads it when its inode, size or mtime changed, and on `refresh` (after a
    401), as client-go's `transport.NewCachedFileTokenSource` does (it re-reads every minute). Raises
    KubeSetupError naming the file when it cannot be read or is empty.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._value = ""

    def token(self, *, refresh: bool = False) -> str:
        """Return the file's token, re-read if the file changed or `refresh` is set."""
        with self._lock:
            try:
                info = self.path.stat()
            except OSError as exc:
                raise KubeSetupError(
                    f"cannot read the ServiceAccount token file {self.path}: {exc}"
                ) from None
            stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
            if refresh or stamp != self._stamp:
                try:
                    value = self.path.read_text(encoding="utf-8").strip()
                except (OSError, UnicodeDecodeError) as exc:
                    raise KubeSetupError(
                        f"cannot read the ServiceAccount token file {self.path}: {exc}"
                    ) from None
                if not value:
                    raise KubeSetupError(f"the ServiceAccount token file {self.path} is empty")
                self._value, self._stamp = value, stamp
            return self._value

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r})"


def token_subject(token: str) -> str:
    """Return the `sub` claim of a JWT (a ServiceAccount token: `system:serviceaccount:<ns>:<name>`), read
    without verifying it (only for messages), or "" when the token is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return ""
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return ""
    subject = claims.get("sub") if isinstance(claims, dict) else None
    return subject if isinstance(subject, str) else ""


@dataclasses.dataclass(frozen=True)
class ClusterAccess:
    """How to reach one cluster: its API `server` URL, the CA to verify it, the credentials, the default
    `namespace`, `identity` (who the API server will see, for messages: a ServiceAccount's
    `system:serviceaccount:<ns>:<name>`, a kubeconfig's user name, or "") and `source` (where this came
    from, for messages).

    Build it with `in_cluster`, `from_kubeconfig` or `from_endpoint`; `client()` / `async_client()` give
    lightkube clients. A 401 makes the client ask its token source for a fresh token and send the request
    once more (a rotated ServiceAccount token, an expired EKS token); a second 401 reaches the caller.
    """

    server: str
    namespace: str = "default"
    identity: str = ""
    source: str = ""
    ca_file: str | None = None
    ca_data: str | None = None  # PEM text
    insecure: bool = False
    token_source: TokenSource | None = dataclasses.field(default=None, repr=False)
    # A kubeconfig's own lightkube config (exec plugins, client certificates, token files), used as is.
    kubeconfig: Any = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def in_cluster(
        cls, directory: str | os.PathLike[str] = SERVICE_ACCOUNT_DIR, *, env: Mapping[str, str] | None = None
    ) -> ClusterAccess:
        """Reach the cluster a pod runs in, as the pod's ServiceAccount.

        Reads `KUBERNETES_SERVICE_HOST` / `KUBERNETES_SERVICE_PORT` from `env` (default os.environ) and
        `token`, `ca.crt`, `namespace` from `directory` (client-go's `rest.InClusterConfig`). Raises
        KubeSetupError naming the variable or file that is missing (e.g. a sidecar without
        `automountServiceAccountToken: true`).
        """
        env = os.environ if env is None else env
        directory = Path(directory)
        host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
        if not host or not port:
            raise KubeSetupError(
                "not in a Kubernetes pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set "
                "(give a kubeconfig instead)"
            )
        token_file = directory / "token"
        if not token_file.is_file():
            raise KubeSetupError(
                f"no ServiceAccount token at {token_file}: the sidecar needs "
                "`automountServiceAccountToken: true` in its plugin.yaml (argoplug build sets it for plugins "
                "whose hooks give RBAC rules)"
            )
        ca_file = directory / "ca.crt"
        if not ca_file.is_file():
            raise KubeSetupError(f"no cluster CA at {ca_file}")
        try:
            namespace = (directory / "namespace").read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise KubeSetupError(
                f"cannot read the pod's namespace from {directory / 'namespace'}: {exc}"
            ) from None
        source = TokenFile(token_file)
        if ":" in host:  # IPv6
            host = f"[{host}]"
        return cls(
            server=f"https://{host}:{port}",
            namespace=namespace or "default",
            identity=token_subject(source.token()),
            source=f"the pod's ServiceAccount ({directory})",
            ca_file=str(ca_file),
            token_source=source,
        )

    @classmethod
    def from_environment(
        cls,
        *,
        env: Mapping[str, str] | None = None,
        directory: str | os.PathLike[str] = SERVICE_ACCOUNT_DIR,
    ) -> ClusterAccess:
        """Reach the cluster this process is meant to use, as client-go's `BuildConfigFromFlags` picks it:
        the kubeconfig `$KUBECONFIG` names when it is set (how `argoplug run --kube-sandbox/--kubeconfig`
        points a local sidecar at a cluster), else the pod's ServiceAccount (a sidecar in its agent pod),
        else ~/.kube/config. Raises KubeSetupError saying what each way lacked."""
        env = os.environ if env is None else env
        if env.get("KUBECONFIG"):
            return cls.from_kubeconfig(env["KUBECONFIG"])
        try:
            return cls.in_cluster(directory, env=env)
        except KubeSetupError as in_pod:
            default = Path.home() / ".kube" / "config"
            if default.is_file():
                return cls.from_kubeconfig(default)
            raise KubeSetupError(
                f"no Kubernetes cluster configured: {in_pod}; KUBECONFIG is not set"
            ) from None

    @classmethod
    def from_kubeconfig(
        cls, path: str | os.PathLike[str] | None = None, *, context: str | None = None
    ) -> ClusterAccess:
        """Reach the cluster of `context` (default: the current one) in the kubeconfig at `path` (default
        `$KUBECONFIG`, else ~/.kube/config), with that context's user as lightkube reads it (token, token
        file, client certificate, exec plugin). Raises KubeSetupError naming the file or context."""
        from lightkube import ConfigError, KubeConfig

        where = Path(path or os.environ.get("KUBECONFIG") or Path.home() / ".kube" / "config")
        try:
            config = KubeConfig.from_file(where)
            single = config.get(context_name=context)
        except (ConfigError, OSError) as exc:
            named = f" context {context!r}" if context else ""
            raise KubeSetupError(f"cannot use kubeconfig {where}{named}: {exc}") from None
        if single is None:
            raise KubeSetupError(f"kubeconfig {where} has no current context: give --context")
        name = context or config.current_context or ""
        user = ""
        with contextlib.suppress(Exception):
            user = config.contexts[name].user or ""
        return cls(
            server=single.cluster.server,
            namespace=single.namespace or "default",
            identity=user,
            source=f"kubeconfig {where}, context {name!r}",
            kubeconfig=single,
        )

    @classmethod
    def from_endpoint(
        cls,
        server: str,
        *,
        token: TokenSource | Callable[..., str],
        ca_data: str | bytes | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        namespace: str = "default",
        identity: str = "",
        source: str = "",
    ) -> ClusterAccess:
        """Reach `server` (an https URL; http only for a loopback sandbox) verifying it with `ca_data` (PEM,
        or base64 of PEM as EKS's DescribeCluster gives `certificateAuthority.data`) or `ca_file`, sending
        `token`'s bearer token: a TokenSource, or a callable `token(refresh=False) -> str`."""
        pem: str | None = None
        if ca_data is not None:
            raw = ca_data.encode() if isinstance(ca_data, str) else ca_data
            if b"-----BEGIN" not in raw:
                try:
                    raw = base64.b64decode(raw, validate=True)
                except binascii.Error:
                    raise KubeSetupError("the cluster CA is neither PEM nor base64 of PEM") from None
            pem = raw.decode("ascii", "replace")
        source_of_token = cast(TokenSource, token) if hasattr(token, "token") else _CallableToken(token)
        return cls(
            server=server.rstrip("/"),
            namespace=namespace,
            identity=identity,
            source=source or f"endpoint {server}",
            ca_data=pem,
            ca_file=str(ca_file) if ca_file is not None else None,
            token_source=source_of_token,
        )

    def for_namespace(self, namespace: str) -> ClusterAccess:
        """Return this access with another default namespace."""
        return dataclasses.replace(self, namespace=namespace)

    def client(
        self,
        *,
        namespace: str | None = None,
        field_manager: str = FIELD_MANAGER,
        timeout: float = REQUEST_TIMEOUT,
    ) -> lightkube.Client:
        """Return a lightkube `Client` for this cluster (one connection pool; keep and reuse it).

        `timeout` is per request, in seconds. Its exceptions are lightkube's and httpx2's: translate them
        with `argoplug.kube.errors.translated_errors`.
        """
        import httpx2
        import lightkube

        config, transport = self._lightkube_config(asynchronous=False)
        return lightkube.Client(
            config,
            namespace=namespace or self.namespace,
            timeout=httpx2.Timeout(timeout),
            field_manager=field_manager,
            trust_env=False,
            transport=transport,
        )

    def async_client(
        self,
        *,
        namespace: str | None = None,
        field_manager: str = FIELD_MANAGER,
        timeout: float = REQUEST_TIMEOUT,
    ) -> lightkube.AsyncClient:
        """Return a lightkube `AsyncClient` for this cluster; as `client`."""
        import httpx2
        import lightkube

        config, transport = self._lightkube_config(asynchronous=True)
        return lightkube.AsyncClient(
            config,
            namespace=namespace or self.namespace,
            timeout=httpx2.Timeout(timeout),
            field_manager=field_manager,
            trust_env=False,
            transport=transport,
        )

    def _lightkube_config(self, *, asynchronous: bool) -> tuple[Any, Any]:
        from lightkube.config.kubeconfig import KubeConfig
        from lightkube.config.models import Cluster, User

        if self.kubeconfig is not None:
            return self.kubeconfig, None
        cluster = Cluster(server=self.server, insecure=self.insecure)
        config = KubeConfig.from_one(cluster=cluster, user=User(), namespace=self.namespace).get()
        if self.token_source is None:
            return config, None
        verify = self._ssl_context() if self.server.startswith("https:") else True
        transport = (
            _AsyncBearerTransport(self.token_source, verify)
            if asynchronous
            else _BearerTransport(self.token_source, verify)
        )
        return config, transport

    def _ssl_context(self) -> ssl.SSLContext:
        if self.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if self.ca_data is not None:
            return ssl.create_default_context(cadata=self.ca_data)
        if self.ca_file is not None:
            try:
                return ssl.create_default_context(cafile=self.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise KubeSetupError(f"cannot read the cluster CA {self.ca_file}: {exc}") from None
        return ssl.create_default_context()


class _CallableToken:
    def __init__(self, function: Callable[..., str]) -> None:
        self._function = function

    def token(self, *, refresh: bool = False) -> str:
        return self._function(refresh=refresh)


def _bearer(request: Any, source: TokenSource, *, refresh: bool) -> None:
    request.headers["Authorization"] = f"Bearer {source.token(refresh=refresh)}"


class _BearerTransport:
    """An httpx2 transport that sends the token source's bearer token, and once more after a 401."""

    def __init__(self, source: TokenSource, verify: ssl.SSLContext | bool) -> None:
        import httpx2

        self._source = source
        self._inner = httpx2.HTTPTransport(verify=verify)

    def handle_request(self, request: Any) -> Any:
        _bearer(request, self._source, refresh=False)
        response = self._inner.handle_request(request)
        if response.status_code != 401:
            return response
        response.read()
        response.close()
        _bearer(request, self._source, refresh=True)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> _BearerTransport:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


class _AsyncBearerTransport:
    """The asynchronous `_BearerTransport`; the token source is read off the event loop only when it is a
    file (a stat per request, a read on rotation), which takes microseconds."""

    def __init__(self, source: TokenSource, verify: ssl.SSLContext | bool) -> None:
        import httpx2

        self._source = source
        self._inner = httpx2.AsyncHTTPTransport(verify=verify)

    async def handle_async_request(self, request: Any) -> Any:
        _bearer(request, self._source, refresh=False)
        response = await self._inner.handle_async_request(request)
        if response.status_code != 401:
            return response
        await response.aread()
        await response.aclose()
        _bearer(request, self._source, refresh=True)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _AsyncBearerTransport:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.aclose()
