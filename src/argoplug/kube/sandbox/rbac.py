"""Who calls the Kubernetes API sandbox and what they may do: ServiceAccount tokens (`Authenticator`), RBAC
(`Authorizer`) and a request's RBAC attributes (`request_attributes`), as the real API server has them.

The sandbox's HTTP app calls it on every request, and for TokenReview, TokenRequest and
(Self)SubjectAccessReview. Pure Python, no HTTP. Each part cites the Kubernetes source it follows.

Not reproduced: tokens are HS256 JWTs signed with a per-Authenticator secret (real ones are RS256, which only
the API server and OIDC discovery clients verify; the sandbox serves no /openid/v1/jwks); tokens bound to a
Pod or Secret; legacy Secret-based tokens; ClusterRole aggregation (an aggregated ClusterRole grants only its
own `rules`); the bootstrap roles other than `cluster-admin`, `system:discovery`, `system:basic-user` and
`system:public-info-viewer` (no `admin` / `edit` / `view`, no `system:node`, no controller roles); the Node,
ABAC and webhook authorizers; SelfSubjectRulesReview; the `Deny` decision (RBAC never denies); a TokenReview
whose token the bearer parser reads as empty (the real one may answer anonymous) is unauthenticated here; a
SubjectAccessReview whose resourceAttributes name no resource is judged as a non-resource request for "".
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from argoplug.kube.request_info import request_info

__all__ = [
    "ANONYMOUS",
    "DEFAULT_ISSUER",
    "Authenticator",
    "Authorizer",
    "Decision",
    "RequestAttributes",
    "RequestRejected",
    "UserInfo",
    "request_attributes",
]

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
# staging/src/k8s.io/apiserver/pkg/authentication/user/user.go
_AUTHENTICATED = "system:authenticated"
_UNAUTHENTICATED = "system:unauthenticated"
_MASTERS = "system:masters"
_SA_PREFIX = "system:serviceaccount:"
_SA_GROUP = "system:serviceaccounts"
# staging/src/k8s.io/apiserver/pkg/authentication/serviceaccount/util.go (CredentialIDKey)
_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"
# go-jose's jwt.DefaultLeeway: exp and nbf are checked with a minute's grace.
_LEEWAY = 60
_RBAC_GROUP = "rbac.authorization.k8s.io"
# The go-jose error for a signature that does not verify (gopkg.in/go-jose/go-jose.v2, shared.go).
_BAD_SIGNATURE = "go-jose/go-jose: error in cryptographic primitive"
_INVALID_TOKEN = "invalid bearer token"


@dataclasses.dataclass(frozen=True)
class UserInfo:
    """An authenticated (or anonymous) user, as `user.Info` holds it."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


ANONYMOUS = UserInfo(username="system:anonymous", groups=(_UNAUTHENTICATED,))


@dataclasses.dataclass(frozen=True)
class RequestAttributes:
    """What one request asks, as RBAC reads it (`authorizer.Attributes`): a resource request when `resource`
    is set, else a non-resource request for `path`. `api_group` "" is the core group."""

    user: UserInfo
    verb: str
    api_group: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""


@dataclasses.dataclass(frozen=True)
class Decision:
    """Allowed or not, with the authorizer's reason ("" when it gives none)."""

    allowed: bool
    reason: str = ""


class RequestRejected(ValueError):
    """A review or token request the API server refuses before deciding: answer a Status with `code` and
    `reason` (`BadRequest` 400, `Invalid` 422) and `str(exc)` as its message."""

    def __init__(self, message: str, *, code: int, reason: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


def _invalid(qualified_kind: str, name: str, errors: Sequence[str]) -> RequestRejected:
    # apierrors.NewInvalid: `<Kind>.<group> "<name>" is invalid: <errs as an aggregate>`
    return RequestRejected(
        f"{qualified_kind} {_go_quote(name)} is invalid: {_aggregate(errors)}", code=422, reason="Invalid"
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if "=" in text:
        raise ValueError("padded")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _rfc3339(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class _Authenticated:
    user: UserInfo
    audiences: tuple[str, ...]


class Authenticator:
    """Issue and check ServiceAccount tokens and static tokens, as the API server's authenticators do.

    Tokens are JWTs with the claims of a projected token (pkg/serviceaccount/claims.go): `iss`, `sub`, `aud`,
    `exp`, `iat`, `nbf`, `jti` and `kubernetes.io` {namespace, serviceaccount {name, uid}}. They are signed
    with HMAC-SHA256 from the stdlib (`hmac`) under a secret made per Authenticator: the sandbox both signs
    and verifies, so a symmetric key does the real RS256's job without PyJWT or a key pair.
    """

    def __init__(self, *, issuer: str = DEFAULT_ISSUER) -> None:
        self.issuer = issuer
        self._key = secrets.token_bytes(32)
        # keyIDFromPublicKey: a non-reversible id of the key (here of the secret).
        self._kid = _b64(hashlib.sha256(b"kid:" + self._key).digest())
        self._static: dict[str, UserInfo] = {}
        self._webhooks: list[Callable[[str], UserInfo | None]] = []
        # The ServiceAccounts that exist, by (namespace, name): their uid (validator.Validate looks them up).
        self._accounts: dict[tuple[str, str], str] = {}

    def add_token(self, token: str, user: UserInfo) -> None:
        """Accept `token` as `user` (a static token file's line: the sandbox admin)."""
        self._static[token] = user

    def add_token_webhook(self, authenticate: Callable[[str], UserInfo | None]) -> None:
        """Ask `authenticate(token)` of a bearer token no other authenticator knows (a webhook token
        authenticator, as EKS runs aws-iam-authenticator: `--authentication-token-webhook-config-file`);
        it returns the user, or None for a token it refuses."""
        self._webhooks.append(authenticate)

    def issue_service_account_token(
        self,
        *,
        namespace: str,
        name: str,
        uid: str,
        audiences: Sequence[str] = (),
        expiration_seconds: int = 3600,
        now: float | None = None,
    ) -> tuple[str, str]:
        """Return a token for ServiceAccount `namespace/name` and its expirationTimestamp (RFC 3339, `Z`).

        As a TokenRequest: `audiences` default to the issuer (the API server's --api-audiences); the token
        lives `expiration_seconds` (600 to 2^32, else `RequestRejected` 422 as validation.go words it). The
        account is recorded with `uid`: tokens of an earlier account of that name (another uid) stop working.
        """
        errors = []
        if expiration_seconds < 600:
            errors.append(
                f"spec.expirationSeconds: Invalid value: {expiration_seconds}: "
                "may not specify a duration less than 10 minutes"
            )
        elif expiration_seconds > 1 << 32:
            errors.append(
                f"spec.expirationSeconds: Invalid value: {expiration_seconds}: "
                "may not specify a duration larger than 2^32 seconds"
            )
        if errors:
            raise _invalid("TokenRequest.authentication.k8s.io", name, errors)
        issued = int(time.time() if now is None else now)
        expires = issued + expiration_seconds
        claims = {
            "aud": list(audiences) or [self.issuer],
            "exp": expires,
            "iat": issued,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
            "nbf": issued,
            "sub": f"{_SA_PREFIX}{namespace}:{name}",
        }
        self._accounts[(namespace, name)] = uid
        return self._sign(claims), _rfc3339(expires)

    def revoke_service_account(self, namespace: str, name: str) -> None:
        """Forget ServiceAccount `namespace/name` (deleted): its tokens no longer authenticate."""
        self._accounts.pop((namespace, name), None)

    def authenticate(self, authorization_header: str | None, *, now: float | None = None) -> UserInfo | None:
        """Return who sent `authorization_header`, `ANONYMOUS` when it carries no bearer token, or None when
        the token is expired, revoked, forged or unknown (the app answers 401 Unauthorized).

        As bearertoken.go: a header that is not `Bearer <token>` (another scheme, an empty token) is no
        credential at all, so the request is anonymous. Authenticated users get `system:authenticated`.
        """
        token = _bearer_token(authorization_header)
        if token is None:
            return ANONYMOUS
        result, _ = self._authenticate_token(token, (self.issuer,), now)
        return result.user if result else None

    def token_review(self, spec: Mapping[str, Any], *, now: float | None = None) -> dict[str, Any]:
        """Return the `.status` of a TokenReview of `spec`, as
        pkg/registry/authentication/tokenreview/storage.go makes it.

        `spec.audiences` default to the issuer; the token's audiences must intersect them and the status
        carries the intersection. A refused token gives `{"user": {}, "error": "[invalid bearer token,
        <why>]"}` (`authenticated` false is omitted on the wire, as the real one omits it). An empty token
        raises `RequestRejected` (400).
        """
        token = spec.get("token") or ""
        if not token:
            raise RequestRejected(
                "token is required for TokenReview in authentication", code=400, reason="BadRequest"
            )
        audiences = tuple(spec.get("audiences") or ()) or (self.issuer,)
        parsed = _bearer_token(f"Bearer {token}")
        if parsed is None:
            return {"user": {}, "error": _INVALID_TOKEN}
        result, error = self._authenticate_token(parsed, audiences, now)
        if result is None:
            return {"user": {}, "error": error}
        user: dict[str, Any] = {"username": result.user.username}
        if result.user.uid:
            user["uid"] = result.user.uid
        user["groups"] = list(result.user.groups)
        if result.user.extra:
            user["extra"] = {key: list(values) for key, values in result.user.extra.items()}
        return {"authenticated": True, "user": user, "audiences": list(result.audiences)}

    def _sign(self, claims: Mapping[str, Any]) -> str:
        header = _b64(json.dumps({"alg": "HS256", "kid": self._kid}, separators=(",", ":")).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"

    def _authenticate_token(
        self, token: str, audiences: tuple[str, ...], now: float | None
    ) -> tuple[_Authenticated | None, str]:
        """The token authenticators in the API server's order: static tokens, ServiceAccount JWTs, then
        the webhooks (pkg/kubeapiserver/authenticator/config.go `New`).

        The error is as the request authenticator's union aggregates it: `invalid bearer token` alone when
        no authenticator knew the token, `[invalid bearer token, <why>]` when the JWT one refused it.
        """
        static = self._static.get(token)
        if static is not None:
            # WrapAudienceAgnosticToken: a static token serves the API server's own audiences only.
            shared = tuple(audience for audience in audiences if audience == self.issuer)
            if not shared:
                return None, _INVALID_TOKEN
            return _Authenticated(_with_authenticated(static), shared), ""
        try:
            result = self._service_account(token, audiences, time.time() if now is None else now)
        except _TokenRefused as refused:
            return None, _aggregate([_INVALID_TOKEN, str(refused)])
        if result is None:
            for webhook in self._webhooks:
                user = webhook(token)
                if user is not None:
                    # A webhook's answer serves the API server's own audiences (WrapAudienceAgnosticToken).
                    shared = tuple(audience for audience in audiences if audience == self.issuer)
                    if shared:
                        return _Authenticated(_with_authenticated(user), shared), ""
            return None, _INVALID_TOKEN
        return result, ""

    def _service_account(self, token: str, audiences: tuple[str, ...], now: float) -> _Authenticated | None:
        """pkg/serviceaccount/jwt.go (jwtTokenAuthenticator.AuthenticateToken), then claims.go (Validate).

        None when the token is not ours to judge (not a JWT, another issuer); `_TokenRefused` with the
        real message when it is ours and bad.
        """
        if token.strip().startswith("{"):
            return None
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = json.loads(_unb64(parts[0]))
            claims = json.loads(_unb64(parts[1]))
            signature = _unb64(parts[2])
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        if not isinstance(claims, dict) or claims.get("iss") != self.issuer or not isinstance(header, dict):
            return None
        kid = header.get("kid") or ""
        if kid and kid != self._kid:
            raise _TokenRefused("invalid signature, no keys found")
        expected = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        if header.get("alg") != "HS256" or not hmac.compare_digest(expected, signature):
            raise _TokenRefused(_BAD_SIGNATURE)
        token_audiences = _audiences(claims.get("aud")) or (self.issuer,)
        shared = tuple(audience for audience in audiences if audience in token_audiences)
        if not shared:
            raise _TokenRefused(
                f"token audiences {_go_quote_list(token_audiences)} is invalid for the target audiences "
                f"{_go_quote_list(audiences)}"
            )
        # go-jose's Claims.ValidateWithLeeway: nbf first, then exp.
        if isinstance(claims.get("nbf"), int | float) and now + _LEEWAY < claims["nbf"]:
            raise _TokenRefused("service account token is not valid yet")
        if isinstance(claims.get("exp"), int | float) and now - _LEEWAY > claims["exp"]:
            raise _TokenRefused("service account token has expired")
        private = claims.get("kubernetes.io") or {}
        namespace = str(private.get("namespace", ""))
        account = private.get("serviceaccount") or {}
        name, uid = str(account.get("name", "")), str(account.get("uid", ""))
        current = self._accounts.get((namespace, name))
        if current is None:
            # The getter's client Get of the deleted account answers NotFound.
            raise _TokenRefused(f"serviceaccounts {_go_quote(name)} not found")
        if current != uid:
            raise _TokenRefused(f"service account UID ({current}) does not match claim ({uid})")
        extra: dict[str, tuple[str, ...]] = {}
        if claims.get("jti"):
            extra[_CREDENTIAL_ID] = (f"JTI={claims['jti']}",)
        user = UserInfo(
            username=f"{_SA_PREFIX}{namespace}:{name}",
            uid=uid,
            groups=(_SA_GROUP, f"{_SA_GROUP}:{namespace}", _AUTHENTICATED),
            extra=extra,
        )
        return _Authenticated(user, shared)


class _TokenRefused(Exception):
    """A token this authenticator owns but refuses; the message is the API server's."""


def _bearer_token(header: str | None) -> str | None:
    # staging/src/k8s.io/apiserver/pkg/authentication/request/bearertoken/bearertoken.go
    auth = (header or "").strip()
    if not auth:
        return None
    parts = auth.split(" ")
    if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
        return None
    return parts[1]


def _with_authenticated(user: UserInfo) -> UserInfo:
    # staging/src/k8s.io/apiserver/pkg/authentication/group/authenticated_group_adder.go
    if _AUTHENTICATED in user.groups or _UNAUTHENTICATED in user.groups:
        return user
    return dataclasses.replace(user, groups=(*user.groups, _AUTHENTICATED))


def _audiences(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(item) for item in value)
    return ()


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _go_quote(text: str) -> str:
    """Go's %q of a string (strconv.Quote): JSON-like escapes, printable Unicode kept."""
    out = []
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable() or char == " ":
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _go_quote_list(items: Iterable[str]) -> str:
    """Go's %q of a []string: `["a" "b"]`."""
    return "[" + " ".join(_go_quote(item) for item in items) + "]"


def _aggregate(messages: Sequence[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): one message alone, several deduplicated in brackets."""
    unique = list(dict.fromkeys(messages))
    if len(unique) == 1:
        return unique[0]
    return "[" + ", ".join(unique) + "]"


_CLUSTER_ADMIN_RULES: tuple[Mapping[str, Any], ...] = (
    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
    {"nonResourceURLs": ["*"], "verbs": ["*"]},
)
# The bootstrap ClusterRoles and ClusterRoleBindings of a fresh cluster that tests rely on
# (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go), granted as if stored. A stored ClusterRole of
# the same name replaces the built-in one.
_BUILTIN_CLUSTER_ROLES: dict[str, tuple[Mapping[str, Any], ...]] = {
    "cluster-admin": _CLUSTER_ADMIN_RULES,
    "system:discovery": (
        {
            "nonResourceURLs": [
                "/livez",
                "/readyz",
                "/healthz",
                "/version",
                "/version/",
                "/openapi",
                "/openapi/*",
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
            ],
            "verbs": ["get"],
        },
    ),
    "system:basic-user": (
        {
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
            "verbs": ["create"],
        },
        {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
    ),
    "system:public-info-viewer": (
        {"nonResourceURLs": ["/livez", "/readyz", "/healthz", "/version", "/version/"], "verbs": ["get"]},
    ),
}


def _builtin_binding(name: str, *groups: str) -> Mapping[str, Any]:
    return {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": _RBAC_GROUP, "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": _RBAC_GROUP, "kind": "Group", "name": group} for group in groups],
    }


_BUILTIN_CLUSTER_ROLE_BINDINGS = (
    _builtin_binding("cluster-admin", _MASTERS),
    _builtin_binding("system:discovery", _AUTHENTICATED),
    _builtin_binding("system:basic-user", _AUTHENTICATED),
    _builtin_binding("system:public-info-viewer", _AUTHENTICATED, _UNAUTHENTICATED),
)


class _RoleNotFound(Exception):
    pass


class Authorizer:
    """Decide requests as the API server's authorizer chain does: the `system:masters` group first
    (authorizerfactory's privilegedGroupAuthorizer), then RBAC (plugin/pkg/auth/authorizer/rbac/rbac.go over
    pkg/registry/rbac/validation/rule.go).

    `objects(kind, namespace)` gives the stored Role / ClusterRole / RoleBinding / ClusterRoleBinding dicts
    (namespace None for the cluster-scoped kinds), read afresh on each decision. Beside them, the bootstrap
    ClusterRoles `cluster-admin`, `system:discovery`, `system:basic-user` and `system:public-info-viewer` and
    their ClusterRoleBindings are built in: any authenticated user may GET `/api`, `/apis`, `/version`,
    `/healthz`, ... and create SelfSubjectAccessReviews; anyone, even anonymous, may GET `/healthz`,
    `/version`, `/livez`, `/readyz`.
    """

    def __init__(self, objects: Callable[[str, str | None], Iterable[Mapping[str, Any]]]) -> None:
        self._objects = objects

    def authorize(self, attributes: RequestAttributes) -> Decision:
        """Return whether `attributes` is allowed, with RBAC's reason: `RBAC: allowed by ClusterRoleBinding
        "x" of ClusterRole "y" to User "z"` when allowed, `RBAC: <errors>` (a binding's missing role) or ""
        when not. `system:masters` is allowed with no reason."""
        if _MASTERS in attributes.user.groups:
            return Decision(allowed=True)
        errors: list[str] = []
        for source, rules in self._bindings_for(attributes.user, attributes.namespace, errors):
            if any(_rule_allows(attributes, rule) for rule in rules):
                return Decision(allowed=True, reason=f"RBAC: allowed by {source}")
        return Decision(allowed=False, reason=f"RBAC: {_aggregate(errors)}" if errors else "")

    def forbidden_message(self, attributes: RequestAttributes) -> str:
        """Return the message of the 403 the API server answers for `attributes`, with RBAC's reason appended
        when there is one (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go,
        then apierrors.NewForbidden), e.g. `secrets "x" is forbidden: User "u" cannot get resource "secrets"
        in API group "" in the namespace "ns"`."""
        user = _go_quote(attributes.user.username)
        if not attributes.resource:
            message = f"User {user} cannot {attributes.verb} path {_go_quote(attributes.path)}"
        else:
            resource = attributes.resource
            if attributes.subresource:
                resource = f"{resource}/{attributes.subresource}"
            where = (
                f"in the namespace {_go_quote(attributes.namespace)}"
                if attributes.namespace
                else "at the cluster scope"
            )
            message = (
                f"User {user} cannot {attributes.verb} resource {_go_quote(resource)} "
                f"in API group {_go_quote(attributes.api_group)} {where}"
            )
        # Avoid emitting errors that look like valid HTML, as the API server's sanitizer does.
        message = message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        reason = self.authorize(attributes).reason
        if reason:
            message = f"{message}: {reason}"
        if not attributes.resource:
            return f"forbidden: {message}"
        qualified = attributes.resource
        if attributes.api_group:
            qualified = f"{qualified}.{attributes.api_group}"
        if attributes.name:
            return f"{qualified} {_go_quote(attributes.name)} is forbidden: {message}"
        return f"{qualified} is forbidden: {message}"

    def access_review_status(self, spec: Mapping[str, Any], user: UserInfo | None = None) -> dict[str, Any]:
        """Return the `.status` of a SubjectAccessReview of `spec` (the user it names: `user`, `groups`,
        `uid`, `extra`, taken as given), or of a SelfSubjectAccessReview when `user` (the caller) is given.

        `{"allowed": bool}` with `"reason"` when there is one (omitted when empty, as on the wire); `denied`
        never appears (RBAC does not deny). A spec without exactly one of resourceAttributes /
        nonResourceAttributes, or a SubjectAccessReview naming neither user nor groups, raises
        `RequestRejected` (422) as pkg/apis/authorization/validation/validation.go words it.
        """
        resource = spec.get("resourceAttributes")
        non_resource = spec.get("nonResourceAttributes")
        errors = []
        if resource is not None and non_resource is not None:
            errors.append(
                f"spec.nonResourceAttributes: Invalid value: {_go_value(non_resource)}: "
                "cannot be specified in combination with resourceAttributes"
            )
        if resource is None and non_resource is None:
            errors.append(
                'spec.resourceAttributes: Invalid value: "null": '
                "exactly one of nonResourceAttributes or resourceAttributes must be specified"
            )
        if user is None and not spec.get("user") and not spec.get("groups"):
            errors.append(
                f"spec.user: Invalid value: {_go_quote(spec.get('user') or '')}: "
                "at least one of user or group must be specified"
            )
        if errors:
            kind = "SubjectAccessReview" if user is None else "SelfSubjectAccessReview"
            raise _invalid(f"{kind}.authorization.k8s.io", "", errors)
        if user is None:
            extra = spec.get("extra") or {}
            user = UserInfo(
                username=spec.get("user") or "",
                uid=spec.get("uid") or "",
                groups=tuple(spec.get("groups") or ()),
                extra={key: tuple(values) for key, values in extra.items()},
            )
        if resource is not None:
            attributes = RequestAttributes(
                user=user,
                verb=resource.get("verb") or "",
                api_group=resource.get("group") or "",
                resource=resource.get("resource") or "",
                subresource=resource.get("subresource") or "",
                namespace=resource.get("namespace") or "",
                name=resource.get("name") or "",
            )
        else:
            non_resource = non_resource or {}
            attributes = RequestAttributes(
                user=user,
                verb=non_resource.get("verb") or "",
                api_group="",
                resource="",
                path=non_resource.get("path") or "",
            )
        decision = self.authorize(attributes)
        status: dict[str, Any] = {"allowed": decision.allowed}
        if decision.reason:
            status["reason"] = decision.reason
        return status

    def _bindings_for(
        self, user: UserInfo, namespace: str, errors: list[str]
    ) -> Iterable[tuple[str, Sequence[Mapping[str, Any]]]]:
        """DefaultRuleResolver.VisitRulesFor: the ClusterRoleBindings, then the RoleBindings of `namespace`,
        each that names `user` with the rules of its role and a description of it; a missing role goes to
        `errors` instead."""
        cluster_bindings = [*self._objects("ClusterRoleBinding", None), *_BUILTIN_CLUSTER_ROLE_BINDINGS]
        for binding in cluster_bindings:
            subject = _subject_for(user, binding.get("subjects") or (), "")
            if subject is None:
                continue
            ref = binding.get("roleRef") or {}
            try:
                rules = self._role_rules(ref, "")
            except _RoleNotFound as missing:
                errors.append(str(missing))
                continue
            name = (binding.get("metadata") or {}).get("name", "")
            yield (
                f"ClusterRoleBinding {_go_quote(name)} of {ref.get('kind', '')} "
                f"{_go_quote(ref.get('name', ''))} to {_describe_subject(subject, '')}",
                rules,
            )
        if not namespace:
            return
        for binding in self._objects("RoleBinding", namespace):
            subject = _subject_for(user, binding.get("subjects") or (), namespace)
            if subject is None:
                continue
            ref = binding.get("roleRef") or {}
            try:
                rules = self._role_rules(ref, namespace)
            except _RoleNotFound as missing:
                errors.append(str(missing))
                continue
            name = (binding.get("metadata") or {}).get("name", "")
            yield (
                f"RoleBinding {_go_quote(name + '/' + namespace)} of {ref.get('kind', '')} "
                f"{_go_quote(ref.get('name', ''))} to {_describe_subject(subject, namespace)}",
                rules,
            )

    def _role_rules(self, ref: Mapping[str, Any], namespace: str) -> Sequence[Mapping[str, Any]]:
        # GetRoleReferenceRules; the listers' NotFound errors name the singular resource.
        kind, name = ref.get("kind", ""), ref.get("name", "")
        if kind == "Role":
            for role in self._objects("Role", namespace) if namespace else ():
                if (role.get("metadata") or {}).get("name") == name:
                    return role.get("rules") or ()
            raise _RoleNotFound(f"role.{_RBAC_GROUP} {_go_quote(name)} not found")
        if kind == "ClusterRole":
            for role in self._objects("ClusterRole", None):
                if (role.get("metadata") or {}).get("name") == name:
                    return role.get("rules") or ()
            if name in _BUILTIN_CLUSTER_ROLES:
                return _BUILTIN_CLUSTER_ROLES[name]
            raise _RoleNotFound(f"clusterrole.{_RBAC_GROUP} {_go_quote(name)} not found")
        raise _RoleNotFound(f"unsupported role reference kind: {_go_quote(kind)}")


def _subject_for(
    user: UserInfo, subjects: Iterable[Mapping[str, Any]], namespace: str
) -> Mapping[str, Any] | None:
    """rule.go appliesTo: the first subject naming `user`; a ServiceAccount's namespace defaults to the
    binding's."""
    for subject in subjects:
        kind, name = subject.get("kind"), subject.get("name", "")
        if kind == "User" and user.username == name:
            return subject
        if kind == "Group" and name in user.groups:
            return subject
        if kind == "ServiceAccount":
            sa_namespace = subject.get("namespace") or namespace
            if sa_namespace and user.username == f"{_SA_PREFIX}{sa_namespace}:{name}":
                return subject
    return None


def _describe_subject(subject: Mapping[str, Any], binding_namespace: str) -> str:
    kind, name = subject.get("kind", ""), subject.get("name", "")
    if kind == "ServiceAccount":
        return f"{kind} {_go_quote(name + '/' + (subject.get('namespace') or binding_namespace))}"
    return f"{kind} {_go_quote(name)}"


def _rule_allows(attributes: RequestAttributes, rule: Mapping[str, Any]) -> bool:
    """rbac.go RuleAllows with the matchers of pkg/apis/rbac/v1/evaluation_helpers.go."""
    verbs = rule.get("verbs") or ()
    if "*" not in verbs and attributes.verb not in verbs:
        return False
    if not attributes.resource:
        for url in rule.get("nonResourceURLs") or ():
            if url in ("*", attributes.path):
                return True
            if url.endswith("*") and attributes.path.startswith(url.rstrip("*")):
                return True
        return False
    groups = rule.get("apiGroups") or ()
    if "*" not in groups and attributes.api_group not in groups:
        return False
    combined = attributes.resource
    if attributes.subresource:
        combined = f"{combined}/{attributes.subresource}"
    if not _resource_matches(rule.get("resources") or (), combined, attributes.subresource):
        return False
    names = rule.get("resourceNames") or ()
    # A create has no name yet, so a resourceNames-limited rule never allows it.
    return not names or attributes.name in names


def _resource_matches(resources: Iterable[str], combined: str, subresource: str) -> bool:
    for resource in resources:
        if resource in ("*", combined):
            return True
        if subresource and resource == f"*/{subresource}":
            return True
    return False


def _go_value(value: Any) -> str:
    # field.Invalid prints a struct value as JSON, quoted.
    return _go_quote(json.dumps(value, separators=(",", ":")))


def request_attributes(method: str, path: str, query: Mapping[str, str], user: UserInfo) -> RequestAttributes:
    """Return what `method` on `path` asks, for `user`, as `argoplug.kube.request_info.request_info` reads
    it (RequestInfoFactory.NewRequestInfo, staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go).

    Raises ValueError for `/api/v1/watch` (or `/proxy`) with nothing after it, as the API server answers 500.
    """
    info = request_info(method, path, query)
    return RequestAttributes(
        user=user,
        verb=info.verb,
        api_group=info.api_group,
        resource=info.resource,
        subresource=info.subresource,
        namespace=info.namespace,
        name=info.name,
        path=info.path,
    )
