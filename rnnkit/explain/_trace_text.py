"""A `Trace` as plain text: per step a table of the parts, and each number's arithmetic written
out as the notes write it, for layers small enough to read (at most `SMALL` units):

    h_1 = max(0, 0.5 × 1.8 + 0 × (−0.5) + 0.0) = 0.9

Larger layers get each vector summarised: its norm, min, max and first values.
"""

from __future__ import annotations

import unicodedata

import numpy as np

SMALL = 4  # units (and input features) up to which every number is written out: the notes' size
FIRST = 3  # values shown of a summarised vector

EQUATIONS = {
    "SimpleRNN": ["h_t = {activation}(x_t W + h_{{t-1}} U + b)"],
    "LSTM": [
        "i, f, o = {recurrent_activation}(x_t W_k + h_{{t-1}} U_k + b_k)   "
        "g = {activation}(x_t W_g + h_{{t-1}} U_g + b_g)",
        "c_t = f × c_{{t-1}} + i × g    h_t = o × {activation}(c_t)",
    ],
    "GRU reset_after": [
        "z, r = {recurrent_activation}(x_t W_k + b_k + h_{{t-1}} U_k + b'_k)",
        "h̃ = {activation}(x_t W_h + b_h + r ⊙ (h_{{t-1}} U_h + b'_h))",
        "h_t = z × h_{{t-1}} + (1 − z) × h̃",
    ],
    "GRU reset_before": [
        "z, r = {recurrent_activation}(x_t W_k + h_{{t-1}} U_k + b_k)",
        "h̃ = {activation}(x_t W_h + (r ⊙ h_{{t-1}}) U_h + b_h)",
        "h_t = z × h_{{t-1}} + (1 − z) × h̃",
    ],
}


# ---------------------------------------------------------------------------- numbers
def num(value, digits: int = 4, decimal: bool = False) -> str:
    """`value` with `digits` significant digits, a real minus sign, no `-0`; `decimal=True`
    keeps a decimal point (the notes write a bias of 0 as `0.0`).

    Example:
        >>> num(-0.5), num(0.0, decimal=True), operand(-0.5), num(1.35000001)
        ('−0.5', '0.0', '(−0.5)', '1.35')
    """
    value = float(value)
    text = f"{value:.{digits}g}"
    if text in ("-0", "0"):
        text = "0"
    if decimal and not any(c in text for c in ".enia"):
        text += ".0"
    return text.replace("-", "−")


def operand(value, digits: int = 4) -> str:
    """A factor in a product: negative numbers in parentheses, `0 × (−0.5)`."""
    text = num(value, digits)
    return f"({text})" if text.startswith("−") else text


def bias_term(value, digits: int = 4) -> str:
    """A bias as a term of a sum: `0.0` (the notes' way), negative ones in parentheses."""
    text = num(value, digits, decimal=True)
    return f"({text})" if text.startswith("−") else text


def wrap(activation: str, inner: str) -> str:
    """`inner` inside the activation as the notes write it: `max(0, …)`, `tanh(…)`, `σ(…)`."""
    if activation == "relu":
        return f"max(0, {inner})"
    if activation == "sigmoid":
        return f"σ({inner})"
    if activation == "linear":
        return f"({inner})"
    return f"{activation}({inner})"


def vector(values, digits: int = 4) -> str:
    """A short vector written out, `[0.5, −1.2]`, or summarised when longer than `SMALL`."""
    values = np.asarray(values)
    if values.size <= SMALL:
        return "[" + ", ".join(num(v, digits) for v in values) + "]"
    first = ", ".join(num(v, digits) for v in values[:FIRST])
    return f"‖·‖={num(np.linalg.norm(values), digits)} [{first}, …] ({values.size} values)"


# ---------------------------------------------------------------------------- arithmetic
def part_terms(part, unit: int, digits: int) -> str:
    """Unit `unit` of one part: `0.5 × 1.8` for a product, `0.0` for a bias, the value in
    parentheses for a product over more than `SMALL` inputs."""
    if part.vector is None:
        return bias_term(part.bias[unit], digits)
    if part.vector.size <= SMALL:
        terms = " + ".join(
            f"{operand(v, digits)} × {operand(w, digits)}"
            for v, w in zip(part.vector, part.matrix[:, unit])
        )
    else:
        dot = part.vector @ part.matrix[:, unit]
        terms = f"({part.name.split(' ⊙ ')[-1].strip('()')}: {num(dot, digits)})"
    if part.bias is not None:
        terms = f"{terms} + {bias_term(part.bias[unit], digits)}"
    if part.gate is not None:
        terms = f"{operand(part.gate[unit], digits)} × ({terms})"
    return terms


def gate_line(gate, symbol: str, unit: int, digits: int) -> str:
    """`h_1 = max(0, 0.5 × 1.8 + 0 × (−0.5) + 0.0) = 0.9`."""
    inner = " + ".join(part_terms(p, unit, digits) for p in gate.parts)
    return f"{symbol} = {wrap(gate.activation, inner)} = {num(gate.value[unit], digits)}"


def update_lines(direction, step, n: int, unit: int, digits: int) -> list[str]:
    """The state update after the gates: `c_t` and `h_t` for an LSTM, `h_t` for a GRU."""
    sub = _unit(direction, unit)
    values = {g.name: g.value[unit] for g in step.gates}
    h_prev, h = step.states_in[0][unit], step.states[0][unit]

    def o(v):
        return operand(v, digits)

    if direction.kind == "LSTM":
        c_prev, c = step.states_in[1][unit], step.states[1][unit]
        act = direction.activations["activation"]
        return [
            f"c_{n}{sub} = f × c_{n - 1} + i × g = {o(values['f'])} × {o(c_prev)} + "
            f"{o(values['i'])} × {o(values['g'])} = {num(c, digits)}",
            f"h_{n}{sub} = o × {act}(c_{n}) = {o(values['o'])} × {act}({num(c, digits)}) = "
            f"{num(h, digits)}",
        ]
    if direction.kind == "GRU":
        z = values["z"]
        return [
            f"h_{n}{sub} = z × h_{n - 1} + (1 − z) × h̃ = {o(z)} × {o(h_prev)} + "
            f"(1 − {num(z, digits)}) × {o(values['h̃'])} = {num(h, digits)}"
        ]
    return []


def _unit(direction, unit: int) -> str:
    return "" if direction.units == 1 else f"[{unit}]"


def arithmetic(direction, step, n: int, digits: int) -> list[str]:
    """Every number of step `n` (1-based, in reading order) written out, unit by unit."""
    lines = []
    for unit in range(direction.units):
        sub = _unit(direction, unit)
        for gate in step.gates:
            lines.append(gate_line(gate, f"{gate.name}_{n}{sub}", unit, digits))
        lines.extend(update_lines(direction, step, n, unit, digits))
    return lines


# ---------------------------------------------------------------------------- tables
def width(text: str) -> int:
    """Columns `text` takes: combining marks (the tilde of `h̃`) take none."""
    return sum(not unicodedata.combining(c) for c in text)


def table(header: list[str], rows: list[list[str]], indent: str = "    ") -> list[str]:
    """Plain-text columns: the first left-aligned, the rest right-aligned."""
    widths = [max(width(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def pad(text, size, left):
        space = " " * (size - width(text))
        return text + space if left else space + text

    def line(cells):
        padded = [pad(c, w, i == 0) for i, (c, w) in enumerate(zip(cells, widths))]
        return (indent + "  ".join(padded)).rstrip()

    return [line(header), *(line(r) for r in rows)]


def _cells(values, small: bool, digits: int) -> list[str]:
    values = np.asarray(values, dtype=float)
    if small:
        return [num(v, digits) for v in values]
    first = ", ".join(num(v, digits) for v in values[:FIRST])
    extremes = (values.min(), values.max())
    return [num(np.linalg.norm(values), digits), *(num(v, digits) for v in extremes), first]


def step_rows(direction, step) -> list[tuple[str, np.ndarray]]:
    """`(label, vector)` for the rows of a step's table: each gate's parts, sum and value,
    then the new states and the output."""
    rows = []
    single = len(step.gates) == 1
    for gate in step.gates:
        prefix = "" if single else f"{gate.name}: "
        rows += [(prefix + part.name, part.value) for part in gate.parts]
        rows.append((prefix + "sum", gate.sum))
        label = f"{gate.name}_t" if single else gate.name
        rows.append((f"{label} = {wrap(gate.activation, 'sum')}", gate.value))
    if not single:
        rows += [(f"{name}_t", value) for name, value in zip(direction.state_names, step.states)]
        if not direction.decomposed:
            rows.append(("y_t (output)", step.output))
    return rows


def step_table(direction, step, digits: int) -> list[str]:
    small = direction.units <= SMALL
    if small:
        header = [""] + [f"unit {u}" for u in range(direction.units)]
    else:
        header = ["", "‖·‖", "min", "max", f"first {FIRST}"]
    rows = [[label, *_cells(v, small, digits)] for label, v in step_rows(direction, step)]
    return table(header, rows)


# ---------------------------------------------------------------------------- layout
def step_text(direction, step, n: int, digits: int) -> list[str]:
    names = direction.state_names
    head = f"  step {n} (t={step.t}):  x_{n} = {vector(step.x, digits)}"
    before = "  ".join(
        f"{name}_{n - 1} = {vector(v, digits)}" for name, v in zip(names, step.states_in)
    )
    if step.skipped:
        carried = ", ".join(f"{name}_{n} = {name}_{n - 1}" for name in names)
        return [
            f"{head}  masked: skipped, state carried ({carried}); output "
            f"{vector(step.output, digits)}"
        ]
    lines = [f"{head}  {before}", *step_table(direction, step, digits)]
    if direction.decomposed and direction.units <= SMALL:
        lines += ["    " + line for line in arithmetic(direction, step, n, digits)]
    return lines


def equations(direction) -> list[str]:
    if direction.kind is None:
        return []
    key = direction.kind
    if key == "GRU":
        key = "GRU reset_after" if direction.reset_after else "GRU reset_before"
    names = {"recurrent_activation": "σ", **direction.activations}
    names = {k: "σ" if v == "sigmoid" else v for k, v in names.items()}
    return ["  " + line.format(**names) for line in EQUATIONS[key]]


def direction_header(layer, direction) -> str:
    units = f"{direction.units} unit{'s' if direction.units != 1 else ''}"
    acts = ", ".join(f"{k} {v}" for k, v in direction.activations.items())
    form = "" if direction.reset_after is None else f", reset_after={direction.reset_after}"
    which = f" — {direction.direction}: '{direction.name}'" if layer.bidirectional else ""
    head = f"{layer.class_name} '{layer.name}'{which} ({direction.cell}: {units}, {acts}{form})"
    return head + (f"\n  note: {direction.note}" if direction.note else "")


def shown_steps(count: int, max_steps: int | None) -> list[int | None]:
    """Positions of the steps to show: all, or the first and last ones with None for the gap."""
    if max_steps is not None and (isinstance(max_steps, bool) or max_steps < 2):
        raise ValueError(
            f"max_steps is how many steps to show (the first and last ones), at least 2, or "
            f"None for all; got {max_steps!r}."
        )
    if max_steps is None or count <= max_steps:
        return list(range(count))
    head = (max_steps + 1) // 2
    tail = max_steps - head
    return [*range(head), None, *range(count - tail, count)]


def direction_text(layer, direction, max_steps, digits) -> list[str]:
    lines = [direction_header(layer, direction), *equations(direction)]
    steps = direction.steps
    for position in shown_steps(len(steps), max_steps):
        if position is None:
            hidden = len(steps) - len(shown_steps(len(steps), max_steps)) + 1
            lines.append(f"  … {hidden} steps not shown (show(max_steps=None) shows all) …")
            continue
        lines += step_text(direction, steps[position], position + 1, digits)
    return lines


def render(trace, max_steps: int | None = 12, digits: int = 4) -> str:
    lines = [
        f"Trace of sample {trace.sample} (steps numbered from 1 in reading order; h_0 is "
        "the starting state)"
    ]
    for layer in trace.layers:
        if layer.bidirectional:
            lines.append(
                f"\n{layer.class_name} '{layer.name}': both directions, merged by "
                f"{layer.merge_mode!r} (backward outputs flipped into time order first)"
            )
        for direction in layer.directions:
            lines.append("")
            lines += direction_text(layer, direction, max_steps, digits)
    return "\n".join(lines)
