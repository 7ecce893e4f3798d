"""The sections of the executor-plugin contract (`docs/contract.md`) that `argoplug check`'s rules apply.

Each rule's verdict carries a `Clause`: the section's number, its anchor in docs/contract.md and the
rule's words. `RULE_CLAUSES` maps every rule `argoplug check` can print to its clause; `tests/
test_contract_doc.py` checks that each section and anchor exists in docs/contract.md and names the rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

__all__ = [
    "CONTRACT_DOC",
    "C_AGAIN",
    "C_ANSWER_TIME",
    "C_BAD",
    "C_CONCURRENCY",
    "C_FOREIGN",
    "C_FOREIGN_TOKEN",
    "C_OUTPUTS",
    "C_OWN",
    "C_PHASE",
    "C_REQUEUE",
    "C_START",
    "C_TERMINAL_REQUEUE",
    "C_TOKEN_MISSING",
    "C_TOKEN_USER",
    "C_TOKEN_WRONG",
    "C_UNKNOWN",
    "C_VECTOR",
    "RULE_CLAUSES",
    "Clause",
    "rule_clause",
]

CONTRACT_DOC = "docs/contract.md"
"""Where the contract is, relative to the root of argoplug's repository."""


@dataclasses.dataclass(frozen=True)
class Clause:
    """A rule of the contract: its section in docs/contract.md (`section` "3.1", `anchor` the heading's
    link target there) and the rule in a few `words`. `str()` gives "§3.1: words"."""

    section: str
    anchor: str
    words: str

    @property
    def link(self) -> str:
        """The section's address: `docs/contract.md#<anchor>`, relative to the repository's root."""
        return f"{CONTRACT_DOC}#{self.anchor}"

    def __str__(self) -> str:
        return f"§{self.section}: {self.words}"


C_BAD = Clause(
    "2.1",
    "2-1-request",
    "the agent calls only POST /api/v1/template.execute: any answer to other requests is harmless, "
    "and the server goes on answering",
)
C_VECTOR = Clause(
    "2.1",
    "2-1-request",
    "requests real agents sent are answered 200, unknown fields tolerated; never a 500 (§3.3)",
)
C_UNKNOWN = Clause(
    "2.1", "2-1-request", "`template` is a full Argo Template: fields the plugin does not read are tolerated"
)
C_CONCURRENCY = Clause(
    "2.3",
    "2-3-concurrency-and-timeout",
    "up to 16 calls (ARGO_AGENT_TASK_WORKERS) run at once, each with a 30 s timeout",
)
C_OWN = Clause("2.4", "2-4-reply", "a template of its own key, with the agent's token, gets 200 with a node")
C_PHASE = Clause(
    "2.4",
    "2-4-reply",
    "send only Pending, Running, Succeeded, Failed or Error; any other string hangs the workflow",
)
C_REQUEUE = Clause(
    "2.5",
    "2-5-requeue",
    'requeue is a Go duration string ("30s"), a number fails the node; Pending/Running without requeue is '
    "never called again",
)
C_TERMINAL_REQUEUE = Clause(
    "2.5",
    "2-5-requeue",
    "a terminal phase never carries a requeue (Failed/Error with one is called again)",
)
C_OUTPUTS = Clause(
    "2.6",
    "2-6-outputs",
    "output parameter values are strings (JSON text for structures); objects, arrays and null silently "
    'become ""',
)
C_FOREIGN = Clause(
    "3.1",
    "3-1-other-plugins-templates",
    "a template whose key is not ours gets 200 {} (or null), fast, never an error status",
)
C_ANSWER_TIME = Clause(
    "3.5",
    "3-5-answer-within-30-s",
    "answer well inside 30 s; long work is answered Running + requeue and polled",
)
C_AGAIN = Clause(
    "3.6",
    "3-6-idempotent-handlers",
    "handlers are idempotent: after a requeue or a restart the same request comes again",
)
C_START = Clause(
    "3.7", "3-7-listen-within-15-s", "a plugin sidecar must be listening within about 15 s of start"
)
C_TOKEN_MISSING = Clause(
    "4.2",
    "4-2-checking-the-token",
    "a call of its own key without `Authorization: Bearer <token>` gets 403",
)
C_TOKEN_WRONG = Clause(
    "4.2",
    "4-2-checking-the-token",
    "a call of its own key whose token differs from the token file gets 403",
)
C_FOREIGN_TOKEN = Clause(
    "4.3",
    "4-3-token-only-for-own-templates",
    "check the token only for templates this server handles: a 403 stops the agent's search",
)
C_TOKEN_USER = Clause(
    "4.4",
    "4-4-who-can-read-the-token",
    "the sidecar's user reads /var/run/argo/token, which Argo's agent writes as uid 8737, gid 0, "
    "mode 0440 (Argo issue #13015)",
)

RULE_CLAUSES: Mapping[str, Clause] = {
    "token-user": C_TOKEN_USER,
    "slow-start": C_START,
    "foreign-key": C_FOREIGN,
    "foreign-key-token": C_FOREIGN_TOKEN,
    "token-missing": C_TOKEN_MISSING,
    "token-wrong": C_TOKEN_WRONG,
    "own-key": C_OWN,
    "same-request-again": C_AGAIN,
    "vector": C_VECTOR,
    "unknown-fields": C_UNKNOWN,
    "concurrency": C_CONCURRENCY,
    "reply-phase": C_PHASE,
    "reply-requeue": C_REQUEUE,
    "terminal-requeue": C_TERMINAL_REQUEUE,
    "output-parameters": C_OUTPUTS,
    "answer-time": C_ANSWER_TIME,
    "bad-requests": C_BAD,
}
"""Every rule `argoplug check` can print, by id (`vector` for each `vector:<name>`), and its clause."""


def rule_clause(rule: str) -> Clause:
    """The clause of the rule with id `rule` (`vector:<name>` is `vector`); KeyError for an unknown id."""
    return RULE_CLAUSES[rule.split(":", 1)[0]]
