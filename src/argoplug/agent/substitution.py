"""The variables a template sees and their `{{tag}}` substitution, as Argo's controller computes them.

The workflow's globals, a call's arguments bound to the template's inputs (`process_args`), a finished
node's results in its caller's scope, a steps/DAG template's outputs from it, the `{{=expression}}` tags
(`expand`) and the tags left unresolved. The engine and `checks` call these (`workflow/common/util.go`,
`util/template/`).
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from argoplug.agent.configmaps import ConfigMapMissing, ConfigMaps
from argoplug.agent.nodes import Node, NodeType
from argoplug.agent.workflow import Workflow
from argoplug.protocol import Outputs, Parameter

__all__ = [
    "RETRY_VARIABLES",
    "SetupError",
    "expand",
    "global_values",
    "node_values",
    "process_args",
    "rfc3339",
    "substitute",
    "tags",
    "template_outputs",
    "unresolved",
    "unresolved_problem",
]

# Only tags with these prefixes are checked and must resolve (workflow/common/common.go); others stay.
_CHECKED_PREFIXES = ("item.", "steps.", "inputs.", "outputs.", "pod.", "workflow.", "tasks.")
_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
# The local variables of an attempt of a template with a retryStrategy (`common.LocalVarRetries...`).
RETRY_VARIABLES = (
    "retries",
    "lastRetry.exitCode",
    "lastRetry.status",
    "lastRetry.duration",
    "lastRetry.message",
)


def substitute(value: Any, values: Mapping[str, str]) -> Any:
    """Return `value` with every `{{tag}}` found in `values` replaced, in strings and mapping keys.

    Spaces inside the braces are ignored (`util/template/simple_template.go`); unknown tags are left as
    written, as Argo does with `allowUnresolved`. Expression tags (`{{=...}}`) are `expand`'s.
    """
    if isinstance(value, str):
        if "{{" not in value:
            return value
        return _TAG.sub(lambda m: values.get(m.group(1).strip(), m.group(0)), value)
    if isinstance(value, dict):
        return {substitute(k, values): substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(item, values) for item in value]
    return value


def expand(value: Any, scope: Mapping[str, str], *, strict: bool) -> Any:
    """Return `value` with its `{{=expression}}` tags evaluated against `scope` (`expressionReplace`).

    With `strict` False an expression that cannot be evaluated yet (a variable not in `scope`) is left as
    written, as Argo does while it substitutes a template's arguments; with `strict` True it raises
    SetupError naming the expression and why it failed.
    """
    if isinstance(value, str):
        if "{{=" not in value:
            return value
        return _TAG.sub(lambda m: _expand_tag(m.group(0), m.group(1), scope, strict), value)
    if isinstance(value, dict):
        return {expand(k, scope, strict=strict): expand(v, scope, strict=strict) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(item, scope, strict=strict) for item in value]
    return value


def _expand_tag(text: str, inner: str, scope: Mapping[str, str], strict: bool) -> str:
    if not inner.startswith("="):
        return text
    from argoplug.agent import expressions

    try:
        return str(expressions.expand(text, scope))
    except expressions.ExpressionError as exc:
        if not strict:
            return text
        raise SetupError(f"failed to evaluate expression {text}: {exc}") from None


def tags(value: Any) -> Iterator[str]:
    """Every tag (trimmed) in the strings and keys of `value`."""
    if isinstance(value, str):
        if "{{" in value:
            yield from (m.group(1).strip() for m in _TAG.finditer(value))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from tags(key)
            yield from tags(item)
    elif isinstance(value, list):
        for item in value:
            yield from tags(item)


def unresolved(value: Any, scope: Mapping[str, Any] | set[str]) -> list[str]:
    """The checked tags of `value` not in `scope` (`resolveAllVariables`); `outputs.*` may self-refer."""
    return [
        tag
        for tag in tags(value)
        if tag.startswith(_CHECKED_PREFIXES) and tag not in scope and not tag.startswith("outputs.")
    ]


def unresolved_problem(value: Any) -> str | None:
    """`failed to resolve {{tag}}` for the first checked tag left in `value` after substitution, if any."""
    left = unresolved(value, {})
    return f"failed to resolve {{{{{left[0]}}}}}" if left else None


def global_values(workflow: Workflow, *, now: float | None = None) -> dict[str, str]:
    """The workflow-wide variables (`workflow.name`, `.namespace`, `.uid`, `.parameters.<p>`, ...).

    As the controller sets them (`workflow/controller/operator.go`, `setGlobalParameters`); the creation
    timestamp is `now` (default: now), in RFC 3339, also as `workflow.creationTimestamp.<c>` for each
    strftime character Argo has (`STRFTIME_CHARS`); `workflow.status` is Running until the exit
    handler runs, and `workflow.duration` (seconds, `%f`) is the engine's to update as the workflow runs
    (`setGlobalRuntimeParameters`).
    """
    created = time.time() if now is None else now
    arguments = [{"name": k, "value": v} for k, v in workflow.parameters.items()]
    values = {
        "workflow.name": workflow.name,
        "workflow.namespace": workflow.namespace,
        "workflow.uid": workflow.uid,
        "workflow.mainEntrypoint": workflow.entrypoint,
        "workflow.serviceAccountName": str(workflow.spec.get("serviceAccountName") or ""),
        "workflow.creationTimestamp": rfc3339(created),
        "workflow.creationTimestamp.RFC3339": rfc3339(created),
        "workflow.creationTimestamp.s": str(int(created)),
        "workflow.parameters": _go_json(arguments),
        "workflow.parameters.json": _go_json(arguments),
        "workflow.labels": _go_json(dict(workflow.labels)),
        "workflow.labels.json": _go_json(dict(workflow.labels)),
        "workflow.annotations": _go_json(dict(workflow.annotations)),
        "workflow.annotations.json": _go_json(dict(workflow.annotations)),
        "workflow.status": "Running",
    }
    stamp = datetime.fromtimestamp(created, tz=UTC)
    for char, layout in STRFTIME_CHARS.items():
        values[f"workflow.creationTimestamp.{char}"] = stamp.strftime(layout)
    values["workflow.creationTimestamp.L"] = f".{stamp.microsecond // 1000:03d}"
    values["workflow.creationTimestamp.s"] = str(int(created))
    values["workflow.duration"] = "0.000000"
    if workflow.spec.get("priority") is not None:
        values["workflow.priority"] = str(workflow.spec["priority"])
    values.update({f"workflow.parameters.{k}": v for k, v in workflow.parameters.items()})
    values.update({f"workflow.labels.{k}": str(v) for k, v in workflow.labels.items()})
    values.update({f"workflow.annotations.{k}": str(v) for k, v in workflow.annotations.items()})
    scheduled = workflow.annotations.get("workflows.argoproj.io/scheduled-time")
    if scheduled is not None:  # a CronWorkflow's run (setGlobalParameters)
        values["workflow.scheduledTime"] = str(scheduled)
    return values


# `workflow.creationTimestamp.<char>`: the strftime characters Argo supports (util/strftime, FormatChars), as
# Python's strftime writes the same layouts for a UTC time (Go's zone name of UTC is "UTC"); `L`, Go's
# ".000" (milliseconds), is set apart.
STRFTIME_CHARS = {
    "B": "%B",
    "b": "%b",
    "m": "%m",
    "A": "%A",
    "a": "%a",
    "d": "%d",
    "H": "%H",
    "I": "%I",
    "M": "%M",
    "S": "%S",
    "Y": "%Y",
    "y": "%y",
    "p": "%p",
    "Z": "UTC",
    "z": "+0000",
}


def _configmap_value(
    name: str,
    reference: Mapping[str, Any],
    value_from: Mapping[str, Any],
    values: Mapping[str, str],
    configmaps: ConfigMaps | None,
    namespace: str,
) -> Any:
    """An input's value from its ConfigMap key (the name and key may hold globals), else its default."""
    cm_name = str(substitute(str(reference.get("name") or ""), values))
    cm_key = str(substitute(str(reference.get("key") or ""), values))
    try:
        return (configmaps or ConfigMaps()).value(namespace, cm_name, cm_key)
    except ConfigMapMissing as exc:
        if value_from.get("default") is not None:
            return value_from["default"]
        problem = str(exc)
    except ValueError as exc:
        problem = str(exc)
    raise SetupError(f"unable to retrieve inputs.parameters.{name} from ConfigMap: {problem}")


def _expression_output(expression: str, default: Any, scope: Mapping[str, str]) -> Any:
    from argoplug.agent import expressions
    from argoplug.agent.expressions.values import go_format

    try:
        result = expressions.evaluate(expression, expressions.env_from_scope(scope))
    except expressions.ExpressionError as exc:
        problem = str(exc)
    else:
        if result is not None:
            return go_format(result)
        problem = f'failed to evaluate expression "{expression}"'  # a nil result (resolveParameter)
    if default is None:
        raise SetupError(problem)
    return default


def _go_json(value: Any) -> str:
    """JSON as Go's `json.Marshal` writes it: compact, map keys sorted."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def node_values(prefix: str, node: Node, nodes: Mapping[str, Node] | None = None) -> dict[str, str]:
    """What a finished node puts in its caller's scope (`buildLocalScope`, `addOutputsToLocalScope`).

    For a Retry node, the values are its last attempt's (`possiblyGetRetryChildNode`), which `nodes` (the
    status's nodes by id) must hold.
    """
    if node.type == NodeType.RETRY and nodes is not None:
        attempts = [nodes[i] for i in node.children if i in nodes and not nodes[i].hooked]
        if attempts:
            node = attempts[-1]
    values = {f"{prefix}.id": node.id, f"{prefix}.status": str(node.phase)}
    if node.started_at is not None:
        values[f"{prefix}.startedAt"] = rfc3339(node.started_at)
    if node.finished_at is not None:
        values[f"{prefix}.finishedAt"] = rfc3339(node.finished_at)
    if node.outputs is not None:
        if node.outputs.result is not None:
            values[f"{prefix}.outputs.result"] = node.outputs.result
        if node.outputs.exitCode is not None:
            values[f"{prefix}.exitCode"] = node.outputs.exitCode
        for param in node.outputs.parameters:
            if param.value is not None:
                values[f"{prefix}.outputs.parameters.{param.name}"] = param.value
    return values


def rfc3339(seconds: float) -> str:
    """`seconds` since the epoch as Go's `time.RFC3339` in UTC: `2024-01-02T03:04:05Z`."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SetupError(Exception):
    """A node cannot start or complete (an input not supplied, a reference not resolved): it ends as Error."""


def process_args(
    template: Mapping[str, Any],
    arguments: Sequence[Mapping[str, Any]],
    workflow_values: Mapping[str, str],
    node_name: str,
    local: Mapping[str, str] | None = None,
    *,
    configmaps: ConfigMaps | None = None,
    namespace: str = "argo",
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """Bind `arguments` to the template's inputs and substitute the template (`common.ProcessArgs`).

    Returns the substituted template (with `inputs`, `outputs`, `metadata` present), its scope
    (`workflow_values`, `local` such as `steps.name`, `node.name` and the inputs) and the inputs by name.
    Each input's value has the globals and locals substituted first, as Argo does. An input (or its
    argument) with `valueFrom.configMapKeyRef` takes the value from `configmaps` in `namespace`, else its
    `valueFrom.default` when the ConfigMap or key is missing (`substituteAndGetConfigMapValue`).
    Expressions are evaluated where they can be; `retries` is not in the scope: Argo sets it only in a
    template with a retryStrategy, for each attempt, and otherwise leaves `{{retries}}` as written.
    Raises SetupError for an input without value.
    """
    processed = copy.deepcopy(dict(template))
    supplied = {a.get("name"): a for a in arguments}
    values = dict(workflow_values)
    values.update(local or {})
    values["node.name"] = node_name
    # Globals and locals first: an input's value or default may hold them (`common.SubstituteParams`).
    base = dict(values)
    inputs: dict[str, str] = {}
    for param in (processed.get("inputs") or {}).get("parameters") or []:
        name = param.get("name")
        value = param.get("value") if param.get("value") is not None else param.get("default")
        value_from = param.get("valueFrom")
        argument = supplied.get(name)
        if argument is not None and argument.get("value") is not None:
            value, value_from = argument["value"], None
        elif argument is not None:
            value, value_from = None, argument.get("valueFrom")
        reference = (value_from or {}).get("configMapKeyRef")
        if reference:
            value = _configmap_value(name, reference, value_from or {}, base, configmaps, namespace)
        if value is None:
            raise SetupError(f"inputs.parameters.{name} was not supplied")
        text = str(value)
        if "{{" in text:
            text = str(expand(substitute(text, base), base, strict=False))
        if "{{=" in text and "retries" not in text:
            # An expression of an argument that still fails here fails the node, never passes on as text;
            # `retries` is set later, per attempt (Argo leaves `{{=...retries...}}` alone until then).
            text = str(expand(text, base, strict=True))
        param["value"] = inputs[name] = values[f"inputs.parameters.{name}"] = text
    processed = expand(substitute(processed, values), values, strict=False)
    for key in ("inputs", "outputs", "metadata"):
        processed.setdefault(key, {})
    return processed, values, inputs


def template_outputs(template: Mapping[str, Any], scope: Mapping[str, str]) -> Outputs | None:
    """The outputs a steps/DAG template takes from `scope` (`valueFrom.parameter` or `.expression`), None
    if it takes none.

    As `getTemplateOutputsFromScope` (`workflow/controller/operator.go`) and `wfScope.resolveParameter`
    (`scope.go`): an expression is evaluated with the children's outputs in scope, and its result written
    as Go's `%v` writes it (`AnyStringPtr`: `3`, `2.5`, `true`, `[a b]`, `map[k:v]`). A parameter keeps its
    `globalName`. Raises SetupError (`Unable to resolve: <reference>`, or the expression's error, `failed
    to evaluate expression "..."` for a nil result) when there is no `default`.
    """
    parameters = []
    for param in (template.get("outputs") or {}).get("parameters") or []:
        value_from = param.get("valueFrom") or {}
        if value_from.get("expression"):
            value = _expression_output(str(value_from["expression"]), value_from.get("default"), scope)
        elif value_from.get("parameter") is not None:
            reference = str(value_from["parameter"])
            value = scope.get(reference.strip().removeprefix("{{").removesuffix("}}").strip())
            if value is None:
                value = value_from.get("default")
            if value is None:
                raise SetupError(f"Unable to resolve: {reference}")
        else:
            continue
        parameters.append(
            Parameter(name=param["name"], value=str(value), globalName=param.get("globalName") or None)
        )
    return Outputs(parameters=parameters) if parameters else None
