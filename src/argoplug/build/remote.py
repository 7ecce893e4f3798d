"""The files a bundle gives clusters other than Argo's (`remote/`), and the README section listing them.

`argoplug.build.writer` checks the `argoplug_remote_cluster_files` contributions with `checked_remote_files`
(each problem naming the plugin package) and adds `readme_section` to the bundle's README. An administrator
of each remote cluster applies them there; they are never part of `kustomization.yaml`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

from argoplug.build.bundle import BundleError

__all__ = ["REMOTE_DIR", "RemoteFile", "checked_remote_files", "readme_section"]

REMOTE_DIR = "remote"

_HOOK = "argoplug_remote_cluster_files"
_KEYS = ("path", "text", "about")
# One segment of a path: portable on every file system a bundle folder may be copied to.
_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")
_MAX_PATH = 255


@dataclasses.dataclass(frozen=True, slots=True)
class RemoteFile:
    """A file for a remote cluster: its path in the bundle folder (under `remote/`), text, README line and
    the plugin package that gave it."""

    path: str
    text: str
    about: str
    package: str


def checked_remote_files(contributed: Sequence[tuple[str, Any]]) -> list[RemoteFile]:
    """Return the hooks' remote files, in order, each checked.

    `contributed` holds `(package, item)` pairs (`hooks.contributions`). Each item must be a mapping of
    exactly `path`, `text` and `about`: `path` a relative POSIX path `remote/<segment>[/<segment>...]`,
    each segment letters, digits, `.`, `_` and `-` and neither `.` nor `..` (at most 255 characters);
    `text` a string; `about` one non-empty line. Raises BundleError naming the package otherwise, and
    naming both packages for a path given twice or a path under another file's path.
    """
    found: list[RemoteFile] = []
    owners: dict[str, str] = {}
    for package, item in contributed:
        where = f"plugin {package!r}: hook {_HOOK}"
        if not isinstance(item, Mapping):
            raise BundleError(f"{where}: expected a mapping (path, text, about), got {item!r}")
        unknown = sorted(set(item) - set(_KEYS))
        missing = [key for key in _KEYS if key not in item]
        if unknown or missing:
            wrong = [f"unknown key(s) {', '.join(unknown)}"] if unknown else []
            wrong += [f"missing {', '.join(missing)}"] if missing else []
            raise BundleError(
                f"{where}: file {item.get('path')!r}: {'; '.join(wrong)} (expected path, text, about)"
            )
        path, text, about = item["path"], item["text"], item["about"]
        problem = _path_problem(path)
        if problem:
            raise BundleError(f"{where}: path {path!r}: {problem}")
        if not isinstance(text, str):
            raise BundleError(f"{where}: file {path!r}: text must be a string, got {type(text).__name__}")
        if not isinstance(about, str) or not about.strip() or "\n" in about or "\r" in about:
            raise BundleError(f"{where}: file {path!r}: about must be one non-empty line, got {about!r}")
        for other, owner in owners.items():
            clash = _clash(path, other)
            if clash:
                raise BundleError(f"{where}: path {path!r} {clash} {other!r} of plugin {owner!r}")
        owners[path] = package
        found.append(RemoteFile(path, text, about.strip(), package))
    return found


def readme_section(files: Sequence[RemoteFile]) -> str:
    """The README section listing `files` with their `about` lines; "" when there are none."""
    if not files:
        return ""
    lines = [f"- `{file.path}`: {file.about}" for file in files]
    return _SECTION.format(files="\n".join(lines))


_SECTION = """
## On the remote clusters: `remote/`

These files are for other clusters than this one: the clusters the plugins reach. They are not in
`kustomization.yaml` (`kubectl apply -k .` leaves them out); an administrator of each cluster
applies its files there, with that cluster's credentials. `<remote>` stands for your kubectl
context of that cluster (for an EKS cluster, `aws eks update-kubeconfig --name CLUSTER --region
REGION --alias <remote>` makes one). `remote/` is the build's own: a later build removes the files
there it no longer writes.

{files}
"""


def _path_problem(path: Any) -> str:
    if not isinstance(path, str):
        return "expected a string"
    if len(path) > _MAX_PATH:
        return f"longer than {_MAX_PATH} characters"
    if path.startswith("/") or "\\" in path:
        return f"expected a relative POSIX path under {REMOTE_DIR}/"
    segments = path.split("/")
    if segments[0] != REMOTE_DIR or len(segments) < 2:
        return f"expected a path under {REMOTE_DIR}/ (e.g. {REMOTE_DIR}/eks-CLUSTER/rbac.yaml)"
    for segment in segments[1:]:
        if segment in ("", ".", ".."):
            return f"segment {segment!r}: expected a name (no empty, '.' or '..' segments)"
        if not _SEGMENT.match(segment):
            return f"segment {segment!r}: expected letters, digits, '.', '_' and '-' only"
    return ""


def _clash(path: str, other: str) -> str:
    # Compared without case: on macOS and Windows `remote/eks-A` and `remote/eks-a` are one folder.
    path, other = path.casefold(), other.casefold()
    if path == other:
        return "is also given by"
    if other.startswith(f"{path}/"):
        return "is a folder of"
    if path.startswith(f"{other}/"):
        return "lies under the file"
    return ""
