#!/usr/bin/env python3
"""Benchmark the argoplug plugin server against Argo's documented stdlib example server.

Measures, for each server (argoplug hosting bench/noop_plugin.py; bench/baseline_server.py):
  1. requests/s and p50/p99 latency at 16 connections (wrk) for a template with the server's plugin key;
  2. the same for a foreign plugin key (the server answers `{}` / `null`);
  3. the time from just before Popen to the first answered template.execute call (median of several runs);
  4. resident memory (VmRSS) after 200 calls;
plus argoplug's RSS when serving every installed plugin, and a concurrency probe (one handler blocked 3 s
while 15 other calls arrive). Loopback only. Writes a markdown report to bench/results/latest.md.

Usage: python bench/run.py [--quick] [--duration S] [--runs N] [--startup-runs N]
Needs wrk (Debian: apt-get install -y wrk).
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
LUA = BENCH / "post.lua"
RESULTS = BENCH / "results"
HOST = "127.0.0.1"  # loopback only, always
EXECUTE = "/api/v1/template.execute"
START_LIMIT = 20.0  # seconds a server may take to answer its first call
CALLS_BEFORE_RSS = 200

TARGETS = {"throughput_ratio": 3.0, "p99_ms": 10.0, "first_answer_s": 0.3, "rss_mib": 45.0}


def request_body(plugin_block: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "workflow": {"metadata": {"name": "bench", "namespace": "argo", "uid": "u"}},
            "template": {"name": "t", "inputs": {}, "outputs": {}, "metadata": {}, "plugin": plugin_block},
        },
        separators=(",", ":"),
    ).encode()


FOREIGN = request_body({"other-plugin": {}})


# --------------------------------------------------------------------------------------------- processes


class Processes:
    """Every process the benchmark starts, so that all of them are stopped, whatever happens."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        # A session of its own: a terminal's Ctrl-C reaches only us, and we stop the children in order.
        proc = subprocess.Popen(list(argv), start_new_session=True, **kwargs)
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc in self._procs:
            self._procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self._procs):
            try:
                self.stop(proc)
            except Exception as exc:  # keep stopping the others
                print(f"warning: could not stop pid {proc.pid}: {exc}", file=sys.stderr)


PROCS = Processes()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Server:
    """How to start one kind of server: argv and environment for a port and a token file."""

    def __init__(
        self, name: str, argv: Callable[[int, Path], list[str]], env: Callable[[int, Path], dict[str, str]]
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env

    def start(self, port: int, token_file: Path, log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as err:
            return PROCS.start(
                self.argv(port, token_file),
                env={**os.environ, **self.env(port, token_file)},
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                cwd=BENCH,
            )


def argoplug_server(plugin: str | None) -> Server:
    def argv(port: int, token_file: Path) -> list[str]:
        cmd = [sys.executable, "-m", "argoplug", "serve"]
        if plugin:
            cmd += ["--plugin", plugin]
        return cmd + [
            "--host", HOST, "--port", str(port), "--token-file", str(token_file),
            "--log-format", "json", "--log-level", "warning",
        ]  # fmt: skip

    def env(port: int, token_file: Path) -> dict[str, str]:
        path = os.environ.get("PYTHONPATH", "")
        return {"PYTHONPATH": str(BENCH) + (os.pathsep + path if path else "")} if plugin else {}

    return Server(f"argoplug ({plugin or 'all installed plugins'})", argv, env)


BASELINE = Server(
    "baseline (Argo docs' stdlib server)",
    lambda port, token_file: [sys.executable, str(BENCH / "baseline_server.py")],
    lambda port, token_file: {"HOST": HOST, "PORT": str(port), "ARGO_TOKEN_FILE": str(token_file)},
)


# ------------------------------------------------------------------------------------------------- calls


def call(port: int, body: bytes, token: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """One template.execute call on a fresh connection, as the agent makes it."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(
            "POST",
            EXECUTE,
            body=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def first_answer(proc: subprocess.Popen[bytes], port: int, body: bytes, token: str, t0: float) -> float:
    """Poll with real calls until one is answered; return seconds since `t0`. Bounded in time and count."""
    deadline = t0 + START_LIMIT
    for _ in range(100_000):
        try:
            status, _ = call(port, body, token, timeout=START_LIMIT)
            if status == 200:
                return time.perf_counter() - t0
            raise RuntimeError(f"first call answered HTTP {status}")
        except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before answering")
        if time.perf_counter() > deadline:
            break
        time.sleep(0.001)
    raise RuntimeError(f"server did not answer within {START_LIMIT:g} s")


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def check_reply(port: int, body: bytes, token: str, expect_node: bool) -> None:
    status, reply = call(port, body, token)
    decoded = json.loads(reply) if reply else None
    if status != 200:
        raise RuntimeError(f"sanity call: HTTP {status}: {reply[:200]!r}")
    if expect_node and not (isinstance(decoded, dict) and decoded.get("node", {}).get("phase") == "Succeeded"):
        raise RuntimeError(f"sanity call: expected a Succeeded node, got {reply[:200]!r}")
    if not expect_node and decoded not in ({}, None):
        raise RuntimeError(f"sanity call: expected {{}} or null for a foreign key, got {reply[:200]!r}")


# --------------------------------------------------------------------------------------------------- wrk


def run_wrk(
    port: int, body_file: Path, token_file: Path, duration: float, connections: int, threads: int
) -> dict[str, Any]:
    argv = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s",
        "-s", str(LUA), f"http://{HOST}:{port}{EXECUTE}",
    ]  # fmt: skip
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_TOKEN_FILE": str(token_file)}
    proc = PROCS.start(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=duration + 60)
    finally:
        PROCS.stop(proc)
    text = out.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("BENCH ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.decode(errors='replace')}{text}")
    stats: dict[str, Any] = json.loads(line[len("BENCH ") :])
    stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
    stats["errors"] = sum(stats[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    return stats


# ------------------------------------------------------------------------------------------ measurements


class Bench:
    def __init__(self, opts: argparse.Namespace, workdir: Path) -> None:
        self.opts = opts
        self.workdir = workdir
        self.token = secrets.token_hex(16)
        self.token_file = workdir / "token"
        self.token_file.write_text(self.token)  # no trailing newline, as the agent writes it
        self.token_file.chmod(0o440)
        self.logs: dict[str, Path] = {}

    def log_for(self, name: str) -> Path:
        return self.logs.setdefault(name, self.workdir / f"{len(self.logs)}.log")

    def body_file(self, body: bytes) -> Path:
        path = self.workdir / f"body-{abs(hash(body))}.json"
        path.write_bytes(body)
        return path

    def launch(self, server: Server, probe: bytes) -> tuple[subprocess.Popen[bytes], int, float]:
        port = free_port()
        t0 = time.perf_counter()
        proc = server.start(port, self.token_file, self.log_for(server.name))
        try:
            return proc, port, first_answer(proc, port, probe, self.token, t0)
        except Exception as exc:
            PROCS.stop(proc)
            tail = self.log_for(server.name).read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{server.name}: {exc}\n--- server log ---\n{tail}") from None

    def startup_and_memory(self, server: Server, ours: bytes, probe: bytes | None = None) -> dict[str, Any]:
        """Median time to the first answer over N fresh starts; RSS after 200 calls of each start."""
        firsts, rss, rss_start = [], [], []
        for _ in range(self.opts.startup_runs):
            proc, port, first = self.launch(server, probe or ours)
            try:
                firsts.append(first)
                rss_start.append(rss_mib(proc.pid))
                for _ in range(CALLS_BEFORE_RSS):
                    status, _ = call(port, ours, self.token)
                    if status != 200:
                        raise RuntimeError(f"{server.name}: call answered HTTP {status}")
                rss.append(rss_mib(proc.pid))
            finally:
                PROCS.stop(proc)
        return {
            "first_answer_s": statistics.median(firsts),
            "first_answer_all": firsts,
            "rss_first_mib": statistics.median(rss_start),
            "rss_mib": statistics.median(rss),
        }

    def load(self, server: Server, ours: bytes) -> dict[str, Any]:
        """wrk at N connections, our key then a foreign key, after a warm-up; median of runs."""
        opts = self.opts
        proc, port, _ = self.launch(server, ours)
        try:
            check_reply(port, ours, self.token, expect_node=True)
            check_reply(port, FOREIGN, self.token, expect_node=False)
            files = {"ours": self.body_file(ours), "foreign": self.body_file(FOREIGN)}
            run_wrk(port, files["ours"], self.token_file, opts.warmup, opts.connections, opts.threads)
            runs: dict[str, list[dict[str, Any]]] = {"ours": [], "foreign": []}
            for _ in range(opts.runs):
                for key in ("ours", "foreign"):
                    runs[key].append(
                        run_wrk(port, files[key], self.token_file, opts.duration, opts.connections, opts.threads)
                    )
            result: dict[str, Any] = {"rss_after_load_mib": rss_mib(proc.pid), "hwm_mib": rss_mib(proc.pid, "VmHWM")}
            for key, stats in runs.items():
                result[key] = {
                    "rps": statistics.median(s["rps"] for s in stats),
                    "rps_all": [s["rps"] for s in stats],
                    "p50_ms": statistics.median(s["p50_us"] for s in stats) / 1000,
                    "p99_ms": statistics.median(s["p99_us"] for s in stats) / 1000,
                    "max_ms": max(s["max_us"] for s in stats) / 1000,
                    "errors": sum(s["errors"] for s in stats),
                    "status_errors": sum(s["status_errors"] for s in stats),
                    "requests": sum(s["requests"] for s in stats),
                }
            return result
        finally:
            PROCS.stop(proc)

    def concurrency(self) -> dict[str, Any]:
        """16 concurrent calls to the `slow` plugin: one blocks 3 s; the other 15 should answer at once."""
        server = argoplug_server("slow_plugin:plugin")
        fast, slow = request_body({"slow": {"seconds": 0}}), request_body({"slow": {"seconds": 3}})
        proc, port, _ = self.launch(server, fast)
        results: list[tuple[float, int, bytes] | None] = [None] * 16
        gate = threading.Barrier(15, timeout=10)

        def one(i: int, body: bytes) -> None:
            if i > 0:
                gate.wait()
            t = time.perf_counter()
            status, reply = call(port, body, self.token, timeout=15)
            results[i] = (time.perf_counter() - t, status, reply)

        try:
            check_reply(port, fast, self.token, expect_node=True)
            threads = [threading.Thread(target=one, args=(0, slow), daemon=True)]
            threads[0].start()
            time.sleep(0.3)  # the slow handler is now blocking a worker thread
            threads += [threading.Thread(target=one, args=(i, fast), daemon=True) for i in range(1, 16)]
            for t in threads[1:]:
                t.start()
            for t in threads:
                t.join(timeout=20)
        finally:
            PROCS.stop(proc)
        if any(r is None for r in results):
            raise RuntimeError("concurrency probe: some calls did not finish")
        done = [r for r in results if r is not None]
        ok = all(status == 200 and json.loads(reply)["node"]["phase"] == "Succeeded" for _, status, reply in done)
        others = [latency for latency, _, _ in done[1:]]
        return {
            "slow_s": done[0][0],
            "others_max_ms": max(others) * 1000,
            "others_median_ms": statistics.median(others) * 1000,
            "all_succeeded": ok,
        }


def heavy_modules(plugins: Sequence[str]) -> dict[str, Any]:
    """In a fresh interpreter, do what `argoplug serve` does before serving; say which heavy modules got imported."""
    code = (
        "import json, sys\n"
        "import argoplug.cli\n"
        "from argoplug.registry import load_plugins\n"
        "from argoplug.server import create_app\n"
        f"plugins = load_plugins({list(plugins)!r})\n"
        "create_app(plugins)\n"
        "heavy = ['boto3', 'botocore', 'lightkube', 'moto', 'rich', 'httpx', 'yaml', 'jsonschema', 'pytest']\n"
        "print(json.dumps({'keys': sorted(p.key for p in plugins), 'modules': len(sys.modules),\n"
        "                  'imported': [m for m in heavy if m in sys.modules]}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(BENCH) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, timeout=60, env=env, cwd=BENCH, check=False
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.decode(errors="replace").strip().splitlines()[-1:]}
    return dict(json.loads(proc.stdout))


# ---------------------------------------------------------------------------------------------- report


def machine() -> dict[str, str]:
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")),
        "unknown",
    )
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    versions = []
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("argoplug", "uvicorn", "starlette", "msgspec", "uvloop", "httptools"):
        try:
            versions.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": nproc,
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "wrk": (wrk.stdout + wrk.stderr).splitlines()[0].strip() if (wrk.stdout + wrk.stderr) else "?",
        "packages": ", ".join(versions),
    }


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def report(opts: argparse.Namespace, res: dict[str, Any]) -> str:
    a, b = res["argoplug"], res["baseline"]
    m = res["machine"]
    lines = [
        "# argoplug server benchmark",
        "",
        f"- date: {m['date']}",
        f"- machine: {m['nproc']} CPUs (`nproc`), {m['cpu']}, Linux {m['kernel']}; Python {m['python']}",
        f"- {m['wrk']}; {m['packages']}",
        f"- load: `wrk -t{opts.threads} -c{opts.connections} -d{opts.duration:g}s`, {opts.runs} run(s) per row "
        f"(median), after a {opts.warmup:g} s warm-up; first answer: median of {opts.startup_runs} fresh starts.",
        "- **the load generator (wrk, 2 threads) shares the same CPUs with the server**: "
        "figures are lower bounds of what the server does alone.",
        "- everything on loopback (127.0.0.1); argoplug: "
        "`python -m argoplug serve --plugin noop_plugin:plugin --log-format json --log-level warning`; "
        "baseline: `bench/baseline_server.py` (Argo's documented example, single-threaded stdlib `HTTPServer`, HTTP/1.0: "
        "one connection per call).",
        "",
        "| figure | argoplug | baseline | argoplug / baseline | target | |",
        "|---|---:|---:|---:|---|---|",
    ]

    def rps_cell(x: dict[str, Any]) -> str:
        spread = f" ({min(x['rps_all']):,.0f}–{max(x['rps_all']):,.0f})" if len(x["rps_all"]) > 1 else ""
        return f"{x['rps']:,.0f}{spread}"

    for key, label in (("ours", "our key"), ("foreign", "foreign key → `{}`")):
        x, y = a["load"][key], b["load"][key]
        ratio = x["rps"] / y["rps"]
        lines.append(
            f"| {label}: requests/s at {opts.connections} conn | {rps_cell(x)} | {rps_cell(y)} | ×{ratio:.1f} | "
            f"≥ ×{TARGETS['throughput_ratio']:g} baseline | {verdict(ratio >= TARGETS['throughput_ratio'])} |"
        )
        lines.append(
            f"| {label}: p50 latency (ms) | {x['p50_ms']:.2f} | {y['p50_ms']:.2f} | "
            f"×{x['p50_ms'] / y['p50_ms']:.2f} | | |"
        )
        lines.append(
            f"| {label}: p99 latency (ms) | {x['p99_ms']:.2f} | {y['p99_ms']:.2f} | ×{x['p99_ms'] / y['p99_ms']:.2f} | "
            f"< {TARGETS['p99_ms']:g} ms | {verdict(x['p99_ms'] < TARGETS['p99_ms'])} |"
        )
    sa, sb = a["startup"], b["startup"]
    lines += [
        f"| first answer after process start (s, median) | {sa['first_answer_s']:.3f} | {sb['first_answer_s']:.3f} | "
        f"×{sa['first_answer_s'] / sb['first_answer_s']:.1f} | ≤ {TARGETS['first_answer_s']:g} s | "
        f"{verdict(sa['first_answer_s'] <= TARGETS['first_answer_s'])} |",
        f"| RSS after {CALLS_BEFORE_RSS} calls (MiB) | {sa['rss_mib']:.1f} | {sb['rss_mib']:.1f} | "
        f"×{sa['rss_mib'] / sb['rss_mib']:.1f} | < {TARGETS['rss_mib']:g} MiB | {verdict(sa['rss_mib'] < TARGETS['rss_mib'])} |",
        f"| RSS after the wrk runs (MiB; peak VmHWM) | {a['load']['rss_after_load_mib']:.1f} ({a['load']['hwm_mib']:.1f}) | "
        f"{b['load']['rss_after_load_mib']:.1f} ({b['load']['hwm_mib']:.1f}) | | | |",
        "",
        "Requests/s: median (min–max over runs). Latency: wrk's distribution, median over runs. "
        f"wrk errors (connect/read/write/timeout, non-2xx): argoplug "
        f"{a['load']['ours']['errors'] + a['load']['foreign']['errors']}/"
        f"{a['load']['ours']['status_errors'] + a['load']['foreign']['status_errors']}, baseline "
        f"{b['load']['ours']['errors'] + b['load']['foreign']['errors']}/"
        f"{b['load']['ours']['status_errors'] + b['load']['foreign']['status_errors']} "
        "(the baseline closes every connection, which wrk may count as read errors).",
        f"First answers, every start (s): argoplug {', '.join(f'{t:.3f}' for t in sa['first_answer_all'])}; "
        f"baseline {', '.join(f'{t:.3f}' for t in sb['first_answer_all'])}.",
        "",
        "## argoplug serving every installed plugin (`python -m argoplug serve`, no `--plugin`)",
        "",
    ]
    allp = res.get("all_plugins")
    if allp is None or "skipped" in allp:
        lines.append(f"Skipped: {allp['skipped'] if allp else 'not run'}.")
    else:
        lines += [
            "| plugins served | first answer (s, median) | RSS after first answer (MiB) | "
            f"RSS after {CALLS_BEFORE_RSS} foreign-key calls (MiB) | target | heavy modules imported at start |",
            "|---|---:|---:|---:|---|---|",
            f"| {', '.join(allp['heavy']['keys'])} | {allp['first_answer_s']:.3f} | {allp['rss_first_mib']:.1f} | "
            f"{allp['rss_mib']:.1f} | < {TARGETS['rss_mib']:g} MiB: {verdict(allp['rss_mib'] < TARGETS['rss_mib'])} | "
            f"{', '.join(allp['heavy']['imported']) or 'none'} |",
        ]
    heavy = res.get("heavy_noop", {})
    lines += [
        "",
        f"Heavy modules imported by `serve --plugin noop_plugin:plugin` before serving: "
        f"{', '.join(heavy.get('imported', [])) or 'none'} ({heavy.get('modules', '?')} modules in sys.modules).",
        "",
        "## One slow handler does not hold the others",
        "",
    ]
    c = res.get("concurrency")
    if c:
        lines += [
            "16 concurrent calls to `bench/slow_plugin.py` (sync handler): one blocks 3 s; 0.3 s later 15 more arrive.",
            "",
            "| blocked call (s) | other 15: median latency (ms) | other 15: max latency (ms) | all Succeeded |",
            "|---:|---:|---:|---|",
            f"| {c['slow_s']:.2f} | {c['others_median_ms']:.1f} | {c['others_max_ms']:.1f} | {c['all_succeeded']} |",
        ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ main


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (default 10)")
    p.add_argument("--runs", type=int, default=3, help="wrk runs per figure, median reported (default 3)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of wrk warm-up per server (default 3)")
    p.add_argument("--startup-runs", type=int, default=7, help="fresh starts for first answer and RSS (default 7)")
    p.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--quick", action="store_true", help="a fast smoke run: 3 s x 1 run, 3 starts")
    p.add_argument("--output", type=Path, default=RESULTS / "latest.md", help="the report (markdown)")
    opts = p.parse_args(argv)
    if opts.quick:
        opts.duration, opts.runs, opts.warmup, opts.startup_runs = 3.0, 1, 1.0, 3
    for name in ("duration", "runs", "startup_runs", "connections", "threads"):
        if getattr(opts, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be > 0")
    return opts


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get update && apt-get install -y wrk", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    res: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="argoplug-bench-") as tmp:
        bench = Bench(opts, Path(tmp))
        try:
            ours_a, ours_b = request_body({"noop": {}}), request_body({"hello": {}})
            noop = argoplug_server("noop_plugin:plugin")
            step = lambda text: print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)  # noqa: E731
            step("argoplug: first answer and RSS")
            res["argoplug"] = {"startup": bench.startup_and_memory(noop, ours_a)}
            step("baseline: first answer and RSS")
            res["baseline"] = {"startup": bench.startup_and_memory(BASELINE, ours_b)}
            step("argoplug: wrk")
            res["argoplug"]["load"] = bench.load(noop, ours_a)
            step("baseline: wrk")
            res["baseline"]["load"] = bench.load(BASELINE, ours_b)
            step("argoplug with every installed plugin")
            res["heavy_noop"] = heavy_modules(["noop_plugin:plugin"])
            heavy_all = heavy_modules([])
            if "error" in heavy_all:
                res["all_plugins"] = {"skipped": "the installed plugins do not load: " + " ".join(heavy_all["error"])}
            else:
                try:
                    found = bench.startup_and_memory(argoplug_server(None), FOREIGN)
                    res["all_plugins"] = {**found, "heavy": heavy_all}
                except RuntimeError as exc:
                    res["all_plugins"] = {"skipped": str(exc).splitlines()[0]}
            step("concurrency probe")
            res["concurrency"] = bench.concurrency()
        except KeyboardInterrupt:
            print("interrupted: stopping servers", file=sys.stderr)
            return 130
        finally:
            PROCS.stop_all()
    text = report(opts, res)
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(text)
    (opts.output.with_suffix(".json")).write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(text)
    print(f"written: {opts.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
