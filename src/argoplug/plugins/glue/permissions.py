"""What the `glue-job` plugin needs from AWS IAM: the build hook behind `iam-policy.json`."""

from __future__ import annotations

from typing import Any

from argoplug.hookspecs import BuildContext, hookimpl
from argoplug.plugins.aws_permissions import scoped_statements

__all__ = ["ENTRY_POINT", "JOB_ACTIONS", "argoplug_iam_statements"]

ENTRY_POINT = "glue-job"
# Exactly the Glue calls of `handlers`, all checked on the job (Service Authorization Reference, "Actions
# defined by AWS Glue": job runs have no ARN of their own).
JOB_ACTIONS = ("glue:GetJob", "glue:GetJobRuns", "glue:GetJobRun", "glue:StartJobRun", "glue:BatchStopJobRun")


@hookimpl
def argoplug_iam_statements(context: BuildContext) -> list[dict[str, Any]]:
    """Return the IAM statements of the Glue plugin, on the jobs `settings.jobs` names (default every job).

    Settings as `aws_permissions.scoped_statements` reads them (`jobs`, `regions`, `accounts`,
    `partition`, `assume_roles`). Raises SettingsError naming the setting.
    """
    return scoped_statements(
        context,
        entry_point=ENTRY_POINT,
        resources_key="jobs",
        arn_of=lambda partition, region, account, name: f"arn:{partition}:glue:{region}:{account}:job/{name}",
        statements=[("GlueJobs", JOB_ACTIONS, lambda arn: arn)],
    )
