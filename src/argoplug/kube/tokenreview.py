"""The central server's check of who calls it: a thin plugin's projected ServiceAccount token, judged by a
Kubernetes TokenReview (`TokenReviewer`), and an ASGI middleware that puts it in front of any server
(`TokenReviewMiddleware`).

KFP's standalone driver runs thin `driver-plugin` sidecars (ServiceAccount `driver-plugin-executor-plugin`
in each profile namespace) that forward to one central driver; `argoplug serve --upstream-auth tokenreview`
and any ASGI driver server accept only those accounts with it. lightkube is imported on the first review.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import dataclasses
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from argoplug.kube.access import REQUEST_TIMEOUT, ClusterAccess, KubeSetupError
from argoplug.kube.errors import error_for
from argoplug.protocol import EXECUTE_PATH

if TYPE_CHECKING:
    import lightkube

__all__ = [
    "AUTH_DELEGATOR",
    "CACHE_SECONDS",
    "CALLER",
    "DEFAULT_SERVICE_ACCOUNT",
    "CallerRefused",
    "KubeSetupError",
    "TokenReviewMiddleware",
    "TokenReviewer",
    "bearer_token",
]

log = logging.getLogger("argoplug.kube.tokenreview")

# The ServiceAccount of KFP's driver-plugin sidecars: Argo's `<plugin name>-executor-plugin` (Argo's
# docs/executor_plugins.md; kubeflow/pipelines proposals/separate-standalone-driver).
DEFAULT_SERVICE_ACCOUNT = "driver-plugin-executor-plugin"
# The bootstrap ClusterRole that may create TokenReviews and SubjectAccessReviews (Kubernetes docs,
# "Using RBAC Authorization", "Other component roles": system:auth-delegator, "delegated authentication").
AUTH_DELEGATOR = "system:auth-delegator"
# Seconds an accepted token is trusted without asking again; the API server's own webhook token
# authenticator caches for 2 minutes by default (kube-apiserver --authentication-token-webhook-cache-ttl).
CACHE_SECONDS = 60.0
CACHE_SIZE = 10_000  # tokens remembered at most (~200 bytes each): the oldest are forgotten first
# The `scope["state"]` key of the caller's username the middleware sets (Starlette: `request.state.caller`).
CALLER = "caller"
_SA_PREFIX = "system:serviceaccount:"


class CallerRefused(Exception):
    """The caller may not call: answer `status` (401 no valid token, 403 an identity not allowed, 503 the
    check itself could not be made) with `message`, which never contains the token."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bearer_token(header: str | None) -> str:
    """Return the token of an `Authorization: Bearer <token>` header (the scheme in any case, RFC 7235 §2.1).

    Raises CallerRefused (401) when the header is missing, of another scheme or carries no token.
    """
    if header is None:
        raise CallerRefused(401, "missing Authorization header: send `Authorization: Bearer <token>`")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise CallerRefused(401, "the Authorization header is not `Bearer <token>`")
    return token


@dataclasses.dataclass(frozen=True)
class _Known:
    username: str  # who the API server said the token authenticates
    until: float  # clock seconds after which the API server is asked again


class TokenReviewer:
    """Accept only the tokens of ServiceAccount `service_account` of `namespaces`, as the API server that
    `access` reaches judges them with a TokenReview (authentication.k8s.io/v1, `create tokenreviews`).

    `namespaces` None accepts the account of any namespace; `audiences` (default: the API server's own)
    are sent in the review's spec, and a token must be valid for one of them (a projected token of the
    sidecar's default mount has the API server's audience). Who an authenticated token is (allowed or
    not) is remembered for `cache_seconds` (0: never), never past the token's own `exp` (read from the JWT
    without verifying it: it only shortens the cache), keyed by the token's SHA-256, at most `cache_size`
    tokens; a deleted ServiceAccount's token may thus be accepted up to `cache_seconds` longer.
    Unauthenticated tokens (401) are asked about each time. `clock` gives wall-clock seconds (a test's fake
    clock). The reviewer's identity needs the ClusterRole `system:auth-delegator` (a ClusterRoleBinding to
    the server's ServiceAccount). Thread-safe; `review` blocks (one HTTP request on a cache miss, `timeout`
    seconds at most): call it off the event loop. Close it (or use it as a context manager) to close its
    client. Raises ValueError for an empty name, `namespaces` empty or a single string, or a negative
    `cache_seconds`.

    Sources: the TokenReview API (authentication.k8s.io/v1, Kubernetes API reference, "TokenReview": a
    client that sets `spec.audiences` checks `status.audiences`); "Using RBAC Authorization", "Other
    component roles" (`system:auth-delegator`: delegated authentication and authorization checks).
    """

    def __init__(
        self,
        access: ClusterAccess,
        *,
        service_account: str = DEFAULT_SERVICE_ACCOUNT,
        namespaces: Iterable[str] | None = None,
        audiences: Sequence[str] | None = None,
        cache_seconds: float = CACHE_SECONDS,
        cache_size: int = CACHE_SIZE,
        timeout: float = REQUEST_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not service_account or ":" in service_account:
            raise ValueError(f"service_account must be a ServiceAccount name, got {service_account!r}")
        if isinstance(namespaces, str):
            raise ValueError(f"namespaces must be a set of names, not the string {namespaces!r}")
        allowed = None if namespaces is None else frozenset(namespaces)
        if allowed is not None and (not allowed or not all(allowed)):
            raise ValueError(f"namespaces must name namespaces (None: any namespace), got {namespaces!r}")
        if not 0 <= cache_seconds < float("inf"):
            raise ValueError(f"cache_seconds must be >= 0, got {cache_seconds!r}")
        if cache_size < 1:
            raise ValueError(f"cache_size must be >= 1, got {cache_size!r}")
        self.access = access
        self.service_account = service_account
        self.namespaces = allowed
        self.audiences = tuple(audiences) if audiences else None
        self.cache_seconds = cache_seconds
        self.cache_size = cache_size
        self.timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._known: collections.OrderedDict[bytes, _Known] = collections.OrderedDict()
        self._client: lightkube.Client | None = None

    @classmethod
    def from_cluster(
        cls, *, kubeconfig: str | None = None, context: str | None = None, **options: Any
    ) -> TokenReviewer:
        """A reviewer asking the cluster of `kubeconfig` / `context` when either is given
        (`ClusterAccess.from_kubeconfig`), else the one this process is meant to use
        (`ClusterAccess.from_environment`: `$KUBECONFIG`, else the pod's ServiceAccount, else
        ~/.kube/config); `options` as the constructor's. Raises KubeSetupError (re-exported here) naming
        what is missing, and ValueError as the constructor."""
        if kubeconfig or context:
            access = ClusterAccess.from_kubeconfig(kubeconfig, context=context)
        else:
            access = ClusterAccess.from_environment()
        return cls(access, **options)

    @property
    def expected(self) -> str:
        """Who is allowed, in words: `the ServiceAccount <name> of namespace a or b` (or of any namespace)."""
        if self.namespaces is None:
            where = "of any namespace"
        else:
            names = sorted(self.namespaces)
            where = "of namespace " + (
                names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
            )
        return f"the ServiceAccount {self.service_account} {where}"

    def allows(self, username: str) -> bool:
        """Whether `username` (as a TokenReview gives it) is an allowed ServiceAccount."""
        if not username.startswith(_SA_PREFIX):
            return False
        namespace, _, name = username[len(_SA_PREFIX) :].partition(":")
        return name == self.service_account and (self.namespaces is None or namespace in self.namespaces)

    def review(self, token: str) -> str:
        """Return the username (`system:serviceaccount:<ns>:<name>`) `token` authenticates, when allowed.

        Raises CallerRefused: 401 when the API server does not authenticate the token ("the token is not
        valid: <the TokenReview's error>"), 403 when it is someone not allowed (naming who it is and who is
        allowed), 503 when the review cannot be made (the API unreachable, this server's identity lacking
        `create tokenreviews`: the message says to bind `system:auth-delegator`).
        """
        if not token:
            raise CallerRefused(401, "no token given")
        key = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        username = self._remembered(key)
        if username is None:
            username = self._ask(token)
            self._remember(key, username, _unverified_expiry(token))
        if not self.allows(username):
            raise CallerRefused(403, f"{username} is not allowed: expected {self.expected}")
        return username

    def close(self) -> None:
        """Close the client (a later review makes a new one) and forget the tokens remembered."""
        with self._lock:
            client, self._client = self._client, None
            self._known.clear()
        if client is not None:
            client.close()

    def __enter__(self) -> TokenReviewer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TokenReviewer({self.expected}, via {self.access.source or self.access.server})"

    # -- the cache -----------------------------------------------------------------------------------------

    def _remembered(self, key: bytes) -> str | None:
        with self._lock:
            known = self._known.get(key)
            if known is None:
                return None
            if self._clock() >= known.until:
                del self._known[key]
                return None
            self._known.move_to_end(key)
            return known.username

    def _remember(self, key: bytes, username: str, expiry: float | None) -> None:
        if self.cache_seconds <= 0:
            return
        now = self._clock()
        until = now + self.cache_seconds if expiry is None else min(now + self.cache_seconds, expiry)
        if until <= now:
            return
        with self._lock:
            self._known[key] = _Known(username, until)
            self._known.move_to_end(key)
            while len(self._known) > self.cache_size:
                self._known.popitem(last=False)

    # -- the review ----------------------------------------------------------------------------------------

    def _lightkube_client(self) -> lightkube.Client:
        with self._lock:
            if self._client is None:
                self._client = self.access.client(timeout=self.timeout)
            return self._client

    def _ask(self, token: str) -> str:
        from lightkube.models.authentication_v1 import TokenReviewSpec
        from lightkube.resources.authentication_v1 import TokenReview

        review = TokenReview(
            spec=TokenReviewSpec(token=token, audiences=list(self.audiences) if self.audiences else None)
        )
        try:
            answer = self._lightkube_client().create(review)
        except KubeSetupError as exc:
            raise CallerRefused(503, f"cannot review the caller's token: {exc}") from None
        except Exception as exc:
            refused = self._review_failed(exc)
            if refused is None:
                raise
            # Not chained: the exception's request holds the caller's token.
            raise refused from None
        status = answer.status
        if status is None:
            raise CallerRefused(
                503, "cannot review the caller's token: the TokenReview came back without status"
            )
        if not status.authenticated:
            raise CallerRefused(
                401, f"the token is not valid: {status.error or 'the API server gave no reason'}"
            )
        if self.audiences and not set(status.audiences or ()) & set(self.audiences):
            raise CallerRefused(
                401,
                f"the token is not valid for the audiences {', '.join(self.audiences)} (the TokenReview's)",
            )
        username = (status.user.username if status.user else None) or ""
        if not username:
            raise CallerRefused(401, "the token is not valid: the TokenReview names no user")
        return username

    def _review_failed(self, exc: Exception) -> CallerRefused | None:
        import httpx2

        if isinstance(exc, httpx2.HTTPStatusError) and exc.response.status_code == 403:
            reason = getattr(getattr(exc, "status", None), "message", None) or "403 Forbidden"
            # The API server's message names the user it saw; a kubeconfig's identity is only its user entry.
            named = re.search(r'User "([^"]*)"', reason)
            who = named.group(1) if named else self.access.identity or "this server's identity"
            return CallerRefused(
                503,
                f"cannot review the caller's token: {who} may not create tokenreviews "
                f"(authentication.k8s.io/v1): {reason}. Bind the ClusterRole {AUTH_DELEGATOR} to the "
                "server's ServiceAccount (a ClusterRoleBinding)",
            )
        translated = error_for(exc, identity=self.access.identity)
        if translated is None:
            return None
        return CallerRefused(503, f"cannot review the caller's token: {translated}")


def _unverified_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT, read without verifying it (it only bounds the cache), or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    expiry = claims.get("exp") if isinstance(claims, dict) else None
    return float(expiry) if isinstance(expiry, int | float) and not isinstance(expiry, bool) else None


# ASGI's callables, as the ASGI spec types them (asgiref.typing), without importing Starlette.
_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_App = Callable[[_Scope, _Receive, _Send], Awaitable[None]]


class TokenReviewMiddleware:
    """Let through to `app` only the HTTP requests to `paths` whose `Authorization: Bearer <token>` the
    `reviewer` accepts; other paths (`/healthz`, ...) and non-HTTP scopes pass unchecked.

    The review runs off the event loop (`asyncio.to_thread`). A refusal is answered with its status and
    `{"error": message}` (401 with `WWW-Authenticate: Bearer`, RFC 6750 §3), and the connection closed
    (the body was not read). An accepted request reaches `app` with the caller's username
    (`system:serviceaccount:<ns>:<name>`) in `scope["state"]["caller"]` (`CALLER`; Starlette:
    `request.state.caller`). Every call is checked, whatever its plugin key: put it in front of a server
    that only thin proxies call, never of a sidecar the Argo agent calls (a foreign key must get `{}`).
    """

    def __init__(self, app: _App, reviewer: TokenReviewer, *, paths: Iterable[str] = (EXECUTE_PATH,)) -> None:
        self.app = app
        self.reviewer = reviewer
        self.paths = frozenset(paths)

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        header = next(
            (value.decode("latin-1") for name, value in scope.get("headers", ()) if name == b"authorization"),
            None,
        )
        try:
            caller = await asyncio.to_thread(self.reviewer.review, bearer_token(header))
        except CallerRefused as refused:
            log.warning("refused %s %s: %s", scope.get("method", ""), scope["path"], refused.message)
            await _refuse(send, refused)
            return
        state = dict(scope.get("state") or {})
        state[CALLER] = caller
        await self.app({**scope, "state": state}, receive, send)


async def _refuse(send: _Send, refused: CallerRefused) -> None:
    body = json.dumps({"error": refused.message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    if refused.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
