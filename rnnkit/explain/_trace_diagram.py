"""The unrolled network of a `Trace`, drawn with matplotlib: one row per layer direction, one
cell box per step, `x_t` coming in from below, `h_t` carried to the right, outputs going up.

Small layers (at most `SMALL` values per vector) have the numbers on the arrows; larger ones the
vectors' norms. Masked steps are greyed; long sequences show their first and last steps with
an ellipsis between (`max_steps`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnkit.explain._trace_text import SMALL, num, shown_steps

GAP = 2.6  # least distance between cell centres, in data units
CHAR = 0.12  # width of a character of the 6.5-point state labels, in data units
BOX_W, BOX_H = 1.3, 1.0
INCH = 0.42  # inches per data unit, both ways
LINE = 0.27  # data units per line of 7-point text
TITLE = 0.6  # room for a row's title
INK, GREY, CELL, SKIP = "#222222", "#aaaaaa", "#dbe8f6", "#f0f0f0"


def label(values, name: str) -> str:
    """An arrow's numbers: `name = value` for one value, a column of values for a few, the
    norm `‖name‖ = …` for more."""
    values = np.asarray(values)
    if values.size == 1:
        return f"{name} = {num(values[0], 3)}"
    if values.size <= SMALL:
        return name + "\n" + "\n".join(num(v, 3) for v in values)
    return f"‖{name}‖\n{num(np.linalg.norm(values), 3)}"


def _state_label(direction, states, n: int) -> str:
    return "\n".join(label(v, f"{name}_{n}") for name, v in zip(direction.state_names, states))


def _arrow(ax, start, end, colour):
    ax.annotate(
        "",
        xy=end,
        xytext=start,
        arrowprops={"arrowstyle": "-|>", "color": colour, "lw": 1.4, "shrinkA": 0, "shrinkB": 0},
    )


def _cell(ax, cx, cy, step, n: int, kind: str, backwards: bool):
    from matplotlib.patches import FancyBboxPatch

    skipped = step.skipped
    box = FancyBboxPatch(
        (cx - BOX_W / 2, cy - BOX_H / 2),
        BOX_W,
        BOX_H,
        boxstyle="round,pad=0.05",
        facecolor=SKIP if skipped else CELL,
        edgecolor=GREY if skipped else INK,
        linestyle="--" if skipped else "-",
        lw=1.2,
    )
    ax.add_patch(box)
    # Numbered as the arrows are (x_n, h_n); a layer that reads backwards also names t, the
    # step's position in the sequence.
    if backwards:  # the box holds three lines: the kind on one, then the step and its t
        text = f"{kind.replace(chr(10), ' ')}\nstep {n}\nt={step.t}"
    else:
        text = f"{kind}\nstep {n}"
    text += "\nmasked" if skipped else ""
    ax.text(cx, cy, text, ha="center", va="center", fontsize=8, color=GREY if skipped else INK)


def _draw_step(ax, step, n: int, cx: float, cy: float, kind: str, backwards: bool):
    colour = GREY if step.skipped else INK
    _cell(ax, cx, cy, step, n, kind, backwards)
    bottom, top = cy - BOX_H / 2 - 0.05, cy + BOX_H / 2 + 0.05
    _arrow(ax, (cx, bottom - 1.0), (cx, bottom), colour)
    ax.text(
        cx, bottom - 1.1, label(step.x, f"x_{n}"), ha="center", va="top", fontsize=7, color=colour
    )
    _arrow(ax, (cx, top), (cx, top + 0.9), colour)
    ax.text(
        cx,
        top + 1.0,
        label(step.output, f"y_{n}"),
        ha="center",
        va="bottom",
        fontsize=7,
        color=colour,
    )


def _draw_carry(ax, direction, states, n: int, x0: float, x1: float, cy: float, colour):
    _arrow(ax, (x0, cy), (x1, cy), colour)
    ax.text(
        (x0 + x1) / 2,
        cy + 0.08,
        _state_label(direction, states, n),
        ha="center",
        va="bottom",
        fontsize=6.5,
        color=colour,
    )


def _title(layer, direction) -> str:
    reads = ""
    if direction.go_backwards:
        reads = "; go_backwards: reads the last t first, drawn in reading order"
    which = f" ({direction.direction}: {direction.name})" if layer.bidirectional else ""
    units = f"{direction.units} unit{'s' if direction.units != 1 else ''}"
    return f"{layer.class_name} '{layer.name}'{which}, {units}{reads}"


def _kind(direction) -> str:
    if direction.kind == "SimpleRNN":
        return f"RNN\n{direction.activations.get('activation', '')}"
    return direction.kind or direction.cell


def _draw_ellipsis(ax, cx: float, cy: float, hidden: int):
    ax.text(cx, cy, "…", ha="center", va="center", fontsize=18, color=INK)
    ax.text(cx, cy - 0.45, f"{hidden} steps\nnot drawn", ha="center", va="top", fontsize=7)


def draw_direction(ax, layer, direction, cy: float, max_steps: int, gap: float):
    """One row: the title, then per shown step the state coming in and the cell."""
    steps = direction.steps
    left = -gap * 0.75
    title = _title(layer, direction)
    ax.text(left - 0.4, ax.get_ylim()[1], title, fontsize=9, fontweight="bold", va="top")
    shown = shown_steps(len(steps), max_steps)
    x = left  # where the next arrow starts
    for col, position in enumerate(shown):
        cx = col * gap
        if position is None:
            _arrow(ax, (x, cy), (cx - 0.35, cy), INK)
            _draw_ellipsis(ax, cx, cy, len(steps) - len(shown) + 1)
            x = cx + 0.35
            continue
        step = steps[position]
        colour = GREY if step.skipped else INK
        if col > 0 and shown[col - 1] is None:  # after the ellipsis: no numbers on the arrow
            _arrow(ax, (x, cy), (cx - BOX_W / 2 - 0.05, cy), colour)
        else:
            _draw_carry(
                ax, direction, step.states_in, position, x, cx - BOX_W / 2 - 0.05, cy, colour
            )
        _draw_step(ax, step, position + 1, cx, cy, _kind(direction), direction.go_backwards)
        x = cx + BOX_W / 2 + 0.05
    last = steps[-1]
    colour = GREY if last.skipped else INK
    _draw_carry(ax, direction, last.states, len(steps), x, x + gap - BOX_W, cy, colour)


def _lines(direction, which: str) -> int:
    """How many text lines the labels below (`'x'`) or above (`'y'`) the cells take."""
    sizes = [np.asarray(s.x if which == "x" else s.output).size for s in direction.steps]
    size = max(sizes)
    return 1 if size == 1 or size > SMALL else size + 1


def _gap(direction) -> float:
    """Distance between cell centres that leaves room for the widest state label."""
    chars = max(
        len(line)
        for step in direction.steps
        for line in _state_label(direction, step.states, 0).splitlines()
    )
    return BOX_W + 0.5 + CHAR * (chars + 1)


def _extent(direction) -> tuple[float, float]:
    """(bottom, top) of a row in data units, the cell at 0, room for the labels and title."""
    bottom = -BOX_H / 2 - 1.5 - LINE * _lines(direction, "x")
    top = BOX_H / 2 + 1.2 + LINE * _lines(direction, "y") + TITLE
    return bottom, top


def plot(trace, path=None, max_steps: int = 12):
    """Draw `trace` (see the module docstring) and return the Figure; with `path`, write it
    as PNG or SVG by the suffix."""
    from matplotlib.figure import Figure  # a Figure without pyplot: no display, Agg canvas

    if path is not None and Path(path).suffix.lower() not in (".png", ".svg"):
        raise ValueError(
            f"trace.plot writes PNG or SVG, chosen by the file's suffix; got {str(path)!r}. "
            "Use e.g. plot('trace.png') or plot('trace.svg')."
        )
    rows = [(layer, d) for layer in trace.layers for d in layer.directions]
    columns = max(len(shown_steps(len(d.steps), max_steps)) for _, d in rows)
    gap = max(GAP, *(_gap(d) for _, d in rows))
    left, right = -gap * 1.05, (columns - 1) * gap + gap * 0.95
    extents = [_extent(d) for _, d in rows]
    heights = [top - bottom for bottom, top in extents]
    figure = Figure(figsize=((right - left) * INCH, sum(heights) * INCH), dpi=150)
    y = 1.0
    for (layer, direction), (bottom, top), height in zip(rows, extents, heights):
        y -= height / sum(heights)
        ax = figure.add_axes((0, y, 1, height / sum(heights)))
        ax.set_xlim(left, right)
        ax.set_ylim(bottom, top)
        ax.set_axis_off()
        draw_direction(ax, layer, direction, 0.0, max_steps, gap)
    if path is not None:
        figure.savefig(path, bbox_inches="tight", pad_inches=0.15)
    return figure
