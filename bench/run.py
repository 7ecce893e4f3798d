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
import resource
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


LOG_LEVEL = ["warning"]  # set from --log-level


def argoplug_server(plugin: str | None) -> Server:
    def argv(port: int, token_file: Path) -> list[str]:
        cmd = [sys.executable, "-m", "argoplug", "serve"]
        if plugin:
            cmd += ["--plugin", plugin]
        return [
            *cmd, "--host", HOST, "--port", str(port), "--token-file", str(token_file),
            "--log-format", "json", "--log-level", LOG_LEVEL[0],
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


class CpuMeter:
    """CPU seconds used on the whole machine, by one process, and by our reaped children (wrk).

    `other_share` is the part of the machine's CPU used by processes that are neither the server, nor wrk,
    nor this script: other people's work on a shared machine, which makes a run noisy.
    """

    TICK = os.sysconf("SC_CLK_TCK")
    NCPU = len(os.sched_getaffinity(0))

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = self._sample()

    @staticmethod
    def machine_busy() -> float:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(fields[:8]) - fields[3] - fields[4]) / CpuMeter.TICK  # minus idle and iowait

    def _proc(self) -> float:
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / self.TICK  # utime + stime

    def _sample(self) -> tuple[float, float, float, float, float]:
        kids, me = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
        return (
            time.perf_counter(),
            self.machine_busy(),
            self._proc(),
            kids.ru_utime + kids.ru_stime,
            me.ru_utime + me.ru_stime,
        )

    def stop(self) -> dict[str, float]:
        end = self._sample()
        wall, busy, server, kids, me = (b - a for a, b in zip(self.start, end, strict=True))
        return {
            "server_cpu": server / wall,  # in CPUs
            "server_cpu_s": server,
            "other_share": max(0.0, busy - server - kids - me) / (wall * self.NCPU),
        }


def wait_idle(limit: float, threshold: float = 0.10) -> float:
    """Wait (at most `limit` s) until other processes use under `threshold` of the machine.

    Returns the share of the machine's CPU last seen busy.
    """
    deadline = time.perf_counter() + limit
    share = 1.0
    for _ in range(1000):
        t, busy = time.perf_counter(), CpuMeter.machine_busy()
        time.sleep(0.5)
        share = (CpuMeter.machine_busy() - busy) / ((time.perf_counter() - t) * CpuMeter.NCPU)
        if share < threshold or time.perf_counter() > deadline:
            break
    return share


def check_reply(port: int, body: bytes, token: str, expect_node: bool) -> None:
    status, reply = call(port, body, token)
    decoded = json.loads(reply) if reply else None
    if status != 200:
        raise RuntimeError(f"sanity call: HTTP {status}: {reply[:200]!r}")
    if expect_node and not (
        isinstance(decoded, dict) and decoded.get("node", {}).get("phase") == "Succeeded"
    ):
        raise RuntimeError(f"sanity call: expected a Succeeded node, got {reply[:200]!r}")
    if not expect_node and decoded not in ({}, None):
        raise RuntimeError(f"sanity call: expected {{}} or null for a foreign key, got {reply[:200]!r}")


# --------------------------------------------------------------------------------------------------- wrk


def run_wrk(
    server_pid: int,
    port: int,
    body_file: Path,
    token_file: Path,
    duration: float,
    connections: int,
    threads: int,
) -> dict[str, Any]:
    argv = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s",
        "-s", str(LUA), f"http://{HOST}:{port}{EXECUTE}",
    ]  # fmt: skip
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_TOKEN_FILE": str(token_file)}
    meter = CpuMeter(server_pid)
    proc = PROCS.start(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=duration + 60)
    finally:
        PROCS.stop(proc)
    cpu = meter.stop()
    text = out.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("BENCH ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.decode(errors='replace')}{text}")
    stats: dict[str, Any] = json.loads(line[len("BENCH ") :])
    stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
    stats.update(cpu)
    stats["cpu_us_per_call"] = cpu["server_cpu_s"] / max(stats["requests"], 1) * 1e6
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

    def wrk(
        self, proc: subprocess.Popen[bytes], port: int, body_file: Path, duration: float
    ) -> dict[str, Any]:
        o = self.opts
        return run_wrk(proc.pid, port, body_file, self.token_file, duration, o.connections, o.threads)

    def quiet_wrk(
        self, label: str, proc: subprocess.Popen[bytes], port: int, body_file: Path, duration: float
    ) -> dict[str, Any]:
        """A wrk run during which other processes used at most --max-noise of the machine, if one comes.

        On a shared machine other people's work comes and goes: a run it disturbed is made again, up to
        --retries times, and the quietest one is kept.
        """
        best: dict[str, Any] | None = None
        for attempt in range(1 + self.opts.retries):
            wait_idle(self.opts.idle_wait)
            stats = self.wrk(proc, port, body_file, duration)
            stats["attempts"] = attempt + 1
            print(
                f"    {label} {stats['rps']:9,.0f} req/s  p50 {stats['p50_us'] / 1000:6.2f} ms  "
                f"p99 {stats['p99_us'] / 1000:7.2f} ms  {stats['cpu_us_per_call']:5.0f} µs CPU/call  "
                f"others {stats['other_share']:.0%}",
                file=sys.stderr,
                flush=True,
            )
            if best is None or stats["other_share"] < best["other_share"]:
                best = stats
            if stats["other_share"] <= self.opts.max_noise:
                break
        assert best is not None
        return best

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

    def startup_and_memory(self, servers: dict[str, tuple[Server, bytes]]) -> dict[str, dict[str, Any]]:
        """Median time to the first answer over N fresh starts; RSS after 200 calls of each start.

        The servers take turns (A, B, A, B, ...) so that other load on the machine hits them alike.
        """
        runs: dict[str, dict[str, list[float]]] = {
            name: {"first": [], "rss_first": [], "rss": [], "other": []} for name in servers
        }
        for _ in range(self.opts.startup_runs):
            for name, (server, body) in servers.items():
                runs[name]["other"].append(wait_idle(self.opts.idle_wait))
                proc, port, first = self.launch(server, body)
                try:
                    runs[name]["first"].append(first)
                    runs[name]["rss_first"].append(rss_mib(proc.pid))
                    for _ in range(CALLS_BEFORE_RSS):
                        status, _ = call(port, body, self.token)
                        if status != 200:
                            raise RuntimeError(f"{server.name}: call answered HTTP {status}")
                    runs[name]["rss"].append(rss_mib(proc.pid))
                finally:
                    PROCS.stop(proc)
        return {
            name: {
                "first_answer_s": statistics.median(r["first"]),
                "first_answer_all": r["first"],
                "rss_first_mib": statistics.median(r["rss_first"]),
                "rss_mib": statistics.median(r["rss"]),
                "other_before_start": r["other"],
            }
            for name, r in runs.items()
        }

    def load(self, servers: dict[str, tuple[Server, bytes]]) -> dict[str, dict[str, Any]]:
        """wrk at N connections, our key then a foreign key, after a warm-up; median of runs.

        Both servers run side by side (an idle one costs nothing) and take turns, run after run.
        """
        opts = self.opts
        started: dict[str, tuple[subprocess.Popen[bytes], int, dict[str, Path]]] = {}
        try:
            for name, (server, ours) in servers.items():
                proc, port, _ = self.launch(server, ours)
                started[name] = (
                    proc,
                    port,
                    {"ours": self.body_file(ours), "foreign": self.body_file(FOREIGN)},
                )
                check_reply(port, ours, self.token, expect_node=True)
                check_reply(port, FOREIGN, self.token, expect_node=False)
            for proc, port, files in started.values():
                self.wrk(proc, port, files["ours"], opts.warmup)
            runs: dict[str, dict[str, list[dict[str, Any]]]] = {
                n: {"ours": [], "foreign": []} for n in servers
            }
            for i in range(opts.runs):
                for name, (proc, port, files) in started.items():
                    for key in ("ours", "foreign"):
                        label = f"run {i + 1}/{opts.runs} {name:9} {key:7}"
                        runs[name][key].append(self.quiet_wrk(label, proc, port, files[key], opts.duration))
            results: dict[str, dict[str, Any]] = {}
            for name, (proc, _, _) in started.items():
                result: dict[str, Any] = {
                    "rss_after_load_mib": rss_mib(proc.pid),
                    "hwm_mib": rss_mib(proc.pid, "VmHWM"),
                }
                for key, stats_list in runs[name].items():
                    result[key] = {
                        "rps": statistics.median(s["rps"] for s in stats_list),
                        "rps_all": [s["rps"] for s in stats_list],
                        "p50_ms": statistics.median(s["p50_us"] for s in stats_list) / 1000,
                        "p99_ms": statistics.median(s["p99_us"] for s in stats_list) / 1000,
                        "p99_all": [s["p99_us"] / 1000 for s in stats_list],
                        "max_ms": max(s["max_us"] for s in stats_list) / 1000,
                        "errors": sum(s["errors"] for s in stats_list),
                        "status_errors": sum(s["status_errors"] for s in stats_list),
                        "requests": sum(s["requests"] for s in stats_list),
                        "server_cpu": statistics.median(s["server_cpu"] for s in stats_list),
                        "cpu_us_per_call": statistics.median(s["cpu_us_per_call"] for s in stats_list),
                        "attempts": sum(s["attempts"] for s in stats_list),
                        "other_share": [s["other_share"] for s in stats_list],
                    }
                results[name] = result
            return results
        finally:
            for proc, _, _ in started.values():
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
        ok = all(
            status == 200 and json.loads(reply)["node"]["phase"] == "Succeeded" for _, status, reply in done
        )
        others = [latency for latency, _, _ in done[1:]]
        return {
            "slow_s": done[0][0],
            "others_max_ms": max(others) * 1000,
            "others_median_ms": statistics.median(others) * 1000,
            "all_succeeded": ok,
        }


HEAVY = [
    "boto3",
    "botocore",
    "lightkube",
    "moto",
    "pydantic",
    "rich",
    "httpx",
    "yaml",
    "jsonschema",
    "pytest",
]


def heavy_modules(plugins: Sequence[str]) -> dict[str, Any]:
    """Run `argoplug serve` up to the point where it would listen; list the heavy modules loaded by then.

    The CLI runs for real (typer parses the options, plugins load, the app is built, uvicorn is imported);
    only `argoplug.server.serve` is replaced, in a fresh interpreter, by a function that reports and returns.
    """
    args = [a for p in plugins for a in ("--plugin", p)] + ["--log-format", "json", "--log-level", "warning"]
    code = (
        "import json, sys\n"
        "import argoplug.server as server\n"
        "def report(plugins, *, host, port, settings, hooks=None):\n"
        "    server.create_app(plugins, settings, hooks=hooks)\n"
        "    import uvicorn  # as serve() does before it listens\n"
        "    print(json.dumps({'keys': sorted(p.key for p in plugins), 'modules': len(sys.modules),\n"
        f"                      'imported': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
        "server.serve = report\n"
        "from argoplug.cli.serve import serve\n"
        f"serve({args!r})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(BENCH) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, timeout=60, env=env, cwd=BENCH, check=False
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.decode(errors="replace").strip().splitlines()[-1:]}
    return dict(json.loads(proc.stdout.decode().strip().splitlines()[-1]))


# ---------------------------------------------------------------------------------------------- report


def machine() -> dict[str, str]:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
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


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _join(values: Sequence[float], digits: int = 1) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


def _rps(x: dict[str, Any]) -> str:
    spread = f" ({min(x['rps_all']):,.0f}–{max(x['rps_all']):,.0f})" if len(x["rps_all"]) > 1 else ""
    return f"{x['rps']:,.0f}{spread}"


def comparison_rows(opts: argparse.Namespace, a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The argoplug-vs-baseline table."""
    t = TARGETS
    rows = [
        _row("figure", "argoplug", "baseline", "argoplug / baseline", "target", ""),
        "|---|---:|---:|---:|---|---|",
    ]
    for key, label in (("ours", "our key"), ("foreign", "foreign key → `{}`")):
        x, y = a["load"][key], b["load"][key]
        ratio = x["rps"] / y["rps"]
        rows += [
            _row(
                f"{label}: requests/s, {opts.connections} connections",
                _rps(x),
                _rps(y),
                f"×{ratio:.1f}",
                f"≥ ×{t['throughput_ratio']:g}",
                verdict(ratio >= t["throughput_ratio"]),
            ),
            _row(f"{label}: p50 latency (ms)", f"{x['p50_ms']:.2f}", f"{y['p50_ms']:.2f}", "", "", ""),
            _row(
                f"{label}: server CPU per call (µs)",
                f"{x['cpu_us_per_call']:.0f}",
                f"{y['cpu_us_per_call']:.0f}",
                f"×{x['cpu_us_per_call'] / y['cpu_us_per_call']:.2f}",
                "",
                "",
            ),
            _row(
                f"{label}: p99 latency (ms)",
                f"{x['p99_ms']:.2f}",
                f"{y['p99_ms']:.2f}",
                "",
                f"< {t['p99_ms']:g} ms",
                verdict(x["p99_ms"] < t["p99_ms"]),
            ),
        ]
    sa, sb = a["startup"], b["startup"]
    rows += [
        _row(
            "first answer after process start (s)",
            f"{sa['first_answer_s']:.3f}",
            f"{sb['first_answer_s']:.3f}",
            f"×{sa['first_answer_s'] / sb['first_answer_s']:.1f}",
            f"≤ {t['first_answer_s']:g} s",
            verdict(sa["first_answer_s"] <= t["first_answer_s"]),
        ),
        _row(
            f"RSS after {CALLS_BEFORE_RSS} calls (MiB)",
            f"{sa['rss_mib']:.1f}",
            f"{sb['rss_mib']:.1f}",
            f"×{sa['rss_mib'] / sb['rss_mib']:.1f}",
            f"< {t['rss_mib']:g} MiB",
            verdict(sa["rss_mib"] < t["rss_mib"]),
        ),
        _row(
            "RSS after the wrk runs (MiB)",
            f"{a['load']['rss_after_load_mib']:.1f}",
            f"{b['load']['rss_after_load_mib']:.1f}",
            "",
            "",
            "",
        ),
    ]
    return rows


def report(opts: argparse.Namespace, res: dict[str, Any]) -> str:
    a, b, m = res["argoplug"], res["baseline"], res["machine"]
    noise = [x for r in (a, b) for k in ("ours", "foreign") for x in r["load"][k]["other_share"]]
    lines = [
        "# argoplug server benchmark",
        "",
        f"- {m['date']}; {m['nproc']} CPUs (`nproc`), {m['cpu']}; Linux {m['kernel']}; Python {m['python']}",
        f"- {m['wrk']}; {m['packages']}",
        f"- `wrk -t{opts.threads} -c{opts.connections} -d{opts.duration:g}s`, {opts.runs} run(s) per figure "
        f"(median; the two servers take turns), after a {opts.warmup:g} s warm-up; first answer and RSS: "
        f"median of {opts.startup_runs} fresh starts.",
        "- **wrk (2 threads) runs on the same 2 CPUs as the server**: the figures are lower bounds of what "
        "the server would do alone.",
        f"- loopback only (127.0.0.1). argoplug: `python -m argoplug serve --plugin {opts.plugin} "
        f"--log-format json --log-level {opts.log_level}`; baseline: `bench/baseline_server.py`, "
        "Argo's documented "
        "example (stdlib `HTTPServer`: one thread, HTTP/1.0, a new connection per call, listen backlog 5).",
        "",
        *comparison_rows(opts, a, b),
        "",
        "Requests/s: median (min–max over runs); latencies: wrk's distribution, median over runs.",
        f"p99 of each run (ms): argoplug our key {_join(a['load']['ours']['p99_all'])}; "
        f"foreign key {_join(a['load']['foreign']['p99_all'])}; baseline our key "
        f"{_join(b['load']['ours']['p99_all'])}.",
        f"First answers (s): argoplug {_join(a['startup']['first_answer_all'], 3)}; "
        f"baseline {_join(b['startup']['first_answer_all'], 3)}.",
        f"Server CPU during the runs (CPUs): argoplug {a['load']['ours']['server_cpu']:.2f} (our key), "
        f"{a['load']['foreign']['server_cpu']:.2f} (foreign); "
        f"baseline {b['load']['ours']['server_cpu']:.2f}, "
        f"{b['load']['foreign']['server_cpu']:.2f}. Other processes on the machine during the runs: median "
        f"{statistics.median(noise):.0%}, max {max(noise):.0%} of its CPU.",
        f"wrk socket errors: argoplug {a['load']['ours']['errors'] + a['load']['foreign']['errors']}, "
        f"baseline {b['load']['ours']['errors'] + b['load']['foreign']['errors']} "
        "(the baseline closes the connection "
        "after every reply; wrk counts each close as a read error and reconnects); non-2xx answers: "
        f"{sum(r['load'][k]['status_errors'] for r in (a, b) for k in ('ours', 'foreign'))}.",
        "",
        "## argoplug serving every installed plugin (`python -m argoplug serve`, no `--plugin`)",
        "",
    ]
    allp = res.get("all_plugins")
    if allp is None or "skipped" in allp:
        lines.append(f"Skipped: {allp['skipped'] if allp else 'not run'}.")
    else:
        lines += [
            _row(
                "plugin keys served",
                "first answer (s)",
                "RSS at first answer (MiB)",
                f"RSS after {CALLS_BEFORE_RSS} calls (MiB)",
                "target",
                "",
                "heavy modules imported before serving",
            ),
            "|---|---:|---:|---:|---|---|---|",
            _row(
                ", ".join(allp["heavy"]["keys"]),
                f"{allp['first_answer_s']:.3f}",
                f"{allp['rss_first_mib']:.1f}",
                f"{allp['rss_mib']:.1f}",
                f"< {TARGETS['rss_mib']:g} MiB",
                verdict(allp["rss_mib"] < TARGETS["rss_mib"]),
                ", ".join(allp["heavy"]["imported"]) or "none",
            ),
            "",
            "The calls are foreign-key calls (answered `{}`): no handler runs, no AWS client is created. "
            "Heavy modules: `argoplug serve` run in a fresh interpreter up to where it would listen "
            "(typer parses the options, the plugins load, the app is built, uvicorn is imported).",
        ]
    heavy = res.get("heavy_noop", {})
    lines += [
        "",
        "Heavy modules imported by `serve --plugin noop_plugin:plugin` before serving: "
        f"{', '.join(heavy.get('imported', [])) or 'none'} ({heavy.get('modules', '?')} modules loaded).",
        "",
        "## One slow handler does not hold the others",
        "",
    ]
    c = res.get("concurrency")
    if c:
        lines += [
            "16 concurrent calls to `bench/slow_plugin.py` (a sync handler): the first blocks 3 s; "
            "0.3 s later the 15 others arrive together.",
            "",
            _row("blocked call (s)", "other 15: median (ms)", "other 15: max (ms)", "all 16 Succeeded"),
            "|---:|---:|---:|---|",
            _row(
                f"{c['slow_s']:.2f}",
                f"{c['others_median_ms']:.1f}",
                f"{c['others_max_ms']:.1f}",
                "yes" if c["all_succeeded"] else "**no**",
            ),
        ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ main


def parse(
    argv: Sequence[str] | None,
    p: argparse.ArgumentParser | None = None,
    output: Path = RESULTS / "latest.md",
) -> argparse.Namespace:
    """Parse the options shared by run.py and diagnose.py (into `p`, if given)."""
    p = p or argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (default 10)")
    p.add_argument("--runs", type=int, default=3, help="wrk runs per figure, median reported (default 3)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of wrk warm-up per server (default 3)")
    p.add_argument(
        "--startup-runs", type=int, default=7, help="fresh starts for first answer and RSS (default 7)"
    )
    p.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument(
        "--idle-wait",
        type=float,
        default=30.0,
        help="wait up to this many seconds before each measurement for other processes to go quiet (30)",
    )
    p.add_argument(
        "--max-noise",
        type=float,
        default=0.10,
        help="a wrk run during which other processes used more of the machine than this is made again (0.10)",
    )
    p.add_argument("--retries", type=int, default=3, help="how many times a noisy run is made again (3)")
    p.add_argument(
        "--plugin",
        default="noop_plugin:plugin",
        help="the no-op plugin argoplug serves: noop_plugin:plugin (sync, the default) or "
        "noop_plugin:async_plugin",
    )
    p.add_argument(
        "--log-level",
        default="warning",
        help="argoplug's --log-level: warning (default) or info (a line a call)",
    )
    p.add_argument("--quick", action="store_true", help="a fast smoke run: 3 s x 1 run, 3 starts")
    p.add_argument("--output", type=Path, default=output, help=f"the report (markdown; default {output})")
    opts = p.parse_args(argv)
    if opts.quick:
        opts.duration, opts.runs, opts.warmup, opts.startup_runs, opts.idle_wait = 3.0, 1, 1.0, 3, 2.0
        opts.retries = 0
    if opts.retries < 0 or not 0 < opts.max_noise <= 1:
        p.error("--retries must be >= 0 and --max-noise in (0, 1]")
    for name in ("duration", "runs", "startup_runs", "connections", "threads"):
        if getattr(opts, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be > 0")
    return opts


def step(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def install_signal_handlers() -> None:
    """SIGINT, SIGTERM and SIGHUP end the run like Ctrl-C: every server started is stopped on the way out."""
    signal.signal(
        signal.SIGINT, signal.default_int_handler
    )  # even when started with SIGINT ignored (`cmd &`)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse(argv)
    LOG_LEVEL[0] = opts.log_level
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get update && apt-get install -y wrk", file=sys.stderr)
        return 2
    install_signal_handlers()
    res: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="argoplug-bench-") as tmp:
        bench = Bench(opts, Path(tmp))
        try:
            servers = {
                "argoplug": (argoplug_server(opts.plugin), request_body({"noop": {}})),
                "baseline": (BASELINE, request_body({"hello": {}})),
            }
            step("first answer and RSS (argoplug and baseline in turns)")
            startup = bench.startup_and_memory(servers)
            step("wrk (argoplug and baseline in turns)")
            load = bench.load(servers)
            for name in servers:
                res[name] = {"startup": startup[name], "load": load[name]}
            step("argoplug with every installed plugin")
            res["heavy_noop"] = heavy_modules(["noop_plugin:plugin"])
            heavy_all = heavy_modules([])
            if "error" in heavy_all:
                res["all_plugins"] = {
                    "skipped": "the installed plugins do not load: " + " ".join(heavy_all["error"])
                }
            else:
                try:
                    found = bench.startup_and_memory({"all": (argoplug_server(None), FOREIGN)})["all"]
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
