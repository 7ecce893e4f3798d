"""Fixtures of the local agent's tests: scripted misbehaving servers (live ones: argoplug's `live_server`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from .helpers import Reply, ScriptedPlugin


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
