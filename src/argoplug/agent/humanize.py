"""Durations and times as Argo words them (`argoproj/pkg/humanize`, go-humanize's `CustomRelTime`).

`report` uses them for `argo get`'s columns and header; `retries` for its "Backoff for ..." message.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

__all__ = ["duration", "short_duration", "timestamp"]

# go-humanize's `CustomRelTime` tables used by `argoproj/pkg/humanize`: (below seconds, format, divide by).
_SHORT = (
    (1, "0s", 1), (2, "1s", 1), (60, "{}s", 1), (120, "1m", 1), (3600, "{}m", 60), (7200, "1h", 1),
    (86400, "{}h", 3600), (172800, "1d", 1), (604800, "{}d", 86400),
)  # fmt: skip
_LONG = (
    (1, "0 seconds", 1), (2, "1 second", 1), (60, "{} seconds", 1), (120, "1 minute", 1),
    (3600, "{} minutes", 60), (7200, "1 hour", 1), (86400, "{} hours", 3600), (172800, "1 day", 1),
    (604800, "{} days", 86400),
)  # fmt: skip
_AGO = (
    (1, "now", 1), (2, "1 second ago", 1), (60, "{} seconds ago", 1), (120, "1 minute ago", 1),
    (3600, "{} minutes ago", 60), (7200, "1 hour ago", 1), (86400, "{} hours ago", 3600),
    (172800, "1 day ago", 1), (604800, "{} days ago", 86400),
)  # fmt: skip


def _relative(seconds: float, table: Sequence[tuple[int, str, int]]) -> str:
    """go-humanize `CustomRelTime`: the first magnitude above `seconds` (else the last), in whole units."""
    seconds = max(seconds, 0.0)
    _, text, unit = next((row for row in table if seconds < row[0]), table[-1])
    return text.format(int(seconds // unit))


def short_duration(seconds: float) -> str:
    """A node's duration as `argo get` shows it (`RelativeDurationShort`): `0s`, `19s`, `1m`, `2h`."""
    return _relative(seconds, _SHORT)


def duration(seconds: float) -> str:
    """The workflow's duration (`humanize.Duration`): `36 seconds`, `1 minute 5 seconds`, `2 hours 3 minutes`.

    Go's words, including its `1 minute 1 seconds`.
    """
    truncated = _relative(seconds, _LONG)
    if seconds < 60:
        return truncated
    if seconds < 3600:
        return f"{truncated} {int(seconds % 60)} seconds"
    if seconds < 86400:
        return f"{truncated} {int(seconds // 60 % 60)} minutes"
    return f"{truncated} {int(seconds // 3600 % 24)} hours"


def timestamp(when: float, now: float) -> str:
    """A time as `argo get` shows it (`humanize.Timestamp`): `Thu Sep 15 21:44:09 -0700 (36 seconds ago)`."""
    text = time.strftime("%a %b %d %H:%M:%S %z", time.localtime(when))
    return f"{text} ({_relative(now - when, _AGO)})"
