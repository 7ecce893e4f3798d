"""The ASGI app of the Kubernetes API sandbox: authentication, RBAC, discovery and the REST routes of every
served resource, namespaced and cluster-scoped, with watches as newline-delimited JSON streams.

A plain ASGI callable (the Kubernetes URL scheme is parsed as RequestInfoFactory does, which Starlette's
routing does not fit) using Starlette's Request and Responses. Errors are `v1.Status` bodies with
`Content-Type: application/json`, as the API server writes them (endpoints/handlers/responsewriters).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from argoplug.kube.sandbox.discovery import discovery_document
from argoplug.kube.sandbox.errors import (
    ApiStatusError,
    _details,
    _status,
    bad_request,
    method_not_supported,
    not_found,
    resource_not_found,
    unauthorized,
)
from argoplug.kube.sandbox.kubelet import Kubelet, pod_log
from argoplug.kube.sandbox.rbac import (
    Authenticator,
    Authorizer,
    RequestRejected,
    UserInfo,
    request_attributes,
)
from argoplug.kube.sandbox.resources import ResourceType
from argoplug.kube.sandbox.selectors import field_selector, label_selector
from argoplug.kube.sandbox.store import Event, Store, rfc3339

__all__ = ["SandboxApp"]

_JSON = "application/json"
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_HEALTH = ("healthz", "livez", "readyz")


def _encode(body: Any) -> bytes:
    # Go's json.Encoder: compact, then a newline.
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def json_response(body: Any, code: int = 200) -> Response:
    return Response(_encode(body), status_code=code, media_type=_JSON)


def status_response(error: ApiStatusError) -> Response:
    return json_response(error.status, error.code)


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() not in ("", "0", "false")


class SandboxApp:
    """The sandbox's HTTP API over `store`, authenticating with `authenticator` and deciding with
    `authorizer`. `server_address` is what /api advertises; `bookmark_interval` (seconds) how often a watch
    that allows bookmarks gets one (the API server: about a minute; also when its timeoutSeconds ends);
    `kubelet` answers `pods/<name>/log` for the pods it runs (`argoplug.kube.sandbox.kubelet.pod_log`)."""

    def __init__(
        self,
        store: Store,
        authenticator: Authenticator,
        authorizer: Authorizer,
        *,
        server_address: str = "127.0.0.1",
        bookmark_interval: float = 60.0,
        kubelet: Kubelet | None = None,
    ) -> None:
        self.store = store
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.server_address = server_address
        self.bookmark_interval = bookmark_interval
        self.kubelet = kubelet

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        try:
            response = await self._handle(request)
        except ApiStatusError as error:
            response = status_response(error)
        except RequestRejected as rejected:
            response = status_response(_status(rejected.code, rejected.reason, str(rejected)))
        await response(scope, receive, send)

    async def _handle(self, request: Request) -> Response:
        user = self.authenticator.authenticate(request.headers.get("authorization"))
        if user is None:
            raise unauthorized()
        path = request.url.path
        query = dict(request.query_params)
        try:
            attributes = request_attributes(request.method, path, query, user)
        except ValueError as exc:
            raise _status(
                500, "InternalError", f"Internal error occurred: {exc}", {"causes": [{"message": str(exc)}]}
            ) from None
        decision = self.authorizer.authorize(attributes)
        if not decision.allowed:
            details = _details(attributes.api_group, attributes.resource, attributes.name)
            raise _status(403, "Forbidden", self.authorizer.forbidden_message(attributes), details)
        parts = [p for p in path.strip("/").split("/") if p]
        if len(parts) == 1 and parts[0] in _HEALTH:
            return Response(b"ok", headers={"content-type": "text/plain; charset=utf-8"})
        document = discovery_document(parts, self.store.types(), self.server_address)
        if document is not None:
            return json_response(document)
        if len(parts) < 3 or parts[0] not in ("api", "apis") or (parts[0] == "apis" and len(parts) < 4):
            raise resource_not_found()
        return await self._resource(request, parts, query, user)

    async def _resource(
        self, request: Request, parts: list[str], query: dict[str, str], user: UserInfo
    ) -> Response:
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            group, version, rest = parts[1], parts[2], parts[3:]
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise resource_not_found()
        rtype = self.store.resolve(group, version, rest[0])
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else ""
        if rtype.namespaced != (namespace is not None) and (name is not None or not rtype.namespaced):
            raise resource_not_found()
        if sub and sub not in rtype.subresources:
            raise resource_not_found()
        ns = namespace or ""
        method = request.method
        manager = query.get("fieldManager") or _user_agent_manager(request.headers.get("user-agent", ""))
        dry_run = _dry_run(query)
        if rtype.stored is False:
            if method != "POST" or name is not None:
                raise method_not_supported(rtype.group, rtype.plural, _verb(method, name))
            return self._review(rtype, await _body(request), user)
        if name is None:
            match = self._matcher(rtype, query)
            if method == "GET":
                if _truthy(query.get("watch")):
                    return self._watch(rtype, namespace, version, query)
                limit = int(query.get("limit") or 0)
                listed = self.store.list(
                    rtype,
                    namespace,
                    version=version,
                    match=match,
                    limit=limit,
                    token=query.get("continue", ""),
                )
                return json_response(listed)
            if method == "POST":
                body = await _body(request)
                created = self.store.create(
                    rtype, ns, body, version=version, manager=manager, dry_run=dry_run
                )
                return json_response(created, 201)
            if method == "DELETE":
                options = await _delete_options(request, query)
                return json_response(
                    self.store.delete_collection(
                        rtype,
                        namespace,
                        version=version,
                        match=match,
                        propagation=options.get("propagationPolicy"),
                        dry_run=dry_run,
                    )
                )
            raise method_not_supported(rtype.group, rtype.plural, _verb(method, name))
        if sub == "token" and method == "POST":
            return self._token_request(rtype, ns, name, await _body(request))
        if sub == "log":
            if method != "GET":
                raise method_not_supported(rtype.group, rtype.plural, _verb(method, name))
            # The kubelet's log of the container (`follow` answered as without it), else the
            # `argoplug.dev/sandbox-log` annotation of a pod it does not run.
            pod = self.store.get(rtype, ns, name)
            return Response(pod_log(self.kubelet, pod, query), headers={"content-type": "text/plain"})
        if method == "GET":
            return json_response(self.store.get(rtype, ns, name, version))
        if method == "PUT":
            body = await _body(request)
            if sub == "finalize":
                return json_response(self._finalize(rtype, name, body, version))
            replaced = self.store.replace(
                rtype, ns, name, body, version=version, manager=manager, subresource=sub, dry_run=dry_run
            )
            return json_response(replaced)
        if method == "PATCH":
            content_type = request.headers.get("content-type", "").split(";")[0].strip()
            force = query.get("force")
            patched, was_created = self.store.patch(
                rtype,
                ns,
                name,
                content_type,
                await request.body(),
                version=version,
                manager=manager,
                field_manager=query.get("fieldManager", ""),
                force=None if force is None else _truthy(force),
                subresource=sub,
                dry_run=dry_run,
            )
            return json_response(patched, 201 if was_created else 200)
        if method == "DELETE" and not sub:
            options = await _delete_options(request, query)
            body, _gone = self.store.delete(
                rtype,
                ns,
                name,
                version=version,
                propagation=options.get("propagationPolicy"),
                dry_run=dry_run,
                preconditions=options.get("preconditions"),
            )
            return json_response(body)
        raise method_not_supported(rtype.group, rtype.plural, _verb(method, name))

    def _matcher(self, rtype: ResourceType, query: Mapping[str, str]) -> Any:
        labels = label_selector(query.get("labelSelector", ""))
        fields = field_selector(query.get("fieldSelector", ""), rtype)
        return lambda obj: labels(obj) and fields(obj)

    def _finalize(
        self, rtype: ResourceType, name: str, body: Mapping[str, Any], version: str
    ) -> dict[str, Any]:
        """PUT namespaces/<name>/finalize: only spec.finalizers changes."""
        finalizers = list(((body.get("spec") or {}).get("finalizers")) or ())

        def change(new: dict[str, Any]) -> None:
            new.setdefault("spec", {})["finalizers"] = finalizers

        with self.store.lock:
            current = self.store.find(rtype, "", name)
            if current is None:
                raise not_found("", "namespaces", name)
            self.store.set_fields(rtype, current, change)
            return self.store.get(rtype, "", name, version)

    def _review(self, rtype: ResourceType, body: Mapping[str, Any], user: UserInfo) -> Response:
        spec = dict(body.get("spec") or {})
        if rtype.plural == "tokenreviews":
            status = self.authenticator.token_review(spec)
        elif rtype.plural == "selfsubjectaccessreviews":
            status = self.authorizer.access_review_status(spec, user)
        else:
            status = self.authorizer.access_review_status(spec)
        metadata = dict(body.get("metadata") or {})
        metadata.setdefault("creationTimestamp", None)
        return json_response(
            {
                "kind": rtype.kind,
                "apiVersion": rtype.api_version(),
                "metadata": metadata,
                "spec": spec,
                "status": status,
            },
            201,
        )

    def _token_request(
        self, rtype: ResourceType, namespace: str, name: str, body: Mapping[str, Any]
    ) -> Response:
        """POST serviceaccounts/<name>/token: a TokenRequest (authentication.k8s.io/v1) with the token."""
        account = self.store.get(rtype, namespace, name)
        spec = dict(body.get("spec") or {})
        audiences = list(spec.get("audiences") or ()) or [self.authenticator.issuer]
        seconds = int(spec.get("expirationSeconds") or 3600)
        token, expires = self.authenticator.issue_service_account_token(
            namespace=namespace,
            name=name,
            uid=account["metadata"]["uid"],
            audiences=audiences,
            expiration_seconds=seconds,
        )
        spec.update({"audiences": audiences, "expirationSeconds": seconds})
        spec.setdefault("boundObjectRef", None)
        metadata = {"name": name, "namespace": namespace, "creationTimestamp": rfc3339(time.time())}
        return json_response(
            {
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": metadata,
                "spec": spec,
                "status": {"token": token, "expirationTimestamp": expires},
            },
            201,
        )

    def _watch(
        self, rtype: ResourceType, namespace: str | None, version: str, query: Mapping[str, str]
    ) -> Response:
        labels = label_selector(query.get("labelSelector", ""))
        fields = field_selector(query.get("fieldSelector", ""), rtype)

        def match(obj: Mapping[str, Any]) -> bool:
            return labels(obj) and fields(obj)

        bookmarks = _truthy(query.get("allowWatchBookmarks"))
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event] = asyncio.Queue()

        def listener(event: Event) -> None:
            if event.rtype.key == rtype.key and (namespace is None or event.namespace == namespace):
                with contextlib.suppress(RuntimeError):  # the loop is closed: the server stopped
                    loop.call_soon_threadsafe(queue.put_nowait, event)

        try:
            initial = self.store.watch(rtype, namespace, query.get("resourceVersion", ""), listener)
        except ApiStatusError as error:
            # The watch cache answers a too old version with an ERROR event in a 200 stream.
            return Response(_encode({"type": "ERROR", "object": error.status}), media_type=_JSON)

        def line(kind: str, obj: Mapping[str, Any]) -> bytes:
            return _encode({"type": kind, "object": self.store.output(obj, rtype, version)})

        def bookmark(annotations: Mapping[str, str] | None = None) -> bytes:
            meta: dict[str, Any] = {
                "resourceVersion": str(self.store.resource_version),
                "creationTimestamp": None,
            }
            if annotations:
                meta["annotations"] = dict(annotations)
            return _encode(
                {
                    "type": "BOOKMARK",
                    "object": {
                        "kind": rtype.kind,
                        "apiVersion": rtype.api_version(version),
                        "metadata": meta,
                    },
                }
            )

        def transition(event: Event) -> bytes | None:
            if event.type == "MODIFIED" and event.old is not None:
                before, after = match(event.old), match(event.obj)
                if before and after:
                    return line("MODIFIED", event.obj)
                if before:
                    return line("DELETED", event.obj)
                return line("ADDED", event.obj) if after else None
            return line(event.type, event.obj) if match(event.obj) else None

        async def stream() -> AsyncIterator[bytes]:
            deadline = None if timeout is None else loop.time() + timeout
            try:
                for event in initial:
                    data = transition(event)
                    if data:
                        yield data
                if bookmarks and _truthy(query.get("sendInitialEvents")):
                    yield bookmark({"k8s.io/initial-events-end": "true"})
                next_bookmark = loop.time() + self.bookmark_interval
                while True:
                    now = loop.time()
                    if deadline is not None and now >= deadline:
                        if bookmarks:
                            yield bookmark()
                        return
                    wait = (
                        min(x for x in (deadline, next_bookmark if bookmarks else None, now + 30) if x) - now
                    )
                    try:
                        event = await asyncio.wait_for(queue.get(), timeout=max(wait, 0))
                    except TimeoutError:
                        if bookmarks and loop.time() >= next_bookmark:
                            next_bookmark = loop.time() + self.bookmark_interval
                            yield bookmark()
                        continue
                    data = transition(event)
                    if data:
                        yield data
            finally:
                self.store.unwatch(listener)

        return StreamingResponse(stream(), media_type=_JSON)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    content_type = request.headers.get("content-type", "")
    try:
        body = yaml.safe_load(raw) if "yaml" in content_type else json.loads(raw or b"{}")
    except (ValueError, yaml.YAMLError) as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request("couldn't get version/kind; json parse error: the body is not a JSON object")
    return body


async def _delete_options(request: Request, query: Mapping[str, str]) -> dict[str, Any]:
    """DeleteOptions from the body (kubectl) and the query (lightkube), the query winning."""
    raw = await request.body()
    options: dict[str, Any] = {}
    if raw.strip():
        with contextlib.suppress(ValueError):
            decoded = json.loads(raw)
            if isinstance(decoded, dict):
                options = decoded
    if query.get("propagationPolicy"):
        options["propagationPolicy"] = query["propagationPolicy"]
    if "orphanDependents" in options and "propagationPolicy" not in options:
        options["propagationPolicy"] = "Orphan" if options["orphanDependents"] else "Background"
    return options


def _dry_run(query: Mapping[str, str]) -> bool:
    value = query.get("dryRun")
    if value is None or value == "":
        return False
    if value != "All":
        raise bad_request(f'dryRun: Unsupported value: "{value}": supported values: "All"')
    return True


def _user_agent_manager(user_agent: str) -> str:
    """prefixFromUserAgent: the default fieldManager of an update is the User-Agent up to its first `/`."""
    return user_agent.split("/")[0][:128] or "unknown"


def _verb(method: str, name: str | None) -> str:
    return (
        {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
            method, method.lower()
        )
        if name is not None
        else {"GET": "list", "POST": "create", "DELETE": "deletecollection"}.get(method, method.lower())
    )
