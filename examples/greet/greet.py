"""The plugin of README.md's "Write a plugin": serve it with `argoplug serve --plugin greet:greet`."""

import msgspec

from argoplug import PermanentError, Plugin, Result, Task


class GreetArgs(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    times: int = 1  # Argo substitutes parameters as strings: "3" is accepted here


greet = Plugin("greet", args=GreetArgs, description="Greets by name")


@greet.handler
def greet_by_name(task: Task, args: GreetArgs) -> Result:
    if not args.name.strip():
        raise PermanentError("`name` is empty: give the name to greet")
    return Result.succeeded(outputs={"greeting": " ".join([f"hello {args.name}"] * args.times)})
