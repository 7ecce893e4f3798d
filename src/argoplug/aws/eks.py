"""EKS from a plugin sidecar: the cluster's endpoint and CA (`describe_cluster`), the bearer token
`aws eks get-token` makes (`eks_token`), a token source that renews it (`EksTokenSource`), and the
`ClusterAccess` of a remote EKS cluster built from both (`eks_access`).

The token is a presigned STS `GetCallerIdentity` URL, as aws-cli's `awscli/customizations/eks/get_token.py`
(`TokenGenerator`, `STSClientFactory`) and aws-iam-authenticator's `pkg/token/token.go` (`GetWithSTS`)
build it; the cluster's authenticator calls that URL back and maps the ARN STS answers to a Kubernetes
user (an EKS access entry or the `aws-auth` ConfigMap). Clients come from `argoplug.aws.client`, so the
role is assumed there (renewed before its credentials expire) and `AWS_ENDPOINT_URL(_STS|_EKS)` point
them at a sandbox. boto3 is imported on first use only, as in `argoplug.aws`.

This module may not import `argoplug.kube` (the two are sibling layers, see pyproject's import
contracts): `EksTokenSource` is a `argoplug.kube.access.TokenSource` by its shape, and `eks_access` takes
the `ClusterAccess.from_endpoint` it calls as its `factory` argument.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import contextlib
import contextvars
import dataclasses
import datetime
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from argoplug.aws import client, error_for
from argoplug.plugin import PermanentError, TemporaryError

__all__ = [
    "CLUSTER_ID_HEADER",
    "DEFAULT_SESSION_NAME",
    "TOKEN_ACCEPTED_SECONDS",
    "TOKEN_EXPIRATION_SECONDS",
    "TOKEN_PREFIX",
    "URL_EXPIRES",
    "ClusterEndpoint",
    "EksToken",
    "EksTokenSource",
    "describe_cluster",
    "eks_access",
    "eks_token",
]

# awscli/customizations/eks/get_token.py: TOKEN_PREFIX, K8S_AWS_ID_HEADER, URL_TIMEOUT (seconds).
TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
# X-Amz-Expires of the presigned URL. STS ignores it: a presigned GetCallerIdentity is good for 15 minutes
# after its X-Amz-Date (pkg/token/token.go, requestPresignParam and presignedURLExpiration).
URL_EXPIRES = 60
# How long after its X-Amz-Date the authenticator accepts a token (token.go: presignedURLExpiration).
TOKEN_ACCEPTED_SECONDS = 15 * 60
# The expiry the token is reported with: one minute inside that (get_token.py's TOKEN_EXPIRATION_MINS,
# token.go's `presignedURLExpiration - 1*time.Minute`), when client-go renews an exec plugin's token.
TOKEN_EXPIRATION_SECONDS = 14 * 60
DEFAULT_SESSION_NAME = "argoplug"

_SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"
_PARAMS_HANDLER = "argoplug.aws.eks.k8s-aws-id-params"
_SIGN_HANDLER = "argoplug.aws.eks.k8s-aws-id-header"
_SIDECAR_IDENTITY = "the sidecar's AWS identity"

Access = TypeVar("Access")


@dataclasses.dataclass(frozen=True)
class EksToken:
    """A bearer token for an EKS cluster: `token` (`k8s-aws-v1.` + base64url of the presigned URL, no
    padding) and `expires_at` (epoch seconds: 14 minutes after it was signed, as `aws eks get-token`
    reports `status.expirationTimestamp`; the cluster accepts it for 15)."""

    token: str = dataclasses.field(repr=False)
    expires_at: float


@dataclasses.dataclass(frozen=True)
class ClusterEndpoint:
    """What DescribeCluster says of a cluster: its API server `endpoint` (an https URL), `ca_data` (the
    cluster CA as PEM text, decoded from `certificateAuthority.data`) and its `arn`."""

    endpoint: str
    ca_data: str = dataclasses.field(repr=False)
    arn: str


def eks_token(
    cluster_name: str,
    *,
    region: str,
    role_arn: str | None = None,
    session_name: str = DEFAULT_SESSION_NAME,
    now: float | None = None,
) -> EksToken:
    """Return the bearer token of EKS cluster `cluster_name`, as `aws eks get-token --cluster-name` makes it.

    With `role_arn`, signed with that role's credentials (STS AssumeRole as `session_name`, through
    `argoplug.aws.client`), else with the sidecar's own. The steps of aws-cli's get_token.py: an STS client
    of `region` (botocore's default is the regional endpoint, `https://sts.<region>.amazonaws.com`; an
    `AWS_ENDPOINT_URL(_STS)` override wins), a `provide-client-params` handler that moves the
    `x-k8s-aws-id` parameter into the request context and a `before-sign` handler that sets it as a header,
    so SigV4 signs it (`X-Amz-SignedHeaders=host;x-k8s-aws-id`); `generate_presigned_url` of
    `get_caller_identity`, GET, `ExpiresIn=60`; then `k8s-aws-v1.` + the URL in base64url without padding.

    `now` (epoch seconds, default the current time) is the signing time, X-Amz-Date: tests make expired
    tokens with it, as token.go's `presignFixedTime` does. No network call but the AssumeRole.

    Raises PermanentError when the role cannot be assumed (saying so and how to allow it), AwsSetupError
    without credentials or region, TemporaryError on throttling, 5xx or a lost connection (as
    `argoplug.aws.error_for` maps them).
    """
    if not cluster_name:
        raise PermanentError("no EKS cluster name given for the token")
    with _chain_errors(cluster_name, region, role_arn):
        sts = client("sts", region=region, role_arn=role_arn, session_name=session_name)
        _register_cluster_id_handlers(sts)
        with _signing_time(now):
            url = sts.generate_presigned_url(
                "get_caller_identity",
                Params={CLUSTER_ID_HEADER: cluster_name},
                ExpiresIn=URL_EXPIRES,
                HttpMethod="GET",
            )
    signed_at = _amz_date(url)
    if now is not None and signed_at != int(now):
        # botocore no longer reads the signing time where _signing_time sets it.
        raise RuntimeError(f"the presigned URL is dated {signed_at}, not the {int(now)} asked for")
    encoded = base64.urlsafe_b64encode(url.encode("utf-8")).decode("ascii").rstrip("=")
    return EksToken(TOKEN_PREFIX + encoded, float(signed_at + TOKEN_EXPIRATION_SECONDS))


def describe_cluster(
    cluster_name: str,
    *,
    region: str,
    role_arn: str | None = None,
    session_name: str = DEFAULT_SESSION_NAME,
) -> ClusterEndpoint:
    """Return EKS cluster `cluster_name`'s endpoint, CA (PEM text) and ARN (EKS DescribeCluster), as the
    sidecar's identity or, with `role_arn`, as that role (assumed as `session_name`).

    Raises PermanentError naming the cluster and region when it does not exist (ResourceNotFoundException),
    when the role cannot be assumed, or when the cluster has no endpoint or CA (FAILED, DELETING);
    TemporaryError while it is CREATING, and on throttling, 5xx or a lost connection; AwsSetupError without
    credentials or region.
    """
    with _chain_errors(cluster_name, region, role_arn):
        eks = client("eks", region=region, role_arn=role_arn, session_name=session_name)
        cluster = eks.describe_cluster(name=cluster_name)["cluster"]
    status = str(cluster.get("status") or "")
    endpoint = str(cluster.get("endpoint") or "")
    data = str((cluster.get("certificateAuthority") or {}).get("data") or "")
    where = f"EKS cluster {cluster_name!r} in {region}"
    if status == "CREATING" and not (endpoint and data):
        raise TemporaryError(f"{where} is still CREATING; trying again in 60s", delay=60.0)
    if not endpoint or not data:
        missing = "endpoint" if not endpoint else "certificate authority"
        raise PermanentError(f"{where} has no {missing} (status {status or 'unknown'})")
    return ClusterEndpoint(endpoint=endpoint, ca_data=_pem(data, where), arn=str(cluster.get("arn") or ""))


class EksTokenSource:
    """The bearer tokens of one EKS cluster, made by `eks_token` and kept until `refresh_margin` seconds
    before their reported expiry (14 minutes after they were made), and made anew on
    `token(refresh=True)`, which `argoplug.kube.access.ClusterAccess` calls after a 401. A
    `argoplug.kube.access.TokenSource` by its shape. Thread-safe: one token is made at a time.

    `clock` (epoch seconds) dates the tokens it keeps; the tokens themselves are signed at the real time.
    `token()` raises what `eks_token` raises.
    """

    def __init__(
        self,
        cluster_name: str,
        *,
        region: str,
        role_arn: str | None = None,
        session_name: str = DEFAULT_SESSION_NAME,
        refresh_margin: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cluster_name = cluster_name
        self.region = region
        self.role_arn = role_arn
        self.session_name = session_name
        self.refresh_margin = refresh_margin
        self._clock = clock
        self._lock = threading.Lock()
        self._value = ""
        self._renew_at = 0.0
        self.made = 0  # how many tokens were made (for tests and messages)

    def token(self, *, refresh: bool = False) -> str:
        """Return the token to send (without `Bearer `): the kept one, or a new one when `refresh` is set
        or the kept one is within `refresh_margin` seconds of its expiry."""
        with self._lock:
            now = self._clock()
            if refresh or not self._value or now >= self._renew_at:
                made = eks_token(
                    self.cluster_name,
                    region=self.region,
                    role_arn=self.role_arn,
                    session_name=self.session_name,
                )
                self._value = made.token
                self._renew_at = now + TOKEN_EXPIRATION_SECONDS - self.refresh_margin
                self.made += 1
            return self._value

    def __repr__(self) -> str:
        role = f", role_arn={self.role_arn!r}" if self.role_arn else ""
        return f"EksTokenSource({self.cluster_name!r}, region={self.region!r}{role})"


def eks_access(
    cluster_name: str,
    *,
    region: str,
    factory: Callable[..., Access],
    role_arn: str | None = None,
    namespace: str = "default",
    session_name: str = DEFAULT_SESSION_NAME,
) -> Access:
    """Return how to reach EKS cluster `cluster_name`: DescribeCluster (`describe_cluster`), then
    `factory(endpoint, token=EksTokenSource(...), ca_data=<PEM>, namespace=namespace, identity=<role_arn or
    "the sidecar's AWS identity">, source="EKS cluster <arn>")`.

    Pass `factory=argoplug.kube.access.ClusterAccess.from_endpoint` (this layer may not import
    argoplug.kube): `eks_access("c", region="us-west-2", factory=ClusterAccess.from_endpoint)`. Raises
    what `describe_cluster` raises; the token is made at the first request.
    """
    cluster = describe_cluster(cluster_name, region=region, role_arn=role_arn, session_name=session_name)
    source = EksTokenSource(cluster_name, region=region, role_arn=role_arn, session_name=session_name)
    return factory(
        cluster.endpoint,
        token=source,
        ca_data=cluster.ca_data,
        namespace=namespace,
        identity=role_arn or _SIDECAR_IDENTITY,
        source=f"EKS cluster {cluster.arn or cluster_name}",
    )


# --- the x-k8s-aws-id header, as get_token.py's STSClientFactory registers it ---------------------------


def _register_cluster_id_handlers(sts: Any) -> None:
    # unique_id: the client is argoplug.aws's cached one, so registering again is a no-op. Both handlers act
    # only on a call that passes the parameter, so the client's other calls are unchanged.
    events = sts.meta.events
    events.register(
        "provide-client-params.sts.GetCallerIdentity", _retrieve_cluster_id, unique_id=_PARAMS_HANDLER
    )
    events.register("before-sign.sts.GetCallerIdentity", _inject_cluster_id, unique_id=_SIGN_HANDLER)


def _retrieve_cluster_id(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    if CLUSTER_ID_HEADER in params:
        context[CLUSTER_ID_HEADER] = params.pop(CLUSTER_ID_HEADER)


def _inject_cluster_id(request: Any, **_: Any) -> None:
    if CLUSTER_ID_HEADER in request.context:
        request.headers[CLUSTER_ID_HEADER] = request.context[CLUSTER_ID_HEADER]


# --- the signing time ------------------------------------------------------------------------------------

_fixed_time: contextvars.ContextVar[datetime.datetime | None] = contextvars.ContextVar(
    "argoplug_eks_signing_time", default=None
)
_clock_lock = threading.Lock()
_clock_installed = False


@contextlib.contextmanager
def _signing_time(now: float | None) -> Iterator[None]:
    """Within the block, botocore's SigV4 signs at `now` in this thread (None: the current time).

    botocore.auth reads the signing time from its module's `get_current_datetime` (SigV4Auth.add_auth);
    it is wrapped once by a function that answers this context's fixed time when there is one and
    botocore's own otherwise, so other threads and calls are unaffected.
    """
    if now is None:
        yield
        return
    _install_clock()
    fixed = datetime.datetime.fromtimestamp(int(now), tz=datetime.UTC).replace(tzinfo=None)
    reset = _fixed_time.set(fixed)
    try:
        yield
    finally:
        _fixed_time.reset(reset)


def _install_clock() -> None:
    global _clock_installed
    with _clock_lock:
        if _clock_installed:
            return
        import botocore.auth

        original = botocore.auth.get_current_datetime

        def current_datetime(*args: Any, **kwargs: Any) -> datetime.datetime:
            fixed = _fixed_time.get()
            return fixed if fixed is not None else original(*args, **kwargs)

        botocore.auth.get_current_datetime = current_datetime
        _clock_installed = True


def _amz_date(url: str) -> int:
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    stamp = time.strptime(query["X-Amz-Date"], _SIGV4_TIMESTAMP)
    return calendar.timegm(stamp)


# --- errors ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _chain_errors(cluster_name: str, region: str, role_arn: str | None) -> Iterator[None]:
    """botocore's exceptions as the link of the chain that broke: the role, the cluster, or AWS itself."""
    try:
        yield
    except Exception as exc:
        mapped = _chain_error(exc, cluster_name, region, role_arn)
        if mapped is exc:
            raise
        raise mapped from exc


def _chain_error(exc: Exception, cluster_name: str, region: str, role_arn: str | None) -> BaseException:
    mapped = error_for(exc)
    response = getattr(exc, "response", None)
    if not isinstance(mapped, PermanentError) or not isinstance(response, dict):
        return mapped  # throttling, 5xx, credentials, region: argoplug.aws's translation
    error = response.get("Error") or {}
    code = str(error.get("Code") or "")
    message = str(error.get("Message") or "").strip() or str(exc)
    operation = getattr(exc, "operation_name", "")
    if operation == "AssumeRole" and role_arn:
        return PermanentError(
            f"cannot assume role {role_arn}: {message}. Let the sidecar's identity assume it (trust policy): "
            f"the role's trust policy must name the sidecar's role (its IRSA role) as a Principal allowed "
            f"sts:AssumeRole, and the sidecar's role needs sts:AssumeRole on {role_arn}"
        )
    if code == "ResourceNotFoundException":
        return PermanentError(
            f"EKS cluster {cluster_name!r} does not exist in region {region} ({operation}: {message}); "
            "check the cluster name and region"
        )
    if code in ("AccessDeniedException", "AccessDenied") and operation == "DescribeCluster":
        who = f"role {role_arn}" if role_arn else _SIDECAR_IDENTITY
        return PermanentError(
            f"{who} may not describe EKS cluster {cluster_name!r} in {region}: {message}; allow "
            f"eks:DescribeCluster on arn:aws:eks:{region}:<account>:cluster/{cluster_name}"
        )
    return mapped


def _pem(data: str, where: str) -> str:
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    text = raw.decode("ascii", "replace")
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise PermanentError(f"{where}: certificateAuthority.data is not base64 of a PEM certificate")
    return text
