"""Kubernetes API errors, translated into argoplug's at the boundary (`error_for`, `translated_errors`).

A 403 becomes a PermanentError naming the verb, resource, namespace and identity, and the RBAC rule that
would allow it; 400/404/405/409/410/422 (and a 401 after the token was refreshed once, which the client
already did) a PermanentError with the API server's own message; 429, 5xx, timeouts and lost connections a
TemporaryError, so the agent calls again. Plugins on `argoplug.kube` use it; lightkube's and httpx2's
exception types never reach their callers.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from argoplug.kube.request_info import RequestInfo, request_info
from argoplug.plugin import PermanentError, TemporaryError

__all__ = ["RETRY_DELAY", "error_for", "rbac_rule", "translated_errors"]

# Requeue (seconds) after throttling, a 5xx or a lost connection, unless the server says Retry-After.
RETRY_DELAY = 10.0
_USER = re.compile(r'User "([^"]*)"')


def rbac_rule(info: RequestInfo) -> str:
    """Return the RBAC PolicyRule, as one line of YAML, that allows the request `info` describes."""
    names = f', resourceNames: ["{info.name}"]' if info.name and info.verb != "create" else ""
    return (
        f'{{apiGroups: ["{info.api_group}"], resources: ["{info.resource_with_subresource}"], '
        f'verbs: ["{info.verb}"]{names}}}'
    )


def error_for(exc: BaseException, *, identity: str = "") -> PermanentError | TemporaryError | None:
    """Return the argoplug error for a lightkube / httpx2 exception, or None when `exc` is not one.

    `identity` (e.g. `ClusterAccess.identity`) names who made the request when the API server's message
    does not. The message of a 403 reads: `cannot create secrets in namespace "ns" as
    system:serviceaccount:ns:sa: <the API server's message>. Grant it with a Role in "ns" bound to that
    identity, with the rule {apiGroups: [""], resources: ["secrets"], verbs: ["create"]}`.
    """
    import httpx2

    if isinstance(exc, httpx2.HTTPStatusError):
        return _status_error(exc, identity)
    if isinstance(exc, httpx2.TimeoutException):
        return TemporaryError(
            f"the Kubernetes API at {_host(exc)} did not answer in time ({type(exc).__name__})",
            delay=RETRY_DELAY,
        )
    if isinstance(exc, httpx2.TransportError):
        return TemporaryError(
            f"cannot reach the Kubernetes API at {_host(exc)}: {exc or type(exc).__name__}", delay=RETRY_DELAY
        )
    return None


@contextlib.contextmanager
def translated_errors(*, identity: str = "") -> Iterator[None]:
    """Run the block, turning lightkube / httpx2 exceptions into argoplug's (`error_for`), chained."""
    try:
        yield
    except Exception as exc:
        translated = error_for(exc, identity=identity)
        if translated is None:
            raise
        raise translated from exc


def _status_error(exc: Any, identity: str) -> PermanentError | TemporaryError:
    response = exc.response
    code = response.status_code
    message = _api_message(exc)
    request = exc.request
    info = request_info(request.method, request.url.path, dict(request.url.params))
    what = _what(info)
    if code == 403:
        found = _USER.search(message)
        who = found.group(1) if found else identity or "this identity"
        where = f'a Role in "{info.namespace}"' if info.namespace else "a ClusterRole"
        return PermanentError(
            f"cannot {info.verb} {what} as {who}: {message}. Grant it with {where} bound to {who}, with the "
            f"rule {rbac_rule(info)}"
        )
    if code == 401:
        who = identity or "the credentials given"
        return PermanentError(
            f"the Kubernetes API did not accept the token of {who} (401 Unauthorized, after a fresh token "
            f"was tried): {message}"
        )
    if code == 429 or code >= 500:
        delay = _retry_after(response) or RETRY_DELAY
        return TemporaryError(
            f"the Kubernetes API answered {code} to {info.verb} {what}: {message}", delay=delay
        )
    return PermanentError(f"cannot {info.verb} {what}: {message}")


def _api_message(exc: Any) -> str:
    status = getattr(exc, "status", None)
    message = getattr(status, "message", None)
    if message:
        return str(message)
    text = ""
    with contextlib.suppress(Exception):
        text = exc.response.text.strip()
    return text[:300] or f"HTTP {exc.response.status_code}"


def _what(info: RequestInfo) -> str:
    if not info.resource:
        return info.path
    thing = info.resource_with_subresource
    named = f' "{info.name}"' if info.name else ""
    where = f' in namespace "{info.namespace}"' if info.namespace and info.resource != "namespaces" else ""
    return f"{thing}{named}{where}"


def _retry_after(response: Any) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 < seconds < 3600 else None


def _host(exc: Any) -> str:
    try:
        return str(exc.request.url.copy_with(path="/", query=None))
    except (RuntimeError, AttributeError):
        return "the configured server"
