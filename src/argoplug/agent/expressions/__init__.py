"""Argo's expressions: `{{=...}}` tags (expr-lang), `when` conditions (govaluate), DAG `depends` logic.

The engine and HTTP templates call `evaluate`, `expand`, `evaluate_when` and `evaluate_depends`; the parsing
is in `parser`, the evaluation in `evaluation`, the functions in `functions` and `sprig`, Go's view of values
in `values`, `jsonpath` in `jsonpath` (this package's modules).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from argoplug.agent.expressions.evaluation import Evaluator
from argoplug.agent.expressions.parser import ExpressionError, parse
from argoplug.agent.expressions.values import FunctionError, go_format, go_json

__all__ = [
    "DEPENDS_NAME",
    "TASK_RESULTS",
    "ExpressionError",
    "TaskResult",
    "bare_name_logic",
    "depends_tasks",
    "env_from_scope",
    "evaluate",
    "evaluate_depends",
    "evaluate_when",
    "expand",
    "expand_bare_names",
]


def evaluate(expression: str, env: Mapping[str, Any]) -> Any:
    """Evaluate an expr-lang expression (`github.com/expr-lang/expr`: Argo's `{{=...}}`) against `env`.

    `env` maps names to values (str, int, float, bool, None, list, dict), as `env_from_scope` builds it; the
    functions (`asInt`, `jsonpath`, `sprig.trim`, `filter`, ...) are the language's own. Supported: literals,
    `a.b`, `a['b-c']`, `a[0]`, `a[1:3]`, `?.`, `??`, arithmetic, comparisons, `&&`/`and`, `||`/`or`,
    `!`/`not`, `in`, `contains`, `matches`, `..`, `c ? a : b`, pipes, array and map literals, predicates
    (`filter(xs, {# > 1})`). Returns the value (numbers from JSON are floats, as in Go). Raises
    ExpressionError naming the part that does not parse, the unknown name or function, or the operation
    that fails (`util/expr/argoexpr/eval.go`, `util/expr/env/env.go`).
    """
    return Evaluator(expression, env).run(parse(expression))


def env_from_scope(scope: Mapping[str, Any]) -> dict[str, Any]:
    """Nest the engine's flat scope (`inputs.parameters.x`, `steps.a.outputs.result`, `item.key`, ...)
    into the env expressions see: `{"inputs": {"parameters": {"x": ...}}, "steps": {"a": ...}, ...}`.

    As Argo's `util/expand/expand.go` (`Expand`): a key that is also the prefix of another (`item` beside
    `item.key`, `steps.a.outputs.parameters` beside `steps.a.outputs.parameters.p`) gives way to the
    longer one. The values are kept as they are (the scope's strings stay strings).
    """
    prefixes = {key[:i] for key in scope for i, char in enumerate(key) if char == "."}
    env: dict[str, Any] = {}
    for key in sorted(scope):
        if key in prefixes:
            continue
        *parents, last = key.split(".")
        node = env
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = scope[key]
    return env


_TAG = re.compile(r"\{\{(.*?)\}\}", re.S)


def expand(text: str, scope: Mapping[str, Any], *, allow_unresolved: bool = False) -> str:
    """Replace each `{{=EXPR}}` tag of `text` with its value evaluated in `env_from_scope(scope)`.

    Printed as Argo prints it (`util/template/expression_template.go`): a string as it is, anything else as
    Go's `json.Marshal` writes it (`1`, `1.5`, `true`, `[1,2]`, `{"a":"b"}`). A tag ends at the first `}}`;
    plain `{{...}}` tags are left for the engine's substitution. Raises ExpressionError for a tag that does
    not evaluate or evaluates to nil; with `allow_unresolved`, such a tag is left as written, as Argo does
    while variables (`retries`, `workflow.status`, `steps.*`) are not known yet.
    """
    if "{{=" not in text:
        return text
    env = env_from_scope(scope)

    def replace(tag: re.Match[str]) -> str:
        if not tag.group(1).startswith("="):
            return tag.group(0)
        expression = tag.group(1)[1:]
        try:
            value = evaluate(expression, env)
            if value is None:
                raise ExpressionError("the value is nil", expression)
            return value if isinstance(value, str) else go_json(value)
        except FunctionError as exc:
            if allow_unresolved:
                return tag.group(0)
            raise ExpressionError(str(exc), expression) from None
        except ExpressionError:
            if allow_unresolved:
                return tag.group(0)
            raise

    return _TAG.sub(replace, text)


def evaluate_when(condition: str) -> bool:
    """Decide a step's or task's `when`, after `{{...}}` substitution, as Argo does with govaluate.

    A bare word is a string (`heads == heads`, `{{steps.flip-coin.outputs.result}} == heads` once
    substituted), numbers are floats (`5 > 3`), quotes make strings (`"a b" == 'a b'`); `&&`, `||`, `!`,
    `==`, `!=`, `<`, `<=`, `>`, `>=`, `=~`, `!~`, `+ - * / % **`, `in (a, b)`, `c ? a : b` and parentheses
    work; a word with a `-` is a subtraction (quote it), a dotted word an error, as in Argo. An empty
    condition is true (`workflow/controller/steps.go`, `shouldExecute`). Raises ExpressionError with Argo's
    wording: `Invalid 'when' expression ...` (with its hint to quote an invalid token), `Failed to evaluate
    'when' expression ...`, `Expected boolean evaluation for ...`. Unlike govaluate, a quoted date stays a
    string, and the bitwise operators are refused.
    """
    if condition == "":
        return True
    try:
        node = parse(condition, when=True)
    except ExpressionError as exc:
        hint = (
            ' (hint: try wrapping the affected expression in quotes ("))'
            if "Invalid token" in exc.problem
            else ""
        )
        raise ExpressionError(
            exc.problem + hint, condition, exc.position, what="Invalid 'when' expression"
        ) from None
    try:
        result = Evaluator(condition, {}, when=True).run(node)
    except ExpressionError as exc:
        what = "Failed to evaluate 'when' expression"
        raise ExpressionError(exc.problem, condition, exc.position, what=what) from None
    if not isinstance(result, bool):
        problem = f"Expected boolean evaluation for '{condition}'. Got {go_format(result)}"
        raise ExpressionError(problem, condition, what="")
    return result


@dataclasses.dataclass(frozen=True)
class TaskResult:
    """What `depends` knows of a DAG task: its node `phase` (`Succeeded`, `Failed`, `Error`, `Skipped`,
    `Omitted`; `Pending`/`Running` while not done), its loop children's phases (`withItems`, ...), whether
    it is `daemoned`, and its `continueOn` (`continue_on_failed`, `continue_on_error`), which widen a
    bare `A` to `A.Failed` / `A.Errored` too.
    """

    phase: str
    children_phases: Sequence[str] = ()
    daemoned: bool = False
    continue_on_failed: bool = False
    continue_on_error: bool = False


# `taskNameRegex` of workflow/common/ancestry.go: `A.Result` (group 1) or a bare task name `A` (group 2).
DEPENDS_NAME = re.compile(r"([a-zA-Z0-9][-a-zA-Z0-9]*?\.[A-Z][a-zA-Z]+)|([a-zA-Z0-9][-a-zA-Z0-9]*)")
TASK_RESULTS = (
    "Succeeded",
    "Failed",
    "Errored",
    "Skipped",
    "Omitted",
    "Daemoned",
    "AnySucceeded",
    "AllFailed",
)


def depends_tasks(expression: str) -> list[str]:
    """The task names a `depends` expression refers to, in order of first mention (`GetTaskDependencies`).

    Every word is a task name, as Argo reads it: `and`, `or` and a lowercase `A.succeeded`'s `succeeded` too,
    so an unknown name is worth reporting. Raises ExpressionError for a result that is not one of Argo's
    (`task result 'Done' for task 'A' is invalid`, `ValidateTaskResults`).
    """
    names: list[str] = []
    for match in DEPENDS_NAME.finditer(expression):
        name, _, result = (match.group(1) or match.group(2)).partition(".")
        if result and result not in TASK_RESULTS:
            problem = f"task result '{result}' for task '{name}' is invalid"
            raise ExpressionError(problem, expression, match.start(), what="depends")
        if name not in names:
            names.append(name)
    return names


def bare_name_logic(name: str, *, continue_on_error: bool = False, continue_on_failed: bool = False) -> str:
    """What a bare task name `A` means in `depends`: `(A.Succeeded || A.Skipped || A.Daemoned)`, plus
    `A.Errored` / `A.Failed` when A has `continueOn` error / failed (`expandDependency`, ancestry.go)."""
    results = ["Succeeded", "Skipped", "Daemoned"]
    if continue_on_error:
        results.append("Errored")
    if continue_on_failed:
        results.append("Failed")
    return "(" + " || ".join(f"{name}.{result}" for result in results) + ")"


def expand_bare_names(expression: str, logic_of: Callable[[str], str]) -> str:
    """Replace every bare task name of a `depends` expression by `logic_of(name)` (`bare_name_logic`)."""
    for match in reversed(list(DEPENDS_NAME.finditer(expression))):
        if match.group(2):
            expression = expression[: match.start()] + logic_of(match.group(2)) + expression[match.end() :]
    return expression


def evaluate_depends(expression: str, tasks: Mapping[str, TaskResult]) -> bool | None:
    """Decide a DAG task's `depends` (`A.Succeeded && (B.Failed || !C.Skipped)`, `A || B.AnySucceeded`).

    `tasks` holds the results of the tasks known so far, by name. A bare `A` means `(A.Succeeded ||
    A.Skipped || A.Daemoned)`, plus `A.Errored`/`A.Failed` with its continueOn; `dependencies: [A, B]` is
    `A && B`. `AnySucceeded`/`AllFailed` look at the loop children (AllFailed is false without any). Returns
    None while a referenced task is missing or not finished (Argo waits for all of them), else the verdict
    (`workflow/controller/dag.go`, `evaluateDependsLogic`; `workflow/common/ancestry.go`). Raises
    ExpressionError for an invalid result or an expression that does not evaluate to a bool.
    """
    names = depends_tasks(expression)
    if not all(name in tasks and _fulfilled(tasks[name]) for name in names):
        return None
    logic = expand_bare_names(
        expression,
        lambda name: bare_name_logic(
            name,
            continue_on_error=tasks[name].continue_on_error,
            continue_on_failed=tasks[name].continue_on_failed,
        ),
    )
    logic = logic.replace("-", "_")  # Argo's, so that task names become expr names
    env = {name.replace("-", "_"): _task_results(tasks[name]) for name in names}
    try:
        verdict = evaluate(logic, env)
    except ExpressionError as exc:
        raise ExpressionError(exc.problem, logic, exc.position, what="unable to evaluate depends") from None
    if not isinstance(verdict, bool):
        raise ExpressionError(
            f"unable to cast the result '{go_format(verdict)}' to bool", logic, what="depends"
        )
    return verdict


def _fulfilled(task: TaskResult) -> bool:
    """`NodeStatus.Fulfilled`: a final phase, or a daemon past Pending."""
    return task.phase in ("Succeeded", "Failed", "Error", "Skipped", "Omitted") or (
        task.daemoned and task.phase != "Pending"
    )


def _task_results(task: TaskResult) -> dict[str, bool]:
    children = list(task.children_phases)
    return {
        "Succeeded": task.phase == "Succeeded",
        "Failed": task.phase == "Failed",
        "Errored": task.phase == "Error",
        "Skipped": task.phase == "Skipped",
        "Omitted": task.phase == "Omitted",
        "Daemoned": task.daemoned and task.phase != "Pending",
        "AnySucceeded": "Succeeded" in children,
        "AllFailed": bool(children) and all(phase == "Failed" for phase in children),
    }
