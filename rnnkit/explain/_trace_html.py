"""A `Trace` as one self-contained HTML fragment (inline style, no script, no external file), so
it displays in Jupyter and can sit inside a report: per layer direction, a table of its steps
with each gate's value and the new states, and for small layers each number's arithmetic."""

from __future__ import annotations

from html import escape

from rnnkit.explain._trace_text import (
    SMALL,
    arithmetic,
    direction_header,
    equations,
    shown_steps,
    vector,
)

MAX_STEPS = 24  # steps per table; longer sequences show their first and last ones

STYLE = """<style>
.rnnkit-trace {font-family: sans-serif; font-size: 13px}
.rnnkit-trace table {border-collapse: collapse; margin: 4px 0 14px 0}
.rnnkit-trace th, .rnnkit-trace td {border: 1px solid #ccc; padding: 2px 6px;
  text-align: right; vertical-align: top; font-family: monospace; white-space: nowrap}
.rnnkit-trace th {background: #f0f0f0}
.rnnkit-trace tr.skipped td {color: #999; background: #f7f7f7}
.rnnkit-trace td.math {text-align: left; font-size: 12px}
.rnnkit-trace pre {margin: 2px 0; color: #444}
</style>"""


def _columns(direction) -> list[str]:
    step = next((s for s in direction.steps if not s.skipped), None)
    gates = [g.name for g in step.gates] if step is not None else []
    if gates == ["h"]:
        gates = []  # a SimpleRNN's one gate is h_t itself
    return [*gates, *(f"{name}_t" for name in direction.state_names), "output"]


def _row(direction, step, n: int, columns: list[str], with_math: bool) -> str:
    values = {g.name: g.value for g in step.gates}
    values.update({f"{name}_t": v for name, v in zip(direction.state_names, step.states)})
    values["output"] = step.output
    cells = [str(n), str(step.t), vector(step.x)]
    cells += ["" if step.skipped and c not in values else vector(values[c]) for c in columns]
    html = "".join(f"<td>{escape(c)}</td>" for c in cells)
    if with_math:
        lines = ["skipped (masked): state carried"] if step.skipped else []
        lines = lines or arithmetic(direction, step, n, 4)
        html += f'<td class="math">{"<br>".join(escape(line) for line in lines)}</td>'
    css = ' class="skipped"' if step.skipped else ""
    return f"<tr{css}>{html}</tr>"


def direction_html(layer, direction) -> str:
    columns = _columns(direction)
    with_math = direction.decomposed and direction.units <= SMALL
    head = ["step", "t", "x_t", *columns] + (["arithmetic"] if with_math else [])
    rows = []
    steps = direction.steps
    for position in shown_steps(len(steps), MAX_STEPS):
        if position is None:
            rows.append(f'<tr><td colspan="{len(head)}">…</td></tr>')
        else:
            rows.append(_row(direction, steps[position], position + 1, columns, with_math))
    text = "\n".join([direction_header(layer, direction), *equations(direction)])
    return (
        f"<pre>{escape(text)}</pre><table><tr>"
        + "".join(f"<th>{escape(h)}</th>" for h in head)
        + "</tr>"
        + "".join(rows)
        + "</table>"
    )


def render(trace) -> str:
    parts = [
        STYLE,
        '<div class="rnnkit-trace">',
        f"<p>Trace of sample {trace.sample}: steps numbered from 1 in reading order; "
        "vectors longer than 4 summarised by their norm and first values.</p>",
    ]
    parts += [direction_html(layer, d) for layer in trace.layers for d in layer.directions]
    parts.append("</div>")
    return "\n".join(parts)
