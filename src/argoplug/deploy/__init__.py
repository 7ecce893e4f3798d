"""`argoplug deploy` / `argoplug destroy`: a bundle's plugin instances applied to a cluster per namespace,
pruned and removed (`deployment`), and the commands (`command`). lightkube is imported on first use."""

from argoplug.deploy.deployment import (
    BUNDLE_LABEL,
    FIELD_MANAGER,
    INSTANCE_LABEL,
    Change,
    NamespacedClient,
    NamespaceOutcome,
    deploy,
    destroy,
    plan,
)

__all__ = [
    "BUNDLE_LABEL",
    "FIELD_MANAGER",
    "INSTANCE_LABEL",
    "Change",
    "NamespaceOutcome",
    "NamespacedClient",
    "deploy",
    "destroy",
    "plan",
]
