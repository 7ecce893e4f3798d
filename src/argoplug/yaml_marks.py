"""YAML errors that name their file: PyYAML says `in "<unicode string>"` for text it was given as a string."""

from __future__ import annotations

__all__ = ["yaml_problem"]


def yaml_problem(exc: Exception, origin: object) -> str:
    """The text of a PyYAML error `exc`, its marks naming `origin` (a path) instead of `<unicode string>`,
    with the line, column and the snippet PyYAML shows."""
    for attribute in ("context_mark", "problem_mark"):
        mark = getattr(exc, attribute, None)
        if mark is not None and hasattr(mark, "name"):
            mark.name = str(origin)
    return str(exc)
