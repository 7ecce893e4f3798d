"""EKS bearer tokens in the Kubernetes sandbox: `EksTokenAuthenticator` checks a `k8s-aws-v1.` token the way
EKS's authenticator (aws-iam-authenticator) does and maps the AWS identity it proves to a Kubernetes user
through EKS access entries, so the sandbox can play a remote EKS cluster for `argoplug.aws.eks`.

The sandbox's STS is moto's server (argoplug.aws.sandbox.AwsSandbox), which lacks two things real STS does
with a presigned URL: it neither checks a query-string SigV4 signature nor reads the caller from one (it
answers a default `user/moto`, and routes a call without an `Authorization` header to S3). So the steps
are, each from aws-iam-authenticator's pkg/token/token.go (`tokenVerifier.Verify`) unless said:

1. the token's form: at most 4096 bytes, the `k8s-aws-v1.` prefix, unpadded base64url, an https URL (http
   only to the sandbox's own STS endpoint) whose host is an STS host (`sts[-fips].<region>.amazonaws.com`,
   `.api.aws`, `.amazonaws.com.cn`, the global `sts.amazonaws.com`) or the sandbox's STS endpoint, path
   `/`, only the allowed query parameters once each, `Action=GetCallerIdentity`, `x-k8s-aws-id` among the
   signed headers, `X-Amz-Expires` from 0 to 900, and an `X-Amz-Date` at most 15 minutes old;
2. what STS does and moto does not: the SigV4 query signature checked (AWS's "Create a signed AWS API
   request" steps, stdlib hmac) with the secret key moto issued for the token's access key (read from
   moto's `/moto-api/data.json`) over the headers the authenticator sends, so `x-k8s-aws-id` must carry
   the cluster name the token was made for; the session token must be the one moto issued with that key;
3. the presigned GET itself to the sandbox's STS endpoint (the URL's host replaced by it when it is AWS's),
   with `x-k8s-aws-id: <cluster>` and `Accept: application/json` as the authenticator sends them, plus an
   `Authorization` header that restates the query's credential and signature, which is how moto finds the
   caller (moto/core/responses.py `get_access_key`) and the service (STS); the answer (JSON, or the XML
   moto sends) gives the ARN, account and user id;
4. the ARN canonicalized as pkg/arn/arn.go `Canonicalize` does (an assumed role's
   `arn:aws:sts::A:assumed-role/R/S` is `arn:aws:iam::A:role/R`), then mapped through the access entries
   (EKS CreateAccessEntry's principalArn, username, kubernetesGroups; the default username as EKS's user
   guide "Set a custom username for EKS access entries" gives it, templates as pkg/server/server.go
   `renderTemplate`), the user's uid and extra as server.go sets them.

Not reproduced: STS's own checks of an expired session token, the FIPS/dual-stack endpoint lists of the
AWS SDK's resolver (hosts are matched by pattern), aws-auth ConfigMap mappings, EKS access policies.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import dataclasses
import hashlib
import hmac
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from xml.etree import ElementTree

from argoplug.kube.sandbox.rbac import UserInfo

__all__ = [
    "AccessEntry",
    "AwsIdentity",
    "EksTokenAuthenticator",
    "TokenRejected",
    "canonical_arn",
    "moto_credentials",
]

# pkg/token/token.go
_PREFIX = "k8s-aws-v1."
_MAX_TOKEN_BYTES = 4 * 1024
_CLUSTER_ID_HEADER = "x-k8s-aws-id"
_URL_LIFETIME = 15 * 60  # presignedURLExpiration: seconds after X-Amz-Date
_MAX_EXPIRES = 900
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_ALLOWED_PARAMETERS = frozenset(
    {
        "action",
        "version",
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-expires",
        "x-amz-security-token",
        "x-amz-signature",
        "x-amz-signedheaders",
    }
)
# Regional, FIPS and dual-stack STS hosts of the aws, aws-cn and aws-us-gov partitions, and the global one.
_STS_HOST = re.compile(r"^sts(-fips)?\.[a-z0-9]+(-[a-z0-9]+)*\.(amazonaws\.com|api\.aws|amazonaws\.com\.cn)$")
_GLOBAL_STS_HOST = "sts.amazonaws.com"
_PARTITIONS = frozenset({"aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f"})
# staging/src/k8s.io/apiserver/pkg/authentication/user/user.go
_AUTHENTICATED = "system:authenticated"
_UNRESERVED = "-_.~"


class TokenRejected(Exception):
    """A token the authenticator refuses; the message is aws-iam-authenticator's (token.go's FormatError:
    `input token was not properly formatted: ...`, STSError: `sts getCallerIdentity failed: ...`), or says
    which check of STS's failed."""


@dataclasses.dataclass(frozen=True)
class AwsIdentity:
    """Who signed a token, as token.go's `Identity` holds it: the `arn` STS answered, its `canonical_arn`,
    `account_id`, `user_id` (the role or user id, without the session), `session_name` ("" for a user),
    `access_key_id` and `sts_endpoint` (the URL's host)."""

    arn: str
    canonical_arn: str
    account_id: str
    user_id: str
    session_name: str
    access_key_id: str
    sts_endpoint: str


@dataclasses.dataclass(frozen=True)
class AccessEntry:
    """An EKS access entry: `principal_arn` (an IAM role, possibly with a path, or user), the Kubernetes
    `username` ("" for EKS's default) and `groups` (kubernetesGroups). Both may use `{{AccountID}}`,
    `{{SessionName}}` (`@` as `-`), `{{SessionNameRaw}}` and `{{AccessKeyID}}`."""

    principal_arn: str
    username: str = ""
    groups: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, entry: Mapping[str, Any]) -> AccessEntry:
        """Read `{principalArn, username?, groups? | kubernetesGroups?}` (CreateAccessEntry's names).
        Raises ValueError naming what is missing or wrong."""
        arn = entry.get("principalArn")
        if not isinstance(arn, str) or not arn.startswith("arn:"):
            raise ValueError(f"an access entry needs a principalArn (an IAM role or user ARN), got {arn!r}")
        groups = entry.get("groups", entry.get("kubernetesGroups")) or ()
        if isinstance(groups, str) or not all(isinstance(group, str) for group in groups):
            raise ValueError(f"access entry {arn}: groups must be a list of names, got {groups!r}")
        username = entry.get("username") or ""
        if not isinstance(username, str):
            raise ValueError(f"access entry {arn}: username must be text, got {username!r}")
        return cls(principal_arn=arn, username=username, groups=tuple(groups))


Credentials = Callable[[str], "tuple[str, str | None] | None"]


class EksTokenAuthenticator:
    """Checks EKS bearer tokens for cluster `cluster_name` against the sandbox's STS at `sts_endpoint`
    (moto's server, `http://127.0.0.1:<port>`) and maps their AWS identity through `access_entries`
    (`AccessEntry`, or mappings `{principalArn, username, groups}`).

    `credentials(access_key_id) -> (secret_access_key, session_token or None) | None` finds the secret key
    STS issued (default `moto_credentials(sts_endpoint)`); `timeout` is the STS call's, in seconds. The
    steps and their sources are in this module's docstring. Thread-safe.
    """

    def __init__(
        self,
        sts_endpoint: str,
        access_entries: Iterable[AccessEntry | Mapping[str, Any]] = (),
        *,
        cluster_name: str,
        credentials: Credentials | None = None,
        timeout: float = 10.0,
    ) -> None:
        parts = urllib.parse.urlsplit(sts_endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"the STS endpoint must be an http(s) URL, got {sts_endpoint!r}")
        if not cluster_name:
            raise ValueError("the cluster name is required")
        self.sts_endpoint = f"{parts.scheme}://{parts.netloc}"
        self._sts_netloc = parts.netloc
        self.cluster_name = cluster_name
        self.timeout = timeout
        self._credentials = credentials or moto_credentials(self.sts_endpoint, timeout=timeout)
        self._lock = threading.Lock()
        self._entries: list[AccessEntry] = []
        for entry in access_entries:
            self.add_access_entry(entry)

    def add_access_entry(self, entry: AccessEntry | Mapping[str, Any]) -> None:
        """Add an access entry (CreateAccessEntry); one per principal, as EKS allows (ValueError else)."""
        parsed = entry if isinstance(entry, AccessEntry) else AccessEntry.from_mapping(entry)
        key = _principal_key(parsed.principal_arn)
        with self._lock:
            if any(_principal_key(known.principal_arn) == key for known in self._entries):
                raise ValueError(f"an access entry for {parsed.principal_arn} exists already")
            self._entries.append(parsed)

    def access_entries(self) -> list[AccessEntry]:
        """The access entries, in the order they were added (ListAccessEntries)."""
        with self._lock:
            return list(self._entries)

    def remove_access_entry(self, principal_arn: str) -> None:
        """Delete the access entry of `principal_arn` (DeleteAccessEntry); nothing when there is none."""
        key = _principal_key(principal_arn)
        with self._lock:
            self._entries = [e for e in self._entries if _principal_key(e.principal_arn) != key]

    def authenticate_token(self, token: str, *, now: float | None = None) -> UserInfo | None:
        """Return the user `token` maps to, or None (the API server's 401) when the token is not an EKS
        token, is refused (`verify`), or its identity has no access entry. `now`: epoch seconds."""
        try:
            identity = self.verify(token, now=now)
        except TokenRejected:
            return None
        return self.user_for(identity)

    def verify(self, token: str, *, now: float | None = None) -> AwsIdentity:
        """Return the AWS identity that signed `token` (steps 1-3 of the module docstring). Raises
        TokenRejected with the reason (aws-iam-authenticator's wording where it has one)."""
        url, query = self._parsed(token, time.time() if now is None else now)
        self._check_signature(url, query)
        return self._call_sts(url, query)

    def user_for(self, identity: AwsIdentity) -> UserInfo | None:
        """Map `identity` through the access entries (step 4), or None when none names it."""
        key = _principal_key(identity.canonical_arn)
        with self._lock:
            entry = next((e for e in self._entries if _principal_key(e.principal_arn) == key), None)
        if entry is None:
            return None
        username = _render(entry.username or _default_username(identity), identity)
        groups = [_render(group, identity) for group in entry.groups]
        if _AUTHENTICATED not in groups:
            groups.append(_AUTHENTICATED)  # the API server's authenticated-group adder
        extra = {
            "arn": (identity.arn,),
            "canonicalArn": (identity.canonical_arn,),
            "sessionName": (identity.session_name,),
            "accessKeyId": (identity.access_key_id,),
            "principalId": (identity.user_id,),
            "sigs.k8s.io/aws-iam-authenticator/principalId": (identity.user_id,),
        }
        return UserInfo(
            username=username,
            uid=f"aws-iam-authenticator:{identity.account_id}:{identity.user_id}",
            groups=tuple(groups),
            extra=extra,
        )

    # --- step 1: the token's form (token.go, Verify) ----------------------------------------------------

    def _parsed(self, token: str, now: float) -> tuple[urllib.parse.SplitResult, dict[str, str]]:
        if len(token) > _MAX_TOKEN_BYTES:
            raise _format("token is too large")
        if not token.startswith(_PREFIX):
            raise _format(f'token is missing expected "{_PREFIX}" prefix')
        encoded = token[len(_PREFIX) :]
        try:
            if "=" in encoded or not re.fullmatch(r"[A-Za-z0-9_-]*", encoded):
                raise ValueError("illegal base64 data")
            text = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
        except (binascii.Error, ValueError) as exc:
            raise _format(str(exc)) from None
        url = urllib.parse.urlsplit(text)
        sandbox = url.netloc == self._sts_netloc
        if url.scheme != "https" and not (sandbox and url.scheme == "http"):
            raise _format(f'unexpected scheme "{url.scheme}" in pre-signed URL')
        if not sandbox and not (_STS_HOST.match(url.netloc) or url.netloc == _GLOBAL_STS_HOST):
            raise _format(f'unexpected hostname "{url.netloc}" in pre-signed URL')
        if url.path != "/":
            raise _format("unexpected path in pre-signed URL")
        pairs = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
        query: dict[str, str] = {}
        seen: set[str] = set()
        for key, value in pairs:
            if key.lower() in seen:
                raise _format(f'duplicate query parameter found: "{key}"')
            seen.add(key.lower())
            if key.lower() not in _ALLOWED_PARAMETERS:
                raise _format(f'non-whitelisted query parameter "{key}"')
            query[key.lower()] = value
        if query.get("action") != "GetCallerIdentity":
            raise _format("unexpected action parameter in pre-signed URL")
        signed = [name.lower() for name in query.get("x-amz-signedheaders", "").split(";")]
        if _CLUSTER_ID_HEADER not in signed:
            raise _format(f"client did not sign the {_CLUSTER_ID_HEADER} header in the pre-signed URL")
        expires = query.get("x-amz-expires", "")
        if not re.fullmatch(r"[+-]?\d+", expires) or not 0 <= int(expires) <= _MAX_EXPIRES:
            raise _format(f"invalid X-Amz-Expires parameter in pre-signed URL: {expires}")
        date = query.get("x-amz-date", "")
        if not date:
            raise _format("X-Amz-Date parameter must be present in pre-signed URL")
        try:
            signed_at = _timestamp(date)
        except ValueError:
            raise _format(f"error parsing X-Amz-Date parameter {date} into format 20060102T150405Z") from None
        if now > signed_at + _URL_LIFETIME:
            raise _format(f"X-Amz-Date parameter is expired (15 minute expiration) {date}")
        return url, query

    # --- step 2: what STS checks and moto does not --------------------------------------------------------

    def _check_signature(self, url: urllib.parse.SplitResult, query: dict[str, str]) -> None:
        if query.get("x-amz-algorithm") != "AWS4-HMAC-SHA256":
            raise _sts("the request is not signed with AWS4-HMAC-SHA256")
        scope = query.get("x-amz-credential", "").split("/")
        if len(scope) != 5 or scope[3] != "sts" or scope[4] != "aws4_request":
            raise _sts(
                "IncompleteSignature: the credential scope is not <key>/<date>/<region>/sts/aws4_request"
            )
        access_key, day, region = scope[0], scope[1], scope[2]
        if query["x-amz-date"][:8] != day:
            raise _sts("SignatureDoesNotMatch: the credential's date is not the X-Amz-Date's")
        found = self._credentials(access_key)
        if found is None:
            raise _sts("InvalidClientTokenId: The security token included in the request is invalid.")
        secret, session_token = found
        if session_token is not None and query.get("x-amz-security-token") != session_token:
            raise _sts("InvalidClientTokenId: The security token included in the request is invalid.")
        headers = {"host": url.netloc, _CLUSTER_ID_HEADER: self.cluster_name}
        signed = query.get("x-amz-signedheaders", "")
        names = signed.split(";")
        if any(name not in headers for name in names) or names != sorted(names):
            raise _sts(f"SignatureDoesNotMatch: cannot sign the headers {signed!r} the authenticator sends")
        canonical_query = "&".join(
            f"{_quote(key)}={_quote(value)}"
            for key, value in sorted(
                (key, value)
                for key, value in urllib.parse.parse_qsl(url.query, keep_blank_values=True)
                if key != "X-Amz-Signature"
            )
        )
        canonical_request = "\n".join(
            [
                "GET",
                url.path,
                canonical_query,
                "".join(f"{name}:{headers[name].strip()}\n" for name in names),
                signed,
                hashlib.sha256(b"").hexdigest(),
            ]
        )
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256",
                query["x-amz-date"],
                f"{day}/{region}/sts/aws4_request",
                hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
            ]
        )
        key = f"AWS4{secret}".encode()
        for part in (day, region, "sts", "aws4_request"):
            key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
        expected = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, query.get("x-amz-signature", "")):
            raise _sts(
                "SignatureDoesNotMatch: The request signature we calculated does not match the signature "
                "you provided."
            )

    # --- step 3: the presigned call ----------------------------------------------------------------------

    def _call_sts(self, url: urllib.parse.SplitResult, query: dict[str, str]) -> AwsIdentity:
        import httpx2

        target = urllib.parse.urlunsplit(
            (*urllib.parse.urlsplit(self.sts_endpoint)[:2], url.path, url.query, "")
        )
        credential = query.get("x-amz-credential", "")
        headers = {
            _CLUSTER_ID_HEADER: self.cluster_name,
            "accept": "application/json",
            # moto reads the caller's access key (and so the service) from this header only.
            "authorization": (
                f"AWS4-HMAC-SHA256 Credential={credential}, "
                f"SignedHeaders={query.get('x-amz-signedheaders', '')}, "
                f"Signature={query.get('x-amz-signature', '')}"
            ),
        }
        try:
            with httpx2.Client(timeout=self.timeout, trust_env=False, follow_redirects=False) as http:
                response = http.get(target, headers=headers)
        except httpx2.HTTPError as exc:
            raise _sts(f"error during GET: {exc} on {self.sts_endpoint}") from None
        body = response.text
        if response.status_code != 200:
            raise _sts(f"error from AWS (expected 200, got {response.status_code}). Body: {body[:500]}")
        arn, account, user_id = _caller_identity(body)
        try:
            kind, canonical = canonical_arn(arn)
        except ValueError as exc:
            raise _sts(str(exc)) from None
        session = ""
        if kind in ("assumed-role", "role"):
            parts = user_id.split(":")
            if len(parts) != 2:
                raise _sts(f'malformed UserID "{user_id}"')
            user_id, session = parts
        return AwsIdentity(
            arn=arn,
            canonical_arn=canonical,
            account_id=account,
            user_id=user_id,
            session_name=session,
            access_key_id=credential.split("/")[0],
            sts_endpoint=url.netloc,
        )


def canonical_arn(arn: str) -> tuple[str, str]:
    """Return `(kind, canonical ARN)` of an identity ARN, as aws-iam-authenticator's pkg/arn/arn.go
    `Canonicalize`: kind is "assumed-role" (`arn:P:sts::A:assumed-role/R/S` → `arn:P:iam::A:role/R`),
    "federated-user", "role", "user" or "root" (those ARNs unchanged). Raises ValueError with its message
    for anything else."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        raise ValueError(f"arn '{arn}' is invalid")
    _, partition, service, _, account, resource = parts
    if partition not in _PARTITIONS:
        raise ValueError(f"arn '{arn}' does not have a recognized partition")
    pieces = resource.split("/")
    if service == "sts":
        if pieces[0] == "federated-user":
            return "federated-user", arn
        if pieces[0] == "assumed-role":
            if len(pieces) < 3:
                raise ValueError(f"assumed-role arn '{arn}' does not have a role")
            role = "/".join(pieces[1:-1])
            return "assumed-role", f"arn:{partition}:iam::{account}:role/{role}"
        raise ValueError(f"unrecognized resource {resource} for service sts")
    if service == "iam":
        if pieces[0] in ("role", "user", "root"):
            return pieces[0], arn
        raise ValueError(f"unrecognized resource {resource} for service iam")
    raise ValueError(f"service {service} in arn {arn} is not a valid service for identities")


def moto_credentials(sts_endpoint: str, *, timeout: float = 10.0) -> Credentials:
    """Return a `credentials` lookup over moto's server at `sts_endpoint`: the secret key (and session token)
    moto issued with an access key id (AssumeRole's, an IAM user's CreateAccessKey), read from moto's
    `/moto-api/data.json`; None for a key moto never issued. Found keys are remembered (they never change)."""
    known: dict[str, tuple[str, str | None]] = {}
    lock = threading.Lock()

    def lookup(access_key_id: str) -> tuple[str, str | None] | None:
        with lock:
            if access_key_id in known:
                return known[access_key_id]
        import httpx2

        try:
            with httpx2.Client(timeout=timeout, trust_env=False) as http:
                response = http.get(f"{sts_endpoint.rstrip('/')}/moto-api/data.json")
            data = response.json() if response.status_code == 200 else {}
        except (httpx2.HTTPError, ValueError):
            return None
        for record in _records(data):
            if record.get("access_key_id") == access_key_id and isinstance(
                record.get("secret_access_key"), str
            ):
                token = record.get("session_token")
                found = (record["secret_access_key"], token if isinstance(token, str) else None)
                with lock:
                    known[access_key_id] = found
                return found
        return None

    return lookup


def _records(value: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(value, Mapping):
        if "access_key_id" in value:
            yield value
        for item in value.values():
            yield from _records(item)
    elif isinstance(value, list):
        for item in value:
            yield from _records(item)


def _caller_identity(body: str) -> tuple[str, str, str]:
    """(Arn, Account, UserId) of a GetCallerIdentity answer: JSON as STS sends it to `Accept:
    application/json` (token.go's getCallerIdentityWrapper), or the XML of the query protocol (moto's)."""
    text = body.strip()
    if text.startswith("{"):
        try:
            result = json.loads(text)["GetCallerIdentityResponse"]["GetCallerIdentityResult"]
            return str(result["Arn"]), str(result["Account"]), str(result["UserId"])
        except (ValueError, KeyError, TypeError) as exc:
            raise _sts(f"cannot read the GetCallerIdentity answer: {exc}") from None
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise _sts(f"cannot read the GetCallerIdentity answer: {exc}") from None
    found = {
        element.tag.rsplit("}", 1)[-1]: (element.text or "").strip()
        for element in root.iter()
        if element.tag.rsplit("}", 1)[-1] in ("Arn", "Account", "UserId")
    }
    if "Arn" not in found:
        raise _sts("the GetCallerIdentity answer has no Arn")
    return found["Arn"], found.get("Account", ""), found.get("UserId", "")


def _default_username(identity: AwsIdentity) -> str:
    """EKS's username for an access entry without one: an IAM user's ARN; for a role, its STS session ARN
    with the role's path removed, `arn:aws:sts::A:assumed-role/R/{{SessionName}}`."""
    partition = identity.canonical_arn.split(":")[1]
    if identity.canonical_arn.split(":", 5)[5].startswith("role/"):
        role = identity.canonical_arn.rsplit("/", 1)[-1]
        return f"arn:{partition}:sts::{identity.account_id}:assumed-role/{role}/{{{{SessionName}}}}"
    return identity.canonical_arn


def _render(template: str, identity: AwsIdentity) -> str:
    # pkg/server/server.go renderTemplate
    text = template.replace("{{AccountID}}", identity.account_id)
    text = text.replace("{{SessionName}}", identity.session_name.replace("@", "-"))
    text = text.replace("{{SessionNameRaw}}", identity.session_name)
    return text.replace("{{AccessKeyID}}", identity.access_key_id)


def _principal_key(arn: str) -> str:
    """A principal ARN as the mapping compares it: lower case, a role's path removed (pkg/arn/arn.go
    StripPath; an assumed role's canonical ARN has no path)."""
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[5].startswith("role/"):
        parts[5] = "role/" + parts[5].rsplit("/", 1)[-1]
    return ":".join(parts).lower()


def _timestamp(date: str) -> float:
    return float(calendar.timegm(time.strptime(date, _DATE_FORMAT)))


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe=_UNRESERVED)


def _format(message: str) -> TokenRejected:
    return TokenRejected(f"input token was not properly formatted: {message}")


def _sts(message: str) -> TokenRejected:
    return TokenRejected(f"sts getCallerIdentity failed: {message}")
