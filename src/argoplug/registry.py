"""Finding plugins: installed packages' entry points (group `argoplug.plugins`) and `module:attr` paths.

The CLI and the test kit call `load_plugins`; a ready plugin registers itself exactly like a third-party one.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import Any

from argoplug.plugin import Plugin

__all__ = [
    "ENTRY_POINT_GROUP",
    "InstalledPlugin",
    "LoadedPlugins",
    "PluginLoadError",
    "claimed_twice",
    "describe_installed",
    "load",
    "load_plugins",
    "plugins_of",
]

ENTRY_POINT_GROUP = "argoplug.plugins"


class PluginLoadError(Exception):
    """A plugin could not be found or loaded, or two plugins claim the same plugin key."""


def plugins_of(obj: Any, origin: str) -> list[Plugin[Any]]:
    """Return the plugins `obj` stands for: a Plugin, an iterable of them, or a module with `plugins`.

    Raises PluginLoadError naming `origin` when `obj` is none of these.
    """
    if isinstance(obj, Plugin):
        return [obj]
    if hasattr(obj, "plugins") and not isinstance(obj, (str, bytes)):
        obj = obj.plugins
    if isinstance(obj, Iterable) and not isinstance(obj, (str, bytes, dict)):
        found = list(obj)
        if found and all(isinstance(p, Plugin) for p in found):
            return found
    raise PluginLoadError(
        f"{origin} is not a plugin: expected an argoplug.Plugin, a list of them, or a module with `plugins`"
    )


def _load_path(spec: str) -> list[Plugin[Any]]:
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginLoadError(f"cannot import plugin module {module_name!r}: {exc}") from exc
    for part in attr.split(".") if attr else []:
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise PluginLoadError(f"{module_name!r} has no attribute {attr!r}") from exc
    return plugins_of(obj, spec)


def installed() -> dict[str, importlib.metadata.EntryPoint]:
    """Map the names of installed plugin entry points to the entry points (the first of a name claimed
    twice: see `claimed_twice`)."""
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def claimed_twice() -> dict[str, list[str]]:
    """Map each plugin entry-point name that two or more installed packages register to those packages.

    Python would load only one of them, silently; argoplug refuses to load such a name instead.
    """
    packages: dict[str, list[str]] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        package = ep.dist.name if ep.dist else ep.value
        if package not in packages.setdefault(ep.name, []):
            packages[ep.name].append(package)
    return {name: sorted(found) for name, found in packages.items() if len(found) > 1}


def _refuse_claimed_twice(name: str, conflicts: dict[str, list[str]]) -> None:
    if name in conflicts:
        raise PluginLoadError(
            f"plugin name {name!r} is registered by two installed packages: "
            f"{' and '.join(conflicts[name])}; uninstall one of them"
        )


@dataclasses.dataclass(frozen=True)
class LoadedPlugins:
    """The plugins selected, and the modules of their packages (where their hook implementations live).

    `packages` holds `(name, module)` pairs: the entry point's name and the module it names, or the
    `module:attr` path given and its module, in the order selected.
    """

    plugins: tuple[Plugin[Any], ...]
    packages: tuple[tuple[str, ModuleType], ...]


def load(names: Sequence[str] = ()) -> LoadedPlugins:
    """Load the plugins named (entry-point names, or `module:attr` paths), or every installed one.

    Raises PluginLoadError for an unknown name, a failing import, a plugin key claimed twice or an
    entry-point name two packages register (naming both).
    """
    entry_points = installed()
    conflicts = claimed_twice()
    loaded: list[tuple[str, Plugin[Any]]] = []
    packages: list[tuple[str, ModuleType]] = []
    for name in names or sorted(entry_points):
        if name in entry_points:
            _refuse_claimed_twice(name, conflicts)
            ep = entry_points[name]
            try:
                obj = ep.load()
            except Exception as exc:
                raise PluginLoadError(f"plugin {name!r} ({ep.value}) failed to load: {exc}") from exc
            owner = f"{name} ({ep.dist.name if ep.dist else ep.value})"
            loaded.extend((owner, p) for p in plugins_of(obj, f"entry point {name!r}"))
            packages.append((name, importlib.import_module(ep.module)))
        elif ":" in name or "." in name:
            loaded.extend((name, p) for p in _load_path(name))
            packages.append((name, importlib.import_module(name.partition(":")[0])))
        else:
            known = ", ".join(sorted(entry_points)) or "none"
            raise PluginLoadError(f"no plugin named {name!r} is installed (installed: {known})")
    owners: dict[str, str] = {}
    for owner, plugin in loaded:
        if plugin.key in owners and owners[plugin.key] != owner:
            raise PluginLoadError(
                f"plugin key {plugin.key!r} is claimed by both {owners[plugin.key]} and {owner}"
            )
        owners[plugin.key] = owner
    unique: dict[int, Plugin[Any]] = {id(p): p for _, p in loaded}
    return LoadedPlugins(tuple(unique.values()), tuple(packages))


def load_plugins(names: Sequence[str] = ()) -> list[Plugin[Any]]:
    """Load the plugins named, or every installed one: `load(names).plugins` as a list."""
    return list(load(names).plugins)


@dataclasses.dataclass(frozen=True)
class InstalledPlugin:
    """One installed entry point of group `argoplug.plugins`: what `argoplug plugins` lists.

    `plugins` holds the loaded Plugin objects (empty when loading failed; `error` then says why).
    """

    name: str
    package: str
    version: str
    plugins: tuple[Plugin[Any], ...] = ()
    error: str = ""


def describe_installed() -> list[InstalledPlugin]:
    """Load every installed plugin entry point and describe it, by name; a failing one is described too."""
    found: list[InstalledPlugin] = []
    conflicts = claimed_twice()
    for name, ep in sorted(installed().items()):
        package = ep.dist.name if ep.dist else ep.value
        version = ep.dist.version if ep.dist else ""
        try:
            _refuse_claimed_twice(name, conflicts)
            plugins = tuple(plugins_of(ep.load(), f"entry point {name!r}"))
        except Exception as exc:  # a broken package must not hide the others
            found.append(InstalledPlugin(name, package, version, error=f"{type(exc).__name__}: {exc}"))
            continue
        found.append(InstalledPlugin(name, package, version, plugins))
    return found
