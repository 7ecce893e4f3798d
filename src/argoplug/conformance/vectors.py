"""The request bodies of `argoplug check`: the vectors real agents sent (`VECTORS`), the agent's own
body (`agent_request`) and one with unknown fields; `argoplug.conformance.driver` sends them.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

__all__ = [
    "VECTORS",
    "agent_request",
    "with_unknown_fields",
]

# The request vectors of tests/vectors (shared/argo/vectors), sent by real agents; a test pins them to the
# files. Shipped here because `argoplug check` runs where the repository's tests are not.
VECTORS: dict[str, dict[str, Any]] = json.loads("""{
 "docs-hello": {"workflow": {"metadata": {"name": "my-wf"}},
  "template": {"name": "my-tmpl", "inputs": {}, "outputs": {}, "plugin": {"hello": {}}}},
 "awf-aws": {
  "workflow": {"metadata": {"name": "sm-pipelines-r58tg", "namespace": "argo",
                            "uid": "27c01e7c-9d93-450f-a001-c64d649aac99"}},
  "template": {"name": "validate_pipeline", "inputs": {}, "outputs": {}, "metadata": {},
   "plugin": {"awf-aws-plugin": {"account_id": "100000000002", "action": "validate",
                                 "pipeline_name": "MyPipeline", "region_name": "us-west-2"}}}},
 "wasm": {
  "template": {
   "inputs": {"artifacts": [{"name": "message", "path": "/tmp/message",
                             "s3": {"key": "hello-n7nbj/hello-n7nbj-4176884829/hello-art.tgz"}}],
              "parameters": [{"name": "name", "value": "felix"}]},
   "metadata": {}, "name": "hello", "outputs": {"parameters": [{"name": "message", "value": ""}]},
   "plugin": {"hello": {"some": {"nested": {"args": 42, "bool": true, "str": "str"}}}}},
  "workflow": {"metadata": {"name": "hello-n7nbj"}}}
}""")


def agent_request(key: str, args: Any, template: str, rng: random.Random) -> dict[str, Any]:
    """A template.execute body as the agent builds it (`executePluginTemplate`), for plugin `key`."""
    uid = "-".join(f"{rng.getrandbits(size * 4):0{size}x}" for size in (8, 4, 4, 4, 12))
    return {
        "workflow": {"metadata": {"name": "argoplug-check", "namespace": "argo", "uid": uid}},
        "template": {
            "name": template,
            "inputs": {},
            "outputs": {},
            "metadata": {},
            "plugin": {key: copy.deepcopy(args)},
        },
    }


def with_unknown_fields(body: dict[str, Any]) -> dict[str, Any]:
    """`body` with fields a plugin may not know: Template fields Argo sends, and some no version has."""
    extended = copy.deepcopy(body)
    extended["argoplugCheckUnknown"] = {"nested": [1, "two", None]}
    extended["workflow"]["metadata"]["argoplugCheckUnknown"] = "tolerate me"
    template = extended["template"]
    template["inputs"]["parameters"] = [{"name": "p", "value": "1", "description": "an input parameter"}]
    template["metadata"] = {"labels": {"team": "ml"}, "annotations": {"example.com/owner": "check"}}
    template.update(
        timeout="1h",
        activeDeadlineSeconds="3600",
        retryStrategy={"limit": "2", "retryPolicy": "OnFailure"},
        archiveLocation={"archiveLogs": False},
        argoplugCheckUnknown={"x": 1},
    )
    return extended
