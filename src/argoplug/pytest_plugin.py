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
    """A factory of live servers: `live_server(plugins, *, settings=None, hooks=None)` → a started LiveServer.

    Each server runs in a thread on a free loopback port with its own token file, and is stopped after
    the test (its shutdown hooks run then). Call it as Argo's agent would::

        from argoplug.hooks import plugin_manager
        from argoplug.testing import NodeUpdate

        def test_train(live_server):
            server = live_server([train], hooks=plugin_manager([("my-package", my_package)]))
            node: NodeUpdate = server.run_task({"train": {"epochs": "3"}}, workflow="wf-1")
            assert node.phase == "Succeeded", node.message

    `run_task` follows Running + requeue replies (without waiting) until the node is done and raises
    AssertionError when it would hang or is not done after `max_calls` calls (100); `call_as_agent` makes
    one round; `execute` returns one raw reply. Raises what `LiveServer.start` raises.
    """
    started: list[LiveServer] = []

    def start(plugins: Sequence[Plugin[Any]], **kwargs: Any) -> LiveServer:
        server = LiveServer(plugins, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
