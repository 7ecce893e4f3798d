"""Whether this process can read the agent's token file, and, when it cannot, what would let it.

In Argo's agent pod the init container, running as uid 8737 (`cmd/argoexec/commands/agent.go`,
`NewAgentInitCommand`), writes `/var/run/argo/<plugin>/token` with mode 0440 in a 0770 folder, and the sidecar
sees that folder read-only at `/var/run/argo` (`workflow/controller/agent.go`,
`getExecutorPluginComponents`). A sidecar that is neither that user nor in the file's group cannot read it
(Argo issue #13015) and would refuse every call with 503. The server logs `token_file_problem` at start-up.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["AGENT_UID", "token_file_problem"]

AGENT_UID = 8737
"""The uid Argo's agent init container writes the token file as (`workflow/common/security_context.go`)."""


def token_file_problem(path: str) -> str | None:
    """Return one line saying why this process cannot read the token file at `path`, or None if it can.

    The line names the uid, gid and groups this process runs as, the file's (or its folder's) owner and
    mode, and the container `securityContext` that would let it read the file. A file that does not exist
    (yet) is reported too; the server reads it again on every call of its plugin keys.
    """
    file = Path(path)
    identity = _identity()
    try:
        file.stat()
    except FileNotFoundError:
        return (
            f"token file {path} does not exist (running as {identity}); calls of this server's plugin keys "
            "get 503 until it does"
        )
    except PermissionError:
        return _unreadable(path, identity, file.parent, "its folder")
    if os.access(file, os.R_OK):
        return None
    return _unreadable(path, identity, file, "it")


def _unreadable(path: str, identity: str, target: Path, what: str) -> str:
    try:
        info = target.stat()
        owner = f"{what} is {info.st_uid}:{info.st_gid} mode {stat.S_IMODE(info.st_mode):04o}"
        fix = f"runAsUser: {info.st_uid} or runAsGroup: {info.st_gid}"
    except OSError:
        owner = f"{what} cannot be examined either"
        fix = f"runAsUser: {AGENT_UID} (the agent's user)"
    return (
        f"token file {path} is not readable by this process ({identity}): {owner}; Argo's agent writes it "
        f"as uid {AGENT_UID}, mode 0440 (Argo issue #13015), so every call of this server's plugin keys gets "
        f"503; set the sidecar container's securityContext to {fix}"
    )


def _identity() -> str:
    groups = sorted(set(os.getgroups()) - {os.getgid()})
    extra = f", groups {','.join(map(str, groups))}" if groups else ""
    return f"uid {os.getuid()}, gid {os.getgid()}{extra}"
