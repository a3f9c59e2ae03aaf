"""Tiny helpers for nested structures (lists, tuples, dicts) of tensors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def flatten(structure: Any) -> list:
    """Leaves of a nested list/tuple/dict, depth first, dicts in key order."""
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten(item)]
    if isinstance(structure, dict):
        return [leaf for key in structure for leaf in flatten(structure[key])]
    return [structure]


def map_structure(fn: Callable[[Any], Any], structure: Any) -> Any:
    """Apply `fn` to every leaf, keeping the nesting (tuples stay tuples)."""
    if isinstance(structure, list):
        return [map_structure(fn, item) for item in structure]
    if isinstance(structure, tuple):
        return tuple(map_structure(fn, item) for item in structure)
    if isinstance(structure, dict):
        return {key: map_structure(fn, value) for key, value in structure.items()}
    return fn(structure)


def is_nested(structure: Any) -> bool:
    return isinstance(structure, (list, tuple, dict))
