"""Whether this process can read the agent's token file, and, when it cannot, what would let it.

In Argo's agent pod the init container, running as uid 8737 (`cmd/argoexec/commands/agent.go`,
`NewAgentInitCommand`), writes `/var/run/argo/<plugin>/token` with mode 0440 in a 0770 folder, and the sidecar
sees that folder read-only at `/var/run/argo` (`workflow/controller/agent.go`,
`getExecutorPluginComponents`). A sidecar that is neither that user nor in the file's group cannot read it
(Argo issue #13015) and would refuse every call with 503. The server logs `token_file_problem` at start-up.

The argoexec image says `USER 8737` with no /etc/passwd entry for it (Argo's Dockerfile, `argoexec-nonroot`),
so the container runtime gives it gid 0: the file is 8737:0. The agent pod's securityContext is `runAsUser:
8737`, `runAsNonRoot: true`, no `runAsGroup`, `fsGroup` or `supplementalGroups`
(`workflow/common/security_context.go`, `MinimalPodSC`): a sidecar runs as its container's `runAsUser`, else
8737, and as its `runAsGroup`, else the gid its image's /etc/passwd gives that uid, else 0. It reads the
token when it is uid 8737 or gid 0. `security_context_problem` judges a container's securityContext by that;
`reads_agent_token` tries it with a real process (root only).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "AGENT_GID",
    "AGENT_UID",
    "container_identity",
    "reads_agent_token",
    "security_context_problem",
    "token_file_problem",
]

AGENT_UID = 8737
"""The uid Argo's agent init container writes the token file as (`workflow/common/security_context.go`)."""
AGENT_GID = 0
"""The gid it writes it as: the argoexec image's `USER 8737` has no /etc/passwd entry (Argo's Dockerfile)."""
TOKEN_MODE = 0o440
FOLDER_MODE = 0o770


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


def container_identity(security_context: Mapping[str, Any] | None) -> tuple[int, int | None]:
    """Return the (uid, gid) a sidecar container with `security_context` runs as in Argo's agent pod.

    uid: the container's `runAsUser`, else the pod's 8737. gid: its `runAsGroup`, else None: the image's
    /etc/passwd entry for that uid decides, and gid 0 when it has none (the container runtime's rule).
    """
    context = security_context if isinstance(security_context, Mapping) else {}
    uid, gid = context.get("runAsUser"), context.get("runAsGroup")
    return (
        uid if isinstance(uid, int) and not isinstance(uid, bool) else AGENT_UID,
        gid if isinstance(gid, int) and not isinstance(gid, bool) else None,
    )


def security_context_problem(security_context: Mapping[str, Any] | None) -> str | None:
    """Return one sentence on why a sidecar with `security_context` may not read its token, or None.

    None when it runs as uid 8737 (the file's owner) or gid 0 (its group). A uid without `runAsGroup`
    is readable only if the image has no /etc/passwd entry for that uid; the sentence says so.
    """
    uid, gid = container_identity(security_context)
    if uid == AGENT_UID or gid == AGENT_GID:
        return None
    fix = f"set the container's securityContext to runAsUser: {AGENT_UID} (or runAsGroup: {AGENT_GID})"
    made = (
        f"Argo's agent writes /var/run/argo/token as uid {AGENT_UID}, gid {AGENT_GID}, mode 0440 in a 0770 "
        "folder (Argo issue #13015)"
    )
    if gid is None:
        return (
            f"the sidecar runs as uid {uid} with no runAsGroup: {made}, so it can read its token only if its "
            f"image has no /etc/passwd entry for uid {uid} (the runtime then gives gid 0), else every call "
            f"gets 503; {fix}"
        )
    return f"the sidecar runs as uid {uid}, gid {gid}: {made}, so every call gets 503; {fix}"


def _write_agent_token_file(path: Path, token: str) -> None:
    """Give the token file at `path` Argo's owner and modes: 8737:0, 0440; its folder 8737:0, 0770.

    Needs root (chown); raises OSError otherwise. The folder is changed too: in the agent pod it is the
    init container's `/var/run/argo/<plugin>` (`cmd/argoexec/commands/agent.go`), mounted at /var/run/argo.
    """
    path.unlink(missing_ok=True)
    path.write_text(token)
    for target, mode in ((path, TOKEN_MODE), (path.parent, FOLDER_MODE)):
        os.chown(target, AGENT_UID, AGENT_GID)
        os.chmod(target, mode)


def reads_agent_token(uid: int, gid: int) -> bool | None:
    """Whether a process of exactly `uid` and `gid` (no other groups) reads a token file made as Argo does.

    A throw-away folder and file are made as `_write_agent_token_file` makes them, and `cat` reads the file
    as that identity. Returns None when this process cannot change identity (it is not root).
    """
    cat = shutil.which("cat")
    if os.geteuid() != 0 or cat is None:
        return None
    with tempfile.TemporaryDirectory(prefix="argoplug-token-") as scratch:
        os.chmod(scratch, 0o755)
        folder = Path(scratch) / "argo"
        folder.mkdir()
        token = folder / "token"
        _write_agent_token_file(token, "probe")
        read = subprocess.run(
            [cat, str(token)],
            user=uid,
            group=gid,
            extra_groups=[],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        return read.returncode == 0
