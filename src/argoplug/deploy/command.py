"""The bodies of `argoplug deploy` and `argoplug destroy`: the cluster from a kubeconfig, progress and a
summary per namespace (rich), the exit status (0; 1 when a namespace failed; 2 for a bad bundle)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from argoplug.build.bundle import BundleError, load_bundle
from argoplug.deploy.deployment import NamespaceOutcome, deploy, destroy

__all__ = ["run_deploy"]


def run_deploy(
    bundle_file: Path,
    *,
    destroying: bool = False,
    dry_run: bool = False,
    prune: bool = False,
    kubeconfig: Path | None = None,
    context: str | None = None,
    console: Console | None = None,
) -> int:
    """Deploy (or destroy) the bundle of `bundle_file` on the cluster of `kubeconfig`/`context` (default:
    $KUBECONFIG, else ~/.kube/config, else the pod's ServiceAccount); return the exit status."""
    from argoplug.kube.access import ClusterAccess, KubeSetupError

    out = console or Console(highlight=False, emoji=False)
    verb = "argoplug destroy" if destroying else "argoplug deploy"
    try:
        bundle = load_bundle(bundle_file)
    except BundleError as exc:
        out.print(f"{verb}: {escape(str(exc))}")
        return 2
    try:
        access = (
            ClusterAccess.from_kubeconfig(kubeconfig, context=context)
            if kubeconfig or context
            else ClusterAccess.from_environment()
        )
    except KubeSetupError as exc:
        out.print(f"{verb}: {escape(str(exc))}")
        return 2
    word = " (dry run: nothing is written)" if dry_run else ""
    out.print(f"{verb} {escape(bundle.name)} to {escape(access.source or access.server)}{word}")
    with access.client(field_manager="argoplug-deploy") as client:
        try:
            if destroying:
                outcomes = destroy(bundle, client, dry_run=dry_run, progress=lambda t: out.print(escape(t)))
            else:
                outcomes = deploy(
                    bundle, client, dry_run=dry_run, prune=prune, progress=lambda t: out.print(escape(t))
                )
        except BundleError as exc:
            out.print(f"{verb}: {escape(str(exc))}")
            return 2
    out.print(_summary(outcomes, dry_run))
    return 1 if any(outcome.error for outcome in outcomes) else 0


def _summary(outcomes: list[NamespaceOutcome], dry_run: bool) -> Any:
    table = Table(title="would be" if dry_run else None)
    for column in ("namespace", "created", "changed", "unchanged", "deleted", "result"):
        table.add_column(column)
    for outcome in outcomes:
        counts = {action: 0 for action in ("created", "changed", "unchanged", "deleted")}
        for change in outcome.changes:
            counts[change.action] += 1
        result = f"[red]FAILED, rolled back: {escape(outcome.error)}[/]" if outcome.error else "[green]ok[/]"
        table.add_row(outcome.namespace, *(str(counts[a]) for a in counts), result)
    return table
