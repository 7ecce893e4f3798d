"""The sidecar's memory once it talks to AWS: `argoplug serve --plugin sagemaker-pipelines` against moto.

Run: `python bench/footprint_aws.py` (needs the `sandbox` extra). Prints VmRSS idle, after the first AWS
call (boto3 imported, one SageMaker client) and after 40 executions. `argoplug build`'s default resources
(src/argoplug/build/bundle.py) come from these figures.
"""

from __future__ import annotations

import time
from pathlib import Path

from argoplug.aws.sandbox import AwsSandbox, SandboxPipeline
from argoplug.sidecar import Sidecar
from argoplug.testing import make_request

PIPELINE = {"pipeline": "MyPipeline", "region": "us-west-2"}


def rss_mib(pid: int) -> float:
    """VmRSS of process `pid`, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def main() -> None:
    pipelines = [SandboxPipeline(name="MyPipeline")]
    sandbox = AwsSandbox(account="100000000002", region="us-west-2", pipelines=pipelines)
    with sandbox, Sidecar(["sagemaker-pipelines"], env=sandbox.env) as sidecar:
        pid = sidecar.process.pid
        time.sleep(1.0)
        idle = rss_mib(pid)
        reply = sidecar.post(make_request({"sagemaker-pipelines": {**PIPELINE, "action": "validate"}}))
        assert reply.json()["node"]["phase"] == "Succeeded", reply.text
        first = rss_mib(pid)
        for i in range(40):
            sidecar.post(make_request({"sagemaker-pipelines": PIPELINE}, workflow=f"footprint-{i}"))
        after = rss_mib(pid)
    print(f"idle {idle:.1f} MiB; after the first AWS call {first:.1f} MiB; after 40 more {after:.1f} MiB")


if __name__ == "__main__":
    main()
