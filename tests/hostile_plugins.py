"""Plugins for tests/test_hostile_input.py: one with a Secret argument, one whose outputs hold lone
surrogates, a sync handler that blocks, and a no-op."""

from __future__ import annotations

import os
import time
from typing import Any

import msgspec

from argoplug import PermanentError, Plugin, Result, Secret, Task


class Login(msgspec.Struct, forbid_unknown_fields=True):
    user: str
    password: Secret[str]
    # What the handler does with the password: "" succeeds; "raise", "permanent", "temporary", "output"
    # put it in an exception's text, a Failed message, a Running message or an output.
    leak: str = ""


secretive = Plugin("secretive", args=Login)


@secretive.handler
def login(task: Task, args: Login) -> Result:
    if args.leak == "raise":
        raise RuntimeError(f"login {args.user}:{args.password} refused")
    if args.leak == "permanent":
        raise PermanentError(f"the password {args.password} is wrong")
    if args.leak == "temporary":
        return Result.running(f"retrying with {args.password}", requeue=5)
    if args.leak == "output":
        return Result.succeeded(
            outputs={"user": args.user, "echo": args.password, "as-json": [args.password]}
        )
    return Result.succeeded(outputs={"user": args.user})


fsname = Plugin("fsname")


@fsname.handler
def undecodable(task: Task, args: dict[str, Any]) -> Result:
    # What os.fsdecode gives for a non-UTF-8 file name: lone surrogates.
    name = os.fsdecode(b"report-\xff.csv")
    return Result.succeeded(f"wrote {name}", outputs={"file": name, os.fsdecode(b"k\xfe"): "v"})


blocking = Plugin("blocking")


@blocking.handler
def block(task: Task, args: dict[str, Any]) -> Result:
    time.sleep(float(args.get("seconds", 5)))
    return Result.succeeded()


noop = Plugin("noop")


@noop.handler
def nothing(task: Task, args: dict[str, Any]) -> Result:
    return Result.succeeded(outputs={"seen": args})


plugins = [secretive, fsname, blocking, noop]
