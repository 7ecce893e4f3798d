"""The `driver-plugin` plugin: Kubeflow Pipelines' standalone driver as a thin executor plugin that keeps the
contract and forwards each driver template to a central driver server.

KFP's proposal `proposals/separate-standalone-driver/` (kubeflow/pipelines, merged 2025-11) replaces the
driver pod of every task by an executor plugin keyed `driver-plugin` whose `args` are the driver's flags as
the compiler writes them (`type` ROOT_DAG / DAG / CONTAINER, `pipeline_name`, `run_id`, `component`, `task`,
`container`, `runtime_config`, `dag_execution_id`, `iteration_index`, `kubernetes_config`, the proxy
settings...). Its mock (PR #12023) POSTs `args` to `http://ml-pipeline-kfp-driver.kubeflow.svc:2948/api/v1/
execute`; the implementation PRs' driver (#12269, #13171, `driverapi/response.go`) answers template.execute
itself with `{"node": {"phase", "message", "outputs": {"parameters": [...]}}}`. Both are supported: a URL
whose path ends in `template.execute` gets the whole request, any other the `args`.

Upstream, the plugin authenticates as itself: the projected token of its ServiceAccount
(`driver-plugin-executor-plugin`, `automountServiceAccountToken: true`), re-read when the kubelet rotates it,
over TLS verified with a configurable CA; `argoplug.kube.tokenreview` is the central side's check of it.
A driver call that outlasts the server's handler deadline goes on and is answered Running + requeue, its
result given to the next call (`argoplug.server`, the late-result path). Configuration (environment of the
sidecar; the build hook sets it from the bundle's `settings.driver-plugin`): `KFP_DRIVER_URL`,
`KFP_DRIVER_CA_FILE`, `KFP_DRIVER_TOKEN_FILE`, `KFP_DRIVER_TIMEOUT` (seconds).
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any

import msgspec

from argoplug.hookspecs import BuildContext, hookimpl
from argoplug.plugin import PermanentError, Plugin, Result, Task, TemporaryError

__all__ = [
    "DEFAULT_DRIVER_URL",
    "DRIVER_TYPES",
    "KEY",
    "OUTPUT_DEFAULTS",
    "DriverPluginArgs",
    "DriverPluginParameters",
    "argoplug_container_env",
    "argoplug_parameters_type",
    "argument_problems",
    "driver_plugin",
    "plugins",
    "reset_client",
]

log = logging.getLogger("argoplug.plugins.kfp_driver")

KEY = "driver-plugin"
# The proposal's mock driver plugin (PR #12023, main.py: call_driver).
DEFAULT_DRIVER_URL = "http://ml-pipeline-kfp-driver.kubeflow.svc:2948/api/v1/execute"
DEFAULT_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
DEFAULT_TIMEOUT = 300.0  # seconds a driver call may take; past the handler deadline it is answered Running
DRIVER_TYPES = ("ROOT_DAG", "DAG", "CONTAINER")
# The outputs the compiled driver templates declare, with the defaults they declare (hello_world_plugin.yaml:
# `valueFrom.default`); execution-id has none.
OUTPUT_DEFAULTS: Mapping[str, str] = {
    "execution-id": "",
    "iteration-count": "0",
    "cached-decision": "false",
    "condition": "true",
    "pod-spec-patch": "",
}
# The driver's own check (rpc_handler.go `validate`, PR #13171): a proxy flag the compiler left "unset".
_UNSET_PROXY = "unset"
_PROXY_ARGS = ("http_proxy", "https_proxy", "no_proxy")
_RETRY_DELAY = 10.0
_MAX_MESSAGE = 2000


class DriverPluginArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The `driver-plugin` block: `args`, the driver's arguments as KFP's compiler writes them, forwarded
    as they are (other fields than those checked here are the driver's business)."""

    args: dict[str, Any] = {}


def argument_problems(block: DriverPluginArgs, unconverted: frozenset[str] = frozenset()) -> list[str]:
    """What the driver would refuse, found before the call: `args.type` missing or not a driver type, a
    proxy argument left "unset" (rpc_handler.go `validate`)."""
    args = block.args
    problems = []
    kind = args.get("type")
    if not kind:
        problems.append("`args.type`: required: ROOT_DAG, DAG or CONTAINER (argument type must be specified)")
    elif kind not in DRIVER_TYPES:
        problems.append(f"`args.type`: expected ROOT_DAG, DAG or CONTAINER, got {kind!r}")
    for name in _PROXY_ARGS:
        if args.get(name) == _UNSET_PROXY:
            problems.append(f"`args.{name}`: is required but can be an empty value, got 'unset'")
    return problems


def _failure_outputs(block: Any) -> Mapping[str, Any]:
    return dict(OUTPUT_DEFAULTS)


driver_plugin: Plugin[DriverPluginArgs] = Plugin(
    KEY,
    args=DriverPluginArgs,
    check=argument_problems,
    failure_outputs=_failure_outputs,
    description=(
        "Kubeflow Pipelines' standalone driver: forwards each driver template to the central driver server "
        "as this plugin's ServiceAccount, and answers with the driver's outputs."
    ),
)
plugins = (driver_plugin,)


class _Upstream:
    """The central driver: its URL, and one pooled httpx client for the sidecar's life."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: Any = None
        self._key: tuple[str, ...] = ()
        self._token: Any = None

    def get(self) -> tuple[str, Any, Any]:
        import httpx

        from argoplug.kube.access import TokenFile

        url = os.environ.get("KFP_DRIVER_URL") or DEFAULT_DRIVER_URL
        ca_file = os.environ.get("KFP_DRIVER_CA_FILE") or ""
        token_file = os.environ.get("KFP_DRIVER_TOKEN_FILE") or DEFAULT_TOKEN_FILE
        timeout = float(os.environ.get("KFP_DRIVER_TIMEOUT") or DEFAULT_TIMEOUT)
        key = (url, ca_file, token_file, str(timeout))
        with self._lock:
            if self._client is None or key != self._key:
                if self._client is not None:
                    self._client.close()
                verify: Any = True
                if ca_file:
                    import ssl

                    verify = ssl.create_default_context(cafile=ca_file)
                self._client = httpx.Client(
                    timeout=httpx.Timeout(timeout, connect=5.0), verify=verify, trust_env=False
                )
                self._token = TokenFile(token_file)
                self._key = key
            return url, self._client, self._token

    def reset(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
            self._client, self._key, self._token = None, (), None


_upstream = _Upstream()


def reset_client() -> None:
    """Close the pooled client (the next call reads the KFP_DRIVER_* settings again)."""
    _upstream.reset()


@driver_plugin.handler
def drive(task: Task, block: DriverPluginArgs) -> Result:
    """Forward the driver template to the central driver and answer with its node.

    Outputs: `execution-id`, `iteration-count` (default "0"), `cached-decision` ("false"), `condition`
    ("true") and `pod-spec-patch` (""), with the driver's values over the defaults, on every final reply.
    Raises PermanentError (Failed) for an upstream 4xx (its message), a 401/403 (saying whose token) or an
    answer that is not a driver's; TemporaryError (Running, tried again) for 5xx, a lost connection or a
    timeout; KubeSetupError (Error) when the ServiceAccount token file cannot be read.
    """
    from argoplug.kube.access import KubeSetupError

    url, client, token_file = _upstream.get()
    try:
        token = token_file.token()
    except KubeSetupError as exc:
        raise KubeSetupError(
            f"{exc}: the {KEY} plugin authenticates to the driver as its ServiceAccount; give the sidecar "
            "its token (serviceAccount.automountToken: true in the bundle)"
        ) from None
    whole = urllib.parse.urlsplit(url).path.rstrip("/").endswith("template.execute")
    body: Any = _template_execute_body(task) if whole else block.args
    answer = _post(client, url, body, token)
    if answer.status_code == 401:  # the token rotated under us: read it again, once
        answer = _post(client, url, body, token_file.token(refresh=True))
    return _result(answer, url)


def _template_execute_body(task: Task) -> dict[str, Any]:
    return {
        "workflow": {
            "metadata": {"name": task.workflow_name, "namespace": task.namespace, "uid": task.workflow_uid}
        },
        "template": msgspec.to_builtins(task.template),
    }


def _post(client: Any, url: str, body: Any, token: str) -> Any:
    import httpx

    try:
        return client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
    except httpx.TimeoutException as exc:
        raise TemporaryError(
            f"the KFP driver at {url} did not answer in time ({type(exc).__name__})", delay=_RETRY_DELAY
        ) from None
    except httpx.HTTPError as exc:
        if _certificate_refused(exc):  # no retry mends a CA that does not verify the driver
            raise PermanentError(
                f"the KFP driver at {url} has a certificate this plugin does not trust ({exc}): set "
                "KFP_DRIVER_CA_FILE (settings.driver-plugin.ca_file) to the CA that signed it",
                outputs=OUTPUT_DEFAULTS,
            ) from None
        raise TemporaryError(
            f"cannot reach the KFP driver at {url}: {type(exc).__name__}: {exc}", delay=_RETRY_DELAY
        ) from None


def _certificate_refused(exc: BaseException) -> bool:
    import ssl

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _result(answer: Any, url: str) -> Result:
    code = answer.status_code
    text = answer.text.strip()[:_MAX_MESSAGE]
    if code in (401, 403):
        raise PermanentError(
            f"the KFP driver at {url} refused this plugin's ServiceAccount token ({code}: {text}): it "
            f"accepts the ServiceAccount {KEY}-executor-plugin of a profile namespace",
            outputs=OUTPUT_DEFAULTS,
        )
    if code == 429 or code >= 500:
        raise TemporaryError(f"the KFP driver at {url} answered {code}: {text}", delay=_RETRY_DELAY)
    if code >= 400:
        raise PermanentError(f"the KFP driver refused the task ({code}): {text}", outputs=OUTPUT_DEFAULTS)
    try:
        reply = answer.json()
    except ValueError:
        reply = None
    node = reply.get("node") if isinstance(reply, dict) else None
    if not isinstance(node, dict) or not isinstance(node.get("phase"), str):
        raise PermanentError(
            f"the KFP driver at {url} answered {code} without a node (expected "
            f'{{"node": {{"phase": ..., "outputs": ...}}}}): {text[:500]}',
            outputs=OUTPUT_DEFAULTS,
        )
    outputs = dict(OUTPUT_DEFAULTS)
    for parameter in (node.get("outputs") or {}).get("parameters") or []:
        if isinstance(parameter, dict) and isinstance(parameter.get("name"), str):
            value = parameter.get("value")
            outputs[parameter["name"]] = "" if value is None else str(value)
    phase, message = node["phase"], str(node.get("message") or "")
    if phase == "Succeeded":
        return Result.succeeded(message, outputs=outputs)
    if phase in ("Running", "Pending"):
        return Result.running(message or "the KFP driver is still driving", requeue=5.0, outputs=outputs)
    return Result.failed(message or f"the KFP driver answered {phase}", outputs=outputs)


class DriverPluginParameters(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The package's settings (or an instance's parameters): the central driver's `url`, the `ca_file`
    that verifies it, and the call `timeout` in seconds."""

    url: str = DEFAULT_DRIVER_URL
    ca_file: str = ""
    timeout: float = DEFAULT_TIMEOUT


@hookimpl
def argoplug_parameters_type() -> Any:
    """Return `DriverPluginParameters`: what `settings.driver-plugin` may hold."""
    return DriverPluginParameters


@hookimpl
def argoplug_container_env(context: BuildContext) -> list[dict[str, Any]]:
    """Return the sidecar's KFP_DRIVER_* variables from `settings.driver-plugin`: `url` (default the
    proposal's `http://ml-pipeline-kfp-driver.kubeflow.svc:2948/api/v1/execute`), `ca_file` and `timeout`
    (seconds). Raises ValueError naming a setting that is not as documented."""
    settings = context.settings
    unknown = sorted(set(settings) - {"url", "ca_file", "timeout"})
    if unknown:
        raise ValueError(
            f"settings.{context.package or KEY}: unknown {', '.join(unknown)} (url, ca_file, timeout)"
        )
    env = [{"name": "KFP_DRIVER_URL", "value": str(settings.get("url") or DEFAULT_DRIVER_URL)}]
    if settings.get("ca_file"):
        env.append({"name": "KFP_DRIVER_CA_FILE", "value": str(settings["ca_file"])})
    if settings.get("timeout"):
        env.append({"name": "KFP_DRIVER_TIMEOUT", "value": str(float(settings["timeout"]))})
    return env
