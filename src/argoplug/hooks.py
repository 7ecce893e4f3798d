"""The plugin manager (pluggy) of the hooks in `argoplug.hookspecs`, and calling them with blame.

`registry.load` gives the modules of the plugin packages selected; `plugin_manager` registers each under
its entry point's name. `argoplug build` gathers contributions with `contributions`, which names the
package whose hook raised; the server calls the lifecycle hooks through the manager it is given.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pluggy

from argoplug import hookspecs

__all__ = ["HookError", "contributions", "plugin_manager"]


class HookError(Exception):
    """A plugin package's hook raised, or implements a hook that does not exist; the message names it."""


def plugin_manager(sources: Iterable[tuple[str, object]] = ()) -> pluggy.PluginManager:
    """Return a plugin manager with argoplug's hookspecs and each `(name, module)` of `sources` registered.

    A module without hook implementations is registered too (and contributes nothing). Raises HookError
    naming the package for an `argoplug_*` function that matches no hookspec or whose arguments do not.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    for name, module in sources:
        if manager.has_plugin(name) or manager.is_registered(module):
            continue
        try:
            manager.register(module, name=name)
        except pluggy.PluginValidationError as exc:
            raise HookError(f"plugin {name!r}: {exc}") from None
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise HookError(f"plugin {manager.get_name(exc.plugin)!r}: {exc}") from None
    return manager


def contributions(manager: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """Call every implementation of the list-returning hook `hook_name`; return `(package, item)` pairs.

    Implementations run in registration order (the order of `sources`), each item of each returned list
    kept with the name of the package that gave it. Raises HookError naming the package and the hook
    when an implementation raises or returns something that is not a list.
    """
    caller = getattr(manager.hook, hook_name)
    found: list[tuple[str, Any]] = []
    for impl in reversed(caller.get_hookimpls()):  # pluggy keeps them last-registered first
        try:
            returned = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
        except Exception as exc:
            raise HookError(
                f"plugin {impl.plugin_name!r}: hook {hook_name} failed: {type(exc).__name__}: {exc}"
            ) from exc
        if returned is None:
            continue
        if not isinstance(returned, list):
            raise HookError(
                f"plugin {impl.plugin_name!r}: hook {hook_name} returned {type(returned).__name__}, "
                "expected a list"
            )
        found.extend((impl.plugin_name, item) for item in returned)
    return found
