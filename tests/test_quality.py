"""The house checks run with the tests: ruff (lint + format), mypy on the package, import-linter layers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_lint() -> None:
    done = run(sys.executable, "-m", "ruff", "check", "src", "tests", "bench", "examples")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format() -> None:
    done = run(sys.executable, "-m", "ruff", "format", "--check", "src", "tests", "bench", "examples")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy() -> None:
    done = run(sys.executable, "-m", "mypy")
    assert done.returncode == 0, done.stdout + done.stderr


def test_import_layers() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which(
        "lint-imports"
    )
    if lint_imports is None:
        pytest.fail("lint-imports (import-linter) is not installed: pip install -e '.[dev]'")
    done = run(lint_imports)
    assert done.returncode == 0, done.stdout + done.stderr


def test_public_api_is_pinned() -> None:
    import argoplug

    assert sorted(argoplug.__all__) == [
        "ArgumentError",
        "CancellableJob",
        "ExternalJob",
        "JobState",
        "JobStatus",
        "JobTracker",
        "PermanentError",
        "Phase",
        "Plugin",
        "Result",
        "Secret",
        "Task",
        "TemporaryError",
        "hookimpl",
    ]
