"""What the local agent runs: template kinds, and `check`, the refusal before a run of what it cannot run.

`check` refuses what Argo's validation refuses (`workflow/validate/validate.go`) and what the engine cannot
run as Argo would, naming the construct and the template, and warns of what Argo runs but likely not as
meant. `argoplug run` calls it after loading the workflow; the engine asks `template_kind`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from argoplug.agent.dag import ancestors, cycle, depends_logic, task_results
from argoplug.agent.expressions import TASK_RESULTS
from argoplug.agent.substitution import RETRY_VARIABLES, global_values, tags, unresolved
from argoplug.agent.workflow import EXIT_HOOK, TemplateSet, Workflow, WorkflowError, exit_hook, without_hook

__all__ = ["RETRIES", "RUNNABLE_KINDS", "check", "executor_plugins_problem", "template_kind"]

RETRIES = "retries"  # `common.LocalVarRetries`: the attempt number, in templates with a retryStrategy

# The kinds the local agent runs; a node of any other kind ends as Error, naming it.
RUNNABLE_KINDS = ("plugin", "http", "suspend", "steps", "dag")
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
_LOOPS = ("withItems", "withParam", "withSequence")
_POLICIES = ("Always", "OnFailure", "OnError", "OnTransientError")

# What this engine cannot honour. Each is refused by `check`, naming it: running the workflow without it
# would do something other than Argo does. A later engine supports one by deleting it from here.
_UNSUPPORTED_SPEC = ("hooks", "templateDefaults", "synchronization", "suspend", "shutdown")
_UNSUPPORTED_TEMPLATE = ("memoize", "synchronization", "daemon", "failFast", "pendingTimeout")
_UNSUPPORTED_CALL = ("hooks", "inline")


def template_kind(template: Mapping[str, Any]) -> str | None:
    """The kind of a template (`plugin`, `steps`, `dag`, `container`, ...), None if it has none or several."""
    kinds = [kind for kind in _KINDS if template.get(kind) is not None]
    return kinds[0] if len(kinds) == 1 else None


def executor_plugins_problem(spec: Mapping[str, Any]) -> str:
    """Argo's refusal of the workflow's own `executorPlugins`, or "" (`workflow/validate/validate.go`
    `validateExecutorPlugins`: `WorkflowSpec.AsExecutorPluginSpec`, `pkg/plugins/spec` `Sidecar.Validate`)."""
    from argoplug.build.argo import sidecar_problem

    for plugin in spec.get("executorPlugins") or []:
        plugin = plugin if isinstance(plugin, Mapping) else {}
        container = ((plugin.get("spec") or {}).get("sidecar") or {}).get("container") or {}
        if not (plugin.get("metadata") or {}).get("name"):
            return "spec.executorPlugins: executor plugin metadata name is mandatory"
        problem = sidecar_problem(container)
        if problem:
            return f"spec.executorPlugins: {problem}"
    return ""


def _template_names_problem(templates: list[Any]) -> str:
    """Argo's refusal of the templates' names, or "" (`spec.templates` + `validateWorkflowFieldNames`)."""
    problem = _field_names_problem(templates)
    return f"spec.templates{problem}" if problem else ""


def _field_names_problem(items: list[Any]) -> str:
    """`[%d].name is required` or `[%d].name '%s' is not unique` for the first such item, or ""
    (`workflow/validate/validate.go`, `validateWorkflowFieldNames`)."""
    seen: set[str] = set()
    for index, item in enumerate(items):
        name = item.get("name") if isinstance(item, Mapping) else None
        if not name:
            return f"[{index}].name is required"
        if name in seen:
            return f"[{index}].name '{name}' is not unique"
        seen.add(str(name))
    return ""


def _result_keys(prefix: str, template: Mapping[str, Any], *, looped: bool = False) -> set[str]:
    """What a caller may reference of a finished step/task, as validation sees it (`addOutputsToScope`)."""
    keys = {f"{prefix}.{k}" for k in ("id", "status", "startedAt", "finishedAt")}
    if template_kind(template) in ("container", "containerSet", "script", "data", "http", "plugin"):
        keys |= {f"{prefix}.outputs.result", f"{prefix}.exitCode"}
    for param in (template.get("outputs") or {}).get("parameters") or []:
        keys.add(f"{prefix}.outputs.parameters.{param.get('name')}")
    if looped:
        keys |= {f"{prefix}.outputs.parameters", f"{prefix}.outputs.result"}
    return keys


def check(workflow: Workflow, *, pod_problem: PodProblem | None = None) -> list[str]:
    """Refuse, before anything runs, a workflow Argo would refuse or this engine cannot run as Argo would.

    Walks the templates reachable from the entrypoint and the exit handlers (through `templateRef`s too):
    template kinds, step and task names, references to templates, DAG `depends`/`dependencies` (unknown
    names, invalid results, cycles), loops, retry strategies, suspend durations, argument values, and
    every `{{...}}` that must resolve. A step's or task's outputs are in scope only as its template
    declares them. Constructs not supported (`hooks`, `synchronization`, `memoize`, artifacts, `daemon`,
    a suspend without duration, ...) are named with their template. `pod_problem(name, template)`, when
    given, judges each container and script template reached: the message says why it cannot run (None:
    it can); without it they are left to end as Error. Raises WorkflowError listing every problem.
    Returns warnings: what Argo runs but most likely not as the author meant, each naming its template.
    """
    checker = _Checker(workflow, pod_problem)
    checker.run()
    if checker.problems:
        listed = "\n  ".join(dict.fromkeys(checker.problems))
        raise WorkflowError(f"{workflow.origin} cannot run:\n  {listed}")
    return list(dict.fromkeys(checker.warnings))


PodProblem = Callable[[str, Mapping[str, Any]], "str | None"]


class _Checker:
    def __init__(self, workflow: Workflow, pod_problem: PodProblem | None = None) -> None:
        self.workflow = workflow
        self.pod_problem = pod_problem
        self.globals = set(global_values(workflow)) | {"workflow.status", "workflow.failures"}
        for templates in [workflow.local, *workflow.library.values()]:
            for template in templates.templates.values():
                for param in (template.get("outputs") or {}).get("parameters") or []:
                    if param.get("globalName"):
                        self.globals.add(f"workflow.outputs.parameters.{param['globalName']}")
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self._seen: set[tuple[str, str]] = set()
        self._chain: list[str] = []  # the calls (`templates.main.steps[0].a`) that led to the template
        # `steps.<name>.` / `tasks.<name>.` of calls whose template did not resolve (reported once)
        self._unknown_results: set[str] = set()

    def run(self) -> None:
        spec = self.workflow.spec
        problem = executor_plugins_problem(spec)
        if problem:
            self.problems.append(problem)
        for field in _UNSUPPORTED_SPEC:
            if spec.get(field):
                self._unsupported("spec", field)
        if (spec.get("arguments") or {}).get("artifacts"):
            self._unsupported("spec.arguments", "artifacts")
        if spec.get("retryStrategy") is not None:
            self._retry_strategy("spec", spec["retryStrategy"])
        if spec.get("parallelism") is not None:
            self.warnings.append(
                "spec: `parallelism` limits the pods a workflow runs at once; plugin, HTTP and suspend nodes "
                "are not pods, so Argo does not hold them back by it (nor does the local agent)"
            )
        problem = _template_names_problem(spec.get("templates") or [])
        if problem:
            self.problems.append(problem)
        local = self.workflow.local
        entry = {"template": self.workflow.entrypoint, "arguments": spec.get("arguments") or {}}
        self._supplied("", self.workflow.entrypoint, local.templates[self.workflow.entrypoint], entry)
        self.template(local, local.templates[self.workflow.entrypoint], self.workflow.entrypoint)
        hook = exit_hook(spec)
        if hook is not None:
            self._exit_handler("spec.onExit" if spec.get("onExit") else "spec.hooks.exit", hook, local)

    def _unsupported(self, where: str, field: str) -> None:
        self.problems.append(f"{where}: `{field}` is not supported by argoplug's local agent yet")

    def _exit_handler(self, where: str, hook: Mapping[str, Any], templates: TemplateSet) -> None:
        """Check the template an exit handler names (`workflow.exit_hook`), local or by templateRef."""
        name = hook.get("template")
        if name is not None and name not in templates.templates:
            self.problems.append(f"{where}: template name '{name}' undefined")
            return
        try:
            found, template = self.workflow.resolve(hook, templates)
        except WorkflowError as exc:
            self.problems.append(f"{where}: {exc}")
            return
        self.template(found, template, str(name or (hook.get("templateRef") or {}).get("template")))

    def template(self, templates: TemplateSet, template: Mapping[str, Any], name: str) -> None:
        if (templates.scope, name) in self._seen:
            return
        self._seen.add((templates.scope, name))
        where = (
            f"templates.{name}" if templates.scope == "local/" else f"{templates.origin}: templates.{name}"
        )
        kind = template_kind(template)
        if kind is None:
            count = sum(template.get(k) is not None for k in _KINDS)
            what = "multiple template types specified" if count else "template type unspecified"
            self.problems.append(f"{where} {what}. choose one of: {', '.join(_KINDS)}")
            return
        for field in _UNSUPPORTED_TEMPLATE:
            if template.get(field) not in (None, False):
                self._unsupported(where, field)
        for part in ("inputs", "outputs"):
            if (template.get(part) or {}).get("artifacts"):
                self._unsupported(f"{where}.{part}", "artifacts")
        scope = set(self.globals)
        problem = _field_names_problem((template.get("inputs") or {}).get("parameters") or [])
        if problem:  # validate.go: `templates.%s.inputs.parameters%s` over validateWorkflowFieldNames
            self.problems.append(f"{where}.inputs.parameters{problem}")
        for param in (template.get("inputs") or {}).get("parameters") or []:
            scope.add(f"inputs.parameters.{param.get('name')}")
            for field in param.get("valueFrom") or {}:
                if field not in ("configMapKeyRef", "default"):
                    self._unsupported(f"{where}.inputs.parameters.{param.get('name')}", f"valueFrom.{field}")
        if kind in ("container", "script") and self.pod_problem is not None:
            refused = self.pod_problem(name, template)
            if refused is not None:
                self.problems.append(f"{where}: a {kind} template, and {refused}")
        if kind not in RUNNABLE_KINDS:
            return  # its node ends as Error at run time, or runs on a stand-in (`pods`); nothing inside it
        self._timing(where, template, kind)
        if template.get("retryStrategy") is not None:
            self._retry_strategy(where, template["retryStrategy"])
        self._retries(where, template)
        if kind == "plugin":
            plugin = template["plugin"]
            if not isinstance(plugin, dict) or len(plugin) != 1:
                self.problems.append(f"{where}.plugin must have exactly one key: the plugin's name")
            self._resolve(where, template, scope)
        elif kind == "http":
            self._resolve(where, template, scope)
        elif kind == "suspend":
            self._suspend(where, template)
        elif kind == "steps":
            self.steps(where, templates, template, scope)
        else:
            self.dag(where, templates, template, scope)

    def _timing(self, where: str, template: Mapping[str, Any], kind: str) -> None:
        if template.get("timeout") and kind in ("steps", "dag"):
            self.problems.append(f"{where}: {kind} template doesn't support timeout field.")
        if template.get("timeout") and (
            template.get("retryStrategy") or self.workflow.spec.get("retryStrategy")
        ):
            self.warnings.append(
                f"{where}: `timeout` has no effect with a retryStrategy: Argo checks it against the Retry "
                "node, which is never Pending"
            )
        if template.get("activeDeadlineSeconds") is not None:
            self.warnings.append(
                f"{where}: `activeDeadlineSeconds` applies only to container and script templates (the pod's "
                f"deadline); Argo ignores it on a {kind} template"
            )
        if template.get("metrics") is not None:
            self.warnings.append(
                f"{where}: `metrics` are Prometheus metrics of the controller: none are emitted locally"
            )

    def _suspend(self, where: str, template: Mapping[str, Any]) -> None:
        duration = (template.get("suspend") or {}).get("duration")
        if duration in (None, ""):
            self.problems.append(
                f"{where}: a suspend template without `duration` waits until someone resumes the workflow "
                "(`argo resume`), which nobody can do in a local run: give it a duration"
            )
        elif "{{" not in str(duration):
            self._duration(f"{where}.suspend.duration", str(duration))

    def _duration(self, where: str, text: str) -> None:
        from argoplug.agent.retries import parse_duration_string
        from argoplug.agent.substitution import SetupError

        try:
            parse_duration_string(text)
        except SetupError as exc:
            self.problems.append(f"{where}: {exc}")

    def _retry_strategy(self, where: str, strategy: Any) -> None:
        if not isinstance(strategy, Mapping):
            return
        policy = strategy.get("retryPolicy")
        if policy and "{{" not in str(policy) and policy not in _POLICIES:
            self.problems.append(
                f"{where}.retryStrategy.retryPolicy: {policy} is not a valid RetryPolicy "
                f"(one of {', '.join(_POLICIES)})"
            )
        limit = strategy.get("limit")
        if isinstance(limit, str) and "{{" not in limit and re.fullmatch(r"\s*[+-]?\d+\s*", limit) is None:
            self.problems.append(f"{where}.retryStrategy.limit: {limit!r} is not an integer")
        backoff = strategy.get("backoff") or {}
        for field in ("duration", "cap", "maxDuration"):
            value = backoff.get(field)
            if value not in (None, "") and "{{" not in str(value):
                self._duration(f"{where}.retryStrategy.backoff.{field}", str(value))
        if strategy.get("affinity") is not None:
            self.warnings.append(
                f"{where}.retryStrategy: `affinity` places retried pods on other hosts; it has no effect here"
            )

    def _retries(self, where: str, template: Mapping[str, Any]) -> None:
        # `retries` is a local variable only of a template with a retryStrategy (operator.go, validate.go).
        # Elsewhere Argo neither resolves nor refuses it (its validation checks only the prefixes `inputs.`,
        # `steps.`, ...): the text `{{retries}}` is passed on as written.
        if template.get("retryStrategy") is not None or self.workflow.spec.get("retryStrategy") is not None:
            return
        if any(tag in RETRY_VARIABLES for tag in tags(template)):
            self.warnings.append(
                f"{where}: {{{{{RETRIES}}}}} is set only in a template with a retryStrategy; without one "
                f"Argo leaves it unresolved, and the text {{{{{RETRIES}}}}} is passed on as written"
            )

    def _resolve(self, where: str, value: Any, scope: set[str]) -> None:
        for tag in unresolved(value, scope):
            if tag.startswith(tuple(self._unknown_results)):
                continue  # the results of a step or task whose template could not be resolved
            self.problems.append(f"{where}: failed to resolve {{{{{tag}}}}}{_hint(tag, scope)}")

    def _call(
        self, where: str, call: Mapping[str, Any], templates: TemplateSet
    ) -> tuple[TemplateSet, Mapping[str, Any], str] | None:
        """Check one step or task; return its template, where it resolves and its name, if it can go on."""
        for field in _UNSUPPORTED_CALL:
            if call.get(field) is not None:
                self._unsupported(where, field)
        arguments = call.get("arguments") or {}
        if arguments.get("artifacts"):
            self._unsupported(f"{where}.arguments", "artifacts")
        for param in arguments.get("parameters") or []:
            at = f"{where}.arguments.parameters.{param.get('name')}"
            if param.get("valueFrom") is not None:
                for field in param["valueFrom"]:
                    if field not in ("configMapKeyRef", "default"):
                        self._unsupported(at, f"valueFrom.{field}")
            elif param.get("value") is None:
                self.problems.append(f"{where}.arguments.{param.get('name')}.value is required")
        loops = [field for field in _LOOPS if call.get(field) not in (None, "", [])]
        if len(loops) > 1:
            self.problems.append(f"{where}: only one of withItems, withParam, withSequence can be specified")
        sequence = call.get("withSequence")
        if (
            isinstance(sequence, Mapping)
            and sequence.get("count") is not None
            and sequence.get("end") is not None
        ):
            self.problems.append(f"{where}: only one of count or end can be defined in withSequence")
        hook = exit_hook(call)
        if hook is not None:
            hook_where = f"{where}.onExit" if call.get("onExit") else f"{where}.hooks.exit"
            self._exit_handler(hook_where, hook, templates)
        if call.get("template") is None and call.get("templateRef") is None:
            if call.get("inline") is None:
                self.problems.append(f"{where}: `template` is required")
            return None
        if call.get("templateRef") is None and call["template"] not in templates.templates:
            self.problems.append(f"{where}: template name '{call['template']}' undefined")
            return None
        try:
            found, template = self.workflow.resolve(call, templates)
        except WorkflowError as exc:
            self.problems.append(f"{where}: {exc}")
            return None
        name = str(call.get("template") or (call.get("templateRef") or {}).get("template"))
        self._supplied(where, name, template, call)
        self._chain.append(where)
        try:
            self.template(found, template, name)
        finally:
            self._chain.pop()
        return found, template, name

    def _supplied(self, where: str, name: str, template: Mapping[str, Any], call: Mapping[str, Any]) -> None:
        """An input the call leaves without a value is refused as `argo lint` refuses it (`ProcessArgs`)."""
        supplied = {
            p.get("name")
            for p in (call.get("arguments") or {}).get("parameters") or []
            if p.get("value") is not None or p.get("valueFrom") is not None
        }
        for param in (template.get("inputs") or {}).get("parameters") or []:
            has = any(param.get(field) is not None for field in ("value", "default", "valueFrom"))
            if not has and param.get("name") not in supplied:
                # Argo's validation nests the calls that led here: `<call> <call> templates.x ...`.
                prefix = "".join(f"{outer} " for outer in [*self._chain, where] if outer)
                self.problems.append(
                    f"{prefix}templates.{name} inputs.parameters.{param.get('name')} was not supplied"
                )

    def _item_scope(self, call: Mapping[str, Any]) -> set[str]:
        """The `item` variables a looped call may use (`addItemsToScope`); `item.*` for `withParam`."""
        found: set[str] = set()
        if call.get("withItems"):
            for item in call["withItems"]:
                if isinstance(item, dict):
                    found |= {f"item.{k}" for k in item}
                elif isinstance(item, list):
                    found |= {f"item.[{i}]" for i in range(len(item))}
                else:
                    found.add("item")
        elif call.get("withParam") or call.get("withSequence") is not None:
            found.add("item")
        return found

    def _resolve_call(
        self, where: str, call: Mapping[str, Any], scope: set[str], own: set[str] | None = None
    ) -> None:
        """Resolve the call's `{{...}}`; its exit hook's arguments also see its own results (`own`)."""
        items = self._item_scope(call)
        if call.get("withParam"):
            scope = scope | {t for t in tags(call) if t.startswith("item.")}
        self._resolve(where, without_hook(call), scope | items)
        arguments = (call.get(EXIT_HOOK) or {}).get("arguments")
        if arguments:
            self._resolve(f"{where}.hooks.exit", arguments, scope | (own or set()))

    def steps(self, where: str, templates: TemplateSet, template: Mapping[str, Any], scope: set[str]) -> None:
        names: set[str] = set()
        for i, group in enumerate(template.get("steps") or []):
            added: set[str] = set()
            for step in group or []:
                step_name = step.get("name")
                at = f"{where}.steps[{i}].{step_name}"
                if not step_name:
                    self.problems.append(f"{where}.steps[{i}].name is required")
                    continue
                if step_name in names:
                    self.problems.append(f"{where}.steps[{i}].name '{step_name}' is not unique")
                names.add(step_name)
                target = self._call(at, step, templates)
                own: set[str] = set()
                if target is None:  # already a problem: what refers to its results is not one more
                    self._unknown_results.add(f"steps.{step_name}.")
                else:
                    looped = any(step.get(f) not in (None, "", []) for f in _LOOPS)
                    own = _result_keys(f"steps.{step_name}", target[1], looped=looped)
                    added |= own
                self._resolve_call(at, step, scope, own)
            scope = scope | added
        self._outputs(where, template, scope)

    def dag(self, where: str, templates: TemplateSet, template: Mapping[str, Any], scope: set[str]) -> None:
        dag = template["dag"]
        tasks: dict[str, Mapping[str, Any]] = {}
        for task in dag.get("tasks") or []:
            task_name = task.get("name")
            if not task_name:
                self.problems.append(f"{where}.tasks.name is required")
            elif task_name in tasks:
                self.problems.append(f"{where}.tasks.{task_name} name is not unique")
            else:
                tasks[task_name] = task
        if any(t.get("depends") for t in tasks.values()) and any(
            t.get("dependencies") for t in tasks.values()
        ):
            self.problems.append(
                f"{where} cannot use both 'depends' and 'dependencies' in the same DAG template"
            )
        dependencies: dict[str, list[str]] = {}
        for task_name, task in tasks.items():
            dependencies[task_name] = depends_logic(task_name, tasks)[0]
            for dep, result in task_results(str(task.get("depends") or "")):
                if result not in TASK_RESULTS:
                    self.problems.append(
                        f"{where}.tasks.{task_name}: task result '{result}' for task '{dep}' is invalid"
                    )
            for dep in dependencies[task_name]:
                if dep not in tasks:
                    self.problems.append(f"{where}.tasks.{task_name} dependency '{dep}' not defined")
        for wanted in str(dag.get("target") or "").split(" "):
            if wanted and "{{" not in wanted and wanted not in tasks:  # validateDAGTargets skips parameters
                self.problems.append(f"{where}.targets: target '{wanted}' is not defined")
        loop = cycle(dependencies)
        if loop:
            self.problems.append(f"{where}.tasks dependency cycle detected: {'->'.join(loop)}")
            return
        results: dict[str, set[str]] = {}
        for task_name, task in tasks.items():
            target = self._call(f"{where}.tasks.{task_name}", task, templates)
            if target is None:  # already a problem: what refers to its results is not one more
                self._unknown_results.add(f"tasks.{task_name}.")
            else:
                looped = any(task.get(f) not in (None, "", []) for f in _LOOPS)
                results[task_name] = _result_keys(f"tasks.{task_name}", target[1], looped=looped)
        for task_name, task in tasks.items():
            visible = set(scope)
            for ancestor in ancestors(task_name, dependencies):
                visible |= results.get(ancestor, set())
            own = results.get(task_name, set())
            self._resolve_call(f"{where}.tasks.{task_name}", task, visible, own)
        self._outputs(where, template, set(scope).union(*results.values()))

    def _outputs(self, where: str, template: Mapping[str, Any], scope: set[str]) -> None:
        """Outputs of a steps/DAG template come from `valueFrom.parameter` or `.expression`
        (`getTemplateOutputsFromScope`); an expression is judged when it runs, as Argo does."""
        for param in (template.get("outputs") or {}).get("parameters") or []:
            at = f"{where}.outputs.parameters.{param.get('name')}"
            value_from = param.get("valueFrom") or {}
            for field in value_from:
                if field not in ("parameter", "expression", "default"):
                    self._unsupported(at, f"valueFrom.{field}")
            if value_from.get("parameter") is not None:
                self._resolve(at, value_from["parameter"], scope)


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
