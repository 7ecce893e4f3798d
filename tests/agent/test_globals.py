"""Global variables everywhere Argo substitutes them (`common.SubstituteParams`: globals and locals first,
then inputs), input defaults included, and the resolved inputs recorded on every node.

The variables are those of Argo's registry (`util/variables/keys`: globals.go, runtime.go, nodectx.go):
`workflow.creationTimestamp.<c>` for each strftime character of `util/strftime` (`FormatChars`), and
`workflow.duration`, updated as the workflow runs (`setGlobalRuntimeParameters`).
"""

from __future__ import annotations

import datetime
import re

from argoplug.agent.nodes import NodePhase
from argoplug.agent.substitution import STRFTIME_CHARS, global_values

from .agent_test_plugins import echo
from .helpers import FakeSleep, run_engine, workflow_from
from .test_data_flow import by_name, endpoint

WORKFLOW = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: globals
  labels: {team: infra}
  annotations: {owner: ops}
spec:
  entrypoint: main
  serviceAccountName: runner
  priority: 3
  templates:
    - name: main
      steps:
        - - name: wait
            template: wait
        - - name: use
            template: use
            arguments:
              parameters: [{name: who, value: "{{workflow.name}}/{{workflow.labels.team}}"}]
        - - name: elsewhere
            template: container
    - name: wait
      inputs:
        parameters:
          - name: label
            default: >-
              {{workflow.name}} {{workflow.mainEntrypoint}} {{workflow.serviceAccountName}}
              {{workflow.annotations.owner}} {{workflow.priority}} {{node.name}}
              {{workflow.creationTimestamp.Y}}
      suspend: {duration: "10"}
      outputs:
        parameters:
          - name: said
            valueFrom: {supplied: {}, default: "{{inputs.parameters.label}}"}
    - name: use
      inputs:
        parameters:
          - {name: who}
          - {name: after, default: "{{workflow.duration}}"}
      plugin: {echo: {who: "{{inputs.parameters.who}}", after: "{{inputs.parameters.after}}"}}
    - name: container
      inputs:
        parameters: [{name: where, default: "{{workflow.namespace}}/{{node.name}}"}]
      container: {image: alpine, command: [echo, "{{inputs.parameters.where}}"]}
"""


def test_input_defaults_and_arguments_hold_globals_resolved(live_server, tmp_path) -> None:
    workflow = workflow_from(WORKFLOW, tmp_path=tmp_path)
    status = run_engine(workflow, [endpoint(live_server([echo]))], engine_sleep=FakeSleep())
    nodes = by_name(status)
    label = nodes["globals[0].wait"].inputs["label"]
    assert re.fullmatch(r"globals main runner ops 3 globals\[0\]\.wait \d{4}", label), label
    assert nodes["globals[0].wait"].outputs.parameters[0].value == label
    use = nodes["globals[1].use"]
    assert use.phase is NodePhase.SUCCEEDED
    assert use.inputs["who"] == "globals/infra"
    # The suspend waited 10 s (on the fake clock): the workflow's duration when `use` ran, as %f.
    assert re.fullmatch(r"\d+\.\d{6}", use.inputs["after"]) and float(use.inputs["after"]) >= 10.0


def test_a_node_that_cannot_run_here_records_its_resolved_inputs(live_server, tmp_path) -> None:
    workflow = workflow_from(WORKFLOW, tmp_path=tmp_path)
    status = run_engine(workflow, [endpoint(live_server([echo]))], engine_sleep=FakeSleep())
    node = by_name(status)["globals[2].elsewhere"]
    assert node.phase is NodePhase.ERROR and "cannot run container templates" in node.message
    assert node.inputs == {"where": "argo/globals[2].elsewhere"}


def test_creation_timestamp_has_every_strftime_character_argo_has(tmp_path) -> None:
    workflow = workflow_from(WORKFLOW, tmp_path=tmp_path)
    created = datetime.datetime(2026, 3, 7, 15, 4, 5, 123000, tzinfo=datetime.UTC)
    values = global_values(workflow, now=created.timestamp())
    expected = {
        "B": "March", "b": "Mar", "m": "03", "A": "Saturday", "a": "Sat", "d": "07", "H": "15", "I": "03",
        "M": "04", "S": "05", "Y": "2026", "y": "26", "p": "PM", "Z": "UTC", "z": "+0000", "L": ".123",
    }  # fmt: skip
    assert set(expected) == {*STRFTIME_CHARS, "L"}
    assert {c: values[f"workflow.creationTimestamp.{c}"] for c in expected} == expected
    assert values["workflow.creationTimestamp.s"] == str(int(created.timestamp()))
    assert values["workflow.creationTimestamp"] == "2026-03-07T15:04:05Z"
