"""Name lookup shared by the Keras-style `get(identifier)` functions."""

from __future__ import annotations


def lookup(kind: str, table: dict, name: str):
    """`table[name]`, or a ValueError listing every name `kind` knows."""
    if name not in table:
        raise ValueError(f"Unknown {kind} {name!r}. Known names: {', '.join(sorted(table))}.")
    return table[name]
