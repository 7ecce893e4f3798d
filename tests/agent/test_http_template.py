"""HTTP templates run as Argo's agent runs them, against a real HTTP server on loopback; local secrets."""

from __future__ import annotations

import asyncio
import base64
import datetime
import http.server
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from argoplug.agent.client import NodeUpdate
from argoplug.agent.http_template import HttpTemplateRunner, SecretError, SecretStore

TOKEN = "s3cr3t-token-value"


class Site:
    """A loopback HTTP(S) server: `/echo` answers the request as JSON, `/status/N` answers N, `/slow`
    answers after `slow` seconds, `/redirect` sends to `/echo`. Records every request it gets."""

    def __init__(self, tls: ssl.SSLContext | None = None, slow: float = 3.0) -> None:
        self.requests: list[dict[str, Any]] = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode() if length else ""
                seen = {
                    "method": self.command,
                    "path": self.path,
                    "headers": [[k.lower(), v] for k, v in self.headers.items()],
                    "body": body,
                }
                site.requests.append(seen)
                status, payload, extra = 200, json.dumps(seen), {"Content-Type": "application/json"}
                if self.path.startswith("/status/"):
                    status = int(self.path.rsplit("/", 1)[1])
                    payload, extra = f"status {status}", {"x-reply": "plain"}
                elif self.path == "/slow":
                    time.sleep(site.slow)
                elif self.path == "/redirect":
                    status, payload, extra = 302, "", {"Location": "/echo"}
                data = payload.encode()
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("X-Many", "one")
                self.send_header("X-Many", "two")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = handle_any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that timed out breaks the pipe: expected

        self.slow = slow
        self._server = Server(("127.0.0.1", 0), Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def site() -> Iterator[Site]:
    server = Site()
    yield server
    server.close()


@pytest.fixture
def secrets(tmp_path: Path) -> SecretStore:
    path = tmp_path / "secrets.yaml"
    encoded = base64.b64encode(b"from-data").decode()
    path.write_text(
        f"""\
apiVersion: v1
kind: Secret
metadata: {{name: api}}
stringData: {{token: {TOKEN}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: other}}
data: {{encoded: {encoded}, both: {base64.b64encode(b"data-loses").decode()}}}
stringData: {{both: stringdata-wins}}
"""
    )
    return SecretStore.from_file(path)


def run(template_http: Mapping[str, Any], secrets: SecretStore | None = None) -> NodeUpdate:
    async def main() -> NodeUpdate:
        async with HttpTemplateRunner(secrets) as runner:
            return await runner.run({"name": "call", "http": dict(template_http)}, "wf[0].call")

    return asyncio.run(main())


def echoed(update: NodeUpdate) -> dict[str, Any]:
    assert update.outputs is not None and update.outputs.result is not None
    seen: dict[str, Any] = json.loads(update.outputs.result)
    return seen


def header(seen: Mapping[str, Any], name: str) -> list[str]:
    return [value for key, value in seen["headers"] if key == name]


def test_a_get_succeeds_with_the_response_body_as_result(site):
    update = run({"url": f"{site.url}/echo", "headers": [{"name": "x-header-name", "value": "test-value"}]})
    assert (update.phase, update.message, update.requeue) == ("Succeeded", "", None)
    seen = echoed(update)
    assert (seen["method"], seen["path"], seen["body"]) == ("GET", "/echo", "")
    assert header(seen, "x-header-name") == ["test-value"]
    assert header(seen, "user-agent") == ["Go-http-client/1.1"]  # what Argo's agent (Go) sends


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_methods_and_body_are_sent(site, method):
    seen = echoed(run({"url": f"{site.url}/echo", "method": method, "body": '{"a": 1}'}))
    assert (seen["method"], seen["body"]) == (method, '{"a": 1}')


def test_body_from_bytes_is_base64_decoded(site):
    body = base64.b64encode(b"raw \x00 bytes?").decode()
    update = run({"url": f"{site.url}/echo", "method": "POST", "bodyFrom": {"bytes": body}})
    assert site.requests[-1]["body"] == "raw \x00 bytes?"
    assert update.phase == "Succeeded"


def test_headers_take_values_from_the_secrets_file(site, secrets):
    update = run(
        {
            "url": f"{site.url}/echo",
            "headers": [
                {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
                {"name": "X-Encoded", "valueFrom": {"secretKeyRef": {"name": "other", "key": "encoded"}}},
                {"name": "X-Both", "valueFrom": {"secretKeyRef": {"name": "other", "key": "both"}}},
                {"name": "X-Twice", "value": "1"},
                {"name": "X-Twice", "value": "2"},
            ],
        },
        secrets,
    )
    seen = echoed(update)
    assert header(seen, "authorization") == [TOKEN]
    assert header(seen, "x-encoded") == ["from-data"]
    assert header(seen, "x-both") == ["stringdata-wins"]
    assert header(seen, "x-twice") == ["1", "2"]


def test_a_host_header_sets_the_requests_host(site):
    seen = echoed(run({"url": f"{site.url}/echo", "headers": [{"name": "Host", "value": "api.example"}]}))
    assert header(seen, "host") == ["api.example"]


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ({"name": "missing", "key": "token"}, "secrets \"missing\" not found in {file} (it holds 'api', "),
        (
            {"name": "api", "key": "nope"},
            "secret 'api' does not have the key 'nope' (in {file}, it has 'token')",
        ),
    ],
)
def test_a_bad_secret_reference_fails_the_node_naming_secret_key_and_file(site, secrets, reference, expected):
    update = run(
        {"url": f"{site.url}/echo", "headers": [{"name": "A", "valueFrom": {"secretKeyRef": reference}}]},
        secrets,
    )
    assert update.phase == "Failed"
    assert expected.format(file=secrets.source) in update.message
    assert TOKEN not in update.message
    assert site.requests == []  # nothing was sent


def test_a_secret_reference_without_a_secrets_file_says_to_pass_one(site):
    ref = {"name": "api", "key": "token"}
    update = run({"url": f"{site.url}/echo", "headers": [{"name": "A", "valueFrom": {"secretKeyRef": ref}}]})
    assert update.phase == "Failed"
    assert "secret 'api' key 'token', but no secrets file was given: pass `--secrets FILE`" in update.message


def test_the_default_success_rule_is_a_2xx_status(site):
    failed = run({"url": f"{site.url}/status/404"})
    assert (failed.phase, failed.message) == ("Failed", "received non-2xx response code: 404")
    assert failed.outputs is not None and failed.outputs.result == "status 404"
    assert run({"url": f"{site.url}/status/201"}).phase == "Succeeded"
    assert run({"url": f"{site.url}/status/500"}).message == "received non-2xx response code: 500"


def test_redirects_are_followed(site):
    update = run({"url": f"{site.url}/redirect"})
    assert (update.phase, echoed(update)["path"]) == ("Succeeded", "/echo")


def test_success_condition_true_and_false(site):
    true = run(
        {
            "url": f"{site.url}/status/404",
            "successCondition": 'response.statusCode == 404 && response.headers["X-Reply"][0] == "plain"',
        }
    )
    assert (true.phase, true.message) == ("Succeeded", "")
    assert true.outputs is not None and true.outputs.result == "status 404"
    condition = "response.statusCode < 300"
    false = run({"url": f"{site.url}/status/404", "successCondition": condition})
    assert (false.phase, false.message) == ("Failed", f"successCondition '{condition}' evaluated false")


def test_success_condition_sees_the_body_the_request_and_repeated_headers(site):
    condition = (
        'response.body == "status 202" && request.method == "PUT" && request.body == "b" '
        '&& request.headers["X-A"][0] == "1" && response.headers["X-Many"][1] == "two"'
    )
    update = run(
        {
            "url": f"{site.url}/status/202",
            "method": "PUT",
            "body": "b",
            "headers": [{"name": "X-A", "value": "1"}],
            "successCondition": condition,
        }
    )
    assert (update.phase, update.message) == ("Succeeded", "")


def test_a_success_condition_that_is_not_a_boolean_or_does_not_evaluate_fails(site):
    update = run({"url": f"{site.url}/status/200", "successCondition": "response.statusCode"})
    assert (update.phase, update.message) == (
        "Failed",
        "unable to cast expression result '%!s(int=200)' to bool",
    )
    update = run({"url": f"{site.url}/status/200", "successCondition": "response.statusCode =="})
    assert update.phase == "Failed"
    assert update.message.startswith("unable to evaluate expression 'response.statusCode ==': ")
    assert "expression 'response.statusCode ==" not in update.message.split(": ", 1)[1]  # said once
    update = run({"url": f"{site.url}/status/200", "successCondition": "response.nope.deeper == 1"})
    assert update.phase == "Failed"
    assert update.message.startswith("unable to evaluate expression 'response.nope.deeper == 1': ")


@pytest.mark.parametrize("timeout", [1, "1"])
def test_timeout_seconds_bounds_the_request(timeout):
    site = Site(slow=5)
    try:
        started = time.monotonic()
        update = run({"url": f"{site.url}/slow", "timeoutSeconds": timeout})
        elapsed = time.monotonic() - started
    finally:
        site.close()
    assert (update.phase, update.message) == ("Failed", f'Get "{site.url}/slow": context deadline exceeded')
    assert 0.9 < elapsed < 4


def test_without_timeout_seconds_a_slow_answer_is_awaited():
    site = Site(slow=1.2)
    try:
        update = run({"url": f"{site.url}/slow"})
    finally:
        site.close()
    assert update.phase == "Succeeded"


def test_a_refused_connection_fails_the_node_as_go_words_it():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens on it once closed
    update = run({"url": f"http://127.0.0.1:{port}/x", "method": "POST"})
    assert update.phase == "Failed"
    assert update.message == (
        f'Post "http://127.0.0.1:{port}/x": dial tcp 127.0.0.1:{port}: connect: connection refused'
    )


@pytest.mark.parametrize(
    ("http_block", "expected"),
    [
        ({"url": "ftp://x/y"}, 'Get "ftp://x/y": unsupported protocol scheme "ftp"'),
        ({"url": "http://127.0.0.1:1/", "method": "GE T"}, 'net/http: invalid method "GE T"'),
        ({"url": "http://127.0.0.1:1/", "timeoutSeconds": "soon"}, 'invalid http.timeoutSeconds "soon"'),
        ({"url": "http://127.0.0.1:1/", "bodyFrom": {}}, "`http.bodyFrom` needs `bytes`"),
        ({"url": "http://127.0.0.1:1/", "bodyFrom": {"bytes": "@@"}}, "`http.bodyFrom.bytes` is not valid"),
        ({"url": "http://127.0.0.1:1/", "headers": [{"value": "x"}]}, "`http.headers[0]` must be a mapping"),
        ({"method": "GET"}, "template 'call': `http.url` is required"),
    ],
)
def test_bad_templates_fail_with_a_clear_message(http_block, expected):
    update = run(http_block)
    assert update.phase == "Failed"
    assert expected in update.message


def _self_signed(tmp_path: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


def test_insecure_skip_verify_accepts_a_self_signed_certificate(tmp_path):
    site = Site(tls=_self_signed(tmp_path))
    try:
        refused = run({"url": f"{site.url}/echo"})
        accepted = run({"url": f"{site.url}/echo", "insecureSkipVerify": True})
    finally:
        site.close()
    assert refused.phase == "Failed"
    assert refused.message.startswith(f'Get "{site.url}/echo": ')
    assert "CERTIFICATE_VERIFY_FAILED" in refused.message
    assert (accepted.phase, echoed(accepted)["path"]) == ("Succeeded", "/echo")


# --- the secrets file ---


def test_secret_values_never_show_in_repr(secrets):
    assert TOKEN not in repr(secrets)
    assert secrets.names == ["api", "other"]
    assert secrets.get("api", "token") == TOKEN


def test_a_list_of_secrets_is_read(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("kind: List\nitems:\n  - {kind: Secret, metadata: {name: a}, stringData: {k: v}}\n")
    assert SecretStore.from_file(path).get("a", "k") == "v"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "kind: ConfigMap\nmetadata: {name: a}\n",
            "document 1: expected `kind: Secret`, got kind 'ConfigMap'",
        ),
        ("kind: Secret\nmetadata: {}\n", "document 1: the Secret has no `metadata.name`"),
        ("kind: Secret\nmetadata: {name: a}\ndata: {k: '%%%'}\n", "secret 'a': `data.k` is not valid base64"),
        (
            "kind: Secret\nmetadata: {name: a}\nstringData: {port: 8080}\n",
            "`stringData.port` must be a string",
        ),
        ("kind: Secret\nmetadata: {name: a}\nstringData: [x]\n", "`stringData` must be a mapping"),
        (
            "kind: Secret\nmetadata: {name: a}\n---\n---\nkind: Secret\nmetadata: {name: a}\n",
            "document 3: secret 'a' is defined twice",
        ),
        ("kind: Secret\nmetadata: {name: [\n", "not valid YAML"),
        ("- a\n", "document 1: expected a Secret (a mapping), got list"),
    ],
)
def test_a_bad_secrets_file_is_refused_naming_the_document_and_field(tmp_path, text, expected):
    path = tmp_path / "secrets.yaml"
    path.write_text(text)
    with pytest.raises(SecretError) as caught:
        SecretStore.from_file(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_a_missing_secrets_file_is_refused(tmp_path):
    with pytest.raises(SecretError, match=r"cannot read the secrets file .*nope\.yaml"):
        SecretStore.from_file(tmp_path / "nope.yaml")
