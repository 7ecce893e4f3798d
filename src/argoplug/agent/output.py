"""The run's final status as a document, as Argo holds it in the Workflow (`argoplug run -o json|yaml`).

`status_document` shapes a `WorkflowStatus` as the Workflow's `metadata` and `status`
(`pkg/apis/workflow/v1alpha1/workflow_types.go`: `WorkflowStatus`, `NodeStatus`); `render` prints it as
`argo get -o json` (fields in Go's order) or `-o yaml` (keys sorted, as `sigs.k8s.io/yaml` writes them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Literal

import msgspec
import yaml

from argoplug.agent.nodes import Node, NodePhase, WorkflowStatus

__all__ = ["FORMATS", "render", "rfc3339", "status_document"]

FORMATS = ("json", "yaml")
# `progress.executable`: the nodes whose own progress is 0/1 or 1/1; the others sum what they hold.
_EXECUTABLE = frozenset({"Pod", "HTTP", "Plugin", "Container", "Suspend"})
_DONE = (NodePhase.SUCCEEDED, NodePhase.SKIPPED, NodePhase.OMITTED)


def status_document(status: WorkflowStatus) -> dict[str, Any]:
    """The Workflow's `metadata` and `status` as Argo stores them once the run is over (or as it stands).

    - `metadata`: `name`, `namespace`, `uid`, and the labels the controller sets
      (`workflows.argoproj.io/phase`, `workflows.argoproj.io/completed`).
    - `status`: `phase`, `startedAt`, `finishedAt` (RFC 3339 UTC, whole seconds; `null` while unset, as Go's
      zero `metav1.Time` is written), `progress` (`done/total`), `message`, `nodes` keyed by node ID,
      `outputs` (the global outputs, when the status holds some) and the `Completed` condition once done.
    - each node: `id`, `name`, `displayName`, `type`, `templateName`, `templateRef` (when run from one),
      `templateScope`, `phase`, `boundaryID`, `message`, `startedAt`, `finishedAt`, `progress`,
      `nodeFlag` (`hooked`, `retried`), `inputs` (`parameters`), `outputs` (`parameters`, `artifacts`,
      `result`, `exitCode`), `children` and `outboundNodes`, empty ones left out as Go's `omitempty` does.

    What the local agent adds to a node (`hangs`, the plugin `warning`) is not Argo's and not included.
    """
    done = status.phase.fulfilled and status.finished_at is not None
    metadata = {
        "name": status.name,
        "namespace": status.namespace,
        "uid": status.uid,
        "labels": {
            "workflows.argoproj.io/completed": "true" if done else "false",
            "workflows.argoproj.io/phase": str(status.phase),
        },
    }
    body: dict[str, Any] = {
        "phase": str(status.phase),
        "startedAt": rfc3339(status.started_at),
        "finishedAt": rfc3339(status.finished_at),
        "progress": _workflow_progress(status),
    }
    if status.message:
        body["message"] = status.message
    inside: dict[str, list[str]] = {}  # boundary ID → the IDs of the nodes run in it
    for node in status.nodes.values():
        if node.boundary_id:
            inside.setdefault(node.boundary_id, []).append(node.id)
    body["nodes"] = {node.id: _node(status, node, inside) for node in status.nodes.values()}
    if status.outputs is not None:
        body["outputs"] = msgspec.to_builtins(status.outputs)
    if done:
        body["conditions"] = [{"type": "Completed", "status": "True"}]
    return {"metadata": metadata, "status": body}


def render(status: WorkflowStatus, fmt: Literal["json", "yaml"]) -> str:
    """`status_document(status)` as JSON (2-space indent, Go's field order) or YAML (keys sorted).

    The text ends with a newline. Raises `ValueError` for another `fmt`.
    """
    document = status_document(status)
    if fmt == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(
            document, sort_keys=True, allow_unicode=True, default_flow_style=False, width=1_000_000
        )
    raise ValueError(f"unknown output format {fmt!r}: expected one of {', '.join(FORMATS)}")


def rfc3339(when: float | None) -> str | None:
    """`time.time()` seconds as `metav1.Time` writes them: `2020-06-02T16:04:21Z` (truncated); None stays."""
    if when is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(when)))


def _node(status: WorkflowStatus, node: Node, inside: Mapping[str, list[str]]) -> dict[str, Any]:
    """One `NodeStatus`, its fields in Go's order."""
    document: dict[str, Any] = {
        "id": node.id,
        "name": node.name,
        "displayName": node.display_name,
        "type": str(node.type),
    }
    if node.template_name:
        document["templateName"] = node.template_name
    if node.template_ref:
        document["templateRef"] = dict(node.template_ref)
    # `Context.GetTemplateScope`: "<resource scope>/<resource name>", the workflow's own name for `local`.
    scope = node.template_scope
    document["templateScope"] = f"local/{status.name}" if scope in ("local", "local/") else scope
    document["phase"] = str(node.phase)
    if node.boundary_id:
        document["boundaryID"] = node.boundary_id
    if node.message:
        document["message"] = node.message
    document["startedAt"] = rfc3339(node.started_at)
    document["finishedAt"] = rfc3339(node.finished_at)
    progress = _node_progress(status, node, inside)
    if progress:
        document["progress"] = progress
    flags = {name: True for name, value in (("hooked", node.hooked), ("retried", node.retried)) if value}
    if flags:
        document["nodeFlag"] = flags
    if node.inputs:
        document["inputs"] = {"parameters": [{"name": k, "value": v} for k, v in node.inputs.items()]}
    if node.outputs is not None:
        document["outputs"] = msgspec.to_builtins(node.outputs)
    if node.children:
        document["children"] = list(node.children)
    if node.outbound_nodes:
        document["outboundNodes"] = list(node.outbound_nodes)
    return document


def _workflow_progress(status: WorkflowStatus) -> str:
    """`UpdateProgress`: done/total over every executable node (done: Succeeded, Skipped, Omitted)."""
    executable = [n for n in status.nodes.values() if n.type in _EXECUTABLE]
    return f"{sum(n.phase in _DONE for n in executable)}/{len(executable)}"


def _node_progress(status: WorkflowStatus, node: Node, inside: Mapping[str, list[str]]) -> str:
    """An executable node's `0/1` or `1/1`; for the others, the sum over the executable nodes they hold.

    Argo sums along `children`; this sums over the nodes reached through `children` and boundaries, the
    same set where the children are linked as Argo links them. "" when there is nothing to count (Argo
    leaves an invalid `0/0` unset).
    """
    if node.type in _EXECUTABLE:
        return f"{int(node.phase in _DONE)}/1"
    held = {node.id}
    queue = [node.id]
    while queue:
        current = status.nodes.get(queue.pop())
        if current is None:
            continue
        for next_id in [*current.children, *inside.get(current.id, ())]:
            if next_id not in held:
                held.add(next_id)
                queue.append(next_id)
    executable = [status.nodes[i] for i in held if i in status.nodes and status.nodes[i].type in _EXECUTABLE]
    if not executable:
        return ""
    return f"{sum(n.phase in _DONE for n in executable)}/{len(executable)}"
