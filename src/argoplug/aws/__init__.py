"""AWS access for plugins: cached boto3 clients per (region, role), assume-role, and error translation.

Plugins that call AWS (`argoplug.plugins.sagemaker`) get clients from `client` and turn botocore's
exceptions into argoplug's with `error_for` / `translated_errors`. boto3 is imported on first use only,
so a sidecar starts fast and small until its first AWS call. `argoplug.aws.sandbox` is the embedded moto
sandbox of `argoplug run --aws-sandbox` and the tests; this module never imports it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from argoplug.plugin import PermanentError, TemporaryError

__all__ = [
    "CONNECT_TIMEOUT",
    "CREDENTIALS_HELP",
    "MAX_ATTEMPTS",
    "READ_TIMEOUT",
    "REQUEST_SECONDS",
    "RETRY_DELAY",
    "AwsSetupError",
    "account_id",
    "caller_account",
    "clear_cache",
    "client",
    "error_for",
    "session_name",
    "translated_errors",
]

# One AWS request, at its worst: MAX_ATTEMPTS × (CONNECT_TIMEOUT + READ_TIMEOUT) = 1 × (2 s + 4 s) = 6 s
# (`REQUEST_SECONDS`). No retry inside a request: a throttled, failed or timed-out request is a
# TemporaryError, and the agent's requeue (`RETRY_DELAY` later) is the retry. botocore's own retry would
# double that time and add its backoff (up to 1 s, 5 s more when AWS sends x-amz-retry-after), and a
# handler call makes several requests: `argoplug.plugins.sagemaker.executions.CALL_SECONDS` budgets them
# (at most 15 s a call) inside the server's 20 s handler deadline and the agent's 30 s call timeout.
MAX_ATTEMPTS = 1
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 4.0
REQUEST_SECONDS = MAX_ATTEMPTS * (CONNECT_TIMEOUT + READ_TIMEOUT)
# Requeue (seconds) after throttling, a 5xx or a lost connection.
RETRY_DELAY = 15.0
# Assumed-role credentials are renewed when they have less than this left (seconds).
_RENEW_BEFORE = 300.0

CREDENTIALS_HELP = (
    "give the plugin sidecar AWS credentials: on EKS use IRSA (annotate the ServiceAccount "
    "`<plugin name>-executor-plugin` with `eks.amazonaws.com/role-arn: arn:aws:iam::<account>:role/<role>` "
    "and set `automountServiceAccountToken: true` in plugin.yaml), or set AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY (e.g. from a Secret) in the sidecar's env, or AWS_PROFILE with a mounted "
    "AWS config file"
)
_REGION_HELP = (
    "set `region` in the plugin block, or AWS_REGION / AWS_DEFAULT_REGION in the sidecar's env "
    "(IRSA on EKS sets them)"
)

# botocore's own lists (botocore/retries/standard.py) plus the 5xx codes services send by name.
_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
_TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServiceError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "IDPCommunicationError",
    }
)
# The credentials themselves are refused: a setup problem, not the work failing.
_CREDENTIAL_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "ExpiredToken",
        "ExpiredTokenException",
        "AuthFailure",
        "InvalidAccessKeyId",
    }
)


class AwsSetupError(Exception):
    """The sidecar cannot reach AWS as configured (no credentials, no region, refused credentials).

    Infrastructure trouble, not the work failing: the server turns it into an `Error` node. The message
    (one line) says how to fix the setup.
    """


@dataclasses.dataclass(slots=True)
class _Session:
    session: Any  # boto3.session.Session
    expires: float | None  # epoch seconds when assumed-role credentials expire; None: boto3 refreshes
    clients: dict[tuple[str, int, float], Any] = dataclasses.field(default_factory=dict)
    account: str | None = None


_CacheKey = tuple[str | None, str | None, str | None, str | None]
_sessions: dict[_CacheKey, _Session] = {}
_lock = threading.Lock()
_create_lock = threading.RLock()


def client(
    service: str,
    *,
    region: str | None = None,
    role_arn: str | None = None,
    session_name: str = "argoplug",
    max_attempts: int = MAX_ATTEMPTS,
    read_timeout: float = READ_TIMEOUT,
) -> Any:
    """Return a cached boto3 client for `service` in `region` (None: the environment's default region).

    With `role_arn`, the sidecar's credentials first assume that role (STS AssumeRole, session name
    `session_name`, 2–64 characters of `[\\w+=,.@-]`); the assumed credentials are renewed five minutes
    before they expire. Clients use botocore's standard retry mode with `max_attempts` attempts and
    short timeouts (`CONNECT_TIMEOUT`, and `read_timeout` seconds: `READ_TIMEOUT`, longer for a call that
    waits, such as a synchronous Lambda Invoke). The endpoint comes from the standard
    `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` variables, which botocore reads itself (a moto
    server, LocalStack...); clients are cached per endpoint too, so changing the variable takes effect.

    Raises botocore's exceptions (translate them with `error_for`): e.g. NoRegionError, NoCredentialsError,
    or AssumeRole's ClientError.
    """
    entry = _session(region, role_arn, session_name)
    key = (service, max_attempts, read_timeout)
    with _lock:
        found = entry.clients.get(key)
        if found is None:
            # boto3 sessions are not thread-safe, so clients are created under the lock; clients are.
            config = _config(max_attempts, read_timeout)
            found = entry.clients[key] = entry.session.client(service, config=config)
        return found


def account_id(value: str | int) -> str:
    """Return an AWS account id as its text: a number is padded to 12 digits, text is stripped.

    YAML (and so a plugin block or a sandbox file) reads an unquoted account id as a number, which drops
    its leading zeros: 12345678901 is account 012345678901. The result is not checked: compare it with
    `^\\d{12}$` to refuse what is not an account id.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return f"{value:012d}"
    return str(value).strip()


def caller_account(
    *, region: str | None = None, role_arn: str | None = None, session_name: str = "argoplug"
) -> str:
    """Return the 12-digit account of the credentials `client` uses (STS GetCallerIdentity), cached.

    Raises botocore's exceptions, like `client`.
    """
    entry = _session(region, role_arn, session_name)
    if entry.account is None:
        sts = client("sts", region=region, role_arn=role_arn, session_name=session_name)
        entry.account = str(sts.get_caller_identity()["Account"])
    return entry.account


def clear_cache() -> None:
    """Forget every cached session, client and account (tests; after changing credentials)."""
    with _lock:
        _sessions.clear()


def session_name(workflow: str, namespace: str = "") -> str:
    """Build an STS role session name from a workflow: `argo-<namespace>-<workflow>`, at most 64 characters.

    Characters AssumeRole refuses (anything but letters, digits and `+=,.@_-`) become `-`, so the
    session shows in CloudTrail under the workflow's name.
    """
    text = "-".join(part for part in ("argo", namespace, workflow) if part)
    return re.sub(r"[^\w+=,.@-]", "-", text, flags=re.ASCII)[:64]


def error_for(exc: BaseException, *, delay: float = RETRY_DELAY) -> BaseException:
    """Map a botocore/boto3 exception to the argoplug exception a handler should raise.

    - throttling (ThrottlingException, Throttling, TooManyRequestsException, RequestLimitExceeded...),
      HTTP 429 and 5xx, connection, endpoint and read-timeout errors → `TemporaryError` with `delay`
      seconds: the node stays Running and the agent calls again;
    - NoCredentialsError, PartialCredentialsError, refused credentials (InvalidClientTokenId,
      ExpiredToken...), a missing region or profile → `AwsSetupError` saying how to fix the setup
      (an `Error` node);
    - any other error response (AccessDenied, AccessDeniedException, UnauthorizedOperation,
      ValidationException, ResourceNotFound, ConflictException...) and client-side parameter validation →
      `PermanentError` with AWS's message (a `Failed` node).

    Anything else, including argoplug's own exceptions, is returned unchanged. Raise the result with
    `raise error_for(exc) from exc` (or use `translated_errors`).
    """
    if "botocore" not in sys.modules:  # not a botocore exception, and no reason to import it
        return exc
    from botocore import exceptions as bx

    if isinstance(exc, bx.ClientError):
        return _client_error(exc, delay)
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return AwsSetupError(f"no usable AWS credentials ({exc}): {CREDENTIALS_HELP}")
    if isinstance(exc, (bx.CredentialRetrievalError, bx.TokenRetrievalError, bx.ProfileNotFound)):
        return AwsSetupError(f"cannot load AWS credentials ({exc}): {CREDENTIALS_HELP}")
    if isinstance(exc, bx.NoRegionError):
        return AwsSetupError(f"no AWS region: {_REGION_HELP}")
    if isinstance(exc, (bx.ConnectionError, bx.HTTPClientError)):
        # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError, SSLError...
        return TemporaryError(f"cannot reach AWS ({exc}); trying again in {delay:g}s", delay=delay)
    if isinstance(exc, (bx.ParamValidationError, bx.ValidationError)):
        return PermanentError(f"invalid AWS request: {exc}")
    return exc


@contextlib.contextmanager
def translated_errors(*, delay: float = RETRY_DELAY) -> Iterator[None]:
    """Within the block, raise botocore's exceptions as `error_for` maps them (`raise ... from exc`)."""
    try:
        yield
    except Exception as exc:
        mapped = error_for(exc, delay=delay)
        if mapped is exc:
            raise
        raise mapped from exc


def _client_error(exc: Any, delay: float) -> BaseException:
    response = exc.response or {}
    error = response.get("Error") or {}
    code = str(error.get("Code") or "")
    message = str(error.get("Message") or "").strip() or str(exc)
    status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    operation = getattr(exc, "operation_name", "") or "the AWS call"
    if code in _THROTTLING_CODES or status == 429:
        return TemporaryError(
            f"AWS throttled {operation} ({code or status}: {message}); trying again in {delay:g}s",
            delay=delay,
        )
    if code in _TRANSIENT_CODES or status >= 500:
        first_line = message.splitlines()[0] if message else ""
        return TemporaryError(
            f"AWS {operation} failed with HTTP {status or code} ({first_line[:200]}); "
            f"trying again in {delay:g}s",
            delay=delay,
        )
    if code in _CREDENTIAL_CODES:
        return AwsSetupError(
            f"AWS refused the sidecar's credentials in {operation} ({code}: {message}): {CREDENTIALS_HELP}"
        )
    return PermanentError(f"{operation} failed: {code or status}: {message}")


def _config(max_attempts: int, read_timeout: float = READ_TIMEOUT) -> Any:
    from botocore.config import Config

    options: dict[str, Any] = {
        # `total_max_attempts` counts the first attempt; botocore's `max_attempts` would count retries only.
        "retries": {"mode": "standard", "total_max_attempts": max_attempts},
        "connect_timeout": CONNECT_TIMEOUT,
        "read_timeout": read_timeout,
        # The server runs up to 16 agent calls at once (docs/contract.md §2.3); botocore's default pool is 10.
        "max_pool_connections": 32,
        # Shows as app/argoplug in CloudTrail's user agent (botocore >= 1.31; botocore-stubs lacks it).
        "user_agent_appid": "argoplug",
    }
    return Config(**options)


def _session(region: str | None, role_arn: str | None, name: str) -> _Session:
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    key: _CacheKey = (region, role_arn, name if role_arn else None, endpoint)
    entry = _cached(key)
    if entry is not None:
        return entry
    # One creation at a time: the parallel first calls of a fan-out (up to 16) would each assume the
    # role and build a boto3 session. Reentrant: assuming a role first gets the STS client's session.
    with _create_lock:
        entry = _cached(key)
        if entry is not None:
            return entry
        if role_arn:
            entry = _assume(region, role_arn, name)
        else:
            import boto3

            with _lock:
                entry = _Session(boto3.session.Session(region_name=region), None)
        with _lock:
            _sessions[key] = entry
        return entry


def _cached(key: _CacheKey) -> _Session | None:
    with _lock:
        entry = _sessions.get(key)
    if entry is not None and (entry.expires is None or entry.expires - time.time() > _RENEW_BEFORE):
        return entry
    return None


def _assume(region: str | None, role_arn: str, name: str) -> _Session:
    import boto3

    sts = client("sts", region=region)
    credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName=name)["Credentials"]
    with _lock:
        session = boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=region or sts.meta.region_name,
        )
    return _Session(session, credentials["Expiration"].timestamp())
