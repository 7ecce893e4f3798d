"""`retryStrategy`: whether a failed attempt is tried again, and after how long, as Argo's controller decides.

`decide` is `processNodeRetries` (`workflow/controller/operator.go`): limit, retryPolicy (default OnFailure,
Always with an expression), backoff (duration, factor, cap, maxDuration) and `expression`; `is_transient`
is `util/errors.IsTransientErr` for OnTransientError; `parse_duration_string` is `ParseStringToDuration`;
the wait is worded by `humanize.duration` (`Backoff for 2 seconds`). The engine's retry loop calls
`decide` after each attempt.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from argoplug.agent.humanize import duration
from argoplug.agent.nodes import Node, NodePhase
from argoplug.agent.substitution import SetupError
from argoplug.protocol import parse_duration

__all__ = [
    "POLICIES",
    "Decision",
    "attempt_values",
    "decide",
    "is_transient",
    "parse_duration_string",
    "retry_strategy",
]

POLICIES = ("Always", "OnFailure", "OnError", "OnTransientError")
TRANSIENT_PATTERN_ENV = "TRANSIENT_ERROR_PATTERN"
# The messages `IsTransientErr` takes for transient (`isTransientNetworkErr`, `isTransientEtcdErr`, ...).
_TRANSIENT_MARKERS = (
    "etcdserver: leader changed",
    "etcdserver: request timed out",
    "etcdserver: too many requests",
    "Connection closed by foreign host",
    "net/http: TLS handshake timeout",
    "i/o timeout",
    "connection timed out",
    "connection reset by peer",
    "http2: client connection lost",
    "connect: connection refused",
    "invalid connection",
    "upper: no more rows in",
)


def retry_strategy(template: Mapping[str, Any], spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The retryStrategy of `template`, else the workflow's `spec.retryStrategy`, else None."""
    strategy = template.get("retryStrategy")
    if strategy is None:
        strategy = spec.get("retryStrategy")
    return strategy if isinstance(strategy, Mapping) else None


@dataclasses.dataclass(frozen=True)
class Decision:
    """What to do after an attempt: `finish` the Retry node with `phase` and `message`, `wait` seconds of
    workflow time (backoff, with `message` on the Retry node meanwhile), or neither: start the next attempt.
    """

    finish: bool = False
    phase: NodePhase | None = None
    message: str = ""
    wait: float = 0.0


def decide(
    strategy: Mapping[str, Any],
    attempts: Sequence[Node],
    *,
    elapsed: Callable[[float], float],
    waited: bool,
    evaluate: Callable[[str, Mapping[str, str]], bool],
) -> Decision:
    """Decide what follows the last of `attempts` (`processNodeRetries`), in Argo's order of checks.

    `elapsed(t)` gives the workflow time in seconds since the `time.time()` instant `t`; `waited` says the
    backoff before the next attempt was already waited; `evaluate(expression, scope)` evaluates
    `retryStrategy.expression`. Raises SetupError for a strategy Argo cannot use (a bad duration, limit
    or policy), which ends the Retry node as Error.
    """
    last = attempts[-1]
    if not last.phase.failed_or_error:
        return Decision(finish=True, phase=last.phase, message=last.message)
    limit = _limit(strategy.get("limit"))
    backoff = strategy.get("backoff")
    if isinstance(backoff, Mapping):
        max_duration = None
        if backoff.get("maxDuration"):
            max_duration = parse_duration_string(str(backoff["maxDuration"]))
            if elapsed(attempts[0].started_at or 0.0) > max_duration:
                return Decision(finish=True, phase=last.phase, message="Max duration limit exceeded")
        if not backoff.get("duration"):
            raise SetupError("no base duration specified for retryStrategy")
        wait = parse_duration_string(str(backoff["duration"]))
        factor = _int(backoff.get("factor"), "retryStrategy.backoff.factor")
        if factor is not None and factor > 0:
            wait = wait * math.pow(factor, len(attempts) - 1)
        if backoff.get("cap"):
            wait = min(wait, parse_duration_string(str(backoff["cap"])))
        since_last = elapsed(last.finished_at or 0.0)
        if max_duration is not None:
            since_first = elapsed(attempts[0].started_at or 0.0)
            if since_first - since_last + wait > max_duration:
                return Decision(
                    finish=True, phase=last.phase, message="Backoff would exceed max duration limit"
                )
        if not waited and since_last < wait and limit is not None and len(attempts) <= limit:
            return Decision(wait=wait - since_last, message=f"Backoff for {duration(wait)}")
    policy = str(strategy.get("retryPolicy") or ("Always" if strategy.get("expression") else "OnFailure"))
    if policy not in POLICIES:
        raise SetupError(f"{policy} is not a valid RetryPolicy")
    on_failed = policy in ("Always", "OnFailure")
    on_error = policy in ("Always", "OnError")
    if policy == "OnTransientError":
        on_failed = on_error = is_transient(last.message)
    if (last.phase == NodePhase.FAILED and not on_failed) or (last.phase == NodePhase.ERROR and not on_error):
        return Decision(finish=True, phase=last.phase, message=last.message)
    if limit is not None and len(attempts) > limit:
        return Decision(finish=True, phase=last.phase, message="No more retries left")
    expression = strategy.get("expression")
    if expression and not evaluate(str(expression), _retry_scope(attempts)):
        return Decision(finish=True, phase=last.phase, message="retryStrategy.expression evaluated to false")
    return Decision()


def _retry_scope(attempts: Sequence[Node]) -> dict[str, str]:
    """The variables of `retryStrategy.expression` (`buildRetryStrategyLocalScope`)."""
    last = attempts[-1]
    duration = (last.finished_at or 0.0) - (last.started_at or 0.0)
    exit_code = last.outputs.exitCode if last.outputs is not None and last.outputs.exitCode else "-1"
    return {
        "retries": str(len(attempts) - 1),
        "lastRetry.exitCode": exit_code,
        "lastRetry.status": str(last.phase),
        "lastRetry.duration": _go_seconds(duration),
        "lastRetry.message": last.message,
    }


def attempt_values(attempts: Sequence[Node]) -> dict[str, str]:
    """The local variables of the next attempt: `retries` and `lastRetry.*` (`executeTemplate`)."""
    values = {
        "retries": str(len(attempts)),
        "lastRetry.exitCode": "0",
        "lastRetry.duration": "0",
        "lastRetry.status": "",
        "lastRetry.message": "",
    }
    if attempts:
        last = attempts[-1]
        if last.outputs is not None and last.outputs.exitCode:
            values["lastRetry.exitCode"] = last.outputs.exitCode
        values["lastRetry.status"] = str(last.phase)
        values["lastRetry.duration"] = _go_seconds((last.finished_at or 0.0) - (last.started_at or 0.0))
        values["lastRetry.message"] = last.message
    return values


def _go_seconds(seconds: float) -> str:
    """Seconds as Go's `fmt.Sprint(d.Seconds())` prints them: `2`, `1.5`."""
    seconds = max(seconds, 0.0)
    return str(int(seconds)) if seconds == int(seconds) else repr(round(seconds, 9))


def _limit(value: Any) -> int | None:
    return _int(value, "retryStrategy.limit")


def _int(value: Any, field: str) -> int | None:
    """An IntOrString field as `intstr.Int32` reads it; None when unset."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise SetupError(f"{field}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if re.fullmatch(r"[+-]?\d+", text) is None:
        raise SetupError(f'{field}: strconv.Atoi: parsing "{value}": invalid syntax')
    return int(text)


def parse_duration_string(text: str) -> float:
    """Seconds from a backoff or suspend duration: bare integers are seconds, else a Go duration.

    As `wfv1.ParseStringToDuration`; raises SetupError (`unable to parse X as a duration`).
    """
    stripped = text.strip()
    if re.fullmatch(r"[+-]?\d+", stripped):
        return float(int(stripped))
    try:
        return parse_duration(stripped)
    except ValueError as exc:
        raise SetupError(f"unable to parse {text} as a duration: {exc}") from None


def is_transient(message: str) -> bool:
    """True when Argo takes a node's error message for transient (`IsTransientErr` on it).

    Its network and etcd markers, or the `TRANSIENT_ERROR_PATTERN` regular expression of the environment.
    """
    if any(marker in message for marker in _TRANSIENT_MARKERS):
        return True
    pattern = os.environ.get(TRANSIENT_PATTERN_ENV, "")
    if not pattern:
        return False
    try:
        return re.search(pattern, message) is not None
    except re.error:
        return False
