#!/usr/bin/env python3
"""The plugin server's peak memory (VmHWM) under hostile bodies: the largest accepted, refused oversized
ones, nested a million levels deep.

Each case runs in a fresh `python -m argoplug serve --plugin instant_plugin:<attr>` (bench/instant_plugin.py,
a sync handler returning `Result.succeeded()` at once) on a free port of 127.0.0.1 with the default limits,
so the peaks do not mix. For each: VmHWM of /proc/<pid>/status once it answers /healthz (and 1 s more, past
its GC tuning), after one ordinary call of ours, and after the hostile request, sent over a raw socket; the
answer, the time from the end of the request head to the first byte of the answer, and an ordinary call
afterwards (is it still serving?). Writes bench/results/hostile_memory.md (and .json).

Usage: python bench/hostile_memory.py [--only NAME,...] [--output FILE]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import http.client
import json
import os
import platform
import resource
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import run
from run import BENCH, EXECUTE, HOST, PROCS, RESULTS, argoplug_server, free_port, rss_mib, step

MiB = 1024 * 1024
MAX_BODY = 4 * MiB  # the server's default --max-body-bytes
MARGIN = 64  # bytes under the limit for "the largest accepted body"
SMALL_BODY = 64 * 1024  # bodies up to this size are not counted against --max-bytes-in-flight
HUGE = 100_000_000  # "100 MB"
DEEP = 1_000_000  # nesting levels
PIECE = MiB  # bytes per send() of a large body
CHUNK = 64 * 1024  # bytes per chunk of a chunked body
ANSWER_LIMIT = 60.0  # seconds: a case not answered by then is reported as a hang
START_LIMIT = 20.0
# The server's address space is capped (RLIMIT_AS) so that a case can never take the shared machine's memory:
# peak memory grows with the number of bodies decoded at once (the README). No case here comes near it.
SAFETY_CAP = 8 * 1024 * MiB

PREFIX = b'{"workflow":{"metadata":{"name":"bench","namespace":"argo","uid":"u"}},"template":{"name":"t",'


def body_with(key: str, block: bytes) -> bytes:
    """A template.execute body whose template's plugin block for `key` is the JSON text `block`."""
    return PREFIX + b'"plugin":{"' + key.encode() + b'":' + block + b"}}}"


def list_filling(key: str, element: bytes, total: int) -> bytes:
    """`[element,element,...]` as the block of `key`, as many as fit in `total` bytes of body."""
    room = total - len(body_with(key, b"[]"))
    count = (room + 1) // (len(element) + 1)
    return body_with(key, b"[" + b",".join([element] * count) + b"]")


def string_filling(key: str, total: int) -> bytes:
    return body_with(key, b'"' + b"a" * (total - len(body_with(key, b'""'))) + b'"')


def deep(key: str, levels: int) -> bytes:
    return body_with(key, b"[" * levels + b"]" * levels)


# ------------------------------------------------------------------------------------------- requests


def head(length: int | None, token: str, chunked: bool = False) -> bytes:
    lines = [
        f"POST {EXECUTE} HTTP/1.1",
        f"Host: {HOST}",
        "Content-Type: application/json",
        f"Authorization: Bearer {token}",
    ]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    else:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def pieces(data: bytes, size: int = PIECE) -> Iterator[bytes]:
    view = memoryview(data)
    for i in range(0, len(data), size):
        yield bytes(view[i : i + size])


def filler(total: int, size: int = PIECE) -> Iterator[bytes]:
    """`total` bytes of JSON-looking body, `size` at a time, without holding them all."""
    block = b"[" + b'"a",' * (size // 4 - 1) + b'"a"'
    sent = 0
    while sent < total:
        piece = block[: total - sent]
        sent += len(piece)
        yield piece


def chunked(source: Iterator[bytes]) -> Iterator[bytes]:
    for data in source:
        yield f"{len(data):x}\r\n".encode() + data + b"\r\n"
    yield b"0\r\n\r\n"


@dataclass
class Exchange:
    status: int | None  # None: the connection closed without an answer
    reply: bytes
    answer_s: float | None  # end of the head to the first byte of the answer
    sent_before_answer: int  # body bytes handed to the kernel before the answer came
    sent_total: int
    send_error: str | None
    held_hwm: float | None = None  # VmHWM while the bodies were held (all but their last byte sent)
    answers: str | None = None  # several connections: how many got which status


def exchange(port: int, request_head: bytes, body: Iterator[bytes]) -> Exchange:
    """Send the head, then the body from a thread; read the answer meanwhile (the server may answer
    before the body is sent: 413). Bounded by ANSWER_LIMIT."""
    sock = socket.create_connection((HOST, port), timeout=ANSWER_LIMIT)
    answered = threading.Event()
    state: dict[str, Any] = {"sent": 0, "at_answer": None, "error": None}

    def send() -> None:
        try:
            for data in body:
                if answered.is_set():
                    break
                sock.sendall(data)
                state["sent"] += len(data)
        except OSError as exc:  # the server closed after answering: EPIPE / ECONNRESET
            state["error"] = type(exc).__name__

    try:
        sock.sendall(request_head)
        t0 = time.perf_counter()
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        data = b""
        first: float | None = None
        while True:
            try:
                got = sock.recv(65536)
            except TimeoutError:
                raise RuntimeError(f"no answer within {ANSWER_LIMIT:g} s") from None
            except ConnectionResetError:
                break
            if not got:
                break
            if first is None:
                first = time.perf_counter() - t0
                state["at_answer"] = state["sent"]
                answered.set()
            data += got
            if _complete(data):
                break
        answered.set()
        sender.join(timeout=ANSWER_LIMIT)
    finally:
        sock.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None
    reply = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
    at_answer = state["at_answer"] if state["at_answer"] is not None else state["sent"]
    return Exchange(status, reply, first, at_answer, state["sent"], state["error"])


def _complete(data: bytes) -> bool:
    if b"\r\n\r\n" not in data:
        return False
    top, rest = data.split(b"\r\n\r\n", 1)
    for line in top.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(rest) >= int(value)
    return False


def ordinary_call(port: int, token: str, check: bool = True) -> tuple[int, float]:
    """A call of ours with a `{}` block: (status, seconds); raises RuntimeError unless it is a Succeeded
    node (when `check`)."""
    body = body_with("instant", b"{}")
    conn = http.client.HTTPConnection(HOST, port, timeout=ANSWER_LIMIT)
    try:
        t = time.perf_counter()
        conn.request(
            "POST", EXECUTE, body, {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        )
        response = conn.getresponse()
        reply = response.read()
        elapsed = time.perf_counter() - t
    finally:
        conn.close()
    if check and (response.status != 200 or json.loads(reply).get("node", {}).get("phase") != "Succeeded"):
        raise RuntimeError(f"ordinary call: HTTP {response.status} {reply[:200]!r}")
    return response.status, elapsed


# ---------------------------------------------------------------------------------------------- cases


Probe = Callable[[], float]  # the server's VmHWM now (MiB)


@dataclass
class Case:
    name: str
    what: str  # the body, as the table says it
    plugin: str  # attribute of instant_plugin served
    send: Callable[[int, str, Probe], Exchange] | None  # None: idle only
    options: tuple[str, ...] = ()  # more `argoplug serve` options


def fixed(body_of: Callable[[], bytes], token: str | None = None) -> Callable[[int, str, Probe], Exchange]:
    """Send one body (`token`: another token than the server's)."""

    def send(port: int, good: str, hwm: Probe) -> Exchange:
        body = body_of()
        return exchange(port, head(len(body), token or good), pieces(body))

    return send


def huge_with_length(port: int, token: str, hwm: Probe) -> Exchange:
    return exchange(port, head(HUGE, token), filler(HUGE))


def huge_chunked(port: int, token: str, hwm: Probe) -> Exchange:
    return exchange(port, head(None, token, chunked=True), chunked(filler(HUGE, CHUNK)))


def held(count: int, body_of: Callable[[], bytes], authorized: bool) -> Callable[[int, str, Probe], Exchange]:
    """`count` connections each send a whole body but its last byte; once all have, VmHWM is read, and
    the last bytes are sent one connection after the other, and an ordinary call on a connection of its
    own; then every answer is read. `answer_s`: from the first last byte to the last answer."""

    def send(port: int, token: str, hwm: Probe) -> Exchange:
        body = body_of()
        request = head(len(body), token)
        if not authorized:
            request = request.replace(f"Authorization: Bearer {token}\r\n".encode(), b"")
        socks: list[socket.socket] = []
        probed: list[str] = []
        try:
            for _ in range(count):
                sock = socket.create_connection((HOST, port), timeout=ANSWER_LIMIT)
                socks.append(sock)
                with contextlib.suppress(OSError):  # answered (503) and closed before all was sent
                    sock.sendall(request + body[:-1])
            time.sleep(0.5)  # the server has read what was sent
            peak_held = hwm()
            t0 = time.perf_counter()
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.sendall(body[-1:])
            probe = threading.Thread(target=lambda: probed.append(_timed_call(port, token)), daemon=True)
            probe.start()
            answers = [_read_answer(sock) for sock in socks]
            elapsed = time.perf_counter() - t0
            probe.join(ANSWER_LIMIT)
        finally:
            for sock in socks:
                sock.close()
        counts = collections.Counter(status for status, _ in answers)
        tally = ", ".join(f"{n} × {status or 'closed'}" for status, n in sorted(counts.items(), key=str))
        tally += f"; an ordinary call sent just after them: {probed[0] if probed else 'no answer'}"
        # The answer shown: the rarest status (a 200 among 503s, say).
        shown, last = min(answers, key=lambda a: (counts[a[0]], str(a[0])))
        return Exchange(shown, last, elapsed, count * len(body), count * len(body), None, peak_held, tally)

    return send


def _timed_call(port: int, token: str) -> str:
    """An ordinary call, told as its answer's status and time."""
    try:
        status, elapsed = ordinary_call(port, token, check=False)
    except OSError as exc:
        return f"failed: {type(exc).__name__}"
    return f"{status} in {elapsed * 1000:,.0f} ms"


def _read_answer(sock: socket.socket) -> tuple[int | None, bytes]:
    data = b""
    try:
        while not _complete(data):
            got = sock.recv(65536)
            if not got:
                break
            data += got
    except (TimeoutError, ConnectionResetError):
        pass
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None
    return status, data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""


LIMIT_BODY = MAX_BODY - MARGIN


def STRINGS() -> bytes:
    return list_filling("instant", b'"a"', LIMIT_BODY)


def OBJECTS() -> bytes:
    return list_filling("instant", b"{}", LIMIT_BODY)


def SMALL_OBJECTS() -> bytes:
    return list_filling("instant", b"{}", SMALL_BODY)


CASES = [
    Case("idle", "none (started, /healthz answered)", "plugin", None),
    Case("list-strings", f'`["a","a",…]`, {LIMIT_BODY:,} bytes, our key', "plugin", fixed(STRINGS)),
    Case("list-strings-dict-args", "the same, the plugin's arguments an object", "dict_plugin",
         fixed(STRINGS)),
    Case("string", f'`"aaa…"`, one string, {LIMIT_BODY:,} bytes, our key', "plugin",
         fixed(lambda: string_filling("instant", LIMIT_BODY))),
    Case("list-objects", f"`[{{}},{{}},…]`, {LIMIT_BODY:,} bytes, our key", "plugin", fixed(OBJECTS)),
    Case("list-objects-bad-token", "the same, a wrong token", "plugin", fixed(OBJECTS, token="x" * 32)),
    Case("list-objects-foreign", "the same for a foreign key", "plugin",
         fixed(lambda: list_filling("other-plugin", b"{}", LIMIT_BODY))),
    Case("huge-length", f"{HUGE:,} bytes, `Content-Length: {HUGE}`", "plugin", huge_with_length),
    Case("huge-chunked", f"{HUGE:,} bytes, chunked ({CHUNK // 1024} KiB chunks)", "plugin", huge_chunked),
    Case("deep-foreign", f"`[`×{DEEP:,} `]`×{DEEP:,}, a foreign key", "plugin",
         fixed(lambda: deep("other-plugin", DEEP))),
    Case("deep-ours", f"`[`×{DEEP:,} `]`×{DEEP:,}, our key", "plugin", fixed(lambda: deep("instant", DEEP))),
    Case("3-list-objects", "3 connections, `[{},{},…]` each, our key, sent together", "plugin",
         held(3, OBJECTS, authorized=True)),
    Case("8-list-objects", "8 connections, the same", "plugin", held(8, OBJECTS, authorized=True)),
    Case("255-held-no-token", "255 connections, 4 MiB each, no token, all held but the last byte", "plugin",
         held(255, OBJECTS, authorized=False)),
    Case("255-small-list-objects", "255 connections, `[{},{},…]` of 64 KiB each, our key, sent together",
         "plugin", held(255, SMALL_OBJECTS, authorized=True)),
    Case("8-list-objects-unbounded", "8 connections, `[{},{},…]` each, our key, sent together", "plugin",
         held(8, OBJECTS, authorized=True), ("--max-bytes-in-flight", str(8 * MAX_BODY))),
    Case("255-held-no-token-unbounded", "255 connections, 4 MiB each, no token, all held but the last byte",
         "plugin", held(255, OBJECTS, authorized=False), ("--max-bytes-in-flight", str(255 * MAX_BODY))),
]  # fmt: skip


def _memory_cap() -> None:
    """In the server's process, before exec: a safety net for the shared machine (see SAFETY_CAP)."""
    resource.setrlimit(resource.RLIMIT_AS, (SAFETY_CAP, SAFETY_CAP))


def wait_healthy(proc: Any, port: int, log: Path) -> None:
    deadline = time.perf_counter() + START_LIMIT
    while time.perf_counter() < deadline:
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    raise RuntimeError(f"server did not start: {log.read_text(errors='replace')[-2000:]}")


def summary(ex: Exchange) -> str:
    if ex.status is None:
        return "closed without an answer"
    try:
        decoded = json.loads(ex.reply)
    except ValueError:
        return f"{ex.status} {ex.reply[:60]!r}"
    if isinstance(decoded, dict) and "node" in decoded:
        node = decoded["node"]
        message = node.get("message", "")
        text = f"{ex.status} {node.get('phase')}"
        return text + (f": {message[:70]}{'…' if len(message) > 70 else ''}" if message else "")
    if isinstance(decoded, dict) and "error" in decoded:
        return f"{ex.status} {decoded['error'][:70]}"
    return f"{ex.status} `{ex.reply[:40].decode(errors='replace')}`"


def measure(case: Case, workdir: Path, token_file: Path, token: str) -> dict[str, Any]:
    server = argoplug_server(f"instant_plugin:{case.plugin}")
    port = free_port()
    log = workdir / f"{case.name}.log"
    result: dict[str, Any] = {"case": case.name, "what": case.what, "options": " ".join(case.options)}
    with open(log, "ab") as err:
        proc = PROCS.start(
            [*server.argv(port, token_file), *case.options],
            env={**os.environ, **server.env(port, token_file)},
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            cwd=BENCH,
            preexec_fn=_memory_cap,
        )
    try:
        wait_healthy(proc, port, log)
        time.sleep(1.0)  # past the GC tuning (0.5 s after start)
        result["idle_hwm"] = rss_mib(proc.pid, "VmHWM")
        if case.send is None:
            result["idle_rss"] = rss_mib(proc.pid)
            return result
        ordinary_call(port, token)
        result["warm_hwm"] = rss_mib(proc.pid, "VmHWM")
        ex = case.send(port, token, lambda: rss_mib(proc.pid, "VmHWM"))
        time.sleep(0.3)
        result.update(
            status=ex.status,
            answer=ex.answers or summary(ex),
            held_hwm=ex.held_hwm,
            reply_bytes=len(ex.reply),
            answer_s=ex.answer_s,
            sent_before_answer=ex.sent_before_answer,
            sent_total=ex.sent_total,
            send_error=ex.send_error,
            after_hwm=rss_mib(proc.pid, "VmHWM"),
            after_rss=rss_mib(proc.pid),
        )
        try:
            result["next_call_ms"] = ordinary_call(port, token)[1] * 1000
        except (OSError, RuntimeError) as exc:
            result["next_call_ms"] = None
            result["next_call_error"] = str(exc)
        result["alive"] = proc.poll() is None
        return result
    finally:
        PROCS.stop(proc)
        text = log.read_text(errors="replace")
        result["log_problems"] = [
            ln[:300] for ln in text.splitlines() if "Traceback" in ln or '"level": "error"' in ln
        ]


# ---------------------------------------------------------------------------------------------- report


def machine_line() -> str:
    from importlib.metadata import version

    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "unknown",
    )
    packages = ", ".join(f"{d} {version(d)}" for d in ("uvicorn", "httptools", "starlette", "msgspec"))
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{date}; {len(os.sched_getaffinity(0))} CPUs, {cpu}; Linux {platform.release()}; "
        f"Python {platform.python_version()}; {packages}"
    )


def _mib(x: float | None) -> str:
    return "" if x is None else f"{x:.1f}"


def report(results: list[dict[str, Any]]) -> str:
    rows = [
        "| case | body | answer | answer after (s) | body bytes sent when answered | VmHWM idle | "
        "after one call | after the case | growth | VmRSS after | next call (ms) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "status" not in r:
            rows.append(
                f"| {r['case']} | {r['what']} | | | | {_mib(r['idle_hwm'])} | | | | "
                f"{_mib(r.get('idle_rss'))} | |"
            )
            continue
        answer_s = "" if r["answer_s"] is None else f"{r['answer_s']:.3f}"
        nxt = "**failed**" if r["next_call_ms"] is None else f"{r['next_call_ms']:.1f}"
        after = _mib(r["after_hwm"])
        if r.get("held_hwm") is not None:
            after = f"{_mib(r['held_hwm'])} held, {after} answered"
        what = r["what"] + (f" (`{r['options']}`)" if r.get("options") else "")
        rows.append(
            f"| {r['case']} | {what} | {r['answer'].replace('|', '/')} | {answer_s} | "
            f"{r['sent_before_answer']:,} | {_mib(r['idle_hwm'])} | {_mib(r['warm_hwm'])} | "
            f"{after} | +{r['after_hwm'] - r['warm_hwm']:.1f} | {_mib(r['after_rss'])} | {nxt} |"
        )
    problems = [(r["case"], p) for r in results for p in r.get("log_problems", [])]
    notes = [
        "",
        "MiB; VmHWM is the process's peak resident set so far. A fresh server per case. `growth` is the "
        "case's peak over the peak after one ordinary call.",
        "Server log errors/tracebacks: "
        + ("none" if not problems else "; ".join(f"{c}: {p}" for c, p in problems)),
    ]
    title = "# hostile bodies: the server's peak memory"
    return "\n".join([title, "", machine_line(), "", *rows, *notes]) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = ", ".join(c.name for c in CASES)
    p.add_argument("--only", default="", help=f"comma-separated case names: {names}")
    p.add_argument("--output", type=Path, default=RESULTS / "hostile_memory.md")
    opts = p.parse_args(argv)
    wanted = [c for c in CASES if not opts.only or c.name in opts.only.split(",")]
    run.install_signal_handlers()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="argoplug-hostile-") as tmp:
        workdir = Path(tmp)
        token = secrets.token_hex(16)
        token_file = workdir / "token"
        token_file.write_text(token)
        try:
            for case in wanted:
                step(case.name)
                results.append(measure(case, workdir, token_file, token))
                print(json.dumps(results[-1]), file=sys.stderr)
        except KeyboardInterrupt:
            print("interrupted: stopping servers", file=sys.stderr)
            return 130
        finally:
            PROCS.stop_all()
    text = report(results)
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(text)
    opts.output.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    print(text)
    print(f"written: {opts.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
