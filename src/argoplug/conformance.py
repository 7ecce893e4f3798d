"""`argoplug check`: a conformance report for any executor plugin server, argoplug-built or not.

`run_checks` sends, over real HTTP, the requests that show each rule of CONTRACT §2–§4 and has
`argoplug.conformance_rules` judge the answers; `check_launched` starts a server first (a `Launcher`) and
times its first answer; `check_command` is the command line (`cli.py` registers it) around them.
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import json
import os
import random
import shutil
import socket
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from argoplug.conformance_rules import (
    AGENT_WORKERS,
    C_AGAIN,
    C_FOREIGN,
    C_FOREIGN_TOKEN,
    C_OWN,
    C_START,
    C_TOKEN_MISSING,
    C_TOKEN_WRONG,
    C_UNKNOWN,
    C_VECTOR,
    VECTORS,
    Exchange,
    Limits,
    Verdict,
    agent_request,
    judge_answer_time,
    judge_bad_requests,
    judge_concurrency,
    judge_foreign,
    judge_own,
    judge_refused,
    judge_replies,
    judge_start,
    judge_tolerance,
    judge_vector,
    with_unknown_fields,
)
from argoplug.protocol import DEFAULT_TOKEN_FILE, EXECUTE_PATH

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "LaunchError",
    "Launched",
    "Launcher",
    "Limits",
    "Verdict",
    "check_command",
    "check_launched",
    "run_checks",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_LIMITS = Limits()


class LaunchError(Exception):
    """The plugin server could not be started: the message says why, with the end of its log."""


@dataclasses.dataclass(frozen=True)
class Launched:
    """A plugin server a `Launcher` started: its base URL, its token (None: unknown), how to stop it,
    the plugin keys it is known to serve (maybe none), and what was done, for the report."""

    url: str
    token: str | None
    stop: Callable[[], None]
    plugin_keys: tuple[str, ...] = ()
    description: str = ""


# Starts a plugin server and returns once it is started (it may not answer yet); raises LaunchError.
Launcher = Callable[[], Launched]


def run_checks(
    endpoint_url: str,
    *,
    plugin_key: str,
    token: str | None,
    plugin_args: Mapping[str, Any] | None = None,
    other_keys: Sequence[str] = (),
    seed: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> list[Verdict]:
    """Check the plugin server at `endpoint_url` (`http://host:port`) for `plugin_key`: one Verdict per rule.

    `token` is the server's own (what the agent sends as `Authorization: Bearer`); without it the rules
    that need a call of its own key with the right token are SKIPs. `plugin_args`: the plugin block's
    value in calls of its own key (default `{}`; the handler runs with them for real, about 25 times).
    `other_keys`: the server's other plugin keys, not foreign to it (a request vector of one of them may
    get a node). `seed` makes the foreign key, wrong tokens and workflow uids reproducible. The
    `slow-start` rule is `check_launched`'s. Takes about a second (the stall probe waits
    `limits.stall_wait`); a server that hangs costs up to `limits.timeout` per call.
    Server trouble never raises: it is what the verdicts say.
    """
    with _Prober(endpoint_url, limits) as prober:
        args = dict(plugin_args or {})
        checks = _Checks(prober, plugin_key, token, args, set(other_keys), random.Random(seed), limits)
        return checks.run()


def check_launched(
    launch: Launcher,
    *,
    plugin_keys: Sequence[str] = (),
    plugin_args: Mapping[str, Any] | None = None,
    seed: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[Launched | None, dict[str, list[Verdict]]]:
    """Launch a server, time its first answer, check it for each plugin key (`run_checks`), and stop it.

    The keys: `plugin_keys`, else those the launcher reports (which are not foreign to each other).
    Returns what was launched (None when it
    could not start) and the verdicts by plugin key, each list led by `slow-start`: the seconds from
    calling `launch` to the first answer to template.execute (WARN above `limits.start_warn`, FAIL above
    `limits.start_fail`). When it does not start or never answers, that FAIL is the only verdict, under
    the first key ("" when none is known). Raises ValueError when no plugin key is given or known (the
    server is stopped first).
    """
    started = time.monotonic()
    try:
        launched = launch()
    except LaunchError as exc:
        first_key = plugin_keys[0] if plugin_keys else ""
        return None, {first_key: [Verdict("slow-start", "FAIL", f"it did not start: {exc}", C_START)]}
    try:
        keys = list(plugin_keys or launched.plugin_keys)
        served = {*keys, *launched.plugin_keys}
        if not keys:
            raise ValueError("no plugin key to check: give one; the server does not say which keys it serves")
        first = _first_answer(launched.url, keys[0], started, limits)
        start = judge_start(first, time.monotonic() - started, limits)
        if first.status is None:
            return launched, {keys[0]: [start]}
        verdicts = {}
        for key in keys:
            found = run_checks(
                launched.url,
                plugin_key=key,
                token=launched.token,
                plugin_args=plugin_args,
                other_keys=sorted(served - {key}),
                seed=seed,
                limits=limits,
            )
            verdicts[key] = [start, *found]
        return launched, verdicts
    finally:
        launched.stop()


def _first_answer(url: str, key: str, started: float, limits: Limits) -> Exchange:
    """Call with a foreign key until an HTTP answer comes, giving up `limits.start_fail` after `started`."""
    body = agent_request(f"{key}-argoplug-check", {}, "first-call", random.Random(0))
    with _Prober(url, limits) as prober:
        while True:
            exchange = prober.post("first call", body, token=None)
            if exchange.status is not None or time.monotonic() - started > limits.start_fail:
                return exchange
            time.sleep(0.05)


class _Prober:
    """Sends requests to one server and records them as `Exchange`s (the agent's timeout per call)."""

    def __init__(self, url: str, limits: Limits, *, timeout: float | None = None) -> None:
        self.url = url.rstrip("/")
        self.limits = limits
        pool = httpx.Limits(max_connections=AGENT_WORKERS * 2)
        self.http = httpx.Client(timeout=limits.timeout if timeout is None else timeout, limits=pool)

    def __enter__(self) -> _Prober:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def post(
        self, label: str, body: Any, *, token: str | None, path: str = EXECUTE_PATH, method: str = "POST"
    ) -> Exchange:
        """Send `body` (JSON, or bytes as they are) with `Authorization: Bearer <token>` (None: no header)."""
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        started = time.monotonic()
        try:
            response = self.http.request(method, self.url + path, content=content, headers=headers)
        except httpx.HTTPError as exc:
            return Exchange(label, None, seconds=time.monotonic() - started, error=_transport_error(exc))
        return Exchange(label, response.status_code, response.content, time.monotonic() - started)

    def stall_probe(self, stalled: bytes, token: str | None, other: Any) -> tuple[Exchange, Exchange] | None:
        """Send `stalled` with half its body, then `other` on a second connection, then the rest of the first.

        Returns (the second call, the stalled one), or None when the URL is not http://. A server that
        serves one connection at a time cannot answer the second call before the first request is whole;
        the second call waits `limits.stall_wait` seconds at most.
        """
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme != "http" or parts.hostname is None:
            return None
        head = [f"POST {EXECUTE_PATH} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json"]
        if token is not None:
            head.append(f"Authorization: Bearer {token}")
        head += [f"Content-Length: {len(stalled)}", "Connection: close", "", ""]
        half = len(stalled) // 2
        started = time.monotonic()
        try:
            sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=self.limits.timeout)
        except OSError:
            return None  # the calls' own verdicts say that it does not answer
        with sock:
            try:
                sock.sendall("\r\n".join(head).encode() + stalled[:half])
                time.sleep(0.05)  # the server holds the incomplete request
            except OSError:
                return None
            with _Prober(self.url, self.limits, timeout=self.limits.stall_wait) as quick:
                second = quick.post("a call meanwhile", other, token=token)
            try:
                sock.sendall(stalled[half:])
            except OSError as exc:
                error = f"it closed the connection of the incomplete request ({exc.strerror or exc})"
                return second, Exchange(
                    "the incomplete call", None, seconds=time.monotonic() - started, error=error
                )
            return second, _read_answer(sock, "the incomplete call", started)


def _read_answer(sock: socket.socket, label: str, started: float) -> Exchange:
    """Read one HTTP answer until the server closes the connection (the request said `Connection: close`)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except OSError as exc:
        return Exchange(label, None, seconds=time.monotonic() - started, error=str(exc) or type(exc).__name__)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or not status[1].isdigit():
        error = "the connection was closed without an answer"
        return Exchange(label, None, seconds=time.monotonic() - started, error=error)
    return Exchange(label, int(status[1]), body, time.monotonic() - started)


def _transport_error(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection was closed without an answer"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {exc}"
    return f"{type(exc).__name__}: {exc}"


class _Checks:
    """One run of the checks against one server for one plugin key, in the order they are reported."""

    def __init__(
        self,
        prober: _Prober,
        key: str,
        token: str | None,
        args: dict[str, Any],
        other_keys: set[str],
        rng: random.Random,
        limits: Limits,
    ) -> None:
        self.prober, self.key, self.token, self.args = prober, key, token, args
        self.ours = {key, *other_keys}  # keys the server serves: not foreign to it
        self.rng, self.limits = rng, limits
        self.foreign = f"argoplug-check-other-{rng.getrandbits(24):06x}"
        self.wrong = f"{rng.getrandbits(128):032x}"
        self.own_replies: list[Exchange] = []  # every answer to our key sent with the right token

    def run(self) -> list[Verdict]:
        verdicts = [self.foreign_key(), self.foreign_key_token(), *self.refusals()]
        if self.token is None:
            why = "no token: give the server's token (--token or --token-file) to check calls of its own key"
            skipped = [("own-key", C_OWN), ("same-request-again", C_AGAIN)]
            skipped += [(f"vector:{name}", C_VECTOR) for name in VECTORS] + [("unknown-fields", C_UNKNOWN)]
            verdicts += [Verdict(rule, "SKIP", why, contract) for rule, contract in skipped]
        else:
            verdicts += [*self.own_key(), *self.vectors(), self.unknown_fields()]
        verdicts.append(self.concurrency())
        if self.token is not None:
            verdicts += [*judge_replies(self.own_replies), judge_answer_time(self.own_replies, self.limits)]
        verdicts.append(self.bad_requests())
        return verdicts

    def call(self, label: str, body: Any, *, token: str | None = "", own: bool = False) -> Exchange:
        """POST `body` with our token (or `token`); `own`: record it among the answers to our key."""
        exchange = self.prober.post(label, body, token=self.token if token == "" else token)
        if own:
            self.own_replies.append(exchange)
        return exchange

    def request(self, key: str, template: str) -> dict[str, Any]:
        args = self.args if key == self.key else {"for": "another plugin"}
        return agent_request(key, args, template, self.rng)

    def foreign_key(self) -> Verdict:
        body = self.request(self.foreign, "another-plugins-template")
        if self.token is None:  # the agent always sends one
            exchange = self.call(f"key {self.foreign!r}, a made-up token", body, token=self.wrong)
        else:
            exchange = self.call(f"key {self.foreign!r}", body)
        return judge_foreign("foreign-key", [exchange], self.limits, C_FOREIGN)

    def foreign_key_token(self) -> Verdict:
        body = self.request(self.foreign, "another-plugins-template")
        exchanges = [
            self.call("no token", body, token=None),
            self.call("a wrong token", body, token=self.wrong),
        ]
        return judge_foreign("foreign-key-token", exchanges, self.limits, C_FOREIGN_TOKEN)

    def refusals(self) -> list[Verdict]:
        body = self.request(self.key, "argoplug-check")
        missing = [self.call("no Authorization header", body, token=None)]
        wrong = [self.call("a wrong token", body, token=self.wrong)]
        if self.token:  # a server comparing prefixes would take these
            wrong.append(self.call("its token + 'x'", body, token=self.token + "x"))
            wrong.append(self.call("its token less its last character", body, token=self.token[:-1]))
        return [
            judge_refused("token-missing", missing, self.key, C_TOKEN_MISSING),
            judge_refused("token-wrong", wrong, self.key, C_TOKEN_WRONG),
        ]

    def own_key(self) -> list[Verdict]:
        body = self.request(self.key, "argoplug-check")
        first = self.call(f"key {self.key!r}", body, own=True)
        again = self.call("the same request again", body, own=True)
        return [
            judge_own("own-key", first, self.key, C_OWN),
            judge_own("same-request-again", again, self.key, C_AGAIN),
        ]

    def vectors(self) -> list[Verdict]:
        verdicts = []
        for name, vector in VECTORS.items():
            sent_key, args = next(iter(vector["template"]["plugin"].items()))
            own = sent_key in self.ours
            exchanges = [(own, self.call(f"as sent (key {sent_key!r})", vector, own=own))]
            if sent_key != self.key:
                rekeyed = copy.deepcopy(vector)
                rekeyed["template"]["plugin"] = {self.key: args}
                exchanges.append((True, self.call(f"with key {self.key!r}", rekeyed, own=True)))
            verdicts.append(judge_vector(name, exchanges))
        return verdicts

    def unknown_fields(self) -> Verdict:
        body = self.request(self.key, "argoplug-check-fields")
        base = self.call("the plain body", body, own=True)
        extended = self.call("with unknown fields", with_unknown_fields(body), own=True)
        return judge_tolerance(base, extended)

    def concurrency(self) -> Verdict:
        own = self.token is not None
        key = self.key if own else self.foreign
        what = "its own key" if own else "a foreign key (no token given)"
        alone = self.call("one call alone", self.request(key, "argoplug-check-alone"), own=own)
        bodies = [self.request(key, f"argoplug-check-{i + 1}") for i in range(AGENT_WORKERS)]
        calls, total = self.at_once(bodies, own)
        stalled = json.dumps(self.request(key, "argoplug-check-stalled")).encode()
        probe = self.prober.stall_probe(stalled, self.token, self.request(self.foreign, "meanwhile"))
        return judge_concurrency(alone, calls, total, probe, self.limits, what=what)

    def at_once(self, bodies: Sequence[dict[str, Any]], own: bool) -> tuple[list[Exchange], float]:
        """Send `bodies` at the same moment, one thread each; return the exchanges and the wall time."""
        barrier = threading.Barrier(len(bodies) + 1)

        def one(index: int) -> Exchange:
            barrier.wait()
            return self.prober.post(f"call {index + 1} of {len(bodies)}", bodies[index], token=self.token)

        with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
            futures = [pool.submit(one, index) for index in range(len(bodies))]
            barrier.wait()
            started = time.monotonic()
            calls = [future.result() for future in futures]
            total = time.monotonic() - started
        if own:
            self.own_replies.extend(calls)
        return calls, total

    def bad_requests(self) -> Verdict:
        tries = [
            self.call("malformed JSON", b'{"template": {"plugin"'),
            self.call("an empty body", b""),
        ]
        for method, path in (("POST", "/api/v1/unknown.method"), ("GET", EXECUTE_PATH)):
            tries.append(
                self.prober.post(f"{method} {path}", b"", token=self.token, path=path, method=method)
            )
        after = self.call("a foreign key afterwards", self.request(self.foreign, "afterwards"))
        return judge_bad_requests(tries, after)


def check_command(
    target: str,
    *,
    plugin_key: str | None = None,
    token: str | None = None,
    token_file: Path | None = None,
    seed: int | None = None,
    plugin_args: str | None = None,
    console: Console,
    errors: Console | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> int:
    """Run `argoplug check TARGET`: check a plugin server, print a verdict per rule; return the exit status.

    TARGET: a URL of a running server (`http://127.0.0.1:4355`; `token` or `token_file` is its token,
    else /var/run/argo/token when readable, else the own-key rules are SKIPs); an installed argoplug
    plugin name or `module:attr` (started with `argoplug serve` and a fresh token); an Argo plugin folder,
    `plugin.yaml`, built ConfigMap YAML or argoplug bundle (started as `argoplug run` starts it, by
    `argoplug.agent.plugins`; a container's token file at `token_file`, default /var/run/argo/token).
    The plugin key: `plugin_key`, else the plugin's name from plugin.yaml / the ConfigMap, else the keys
    the server lists at `GET /healthz` (argoplug servers), each checked in turn. `plugin_args`: YAML or
    JSON text, the plugin block's value in calls of its own key (default `{}`): the plugin's handler
    runs for real with them, some 25 times (16 of them at once). `seed` repeats a run's requests (one is
    drawn and printed when None). The report goes to `console`, usage errors to `errors` (default
    `console`). Returns 0 when no rule FAILs, 1 when one does, 2 for bad usage (the message names the
    option or the target).
    """
    errors = errors or console
    try:
        args = _parse_args(plugin_args)
        plan = _plan(target, plugin_key=plugin_key, token=token, token_file=token_file, limits=limits)
    except _UsageError as exc:
        errors.print(f"argoplug check: {exc}", markup=False, highlight=False)
        return EXIT_USAGE
    seed = random.randrange(1_000_000) if seed is None else seed
    for note in plan.notes:
        console.print(note, markup=False, highlight=False)
    if plan.launcher is None:
        others = {key: [k for k in plan.served if k != key] for key in plan.keys}
        results = {
            key: run_checks(
                plan.url,
                plugin_key=key,
                token=plan.token,
                plugin_args=args,
                other_keys=others[key],
                seed=seed,
                limits=limits,
            )
            for key in plan.keys
        }
    else:
        try:
            launched, results = check_launched(
                plan.launcher, plugin_keys=plan.keys, plugin_args=args, seed=seed, limits=limits
            )
        except ValueError as exc:
            errors.print(f"argoplug check: {target}: {exc} (--plugin-key KEY)", markup=False, highlight=False)
            return EXIT_USAGE
        if launched is not None and launched.description:
            console.print(launched.description, markup=False, highlight=False)
    _print_report(console, results, seed)
    return EXIT_FAILED if any(v.status == "FAIL" for found in results.values() for v in found) else EXIT_OK


class _UsageError(Exception):
    """Bad usage of `argoplug check`: the message names the target or option."""


@dataclasses.dataclass
class _Plan:
    """What `check_command` will check: a running server (`url`, `token`) or one to start (`launcher`)."""

    keys: list[str]
    notes: list[str]
    served: tuple[str, ...] = ()  # every key the server lists, when it does
    url: str = ""
    token: str | None = None
    launcher: Launcher | None = None


def _parse_args(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _UsageError(f"--args is not valid YAML or JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _UsageError(f"--args must be a mapping (the plugin block's arguments), got {text!r}")
    return value


def _plan(
    target: str, *, plugin_key: str | None, token: str | None, token_file: Path | None, limits: Limits
) -> _Plan:
    if "://" in target:
        return _url_plan(target, plugin_key, token, token_file)
    if token is not None:
        raise _UsageError(f"--token is for a URL target: {target} is started here, with a fresh token")
    path = Path(target)
    if path.exists():
        return _manifest_plan(path, target, plugin_key, token_file, limits)
    if "/" in target or os.sep in target or target.endswith((".yaml", ".yml")):
        raise _UsageError(f"{target}: no such file or folder")
    if token_file is not None:
        raise _UsageError(
            f"--token-file is not for {target}: argoplug serve is started with a fresh token file"
        )
    if ":" not in target and "." not in target:
        from argoplug.registry import installed

        names = installed()
        if target not in names:
            known = ", ".join(sorted(names)) or "none"
            raise _UsageError(
                f"{target!r} is not a URL, a file or folder, nor an installed argoplug plugin "
                f"(installed: {known})"
            )
    notes = [f"Checking argoplug plugin {target}, started with argoplug serve."]
    return _Plan([plugin_key] if plugin_key else [], notes, launcher=_argoplug_launcher(target, limits))


def _url_plan(url: str, plugin_key: str | None, token: str | None, token_file: Path | None) -> _Plan:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _UsageError(f"{url}: expected a URL like http://127.0.0.1:4355")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise _UsageError(f"{url}: the port is not a number from 1 to 65535") from None
    try:
        socket.create_connection((parts.hostname, port), timeout=2.0).close()
    except OSError as exc:
        raise _UsageError(f"{url}: nothing answers there ({exc.strerror or exc})") from None
    notes = [f"Checking the plugin server at {url}."]
    if token is None:
        path = token_file or Path(DEFAULT_TOKEN_FILE)
        try:
            token = path.read_text().strip()
            notes.append(f"Token: read from {path}.")
        except OSError as exc:
            if token_file is not None:
                raise _UsageError(f"--token-file {token_file}: cannot read it ({exc.strerror})") from None
            notes.append(
                f"No token given (--token, --token-file) and {path} cannot be read: the own-key rules "
                "are skipped."
            )
    served = _served_keys(url)
    keys = [plugin_key] if plugin_key else list(served)
    if not keys:
        raise _UsageError(
            f"{url} does not list its plugin keys (GET /healthz, as argoplug servers do): "
            "give --plugin-key KEY"
        )
    if not plugin_key:
        notes.append(f"Plugin keys from GET {url.rstrip('/')}/healthz: {', '.join(keys)}.")
    return _Plan(keys, notes, served, url=url.rstrip("/"), token=token)


def _manifest_plan(
    path: Path, target: str, plugin_key: str | None, token_file: Path | None, limits: Limits
) -> _Plan:
    """A plan for an Argo plugin folder, plugin.yaml or ConfigMap (`container`), or an argoplug bundle."""
    from argoplug.agent.plugins import PluginError, load_container

    kind = _manifest_kind(path)
    if kind == "bundle":
        if token_file is not None:
            raise _UsageError(f"--token-file is not for {target}: a bundle is served with a fresh token file")
        notes = [f"Checking the argoplug bundle {target}, started as argoplug run starts it."]
        return _Plan(
            [plugin_key] if plugin_key else [], notes, launcher=_sidecars_launcher(target, None, limits)
        )
    try:
        container = load_container(path)
    except PluginError as exc:
        raise _UsageError(str(exc)) from None
    if shutil.which(container.argv[0]) is None:
        raise _UsageError(
            f"{target}: the sidecar's command {container.argv[0]!r} is not found here (it was meant for "
            f"image {container.image or '(none)'}): run the image yourself and check "
            f"http://localhost:{container.port}"
        )
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", container.port)) == 0:
            raise _UsageError(
                f"{target}: port {container.port}, where the plugin listens, is already in use here"
            )
    _check_token_path(token_file or Path(DEFAULT_TOKEN_FILE), target)
    key = plugin_key or container.plugin
    notes = [f"Checking the Argo plugin {container.plugin} ({target}), its sidecar command started here."]
    if not plugin_key:
        notes.append(f"Plugin key: {key!r}, the plugin's name.")
    return _Plan([key], notes, launcher=_sidecars_launcher(target, token_file, limits))


def _manifest_kind(path: Path) -> str:
    """'container' (Argo plugin folder, plugin.yaml, ConfigMap) or 'bundle'; raises _UsageError otherwise."""
    if path.is_dir():
        if (path / "plugin.yaml").is_file():
            return "container"
        if (path / "argoplug.yaml").is_file():
            return "bundle"
        raise _UsageError(f"{path}: the folder holds neither plugin.yaml nor argoplug.yaml")
    import yaml

    try:
        first = next((d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None), None)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise _UsageError(f"cannot read {path}: {exc}") from None
    if isinstance(first, dict) and first.get("kind") in ("ExecutorPlugin", "ConfigMap"):
        return "container"
    if isinstance(first, dict) and "plugins" in first and "kind" not in first:
        return "bundle"
    raise _UsageError(
        f"{path}: not an Argo plugin.yaml (kind ExecutorPlugin), a built ConfigMap (kind ConfigMap) nor an "
        "argoplug bundle (a mapping with `plugins`)"
    )


def _check_token_path(path: Path, target: str) -> None:
    """Raise _UsageError when the token file is missing and cannot be created (e.g. /var/run as non-root)."""
    if path.is_file():
        return
    parent = next((p for p in [path.parent, *path.parent.parents] if p.exists()), Path("/"))
    if not os.access(parent, os.W_OK):
        raise _UsageError(
            f"{target}: the plugin reads its token from {path}, which does not exist and cannot be "
            f"created here ({parent} is not writable): run as a user who may create it, or give "
            "--token-file PATH for a plugin that reads it there"
        )


def _served_keys(url: str) -> tuple[str, ...]:
    """The plugin keys an argoplug server lists at `GET /healthz`; () for a server that does not."""
    try:
        listed = httpx.get(f"{url.rstrip('/')}/healthz", timeout=5.0).json().get("plugins")
    except (httpx.HTTPError, ValueError, AttributeError):
        return ()
    return tuple(str(key) for key in listed) if isinstance(listed, list) else ()


def _argoplug_launcher(plugin: str, limits: Limits) -> Launcher:
    """Start `argoplug serve --plugin PLUGIN` (`argoplug.sidecar.Sidecar`) with a fresh token file."""

    def launch() -> Launched:
        from argoplug.sidecar import Sidecar, SidecarError

        sidecar = Sidecar([plugin], health_timeout=limits.start_fail)
        try:
            sidecar.start()
        except SidecarError as exc:
            sidecar.close()
            raise LaunchError(str(exc)) from None
        said = f"Started: argoplug serve --plugin {plugin} on {sidecar.url}, token file {sidecar.token_file}."
        return Launched(sidecar.url, sidecar.token, sidecar.close, _served_keys(sidecar.url), said)

    return launch


def _sidecars_launcher(target: str, token_file: Path | None, limits: Limits) -> Launcher:
    """Start what `argoplug run --plugin TARGET` starts (`argoplug.agent.plugins.PluginSidecars`)."""

    def launch() -> Launched:
        from argoplug.agent.plugins import PluginError, PluginSidecars

        workdir = Path(tempfile.mkdtemp(prefix="argoplug-check-"))
        said: list[str] = []
        sidecars = PluginSidecars(
            [target], workdir=workdir, token_file=token_file, say=said.append, wait_timeout=limits.start_fail
        )

        def stop() -> None:
            sidecars.close()
            shutil.rmtree(workdir, ignore_errors=True)

        try:
            endpoint = sidecars.start()[0]
        except PluginError as exc:
            stop()
            raise LaunchError(str(exc)) from None
        return Launched(
            endpoint.url, endpoint.token or None, stop, _served_keys(endpoint.url), "\n".join(said)
        )

    return launch


_STYLE = {"PASS": "green", "FAIL": "bold red", "WARN": "yellow", "SKIP": "dim"}


def _print_report(console: Console, results: Mapping[str, Sequence[Verdict]], seed: int) -> None:
    """Print each verdict as `STATUS rule: saw`, the contract rule beneath; then the totals."""
    from rich.text import Text

    counts = dict.fromkeys(_STYLE, 0)
    for key, verdicts in results.items():
        console.print(Text(f"\nPlugin key {key!r}:" if key else "\nThe server:", style="bold"))
        for verdict in verdicts:
            counts[verdict.status] += 1
            line = Text(f"{verdict.status:<4} ", style=_STYLE[verdict.status])
            line.append(f"{verdict.rule}: ", style="bold")
            line.append(verdict.saw)
            console.print(line)
            console.print(Text(f"     contract {verdict.contract}", style="dim"))
    totals = f"{counts['PASS']} passed, {counts['WARN']} warnings, {counts['FAIL']} failed"
    if counts["SKIP"]:
        totals += f", {counts['SKIP']} skipped"
    console.print(Text(f"\n{totals}. Seed {seed}: --seed {seed} sends the same requests again."))
