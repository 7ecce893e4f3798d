"""The ready plugins, one module each, registered as entry points (group `argoplug.plugins`).

Nothing is imported here: the registry loads a plugin module only when its entry point is asked for.
"""
