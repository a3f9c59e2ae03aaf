"""Name lookup shared by the Keras-style `get(identifier)` functions."""

from __future__ import annotations


def lookup(kind: str, table: dict, name: str):
    """`table[name]`, or a ValueError listing every name `kind` knows."""
    if name not in table:
        raise ValueError(f"Unknown {kind} {name!r}. Known names: {', '.join(sorted(table))}.")
    return table[name]


def resolve(kind: str, identifier, base: type, table: dict, example: str, accepts: str):
    """What a Keras-style `get(identifier)` returns: None or a `base` instance as given, a
    name in `table` or a `{"class_name", "config"}` dict built, a `base` subclass
    instantiated, or a plain callable as given. Anything else is a TypeError that starts
    with `accepts` (the forms `kind` takes)."""
    if identifier is None or isinstance(identifier, base):
        return identifier
    if isinstance(identifier, str):
        return lookup(kind, table, identifier)()
    if isinstance(identifier, dict):
        if "class_name" not in identifier:
            article = "An" if kind[0] in "aeiou" else "A"
            raise ValueError(
                f"{article} {kind} dict needs a 'class_name' key, e.g. {example}; "
                f"got {identifier!r}."
            )
        config = dict(identifier.get("config", {}))
        return lookup(kind, table, identifier["class_name"]).from_config(config)
    if isinstance(identifier, type) and issubclass(identifier, base):
        return identifier()
    if callable(identifier):
        return identifier
    raise TypeError(f"{accepts}; got {identifier!r}.")


def serialize(obj, base: type, example: str, note: str = "") -> dict | None:
    """`{"class_name": ..., "config": ...}` for an instance of `base`; None stays None."""
    if obj is None:
        return None
    if not isinstance(obj, base):
        raise TypeError(
            f"serialize expects an rnnkit {base.__name__} such as {example}; got {obj!r}.{note}"
        )
    return {"class_name": type(obj).__name__, "config": obj.get_config()}
