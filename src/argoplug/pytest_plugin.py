"""argoplug's pytest plugin (entry point `pytest11`): fixtures for plugin authors' tests."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from argoplug.plugin import Plugin
from argoplug.testing import LiveServer

__all__ = ["live_server"]


@pytest.fixture
def live_server() -> Iterator[Any]:
    """A factory: `live_server([plugin, ...], settings=...)` starts a LiveServer, stopped after the test."""
    started: list[LiveServer] = []

    def start(plugins: Sequence[Plugin[Any]], **kwargs: Any) -> LiveServer:
        server = LiveServer(plugins, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
