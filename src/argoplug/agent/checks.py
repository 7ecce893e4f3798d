"""What the local agent runs: template kinds, and `check`, the refusal before a run of what it cannot run.

`check` refuses what Argo's validation refuses (`workflow/validate/validate.go`) and what the engine cannot
run as Argo would yet, and warns of what Argo runs but likely not as meant. `argoplug run` calls it after
loading the workflow; the engine asks `template_kind`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from argoplug.agent.dag import ancestors, cycle
from argoplug.agent.substitution import global_values, tags, unresolved
from argoplug.agent.workflow import Workflow, WorkflowError

__all__ = ["RETRIES", "RUNNABLE_KINDS", "check", "template_kind"]

RETRIES = "retries"  # `common.LocalVarRetries`: the attempt number, in templates with a retryStrategy

# The kinds the local agent runs; a node of any other kind ends as Error, naming it.
RUNNABLE_KINDS = ("plugin", "steps", "dag")
_KINDS = (
    "container",
    "script",
    "resource",
    "suspend",
    "steps",
    "dag",
    "containerSet",
    "data",
    "http",
    "plugin",
)


# What this engine cannot honour yet. Each is refused by `check`, naming it: running the workflow without
# it would do something other than Argo does. A later engine supports one by deleting it from here.
_UNSUPPORTED_SPEC = (
    "onExit",
    "hooks",
    "retryStrategy",
    "parallelism",
    "templateDefaults",
    "synchronization",
    "suspend",
    "shutdown",
)
_UNSUPPORTED_TEMPLATE = (
    "retryStrategy",
    "timeout",
    "activeDeadlineSeconds",
    "memoize",
    "synchronization",
    "parallelism",
    "template",
    "templateRef",
)
_UNSUPPORTED_STEP = (
    "when",
    "withItems",
    "withParam",
    "withSequence",
    "onExit",
    "hooks",
    "continueOn",
    "templateRef",
    "inline",
)
_UNSUPPORTED_TASK = (*_UNSUPPORTED_STEP, "depends")
_UNSUPPORTED_DAG = ("target",)


def template_kind(template: Mapping[str, Any]) -> str | None:
    """The kind of a template (`plugin`, `steps`, `dag`, `container`, ...), None if it has none or several."""
    kinds = [kind for kind in _KINDS if template.get(kind) is not None]
    return kinds[0] if len(kinds) == 1 else None


def _result_keys(prefix: str, template: Mapping[str, Any]) -> set[str]:
    """What a caller may reference of a finished step/task, as validation sees it (`addOutputsToScope`)."""
    keys = {f"{prefix}.{k}" for k in ("id", "status", "startedAt", "finishedAt")}
    if template_kind(template) not in ("steps", "dag"):
        keys |= {f"{prefix}.outputs.result", f"{prefix}.outputs.exitCode"}
    for param in (template.get("outputs") or {}).get("parameters") or []:
        keys.add(f"{prefix}.outputs.parameters.{param.get('name')}")
    return keys


def check(workflow: Workflow) -> list[str]:
    """Refuse, before anything runs, a workflow Argo would refuse or this engine cannot run as Argo would.

    Walks the templates reachable from the entrypoint: template kinds, step and task names, references
    to templates, DAG dependencies (unknown names, cycles), argument values, and every `{{...}}` that
    must resolve (`workflow/validate/validate.go`). A step's or task's outputs are in scope only as its
    template declares them. Constructs not supported yet (`when`, `depends`, loops, `retryStrategy`,
    `onExit`, artifacts, expressions, ...) are named with their template. Raises WorkflowError listing
    every problem. Returns warnings: what Argo runs but most likely not as the author meant (a
    `{{retries}}` without `retryStrategy`, which Argo sends as written), each naming its template.
    """
    checker = _Checker(workflow)
    checker.run()
    if checker.problems:
        listed = "\n  ".join(dict.fromkeys(checker.problems))
        raise WorkflowError(f"{workflow.origin} cannot run:\n  {listed}")
    return list(dict.fromkeys(checker.warnings))


class _Checker:
    def __init__(self, workflow: Workflow) -> None:
        self.workflow = workflow
        self.globals = set(global_values(workflow))
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self._seen: set[str] = set()

    def run(self) -> None:
        spec = self.workflow.spec
        for field in _UNSUPPORTED_SPEC:
            if spec.get(field):
                self._unsupported("spec", field)
        if (spec.get("arguments") or {}).get("artifacts"):
            self._unsupported("spec.arguments", "artifacts")
        self.template(self.workflow.entrypoint)

    def _unsupported(self, where: str, field: str) -> None:
        self.problems.append(f"{where}: `{field}` is not supported by argoplug's local agent yet")

    def template(self, name: str) -> None:
        if name in self._seen:
            return
        self._seen.add(name)
        template = self.workflow.templates[name]
        where = f"templates.{name}"
        kind = template_kind(template)
        if kind is None:
            count = sum(template.get(k) is not None for k in _KINDS)
            what = "multiple template types specified" if count else "template type unspecified"
            self.problems.append(f"{where} {what}. choose one of: {', '.join(_KINDS)}")
            return
        for field in _UNSUPPORTED_TEMPLATE:
            if template.get(field) is not None:
                self._unsupported(where, field)
        for part in ("inputs", "outputs"):
            if (template.get(part) or {}).get("artifacts"):
                self._unsupported(f"{where}.{part}", "artifacts")
        scope = set(self.globals)
        for param in (template.get("inputs") or {}).get("parameters") or []:
            scope.add(f"inputs.parameters.{param.get('name')}")
            if param.get("valueFrom") is not None:
                self._unsupported(f"{where}.inputs.parameters.{param.get('name')}", "valueFrom")
        if kind not in RUNNABLE_KINDS:
            return  # its node ends as Error at run time, as the issue asks; nothing inside it runs
        self._expressions(where, template)
        self._retries(where, template)
        if kind == "plugin":
            plugin = template["plugin"]
            if not isinstance(plugin, dict) or len(plugin) != 1:
                self.problems.append(f"{where}.plugin must have exactly one key: the plugin's name")
            self._resolve(where, template, scope)
        elif kind == "steps":
            self.steps(name, template, scope)
        else:
            self.dag(name, template, scope)

    def _expressions(self, where: str, template: Mapping[str, Any]) -> None:
        for tag in tags(template):
            if tag.startswith("="):
                self.problems.append(
                    f"{where}: expression tag {{{{{tag}}}}} is not supported by argoplug's local agent yet"
                )

    def _retries(self, where: str, template: Mapping[str, Any]) -> None:
        # `retries` is a local variable only of a template with a retryStrategy (operator.go, validate.go).
        # Elsewhere Argo neither resolves nor refuses it (its validation checks only the prefixes `inputs.`,
        # `steps.`, ...): the text `{{retries}}` is passed on as written.
        if template.get("retryStrategy") is None and RETRIES in tags(template):
            self.warnings.append(
                f"{where}: {{{{{RETRIES}}}}} is set only in a template with a retryStrategy; without one "
                f"Argo leaves it unresolved, and the text {{{{{RETRIES}}}}} is passed on as written"
            )

    def _resolve(self, where: str, value: Any, scope: set[str]) -> None:
        for tag in unresolved(value, scope):
            self.problems.append(f"{where}: failed to resolve {{{{{tag}}}}}{_hint(tag, scope)}")

    def _call(self, where: str, call: Mapping[str, Any], unsupported: Sequence[str]) -> str | None:
        """Check one step or task; return the template it calls if it can be checked further."""
        for field in unsupported:
            if call.get(field) is not None:
                self._unsupported(where, field)
        arguments = call.get("arguments") or {}
        if arguments.get("artifacts"):
            self._unsupported(f"{where}.arguments", "artifacts")
        for param in arguments.get("parameters") or []:
            if param.get("valueFrom") is not None:
                self._unsupported(f"{where}.arguments.parameters.{param.get('name')}", "valueFrom")
            elif param.get("value") is None:
                self.problems.append(f"{where}.arguments.{param.get('name')}.value is required")
        target = call.get("template")
        if target is None:
            if call.get("templateRef") is None and call.get("inline") is None:
                self.problems.append(f"{where}: `template` is required")
            return None
        if target not in self.workflow.templates:
            self.problems.append(f"{where}: template name '{target}' undefined")
            return None
        return str(target)

    def steps(self, name: str, template: Mapping[str, Any], scope: set[str]) -> None:
        names: set[str] = set()
        for i, group in enumerate(template.get("steps") or []):
            added: set[str] = set()
            for step in group or []:
                step_name = step.get("name")
                where = f"templates.{name}.steps[{i}].{step_name}"
                if not step_name:
                    self.problems.append(f"templates.{name}.steps[{i}].name is required")
                    continue
                if step_name in names:
                    self.problems.append(f"templates.{name}.steps[{i}].name '{step_name}' is not unique")
                names.add(step_name)
                target = self._call(where, step, _UNSUPPORTED_STEP)
                self._resolve(where, step, scope)
                if target is not None:
                    self.template(target)
                    added |= _result_keys(f"steps.{step_name}", self.workflow.templates[target])
            scope = scope | added
        self._outputs(name, template, scope)

    def dag(self, name: str, template: Mapping[str, Any], scope: set[str]) -> None:
        dag = template["dag"]
        for field in _UNSUPPORTED_DAG:
            if dag.get(field) is not None:
                self._unsupported(f"templates.{name}.dag", field)
        tasks: dict[str, Mapping[str, Any]] = {}
        for task in dag.get("tasks") or []:
            task_name = task.get("name")
            if not task_name:
                self.problems.append(f"templates.{name}.tasks.name is required")
            elif task_name in tasks:
                self.problems.append(f"templates.{name}.tasks.{task_name} name is not unique")
            else:
                tasks[task_name] = task
        dependencies = {t: list(task.get("dependencies") or []) for t, task in tasks.items()}
        for task_name, deps in dependencies.items():
            for dep in deps:
                if dep not in tasks:
                    self.problems.append(f"templates.{name}.tasks.{task_name} dependency '{dep}' not defined")
        loop = cycle(dependencies)
        if loop:
            self.problems.append(f"templates.{name}.tasks dependency cycle detected: {'->'.join(loop)}")
            return
        results: dict[str, set[str]] = {}
        for task_name, task in tasks.items():
            target = self._call(f"templates.{name}.tasks.{task_name}", task, _UNSUPPORTED_TASK)
            if target is not None:
                self.template(target)
                results[task_name] = _result_keys(f"tasks.{task_name}", self.workflow.templates[target])
        for task_name, task in tasks.items():
            visible = set(scope)
            for ancestor in ancestors(task_name, dependencies):
                visible |= results.get(ancestor, set())
            self._resolve(f"templates.{name}.tasks.{task_name}", task, visible)
        self._outputs(name, template, set(scope).union(*results.values()))

    def _outputs(self, name: str, template: Mapping[str, Any], scope: set[str]) -> None:
        """Outputs of a steps/DAG template come from `valueFrom.parameter` (`getTemplateOutputsFromScope`)."""
        for param in (template.get("outputs") or {}).get("parameters") or []:
            where = f"templates.{name}.outputs.parameters.{param.get('name')}"
            value_from = param.get("valueFrom") or {}
            for field in value_from:
                if field not in ("parameter", "default"):
                    self._unsupported(where, f"valueFrom.{field}")
            if value_from.get("parameter") is not None:
                self._resolve(where, value_from["parameter"], scope)


def _hint(tag: str, scope: set[str]) -> str:
    """Why a `steps.`/`tasks.` reference does not resolve, when it is one of the two usual reasons."""
    parts = tag.split(".")
    if len(parts) < 3 or parts[0] not in ("steps", "tasks"):
        return ""
    kind, name = parts[0], parts[1]
    if f"{kind}.{name}.id" not in scope:
        before = "an earlier step" if kind == "steps" else "a dependency (direct or not) of this task"
        return f" ({kind[:-1]} `{name}` is not {before})"
    if parts[2:4] == ["outputs", "parameters"] and len(parts) > 4:
        return (
            f" (the template `{name}` calls declares no output parameter `{'.'.join(parts[4:])}`: Argo only "
            "knows declared outputs, so add it under the template's outputs.parameters)"
        )
    return ""
