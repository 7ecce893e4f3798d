"""The plugin manager of argoplug's hooks: registering plugin packages, refusing bad hook implementations,
and calling list-returning hooks with blame (`argoplug.hooks`)."""

from __future__ import annotations

import sys
import types

import pytest

import hook_plugins
from argoplug.hooks import HookError, contributions, implementations, plugin_manager
from argoplug.hookspecs import BuildContext, hookimpl
from argoplug.registry import load

CONTEXT = BuildContext(name="demo")


def test_the_modules_of_loaded_packages_are_registered_under_their_names() -> None:
    loaded = load(["hook_plugins:plugin"])
    assert loaded.packages == (("hook_plugins:plugin", hook_plugins),)
    manager = plugin_manager(loaded.packages)
    assert manager.get_plugin("hook_plugins:plugin") is hook_plugins
    found = implementations(manager, "argoplug_startup")
    assert [(impl.package, impl.function, impl.argnames) for impl in found] == [
        ("hook_plugins:plugin", hook_plugins.argoplug_startup, ("plugins",))
    ]
    assert implementations(manager, "argoplug_before_execute") == []


def test_a_module_without_hooks_is_registered_and_contributes_nothing() -> None:
    plain = types.ModuleType("plain")
    manager = plugin_manager([("plain", plain)])
    assert manager.get_plugin("plain") is plain
    assert contributions(manager, "argoplug_dockerfile_lines", context=CONTEXT) == []


def test_a_package_given_twice_is_registered_once() -> None:
    recorder = hook_plugins.Recorder()
    manager = plugin_manager([("a", recorder), ("a", hook_plugins.Recorder()), ("b", recorder)])
    assert [impl.package for impl in implementations(manager, "argoplug_startup")] == ["a"]


def test_a_misspelt_hook_is_refused_naming_the_package() -> None:
    with pytest.raises(HookError, match=r"^plugin 'my-package': .*unknown hook 'argoplug_start_up'"):
        plugin_manager([("fine", hook_plugins.Recorder()), ("my-package", hook_plugins.Misspelt())])


def test_a_hook_with_arguments_its_spec_lacks_is_refused_naming_the_package() -> None:
    with pytest.raises(
        HookError,
        match=r"(?s)^plugin 'my-package': .*argoplug_startup.*port.*can not be found in the hookspec",
    ):
        plugin_manager([("my-package", hook_plugins.WrongArguments())])


def test_an_argoplug_function_without_hookimpl_is_refused_rather_than_ignored() -> None:
    with pytest.raises(
        HookError,
        match=r"^plugin 'my-package': argoplug_shutdown is not marked as a hook implementation: "
        r"decorate it with @argoplug.hookimpl",
    ):
        plugin_manager([("my-package", hook_plugins.Unmarked())])


def test_a_wrapper_is_refused_naming_the_package() -> None:
    with pytest.raises(
        HookError, match=r"^plugin 'wrapping': argoplug_dockerfile_lines is marked as a wrapper"
    ):
        plugin_manager([("wrapping", hook_plugins.Wrapper())])


def test_contributions_keep_the_registration_order_and_say_whose_they_are() -> None:
    # Every implementation is `tryfirst`, which would make pluggy call the last registered first.
    manager = plugin_manager([("first", hook_plugins.Lines("a")), ("second", hook_plugins.Lines("b"))])
    assert contributions(manager, "argoplug_dockerfile_lines", context=CONTEXT) == [
        ("first", "a 1"),
        ("first", "a 2"),
        ("second", "b 1"),
        ("second", "b 2"),
    ]
    reverse = plugin_manager([("second", hook_plugins.Lines("b")), ("first", hook_plugins.Lines("a"))])
    found = contributions(reverse, "argoplug_dockerfile_lines", context=CONTEXT)
    assert [package for package, _ in found] == ["second", "second", "first", "first"]


def test_contributions_name_the_package_whose_hook_raised() -> None:
    manager = plugin_manager(
        [("fine", hook_plugins.Lines("a")), ("rbac-package", hook_plugins.FailingBuild())]
    )
    with pytest.raises(HookError) as caught:
        contributions(manager, "argoplug_kubernetes_rules", context=CONTEXT)
    assert str(caught.value) == (
        "plugin 'rbac-package': hook argoplug_kubernetes_rules failed: KeyError: 'namespace'"
    )
    assert isinstance(caught.value.__cause__, KeyError)


def test_contributions_name_the_package_whose_hook_returned_no_list() -> None:
    manager = plugin_manager([("fine", hook_plugins.Lines("a")), ("tuple-package", hook_plugins.NotAList())])
    with pytest.raises(HookError) as caught:
        contributions(manager, "argoplug_dockerfile_lines", context=CONTEXT)
    assert str(caught.value) == (
        "plugin 'tuple-package': hook argoplug_dockerfile_lines returned tuple, expected a list"
    )


def test_an_implementation_may_take_fewer_arguments_than_its_spec() -> None:
    module = types.ModuleType("few_arguments")

    @hookimpl
    def argoplug_dockerfile_lines() -> list[str]:
        return ["RUN true"]

    module.argoplug_dockerfile_lines = argoplug_dockerfile_lines  # type: ignore[attr-defined]
    manager = plugin_manager([("few", module)])
    assert contributions(manager, "argoplug_dockerfile_lines", context=CONTEXT) == [("few", "RUN true")]
    assert "few_arguments" not in sys.modules
