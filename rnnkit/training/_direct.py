"""fit's direct step: the forward and backward passes by hand, with no autograd graph.

On a small model the arithmetic of a training step is a small share of its time; the rest
is overhead around it, and most of that is autograd's: every op records a node, and the
engine walks them back one by one (measured in `benchmarks/README.md`). When every layer of
a `Sequential` model has a hand-written backward pass (`Layer.direct_blocker` is None: Dense,
Embedding, SimpleRNN, GRU, LSTM, Dropout, Activation, Flatten), fit runs

    x = layer.direct_call(x)   for each layer, keeping each one's backward pass
    loss, g = losses.value_and_gradient(loss, y, x)
    g = backward(g)            for each layer, last first; weights' gradients into .grad

and the optimizer's step as usual. The recurrences run their fused kernels' own forward and
backward passes, so both steps compute with the same code, and the tests hold the direct
step's gradients to autograd's. `model.step_path` names the step fit ran, and why a model
ran the eager one; `compile(jit_compile=False)` keeps the eager step.
"""

from __future__ import annotations

import torch

from rnnkit import losses
from rnnkit.training._data import ArrayBatches


def blocker(model, step, data) -> str | None:
    """Why fit cannot run the direct step for this model and data (None: it can)."""
    from rnnkit.models import Sequential  # models import training: import when asked

    if getattr(model, "jit_compile", "auto") is False:
        return "compile(jit_compile=False)"
    if not isinstance(model, Sequential) or type(model).call is not Sequential.call:
        return "not a Sequential model"
    if not isinstance(data, ArrayBatches):
        return "the data is not in-memory arrays"
    if not step.trains:
        return "no trainable weights"
    if step.penalized:
        return "regularizers (their penalties run on autograd)"
    device = model.weights_device()
    if device is not None and device.type != "cpu":
        return f"on {device.type}, not the CPU"
    for layer in model.layers:
        why = layer.direct_blocker(training=True)
        if why is not None:
            return why
    return None


class DirectStep:
    """One batch's loss and prediction, with every trainable weight's gradient in `.grad`."""

    def __init__(self, model):
        self.model = model
        self.layers = model.layers
        self.weights = list(model.parameters())  # each batch's gradients start from None

    def run(self, x, y, sample_weight):
        """`(loss, y_pred)` for the batch; the weights' `.grad` hold their gradients."""
        for weight in self.weights:
            weight.grad = None
        backward_passes = []
        with torch.no_grad():
            out = self.model._convert_inputs(x)
            for i, layer in enumerate(self.layers):
                out = layer._convert_inputs(out)  # e.g. integer inputs cast, as a call does
                out, backward = layer.direct_call(out, training=True, needs_input_grad=i > 0)
                backward_passes.append(backward)
            loss, grad = losses.value_and_gradient(self.model.loss, y, out, sample_weight)
            for backward in reversed(backward_passes):
                grad = backward(grad)
        return loss, out
