"""Wire types of the executor-plugin protocol, and Go durations.

The shapes of `POST /api/v1/template.execute` as Argo's agent sends and reads them
(`pkg/plugins/executor/swagger.yml`, `ExecuteTemplateArgs` / `ExecuteTemplateReply`). The server and the
local agent use them; plugin authors see `argoplug.plugin.Task` and `Result` instead.
"""

from __future__ import annotations

import enum
import math
import re
from typing import Any

import msgspec

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TOKEN_FILE",
    "EXECUTE_PATH",
    "ExecuteTemplateArgs",
    "ExecuteTemplateReply",
    "Inputs",
    "NodeResult",
    "ObjectMeta",
    "Outputs",
    "Parameter",
    "Phase",
    "Template",
    "TemplateMetadata",
    "WorkflowRef",
    "encode_parameter_value",
    "format_duration",
    "parse_duration",
]


EXECUTE_PATH = "/api/v1/template.execute"
# Where the agent's init container puts the sidecar's token (docs/contract.md §4.1).
DEFAULT_TOKEN_FILE = "/var/run/argo/token"
# argoplug's default sidecar port: not a published plugin's (docs/contract.md §5.7) nor 80/443/8080/8081/8443.
DEFAULT_PORT = 7733


class Phase(enum.StrEnum):
    """The five node phases a plugin may send (any other string leaves the workflow hanging)."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ERROR = "Error"

    @property
    def terminal(self) -> bool:
        """True for Succeeded, Failed and Error: the agent calls no more and a requeue is ignored."""
        return self in (Phase.SUCCEEDED, Phase.FAILED, Phase.ERROR)


class Parameter(msgspec.Struct, omit_defaults=True):
    """An Argo parameter (`io.argoproj.workflow.v1alpha1.Parameter`): values are always strings."""

    name: str
    value: str | None = None
    default: str | None = None
    description: str | None = None
    enum: list[str] | None = None
    globalName: str | None = None
    valueFrom: dict[str, Any] | None = None


class Inputs(msgspec.Struct, omit_defaults=True):
    """A template's inputs: parameters and artifacts (artifacts are kept as Argo sent them)."""

    parameters: list[Parameter] = []
    artifacts: list[dict[str, Any]] = []


class Outputs(msgspec.Struct, omit_defaults=True):
    """A node's outputs. In a reply they replace the node's outputs wholesale."""

    parameters: list[Parameter] = []
    artifacts: list[dict[str, Any]] = []
    result: str | None = None
    exitCode: str | None = None


class TemplateMetadata(msgspec.Struct, omit_defaults=True):
    """The template's pod metadata (labels and annotations), as the agent forwards it."""

    annotations: dict[str, str] = {}
    labels: dict[str, str] = {}


class Template(msgspec.Struct, omit_defaults=True):
    """The parts of Argo's `Template` a plugin reads; unknown fields are tolerated and dropped.

    `plugin` maps the plugin key (exactly one, by Argo's validation) to the plugin's arguments.
    """

    name: str = ""
    inputs: Inputs = msgspec.field(default_factory=Inputs)
    outputs: Outputs = msgspec.field(default_factory=Outputs)
    metadata: TemplateMetadata = msgspec.field(default_factory=TemplateMetadata)
    plugin: dict[str, Any] = {}
    timeout: str | None = None


class ObjectMeta(msgspec.Struct, omit_defaults=True):
    """What the agent sends of the workflow's metadata: name, namespace and uid only."""

    name: str = ""
    namespace: str = ""
    uid: str = ""


class WorkflowRef(msgspec.Struct, omit_defaults=True):
    """The `workflow` object of a request."""

    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)


class ExecuteTemplateArgs(msgspec.Struct, omit_defaults=True):
    """The request body of `template.execute`. There is no node ID and no attempt number."""

    template: Template
    workflow: WorkflowRef = msgspec.field(default_factory=WorkflowRef)


class NodeResult(msgspec.Struct, omit_defaults=True):
    """The `node` of a reply: phase, message and the node's complete outputs."""

    phase: Phase
    message: str = ""
    outputs: Outputs | None = None


class ExecuteTemplateReply(msgspec.Struct, omit_defaults=True):
    """The reply body. With no node it encodes to `{}`: "not my template", the agent tries the next plugin.

    `requeue` is a Go duration string ("30s"); Argo fails the node on a number.
    """

    node: NodeResult | None = None
    requeue: str | None = None


def encode_parameter_value(value: Any) -> str:
    """Encode an output parameter value as the string Argo stores.

    Strings pass unchanged; None becomes ""; booleans, numbers, mappings and sequences become their JSON
    text (`true`, `3`, `{"a": 1}`). Argo turns a JSON object, array or null value into "" silently, so a
    structure must travel as a JSON string.
    """
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, enum.Enum):
        return encode_parameter_value(value.value)
    return msgspec.json.encode(value).decode()


# Go's time.ParseDuration units, in seconds (`time/format.go`).
_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_COMPONENT = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Parse a Go duration string ("30s", "2m", "1h30m", "1.5s", "300ms") into seconds.

    Follows Go's `time.ParseDuration`: an optional sign, then one or more number+unit pairs; a bare
    "0" is zero. Raises ValueError naming the text when it is not a Go duration (e.g. "30", "2 min").
    """
    if not isinstance(text, str):
        raise ValueError(f"invalid duration {text!r}: expected a Go duration string such as '30s'")
    body = text
    sign = 1.0
    if body[:1] in "+-" and body:
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f"invalid duration {text!r}: expected a Go duration string such as '30s'")
    total = 0.0
    pos = 0
    while pos < len(body):
        match = _COMPONENT.match(body, pos)
        if match is None:
            raise ValueError(
                f"invalid duration {text!r}: expected number+unit pairs (units ns, us, ms, s, m, h), "
                "e.g. '30s' or '1h30m'"
            )
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return sign * total


def format_duration(seconds: float) -> str:
    """Format seconds as a compact Go duration string Argo parses: 30 → "30s", 120 → "2m", 5400 → "1h30m".

    Whole seconds use h/m/s parts with zero parts left out; a fraction below one second uses "ms"
    (0.25 → "250ms"); other fractions are rounded up to whole milliseconds ("1.5s"), so any value above
    zero is at least "1ms" (Argo reads "0s" as no requeue). Zero is "0s".
    Raises ValueError for a negative or non-finite value.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {seconds!r}: expected a finite number of seconds >= 0")
    millis = math.ceil(round(seconds * 1000, 6))
    if millis == 0:
        return "1ms" if seconds > 0 else "0s"
    whole, fraction = divmod(millis, 1000)
    if fraction:
        if not whole:
            return f"{fraction}ms"
        return f"{whole}.{fraction:03d}".rstrip("0") + "s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if secs:
        parts.append(f"{secs}s")
    return "".join(parts)
