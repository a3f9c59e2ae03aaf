"""`report`: every view of one model on its own inputs, as one self-contained HTML page.

The page needs no network and no other file: its images are PNGs inlined as `data:` URIs,
its style sits in the page, and a Content-Security-Policy forbids loading anything else, so
it opens the same from a mail attachment, an air-gapped machine or a CI artifact. It holds,
top to bottom: a summary (the model, its recurrent layers, the memory horizon in words), the
unrolled diagram and the step-by-step table of one sequence (`trace`), the hidden states and
gate saturation (`states`), the memory curve with its horizon (`memory`), and the gradient
at every step (`gradient_flow`), each with a few lines on what it shows.

    >>> import numpy as np
    >>> from rnnkit import Input, Sequential
    >>> from rnnkit.layers import Dense, GRU
    >>> model = Sequential([Input((12, 2)), GRU(4), Dense(1)])
    >>> x, y = np.random.rand(16, 12, 2), np.random.rand(16, 1)
    >>> r = report(model, x, y, loss="mse")
    >>> sorted(r.files())
    ['gradient_flow', 'json', 'memory', 'report', 'states', 'trace']
    >>> 'src="data:image/png;base64,' in r.to_html()
    True
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from html import escape

import numpy as np

from rnnkit._task import horizon_record, memory_sentence
from rnnkit.explain import _figure
from rnnkit.explain.gradients import Flow, gradient_flow
from rnnkit.explain.memory import Memory, memory
from rnnkit.explain.states import States, states
from rnnkit.explain.trace import Trace, trace

DIAGRAM_STEPS = 8  # cells per row of the unrolled diagram: the first and last four steps

# Each view in the report's order: (key, file, heading, what it shows in the notes' words).
VIEWS = (
    (
        "trace",
        "trace.png",
        "The network unrolled",
        "An RNN feeds what it computed at one step into the next: the hidden state h_t is "
        "its memory of everything it has read so far. Unrolled over time, each step is a "
        "copy of the same cell with the same weights: x_t comes in from below, h_{t−1} "
        "from the step before, and h_t goes on to the next step and up to the output.",
    ),
    (
        "states",
        "states.png",
        "Hidden states: the memory over time",
        "Each row is a unit of h_t, each column a step of the traced sequence (red above "
        "0, blue below). A unit that keeps its colour over many steps carries something "
        "forward. In an LSTM or GRU the gates decide what is kept and what is forgotten; a "
        "gate below 0.1 or above 0.9 is saturated, a switch rather than a dial (a forget "
        "gate near 1 keeps the cell state, near 0 wipes it), and passes almost no gradient.",
    ),
    (
        "memory",
        "memory.png",
        "How far back the model remembers",
        "The influence of the input k steps back on the output: how much the output "
        "moves when that input moves, ‖∂ŷ/∂x_{t−k}‖, averaged over the sequences and "
        "scaled so the strongest lag is 1. The memory horizon is the oldest lag whose "
        "influence is still at least the threshold (1% of the peak): what came before it "
        "has almost no say in the output, however long the sequence.",
    ),
    (
        "gradient_flow",
        "gradient_flow.png",
        "Gradient flow: vanishing and exploding gradients",
        "Training sends the error back through time one step at a time, ‖∂L/∂h_t‖ at "
        "each step. Every step back multiplies it by the recurrent weights and the "
        "activation's slope, so over many steps it shrinks or grows geometrically. The "
        "notes' arithmetic: a weight of 2 over 50 steps gives 2^50 ≈ 1.1e15 (the gradient "
        "explodes), a weight of 0.5 gives 0.5^50 ≈ 8.9e-16 (it vanishes, and the early "
        "steps teach the model nothing). LSTM and GRU gates keep it near 1 where the model "
        "needs the early steps. The decay ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ is below 1e-4 when it "
        "vanishes and above 1e4 when it explodes.",
    ),
)

STYLE = """
body {font-family: sans-serif; max-width: 1100px; margin: 24px auto; padding: 0 16px;
  color: #222; line-height: 1.45}
h1 {font-size: 24px; margin-bottom: 4px}
h2 {font-size: 19px; margin-top: 34px; border-bottom: 1px solid #ddd; padding-bottom: 3px}
p.horizon {font-size: 18px; background: #eef5fc; border-left: 4px solid #3778c2;
  padding: 8px 12px}
p.note {color: #555}
table.summary {border-collapse: collapse}
table.summary th, table.summary td {text-align: left; padding: 3px 12px 3px 0;
  vertical-align: top}
table.summary th {color: #555; font-weight: normal; white-space: nowrap}
img {max-width: 100%; height: auto; display: block; margin: 8px 0}
.scroll {overflow-x: auto}
pre.text {background: #f7f7f7; padding: 8px; overflow-x: auto; font-size: 12px}
footer {margin-top: 40px; color: #777; font-size: 12px}
"""

# Nothing but this page's own style, script and inlined images may load: a browser that
# honours the policy refuses any network request the page could make.
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

# Once the page has loaded, records how many of its images did not decode (naturalWidth 0)
# on <body data-images="n" data-images-broken="m">: a headless browser's --dump-dom reads it.
CHECK_IMAGES = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !i.complete || i.naturalWidth === 0; });
  document.body.setAttribute("data-images", String(images.length));
  document.body.setAttribute("data-images-broken", String(broken.length));
});
</script>"""


@dataclass
class Report:
    """The views of one model on its inputs (see `report`).

    Attributes:
        name: what the page calls the model (its file, or its name).
        summary: the model, its layers, the inputs and the memory horizon, JSON-ready.
        trace, states, memory: the views of the same inputs.
        flow: the gradient flow, None when there were no targets (`flow_note` says why).
        flow_note: where the targets came from, or why there is no gradient flow.
    """

    name: str
    summary: dict
    trace: Trace
    states: States
    memory: Memory
    flow: Flow | None
    flow_note: str = ""
    _pngs: dict = field(default_factory=dict, repr=False)

    def figures(self) -> dict[str, bytes]:
        """`{view: PNG bytes}` for each view with a figure, drawn once and kept."""
        if not self._pngs:
            figures = {
                "trace": lambda: self.trace.plot(max_steps=DIAGRAM_STEPS),
                "states": self.states.plot,
                "memory": self.memory.plot,
            }
            if self.flow is not None:
                figures["gradient_flow"] = self.flow.plot
            self._pngs.update({key: _figure.png_bytes(draw()) for key, draw in figures.items()})
        return self._pngs

    def to_dict(self) -> dict:
        """The numbers behind the page, JSON-ready: `summary`, `trace` (one sequence),
        `memory` (the curve and horizon), `gradient_flow` (None without targets), `states`."""
        return {
            "summary": self.summary,
            "trace": self.trace.to_dict(),
            "memory": self.memory.to_dict(),
            "gradient_flow": None if self.flow is None else self.flow.to_dict(),
            "gradient_flow_note": self.flow_note,
            "states": self.states.to_dict(),
        }

    def to_html(self) -> str:
        """The whole page: one HTML document with everything inlined."""
        import rnnkit

        images = self.figures()
        sections = [_section(key, heading, text, self, images) for key, _, heading, text in VIEWS]
        return "\n".join(
            [
                "<!DOCTYPE html>",
                '<html lang="en"><head><meta charset="utf-8">',
                f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">',
                '<meta name="viewport" content="width=device-width, initial-scale=1">',
                f"<title>rnnkit explain: {escape(self.name)}</title>",
                f"<style>{STYLE}</style></head><body>",
                f"<h1>What the recurrence does: {escape(self.name)}</h1>",
                _summary_html(self.summary),
                *sections,
                f"<footer>Written by rnnkit {escape(rnnkit.__version__)} (rnnkit explain). "
                "Everything is in this one file; it loads nothing from the network.</footer>",
                CHECK_IMAGES,
                "</body></html>",
            ]
        )

    def files(self) -> dict[str, tuple[str, bytes]]:
        """`{key: (file name, bytes)}`: report.html, explain.json and the PNGs, as
        `rnnkit.saving.write_folder` takes them."""
        images = self.figures()
        files = {key: (name, images[key]) for key, name, _, _ in VIEWS if key in images}
        files["report"] = ("report.html", self.to_html().encode())
        files["json"] = ("explain.json", json.dumps(self.to_dict()).encode())
        return files

    def _repr_html_(self) -> str:
        return self.to_html()


def report(model, x, y=None, sample=0, loss=None, name=None, flow_note="") -> Report:
    """Trace, states, memory and gradient flow of `model` on `x`, gathered for one page.

    Args:
        model: a model with recurrent layers.
        x: the sequences, `(batch, timesteps, features)` or `(batch, timesteps)` token ids;
            memory and gate saturation are averaged over all of them.
        y: targets for the first `len(y)` sequences of `x` (the rest may have none, such as
            the last windows of a series); None or empty: no gradient flow.
        sample: the sequence traced step by step and drawn as hidden states.
        loss: the loss for the gradient flow; None: the model's compiled loss.
        name: what the page calls the model; default: its name.
        flow_note: a line on where the targets came from, shown with the gradient flow.

    Returns:
        A `Report`: `.to_html()`, `.to_dict()`, `.files()` (everything `rnnkit explain` writes).
    """
    traced = trace(model, x, sample=sample)
    found = memory(model, x)
    flow, note = None, flow_note
    if y is not None and len(y):
        flow = gradient_flow(model, x[: len(y)], y, loss=loss)
    else:
        note = note or "No targets were given, so there is no loss to differentiate."
    summary = _summary(model, x, traced, found)
    return Report(
        name=name or model.name,
        summary=summary,
        trace=traced,
        states=states(model, x, sample=traced.sample),
        memory=found,
        flow=flow,
        flow_note=note,
    )


def _summary(model, x, traced: Trace, found: Memory) -> dict:
    shape = tuple(np.shape(x))
    record = horizon_record(found)
    return {
        "model": model.name,
        "task": (getattr(model, "metadata", None) or {}).get("task"),
        "layers": [f"{layer.name} ({type(layer).__name__})" for layer in model.layers],
        "recurrent_layers": [_layer_line(layer) for layer in traced.layers],
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "sequences": int(shape[0]),
        "timesteps": int(shape[1]),
        "traced_sequence": traced.sample,
        "memory_horizon": record,
        "memory_sentence": memory_sentence(record),
    }


def _layer_line(layer) -> str:
    first = layer.directions[0]
    kind = first.kind or first.cell
    both = ", both directions" if layer.bidirectional else ""
    units = "unit" if first.units == 1 else "units"
    return f"{layer.name}: {kind}, {first.units} {units}{both}"


def _image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _summary_html(summary: dict) -> str:
    rows = [
        ("model", f"{summary['model']} ({summary['parameters']:,} weights)"),
        ("recurrent layers", "; ".join(summary["recurrent_layers"])),
        ("all layers", ", ".join(summary["layers"])),
        (
            "inputs",
            f"{summary['sequences']} sequence(s) of {summary['timesteps']} steps; the trace "
            f"and the hidden states follow sequence {summary['traced_sequence']}",
        ),
    ]
    if summary["task"]:
        rows.insert(1, ("trained by", f"rnnkit {summary['task']}"))
    table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return (
        f'<p class="horizon">{escape(summary["memory_sentence"])}</p>'
        f'<table class="summary">{table}</table>'
    )


def _section(key: str, heading: str, text: str, r: Report, images: dict) -> str:
    parts = [f'<section id="{key}">', f"<h2>{escape(heading)}</h2>", f"<p>{escape(text)}</p>"]
    if key == "trace":
        parts.append(_image(images["trace"], "the unrolled network"))
        parts.append("<h2>One sequence, step by step</h2>")
        parts.append(
            "<p>The numbers of the traced sequence: at each step the input x_t, the parts "
            "of each pre-activation (x_t W, h_{t−1} U, b) and their sum, the activation's "
            "output, and the new states: for an LSTM the gates i, f, g, o and the cell "
            "state c_t, for a GRU z, r and the candidate h̃.</p>"
        )
        parts.append(f'<div class="scroll">{r.trace._repr_html_()}</div>')
    elif key == "gradient_flow" and r.flow is None:
        parts.append(f'<p class="note">Not measured: {escape(r.flow_note)}</p>')
    else:
        view = {"states": r.states, "memory": r.memory, "gradient_flow": r.flow}[key]
        if key == "gradient_flow" and r.flow_note:
            parts.append(f'<p class="note">{escape(r.flow_note)}</p>')
        parts.append(_image(images[key], str(view).splitlines()[0]))
        parts.append(f'<pre class="text">{escape(str(view))}</pre>')
    parts.append("</section>")
    return "\n".join(parts)
