"""Argo's JSON schema of workflows, and what a document's violations of it say (for `workflow`).

Go's leniencies are kept: `AnyString` parameter values take numbers and booleans (`go_scalar_string` renders
them; `client` too, for reply outputs), `IntOrString` takes both, and unknown fields are errors as with
`argo submit --strict`, the default.
"""

from __future__ import annotations

import decimal
import functools
import importlib.resources
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

__all__ = ["ARGO_SCHEMA", "describe_value", "go_scalar_string", "schema_findings", "schema_problems"]

# Where the bundled schema (argoplug/data/workflow-jsonschema.json) comes from: equal to this file of Argo.
ARGO_SCHEMA = (
    "Argo Workflows v4.1.0-rc2+80 (argoproj/argo-workflows api/jsonschema/schema.json at commit f016ad89, "
    "2026-08-21)"
)

_SCHEMA_PREFIX = "io.argoproj.workflow.v1alpha1."


def schema_problems(kind: str, body: dict[str, Any]) -> list[str]:
    """Validate `body`, a document of `kind` (`Workflow`, ...), against Argo's schema; return its problems.

    Numbers and booleans in a parameter's `value` or `default` are first turned, in place, into the strings
    Go makes of them (`AnyString`). Each problem names its JSON path (and template) and what was expected;
    the list is sorted, without duplicates, and empty when the document is valid. Unknown fields are
    problems here too; `schema_findings` tells them apart.
    """
    problems, unknown = schema_findings(kind, body)
    return sorted({*problems, *unknown})


def schema_findings(kind: str, body: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Validate `body` as `schema_problems` does; return (problems, unknown fields), each sorted.

    A field whose value is null is removed first, in place: Go's JSON decoding leaves such a field at its
    zero value, as if absent, and the API server stores it so (a workflow that KFP's compiler writes carries
    `creationTimestamp: null` and `status: {startedAt: null}`). An unknown field is what `argo lint` and
    `argo submit` refuse (`UnmarshalStrict`: `json: unknown field
    "x"`) but a cluster runs: the CRD keeps it and the controller, decoding leniently, ignores it. Its
    message says both.
    """
    _drop_nulls(body)
    validator = _validator(kind)
    errors = list(validator.iter_errors(body))
    if _coerce_any_strings(body, errors):
        errors = list(validator.iter_errors(body))
    problems = {_problem(body, error) for error in errors if error.validator != "additionalProperties"}
    unknown = {_problem(body, error) for error in errors if error.validator == "additionalProperties"}
    return sorted(problems), sorted(unknown)


def _drop_nulls(value: Any) -> None:
    if isinstance(value, dict):
        for key in [key for key, item in value.items() if item is None]:
            del value[key]
        for item in value.values():
            _drop_nulls(item)
    elif isinstance(value, list):
        for item in value:
            _drop_nulls(item)


@functools.cache
def _schema() -> dict[str, Any]:
    """Argo's JSON schema (600 KB), loaded once, on first use, with Go's leniency for IntOrString."""
    text = importlib.resources.files("argoplug").joinpath("data/workflow-jsonschema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    definitions = schema["definitions"]
    # The published schema types IntOrString as a string; Go's intstr.IntOrString takes both (`limit: 3`).
    definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {"type": ["integer", "string"]}
    # `argo submit --strict` (the default) decodes strictly: a misspelt field is an error, not ignored.
    for definition in definitions.values():
        if "properties" in definition and "additionalProperties" not in definition:
            definition["additionalProperties"] = False
        # Go decodes `parameters:` left empty (null) into an empty list: no error (encoding/json).
        for prop in (definition.get("properties") or {}).values():
            if prop.get("type") == "array":
                prop["type"] = ["array", "null"]
    # The schema requires what Go does not: a script's `source` (validate.go checks only its image).
    script = definitions["io.argoproj.workflow.v1alpha1.ScriptTemplate"]
    script["required"] = [field for field in script.get("required", []) if field != "source"]
    return schema


@functools.cache
def _validator(kind: str) -> Validator:
    import jsonschema

    schema = _schema()
    root = {
        "$schema": schema["$schema"],
        "$ref": f"#/definitions/{_SCHEMA_PREFIX}{kind}",
        "definitions": schema["definitions"],
    }
    return jsonschema.Draft202012Validator(root)


def _coerce_any_strings(body: dict[str, Any], errors: Sequence[Any]) -> bool:
    """Turn the numbers and booleans the schema refused in parameter `value`/`default` into strings.

    Argo's schema says string, but its Go type (`AnyString`) takes JSON numbers and booleans. Only those
    positions change: a plugin block keeps its numbers (its schema is a free object and never refuses).
    """
    changed = False
    for error in errors:
        path = list(error.absolute_path)
        instance = error.instance
        if (
            error.validator == "type"
            and len(path) >= 3
            and path[-1] in ("value", "default")
            and path[-3] == "parameters"
            and isinstance(instance, (bool, int, float))
        ):
            parent: Any = body
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = go_scalar_string(instance)
            changed = True
    return changed


def go_scalar_string(value: bool | int | float) -> str:
    """Render a JSON scalar as Argo's `AnyString` does: booleans as `true`/`false`, numbers via float64.

    Go decodes the number into a float64 and prints it with `strconv.FormatFloat(v, 'f', -1, 64)`:
    `100000000002` → "100000000002", `1.5` → "1.5", `1e20` → "100000000000000000000".
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        return str(number)
    return format(decimal.Decimal(repr(number)).normalize(), "f")


# Fields Argo v4.0 removed, and what replaced them (docs/deprecations.md, "Removed features"; `argo convert`
# rewrites the first three).
_REMOVED = {
    "schedule": "`schedules` (a list) since Argo v4.0: `argo convert` rewrites it",
    "mutex": "`mutexes` (a list) since Argo v4.0: `argo convert` rewrites it",
    "semaphore": "`semaphores` (a list) since Argo v4.0: `argo convert` rewrites it",
    "podPriority": "`podPriorityClassName` (a PriorityClass) since Argo v4.0",
}


def _did_you_mean(extra: Sequence[str], known: set[str]) -> str:
    """The replacements of removed fields, and the nearest known name of the others (difflib)."""
    import difflib

    hints = []
    for name in extra:
        if name in _REMOVED:
            hints.append(f"`{name}` was replaced by {_REMOVED[name]}")
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        if close:
            hints.append(f"did you mean `{close[0]}` for `{name}`?")
    return "; ".join(hints) + "; " if hints else ""


def _problem(body: dict[str, Any], error: Any) -> str:
    path = error.json_path
    where = path + _template_hint(body, list(error.absolute_path))
    if error.validator == "additionalProperties":
        known = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in known)
        fields = ", ".join(f"`{k}`" for k in extra)
        lint = ", ".join(f'json: unknown field "{k}"' for k in extra)
        return (
            f"{where}: unknown field {fields} ({_did_you_mean(extra, known)}expected one of: "
            f"{', '.join(sorted(known))}); a cluster's controller ignores it, `argo lint` and `argo submit` "
            f"refuse it ({lint})"
        )
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        renamed = [
            f"`{old}` was replaced by {new}"
            for old, new in _REMOVED.items()
            if old in error.instance and any(new.startswith(f"`{k}`") for k in missing)
        ]
        hint = f" ({'; '.join(renamed)})" if renamed else ""
        return f"{where}: missing required field " + ", ".join(f"`{k}`" for k in missing) + hint
    if error.validator == "type":
        return f"{where}: expected {_type_name(error.validator_value)}, got {describe_value(error.instance)}"
    if error.validator == "const":
        return f"{where}: expected {error.validator_value!r}, got {describe_value(error.instance)}"
    if error.validator == "enum":
        choices = ", ".join(repr(c) for c in error.validator_value)
        return f"{where}: expected one of {choices}, got {describe_value(error.instance)}"
    return f"{where}: {error.message}"


def _template_hint(body: dict[str, Any], path: list[Any]) -> str:
    if len(path) >= 3 and path[0] == "spec" and path[1] == "templates" and isinstance(path[2], int):
        templates = body.get("spec", {}).get("templates")
        if isinstance(templates, list) and path[2] < len(templates) and isinstance(templates[path[2]], dict):
            name = templates[path[2]].get("name")
            if name:
                return f" (template `{name}`)"
    return ""


_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "an object (a mapping)",
    "array": "a list",
    "null": "null",
}


def _type_name(expected: Any) -> str:
    if isinstance(expected, list):
        return " or ".join(_TYPE_NAMES.get(str(t), str(t)) for t in expected)
    return _TYPE_NAMES.get(expected, str(expected))


def describe_value(value: Any, limit: int = 60) -> str:
    """A value as a message shows it: `an object`, `a list`, JSON for scalars, repr for strings, shortened."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value) if isinstance(value, (bool, int, float, type(None))) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
