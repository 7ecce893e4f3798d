#!/usr/bin/env python3
"""Where argoplug's time and memory go: the evidence behind the fixes suggested in bench/README.md.

Three parts, each comparing the stock server with one change made outside src/:
  startup  first answer and RSS: `argoplug serve` (the CLI) / the same without typer (bench/direct_serve.py)
           / and with uvicorn's websocket protocol loaded (as before f154f74); and a bare `python -c pass`
  imports  `python -X importtime` of `argoplug serve` until its first answer: time by top-level package and
           who imported it; then RSS growth by package, importing the same modules in the same order
  percall  bench/percall.py: what each step of one call costs inside argoplug, in-process, without HTTP
  load     wrk at 16 connections, our key: as is / with Python's GC defaults (before f154f74) / start-up
           objects frozen only / an async handler / no Starlette (bench/raw_asgi.py), with the GC's pauses
Writes bench/results/diagnosis.md.
Usage: python bench/diagnose.py [--quick] [--only startup,imports,percall,load]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import run
from run import BENCH, PROCS, Bench, Server, argoplug_server, request_body, step, wait_idle

OURS = request_body({"noop": {}})
DUMP = request_body({"noop": {"dump": True}})  # bench/gc_probe.py writes its GC statistics


def script_server(name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Server:
    """A server run as `python bench/<argv...>`; the words PORT and TOKEN_FILE in argv are filled in."""

    def fill(port: int, token_file: Path) -> list[str]:
        words = {"PORT": str(port), "TOKEN_FILE": str(token_file)}
        return [sys.executable, str(BENCH / argv[0]), *(words.get(a, a) for a in argv[1:])]

    return Server(name, fill, lambda port, token_file: {**(env or {}), "PYTHONPATH": str(BENCH)})


def with_env(server: Server, name: str, env: dict[str, str]) -> Server:
    return Server(name, server.argv, lambda port, token_file: {**server.env(port, token_file), **env})


# ------------------------------------------------------------------------------------------------ startup


def bare_python(runs: int) -> dict[str, float]:
    times, rss = [], []
    code = "print([x for x in open('/proc/self/status') if x.startswith('VmRSS')][0].split()[1])"
    for _ in range(runs):
        t = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
        )
        times.append(time.perf_counter() - t)
        rss.append(int(out.stdout) / 1024)
    return {"first_answer_s": statistics.median(times), "rss_first_mib": statistics.median(rss)}


def startup(bench: Bench) -> list[tuple[str, dict[str, Any]]]:
    direct = [
        "direct_serve.py",
        "--plugin",
        "noop_plugin:plugin",
        "--port",
        "PORT",
        "--token-file",
        "TOKEN_FILE",
    ]
    variants = {
        "`argoplug serve` (the CLI, as shipped)": (argoplug_server("noop_plugin:plugin"), OURS),
        "the same without typer (bench/direct_serve.py)": (script_server("direct", direct), OURS),
        "without typer, uvicorn `ws='auto'` (websockets loaded, as before f154f74)": (
            script_server("direct-ws", [*direct, "--ws", "auto"]),
            OURS,
        ),
    }
    found = bench.startup_and_memory(variants)
    rows = [(name, found[name]) for name in variants]
    rows.append(("bare interpreter (`python -c pass`, to its exit)", bare_python(bench.opts.startup_runs)))
    return rows


# ------------------------------------------------------------------------------------------------ imports


def parse_importtime(text: str) -> list[tuple[str, int, int]]:
    """(module, self µs, depth) for each line of `-X importtime` output, in the order printed."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = line.split(":", 1)[1].split("|")
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        rows.append((name.strip(), int(self_us), depth))
    return rows


def importers(rows: list[tuple[str, int, int]]) -> dict[str, str]:
    """For each top-level package: the module of another package whose import first pulled it in."""
    first: dict[str, str] = {}
    for i, (name, _, depth) in enumerate(rows):
        top = name.split(".")[0]
        if top in first:
            continue
        parent = "(a function, at run time)"
        for later, _, d in rows[i + 1 :]:  # a module is printed after everything it imported
            if d < depth:
                if later.split(".")[0] != top:
                    parent = later
                    break
                depth = d
        first[top] = parent
    return first


_RSS_BY_PACKAGE = """
import importlib, json, sys
def rss():
    line = [x for x in open('/proc/self/status') if x.startswith('VmRSS')][0]
    return int(line.split()[1]) / 1024
by, start = {}, rss()
before = start
for name in json.load(sys.stdin):
    if name in sys.modules:
        continue
    try:
        importlib.import_module(name)
    except Exception:
        continue
    now = rss()
    top = name.split('.')[0]
    by[top] = by.get(top, 0) + now - before
    before = now
print(json.dumps({'start': start, 'end': rss(), 'by': by}))
"""


def imports(bench: Bench) -> dict[str, Any]:
    log = bench.workdir / "importtime.log"
    stock = argoplug_server("noop_plugin:plugin")

    def argv(port: int, token_file: Path) -> list[str]:
        cmd = stock.argv(port, token_file)
        return [cmd[0], "-X", "importtime", *cmd[1:]]

    server = Server("importtime", argv, stock.env)
    port = run.free_port()
    t0 = time.perf_counter()
    proc = server.start(port, bench.token_file, log)
    try:
        first = run.first_answer(proc, port, OURS, bench.token, t0)
    finally:
        PROCS.stop(proc)
    rows = parse_importtime(log.read_text(errors="replace"))
    by_time: collections.Counter[str] = collections.Counter()
    for name, self_us, _ in rows:
        by_time[name.split(".")[0]] += self_us
    who = importers(rows)
    # Memory: the same modules, in the same order, in a fresh interpreter; RSS growth per package.
    out = subprocess.run(
        [sys.executable, "-c", _RSS_BY_PACKAGE],
        input=json.dumps([r[0] for r in rows]),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=BENCH,
        env={**os.environ, "PYTHONPATH": str(BENCH)},
        check=True,
    )
    return {
        "first_answer_s": first,
        "total_ms": sum(r[1] for r in rows) / 1000,
        "modules": len(rows),
        "by_time": [(top, us / 1000, who.get(top, "")) for top, us in by_time.most_common(20)],
        "memory": json.loads(out.stdout),
    }


# ------------------------------------------------------------------------------------------------ percall


def percall() -> dict[str, float]:
    wait_idle(30.0)
    out = subprocess.run(
        [sys.executable, str(BENCH / "percall.py")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=BENCH,
        env={**os.environ, "PYTHONPATH": str(BENCH)},
        check=True,
    )
    return dict(json.loads(out.stdout))


# --------------------------------------------------------------------------------------------------- load


def load(bench: Bench) -> list[tuple[str, dict[str, Any]]]:
    opts = bench.opts
    gc_dir = bench.workdir / "gc"
    gc_dir.mkdir()
    probe = argoplug_server("gc_probe:sync_plugin")
    variants = {
        "GC at Python's defaults (the server before f154f74)": with_env(
            probe, "python-defaults", {"BENCH_GC_MODE": "python-defaults"}
        ),
        "start-up objects frozen, gen-0 threshold 700": with_env(
            probe, "freeze-only", {"BENCH_GC_MODE": "freeze-only"}
        ),
        "as is: frozen + threshold 10 000 (sync handler, Starlette)": with_env(
            probe, "as-is", {"BENCH_GC_MODE": "default"}
        ),
        "as is, with an async handler": with_env(
            argoplug_server("gc_probe:async_plugin"), "async", {"BENCH_GC_MODE": "default"}
        ),
        "as is, without Starlette (bench/raw_asgi.py)": script_server(
            "raw-asgi", ["raw_asgi.py", "PORT", "TOKEN_FILE"], {"BENCH_GC_MODE": "default"}
        ),
    }
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    gcs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    body_file = bench.body_file(OURS)
    # One server at a time, variants in turns, run after run.
    for i in range(opts.runs):
        for name, variant in variants.items():
            out = gc_dir / f"{variant.name}-{i}.json"
            server = with_env(variant, variant.name, {"BENCH_GC_OUT": str(out)})
            proc, port, _ = bench.launch(server, OURS)
            try:
                run.check_reply(port, OURS, bench.token, expect_node=True)
                bench.wrk(proc, port, body_file, opts.warmup)
                label = f"run {i + 1}/{opts.runs} {variant.name:17}"
                results[name].append(bench.quiet_wrk(label, proc, port, body_file, opts.duration))
                run.check_reply(port, DUMP, bench.token, expect_node=True)
            finally:
                PROCS.stop(proc)
            if out.exists():
                gcs[name].append(json.loads(out.read_text()))
    rows = []
    for name in variants:
        stats, gc_runs = results[name], gcs[name]
        row: dict[str, Any] = {
            "rps": statistics.median(s["rps"] for s in stats),
            "p50_ms": statistics.median(s["p50_us"] for s in stats) / 1000,
            "p99_ms": statistics.median(s["p99_us"] for s in stats) / 1000,
            "cpu_us_per_call": statistics.median(s["cpu_us_per_call"] for s in stats),
        }
        if gc_runs:
            row["gen2_per_s"] = statistics.median(g["gen2"]["count"] / g["seconds"] for g in gc_runs)
            row["gen2_median_ms"] = statistics.median(g["gen2"]["median_ms"] for g in gc_runs)
            row["gen2_max_ms"] = max(g["gen2"]["max_ms"] for g in gc_runs)
            row["gc_share"] = statistics.median(
                sum(g[f"gen{n}"]["total_ms"] for n in range(3)) / 1000 / g["seconds"] for g in gc_runs
            )
            row["tracked"] = statistics.median(g["tracked"] for g in gc_runs)
            row["frozen"] = statistics.median(g["frozen"] for g in gc_runs)
        rows.append((name, row))
    return rows


# ------------------------------------------------------------------------------------------------ report


def report(opts: argparse.Namespace, res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [
        "# argoplug: where the time and memory go",
        "",
        f"- {m['date']}; {m['nproc']} CPUs, {m['cpu']}; Python {m['python']}; {m['packages']}",
        f"- `python bench/diagnose.py{' --quick' if opts.quick else ''}`: wrk `-t{opts.threads} "
        f"-c{opts.connections} -d{opts.duration:g}s` after a {opts.warmup:g} s warm-up, "
        f"median of {opts.runs} run(s); start-up: median of {opts.startup_runs} starts. "
        "wrk shares the 2 CPUs with the server.",
        "",
    ]
    if "startup" in res:
        lines += [
            "## Start-up: first answer and memory",
            "",
            "| server | first answer (s) | RSS at first answer (MiB) | RSS after 200 calls (MiB) |",
            "|---|---:|---:|---:|",
        ]
        for name, r in res["startup"]:
            after = f"{r['rss_mib']:.1f}" if "rss_mib" in r else ""
            lines.append(f"| {name} | {r['first_answer_s']:.3f} | {r['rss_first_mib']:.1f} | {after} |")
        lines.append("")
    if "imports" in res:
        imp, mem = res["imports"], res["imports"]["memory"]
        lines += [
            "## Imports of `argoplug serve --plugin noop_plugin:plugin` (`python -X importtime`)",
            "",
            f"{imp['modules']} modules, {imp['total_ms']:.0f} ms of import time (self times summed; with "
            f"-X importtime the first answer came after {imp['first_answer_s']:.3f} s).",
            "",
            "| package | import time (ms, self) | first imported by |",
            "|---|---:|---|",
            *(f"| {top} | {ms:.1f} | {who} |" for top, ms, who in imp["by_time"][:15]),
            "",
            f"RSS growth by package (the same modules, in the same order, in a fresh interpreter: "
            f"{mem['start']:.1f} MiB before, {mem['end']:.1f} MiB after):",
            "",
            "| package | RSS growth (MiB) |",
            "|---|---:|",
            *(f"| {top} | {mib:.2f} |" for top, mib in sorted(mem["by"].items(), key=lambda kv: -kv[1])[:15]),
            "",
        ]
    if "percall" in res:
        lines += [
            "## Inside one call (bench/percall.py: in-process, no HTTP, µs per call)",
            "",
            "| step | µs |",
            "|---|---:|",
            *(f"| {label} | {us:.1f} |" for label, us in res["percall"].items()),
            "",
            "One call at a time is wall time (a thread hop waits for the thread to wake); "
            '"16 at a time: CPU" is the process\'s CPU time per call with 16 calls in flight.',
            "",
        ]
    if "load" in res:
        lines += [
            "## Under load (our key, 16 connections): throughput, p99 and the garbage collector",
            "",
            "| server | req/s | p50 (ms) | p99 (ms) | CPU per call (µs) | full (gen-2) collections per s "
            "| their median / max pause (ms) | time in GC | objects tracked (frozen) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, r in res["load"]:
            cells = [
                f"{r['rps']:,.0f}",
                f"{r['p50_ms']:.2f}",
                f"{r['p99_ms']:.2f}",
                f"{r['cpu_us_per_call']:.0f}",
            ]
            if "gen2_per_s" in r:
                cells += [
                    f"{r['gen2_per_s']:.1f}",
                    f"{r['gen2_median_ms']:.1f} / {r['gen2_max_ms']:.1f}",
                    f"{r['gc_share']:.1%}",
                    f"{r['tracked']:,.0f} ({r['frozen']:,.0f})",
                ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "GC figures: from the first call (after start-up) to the end of the measured run, warm-up "
            "included; measured by bench/gc_probe.py's `gc.callbacks`.",
            "",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="startup,imports,percall,load", help="comma-separated parts to run")
    opts = run.parse(argv, parser, output=run.RESULTS / "diagnosis.md")
    parts = set(opts.only.split(","))
    unknown = parts - {"startup", "imports", "percall", "load"}
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    run.install_signal_handlers()
    res: dict[str, Any] = {"machine": run.machine()}
    with tempfile.TemporaryDirectory(prefix="argoplug-diagnose-") as tmp:
        bench = Bench(opts, Path(tmp))
        try:
            if "startup" in parts:
                step("start-up variants")
                res["startup"] = startup(bench)
            if "imports" in parts:
                step("imports")
                res["imports"] = imports(bench)
            if "percall" in parts:
                step("per-call costs")
                res["percall"] = percall()
            if "load" in parts:
                step("load variants")
                res["load"] = load(bench)
        except KeyboardInterrupt:
            print("interrupted: stopping servers", file=sys.stderr)
            return 130
        finally:
            PROCS.stop_all()
    text = report(opts, res)
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(text)
    print(text)
    print(f"written: {opts.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
