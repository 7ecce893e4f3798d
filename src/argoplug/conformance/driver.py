"""The driver of `argoplug check`: `run_checks` sends each rule's requests to a running server and has
`argoplug.conformance.rules` judge the answers; `check_launched` starts one first (a `Launcher`) and times
its first answer. `argoplug.conformance.command` (the command line) and the tests call them.
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import json
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from argoplug.conformance.prober import Prober
from argoplug.conformance.replies import judge_replies
from argoplug.conformance.rules import (
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
    Exchange,
    Limits,
    Verdict,
    judge_answer_time,
    judge_bad_requests,
    judge_concurrency,
    judge_foreign,
    judge_own,
    judge_refused,
    judge_start,
    judge_tolerance,
    judge_vector,
)
from argoplug.conformance.vectors import VECTORS, agent_request, with_unknown_fields
from argoplug.protocol import EXECUTE_PATH

__all__ = [
    "LaunchError",
    "Launched",
    "Launcher",
    "Limits",
    "Verdict",
    "check_launched",
    "run_checks",
]

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
    with Prober(endpoint_url, limits) as prober:
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
    with Prober(url, limits) as prober:
        while True:
            exchange = prober.post("first call", body, token=None)
            if exchange.status is not None or time.monotonic() - started > limits.start_fail:
                return exchange
            time.sleep(0.05)


class _Checks:
    """One run of the checks against one server for one plugin key, in the order they are reported."""

    def __init__(
        self,
        prober: Prober,
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
