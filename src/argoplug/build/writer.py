"""`argoplug build` from a bundle file: load the plugins, gather the build hooks, render and write every file.

The CLI calls `build_bundle(bundle_file, out_dir, warn=..., wheels=..., say=...)`, which returns the paths
written and hands `warn` what the bundle allows that is risky. Every text is rendered, every target checked
and every wheel built (`argoplug.build.wheels`) before anything is written, so a bad bundle, an unknown
plugin, a failing hook, a wheel pip cannot build or an output folder that cannot take the files leaves
`out_dir` as it was.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from argoplug.build import argo
from argoplug.build.bundle import Bundle, BundleError, bundle_warnings, instance_bundles, load_bundle
from argoplug.build.iam import OIDC_PLACEHOLDER, permissions_policy, policy_text, trust_policy
from argoplug.build.image import WHEELS_DIR, Requirements, dockerfile_text, requirements, wheels_readme
from argoplug.build.manifests import (
    agent_role_objects,
    checked_env,
    checked_rules,
    checked_volume_mounts,
    checked_volumes,
    container,
    executor_plugin,
    kustomization,
    plugin_role_objects,
    pod_spec_patch,
    service_account_objects,
)
from argoplug.build.remote import REMOTE_DIR, RemoteFile, checked_remote_files, readme_section
from argoplug.build.wheels import build_wheels
from argoplug.hooks import HookError, contributions, implementations, plugin_manager
from argoplug.hookspecs import BuildContext
from argoplug.registry import LoadedPlugins, PluginLoadError, load
from argoplug.token_access import AGENT_UID, container_identity, security_context_problem

__all__ = ["OPTIONAL_FILES", "Rendered", "build_bundle", "render_bundle", "write_files"]

# Files a build writes only for some bundles; a later build that does not write one removes it, so the
# folder never holds a stale policy or role. Every file under `remote/` (REMOTE_DIR) is optional too: the
# plugins' settings name them.
OPTIONAL_FILES = ("plugin-role.yaml", "iam-policy.json", "iam-trust-policy.json", "agent-pod-spec-patch.yaml")

Rendered = dict[str, str]
# What `write_files` writes: relative path → a text, or a file to copy there (a wheel).
Contents = Mapping[str, str | Path]

_log = logging.getLogger("argoplug.build")


def build_bundle(
    bundle_file: Path,
    out_dir: Path,
    *,
    warn: Callable[[str], None] | None = None,
    wheels: bool = False,
    say: Callable[[str], None] | None = None,
) -> list[Path]:
    """Build the install files of the bundle file `bundle_file` into `out_dir`; return the paths written.

    Writes `plugin.yaml`, `<name>-executor-plugin-configmap.yaml`, `service-account.yaml`,
    `agent-role.yaml`, `kustomization.yaml`, `Dockerfile`, `wheels/README.md`, `README.md`, and when the
    plugins call for them `plugin-role.yaml`, `iam-policy.json`, `iam-trust-policy.json`,
    `agent-pod-spec-patch.yaml` and the files for other clusters under `remote/` (see `render_bundle`, and
    `write_files` for how). With `wheels`, first builds the wheels the Dockerfile installs, argoplug's,
    the plugin packages' and their dependencies' (`wheels.build_wheels`: `pip wheel`, from where each was
    installed and the configured index), and writes them into `wheels/` too, listed after the texts;
    `say` is told what is being built, then what was (logged as info of logger `argoplug.build` when
    None). Then calls `warn` with each of `bundle_warnings(bundle)` (what the bundle allows that is risky,
    one sentence each), or logs them as warnings of logger `argoplug.build` when `warn` is None. Raises
    BundleError, with nothing written, for a bad bundle (naming the field), an unknown plugin (listing
    those installed), a build hook that raises or returns something wrong (naming the plugin package), an
    output folder that cannot take the files (naming the path), or WheelBuildError for a wheel pip cannot
    build (naming the distribution and ending with pip's last lines).
    """
    bundle = load_bundle(bundle_file)
    if bundle.namespace_selector:
        raise BundleError(
            "namespaceSelector: argoplug build reaches no cluster to find the namespaces that carry "
            "those labels; give `namespaces` to build, or run argoplug deploy"
        )
    out_dir = Path(out_dir)
    # A bundle of `instances` is one build per instance, in `<namespace>/<instance>/`; all are rendered
    # (and so checked) before anything is written.
    rendered = [
        (out_dir / ns / name, *render_instance(bundle, ns, name, own)) for ns, name, own in _units(bundle)
    ]
    written: list[Path] = []
    for folder, files, reqs in rendered:
        written.extend(_write(files, reqs, folder, wheels=wheels, say=say))
    for warning in bundle_warnings(bundle):
        if warn is None:
            _log.warning("%s", warning)
        else:
            warn(warning)
    return written


def _units(bundle: Bundle) -> list[tuple[str, str, Bundle]]:
    if not bundle.instances:
        return [("", "", bundle)]
    return instance_bundles(bundle)


def render_instance(bundle: Bundle, namespace: str, name: str, own: Bundle) -> tuple[Rendered, Requirements]:
    """Render `own`, the bundle of one instance of `bundle` (`instance_bundles`); a BundleError names the
    instance: `instances[1] (namespace team-b, instance secrets): ...`."""
    if not namespace:
        return _render(own)
    index = next(i for i, (ns, n, _) in enumerate(instance_bundles(bundle)) if (ns, n) == (namespace, name))
    try:
        return _render(own)
    except BundleError as exc:
        plugin = own.plugins[0]
        where = f"instances[{index}] (namespace {namespace}, instance {name}, plugin {plugin})"

        def named(problem: str) -> str:  # an instance's settings are its `parameters`
            return f"{where}: " + problem.replace(f"settings.{plugin}", "parameters")

        raise BundleError(named(str(exc)), [named(p) for p in exc.problems]) from None


def _write(
    files: Rendered, reqs: Requirements, out_dir: Path, *, wheels: bool, say: Callable[[str], None] | None
) -> list[Path]:
    if not wheels:
        return write_files(files, out_dir)
    _check_targets(files, out_dir)  # before pip's minutes, not after
    tell = say or (lambda text: _log.info("%s", text))
    with tempfile.TemporaryDirectory(prefix="argoplug-build-wheels-") as scratch:
        built = build_wheels(reqs, Path(scratch), say=tell)
        contents: dict[str, str | Path] = dict(files)
        contents.update({f"{WHEELS_DIR}/{path.name}": path for path in built.files})
        written = write_files(contents, out_dir)
    tell(built.summary())
    return written


def render_bundle(bundle: Bundle) -> Rendered:
    """Return every file of `bundle`'s build: relative path → text. Writes nothing.

    The files of the `argoplug_remote_cluster_files` hooks are among them, under `remote/`, listed in
    `README.md` and never in `kustomization.yaml`. Raises BundleError as `build_bundle` does.
    """
    return _render(bundle)[0]


def _render(bundle: Bundle) -> tuple[Rendered, Requirements]:
    loaded = _load_plugins(bundle)
    _check_settings_reach_their_hooks(bundle, loaded)
    # `contributions` gives each hook its package's own settings, deep-copied for that call alone.
    context = BuildContext(
        name=bundle.name,
        namespaces=tuple(bundle.namespaces),
        plugin_keys=tuple(plugin.key for plugin in loaded.plugins),
        iam_role_arn=bundle.service_account.iam_role_arn,
        all_settings=bundle.settings,
    )
    try:
        manager = plugin_manager(loaded.packages)
        check_parameters(manager, bundle.settings)

        def gather(hook: str) -> list[tuple[str, Any]]:
            return contributions(manager, hook, context=context)

        env = checked_env(gather("argoplug_container_env"), bundle.env)
        volumes = checked_volumes(gather("argoplug_container_volumes"))
        mounts = checked_volume_mounts(gather("argoplug_container_volume_mounts"), volumes)
        rule_items = gather("argoplug_kubernetes_rules")
        rules = checked_rules(rule_items)
        policy = permissions_policy(gather("argoplug_iam_statements"))
        docker_lines = gather("argoplug_dockerfile_lines")
        remote = checked_remote_files(gather("argoplug_remote_cluster_files"))
    except HookError as exc:
        raise BundleError(str(exc)) from exc

    automount = bundle.service_account.automount_token
    if automount is None:
        automount = bool(rules)
    elif not automount and rules:
        packages = sorted({package for package, _ in rule_items})
        raise BundleError(
            "serviceAccount.automountToken: false, but the plugins need Kubernetes access (RBAC rules from "
            f"{', '.join(packages)}), which takes the service account's token; remove the setting"
        )
    manifest = executor_plugin(
        bundle,
        description=bundle.description or _description(loaded),
        sidecar=container(bundle, env=env, volume_mounts=mounts),
        automount_token=automount,
    )
    try:
        argo.validate_sidecar(manifest)
    except argo.ArgoBuildError as exc:
        raise BundleError(f"the ExecutorPlugin would not build: {exc}") from exc

    files: Rendered = {"plugin.yaml": argo.to_go_yaml(manifest)}
    files["workflow-executor-plugins.yaml"] = _workflow_snippet(manifest)
    configmap = f"{bundle.sidecar_name}-configmap.yaml"
    files[configmap] = _configmaps(manifest, bundle.namespaces)
    manifests = {
        "service-account.yaml": [o for ns in bundle.namespaces for o in service_account_objects(bundle, ns)],
        "plugin-role.yaml": [o for ns in bundle.namespaces for o in plugin_role_objects(bundle, ns, rules)],
        "agent-role.yaml": [o for ns in bundle.namespaces for o in agent_role_objects(bundle, ns)],
    }
    if not rules:
        del manifests["plugin-role.yaml"]
    for name, objects in manifests.items():
        files[name] = "---\n".join(argo.to_go_yaml(obj) for obj in objects)
    files["kustomization.yaml"] = argo.to_go_yaml(kustomization([configmap, *manifests]))
    if policy is not None:
        files["iam-policy.json"] = policy_text(policy)
    if bundle.service_account.iam_role_arn:
        files["iam-trust-policy.json"] = policy_text(trust_policy(bundle))
    if volumes:
        files["agent-pod-spec-patch.yaml"] = argo.to_go_yaml(pod_spec_patch(volumes))
    reqs = requirements(loaded.packages)
    files["Dockerfile"] = dockerfile_text(bundle, reqs, docker_lines)
    files[f"{WHEELS_DIR}/README.md"] = wheels_readme(reqs)
    files.update({file.path: file.text for file in remote})
    files["README.md"] = _readme(
        bundle, files, configmap=configmap, keys=context.plugin_keys, pins=reqs.pins, remote=remote
    )
    return files, reqs


def write_files(files: Contents, out_dir: Path) -> list[Path]:
    """Write `files` (relative path → text, or a Path: a file to copy) into `out_dir`; return the paths
    written, in `files` order.

    Every target is checked first, and BundleError naming the path is raised, with nothing written, when
    `out_dir` or a folder on the way to it or to a file is a file, a file's path is a folder, or a folder
    to write into (or the nearest existing one to create `out_dir` in) is not writable. The files are then
    written into a fresh staging folder (next to a new `out_dir`, inside an existing one) and moved in: a
    new `out_dir` appears whole, in one rename; in an existing one each file is replaced in one step and
    `OPTIONAL_FILES` not in `files` are removed, and so are the files under `remote/` not in `files` (then
    the folders there left empty), and should a step still fail (a full disk), what was replaced or
    removed is put back and the folders made are removed. Any OSError becomes a BundleError naming the
    path.
    """
    out_dir = Path(out_dir)
    _check_targets(files, out_dir)
    if os.path.isdir(out_dir):
        _replace_in(files, out_dir)
    else:
        _create(files, out_dir)
    return [out_dir / relative for relative in files]


def _check_targets(files: Contents, out_dir: Path) -> None:
    existing = out_dir
    while not os.path.lexists(existing) and existing.parent != existing:
        existing = existing.parent
    if not os.path.isdir(existing):
        kind = "a file" if os.path.isfile(existing) else "not a folder"
        raise BundleError(f"cannot write into {out_dir}: {existing} is {kind}")
    if existing != out_dir:
        _require_writable(existing, f"cannot create {out_dir}")
        return
    _require_writable(out_dir, f"cannot write into {out_dir}")
    stale = _stale(files, out_dir)
    for relative in [*files, *stale]:
        target = out_dir / relative
        folder = target.parent
        for parent in reversed([folder, *folder.parents]):
            if parent == out_dir or not parent.is_relative_to(out_dir) or not os.path.lexists(parent):
                continue
            if not os.path.isdir(parent):
                kind = "a file" if os.path.isfile(parent) else "not a folder"
                raise BundleError(f"cannot write {target}: {parent} is {kind}")
            _require_writable(parent, f"cannot write {target}")
        if os.path.isdir(target) and not os.path.islink(target):
            verb = "write" if relative in files else "remove the stale"
            raise BundleError(f"cannot {verb} {target}: it is a folder; move it away")


def _stale(files: Contents, out_dir: Path) -> list[str]:
    """The files in `out_dir` an earlier build wrote that `files` no longer holds: `OPTIONAL_FILES`, and
    every file under `remote/` (a `remote` that is a link is not followed)."""
    stale = [name for name in OPTIONAL_FILES if name not in files]
    remote = out_dir / REMOTE_DIR
    if os.path.islink(remote) or not os.path.isdir(remote):
        return stale
    for folder, _, names in os.walk(remote):
        for name in sorted(names):
            relative = (Path(folder) / name).relative_to(out_dir).as_posix()
            if relative not in files:
                stale.append(relative)
    return stale


def _remove_empty_remote_folders(out_dir: Path) -> None:
    remote = out_dir / REMOTE_DIR
    if os.path.islink(remote) or not os.path.isdir(remote):
        return
    for folder, _, _ in os.walk(remote, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(folder)  # only when empty


def _require_writable(folder: Path, problem: str) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BundleError(f"{problem}: folder {folder} is not writable")


def _os_problem(action: str, exc: OSError) -> BundleError:
    return BundleError(f"{action}: {exc.strerror or exc}")


def _stage(files: Contents, staging: Path, out_dir: Path) -> None:
    for relative, content in files.items():
        target = staging / relative
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, target)
                target.chmod(0o644)
            else:
                target.write_text(content, encoding="utf-8")
        except OSError as exc:
            raise _os_problem(f"cannot write {out_dir / relative}", exc) from None


def _create(files: Contents, out_dir: Path) -> None:
    # A new out_dir: staged next to it, then renamed into place; folders made on the way go on failure.
    made = [folder for folder in [out_dir.parent, *out_dir.parent.parents] if not os.path.lexists(folder)]
    try:
        try:
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
        except OSError as exc:
            raise _os_problem(f"cannot create {out_dir}", exc) from None
        try:
            _stage(files, staging, out_dir)
            try:
                staging.chmod(0o755)  # mkdtemp's 0700 would otherwise become out_dir's
                staging.rename(out_dir)
            except OSError as exc:
                raise _os_problem(f"cannot create {out_dir}", exc) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except BundleError:
        for folder in made:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _replace_in(files: Contents, out_dir: Path) -> None:
    # An existing out_dir: staged inside it (same file system), each file then replaced by os.replace.
    # The files replaced or removed are copied aside first, to be put back should a later step fail.
    try:
        staging = Path(tempfile.mkdtemp(prefix=".argoplug-build.", dir=out_dir))
    except OSError as exc:
        raise _os_problem(f"cannot write into {out_dir}", exc) from None
    new, old = staging / "new", staging / "old"
    done: list[tuple[Path, Path | None]] = []  # target, its copy aside (None: it did not exist)
    made: list[Path] = []
    try:
        _stage(files, new, out_dir)
        steps: list[tuple[str, Path | None]] = [(relative, new / relative) for relative in files]
        steps += [(stale, None) for stale in _stale(files, out_dir)]
        target = out_dir
        try:
            for relative, source in steps:
                target = out_dir / relative
                if source is None and not os.path.lexists(target):
                    continue
                missing = [f for f in [target.parent, *target.parent.parents] if not os.path.lexists(f)]
                target.parent.mkdir(parents=True, exist_ok=True)
                made.extend(missing)
                aside: Path | None = None
                if os.path.lexists(target):
                    aside = old / relative
                    aside.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(target, aside, follow_symlinks=False)
                if source is None:
                    target.unlink()
                else:
                    os.replace(source, target)
                done.append((target, aside))
        except OSError as exc:
            _put_back(done, made)
            raise _os_problem(f"cannot write {target}", exc) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _remove_empty_remote_folders(out_dir)


def _put_back(done: Sequence[tuple[Path, Path | None]], made: Sequence[Path]) -> None:
    for target, aside in reversed(done):
        with contextlib.suppress(OSError):
            if aside is None:
                target.unlink()
            else:
                os.replace(aside, target)
    for folder in sorted(made, key=lambda path: len(path.parts), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()


def parameters_of(manager: Any, package: str, given: Mapping[str, Any], where: str) -> Any:
    """Return `given` (a package's settings or an instance's parameters) converted to the type the
    package's `argoplug_parameters_type` declares (msgspec, strict), or `given` itself when it declares
    none. Raises BundleError naming `where` and the field: `settings.eks-pod.clusters[0].name: Expected
    `str`, got `int``."""
    import msgspec

    for impl in implementations(manager, "argoplug_parameters_type"):
        if impl.package != package:
            continue
        try:
            kind = impl.call()
        except Exception as exc:
            raise BundleError(f"plugin {package!r}: argoplug_parameters_type raised {exc!r}") from exc
        try:
            return msgspec.convert(dict(given), kind, strict=True)
        except msgspec.ValidationError as exc:
            text = str(exc)
            message, _, path = text.partition(" - at `$")
            field = where + path.rstrip("`") if path else where
            raise BundleError(f"{field}: {message}") from None
    return dict(given)


def check_parameters(manager: Any, settings: Mapping[str, Mapping[str, Any]]) -> None:
    """Check each package's `settings` against its declared parameters type (`parameters_of`)."""
    for package, given in settings.items():
        parameters_of(manager, package, given, f"settings.{package}")


def _check_settings_reach_their_hooks(bundle: Bundle, loaded: LoadedPlugins) -> None:
    # A module selected under two names (`m:a`, `m:b`) is registered, and its hooks called, under the
    # first only: settings under the second would silently reach no hook.
    first: dict[int, str] = {}
    for name, module in loaded.packages:
        owner = first.setdefault(id(module), name)
        if owner != name and name in bundle.settings:
            raise BundleError(
                f"settings.{name}: {name!r} is in module {module.__name__}, whose build hooks run once, "
                f"as {owner!r}, with the settings of {owner!r}; move these settings there"
            )


def _load_plugins(bundle: Bundle) -> LoadedPlugins:
    problems = []
    for index, name in enumerate(bundle.plugins):
        try:
            load([name])
        except PluginLoadError as exc:
            problems.append(f"plugins[{index}]: {exc}")
    if problems:
        raise BundleError("; ".join(problems), problems)
    try:
        return load(bundle.plugins)
    except PluginLoadError as exc:
        raise BundleError(f"plugins: {exc}") from exc


def _configmaps(manifest: Mapping[str, Any], namespaces: Sequence[str]) -> str:
    # One namespace: exactly what `argo executor-plugin build` writes from plugin.yaml (which names it).
    # Several: that file once per namespace, as Argo writes it from plugin.yaml with that namespace.
    if len(namespaces) == 1:
        return argo.configmap_text(dict(manifest))
    texts = []
    for namespace in namespaces:
        metadata = {**manifest["metadata"], "namespace": namespace}
        texts.append(argo.configmap_text({**manifest, "metadata": metadata}))
    return "---\n".join(texts)


def _description(loaded: LoadedPlugins) -> str:
    lines = ["Served by argoplug. Plugin keys:", ""]
    for plugin in loaded.plugins:
        about = f": {plugin.description}" if plugin.description else ""
        lines.append(f"- `{plugin.key}`{about}")
    return "\n".join(lines) + "\n"


_FILE_ROLES = {
    "{configmap}": "the ConfigMap the workflow controller reads the plugin from, as `argo executor-plugin "
    "build` writes it (one per namespace)",
    "plugin.yaml": "the ExecutorPlugin; `argo executor-plugin build .` makes the ConfigMap from it "
    "(and would replace this README with its own)",
    "service-account.yaml": "ServiceAccount `{sa}` and its token Secret `{sa}.service-account-token`, "
    "in each namespace",
    "plugin-role.yaml": "Role and RoleBinding `{sa}`: exactly the Kubernetes rules the plugins asked for",
    "agent-role.yaml": "Role and RoleBinding `{sa}-agent` for the agent, bound to `{runs_as}`: "
    "`workflowtasksets` list, watch and `workflowtasksets/status` patch",
    "kustomization.yaml": "lists every manifest: `kubectl apply -k .`",
    "workflow-executor-plugins.yaml": "the same plugin as a Workflow's own `spec.executorPlugins` (Argo "
    "v4.1, with `ARGO_WORKFLOW_LEVEL_EXECUTOR_PLUGINS=true`): paste it into a Workflow's spec; it then "
    "replaces the controller's plugins for that workflow",
    "iam-policy.json": "the IAM permissions policy: exactly the AWS actions the plugins call",
    "iam-trust-policy.json": "the trust policy of the IAM role, for IRSA",
    "agent-pod-spec-patch.yaml": "volumes the plugins need, for the workflows' `spec.podSpecPatch`",
    f"{REMOTE_DIR}/": "files for the other clusters the plugins reach, applied there, not here: see below",
    "Dockerfile": "the sidecar image; `wheels/` holds the wheels of argoplug and the plugin packages, which "
    "the image installs from there only, and of their dependencies",
}

_README_HEAD = """\
# {name}: an Argo Workflows executor plugin

Generated by `argoplug build` from a bundle file (`argoplug.yaml`): change the bundle and build
again rather than editing these files. The sidecar `{sa}` runs `argoplug serve` on port {port}
from image `{image}`, serving the plugin keys {keys}, in the namespaces {namespaces}.

| file | what it is |
|---|---|
{rows}

## Build the image

It installs {pins}, the versions this build ran with, from `wheels/` only, never from PyPI: a
package published there under one of those names cannot slip in, and `docker build` fails unless a
wheel of each is in `wheels/`. `argoplug build` put them there, and the wheels of their dependencies,
which the image takes from `wheels/` when they fit its Python, else from PyPI (see `wheels/README.md`;
built with `--no-wheels`, put them there yourself).

    docker build -t {image} .
    docker push {image}

## The sidecar's user and the token file

Argo's agent init container writes the token the sidecar checks each call against to
`/var/run/argo/token` as uid 8737, gid 0, mode 0440, in a 0770 folder
(cmd/argoexec/commands/agent.go), and the agent pod sets `runAsUser: 8737` and no group
(workflow/common/security_context.go). The sidecar runs as {identity}, with a read-only root
filesystem, no privilege escalation and every capability dropped. {why}
"""

_README_IRSA = """
## AWS credentials (IRSA)

The sidecar gets the IAM role `{role_arn}` by IRSA. EKS gives a pod the role of the service
account the pod runs as, and the agent pod (where the sidecar runs) runs as the workflow's: run the
workflows that use this plugin as `serviceAccountName: {runs_as}`. Create the role:

{commands}
"""

_README_NO_ROLE = """
## AWS credentials

Give the sidecar AWS credentials allowed by `iam-policy.json`: set `serviceAccount.iamRoleArn` in the
bundle for IRSA, or add AWS_* variables (e.g. from a Secret) to its `env`.
"""

_README_INSTALL = """
## Install

    kubectl apply -k .

The workflow controller needs `ARGO_EXECUTOR_PLUGINS=true`. It gives an agent pod the plugins of its
own namespace and of the workflow's (workflow/controller/agent.go): do not list the controller's
namespace together with other namespaces, or the sidecar would be added twice.
"""

_README_DEFAULT_ACCOUNT = """
**Warning:** the agent Role is bound to service account `default`: every pod running as `default`
in {namespaces} may patch WorkflowTaskSet status, that is, forge the results of this plugin's steps.
Argo's quick start runs workflows as `default` too; for anything else set `workflowServiceAccount`
(or `serviceAccount.iamRoleArn`) in the bundle, build again, and run the workflows that use this
plugin as that account.
"""

_README_TOKEN = """
The agent pod mounts the token of `{runs_as}`: on Kubernetes 1.24+ that account needs a Secret
`{runs_as}.service-account-token` of type `kubernetes.io/service-account-token` (Argo's docs,
"Service Account Secrets"). It is not generated here, as the account is not this bundle's.
"""

_README_VOLUMES = """
## Volumes: `agent-pod-spec-patch.yaml`

Argo gives the agent pod a plugin's container only, not its volumes, yet the sidecar mounts the
volumes of this file. Every workflow that gets an agent pod in these namespaces must carry them in
`spec.podSpecPatch` (Argo applies it to the agent pod, and harmlessly to the workflow's other pods),
or Kubernetes refuses the agent pod. Paste the file there, or set it for every workflow in the
controller's `workflowDefaults`:

    spec:
      podSpecPatch: |
{patch}
"""

_README_USE = """
## Use

    spec:
      serviceAccountName: {runs_as}
      templates:
        - name: step
          plugin:
            {key}: {{...}}

## Uninstall

    kubectl delete -k .
"""


def _workflow_snippet(manifest: Mapping[str, Any]) -> str:
    """`executorPlugins:` holding the ExecutorPlugin's name and sidecar, for a Workflow's spec (Argo v4.1:
    `WorkflowSpec.ExecutorPlugins`, read by `workflow/controller/agent.go` `getExecutorPlugins`)."""
    metadata = manifest.get("metadata") or {}
    plugin = {"metadata": {"name": metadata.get("name", "")}, "spec": dict(manifest.get("spec") or {})}
    head = (
        "# Paste into a Workflow's spec (Argo v4.1, ARGO_WORKFLOW_LEVEL_EXECUTOR_PLUGINS=true): this\n"
        "# workflow's agent pod then runs this sidecar instead of the controller's ConfigMap plugins.\n"
    )
    return head + argo.to_go_yaml({"executorPlugins": [plugin]})


def _identity_text(bundle: Bundle) -> dict[str, str]:
    uid, gid = container_identity(bundle.security_context)
    identity = f"uid {uid}, gid {gid}" if gid is not None else f"uid {uid} (its group from the image)"
    problem = security_context_problem(bundle.security_context)
    if problem is not None:
        why = f"**Warning:** {problem}."
    elif uid == AGENT_UID:
        why = (
            "That is the token file's owner: it reads the token whatever the image's /etc/passwd holds (the\n"
            "image's USER is the same). A user of another uid and gid, like the `nobody` of Argo's docs,\n"
            "could not, and would answer every call 503 (Argo issue #13015)."
        )
    else:
        why = "Group 0 is the token file's group: it reads the token (Argo issue #13015)."
    return {"identity": identity, "why": why}


def _readme(
    bundle: Bundle,
    files: Mapping[str, str],
    *,
    configmap: str,
    keys: Sequence[str],
    pins: Sequence[str],
    remote: Sequence[RemoteFile] = (),
) -> str:
    sa, runs_as = bundle.sidecar_name, bundle.agent_service_account
    role_arn = bundle.service_account.iam_role_arn
    present = {*files, *([f"{REMOTE_DIR}/"] if remote else [])}
    rows = [
        f"| `{name.format(configmap=configmap)}` | {role.format(sa=sa, runs_as=runs_as)} |"
        for name, role in _FILE_ROLES.items()
        if name.format(configmap=configmap) in present
    ]
    text = _README_HEAD.format(
        name=bundle.name,
        sa=sa,
        port=bundle.port,
        image=bundle.image,
        keys=", ".join(f"`{key}`" for key in keys),
        namespaces=", ".join(f"`{namespace}`" for namespace in bundle.namespaces),
        rows="\n".join(rows),
        pins=", ".join(f"`{pin}`" for pin in pins),
        **_identity_text(bundle),
    )
    if role_arn:
        role = role_arn.rsplit("/", 1)[-1]
        commands = []
        if OIDC_PLACEHOLDER in files["iam-trust-policy.json"]:
            commands += [
                "OIDC=$(aws eks describe-cluster --name CLUSTER --query cluster.identity.oidc.issuer \\",
                "    --output text | sed 's|^https://||')",
                f'sed -i "s|{OIDC_PLACEHOLDER}|$OIDC|g" iam-trust-policy.json',
            ]
        commands.append(
            f"aws iam create-role --role-name {role} --assume-role-policy-document file://iam-trust-policy.json"
        )
        if "iam-policy.json" in files:
            commands.append(
                f"aws iam put-role-policy --role-name {role} --policy-name {sa} "
                "--policy-document file://iam-policy.json"
            )
        text += _README_IRSA.format(
            role_arn=role_arn, runs_as=runs_as, commands="\n".join(f"    {c}" for c in commands)
        )
    elif "iam-policy.json" in files:
        text += _README_NO_ROLE
    text += _README_INSTALL
    if runs_as == "default":
        namespaces = ", ".join(f"`{namespace}`" for namespace in bundle.namespaces)
        text += _README_DEFAULT_ACCOUNT.format(namespaces=namespaces)
    if runs_as != sa:
        text += _README_TOKEN.format(runs_as=runs_as)
    text += readme_section(remote)
    if "agent-pod-spec-patch.yaml" in files:
        patch = files["agent-pod-spec-patch.yaml"].splitlines()
        text += _README_VOLUMES.format(patch="\n".join(f"        {line}" for line in patch))
    return text + _README_USE.format(runs_as=runs_as, key=keys[0] if keys else bundle.name)
