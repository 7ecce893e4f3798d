"""The plugin manager (pluggy) of the hooks in `argoplug.hookspecs`, and calling them with blame.

`registry.load` gives the modules of the plugin packages selected; `plugin_manager` registers each under
the name it was selected by (an entry-point name or a `module:attr` path). `argoplug build` gathers
contributions with `contributions`, which names the package whose hook raised; the server
(`argoplug.server`) takes each hook's `implementations` once and calls them one by one, so that one
package's failing hook neither hides nor stops the others'.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import pluggy

from argoplug import hookspecs

__all__ = [
    "HookError",
    "Implementation",
    "contributions",
    "failure_message",
    "implementations",
    "plugin_manager",
]

_PREFIX = "argoplug_"


class HookError(Exception):
    """A plugin package's hook raised, or implements a hook that does not exist; the message names it."""


def plugin_manager(sources: Iterable[tuple[str, object]] = ()) -> pluggy.PluginManager:
    """Return a plugin manager with argoplug's hookspecs and each `(name, module)` of `sources` registered.

    A module without hook implementations is registered too (and contributes nothing); a module or name
    already registered is skipped. Raises HookError naming the package for an `argoplug_*` function that
    matches no hookspec or whose arguments do not, that is not marked with `argoplug.hookimpl` (pluggy
    would silently ignore it), or that is marked as a wrapper (argoplug calls implementations one by one).
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    for name, module in sources:
        if manager.has_plugin(name) or manager.is_registered(module):
            continue
        for attr in _unmarked(manager, module):
            raise HookError(
                f"plugin {name!r}: {attr} is not marked as a hook implementation: decorate it with "
                "@argoplug.hookimpl"
            )
        try:
            manager.register(module, name=name)
        except pluggy.PluginValidationError as exc:
            raise HookError(f"plugin {name!r}: {exc}") from None
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise HookError(f"plugin {manager.get_name(exc.plugin)!r}: {exc}") from None
    for hook_name in _hook_names():
        implementations(manager, hook_name)  # refuses wrappers
    return manager


@dataclasses.dataclass(frozen=True, slots=True)
class Implementation:
    """One package's implementation of one hook: the package's name, the function and the arguments it takes.

    `argnames` are the hookspec's argument names the function declares (a subset, in its own order).
    """

    package: str
    function: Callable[..., Any]
    argnames: tuple[str, ...]

    def call(self, **kwargs: Any) -> Any:
        """Call the function with those of `kwargs` it takes; return what it returns, raise what it raises."""
        return self.function(*[kwargs[name] for name in self.argnames])


def implementations(manager: pluggy.PluginManager, hook_name: str) -> list[Implementation]:
    """Return the implementations of hook `hook_name`, in the order their packages were registered.

    pluggy's `tryfirst`/`trylast` do not change that order. Raises HookError naming the package when an
    implementation is a wrapper (`wrapper=True` or `hookwrapper=True`): argoplug calls each one on its own.
    """
    order = {name: index for index, (name, _) in enumerate(manager.list_name_plugin())}
    found: list[Implementation] = []
    for impl in getattr(manager.hook, hook_name).get_hookimpls():
        if impl.wrapper or impl.hookwrapper:
            raise HookError(
                f"plugin {impl.plugin_name!r}: {hook_name} is marked as a wrapper; argoplug calls every "
                "implementation on its own, so drop wrapper=True / hookwrapper=True"
            )
        found.append(Implementation(impl.plugin_name, impl.function, tuple(impl.argnames)))
    found.sort(key=lambda implementation: order.get(implementation.package, len(order)))
    return found


def _unmarked(manager: pluggy.PluginManager, module: object) -> list[str]:
    """The names of `module`'s `argoplug_*` functions that pluggy would not take as hook implementations."""
    return [
        attr
        for attr in dir(module)
        if attr.startswith(_PREFIX)
        and callable(getattr(module, attr, None))
        and manager.parse_hookimpl_opts(module, attr) is None
    ]


def _hook_names() -> list[str]:
    return [name for name in dir(hookspecs) if name.startswith(_PREFIX)]


def contributions(manager: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """Call every implementation of the list-returning hook `hook_name`; return `(package, item)` pairs.

    Implementations run in registration order (the order of `sources`), each item of each returned list
    kept with the name of the package that gave it. A `hookspecs.BuildContext` among `kwargs` reaches
    each implementation as `context.for_package(<its package's name>)`: `settings` are those the bundle
    gives that package, deep-copied for that call alone. Raises HookError naming the package and the
    hook when an implementation raises or returns something that is not a list.
    """
    found: list[tuple[str, Any]] = []
    for impl in implementations(manager, hook_name):
        arguments = {
            name: value.for_package(impl.package) if isinstance(value, hookspecs.BuildContext) else value
            for name, value in kwargs.items()
        }
        try:
            returned = impl.call(**arguments)
        except Exception as exc:
            raise HookError(failure_message(impl.package, hook_name, exc)) from exc
        if returned is None:
            continue
        if not isinstance(returned, list):
            raise HookError(
                f"plugin {impl.package!r}: hook {hook_name} returned {type(returned).__name__}, "
                "expected a list"
            )
        found.extend((impl.package, item) for item in returned)
    return found


def failure_message(package: str, hook_name: str, exc: BaseException) -> str:
    """Say that `package`'s implementation of `hook_name` raised `exc`, for a HookError or a log line."""
    return f"plugin {package!r}: hook {hook_name} failed: {type(exc).__name__}: {exc}"
