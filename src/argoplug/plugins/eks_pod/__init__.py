"""The `eks-pod` plugin: a pod on a remote EKS cluster, reached as Airflow's `EksPodOperator` reaches it
(IAM role → DescribeCluster → EKS token → the cluster's access entry and RBAC).

`handlers` runs the pod (find-or-create named from the task's key, poll with requeue, outputs, delete on
cancel); `args` holds the block; `build` the hooks that give `argoplug build` the IAM policy and the files
to apply on the remote cluster (its Role, RoleBinding and access entry). The entry point `eks-pod` names
this package. boto3 and lightkube are imported on the first call, never at import.
"""

from __future__ import annotations

from argoplug.plugins.eks_pod.args import EksPodArgs, pod_name
from argoplug.plugins.eks_pod.build import argoplug_iam_statements, argoplug_remote_cluster_files
from argoplug.plugins.eks_pod.handlers import (
    KEY,
    OUTPUT_NAMES,
    TASK_LABEL,
    eks_pod_plugin,
    plugins,
    reset_clusters,
    use_tracker,
)

__all__ = [
    "KEY",
    "OUTPUT_NAMES",
    "TASK_LABEL",
    "EksPodArgs",
    "argoplug_iam_statements",
    "argoplug_remote_cluster_files",
    "eks_pod_plugin",
    "plugins",
    "pod_name",
    "reset_clusters",
    "use_tracker",
]
