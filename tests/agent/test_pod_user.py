"""`argoplug run` starts a plugin folder's sidecar as Argo's agent pod would: its user, and Argo's token file.

The agent pod runs a sidecar as its container's `runAsUser` (else the pod's 8737) and `runAsGroup`, with no
other group (workflow/common/security_context.go), and its init container writes the token as uid 8737, gid 0,
mode 0440 in a 0770 folder (cmd/argoexec/commands/agent.go). As root, `argoplug run` does the same; a user
that could not read the token is refused before anything runs, as the cluster would answer every call 503.
The sidecar here is a stdlib server run by the system's python3, which every user may run.
"""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from argoplug.agent.plugins import PluginSidecars
from conformance_servers import free_port

from .test_plugins import argoplug

SYSTEM_PYTHON = Path("/usr/bin/python3")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: it starts the sidecar as another user"),
    pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="needs /usr/bin/python3, runnable by any user"),
]

WORKFLOW = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: who-am-i}
spec:
  entrypoint: main
  templates:
    - name: main
      plugin: {whoami: {}}
"""

# The sidecar: answers its key with the identity it runs as, after checking the token it read at start.
SERVER = """\
import json, os
from http.server import BaseHTTPRequestHandler, HTTPServer

with open(TOKEN_FILE) as f:
    token = f.read().strip()


class Plugin(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = {}
        if "whoami" in body["template"].get("plugin", {}):
            if self.headers.get("Authorization") != "Bearer " + token:
                self.send_response(403)
                self.end_headers()
                return
            who = f"uid {os.getuid()} gid {os.getgid()} groups {sorted(set(os.getgroups()) - {os.getgid()})}"
            reply = {"node": {"phase": "Succeeded", "message": who}}
        self.send_response(200)
        self.end_headers()
        self.wfile.write(json.dumps(reply).encode())


HTTPServer(("localhost", PORT), Plugin).serve_forever()
"""


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A folder every user may enter (pytest's tmp_path is under a 0700 folder of root's)."""
    with tempfile.TemporaryDirectory(prefix="argoplug-pod-user-") as folder:
        os.chmod(folder, 0o755)
        yield Path(folder)


def whoami_plugin(folder: Path, port: int, token_file: Path, security_context: str) -> Path:
    folder.mkdir()
    (folder / "server.py").write_text(
        SERVER.replace("TOKEN_FILE", repr(str(token_file))).replace("PORT", str(port))
    )
    (folder / "plugin.yaml").write_text(
        textwrap.dedent(f"""\
            apiVersion: argoproj.io/v1alpha1
            kind: ExecutorPlugin
            metadata: {{name: whoami}}
            spec:
              sidecar:
                container:
                  name: whoami-executor-plugin
                  image: python:3.11-slim
                  command: [{SYSTEM_PYTHON}, -c]
                  ports: [{{containerPort: {port}}}]
                  resources: {{requests: {{cpu: 10m}}, limits: {{cpu: 100m}}}}
                  securityContext: {security_context}
            """)
    )
    return folder


def run_whoami(scratch: Path, token_file: Path, security_context: str) -> subprocess.CompletedProcess[str]:
    """`argoplug run` of WORKFLOW with the whoami plugin of `security_context`, its token at `token_file`."""
    workflow = scratch / "workflow.yaml"
    workflow.write_text(WORKFLOW)
    plugin = whoami_plugin(scratch / "whoami", free_port(), token_file, security_context)
    return argoplug("run", workflow, "--plugin", plugin, "--plugin-token-file", token_file)


@pytest.mark.parametrize(
    ("security_context", "identity"),
    [
        ("{runAsNonRoot: true}", "uid 8737 gid 0 groups []"),
        ("{runAsNonRoot: true, runAsUser: 8737, runAsGroup: 8737}", "uid 8737 gid 8737 groups []"),
        ("{runAsNonRoot: true, runAsUser: 1000, runAsGroup: 0}", "uid 1000 gid 0 groups []"),
    ],
)
def test_the_sidecar_runs_as_the_agent_pods_user_and_reads_the_token_argo_writes(
    scratch: Path, security_context: str, identity: str
) -> None:
    token_file = scratch / "argo" / "token"
    done = run_whoami(scratch, token_file, security_context)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Succeeded: {identity}" in done.stdout
    uid, gid = identity.split()[1], identity.split()[3]
    assert f"  user in the agent pod: uid {uid}, gid {gid}" in done.stdout
    assert "; started as that user" in done.stdout
    assert f"  token file: {token_file} (a fresh token, uid 8737, gid 0, mode 0440;" in done.stdout
    assert not token_file.parent.exists()


def test_the_token_file_and_its_folder_are_made_as_argos_init_container_makes_them(scratch: Path) -> None:
    token_file = scratch / "argo" / "token"
    plugin = whoami_plugin(scratch / "whoami", free_port(), token_file, "{runAsNonRoot: true}")
    with PluginSidecars([str(plugin)], workdir=scratch / "work", token_file=token_file, say=lambda _: None):
        umask = os.umask(0)
        os.umask(umask)
        # Go's os.Mkdir(dir, 0o770) and os.WriteFile(file, token, 0o440), less the umask as in the container.
        for path, mode in ((token_file, 0o440), (token_file.parent, 0o770 & ~umask)):
            info = path.stat()
            assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (8737, 0, mode)


@pytest.mark.parametrize(
    "security_context",
    ["{runAsNonRoot: true, runAsUser: 65534, runAsGroup: 65534}", "{runAsUser: 1000, runAsGroup: 1000}"],
)
def test_a_sidecar_user_that_cannot_read_the_token_is_refused_before_anything_runs(
    scratch: Path, security_context: str
) -> None:
    token_file = scratch / "argo" / "token"
    done = run_whoami(scratch, token_file, security_context)
    assert done.returncode != 0
    assert "cannot read the token file Argo's agent writes (uid 8737, gid 0, mode 0440" in done.stderr
    assert (
        "so every call would get 503; set the container's securityContext to runAsUser: 8737" in done.stderr
    )
    assert "Traceback" not in done.stderr
    assert not token_file.parent.exists()
