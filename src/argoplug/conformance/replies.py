"""The reply rules of `argoplug check`: the shape of a reply with a node (phase, requeue, output
parameters) by docs/contract.md §2.4–§2.6, as the agent reads it; `argoplug.conformance.driver` calls
`judge_replies`.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable, Sequence
from typing import Any

from argoplug.conformance.contract import C_OUTPUTS, C_PHASE, C_REQUEUE, C_TERMINAL_REQUEUE, Clause
from argoplug.conformance.rules import Exchange, Status, Verdict, _clip, _json_kind
from argoplug.protocol import parse_duration

__all__ = [
    "AGENT_PHASES",
    "REPLY_RULES",
    "judge_replies",
    "reply_findings",
]

AGENT_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Error")
_TERMINAL = frozenset({"Succeeded", "Failed", "Error"})


# One reply's breaches of the reply rules: (rule, PASS/WARN/FAIL, what) per rule that applies.
_Finding = tuple[str, Status, str]


def reply_findings(exchange: Exchange) -> list[_Finding]:
    """Judge a 200 reply with a node by the reply rules (docs/contract.md §2.4–§2.6); [] without a node."""
    node = exchange.node()
    if node is None:
        return []
    value, _ = exchange.decoded()
    found: list[_Finding] = []
    phase = node.get("phase")
    message = node.get("message")
    if not isinstance(phase, str) or (message is not None and not isinstance(message, str)):
        found.append(
            ("reply-phase", "FAIL", "phase and message must be strings: the agent cannot decode the reply")
        )
        phase = ""
    elif phase == "":
        found.append(("reply-phase", "FAIL", "no phase: nothing is recorded, the node hangs unless requeued"))
    elif phase not in AGENT_PHASES:
        found.append(
            ("reply-phase", "FAIL", f"phase {phase!r}: any other string leaves the workflow hanging")
        )
    requeue = value.get("requeue")
    seconds: float | None = None
    if requeue is not None:
        if not isinstance(requeue, str):
            found.append(
                (
                    "reply-requeue",
                    "FAIL",
                    f"requeue {json.dumps(requeue)} is a JSON {_json_kind(requeue)}, not a Go duration "
                    'string such as "30s": the agent cannot decode it and the node fails',
                )
            )
        else:
            try:
                seconds = parse_duration(requeue)
            except ValueError:
                found.append(
                    (
                        "reply-requeue",
                        "FAIL",
                        f'requeue "{requeue}" is not a Go duration: the node fails (time: invalid duration)',
                    )
                )
    requeued = seconds is not None and seconds > 0  # `taskWorker` requeues only after a positive delay
    if phase in ("Pending", "Running") and not requeued:
        why = "no requeue" if requeue is None else f"requeue {json.dumps(requeue)}"
        found.append(
            ("reply-requeue", "FAIL", f"{phase} with {why}: the agent never calls again and the node hangs")
        )
    if phase in _TERMINAL and requeued:
        if phase == "Succeeded":
            found.append(
                ("terminal-requeue", "WARN", f'Succeeded with requeue "{requeue}": ignored; drop it')
            )
        else:
            found.append(
                (
                    "terminal-requeue",
                    "FAIL",
                    f'{phase} with requeue "{requeue}": the agent calls again after a terminal phase',
                )
            )
    found.extend(("output-parameters", status, what) for status, what in _output_findings(node))
    return found


def _output_findings(node: dict[str, Any]) -> Iterable[tuple[Status, str]]:
    outputs = node.get("outputs")
    if outputs is None:
        return
    if not isinstance(outputs, dict):
        yield "FAIL", f"outputs is a JSON {_json_kind(outputs)}: the agent cannot decode the reply"
        return
    parameters = outputs.get("parameters")
    if parameters is None:
        return
    if not isinstance(parameters, list) or not all(isinstance(p, dict) for p in parameters):
        yield "FAIL", "outputs.parameters must be a list of {name, value}: the agent cannot decode the reply"
        return
    for parameter in parameters:
        name = parameter.get("name")
        if not isinstance(name, str) or not name:
            yield "FAIL", f"an output parameter without a name: {_clip(json.dumps(parameter), 80)}"
            continue
        value = parameter.get("value")
        if isinstance(value, str):
            continue
        if isinstance(value, (bool, int, float)):
            yield (
                "WARN",
                f"output {name!r} = {json.dumps(value)} is a JSON {_json_kind(value)}: Argo keeps its text, "
                "but values are strings; send it as one",
            )
        else:
            shown = "no value" if "value" not in parameter else f"value {_clip(json.dumps(value), 40)}"
            yield "FAIL", f'output {name!r} has {shown}: Argo silently stores ""; encode it as a JSON string'


REPLY_RULES: dict[str, Clause] = {
    "reply-phase": C_PHASE,
    "reply-requeue": C_REQUEUE,
    "terminal-requeue": C_TERMINAL_REQUEUE,
    "output-parameters": C_OUTPUTS,
}


def judge_replies(exchanges: Sequence[Exchange]) -> list[Verdict]:
    """Judge every reply with a node by each reply rule: FAIL on any breach, WARN, else PASS with a tally.

    With no reply that carries a node, each rule is a WARN: there was nothing to judge.
    """
    with_node = [e for e in exchanges if e.node() is not None]
    if not with_node:
        saw = "no reply with a node came back for its own key, so the reply's shape could not be judged"
        return [Verdict(rule, "WARN", saw, contract) for rule, contract in REPLY_RULES.items()]
    findings: dict[str, list[tuple[Status, str]]] = collections.defaultdict(list)
    for exchange in with_node:
        for rule, status, what in reply_findings(exchange):
            findings[rule].append((status, f"{exchange.label}: {what}"))
    phases = collections.Counter(str((e.node() or {}).get("phase") or "(no phase)") for e in with_node)
    tally = f"{len(with_node)} replies with a node (" + ", ".join(f"{p}×{n}" for p, n in phases.items()) + ")"
    verdicts = []
    for rule, contract in REPLY_RULES.items():
        breaches = findings.get(rule, [])
        worst: Status = "PASS"
        if any(status == "FAIL" for status, _ in breaches):
            worst = "FAIL"
        elif breaches:
            worst = "WARN"
        shown = [what for status, what in breaches if status == worst]
        saw = tally + ("" if not shown else ": " + "; ".join(dict.fromkeys(shown)))
        verdicts.append(Verdict(rule, worst, saw, contract))
    return verdicts
