"""A what-if for bench/diagnose.py: `argoplug serve` without the CLI layer (typer): what typer adds to
start-up time and memory is the difference.

Does what `argoplug serve --plugin P --log-format json --log-level warning` does (configure_logging,
load_plugins, create_app, uvicorn with the settings of `argoplug.server.serve`) without typer's parsing.
`--ws auto` lets uvicorn load a websocket implementation, as `serve` did before f154f74.
Usage: python bench/direct_serve.py --plugin P --port N --token-file F [--ws none|auto]
"""

from __future__ import annotations

import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--plugin", action="append", default=[])
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--token-file", required=True)
parser.add_argument("--ws", default="none", choices=["none", "auto"])
opts = parser.parse_args()

import uvicorn  # noqa: E402

from argoplug.registry import load_plugins  # noqa: E402
from argoplug.server import ServerSettings, configure_logging, create_app  # noqa: E402

configure_logging("json", "warning")
app = create_app(load_plugins(opts.plugin), ServerSettings(token_file=opts.token_file))
config = uvicorn.Config(
    app,
    host="127.0.0.1",
    port=opts.port,
    access_log=False,
    log_config=None,
    log_level="warning",
    lifespan="on",
    ws=opts.ws,
)
uvicorn.Server(config).run()
