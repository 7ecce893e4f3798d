"""No-op plugins instrumented for bench/diagnose.py: garbage-collector pauses, and GC settings to compare.

`sync_plugin` is bench/noop_plugin.py's handler; `async_plugin` the same as a coroutine. Since f154f74 the
server tunes the collector itself at start-up (ServerSettings.tune_gc: gc.freeze() and a gen-0 threshold of
10 000). At the first call, BENCH_GC_MODE may undo part of that, to show what each part is worth:
`default` (leave the server's tuning), `freeze-only` (keep the frozen start-up objects, back to Python's
threshold of 700), `python-defaults` (unfreeze, threshold 700: the server before f154f74).
BENCH_GC_OUT: a file that gets the count and pause times of each generation's collections as JSON, written
when a call's plugin block is `{"noop": {"dump": true}}`.
"""

from __future__ import annotations

import gc
import json
import os
import time
from typing import Any

from argoplug import Plugin, Result, Task

MODE = os.environ.get("BENCH_GC_MODE", "default")
OUT = os.environ.get("BENCH_GC_OUT")

_pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
_started = [0.0]
_tuned = [False]
_since = [time.perf_counter()]


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        _pauses[info["generation"]].append(time.perf_counter() - _started[0])


def _tune_once() -> None:
    # At the first call the server's start-up (and its own GC tuning) is over.
    if _tuned[0]:
        return
    _tuned[0] = True
    if MODE == "python-defaults":
        gc.unfreeze()
    if MODE in ("python-defaults", "freeze-only"):
        gc.set_threshold(700, 10, 10)
    for pauses in _pauses.values():
        pauses.clear()
    _since[0] = time.perf_counter()


def _report() -> None:
    """Write the statistics to BENCH_GC_OUT (uvicorn ends on SIGTERM by re-raising it, so no atexit)."""
    if not OUT:
        return
    summary: dict[str, Any] = {
        "mode": MODE,
        "seconds": time.perf_counter() - _since[0],
        "tracked": len(gc.get_objects()),
        "frozen": gc.get_freeze_count(),
    }
    for gen, pauses in _pauses.items():
        ordered = sorted(pauses)
        summary[f"gen{gen}"] = {
            "count": len(ordered),
            "total_ms": sum(ordered) * 1000,
            "median_ms": ordered[len(ordered) // 2] * 1000 if ordered else 0.0,
            "max_ms": ordered[-1] * 1000 if ordered else 0.0,
        }
    with open(OUT, "w") as f:
        json.dump(summary, f)


gc.callbacks.append(_on_gc)

sync_plugin: Plugin[dict[str, Any]] = Plugin("noop", description="no-op, sync, GC-instrumented")
async_plugin: Plugin[dict[str, Any]] = Plugin("noop", description="no-op, async, GC-instrumented")


@sync_plugin.handler
def noop(task: Task, args: dict[str, Any]) -> Result:
    _tune_once()
    if args.get("dump"):
        _report()
    return Result.succeeded(outputs={"ok": "true"})


@async_plugin.handler
async def noop_async(task: Task, args: dict[str, Any]) -> Result:
    _tune_once()
    if args.get("dump"):
        _report()
    return Result.succeeded(outputs={"ok": "true"})
