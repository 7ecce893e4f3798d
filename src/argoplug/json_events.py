"""Reading a JSON body as a stream of parser events, for bodies nested deeper than msgspec decodes.

msgspec (like every recursive decoder) stops at Python's recursion limit; ijson's yajl-based parser
reads any depth with constant stack. Used only on that path, so ijson is imported there.
"""

from __future__ import annotations

__all__ = ["template_plugin_keys"]

_OPEN = frozenset({"start_map", "start_array"})
_CLOSE = frozenset({"end_map", "end_array"})


def template_plugin_keys(body: bytes) -> list[str]:
    """The keys of the object at `template.plugin` of a JSON document, in order ([] when absent).

    Memory stays bounded whatever the depth (only the path of the first three levels is kept).
    Raises ValueError, with the parser's message, for malformed JSON (invalid UTF-8 included) or a
    document that is not an object.
    """
    import ijson

    depth = 0
    path: list[str] = []
    keys: list[str] = []
    try:
        for event, value in ijson.basic_parse(body):
            if event in _OPEN:
                if depth == 0 and event != "start_map":
                    raise ValueError("expected a JSON object")
                depth += 1
            elif event in _CLOSE:
                depth -= 1
                del path[depth:]
            elif event == "map_key" and depth <= 3:
                del path[depth - 1 :]
                path.append(value)
                if depth == 3 and path[0] == "template" and path[1] == "plugin":
                    keys.append(value)
    except ijson.JSONError as exc:
        message = exc.args[0] if exc.args else str(exc)
        text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
        raise ValueError(f"malformed JSON: {text.splitlines()[0] if text else type(exc).__name__}") from None
    return keys
