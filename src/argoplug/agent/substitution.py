"""The variables a template sees and their `{{tag}}` substitution, as Argo's controller computes them.

The workflow's globals, a call's arguments bound to the template's inputs (`process_args`), a finished
node's results in its caller's scope, a steps/DAG template's outputs from it, and the tags left
unresolved. The engine and `checks` call these.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from argoplug.agent.nodes import Node
from argoplug.agent.workflow import Workflow
from argoplug.protocol import Outputs, Parameter

__all__ = [
    "SetupError",
    "global_values",
    "node_values",
    "process_args",
    "substitute",
    "tags",
    "template_outputs",
    "unresolved",
    "unresolved_problem",
]

# Only tags with these prefixes are checked and must resolve (workflow/common/common.go); others stay.
_CHECKED_PREFIXES = ("item.", "steps.", "inputs.", "outputs.", "pod.", "workflow.", "tasks.")
_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


def substitute(value: Any, values: Mapping[str, str]) -> Any:
    """Return `value` with every `{{tag}}` found in `values` replaced, in strings and mapping keys.

    Spaces inside the braces are ignored (`util/template/simple_template.go`); unknown tags are left as
    written, as Argo does with `allowUnresolved`.
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


def global_values(workflow: Workflow) -> dict[str, str]:
    """The workflow-wide variables (`workflow.name`, `.namespace`, `.uid`, `.parameters.<p>`, ...).

    As the controller sets them (`workflow/controller/operator.go`, `setGlobalParameters`); the creation
    timestamp is now, in RFC 3339.
    """
    values = {
        "workflow.name": workflow.name,
        "workflow.namespace": workflow.namespace,
        "workflow.uid": workflow.uid,
        "workflow.serviceAccountName": str(workflow.spec.get("serviceAccountName") or ""),
        "workflow.creationTimestamp": _rfc3339(time.time()),
    }
    values.update({f"workflow.parameters.{k}": v for k, v in workflow.parameters.items()})
    values.update({f"workflow.labels.{k}": str(v) for k, v in workflow.labels.items()})
    values.update({f"workflow.annotations.{k}": str(v) for k, v in workflow.annotations.items()})
    return values


def node_values(prefix: str, node: Node) -> dict[str, str]:
    """What a finished node puts in its caller's scope (`buildLocalScope`, `addOutputsToLocalScope`)."""
    values = {f"{prefix}.id": node.id, f"{prefix}.status": str(node.phase)}
    if node.started_at is not None:
        values[f"{prefix}.startedAt"] = _rfc3339(node.started_at)
    if node.finished_at is not None:
        values[f"{prefix}.finishedAt"] = _rfc3339(node.finished_at)
    if node.outputs is not None:
        if node.outputs.result is not None:
            values[f"{prefix}.outputs.result"] = node.outputs.result
        if node.outputs.exitCode is not None:
            values[f"{prefix}.outputs.exitCode"] = node.outputs.exitCode
        for param in node.outputs.parameters:
            if param.value is not None:
                values[f"{prefix}.outputs.parameters.{param.name}"] = param.value
    return values


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SetupError(Exception):
    """A node cannot start or complete (an input not supplied, a reference not resolved): it ends as Error."""


def process_args(
    template: Mapping[str, Any],
    arguments: Sequence[Mapping[str, Any]],
    workflow_values: Mapping[str, str],
    node: Node,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Set `node`'s inputs from `arguments` and substitute `template` (`workflow/common`, `ProcessArgs`).

    Returns the substituted template (with `inputs`, `outputs`, `metadata` present) and its scope:
    `workflow_values`, the inputs and `node.name`. `retries` is not in it: Argo sets it only for a template
    with a retryStrategy (not supported yet), and otherwise leaves `{{retries}}` as written, as here.
    Raises SetupError for an input without value.
    """
    processed = copy.deepcopy(dict(template))
    supplied = {a.get("name"): a for a in arguments}
    values = dict(workflow_values)
    for param in (processed.get("inputs") or {}).get("parameters") or []:
        name = param.get("name")
        value = param.get("value") if param.get("value") is not None else param.get("default")
        argument = supplied.get(name)
        if argument is not None and argument.get("value") is not None:
            value = argument["value"]
        if value is None:
            raise SetupError(f"inputs.parameters.{name} was not supplied")
        param["value"] = node.inputs[name] = values[f"inputs.parameters.{name}"] = str(value)
    values["node.name"] = node.name
    processed = substitute(processed, values)
    for key in ("inputs", "outputs", "metadata"):
        processed.setdefault(key, {})
    return processed, values


def template_outputs(template: Mapping[str, Any], scope: Mapping[str, str]) -> Outputs | None:
    """The outputs a steps/DAG template takes from `scope` (`valueFrom.parameter`), None if it takes none.

    As `getTemplateOutputsFromScope`. Raises SetupError (`Unable to resolve: <reference>`) for a reference
    not in `scope` and without `default`.
    """
    parameters = []
    for param in (template.get("outputs") or {}).get("parameters") or []:
        value_from = param.get("valueFrom") or {}
        if value_from.get("parameter") is None:
            continue
        reference = str(value_from["parameter"])
        value = scope.get(reference.strip().removeprefix("{{").removesuffix("}}").strip())
        if value is None:
            value = value_from.get("default")
        if value is None:
            raise SetupError(f"Unable to resolve: {reference}")
        parameters.append(Parameter(name=param["name"], value=str(value)))
    return Outputs(parameters=parameters) if parameters else None
