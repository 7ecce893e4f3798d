"""`argoplug serve` under hostile input and exhausted resources: never a 500, never a hang, bounded memory
and time per connection, no secret echoed.

Everything here runs against a real `argoplug serve` subprocess on loopback, over raw sockets where the
bytes matter (bodies that are not JSON, heads sent byte by byte, bodies shorter than their
Content-Length). The server runs with small limits (1 MiB body, 1 s head and body deadlines, 32
connections) so the bounds show in seconds. Bodies generated from Argo's executor OpenAPI spec
(`swagger_strategies`) are sent as they are and mutated: nested deep, with invalid UTF-8, cut short.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from argoplug.protocol import EXECUTE_PATH
from argoplug.sidecar import write_token_file
from conformance_servers import free_port
from swagger_strategies import execute_template_args

HERE = Path(__file__).parent
MAX_BODY = 1024 * 1024
MAX_CONNECTIONS = 32
PASSWORD = "PW4x-very-secret-9f2c"
ANSWER_WITHIN = 5.0  # seconds: anything slower is a hang here (the deadlines are 1 s)


class Served:
    """A running `argoplug serve` of tests/hostile_plugins.py, its token and its log."""

    def __init__(self, tmp: Path, *options: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token_file = tmp / "token"
        self.token = write_token_file(self.token_file)
        self.log_path = tmp / "serve.log"
        env = dict(
            os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
        )
        self._log = self.log_path.open("w")
        command = [sys.executable, "-m", "argoplug", "serve", "-P", "hostile_plugins:plugins"]
        command += ["--port", str(self.port), "--token-file", str(self.token_file)]
        command += ["--max-body-bytes", str(MAX_BODY), "--body-timeout", "1", "--header-timeout", "1"]
        command += ["--max-connections", str(MAX_CONNECTIONS), "--handler-deadline", "2", *options]
        self.process = subprocess.Popen(
            command,
            stderr=self._log,
            env=env,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, self.log()
            assert time.monotonic() < deadline, self.log()
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        self._log.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    server = Served(tmp_path_factory.mktemp("hostile"), "--log-format", "json")
    yield server
    server.stop()


def head(body_length: int | None, token: str | None, *, path: str = EXECUTE_PATH, extra: str = "") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: sidecar", "Content-Type: application/json"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    if body_length is not None:
        lines.append(f"Content-Length: {body_length}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def exchange(
    served: Served, data: bytes, *, half_close: bool = False, pace: float = 0.0
) -> tuple[int, bytes]:
    """Send `data` on a new connection (a byte per `pace` seconds when given), read the reply to its end.

    Returns (status, body); status 0 when the server closed without answering. Fails the test when no
    answer (or close) comes within ANSWER_WITHIN seconds after the last byte.
    """
    with socket.create_connection(("127.0.0.1", served.port), timeout=ANSWER_WITHIN) as connection:
        try:
            if pace:
                for index in range(len(data)):
                    connection.sendall(data[index : index + 1])
                    time.sleep(pace)
            else:
                connection.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed by the server while sending: read what it said
        if half_close:
            connection.shutdown(socket.SHUT_WR)
        received = b""
        try:
            while chunk := connection.recv(65536):
                received += chunk
                if _complete(received):
                    break
        except TimeoutError:
            pytest.fail(f"no answer within {ANSWER_WITHIN} s; got {received[:200]!r}")
        except ConnectionResetError:
            pass
    if not received:
        return 0, b""
    status_line, _, rest = received.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def _complete(received: bytes) -> bool:
    header, separator, body = received.partition(b"\r\n\r\n")
    if not separator:
        return False
    for line in header.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def body_of(plugin: bytes, *, name: bytes = b'"wf"', template: bytes = b'"t"', extra: bytes = b"") -> bytes:
    return (
        b'{"workflow":{"metadata":{"name":' + name + b',"namespace":"argo","uid":"u-1"}},'
        b'"template":{"name":' + template + extra + b',"plugin":' + plugin + b"}}"
    )


def post(served: Served, body: bytes, token: str | None = "") -> tuple[int, bytes]:
    return exchange(served, head(len(body), served.token if token == "" else token) + body)


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


NESTED = "invalid template in request: nested deeper than the server decodes"
CASES: list[tuple[str, bytes, int, Any]] = []
for levels in (1_000, 10_000, 100_000):
    CASES += [
        (f"own plugin block nested {levels}", body_of(b'{"noop":{"x":' + deep(levels) + b"}}"), 200, NESTED),
        (f"foreign plugin block nested {levels}", body_of(b'{"other":{"x":' + deep(levels) + b"}}"), 200, {}),
        (
            f"foreign, inputs.artifacts nested {levels}",
            body_of(b'{"other":{}}', extra=b',"inputs":{"artifacts":' + deep(levels) + b"}"),
            200,
            {},
        ),
        (
            f"own, unknown field nested {levels}",
            body_of(b'{"noop":{}}', extra=b',"zz":' + deep(levels)),
            200,
            NESTED,
        ),
        (
            f"foreign, unknown field nested {levels}",
            body_of(b'{"other":{}}', extra=b',"zz":' + deep(levels)),
            200,
            {},
        ),
    ]
CASES += [
    (
        "invalid UTF-8 in workflow.metadata.name",
        body_of(b'{"noop":{}}', name=b'"a\xffb"'),
        400,
        "Invalid UTF-8",
    ),
    ("invalid UTF-8 in template.name", body_of(b'{"noop":{}}', template=b'"a\xffb"'), 400, "Invalid UTF-8"),
    ("invalid UTF-8 in a plugin argument", body_of(b'{"noop":{"v":"a\xffb"}}'), 400, "Invalid UTF-8"),
    ("invalid UTF-8 in a foreign plugin's argument", body_of(b'{"other":{"v":"\xff"}}'), 200, {}),
    (
        "huge float and non-ASCII keys in the plugin block",
        body_of('{"noop":{"é€":1e999999,"x":1.8e309}}'.encode()),
        200,
        "invalid template in request: Number out of range",
    ),
    ("not JSON", b"\x00\x01 not json", 400, "malformed template.execute request"),
    ("a JSON array", b"[1, 2]", 400, "malformed template.execute request"),
    ("an empty body", b"", 400, "malformed template.execute request"),
    ("nested too deep and malformed", b'{"template":' + b"[" * 5000, 400, "malformed"),
    ("a body over the limit", body_of(b'{"noop":{"x":"' + b"a" * MAX_BODY + b'"}}'), 413, "larger than"),
]


@pytest.mark.parametrize(("body", "status", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hand_made_bad_bodies_get_a_clear_answer_never_a_500(served: Served, body, status, expected) -> None:
    got, reply = post(served, body)
    assert got == status, reply[:300]
    if isinstance(expected, dict):
        assert json.loads(reply) == expected
    else:
        assert expected in reply.decode(errors="replace")


def test_the_server_logged_no_traceback_for_any_of_them(served: Served) -> None:
    for _, body, _, _ in CASES:
        post(served, body)
    assert "Traceback" not in served.log()
    assert "Exception in ASGI application" not in served.log()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    args=execute_template_args(),
    key=st.sampled_from(["noop", "secretive", "fsname", "not-ours"]),
    block=st.one_of(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=3)),
    mutation=st.sampled_from(["none", "nest", "invalid-utf8", "cut", "nest-foreign-field"]),
    where=st.floats(min_value=0, max_value=1),
)
def test_generated_bodies_from_the_executor_swagger_never_get_a_500_or_hang(
    served: Served, args, key, block, mutation, where
) -> None:
    args["template"]["plugin"] = {key: block}
    data = json.dumps(args, ensure_ascii=False).encode("utf-8", "surrogatepass")
    at = int(len(data) * where)
    if mutation == "nest":
        data = data.replace(b"{", b'{"deep":' + deep(2000) + b",", 1) if b"{}" not in data[:2] else data
    elif mutation == "invalid-utf8":
        quote = data.find(b'"', at)
        data = data[: quote + 1] + b"\xff\xfe" + data[quote + 1 :] if quote >= 0 else data + b"\xff"
    elif mutation == "cut":
        data = data[:at]
    elif mutation == "nest-foreign-field":
        data = data[:1] + b'"zz":' + deep(3000) + b"," + data[1:]
    status, reply = post(served, data)
    assert status in (200, 400, 413), reply[:300]
    if status == 200 and mutation in ("none", "nest-foreign-field") and key == "not-ours":
        assert json.loads(reply) == {}


def test_a_body_shorter_than_its_content_length_is_answered_400_when_the_client_closes_its_side(
    served: Served,
) -> None:
    body = body_of(b'{"noop":{}}')
    started = time.monotonic()
    status, reply = exchange(served, head(len(body) + 100, served.token) + body, half_close=True)
    assert (status, reply) == (400, b"the client closed before its body reached its Content-Length")
    assert time.monotonic() - started < 1.0  # at once, not after the 1 s body deadline


def test_a_body_that_never_completes_is_answered_408_after_the_body_deadline(served: Served) -> None:
    body = body_of(b'{"noop":{}}')
    status, reply = exchange(served, head(len(body) + 100, served.token) + body)
    assert status == 408
    assert b"request body not received within 1 s" in reply


def test_a_body_sent_byte_by_byte_is_cut_off_by_the_body_deadline(served: Served) -> None:
    body = body_of(b'{"noop":{}}')
    started = time.monotonic()
    status, _ = exchange(served, head(len(body), served.token) + body[:20], pace=0.1)
    assert status == 408
    assert time.monotonic() - started < 1.0 + 20 * 0.1 + ANSWER_WITHIN


def test_a_head_sent_byte_by_byte_is_closed_after_the_head_deadline(served: Served) -> None:
    data = head(100, served.token)
    started = time.monotonic()
    status, reply = exchange(served, data[:25], pace=0.2)  # 5 s of head: cut at 1 s
    assert (status, reply) == (408, b"request head not received within 1 s")
    assert time.monotonic() - started < 5.0


def test_a_connection_that_sends_nothing_is_closed_after_the_head_deadline(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=ANSWER_WITHIN) as connection:
        started = time.monotonic()
        received = connection.recv(4096)
    assert received.startswith(b"HTTP/1.1 408 ")
    assert 0.9 < time.monotonic() - started < 3.0


def test_a_content_length_over_the_limit_is_answered_413_without_sending_the_body(served: Served) -> None:
    status, reply = exchange(served, head(10**9, served.token))
    assert status == 413
    assert f"request body of {10**9} bytes is larger than the {MAX_BODY} bytes served".encode() in reply


def test_a_chunked_body_over_the_limit_is_answered_413_once_it_passes_the_limit(served: Served) -> None:
    chunk = b"a" * 65536
    chunks = (f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n") * (MAX_BODY // len(chunk) + 2)
    data = head(None, served.token, extra="Transfer-Encoding: chunked\r\n") + chunks + b"0\r\n\r\n"
    status, reply = exchange(served, data)
    assert status == 413
    assert b"request body is larger than the" in reply


def test_bodies_in_flight_past_their_bound_get_503_and_small_ones_still_pass(served: Served) -> None:
    # Four bodies of just under 1 MiB each, all but their last byte sent and held, fill the 4 MiB in
    # flight (the fifth's bytes would pass it: 503), while a small body, as the agent sends, still passes.
    # What counts is what arrived: a slow body holds only the bytes it sent.
    size = MAX_BODY - 10
    held = []
    try:
        for _ in range(4):
            connection = socket.create_connection(("127.0.0.1", served.port))
            connection.sendall(head(size, served.token) + b"[" + b" " * (size - 2))
            held.append(connection)
        time.sleep(0.3)
        status, reply = exchange(served, head(size, served.token) + b"[" + b" " * (size - 2) + b"]")
        small = post(served, body_of(b'{"noop":{}}'))
    finally:
        for connection in held:
            connection.close()
    assert status == 503
    assert b"bytes of request bodies in flight" in reply
    assert small[0] == 200


def test_a_head_too_large_or_with_too_many_headers_is_answered_431(served: Served) -> None:
    huge = head(2, served.token, extra="X-Big: " + "a" * 200_000 + "\r\n") + b"{}"
    many = head(2, served.token, extra="".join(f"X-{i}: v\r\n" for i in range(150))) + b"{}"
    assert exchange(served, huge) == (431, b"request head larger than 65536 bytes")
    assert exchange(served, many) == (431, b"more than 100 headers")


def test_a_trailing_slash_is_a_404_that_echoes_nothing(served: Served) -> None:
    status, reply = exchange(served, head(2, served.token, path=EXECUTE_PATH + "/") + b"{}")
    assert status == 404
    assert b"sidecar" not in reply


def test_connections_beyond_the_cap_get_503_while_open_ones_keep_being_served(served: Served) -> None:
    body = body_of(b'{"noop":{}}')
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {served.token}"}) as agent:
        assert agent.post(EXECUTE_PATH, content=body).status_code == 200  # its connection is open
        idle = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(MAX_CONNECTIONS)]
        try:
            time.sleep(0.1)
            with socket.create_connection(("127.0.0.1", served.port), timeout=ANSWER_WITHIN) as extra:
                refused = extra.recv(4096)
            served_meanwhile = agent.post(EXECUTE_PATH, content=body)
        finally:
            for connection in idle:
                connection.close()
    assert refused.startswith(b"HTTP/1.1 503 ")
    assert served_meanwhile.status_code == 200
    assert served_meanwhile.json()["node"]["phase"] == "Succeeded"


def test_a_client_that_disconnects_mid_body_logs_no_traceback(served: Served) -> None:
    before = served.log()
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", served.port)) as connection:
            connection.sendall(head(5000, served.token) + b'{"workflow":')
    time.sleep(0.3)
    added = served.log()[len(before) :]
    assert "Traceback" not in added
    assert len(added) < 20 * 400  # a line at most per abort, not kilobytes


def test_blocked_handlers_of_one_plugin_do_not_hold_up_another_plugins_calls(tmp_path) -> None:
    # 70 sync handlers sleeping 4 s: more than the 64 threads a pool has. Another plugin's no-op must
    # still run at once: answered Succeeded, not "still running" after the 2 s handler deadline.
    server = Served(tmp_path, "--max-connections", "256")
    block = body_of(b'{"blocking":{"seconds":4}}')
    try:
        with ThreadPoolExecutor(max_workers=70) as pool:
            blocked = [
                pool.submit(post, server, block.replace(b'"t"', f'"t{i}"'.encode())) for i in range(70)
            ]
            time.sleep(0.5)
            status, reply = post(server, body_of(b'{"noop":{}}'))
            answers = [future.result()[0] for future in blocked]
    finally:
        server.stop()
    assert answers == [200] * 70
    assert status == 200
    assert json.loads(reply)["node"]["phase"] == "Succeeded"


def test_lone_surrogates_in_outputs_and_messages_are_answered_escaped(served: Served) -> None:
    status, reply = post(served, body_of(b'{"fsname":{}}'))
    assert status == 200
    node = json.loads(reply)["node"]
    assert node["phase"] == "Succeeded"
    assert node["message"] == "wrote report-\\udcff.csv"
    assert {"name": "file", "value": "report-\\udcff.csv"} in node["outputs"]["parameters"]


@pytest.mark.parametrize(
    ("block", "phase", "says"),
    [
        # a wrong type: the value does not convert, and is not quoted
        ({"user": "u", "password": {"vault": PASSWORD}}, "Failed", "got a value of type dict (not shown"),
        ({"user": "u", "password": [PASSWORD, 1]}, "Failed", "(not shown: secret)"),
        # an unknown field whose name, or value, is the secret: neither is echoed
        ({"user": "u", "password": "x", PASSWORD: 1}, "Failed", "1 field is not an argument"),
        ({"user": "u", "password": "x", "extra": PASSWORD}, "Failed", "1 field is not an argument"),
        (
            {"user": "u", "password": PASSWORD, "leak": "raise"},
            "Error",
            "RuntimeError: login u:[secret] refused",
        ),
        (
            {"user": "u", "password": PASSWORD, "leak": "permanent"},
            "Failed",
            "the password [secret] is wrong",
        ),
        ({"user": "u", "password": PASSWORD, "leak": "temporary"}, "Running", "retrying with [secret]"),
        ({"user": "u", "password": PASSWORD, "leak": "output"}, "Succeeded", ""),
    ],
    ids=[
        "wrong-type",
        "wrong-type-list",
        "unknown-name",
        "unknown-value",
        "raise",
        "permanent",
        "temporary",
        "output",
    ],
)
def test_a_secret_argument_never_appears_in_a_reply_or_a_log_line(served: Served, block, phase, says) -> None:
    before = served.log()
    status, reply = post(served, body_of(json.dumps({"secretive": block}).encode()))
    assert status == 200
    node = json.loads(reply)["node"]
    assert node["phase"] == phase
    assert says in node.get("message", "")
    assert PASSWORD.encode() not in reply
    if block.get("leak") == "output":
        assert {"name": "echo", "value": "[secret]"} in node["outputs"]["parameters"]
        assert {"name": "as-json", "value": '["[secret]"]'} in node["outputs"]["parameters"]
    time.sleep(0.05)
    added = served.log()[len(before) :]
    assert "template.execute" in added  # the call was logged...
    assert PASSWORD not in added  # ...without the secret, traceback included


def test_text_logs_escape_what_a_caller_sent(tmp_path) -> None:
    server = Served(tmp_path, "--log-format", "text")
    try:
        name = json.dumps("wf\n12:00:00 ERROR   forged line\x1b[31m").encode()
        status, _ = post(server, body_of(b'{"noop":{}}', name=name))
    finally:
        server.stop()
    assert status == 200
    [line] = [line for line in server.log().splitlines() if "template.execute" in line]
    assert "workflow=wf\\x0a12:00:00 ERROR   forged line\\x1b[31m" in line
    assert not any(line.startswith("12:00:00 ERROR   forged") for line in server.log().splitlines())


def test_a_rotated_token_of_the_same_size_and_mtime_is_taken(served: Served) -> None:
    body = body_of(b'{"noop":{}}')
    assert post(served, body)[0] == 200
    before = served.token_file.stat()
    new = "".join(reversed(served.token))
    served.token_file.chmod(0o640)
    served.token_file.write_text(new)
    os.utime(served.token_file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert served.token_file.stat().st_size == before.st_size
    try:
        assert post(served, body, token=new)[0] == 200
        assert post(served, body, token=served.token)[0] == 403
    finally:
        served.token_file.write_text(served.token)


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_token_file_that_is_not_a_regular_file_is_503_at_once(served: Served, tmp_path, kind) -> None:
    body = body_of(b'{"noop":{}}')
    served.token_file.unlink()
    try:
        if kind == "fifo":
            os.mkfifo(served.token_file)
        else:
            served.token_file.symlink_to("/dev/zero")
        status, reply = post(served, body)
        assert status == 503
        assert b"not a regular file" in reply
        assert post(served, body_of(b'{"other":{}}'))[0] == 200  # foreign keys never read it
    finally:
        served.token_file.unlink()
        served.token_file.write_text(served.token)


def test_many_calls_at_once_with_a_slow_client_among_them_are_all_answered(served: Served) -> None:
    # A slow head on one connection never holds up the others (one event loop, no thread per client).
    body = body_of(b'{"noop":{}}')
    slow = threading.Thread(target=exchange, args=(served, head(100, served.token)), kwargs={"pace": 0.05})
    slow.start()
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda _: post(served, body)[0], range(64)))
    slow.join()
    assert answers == [200] * 64
