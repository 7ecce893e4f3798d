"""The `argoplug run` command: a Workflow run locally, its plugins run as real sidecar subprocesses.

`argoplug.cli.commands` registers `run`. It loads and checks the files (`workflow`, `checks.check`), starts a
sidecar for each `--plugin` as Argo's agent pod has them (`agent.plugins`), optionally with an AWS sandbox,
runs the workflow through the engine and the agent client, and prints the report. Heavy imports happen inside
`run`, so that importing the CLI stays fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from argoplug.agent.client import FailedAgentPod, PluginEndpoint
    from argoplug.agent.cluster import RunCluster
    from argoplug.agent.configmaps import ConfigMaps
    from argoplug.agent.engine import Engine
    from argoplug.agent.http_template import SecretStore
    from argoplug.agent.nodes import WorkflowStatus
    from argoplug.agent.pods import PodStandIns
    from argoplug.agent.workflow import Workflow

__all__ = ["run"]

EXIT_SUCCEEDED, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# The controller's refusal of spec.executorPlugins when they are not enabled (workflow/controller/agent.go).
WORKFLOW_LEVEL_PLUGINS_DISABLED = (
    "workflow-level executor plugins are disabled in the controller. To enable them, set the environment "
    "variable ARGO_WORKFLOW_LEVEL_EXECUTOR_PLUGINS=true"
)


def run(
    files: Annotated[
        list[Path],
        typer.Argument(metavar="FILE", help="Workflow and WorkflowTemplate YAML (multi-document allowed)."),
    ],
    parameter: Annotated[
        list[str] | None,
        typer.Option("--parameter", "-p", metavar="NAME=VALUE", help="Set a workflow parameter, as argo -p."),
    ] = None,
    aws_sandbox: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Run the AWS sandbox (moto) FILE describes; the plugin processes started use it.",
        ),
    ] = None,
    kube_sandbox: Annotated[
        str | None,
        typer.Option(
            "--kube-sandbox",
            metavar="[FILE]",
            help=(
                "Run against argoplug's Kubernetes API sandbox, with the objects FILE holds created first "
                "(namespaces, ConfigMaps, Secrets, ServiceAccounts, RBAC): the run is a Workflow object "
                "there, configMapKeyRef inputs and secretKeyRef headers are read from it, and the sidecars "
                "reach it through KUBECONFIG. FILE is optional."
            ),
        ),
    ] = None,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="Run against the cluster of this kubeconfig (as --kube-sandbox does against the sandbox).",
        ),
    ] = None,
    context: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="The kubeconfig context (default: its current one)."),
    ] = None,
    kube_service_account: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help=(
                "The ServiceAccount (in the workflow's namespace) whose token the sidecars get, as Argo "
                "mounts <plugin>-executor-plugin's; default: the run's own credentials."
            ),
        ),
    ] = None,
    aws_endpoint: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help=(
                "Give the plugin processes started AWS_ENDPOINT_URL=URL, an AWS-compatible endpoint. Not "
                "with --aws-sandbox."
            ),
        ),
    ] = None,
    plugin: Annotated[
        list[str] | None,
        typer.Option(
            "--plugin",
            "-P",
            metavar="PLUGIN",
            help=(
                "A plugin sidecar (repeatable): an installed plugin name or module:attr (all of them served "
                "by one argoplug serve), an argoplug bundle file, an Argo plugin folder (plugin.yaml + "
                "server.*) or built ConfigMap YAML (its command started here on its port), or the URL of "
                "a server already running. Default: every installed plugin."
            ),
        ),
    ] = None,
    plugin_token_file: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help=(
                "Token file of the plugins started from a folder or ConfigMap (a fresh token written there "
                "for the run, unless the file exists) and of --plugin URLs (read). Default: "
                "/var/run/argo/token, where Argo mounts it."
            ),
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="Seed of the order plugins are asked in (random, as in Argo); printed by each run.",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="Plugin calls run at once, as ARGO_AGENT_TASK_WORKERS (its value, else 16).",
        ),
    ] = None,
    speed: Annotated[
        float,
        typer.Option(
            min=0.001,
            metavar="N",
            help=(
                "Run N times faster: requeue delays, retry backoffs, suspend durations, timeouts and "
                "deadlines are divided by N (said in the output)."
            ),
        ),
    ] = 1.0,
    secrets_file: Annotated[
        Path | None,
        typer.Option(
            "--secrets",
            metavar="FILE",
            help="Kubernetes Secret YAML whose values HTTP templates' secretKeyRef headers read.",
        ),
    ] = None,
    submit_from: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="KIND/NAME",
            help="Run the WorkflowTemplate or CronWorkflow NAME of the files, as argo submit --from does "
            "(workflowtemplate/NAME, clusterworkflowtemplate/NAME, cronwf/NAME).",
        ),
    ] = None,
    configmaps_file: Annotated[
        Path | None,
        typer.Option(
            "--configmaps",
            metavar="FILE",
            help=(
                "Kubernetes ConfigMap YAML that inputs.parameters[].valueFrom.configMapKeyRef read (each "
                "labelled workflows.argoproj.io/configmap-type: Parameter, as Argo requires)."
            ),
        ),
    ] = None,
    container_outputs: Annotated[
        Path | None,
        typer.Option(
            "--container-outputs",
            metavar="FILE",
            help=(
                "Canned results of container and script steps, by template name "
                "(templates: {NAME: {phase, message, outputs: {parameters: {k: v}, result}, exitCode}})."
            ),
        ),
    ] = None,
    local_containers: Annotated[
        bool,
        typer.Option(
            "--local-containers",
            help=(
                "Run container and script steps as local processes: the container's command + args, the "
                "script's source, when the executable is on PATH here (the image is ignored)."
            ),
        ),
    ] = False,
    workflow_level_plugins: Annotated[
        bool,
        typer.Option(
            "--workflow-level-plugins/--no-workflow-level-plugins",
            help=(
                "Run the workflow's own spec.executorPlugins instead of the --plugin sidecars, as Argo v4.1 "
                "with ARGO_WORKFLOW_LEVEL_EXECUTOR_PLUGINS=true; off, its plugin and HTTP nodes end Error "
                "with the controller's message."
            ),
        ),
    ] = True,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FORMAT",
            help="Print the final workflow status as json or yaml (as Argo holds it) on stdout; the "
            "progress and tree go to stderr.",
        ),
    ] = None,
) -> None:
    """Run a Workflow locally, as Argo's agent would, against plugin sidecars started for it.

    Exit code: 0 when the workflow Succeeded, 1 when it Failed or Errored, 2 for bad input or usage.
    """
    from rich.console import Console

    from argoplug.agent.output import FORMATS

    # soft_wrap: report lines are never folded at the terminal's (or CI's default 80) width. With -o the
    # progress and the tree go to stderr: stdout holds the status document alone, for pipes.
    # emoji=False: node names and plugin messages are shown as sent (`each(0:a:1)` is no emoji).
    console = Console(stderr=output is not None, highlight=False, soft_wrap=True, emoji=False)
    errors = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
    if output is not None and output not in FORMATS:
        errors.print(f"argoplug run: -o {output}: expected one of {', '.join(FORMATS)}", markup=False)
        raise typer.Exit(EXIT_USAGE)
    if aws_sandbox is not None and aws_endpoint:
        errors.print(
            "argoplug run: --aws-endpoint and --aws-sandbox cannot be used together: the sandbox gives the "
            "sidecar its own endpoint (AWS_ENDPOINT_URL); drop one of them",
            markup=False,
        )
        raise typer.Exit(EXIT_USAGE)
    # SIGTERM (timeout, kill, a CI cancelling) and SIGHUP stop the run as Ctrl-C does, so that the
    # sidecars started are stopped and their token files removed on the way out.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    try:
        options = _Options(
            plugins=plugin or (),
            token_file=plugin_token_file,
            seed=seed,
            workers=workers,
            speed=speed,
            secrets=secrets_file,
            output=output,
            workflow_level_plugins=workflow_level_plugins,
            configmaps=configmaps_file,
            submit_from=submit_from,
            container_outputs=container_outputs,
            local_containers=local_containers,
            kube_sandbox=kube_sandbox,
            kubeconfig=kubeconfig,
            context=context,
            kube_service_account=kube_service_account or "",
        )
        _run(files, parameter or (), aws_sandbox, aws_endpoint, options, console, errors)
    except KeyboardInterrupt:
        errors.print("argoplug run: interrupted", markup=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _run(
    files: Sequence[Path],
    parameter: Sequence[str],
    aws_sandbox: Path | None,
    aws_endpoint: str | None,
    options: _Options,
    console: Console,
    errors: Console,
) -> None:
    from argoplug.agent.checks import check
    from argoplug.agent.client import FailedAgentPod
    from argoplug.agent.configmaps import ConfigMapError, ConfigMaps
    from argoplug.agent.http_template import SecretError, SecretStore
    from argoplug.agent.plugins import PluginError, PluginSidecars
    from argoplug.agent.pods import CannedPods, LocalProcesses, PodError, PodStandIns
    from argoplug.agent.workflow import WorkflowError, load_documents, parse_parameters, resolve_workflow

    pods = None
    try:
        canned = CannedPods.from_file(options.container_outputs) if options.container_outputs else None
        if canned is not None or options.local_containers:
            pods = PodStandIns(canned, LocalProcesses() if options.local_containers else None)
    except PodError as exc:
        errors.print(f"argoplug run: --container-outputs {exc}", markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    try:
        overrides = parse_parameters(parameter)
        documents = load_documents(files)
        workflow = resolve_workflow(documents, parameters=overrides, submit_from=options.submit_from)
        warnings = check(workflow, pod_problem=pods.problem if pods is not None else _no_pods)
    except WorkflowError as exc:
        errors.print(f"argoplug run: {exc}", markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    for document in documents:
        for warning in document.warnings:
            errors.print(f"argoplug run: warning: {document.origin}: {warning}", markup=False)
    for warning in warnings:
        errors.print(f"argoplug run: warning: {workflow.origin}: {warning}", markup=False)
    if pods is not None:
        console.print(pods.describe(), markup=False)
    secrets = None
    configmaps = None
    usage = _cluster_usage_problem(options)
    if usage:
        errors.print(f"argoplug run: {usage}", markup=False)
        raise typer.Exit(EXIT_USAGE)
    try:
        if options.secrets is not None:
            secrets = SecretStore.from_file(options.secrets)
        if options.configmaps is not None:
            configmaps = ConfigMaps.from_file(options.configmaps, namespace=workflow.namespace)
    except (SecretError, ConfigMapError) as exc:
        errors.print(f"argoplug run: {exc}", markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    # Merged over this process's environment for each process started; None removes a variable.
    env: dict[str, str | None] = {}
    if aws_endpoint:
        env["AWS_ENDPOINT_URL"] = aws_endpoint
    with contextlib.ExitStack() as stack:
        if aws_sandbox is not None:
            # The sandbox's endpoint and credentials must win over a user's AWS_PROFILE, session token or
            # web identity: every AWS_* variable of ours is removed, then the sandbox's set.
            env.update({name: None for name in os.environ if name.startswith("AWS_")})
            env.update(_enter_sandbox(stack, aws_sandbox, console, errors, options.speed))
        workdir = _run_folder()
        if options.uses_cluster:
            cluster = _enter_cluster(stack, options, console, errors)
            try:
                workflow = cluster.submit(workflow)
                env.update(cluster.sidecar_env(workdir, workflow.namespace))
            except Exception as exc:
                errors.print(f"argoplug run: {exc}", markup=False)
                shutil.rmtree(workdir, ignore_errors=True)
                raise typer.Exit(EXIT_USAGE) from None
            secrets = cluster.secrets(workflow.namespace)
            configmaps = cluster.configmaps()
        own_plugins = list(workflow.spec.get("executorPlugins") or [])
        failed_agent = None
        if own_plugins and not options.workflow_level_plugins:
            # workflow/controller/agent.go, getExecutorPlugins: the agent pod is not created.
            failed_agent = FailedAgentPod(WORKFLOW_LEVEL_PLUGINS_DISABLED)
            console.print(
                f"{workflow.origin} has spec.executorPlugins and --no-workflow-level-plugins says the "
                "controller does not enable them: its plugin and HTTP nodes end Error",
                markup=False,
            )
        sidecars = PluginSidecars(
            options.plugins,
            workdir=workdir,
            env=env,
            token_file=options.token_file,
            say=lambda line: console.print(line, markup=False),
            workflow_plugins=own_plugins if options.workflow_level_plugins else (),
            workflow_origin=Path(workflow.origin),
        )
        try:
            if failed_agent is None:  # no agent pod: no sidecars
                stack.enter_context(sidecars)
        except PluginError as exc:
            errors.print(f"argoplug run: {exc}", markup=False)
            shutil.rmtree(workdir, ignore_errors=True)  # the error holds what the sidecar said
            raise typer.Exit(EXIT_USAGE) from None
        status = _run_workflow(
            workflow, sidecars.endpoints, options, secrets, console, failed_agent, configmaps, pods
        )
    if status is not None and status.phase == "Succeeded":
        shutil.rmtree(workdir, ignore_errors=True)
        raise typer.Exit(EXIT_SUCCEEDED)
    console.print("\nInterrupted." if status is None else "", markup=False)
    for name, log in sidecars.logs:
        console.print(f"The log of {name}: {log}", markup=False)
    raise typer.Exit(EXIT_INTERRUPTED if status is None else EXIT_FAILED)


def _no_pods(name: str, template: object) -> str:
    """`check`'s judgement of a container or script step when the run has no stand-in for pods."""
    return (
        "argoplug run has no pods: give --local-containers (run its command here) or --container-outputs "
        "FILE (its canned results)"
    )


RUN_FOLDERS_KEPT = 7 * 24 * 3600  # seconds the folder of a run that did not succeed (its logs) is kept


def _run_folder() -> Path:
    """A new folder for a run's sidecar logs, under one folder per user (`$TMPDIR/argoplug-runs-<uid>`,
    mode 0700); the folders of earlier runs older than RUN_FOLDERS_KEPT are removed first. A folder of
    that name that is not this user's own directory is not used (a plain temporary folder instead)."""
    import stat
    import time

    base = Path(tempfile.gettempdir()) / f"argoplug-runs-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        base.mkdir(mode=0o700)
    found = os.lstat(base)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
        return Path(tempfile.mkdtemp(prefix="argoplug-run-"))
    horizon = time.time() - RUN_FOLDERS_KEPT
    for old in base.glob("run-*"):
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < horizon:
                shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix="run-", dir=base))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@dataclasses.dataclass(frozen=True)
class _Options:
    """How `argoplug run` runs: the `--plugin` values, token file, seed, workers, speed, secrets, -o,
    whether the workflow's own executor plugins are enabled, and the ConfigMaps file."""

    plugins: Sequence[str]
    token_file: Path | None
    seed: int | None
    workers: int | None
    speed: float = 1.0
    secrets: Path | None = None
    output: str | None = None
    workflow_level_plugins: bool = True
    configmaps: Path | None = None
    submit_from: str | None = None
    container_outputs: Path | None = None
    local_containers: bool = False
    kube_sandbox: str | None = None
    kubeconfig: Path | None = None
    context: str | None = None
    kube_service_account: str = ""

    @property
    def uses_cluster(self) -> bool:
        """Whether the run has a Kubernetes cluster (the sandbox or a kubeconfig's)."""
        return self.kube_sandbox is not None or self.kubeconfig is not None or self.context is not None


def _enter_sandbox(
    stack: contextlib.ExitStack, path: Path, console: Console, errors: Console, speed: float = 1.0
) -> dict[str, str]:
    """Start the AWS sandbox described by `path` for the run (its `seconds` divided by `speed`), and a
    Kubernetes sandbox for each EKS cluster it declares (`argoplug.kube.sandbox.remote_eks`); return the
    environment the sidecar needs."""
    try:
        from argoplug.aws.sandbox import AwsSandbox, SandboxError
    except ImportError as exc:
        errors.print(
            f"argoplug run: --aws-sandbox needs the sandbox extra ({exc}): pip install 'argoplug[sandbox]'",
            markup=False,
        )
        raise typer.Exit(EXIT_USAGE) from None
    try:
        sandbox = stack.enter_context(AwsSandbox.from_file(path, speed=speed))
    except SandboxError as exc:
        errors.print(f"argoplug run: {path}: {exc}", markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    console.print(sandbox.describe(), markup=False)
    if sandbox.eks_clusters:
        from argoplug.kube.sandbox import SandboxError as KubeSandboxError
        from argoplug.kube.sandbox.remote_eks import RemoteEksClusters

        try:
            clusters = stack.enter_context(RemoteEksClusters(sandbox))
        except (SandboxError, KubeSandboxError) as exc:
            errors.print(f"argoplug run: {path}: {exc}", markup=False)
            raise typer.Exit(EXIT_USAGE) from None
        for line in clusters.describe():
            console.print(line, markup=False)
    return dict(sandbox.env)


def _cluster_usage_problem(options: _Options) -> str:
    """What is wrong with the Kubernetes options together, or ""."""
    if options.kube_sandbox is not None and (options.kubeconfig is not None or options.context is not None):
        return "--kube-sandbox runs against the sandbox: drop --kubeconfig/--context, or drop --kube-sandbox"
    if options.uses_cluster and (options.secrets is not None or options.configmaps is not None):
        return (
            "--secrets/--configmaps are for runs without a cluster: with --kube-sandbox or --kubeconfig the "
            "Secrets and ConfigMaps are the cluster's (put them in the sandbox FILE)"
        )
    if options.kube_service_account and not options.uses_cluster:
        return "--kube-service-account needs --kube-sandbox or --kubeconfig"
    return ""


def _enter_cluster(
    stack: contextlib.ExitStack, options: _Options, console: Console, errors: Console
) -> RunCluster:
    """Start the Kubernetes sandbox, or reach the kubeconfig's cluster, for the run; the RunCluster is
    closed (the Workflow deleted, what it owned collected) with `stack`."""
    try:
        from argoplug.agent.cluster import ClusterError, RunCluster, cluster_access, sandbox_access
    except ImportError as exc:
        errors.print(
            f"argoplug run: a Kubernetes run needs lightkube ({exc}): pip install 'argoplug[kube]'",
            markup=False,
        )
        raise typer.Exit(EXIT_USAGE) from None
    say = lambda line: console.print(line, markup=False)  # noqa: E731
    try:
        if options.kube_sandbox is not None:
            from argoplug.kube.sandbox import KubeSandbox, SandboxError

            try:
                sandbox = (
                    KubeSandbox.from_file(options.kube_sandbox) if options.kube_sandbox else KubeSandbox()
                )
                stack.enter_context(sandbox)
            except SandboxError as exc:
                raise ClusterError(f"--kube-sandbox {options.kube_sandbox}: {exc}") from None
            cluster = RunCluster(
                access=sandbox_access(sandbox),
                sandbox=sandbox,
                service_account=options.kube_service_account,
                say=say,
            )
        else:
            cluster = RunCluster(
                access=cluster_access(options.kubeconfig, options.context),
                service_account=options.kube_service_account,
                say=say,
            )
    except ClusterError as exc:
        errors.print(f"argoplug run: {exc}", markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    stack.enter_context(cluster)
    console.print(cluster.describe(), markup=False)
    return cluster


def _run_workflow(
    workflow: Workflow,
    endpoints: Sequence[PluginEndpoint],
    options: _Options,
    secrets: SecretStore | None,
    console: Console,
    failed_agent: FailedAgentPod | None = None,
    configmaps: ConfigMaps | None = None,
    pods: PodStandIns | None = None,
) -> WorkflowStatus | None:
    """Run `workflow` against the sidecars, showing progress; print the report. None when interrupted.

    The plugins are asked in an order drawn from `options.seed` (a random seed when None), printed so
    that `--seed` repeats it. With `options.speed` N, the client's requeue and backoff waits and the
    engine's clocks are divided by N. With `options.output`, the status document goes to stdout. With
    `failed_agent`, no agent pod: it ends every plugin and HTTP node.
    """
    import asyncio
    import random

    from argoplug.agent.client import AgentClient
    from argoplug.agent.engine import Engine
    from argoplug.agent.http_template import HttpTemplateRunner
    from argoplug.agent.output import render
    from argoplug.agent.report import Progress, render_report

    progress = Progress(console)
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(1_000_000)
    speed = options.speed

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds / speed)

    async def main(engine_slot: list[Engine]) -> WorkflowStatus:
        async with (
            AgentClient(endpoints, seed=seed, workers=options.workers, sleep=sleep) as client,
            HttpTemplateRunner(secrets, slots=client.slots) as http,  # one pool, as the agent's workers
        ):
            order = ", ".join(endpoint.name or endpoint.url for endpoint in client.order)
            if failed_agent is None:
                console.print(
                    f"Each plugin task is offered to: {order}, in this order (seed {seed}: --seed {seed} "
                    f"repeats it); {client.workers} task workers",
                    markup=False,
                )
            if speed != 1.0:
                console.print(
                    f"Speed ×{speed:g}: requeue delays, retry backoffs, suspend durations, timeouts and "
                    f"deadlines are divided by {speed:g}; the durations shown are as they ran",
                    markup=False,
                )
            executor, runner = (failed_agent, failed_agent) if failed_agent is not None else (client, http)
            engine = Engine(
                workflow,
                executor,
                on_change=progress.on_change,
                http=runner,
                speed=speed,
                configmaps=configmaps,
                pods=pods,
            )
            engine_slot.append(engine)
            loop = asyncio.get_running_loop()

            def stop_on_interrupt() -> None:
                # The first Ctrl-C stops the workflow as `argo stop` does, its exit handler still run; the
                # second one (Python's own handler again) interrupts at once.
                loop.remove_signal_handler(signal.SIGINT)
                engine.stop()
                console.print(
                    "Stopping as argo stop does: the running nodes fail, the exit handler runs "
                    "(Ctrl-C again to interrupt at once)",
                    markup=False,
                )

            loop.add_signal_handler(signal.SIGINT, stop_on_interrupt)
            try:
                with progress.showing(engine.status):
                    return await engine.run()
            finally:
                loop.remove_signal_handler(signal.SIGINT)

    slot: list[Engine] = []
    try:
        status = asyncio.run(main(slot))
    except KeyboardInterrupt:
        if slot:
            console.print(render_report(slot[0].status))
        return None
    console.print(render_report(status))
    if options.output is not None:
        typer.echo(render(status, options.output))  # type: ignore[arg-type]
    return status
