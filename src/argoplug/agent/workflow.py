"""Loading Workflow YAML: parse, validate against Argo's JSON schema, resolve `workflowTemplateRef`.

`argoplug run` calls `load_documents` then `resolve_workflow`; the result, a `Workflow`, is what the engine
runs. What `argo submit` checks of the documents themselves is here too: the schema (`schema`), and the
workflow's arguments (`workflow/validate/validate.go`). The templates are checked by `checks.check`.
"""

from __future__ import annotations

import copy
import dataclasses
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from argoplug.agent.schema import describe_value, schema_problems

__all__ = [
    "KINDS",
    "Document",
    "Workflow",
    "WorkflowError",
    "generate_name",
    "load_documents",
    "parse_parameters",
    "resolve_workflow",
]

KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate")
DEFAULT_NAMESPACE = "argo"
_MAX_PROBLEMS = 12
# Kubernetes' `utilrand.String` alphabet (k8s.io/apimachinery/pkg/util/rand): no vowels, no 0/1/3.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


class WorkflowError(Exception):
    """The input cannot be run: unreadable or invalid YAML, a schema violation, an unresolvable reference.

    The message names the file and document (or template) and says what was expected. `argoplug run`
    prints it and exits with code 2, as `argo submit` refuses such a workflow before it exists.
    """


@dataclasses.dataclass(frozen=True)
class Document:
    """One YAML document of a loaded file: its origin (`path`, 1-based `index`), `kind`, `name` and body."""

    path: str
    index: int
    kind: str
    name: str
    body: dict[str, Any]

    @property
    def origin(self) -> str:
        """Where the document comes from, for messages: `file.yaml, document 2 (WorkflowTemplate foo)`."""
        return f"{self.path}, document {self.index} ({self.kind} {self.name or '(unnamed)'})"


@dataclasses.dataclass(frozen=True)
class Workflow:
    """A workflow ready to run: metadata, the merged spec, its templates and its resolved parameters.

    `spec` is the Workflow's spec merged over its WorkflowTemplate's (`workflow/util/merge.go`,
    `JoinWorkflowSpec`); `parameters` maps each workflow argument to its value, `-p` overrides applied.
    `active_deadline_seconds` is the workflow's deadline in seconds, or None.
    """

    name: str
    namespace: str
    uid: str
    entrypoint: str
    spec: dict[str, Any]
    templates: Mapping[str, dict[str, Any]]
    parameters: Mapping[str, str]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    origin: str
    workflow_template: str | None = None

    @property
    def active_deadline_seconds(self) -> int | None:
        """The workflow's `activeDeadlineSeconds`, in seconds, or None when unset."""
        value = self.spec.get("activeDeadlineSeconds")
        return int(value) if value is not None else None


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader without timestamps: Go's YAML-to-JSON keeps `2024-01-01` a string."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_documents(paths: Iterable[str | Path]) -> list[Document]:
    """Read every YAML document of `paths` and validate each against Argo's JSON schema.

    Empty documents are skipped. Scalar numbers and booleans in a parameter's `value` or `default` become
    the strings Go would make of them (Argo's `AnyString`: `100000000002` → "100000000002", `true` →
    "true"). Raises WorkflowError naming the file, the document, the JSON path and what was expected.
    """
    documents: list[Document] = []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise WorkflowError(f"cannot read {path}: {exc}") from None
        try:
            bodies = list(yaml.load_all(text, Loader=_Loader))
        except yaml.YAMLError as exc:
            raise WorkflowError(f"{path} is not valid YAML: {exc}") from None
        for index, body in enumerate(bodies, start=1):
            if body is None:
                continue
            documents.append(_document(str(path), index, body))
    return documents


def _document(path: str, index: int, body: Any) -> Document:
    where = f"{path}, document {index}"
    if not isinstance(body, dict):
        raise WorkflowError(
            f"{where}: expected a Workflow or WorkflowTemplate object, got {describe_value(body)}"
        )
    kind = body.get("kind")
    if kind not in KINDS:
        raise WorkflowError(
            f"{where}: kind {kind!r} cannot be run: expected one of {', '.join(KINDS)} "
            "(with apiVersion: argoproj.io/v1alpha1)"
        )
    metadata = body["metadata"] if isinstance(body.get("metadata"), dict) else {}
    name = str(metadata.get("name") or metadata.get("generateName") or "")
    document = Document(path, index, str(kind), name, body)
    _validate(document)
    return document


def _validate(document: Document) -> None:
    problems = schema_problems(document.kind, document.body)
    if not problems:
        return
    shown = problems[:_MAX_PROBLEMS]
    if len(problems) > len(shown):
        shown.append(f"... and {len(problems) - len(shown)} more")
    raise WorkflowError(
        f"{document.origin} does not match Argo's schema for {document.kind}:\n  " + "\n  ".join(shown)
    )


def parse_parameters(pairs: Iterable[str]) -> dict[str, str]:
    """Parse `-p name=value` options into a mapping (a later one wins), as `argo submit -p` does.

    Raises WorkflowError for an option without `=` or with an empty name.
    """
    parameters: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise WorkflowError(f"invalid parameter {pair!r}: expected name=value, e.g. -p message=hello")
        parameters[name.strip()] = value
    return parameters


def generate_name(prefix: str) -> str:
    """Complete a `generateName` as the API server does: the prefix and 5 random characters."""
    return prefix + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))


def resolve_workflow(
    documents: Sequence[Document], *, parameters: Mapping[str, str] | None = None
) -> Workflow:
    """Pick the Workflow to run, resolve its `workflowTemplateRef` and its arguments.

    The Workflow is the only one among `documents`; with none, a single (Cluster)WorkflowTemplate is run
    as `argo submit --from workflowtemplate/NAME` would. A referenced template is looked up by name among
    `documents`; its spec is the base the Workflow's spec is merged over, and workflow arguments override
    template arguments by name (`workflow/util/merge.go`). `parameters` (from `-p`) override or add
    arguments (`workflow/util/util.go`, `ApplySubmitOpts`). Name: `metadata.name`, else `generateName`
    plus 5 random characters; namespace: `metadata.namespace` or "argo"; uid: a fresh uuid4.
    Raises WorkflowError naming what is missing or wrong.
    """
    workflows = [d for d in documents if d.kind == "Workflow"]
    if len(workflows) > 1:
        names = ", ".join(d.origin for d in workflows)
        raise WorkflowError(f"found {len(workflows)} Workflows ({names}): argoplug run runs one at a time")
    if workflows:
        document = workflows[0]
        body = copy.deepcopy(document.body)
    else:
        candidates = [d for d in documents if d.kind != "Workflow"]
        if len(candidates) != 1:
            raise WorkflowError(
                "no Workflow to run: give a file with a Workflow (or exactly one WorkflowTemplate to run "
                f"as `argo submit --from` would); found {len(candidates)} templates"
            )
        document = candidates[0]
        body = _workflow_from(document)
    metadata: dict[str, Any] = body.get("metadata") or {}
    spec: dict[str, Any] = body.get("spec") or {}
    namespace = str(metadata.get("namespace") or DEFAULT_NAMESPACE)
    template_name: str | None = None
    ref = spec.get("workflowTemplateRef")
    if ref is not None:
        base = _referenced(documents, ref, namespace, document.origin)
        if spec.get("templates"):
            raise WorkflowError(
                f"{document.origin}: Templates is invalid field in spec if workflow referred WorkflowTemplate"
                " reference (with workflowTemplateRef, the templates come from the WorkflowTemplate)"
            )
        template_name = base.name
        spec = _join_specs(spec, copy.deepcopy(base.body.get("spec") or {}))
    name = metadata.get("name") or (
        generate_name(metadata["generateName"]) if metadata.get("generateName") else ""
    )
    if not name:
        raise WorkflowError(f"{document.origin}: metadata.name or metadata.generateName is required")
    arguments = _apply_parameters(spec, parameters or {}, document.origin)
    entrypoint = spec.get("entrypoint")
    if not entrypoint:
        raise WorkflowError(f"{document.origin}: spec.entrypoint is required")
    templates: dict[str, dict[str, Any]] = {}
    for template in spec.get("templates") or []:
        if template.get("name") in templates:
            raise WorkflowError(f"{document.origin}: template name {template['name']!r} is not unique")
        templates[template.get("name", "")] = template
    if entrypoint not in templates:
        known = ", ".join(sorted(templates)) or "none"
        raise WorkflowError(
            f"{document.origin}: spec.entrypoint: template name '{entrypoint}' undefined (templates: {known})"
        )
    return Workflow(
        name=str(name),
        namespace=namespace,
        uid=str(uuid.uuid4()),
        entrypoint=str(entrypoint),
        spec=spec,
        templates=templates,
        parameters=arguments,
        labels=dict(metadata.get("labels") or {}),
        annotations=dict(metadata.get("annotations") or {}),
        origin=document.origin,
        workflow_template=template_name,
    )


def _workflow_from(template: Document) -> dict[str, Any]:
    """The Workflow `argo submit --from workflowtemplate/NAME` creates (`workflow/common/convert.go`)."""
    metadata = template.body.get("metadata") or {}
    ref: dict[str, Any] = {"name": template.name}
    if template.kind == "ClusterWorkflowTemplate":
        ref["clusterScope"] = True
    body: dict[str, Any] = {
        "metadata": {"generateName": f"{template.name}-"},
        "spec": {"workflowTemplateRef": ref},
    }
    if metadata.get("namespace"):
        body["metadata"]["namespace"] = metadata["namespace"]
    return body


def _referenced(
    documents: Sequence[Document], ref: Mapping[str, Any], namespace: str, origin: str
) -> Document:
    kind = "ClusterWorkflowTemplate" if ref.get("clusterScope") else "WorkflowTemplate"
    name = ref.get("name")
    if not name:
        raise WorkflowError(f"{origin}: spec.workflowTemplateRef.name is required")
    candidates = [d for d in documents if d.kind == kind and d.name == name]
    if not candidates:
        loaded = ", ".join(f"{d.kind} {d.name}" for d in documents if d.kind != "Workflow") or "none"
        raise WorkflowError(
            f"{origin}: workflowTemplateRef: {kind} {name!r} not found in the files given "
            f"(loaded: {loaded}); pass its file too"
        )
    found = candidates[-1]
    found_namespace = (found.body.get("metadata") or {}).get("namespace")
    if kind == "WorkflowTemplate" and found_namespace and found_namespace != namespace:
        raise WorkflowError(
            f"{origin}: workflowTemplateRef: {found.origin} is in namespace {found_namespace!r}, the "
            f"Workflow in {namespace!r}; Argo looks WorkflowTemplates up in the Workflow's namespace"
        )
    return found


def _join_specs(workflow_spec: dict[str, Any], template_spec: dict[str, Any]) -> dict[str, Any]:
    """Merge the Workflow's spec over its WorkflowTemplate's (`JoinWorkflowSpec`, a strategic merge patch).

    Mappings merge key by key, the Workflow's values win; lists are replaced, except arguments, which
    merge by name (`util.MergeParameters`: the Workflow's first, then the template's others).
    """
    merged = _merge(template_spec, workflow_spec)
    merged.pop("workflowTemplateRef", None)
    for key in ("parameters", "artifacts"):
        ours = (workflow_spec.get("arguments") or {}).get(key) or []
        theirs = (template_spec.get("arguments") or {}).get(key) or []
        if ours or theirs:
            names = {item.get("name") for item in ours}
            merged.setdefault("arguments", {})[key] = list(ours) + [
                i for i in theirs if i.get("name") not in names
            ]
    return merged


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), dict):
            result[key] = _merge(result[key], value)
        else:
            result[key] = value
    return result


def _apply_parameters(spec: dict[str, Any], overrides: Mapping[str, str], origin: str) -> dict[str, str]:
    """Apply `-p` overrides to the spec's arguments and check them (`validateArgumentsValues`)."""
    arguments = spec.setdefault("arguments", {})
    declared: list[dict[str, Any]] = arguments.setdefault("parameters", [])
    by_name = {p.get("name"): p for p in declared}
    for name, value in overrides.items():
        if name in by_name:
            by_name[name].pop("valueFrom", None)
            by_name[name]["value"] = value
        else:
            declared.append({"name": name, "value": value})
    values: dict[str, str] = {}
    for param in declared:
        name = param.get("name", "")
        if param.get("valueFrom") is not None:
            raise WorkflowError(
                f"{origin}: spec.arguments.parameters.{name}.valueFrom is not supported by argoplug's local "
                f"agent: give a value (or -p {name}=VALUE)"
            )
        if param.get("value") is None:
            raise WorkflowError(
                f"{origin}: spec.arguments.{name}.value is required (give it with -p {name}=VALUE)"
            )
        value = str(param["value"])
        enum = param.get("enum")
        if enum is not None and value not in enum:
            raise WorkflowError(
                f"{origin}: spec.arguments.{name}.value should be present in spec.arguments.{name}.enum list "
                f"(got {value!r}, expected one of {', '.join(map(repr, enum))})"
            )
        values[name] = value
    return values
