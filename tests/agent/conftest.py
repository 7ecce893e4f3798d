"""Fixtures of the local agent's tests: live argoplug servers and scripted misbehaving ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from argoplug import Plugin
from argoplug.testing import LiveServer

from .helpers import Reply, ScriptedPlugin


@pytest.fixture
def live() -> Iterator[Callable[..., LiveServer]]:
    """A factory: `live([plugin, ...])` starts an argoplug server in-process, stopped after the test."""
    servers: list[LiveServer] = []

    def start(plugins: Sequence[Plugin[Any]]) -> LiveServer:
        server = LiveServer(list(plugins)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedPlugin]]:
    """A factory: `scripted([(200, {...}), ...])` starts a `ScriptedPlugin`, stopped after the test."""
    servers: list[ScriptedPlugin] = []

    def start(replies: Sequence[Reply], **kwargs: Any) -> ScriptedPlugin:
        server = ScriptedPlugin(replies, **kwargs).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()
