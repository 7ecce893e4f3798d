"""Loading Workflow YAML: parse, validate against Argo's JSON schema, resolve template references.

`argoplug run` calls `load_documents` then `resolve_workflow`; the result, a `Workflow`, is what the engine
runs. What `argo submit` checks of the documents themselves is here too: the schema (`schema`), and the
workflow's arguments (`workflow/validate/validate.go`). The templates are checked by `checks.check`. A
`templateRef` is resolved among the WorkflowTemplates loaded with the workflow (`Workflow.resolve`, as
`workflow/templateresolution/context.go` resolves one in the cluster).
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

from argoplug.agent.schema import describe_value, schema_findings
from argoplug.yaml_marks import yaml_problem

__all__ = [
    "KINDS",
    "LOCAL_SCOPE",
    "Document",
    "TemplateSet",
    "Workflow",
    "WorkflowError",
    "generate_name",
    "load_documents",
    "parse_parameters",
    "resolve_workflow",
]

KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")
# Where `_read_exit_hooks` keeps a `hooks.exit` (not an Argo field): {template or templateRef, arguments}.
EXIT_HOOK = "argoplug.exitHook"
# `argo submit --from KIND/NAME`: the kinds it takes, as the CLI spells them (cmd/argo/commands/submit.go).
FROM_KINDS = {
    "workflowtemplate": "WorkflowTemplate",
    "clusterworkflowtemplate": "ClusterWorkflowTemplate",
    "cronwf": "CronWorkflow",
    "cronworkflow": "CronWorkflow",
}
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
    warnings: list[str] = dataclasses.field(default_factory=list)  # what Argo's controller ignores

    @property
    def origin(self) -> str:
        """Where the document comes from, for messages: `file.yaml, document 2 (WorkflowTemplate foo)`."""
        return f"{self.path}, document {self.index} ({self.kind} {self.name or '(unnamed)'})"


LOCAL_SCOPE = "local/"  # Argo's `templateScope` of the workflow's own templates


@dataclasses.dataclass(frozen=True)
class TemplateSet:
    """The templates a template name resolves among (`templateresolution.Context`).

    `scope` is Argo's template scope: `local/` for the workflow's own templates, `namespaced/<name>` for a
    WorkflowTemplate's, `cluster/<name>` for a ClusterWorkflowTemplate's. A template found through a
    `templateRef` runs in its WorkflowTemplate's set: the `template:` names its steps call are looked up
    there. `origin` says where the set comes from, for messages.
    """

    scope: str
    templates: Mapping[str, dict[str, Any]]
    origin: str

    def get(self, name: str) -> dict[str, Any]:
        """The template `name`; raises WorkflowError (`template <name> not found ...`) when there is none."""
        template = self.templates.get(name)
        if template is None:
            where = "the workflow" if self.scope == LOCAL_SCOPE else self.origin
            raise WorkflowError(f"template {name} not found in {where}")
        return template


@dataclasses.dataclass(frozen=True)
class Workflow:
    """A workflow ready to run: metadata, the merged spec, its templates and its resolved parameters.

    `spec` is the Workflow's spec merged over its WorkflowTemplate's (`workflow/util/merge.go`,
    `JoinWorkflowSpec`); `parameters` maps each workflow argument to its value, `-p` overrides applied.
    `active_deadline_seconds` is the workflow's deadline in seconds, or None. `library` holds the
    (Cluster)WorkflowTemplates loaded with the workflow, by scope (`namespaced/<name>`,
    `cluster/<name>`), for `templateRef`s.
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
    library: Mapping[str, TemplateSet] = dataclasses.field(default_factory=dict)

    @property
    def active_deadline_seconds(self) -> int | None:
        """The workflow's `activeDeadlineSeconds`, in seconds, or None when unset."""
        value = self.spec.get("activeDeadlineSeconds")
        return int(value) if value is not None else None

    @property
    def local(self) -> TemplateSet:
        """The workflow's own templates (scope `local/`)."""
        return TemplateSet(LOCAL_SCOPE, self.templates, self.origin)

    def resolve(
        self, call: Mapping[str, Any], within: TemplateSet | None = None
    ) -> tuple[TemplateSet, dict[str, Any]]:
        """The template a step, task or hook calls, and the set its own calls resolve in (`ResolveTemplate`).

        `call` holds `template` (a name in `within`, default the workflow's own templates) or
        `templateRef` (`{name, template, clusterScope}`: a template of a WorkflowTemplate loaded with the
        workflow). Raises WorkflowError naming what is missing and what was loaded.
        """
        within = within or self.local
        ref = call.get("templateRef")
        if ref is None:
            return within, within.get(str(call.get("template")))
        if not isinstance(ref, Mapping) or not ref.get("name") or not ref.get("template"):
            raise WorkflowError("templateRef needs both `name` (a WorkflowTemplate) and `template`")
        kind = "ClusterWorkflowTemplate" if ref.get("clusterScope") else "WorkflowTemplate"
        scope = f"{'cluster' if ref.get('clusterScope') else 'namespaced'}/{ref['name']}"
        found = self.library.get(scope)
        if found is None:
            loaded = ", ".join(sorted(self.library)) or "none"
            raise WorkflowError(
                f"templateRef: {kind} {ref['name']!r} not found in the files given (loaded: {loaded}); "
                "pass its file too"
            )
        template = found.templates.get(str(ref["template"]))
        if template is None:
            raise WorkflowError(f"template {ref['template']} not found in {kind.lower()} {ref['name']}")
        return found, template


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader without timestamps: Go's YAML-to-JSON keeps `2024-01-01` a string."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_documents(paths: Iterable[str | Path]) -> list[Document]:
    """Read every YAML document of `paths` and validate each against Argo's JSON schema.

    Unknown fields are each document's `warnings` (a cluster ignores them; `argo lint` refuses them),
    every other schema problem an error. Empty documents are skipped. Scalar numbers and booleans in a
    parameter's `value` or `default` become the strings Go would make of them (Argo's `AnyString`:
    `100000000002` → "100000000002", `true` → "true"). Raises WorkflowError naming the file, the
    document, the JSON path and what was expected.
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
            raise WorkflowError(f"{path} is not valid YAML: {yaml_problem(exc, path)}") from None
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
    problems, unknown = schema_findings(document.kind, document.body)
    document.warnings.extend(unknown)
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
    documents: Sequence[Document],
    *,
    parameters: Mapping[str, str] | None = None,
    submit_from: str | None = None,
) -> Workflow:
    """Pick the Workflow to run, resolve its `workflowTemplateRef` and its arguments.

    The Workflow is the only one among `documents`; with none, a single CronWorkflow (its workflowSpec,
    once) or a single (Cluster)WorkflowTemplate is run as `argo submit --from cronwf/NAME` or
    `--from workflowtemplate/NAME` would; `submit_from` (`KIND/NAME`) names the one to run. A referenced
    template is looked up by name among
    `documents`; its spec is the base the Workflow's spec is merged over, and workflow arguments override
    template arguments by name (`workflow/util/merge.go`). `parameters` (from `-p`) override or add
    arguments (`workflow/util/util.go`, `ApplySubmitOpts`). Name: `metadata.name`, else `generateName`
    plus 5 random characters; namespace: `metadata.namespace` or "argo"; uid: a fresh uuid4.
    Raises WorkflowError naming what is missing or wrong.
    """
    workflows = [d for d in documents if d.kind == "Workflow"]
    if submit_from is not None:
        document = _submitted_from(documents, submit_from)
        body = _workflow_from(document)
    elif len(workflows) > 1:
        names = ", ".join(d.origin for d in workflows)
        raise WorkflowError(f"found {len(workflows)} Workflows ({names}): argoplug run runs one at a time")
    elif workflows:
        document = workflows[0]
        body = copy.deepcopy(document.body)
    else:
        crons = [d for d in documents if d.kind == "CronWorkflow"]
        candidates = crons if len(crons) == 1 else [d for d in documents if d.kind != "Workflow"]
        if len(candidates) != 1:
            raise WorkflowError(
                "no Workflow to run: give a file with a Workflow (or exactly one WorkflowTemplate or "
                f"CronWorkflow to run as `argo submit --from` would); found {len(candidates)} templates; "
                "or say which with --from KIND/NAME"
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
    _read_exit_hooks(spec)
    entrypoint = spec.get("entrypoint")
    if not entrypoint:
        raise WorkflowError(f"{document.origin}: spec.entrypoint is required")
    templates: dict[str, dict[str, Any]] = {}
    for index, template in enumerate(spec.get("templates") or []):
        if template.get("name") and template["name"] in templates:  # validateWorkflowFieldNames
            raise WorkflowError(
                f"{document.origin}: spec.templates[{index}].name '{template['name']}' is not unique"
            )
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
        library=_library(documents, namespace),
    )


def _library(documents: Sequence[Document], namespace: str) -> dict[str, TemplateSet]:
    """The templates of every (Cluster)WorkflowTemplate among `documents`, by scope (the last one wins).

    A WorkflowTemplate of another namespace is left out: Argo looks them up in the workflow's namespace.
    """
    library: dict[str, TemplateSet] = {}
    for document in documents:
        if document.kind in ("Workflow", "CronWorkflow"):
            continue
        if document.kind == "WorkflowTemplate":
            found_namespace = (document.body.get("metadata") or {}).get("namespace")
            if found_namespace and found_namespace != namespace:
                continue
            scope = f"namespaced/{document.name}"
        else:
            scope = f"cluster/{document.name}"
        found = copy.deepcopy((document.body.get("spec") or {}).get("templates") or [])
        _read_call_exit_hooks(found)
        templates = {str(t.get("name", "")): t for t in found if isinstance(t, dict)}
        library[scope] = TemplateSet(scope, templates, document.origin)
    return library


def without_hook(call: Mapping[str, Any]) -> dict[str, Any]:
    """The step or task without its exit hook (EXIT_HOOK), whose arguments resolve only later."""
    return {key: value for key, value in call.items() if key != EXIT_HOOK}


def exit_hook(holder: Mapping[str, Any]) -> dict[str, Any] | None:
    """The exit handler of a workflow spec, step or task, as the controller reads it: `onExit: T` first,
    else `hooks: {exit: ...}` (`WorkflowSpec.GetExitHook`, `WorkflowStep.GetExitHook`).

    Returns `{"template": T}` or `{"templateRef": {...}}`, with the hook's `arguments` when it has them;
    None without an exit handler.
    """
    if holder.get("onExit"):
        return {"template": str(holder["onExit"])}
    hook = holder.get(EXIT_HOOK)
    return dict(hook) if isinstance(hook, Mapping) else None


def _read_exit_hooks(spec: dict[str, Any]) -> None:
    """Take `hooks: {exit: {template | templateRef, arguments}}` off the workflow and off each step and
    task into EXIT_HOOK, which `exit_hook` reads: the exit hook is the exit handler. A `hooks` with other
    events, or beside an `onExit`, is left to be refused by name."""
    _take_exit_hook(spec)
    _read_call_exit_hooks(spec.get("templates") or [])


def _read_call_exit_hooks(templates: Sequence[Any]) -> None:
    for template in templates:
        if not isinstance(template, dict):
            continue
        calls = [step for group in template.get("steps") or [] if isinstance(group, list) for step in group]
        calls += list((template.get("dag") or {}).get("tasks") or [])
        for call in calls:
            _take_exit_hook(call)


def _take_exit_hook(holder: Any) -> None:
    hooks = holder.get("hooks") if isinstance(holder, dict) else None
    if not isinstance(hooks, dict) or set(hooks) != {"exit"} or holder.get("onExit"):
        return
    hook = hooks["exit"]
    if not isinstance(hook, dict) or not set(hook) <= {"template", "templateRef", "arguments"}:
        return
    if isinstance(hook.get("template"), str) == isinstance(hook.get("templateRef"), dict):
        return  # neither or both: refused with the rest of `hooks`
    holder[EXIT_HOOK] = hook
    del holder["hooks"]


def _submitted_from(documents: Sequence[Document], submit_from: str) -> Document:
    """The document `--from KIND/NAME` names, as `argo submit --from` takes it."""
    kind_text, _, name = submit_from.partition("/")
    kind = FROM_KINDS.get(kind_text.lower())
    if kind is None or not name:
        raise WorkflowError(
            f"--from {submit_from}: expected KIND/NAME, KIND one of {', '.join(sorted(FROM_KINDS))}"
        )
    for document in documents:
        if document.kind == kind and document.name == name:
            return document
    loaded = ", ".join(f"{d.kind} {d.name}" for d in documents) or "none"
    raise WorkflowError(f"--from {submit_from}: no {kind} named {name!r} among the files (loaded: {loaded})")


def _workflow_from(template: Document) -> dict[str, Any]:
    """The Workflow `argo submit --from workflowtemplate/NAME` (or `cronwf/NAME`) creates
    (`workflow/common/convert.go`: `NewWorkflowFromWorkflowTemplate`, `ConvertCronWorkflowToWorkflow`)."""
    metadata = template.body.get("metadata") or {}
    if template.kind == "CronWorkflow":
        return _workflow_from_cron(template, metadata)
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


def _workflow_from_cron(cron: Document, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A CronWorkflow's `spec.workflowSpec` run once, as `ConvertCronWorkflowToWorkflow` makes it: named
    `<name>-` + 5 characters, labelled with the CronWorkflow, its `workflowMetadata` labels and annotations
    copied, and the `scheduled-time` annotation (`{{workflow.scheduledTime}}`) set to now."""
    spec = cron.body.get("spec") or {}
    extra = spec.get("workflowMetadata") or {}
    labels = {"workflows.argoproj.io/cron-workflow": cron.name, **(extra.get("labels") or {})}
    annotations = {
        "workflows.argoproj.io/scheduled-time": _rfc3339_now(),
        **(extra.get("annotations") or {}),
    }
    body: dict[str, Any] = {
        "metadata": {"generateName": f"{cron.name}-", "labels": labels, "annotations": annotations},
        "spec": copy.deepcopy(spec.get("workflowSpec") or {}),
    }
    if metadata.get("namespace"):
        body["metadata"]["namespace"] = metadata["namespace"]
    return body


def _rfc3339_now() -> str:
    import datetime

    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
