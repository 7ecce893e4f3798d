"""Container and script steps in a local run, opt-in: canned outputs, or the command run as a local process.

A cluster runs a `container` or `script` template as a pod; `argoplug run` has no pods. So that workflows
mixing such steps with plugin steps can be run here, `argoplug run` offers, when asked:

- `--container-outputs FILE` (`CannedPods`): a phase, message and outputs per template name, the way one
  stubs a step in a test:

      templates:
        build-report:                  # the template's name
          phase: Succeeded             # default; or Failed / Error
          outputs:
            parameters: {path: /tmp/report.csv}
            result: "42"
          exitCode: 0                  # default: 0 when Succeeded, else 1

- `--local-containers` (`LocalProcesses`): the container's `command` + `args`, or the script's `command` with
  its `source` in a file as the last argument, run here as a process when the executable is on PATH
  (the image is ignored), with the template's `env` values and `workingDir`. As the emissary executor
  gives them (`workflow/executor/executor.go`): `outputs.result` is the process's stdout less one final
  newline, its last 256 KiB; `outputs.parameters[].valueFrom.path` are read from the files the process
  wrote (a relative path from the working folder), `default` when missing; a non-zero exit fails the
  node with `Error (exit code N)` and the exit code in `outputs.exitCode`.

`PodStandIns` combines them (a canned template wins) and says, before anything runs, which templates
neither covers (`problem`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from argoplug.agent.client import NodeUpdate
from argoplug.protocol import Outputs, Parameter
from argoplug.yaml_marks import yaml_problem

__all__ = ["POD_KINDS", "CannedPods", "LocalProcesses", "PodError", "PodStandIns"]

POD_KINDS = ("container", "script")
MAX_RESULT = 256 * 1024  # bytes of stdout kept as outputs.result (CaptureScriptResult, maxAnnotationSize)
_PHASES = ("Succeeded", "Failed", "Error")


class PodError(ValueError):
    """A `--container-outputs` file that cannot be read, naming the file and the field."""


class CannedPods:
    """The canned results of `--container-outputs FILE`, by template name (see the module docstring)."""

    def __init__(self, results: Mapping[str, NodeUpdate], origin: str) -> None:
        self.results = dict(results)
        self.origin = origin

    @classmethod
    def from_file(cls, path: Path) -> CannedPods:
        """Read FILE. Raises PodError naming the file and the field for anything but the documented form."""
        try:
            document = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise PodError(f"{path}: {yaml_problem(exc, path)}") from None
        if not isinstance(document, dict) or not isinstance(document.get("templates"), dict):
            raise PodError(f"{path}: expected a mapping with `templates: {{NAME: {{phase, outputs}}}}`")
        unknown = set(document) - {"templates"}
        if unknown:
            raise PodError(f"{path}: `{sorted(unknown)[0]}` is not a field (expected: templates)")
        results = {
            str(name): _canned(f"{path}: templates.{name}", entry)
            for name, entry in document["templates"].items()
        }
        return cls(results, str(path))


def _canned(where: str, entry: Any) -> NodeUpdate:
    if entry is None:
        entry = {}
    if not isinstance(entry, dict):
        raise PodError(f"{where}: expected a mapping (phase, message, outputs, exitCode)")
    unknown = set(entry) - {"phase", "message", "outputs", "exitCode"}
    if unknown:
        raise PodError(
            f"{where}.{sorted(unknown)[0]} is not a field "
            "(expected one of: exitCode, message, outputs, phase)"
        )
    phase = entry.get("phase", "Succeeded")
    if phase not in _PHASES:
        raise PodError(f"{where}.phase: expected one of {', '.join(_PHASES)}, got {phase!r}")
    outputs = entry.get("outputs") or {}
    if not isinstance(outputs, dict) or set(outputs) - {"parameters", "result"}:
        raise PodError(f"{where}.outputs: expected a mapping with `parameters` (name: value) and `result`")
    parameters = outputs.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise PodError(f"{where}.outputs.parameters: expected a mapping of name: value")
    exit_code = entry.get("exitCode", 0 if phase == "Succeeded" else 1)
    if not isinstance(exit_code, int) or isinstance(exit_code, bool):
        raise PodError(f"{where}.exitCode: expected an integer, got {exit_code!r}")
    result = outputs.get("result")
    message = str(entry.get("message") or ("" if phase == "Succeeded" else f"Error (exit code {exit_code})"))
    return NodeUpdate(
        phase,
        message,
        Outputs(
            parameters=[Parameter(name=str(k), value=_text(v)) for k, v in parameters.items()],
            result=None if result is None else _text(result),
            exitCode=str(exit_code),
        ),
    )


def _text(value: Any) -> str:
    """A YAML value as Argo holds a parameter: strings as they are, the rest as JSON (`true`, `3`)."""
    import json

    return value if isinstance(value, str) else json.dumps(value)


class LocalProcesses:
    """Run a container's command or a script's source as a local process (see the module docstring)."""

    def problem(self, template: Mapping[str, Any]) -> str | None:
        """Why the template cannot run here (no command, executable not on PATH), or None."""
        command = _command(template)
        if not command:
            kind = "script" if template.get("script") is not None else "container"
            image = (template.get(kind) or {}).get("image")
            return f"its {kind} has no `command`: the image's entrypoint ({image}) is not known here"
        if shutil.which(str(command[0])) is None:
            image = (template.get("container") or template.get("script") or {}).get("image")
            return f"`{command[0]}` (for the image {image}) is not on PATH here"
        return None

    async def run(self, template: Mapping[str, Any], node_name: str) -> NodeUpdate:
        """Run the template's process to its end; return the node's phase, message and outputs."""
        problem = self.problem(template)
        if problem is not None:
            return NodeUpdate("Error", f"cannot run template {template.get('name')!r} here: {problem}")
        spec = template.get("container") or template.get("script") or {}
        workdir = Path(tempfile.mkdtemp(prefix="argoplug-pod-"))
        try:
            command = [str(part) for part in _command(template)]
            if template.get("script") is not None:
                source = workdir / "script"
                source.write_text(str(spec.get("source") or ""))
                command.append(str(source))
            env = dict(os.environ)
            for variable in spec.get("env") or []:
                if "value" not in variable:
                    return NodeUpdate(
                        "Error",
                        f"template {template.get('name')!r}: env {variable.get('name')!r} has no `value` "
                        "(valueFrom is not read in a local run)",
                    )
                env[str(variable["name"])] = str(variable["value"])
            cwd = Path(str(spec.get("workingDir"))) if spec.get("workingDir") else workdir
            process = await asyncio.create_subprocess_exec(
                *command,
                cwd=cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                stdout, _ = await process.communicate()
            except asyncio.CancelledError:  # the deadline, a timeout, Ctrl-C: the pod is killed
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
                raise
            return _finished(template, process.returncode or 0, stdout, cwd)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _command(template: Mapping[str, Any]) -> list[Any]:
    spec = template.get("container") or template.get("script") or {}
    command = list(spec.get("command") or [])
    if template.get("container") is not None:
        command += list(spec.get("args") or [])
    return command


def _finished(template: Mapping[str, Any], code: int, stdout: bytes, cwd: Path) -> NodeUpdate:
    result = stdout.decode("utf-8", "replace")
    if result.endswith("\n"):  # "Trims off a single newline for user convenience"
        result = result[:-1]
    result = result[-MAX_RESULT:]
    parameters = []
    missing = []
    for param in (template.get("outputs") or {}).get("parameters") or []:
        source = (param.get("valueFrom") or {}).get("path")
        if source is None:
            continue
        path = cwd / str(source)
        try:
            value = path.read_text()
        except OSError:
            default = (param.get("valueFrom") or {}).get("default")
            if default is None:
                missing.append(str(source))
                continue
            value = str(default)
        parameters.append(Parameter(name=str(param.get("name")), value=value))
    outputs = Outputs(parameters=parameters, result=result, exitCode=str(code))
    if code != 0:
        return NodeUpdate("Failed", f"Error (exit code {code})", outputs)
    if missing:  # the emissary's wait container fails the node when an output file is missing
        return NodeUpdate("Error", f"open {missing[0]}: no such file or directory", outputs)
    return NodeUpdate("Succeeded", "", outputs)


class PodStandIns:
    """What runs container and script nodes in a local run: canned results first, then local processes."""

    def __init__(self, canned: CannedPods | None, local: LocalProcesses | None) -> None:
        self.canned = canned
        self.local = local

    def describe(self) -> str:
        """One line saying what stands in for pods in this run."""
        parts = []
        if self.canned is not None:
            parts.append(
                f"canned results from {self.canned.origin} for {', '.join(sorted(self.canned.results))}"
            )
        if self.local is not None:
            others = "the others" if parts else "all"
            parts.append(f"{others} run as local processes (--local-containers), the image ignored")
        return "Container and script steps: " + "; ".join(parts) + "; no pod is started"

    def problem(self, name: str, template: Mapping[str, Any]) -> str | None:
        """Why the container/script template `name` cannot run in this run, or None."""
        if self.canned is not None and name in self.canned.results:
            return None
        if self.local is None:
            return f"it is not in {self.canned.origin if self.canned else '--container-outputs'}"
        return self.local.problem(template)

    async def run(self, template: Mapping[str, Any], node_name: str) -> NodeUpdate:
        name = str(template.get("name") or "")
        if self.canned is not None and name in self.canned.results:
            return self.canned.results[name]
        if self.local is None:
            return NodeUpdate("Error", f"template {name!r} has no canned result")
        return await self.local.run(template, node_name)
