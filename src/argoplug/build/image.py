"""The sidecar image of a bundle: which distributions to install, and the Dockerfile.

`argoplug.build.writer` calls `requirements` with the plugin packages `registry.load` found,
`dockerfile_text` with them and the `argoplug_dockerfile_lines` contributions, and `wheels_readme`.

argoplug and the plugin packages are not known to be on PyPI (argoplug is not there yet; a plugin package
may be private), so the image installs them from `wheels/` only: were PyPI asked too, a missing wheel would
silently install whatever someone published under that name. Only their dependencies come from PyPI.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import re
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from argoplug.build.bundle import IMAGE_GID, IMAGE_UID, Bundle, BundleError
from argoplug.build.manifests import container
from argoplug.registry import installed

__all__ = ["BASE_IMAGE", "WHEELS_DIR", "Requirements", "dockerfile_text", "requirements", "wheels_readme"]

BASE_IMAGE = "python:3.11-slim"
# The folder of the build context (the bundle's output dir) holding the wheels of argoplug and of the
# plugin packages (`argoplug build` puts them there, with their dependencies', unless --no-wheels), the only
# place the image installs them from; pip also looks there for their dependencies before PyPI.
WHEELS_DIR = "wheels"
# The extras of argoplug a ready plugin needs (boto3, lightkube), by the module its entry point names.
_READY_PLUGIN_EXTRAS: dict[str, tuple[str, ...]] = {
    "argoplug.plugins.sagemaker": ("aws",),
    "argoplug.plugins.glue": ("aws",),
    "argoplug.plugins.step_functions": ("aws",),
    "argoplug.plugins.lambda_functions": ("aws",),
    "argoplug.plugins.kubernetes_secret": ("kube",),
    "argoplug.plugins.eks_pod": ("aws", "kube"),
}
# Instructions a plugin's lines may not use: they would change the base, the user or the command.
_FORBIDDEN = ("FROM", "USER", "ENTRYPOINT", "CMD")


@dataclasses.dataclass(frozen=True)
class Requirements:
    """What the image installs: `pins`, pip requirements `name[extras]==version` (argoplug first), and
    `unpackaged`, the bundle's plugin specs (`module:attr`) that no installed distribution holds."""

    pins: tuple[str, ...]
    unpackaged: tuple[str, ...] = ()

    @property
    def distributions(self) -> tuple[str, ...]:
        """`pins` without their extras (`argoplug==0.1.0`): what must be in `wheels/`."""
        return tuple(re.sub(r"\[[^\]]*\]", "", pin) for pin in self.pins)


def requirements(packages: Sequence[tuple[str, ModuleType]]) -> Requirements:
    """Return the pinned distributions serving `packages` (`LoadedPlugins.packages`) and those unpackaged.

    Each plugin is pinned at the version installed here (what the build ran its hooks with): an entry
    point's own distribution, or for a `module:attr` spec the distribution that ships the module's top
    package. argoplug itself comes first, with the extras its ready plugins need (`aws` for
    `sagemaker-pipelines`).
    """
    entry_points = installed()
    extras: set[str] = set()
    pins: dict[str, str] = {}
    unpackaged: list[str] = []
    top_level = importlib.metadata.packages_distributions()
    for name, module in packages:
        dist_name = ""
        ep = entry_points.get(name)
        if ep is not None and ep.dist is not None:
            dist_name = ep.dist.name
        else:
            candidates = top_level.get(module.__name__.partition(".")[0], [])
            dist_name = candidates[0] if candidates else ""
        if not dist_name:
            unpackaged.append(name)
            continue
        for prefix, needed in _READY_PLUGIN_EXTRAS.items():
            if module.__name__ == prefix or module.__name__.startswith(prefix + "."):
                extras.update(needed)
        pins.setdefault(_canonical(dist_name), dist_name)
    argoplug = f"argoplug[{','.join(sorted(extras))}]" if extras else "argoplug"
    ordered = [f"{argoplug}=={importlib.metadata.version('argoplug')}"]
    for key, dist_name in pins.items():
        if key != "argoplug":
            ordered.append(f"{dist_name}=={importlib.metadata.version(dist_name)}")
    return Requirements(tuple(ordered), tuple(unpackaged))


def dockerfile_text(bundle: Bundle, reqs: Requirements, contributed: Sequence[tuple[str, Any]]) -> str:
    """Return the Dockerfile of the sidecar image (build context: the bundle's output dir).

    From `BASE_IMAGE`: the plugins' lines (`argoplug_dockerfile_lines`, run as root); the pinned
    distributions installed from `wheels/` alone (`pip install --no-index --no-deps`: a missing wheel
    fails the image build with a line naming `wheels/`), then the same pins again with PyPI, which finds
    them installed and installs their dependencies (and argoplug's extras), `wheels/` searched first.
    Both through a BuildKit bind mount, so no wheel stays in a layer; pip compiles the bytecode there, as
    the read-only root filesystem allows no later writes. Then the non-root user uid/gid 8737 (the owner of
    the token file Argo's agent writes, `default_security_context`) and
    `ENTRYPOINT`/`CMD` equal to the container's command and args. Raises BundleError naming the package
    for a line that is not a string or uses FROM, USER, ENTRYPOINT or CMD.
    """
    sidecar = container(bundle)
    lines = [
        "# syntax=docker/dockerfile:1",
        f"# The sidecar image of the executor plugin {bundle.name!r}, generated by `argoplug build`.",
        f"# Build from this folder: docker build -t {bundle.image} .",
        f"FROM {BASE_IMAGE}",
        "ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1",
    ]
    previous = ""
    for package, line in contributed:
        if package != previous:
            lines.append(f"# from plugin {package}")
            previous = package
        lines.extend(_checked_lines(package, line))
    for spec in reqs.unpackaged:
        lines.append(f"# {spec}: no installed distribution holds it; add its module to the image yourself.")
    own = " ".join(_shell_quote(pin) for pin in reqs.distributions)
    pins = " ".join(_shell_quote(pin) for pin in reqs.pins)
    missing = (
        f"no wheel in {WHEELS_DIR}/ for one of: {' '.join(reqs.distributions)}; each must be there, "
        f"see {WHEELS_DIR}/README.md"
    )
    mount = f"RUN --mount=type=bind,source={WHEELS_DIR},target=/tmp/wheels \\"
    lines += [
        f"# argoplug and the plugin packages come from {WHEELS_DIR}/ only (argoplug build puts them there): "
        "were PyPI asked, a missing wheel would install whatever is published there under that name.",
        mount,
        f"    pip install --no-cache-dir --no-index --no-deps --find-links /tmp/wheels {own} \\",
        f"    || {{ echo {_shell_quote(missing)} >&2; exit 1; }}",
        f"# Their dependencies: from {WHEELS_DIR}/ if there, else PyPI (the pins above are installed "
        "already).",
        mount,
        f"    pip install --no-cache-dir --find-links /tmp/wheels {pins}",
        f"# uid {IMAGE_UID}, Argo's agent user: the token file /var/run/argo/token is its, mode 0440 (Argo "
        "issue #13015).",
        f"RUN groupadd --gid {IMAGE_GID} argoplug \\",
        f"    && useradd --uid {IMAGE_UID} --gid {IMAGE_GID} --no-create-home --home-dir /nonexistent \\",
        "       --shell /usr/sbin/nologin argoplug",
        f"USER {IMAGE_UID}:{IMAGE_GID}",
        f"EXPOSE {bundle.port}",
        f"ENTRYPOINT {json.dumps(sidecar['command'])}",
        f"CMD {json.dumps(sidecar['args'])}",
    ]
    return "\n".join(lines) + "\n"


def wheels_readme(reqs: Requirements) -> str:
    """Return `wheels/README.md`: which wheels the image build needs there, and why only from there."""
    needed = "\n".join(f"- `{pin}`" for pin in reqs.distributions)
    return (
        "The image installs argoplug and the plugin packages from the wheels in this folder only, never\n"
        "from PyPI, so that a package published there under one of their names cannot slip in: `docker\n"
        "build` fails unless a wheel of each of these is here:\n\n"
        f"{needed}\n\n"
        "`argoplug build` puts them here, each built with `pip wheel` from where it is installed (a source\n"
        "folder, a VCS commit, an archive or the package index), and the wheels of their dependencies too,\n"
        "for the Python it runs on. With `--no-wheels` it does not: build them yourself, e.g.\n"
        "`pip wheel -w wheels /path/to/argoplug /path/to/plugin-package`. The image takes their\n"
        "dependencies from here when a wheel fits its Python, else from PyPI.\n"
    )


def _checked_lines(package: str, line: Any) -> list[str]:
    where = f"plugin {package!r}: hook argoplug_dockerfile_lines"
    if not isinstance(line, str):
        raise BundleError(f"{where}: expected Dockerfile lines as strings, got {line!r}")
    lines = line.splitlines() or [""]
    continued = False
    for text in lines:
        word = text.strip().split(" ", 1)[0].upper()
        if not continued and word in _FORBIDDEN:
            raise BundleError(
                f"{where}: {text.strip()!r}: {word} is the build's own (the base image, the non-root user "
                "and the command are set by argoplug build)"
            )
        continued = text.rstrip().endswith("\\")
    return lines


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _shell_quote(text: str) -> str:
    return f"'{text}'" if any(c in text for c in "[]<>=!~ :;&|()") else text
