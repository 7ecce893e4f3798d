"""Argo HTTP templates, run in the local agent as Argo's agent pod runs them (`workflow/executor/agent.go`).

`HttpTemplateRunner.run` makes a template's request and turns the response into the node's result;
`SecretStore` holds the Secrets that header values come from (`argoplug run --secrets FILE`). The engine
calls `run` for each node of an `http:` template, with the template already substituted.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import errno
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from argoplug.agent.client import NodeUpdate
from argoplug.agent.expressions import ExpressionError, evaluate
from argoplug.protocol import Outputs
from argoplug.yaml_marks import yaml_problem

__all__ = ["HttpTemplateRunner", "SecretError", "SecretStore"]

# Go's net/http: `http.DefaultClient` follows at most 10 redirects and sends this User-Agent.
MAX_REDIRECTS = 10
USER_AGENT = "Go-http-client/1.1"
# RFC 7230 token characters (net/http `validMethod`, textproto `CanonicalMIMEHeaderKey`).
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


class SecretError(Exception):
    """A secrets file that cannot be read, or a secret reference it cannot satisfy. Never holds a value."""


class SecretStore:
    """Kubernetes Secrets held locally: name → key → value, as `data` and `stringData` define them.

    Build it with `from_file`; `source` names where the secrets came from, for messages. Values never
    appear in `repr`, messages or logs.
    """

    def __init__(self, secrets: Mapping[str, Mapping[str, bytes]], *, source: str = "the secrets") -> None:
        self._secrets = {name: dict(keys) for name, keys in secrets.items()}
        self.source = source

    @classmethod
    def from_file(cls, path: str | Path) -> SecretStore:
        """Read a YAML file of one or more `kind: Secret` documents (or a `kind: List` of them).

        Each Secret needs `metadata.name`; `data` values are base64, `stringData` values plain strings
        and win over `data` for the same key, as the Kubernetes API merges them. Raises `SecretError`
        naming the file, the document and the field for a file that cannot be read or parsed, a
        document that is not a Secret, a bad value, or a name defined twice.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretError(f"cannot read the secrets file {path}: {exc}") from None
        try:
            documents = list(yaml.safe_load_all(text))
        except yaml.YAMLError as exc:
            raise SecretError(f"{path}: not valid YAML: {yaml_problem(exc, path)}") from None
        secrets: dict[str, dict[str, bytes]] = {}
        for index, document in enumerate(documents, start=1):
            if document is None:
                continue
            where = f"{path}, document {index}"
            items = [document]
            if isinstance(document, Mapping) and document.get("kind") == "List":
                items = document.get("items") or []
            for item in items:
                name, values = _parse_secret(item, where)
                if name in secrets:
                    raise SecretError(f"{where}: secret {name!r} is defined twice in {path}")
                secrets[name] = values
        return cls(secrets, source=str(path))

    @property
    def names(self) -> list[str]:
        """The names of the secrets held, sorted."""
        return sorted(self._secrets)

    def get(self, name: str, key: str) -> str:
        """The value of `key` in the secret `name` (UTF-8 text).

        Raises `SecretError` when the secret or the key is missing (naming both and where the secrets
        came from; Argo's words: `secret 'NAME' does not have the key 'KEY'`) or the value is not text.
        """
        keys = self._secrets.get(name)
        if keys is None:
            held = ", ".join(repr(n) for n in self.names) or "no secrets"
            raise SecretError(f'secrets "{name}" not found in {self.source} (it holds {held})')
        if key not in keys:
            known = ", ".join(repr(k) for k in sorted(keys)) or "no keys"
            raise SecretError(
                f"secret '{name}' does not have the key '{key}' (in {self.source}, it has {known})"
            )
        try:
            return keys[key].decode("utf-8")
        except UnicodeDecodeError:
            raise SecretError(
                f"secret '{name}' key '{key}' (in {self.source}) is not UTF-8 text, so it cannot be a header"
            ) from None

    def __repr__(self) -> str:
        return f"SecretStore(source={self.source!r}, names={self.names!r})"


def _parse_secret(document: Any, where: str) -> tuple[str, dict[str, bytes]]:
    """The name and values of one Secret document; raise SecretError naming the field at fault."""
    if not isinstance(document, Mapping):
        raise SecretError(f"{where}: expected a Secret (a mapping), got {type(document).__name__}")
    kind = document.get("kind")
    if kind != "Secret":
        raise SecretError(f"{where}: expected `kind: Secret`, got kind {kind!r}")
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(name, str) or not name:
        raise SecretError(f"{where}: the Secret has no `metadata.name`")
    values: dict[str, bytes] = {}
    for field in ("data", "stringData"):
        entries = document.get(field)
        if entries is None:
            continue
        if not isinstance(entries, Mapping):
            raise SecretError(f"{where}: secret {name!r}: `{field}` must be a mapping of key to value")
        for key, value in entries.items():
            if not isinstance(value, str):
                raise SecretError(
                    f"{where}: secret {name!r}: `{field}.{key}` must be a string (quote it in YAML), "
                    f"got {type(value).__name__}"
                )
            if field == "stringData":
                values[str(key)] = value.encode("utf-8")
                continue
            try:
                values[str(key)] = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise SecretError(
                    f"{where}: secret {name!r}: `data.{key}` is not valid base64 (use `stringData` for "
                    "plain text)"
                ) from None
    return name, values


class _Failed(Exception):
    """The template's request could not be made or judged: the node fails with this message."""


class HttpTemplateRunner:
    """Run HTTP templates as Argo's agent does (`executeHTTPTemplate`); use `async with` or `aclose()`.

    `secrets` supplies `valueFrom.secretKeyRef` header values. `transport` replaces the network (tests).
    The client follows up to 10 redirects and has no timeout of its own, as Go's `http.DefaultClient`;
    `timeoutSeconds` bounds each request. `slots`, when given, is the agent's pool of task workers, which
    HTTP and plugin tasks share (`AgentClient.slots`: `ARGO_AGENT_TASK_WORKERS`, executor/agent.go).
    """

    def __init__(
        self,
        secrets: SecretStore | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        slots: asyncio.Semaphore | None = None,
    ) -> None:
        self.secrets = secrets
        self.slots = slots
        self._transport = transport
        self._clients: dict[bool, httpx.AsyncClient] = {}

    async def __aenter__(self) -> HttpTemplateRunner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def run(self, template: Mapping[str, Any], node_name: str) -> NodeUpdate:
        """Make the request of `template` (its `http` block, substituted) for node `node_name`; judge it.

        - `method` defaults to GET; `headers` take `value` or `valueFrom.secretKeyRef {name, key}` (a
          `Host` header sets the request's host); the body is `body`, or `bodyFrom.bytes` (base64).
        - `timeoutSeconds` bounds the whole exchange; without it there is no timeout (agent.go sets none,
          although the field's documentation says 30).
        - Without `successCondition` the node Succeeds on a 2xx status, else Fails with
          `received non-2xx response code: <status>`; with it, the expr-lang condition over
          `request.{method,url,body,bodyBytes,headers}` and `response.{statusCode,body,headers}` decides
          (headers map to lists of values), and false Fails with `successCondition '<expr>' evaluated
          false`. `outputs.result` is the response body either way.
        - A request that cannot be made (a missing secret, a refused connection, a timeout, a condition
          that cannot be evaluated) Fails the node with the error's text, as `processTask` does.

        Never raises for the template's trouble; returns a terminal `NodeUpdate` (no requeue).
        """
        async with self.slots or contextlib.nullcontext():
            try:
                return await self._run(template)
            except _Failed as exc:
                return NodeUpdate("Failed", str(exc))

    async def _run(self, template: Mapping[str, Any]) -> NodeUpdate:
        name = template.get("name") or "?"
        spec = template.get("http")
        if not isinstance(spec, Mapping):
            raise _Failed(f"template {name!r} has no `http` block")
        method = _method(spec.get("method"))
        url = _string(spec, "url", name)
        headers, plain_headers = self._headers(spec.get("headers"), name)
        body, body_bytes = _body(spec, name)
        timeout = _timeout(spec.get("timeoutSeconds"), name)
        client = self._client(bool(spec.get("insecureSkipVerify")))
        operation = _operation(method)
        try:
            request = client.build_request(method, url, headers=headers, content=body or None)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise _Failed(f"parse {_go_quote(url)}: {exc}") from None
        headers_received = False
        try:
            async with asyncio.timeout(timeout):
                response = await client.send(request, stream=True)
                headers_received = True
                try:
                    content = await response.aread()
                finally:
                    await response.aclose()
        except TimeoutError:
            prefix = "" if headers_received else f"{operation} {_go_quote(url)}: "
            raise _Failed(f"{prefix}context deadline exceeded") from None
        except httpx.HTTPError as exc:
            raise _Failed(f"{operation} {_go_quote(url)}: {_go_error(exc, request)}") from None
        text = content.decode("utf-8", errors="replace")
        outputs = Outputs(result=text)
        condition = spec.get("successCondition") or ""
        if not condition:
            if 200 <= response.status_code < 300:
                return NodeUpdate("Succeeded", "", outputs)
            return NodeUpdate("Failed", f"received non-2xx response code: {response.status_code}", outputs)
        env = {
            "request": {
                "method": method,
                "url": url,
                "body": spec.get("body") or "",
                "bodyBytes": None if body_bytes is None else list(body_bytes),  # Go's []byte: numbers
                "headers": plain_headers,
            },
            "response": {
                "statusCode": response.status_code,
                "body": text,
                "headers": _response_headers(response),
            },
        }
        if _eval_bool(str(condition), env):
            return NodeUpdate("Succeeded", "", outputs)
        return NodeUpdate("Failed", f"successCondition '{condition}' evaluated false", outputs)

    def _client(self, insecure: bool) -> httpx.AsyncClient:
        client = self._clients.get(insecure)
        if client is None:
            client = httpx.AsyncClient(
                verify=not insecure,
                transport=self._transport,
                timeout=None,
                follow_redirects=True,
                max_redirects=MAX_REDIRECTS,
                headers={"User-Agent": USER_AGENT},
            )
            self._clients[insecure] = client
        return client

    def _headers(self, raw: Any, template: str) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
        """The headers to send, and those with a plain `value` as `request.headers` (`ToHeader`)."""
        if raw is None:
            return [], {}
        if not isinstance(raw, list):
            raise _Failed(f"template {template!r}: `http.headers` must be a list of {{name, value}}")
        headers: list[tuple[str, str]] = []
        plain: dict[str, list[str]] = {}
        for index, header in enumerate(raw):
            where = f"template {template!r}: `http.headers[{index}]`"
            if not isinstance(header, Mapping) or not isinstance(header.get("name"), str):
                raise _Failed(f"{where} must be a mapping with a string `name`")
            name = header["name"]
            value_from = header.get("valueFrom")
            reference = value_from.get("secretKeyRef") if isinstance(value_from, Mapping) else None
            if reference is not None:
                value = self._secret(reference, f"{where} ({name})")
            else:
                value = header.get("value") or ""
                if not isinstance(value, str):
                    raise _Failed(f"{where} ({name}): `value` must be a string")
                if value_from is None:
                    plain[name] = [value]
            headers.append((name, value))
        return headers, plain

    def _secret(self, reference: Any, where: str) -> str:
        if not isinstance(reference, Mapping):
            raise _Failed(f"{where}: `valueFrom.secretKeyRef` must be a mapping with `name` and `key`")
        secret, key = reference.get("name"), reference.get("key")
        if not isinstance(secret, str) or not secret or not isinstance(key, str) or not key:
            raise _Failed(f"{where}: `valueFrom.secretKeyRef` needs a `name` and a `key`")
        if self.secrets is None:
            raise _Failed(
                f"{where} takes its value from secret {secret!r} key {key!r}, but no secrets file was "
                f"given: pass `--secrets FILE` holding a Secret named {secret!r}"
            )
        try:
            return self.secrets.get(secret, key)
        except SecretError as exc:
            raise _Failed(str(exc)) from None


def _method(raw: Any) -> str:
    """The request method: GET when empty; a method that is not an HTTP token fails as net/http's does."""
    method = raw if isinstance(raw, str) else ""
    if not method:
        return "GET"
    if any(char not in _TOKEN for char in method):
        raise _Failed(f"net/http: invalid method {_go_quote(method)}")
    return method


def _string(spec: Mapping[str, Any], field: str, template: str) -> str:
    value = spec.get(field)
    if not isinstance(value, str) or not value:
        raise _Failed(f"template {template!r}: `http.{field}` is required (a string)")
    return value


def _body(spec: Mapping[str, Any], template: str) -> tuple[bytes, bytes | None]:
    """The body to send and `request.bodyBytes`: `bodyFrom.bytes` (base64) if given, else `body`."""
    body_from = spec.get("bodyFrom")
    if body_from is None:
        body = spec.get("body") or ""
        if not isinstance(body, str):
            raise _Failed(f"template {template!r}: `http.body` must be a string")
        return body.encode("utf-8"), None
    encoded = body_from.get("bytes") if isinstance(body_from, Mapping) else None
    if not isinstance(encoded, str):
        # agent.go builds no request then, and dereferences it: the agent pod crashes.
        raise _Failed(f"template {template!r}: `http.bodyFrom` needs `bytes` (the body, base64-encoded)")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _Failed(f"template {template!r}: `http.bodyFrom.bytes` is not valid base64") from None
    return data, data


def _timeout(raw: Any, template: str) -> float | None:
    """`timeoutSeconds` in seconds; an integer or a string of one, as `HTTP.UnmarshalJSON` accepts."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise _Failed(f"template {template!r}: invalid type for timeoutSeconds: bool")
    if isinstance(raw, (int, float)):
        return float(int(raw))
    if isinstance(raw, str):
        try:
            return float(int(raw, 10))
        except ValueError:
            raise _Failed(
                f"template {template!r}: invalid http.timeoutSeconds {_go_quote(raw)}: expected whole seconds"
            ) from None
    raise _Failed(f"template {template!r}: invalid type for timeoutSeconds: {type(raw).__name__}")


def _eval_bool(condition: str, env: Mapping[str, Any]) -> bool:
    """`argoexpr.EvalBool` (`util/expr/argoexpr/eval.go`): the condition's value, which must be a bool."""
    try:
        result = evaluate(condition, env)
    except ExpressionError as exc:
        where = "" if exc.position is None else f" (at character {exc.position + 1})"
        raise _Failed(f"unable to evaluate expression '{condition}': {exc.problem}{where}") from None
    if not isinstance(result, bool):
        raise _Failed(f"unable to cast expression result '{_go_value(result)}' to bool")
    return result


def _response_headers(response: httpx.Response) -> dict[str, list[str]]:
    """The response's headers as Go's `http.Header`: canonical names (`Content-Type`) → values in order."""
    headers: dict[str, list[str]] = {}
    for raw_name, raw_value in response.headers.raw:
        name = _canonical(raw_name.decode("latin-1"))
        headers.setdefault(name, []).append(raw_value.decode("latin-1"))
    return headers


def _canonical(name: str) -> str:
    """`textproto.CanonicalMIMEHeaderKey`: `content-type` → `Content-Type`; names with odd bytes unchanged."""
    if any(char not in _TOKEN for char in name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _operation(method: str) -> str:
    """The `Op` of Go's `url.Error` for a method: `Get`, `Post`, ... (`urlErrorOp`)."""
    return method[:1] + method[1:].lower()


def _go_quote(text: str) -> str:
    """A string as Go's `%q` shows the usual ones."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _go_error(exc: httpx.HTTPError, request: httpx.Request) -> str:
    """The text Go's client gives for the same failure, where it is known; else the exception's text."""
    if isinstance(exc, httpx.UnsupportedProtocol):
        return f"unsupported protocol scheme {_go_quote(request.url.scheme)}"
    if isinstance(exc, httpx.TooManyRedirects):
        return f"stopped after {MAX_REDIRECTS} redirects"
    if isinstance(exc, httpx.ConnectError):
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        address = f"{request.url.host}:{port}"
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED:
                return f"dial tcp {address}: connect: connection refused"
            cause = cause.__cause__ or cause.__context__
        return f"dial tcp {address}: {exc}" if str(exc) else f"dial tcp {address}: {type(exc).__name__}"
    return str(exc) or type(exc).__name__


def _go_value(value: Any) -> str:
    """A value as Go's `%s` prints an expression result: strings as is, others as `%!s(type=value)`."""
    if isinstance(value, str):
        return value
    if value is None:
        return "%!s(<nil>)"
    kind = {bool: "bool", int: "int", float: "float64"}.get(type(value), type(value).__name__)
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return f"%!s({kind}={text})"
