"""`model.summary()`: the table Keras 3 prints, drawn with rich."""

from __future__ import annotations

import math
import shutil

import rich.console
import rich.markup
import rich.table

from rnnkit.layers._input import InputLayer


def readable_size(num_bytes: float) -> str:
    """`124` -> `'124.00 B'`, `2592000` -> `'2.47 MB'` (powers of 1024, as Keras)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if num_bytes < 1024:
            return f"{num_bytes:.2f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.2f} PB"


def _size(weights) -> tuple[int, int]:
    unique = {id(w): w for w in weights}.values()
    count = sum(math.prod(w.shape) for w in unique)
    return count, sum(math.prod(w.shape) * w.element_size() for w in unique)


def _format_shape(shape) -> str:
    if shape is None:
        return "?"
    if isinstance(shape, tuple) and all(s is None or isinstance(s, int) for s in shape):
        return "(" + ", ".join(str(s) for s in shape) + ")"
    return "[" + ", ".join(_format_shape(s) for s in shape) + "]"


def _sequential_like(model) -> bool:
    nodes = getattr(model, "_nodes", None)
    if nodes is None or type(model).__name__ == "Sequential" or not model.inputs:
        return True
    if len(model.inputs) > 1 or len(model.outputs) > 1:
        return False
    seen = set()
    for node in nodes:
        if len(node.input_tensors) > 1 or id(node.layer) in seen:
            return False
        seen.add(id(node.layer))
    # A chain: every node feeds the next one.
    return all(b.input_tensors[0].node is a for a, b in zip(nodes, nodes[1:]))


def _connections(model, layer) -> str:
    parts = []
    local = {}
    for i, node in enumerate(n for n in layer.inbound_nodes if model._owns(n)):
        local[id(node)] = i
    for node in layer.inbound_nodes:
        if not model._owns(node):
            continue
        for t in node.input_tensors:
            source = [n for n in t.node.layer.inbound_nodes if model._owns(n)]
            index = next((i for i, n in enumerate(source) if n is t.node), 0)
            parts.append(f"{rich.markup.escape(t.node.layer.name)}[{index}][{t.index}]")
    return ", ".join(parts) or "-"


def print_summary(model, line_length=None, print_fn=None, show_trainable=False) -> None:
    sequential_like = _sequential_like(model)
    if sequential_like:
        header = ["Layer (type)", "Output Shape", "Param #"]
        justify = ["left", "left", "right"]
        positions, width = [0.45, 0.80, 1.0], 88
    else:
        header = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
        justify = ["left", "left", "right", "left"]
        positions, width = [0.3, 0.56, 0.74, 1.0], 108
    if show_trainable:
        width += 12
        positions = [p * 0.9 for p in positions] + [1.0]
        header.append("Trainable")
        justify.append("center")
    line_length = line_length or min(width, shutil.get_terminal_size().columns - 4)
    widths, current = [], 0
    for pos in positions:
        widths.append(int(pos * line_length) - current)
        current += widths[-1]
    table = rich.table.Table(
        *(rich.table.Column(h, justify=j, width=w) for h, j, w in zip(header, justify, widths)),
        width=line_length,
        show_lines=True,
    )
    layers = model.layers
    if type(model).__name__ == "Sequential" or not model.inputs:
        layers = [layer for layer in layers if not isinstance(layer, InputLayer)]
    for layer in layers:
        name = f"{rich.markup.escape(layer.name)} ({type(layer).__name__})"
        if layer.built:
            params = f"{sum(math.prod(w.shape) for w in layer.weights):,}"
        else:
            params = "0 (unbuilt)"
        row = [name, _format_shape(layer.summary_shape()), params]
        if not sequential_like:
            row.append(_connections(model, layer))
        if show_trainable:
            row.append(("Y" if layer.trainable else "N") if layer.weights else "-")
        table.add_row(*row)

    trainable, trainable_bytes = _size(model.trainable_weights)
    frozen, frozen_bytes = _size(model.non_trainable_weights)
    console = rich.console.Console(highlight=False, width=max(line_length + 2, 40))
    if print_fn is not None:
        console = rich.console.Console(
            highlight=False, force_terminal=False, color_system=None, width=max(line_length + 2, 40)
        )
        console.begin_capture()
    console.print(f'[bold]Model: "{rich.markup.escape(model.name)}"[/]')
    console.print(table)
    console.print(
        f"[bold] Total params:[/] {trainable + frozen:,} "
        f"({readable_size(trainable_bytes + frozen_bytes)})"
    )
    console.print(f"[bold] Trainable params:[/] {trainable:,} ({readable_size(trainable_bytes)})")
    console.print(f"[bold] Non-trainable params:[/] {frozen:,} ({readable_size(frozen_bytes)})")
    if not model.built:
        console.print(
            "[bold] Not built:[/] the input shape is unknown, so layers have no weights yet. "
            "Start the model with Input(shape=(timesteps, features)), pass "
            "input_shape=(timesteps, features) to the first layer, call "
            "model.build((None, timesteps, features)), or call the model on data."
        )
    if print_fn is not None:
        print_fn(console.end_capture())
