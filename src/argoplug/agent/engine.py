"""The local agent's engine: runs a Workflow's entrypoint and exit handler as Argo's controller would.

`Engine.run` runs the entrypoint, enforces `activeDeadlineSeconds`, runs `spec.onExit` with
`workflow.status` and `workflow.failures`, and decides the workflow's phase (`operate` in
`workflow/controller/operator.go`). Template calls are `templates.TemplateCalls`'; steps and DAGs are
`steps`' and `dags`'; plugin, HTTP and suspend nodes `leaves`'. `argoplug run` runs a workflow through it
once `checks.check` passed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from argoplug.agent.configmaps import ConfigMaps
from argoplug.agent.leaves import HttpRunner, PodRunner, TemplateExecutor
from argoplug.agent.nodes import Node, NodePhase, WorkflowStatus
from argoplug.agent.substitution import rfc3339
from argoplug.agent.templates import DEADLINE_MESSAGE, MAX_DEPTH, TemplateCalls, cancel, pod_name
from argoplug.agent.workflow import Workflow, exit_hook

__all__ = ["DEADLINE_MESSAGE", "MAX_DEPTH", "Engine", "HttpRunner", "TemplateExecutor"]

# The workflow's phase for its entrypoint's (`operate`: Skipped and Omitted entrypoints succeed).
_WORKFLOW_PHASE = {
    NodePhase.SUCCEEDED: NodePhase.SUCCEEDED,
    NodePhase.SKIPPED: NodePhase.SUCCEEDED,
    NodePhase.OMITTED: NodePhase.SUCCEEDED,
    NodePhase.FAILED: NodePhase.FAILED,
    NodePhase.ERROR: NodePhase.ERROR,
}


STOP_MESSAGE = "Stopped with strategy 'Stop'"  # operator.go, `argo stop` (ShutdownStrategyStop)


class Engine:
    """Run one workflow: `await Engine(workflow, client).run()` returns its final `WorkflowStatus`.

    `executor` runs plugin nodes (an `AgentClient`); `http` runs HTTP templates (an
    `http_template.HttpTemplateRunner`; without one an HTTP node ends as Error saying so). `on_change(node)`
    is called after every change of a node (for the live view). `sleep` is how the engine waits: the
    workflow's `activeDeadlineSeconds`, template `timeout`s, retry backoffs and suspend durations.
    `speed` (> 0, default 1) runs those clocks `speed` times faster: each wait is its duration divided by
    `speed` (requeue delays are the client's to shorten). When the deadline passes, the nodes still
    running fail with `Step exceeded its deadline`, then the exit handler runs. Cancelling `run` (Ctrl-C)
    fails the unfinished nodes with `Stopped` before the cancellation goes on. `configmaps` are the
    ConfigMaps `valueFrom.configMapKeyRef` inputs read. `pods` (`pods.PodStandIns`) runs container and
    script nodes; without it they end as Error. `check(workflow)` must have passed. Raises
    ValueError for a `speed` that is not a positive number.
    """

    def __init__(
        self,
        workflow: Workflow,
        executor: TemplateExecutor,
        *,
        on_change: Callable[[Node], None] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        http: HttpRunner | None = None,
        speed: float = 1.0,
        configmaps: ConfigMaps | None = None,
        pods: PodRunner | None = None,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be a positive number, got {speed!r}")
        self.workflow = workflow
        self.speed = float(speed)
        self.status = WorkflowStatus(workflow.name, workflow.namespace, workflow.uid, workflow.parameters)
        self._sleep = sleep
        self._calls = TemplateCalls(
            workflow, self.status, executor, http=http, sleep=sleep, clock=clock, speed=self.speed,
            on_change=on_change, configmaps=configmaps, pods=pods,
        )  # fmt: skip
        self._recorder = self._calls.recorder
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Stop the workflow as `argo stop` does (shutdown strategy `Stop`): the nodes still running fail
        with `Stopped with strategy 'Stop'`, the workflow fails with it, and the exit handler still runs
        (`workflow/controller/operator.go`). Call it on the loop running `run`; a second call does nothing.
        """
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        """Whether `stop` was called."""
        return self._stopping.is_set()

    async def run(self) -> WorkflowStatus:
        """Run the entrypoint with the workflow's arguments, then the exit handler; return the status."""
        self._recorder.start()
        arguments = {"parameters": [{"name": k, "value": v} for k, v in self.workflow.parameters.items()]}
        entry = {"name": "", "template": self.workflow.entrypoint, "arguments": arguments}
        root = asyncio.ensure_future(self._calls.execute(self.workflow.name, entry, self.workflow.local))
        deadline = self.workflow.active_deadline_seconds
        timer = asyncio.ensure_future(self._sleep(deadline / self.speed)) if deadline is not None else None
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait(
                [f for f in (root, timer, stopper) if f is not None], return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            await cancel(root, timer, stopper)
            self._recorder.stop("Stopped: argoplug run was interrupted")
            raise
        await cancel(timer, stopper)
        if not root.done():
            await cancel(root)
            self._recorder.fail_unfinished(STOP_MESSAGE if self.stopping else DEADLINE_MESSAGE)
        node = self.status.root
        phase = _WORKFLOW_PHASE.get(node.phase, NodePhase.ERROR) if node is not None else NodePhase.ERROR
        message = node.message if node is not None else "the entrypoint did not start"
        if self.stopping and phase.failed_or_error:
            message = STOP_MESSAGE  # markWorkflowPhase: the shutdown strategy names the workflow's failure
        exit_node = None
        hook = exit_hook(self.workflow.spec)
        if hook is not None:
            self._calls.globals["workflow.status"] = str(phase)
            self._calls.globals["workflow.failures"] = json.dumps(self._failures(), ensure_ascii=False)
            # An exit hook's own arguments replace the workflow's (`WorkflowSpec.GetExitHook`, `WithArgs`).
            handler = {**hook, "name": "", "arguments": hook.get("arguments") or arguments}
            try:
                exit_node = await self._calls.execute(
                    f"{self.workflow.name}.onExit", handler, self.workflow.local, hooked=True
                )
            except asyncio.CancelledError:
                self._recorder.stop("Stopped: argoplug run was interrupted")
                raise
        if phase == NodePhase.SUCCEEDED and exit_node is not None and exit_node.phase.failed_or_error:
            phase, message = exit_node.phase, exit_node.message
        self._recorder.end(phase, "" if phase == NodePhase.SUCCEEDED else message)
        return self.status

    def _failures(self) -> str:
        """`workflow.failures`: the Failed and Error nodes as Argo lists them (`failedNodeStatus`)."""
        failures: list[Mapping[str, Any]] = []
        for node in self.status.nodes.values():
            if not node.phase.failed_or_error:
                continue
            template = (node.template_ref or {}).get("template") or node.template_name
            failures.append(
                {
                    "displayName": node.display_name,
                    "message": node.message,
                    "templateName": template,
                    "phase": str(node.phase),
                    "podName": pod_name(self.workflow.name, node.name, str(template)),
                    "finishedAt": rfc3339(node.finished_at) if node.finished_at is not None else None,
                }
            )
        return json.dumps(failures, separators=(",", ":"), ensure_ascii=False)
