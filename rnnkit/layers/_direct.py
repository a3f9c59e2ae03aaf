"""The layers' side of fit's direct step: a forward pass that returns its own backward pass.

A training step on a small model is mostly overhead: for a SimpleRNN(32) on 64 sequences of
20 steps the arithmetic takes tens of microseconds, and recording the autograd graph,
running autograd's engine over a dozen nodes and the optimizer's bookkeeping take the rest
of a millisecond. The direct step (`rnnkit.training._direct`) skips the graph: each layer's
`direct_call(x, training, needs_input_grad)` computes its output with no graph recorded
and returns `backward(dy) -> dx`, which adds the layer's weight gradients to their `.grad`
(as autograd's accumulation does) and, where asked, returns the input's gradient.

A layer takes part only where `direct_blocker(training)` returns None: its class's `call`
is the one whose backward is written here (a subclass with its own `call` runs on
autograd), it has no activity regularizer and no torch hooks. The recurrences run their
fused kernels' own forward and backward passes (`rnnkit.kernels.by_hand`), so the two
steps compute with the same code; the tests hold the direct step's gradients to
autograd's through the reference loop.

An ensemble's members (`rnnkit.Ensemble`) run a layer together through its class's
`stacked_call(layers, x, needs_input_grad)`, their weights stacked along a members axis; the
helpers for that (`stack`, `give`, `trains`) are at the end of this module.
"""

from __future__ import annotations

import torch

from rnnkit import activations

_aten = torch.ops.aten


def add_gradient(param: torch.Tensor, grad: torch.Tensor | None) -> None:
    """Add `grad` to `param.grad` as autograd would: laid out like `param` (which the fused
    optimizers need), nothing for a weight that is not trained."""
    if grad is None or not param.requires_grad:
        return
    if grad.stride() != param.stride():
        grad = torch.empty_like(param).copy_(grad)
    if param.grad is None:
        param.grad = grad
    else:
        param.grad += grad


def common_blocker(layer, base: type) -> str | None:
    """Why `layer` cannot take part in the direct step whatever its kind (None if it can):
    a `call` of its own, an activity regularizer, or torch hooks on it."""
    name = f"{type(layer).__name__} '{layer.name}'"
    if type(layer).call is not base.call:
        return f"{name} has a call() of its own"
    if layer.activity_regularizer is not None:
        return f"{name} has an activity regularizer"
    if layer._forward_hooks or layer._forward_pre_hooks or layer._backward_hooks:
        return f"{name} has torch hooks"
    return None


# activation -> (forward, backward from the output y and its gradient dy): aten's own
# backward ops, as autograd runs them
_KNOWN = {
    activations.linear: (lambda z: z, lambda dy, y: dy),
    activations.tanh: (torch.tanh, lambda dy, y: _aten.tanh_backward(dy, y)),
    activations.sigmoid: (torch.sigmoid, lambda dy, y: _aten.sigmoid_backward(dy, y)),
    activations.relu: (torch.relu, lambda dy, y: _aten.threshold_backward(dy, y, 0)),
    activations.softmax: (
        lambda z: torch.softmax(z, dim=-1),
        lambda dy, y: _aten._softmax_backward_data(dy, y, -1, y.dtype),
    ),
}


def activate(fn, z: torch.Tensor):
    """`(fn(z), backward)` with `backward(dy) -> dz`: written out for the common
    activations, through autograd on this one function for any other."""
    known = _KNOWN.get(fn)
    if known is not None:
        forward, slope = known
        y = forward(z)
        return y, lambda dy: slope(dy, y)
    with torch.enable_grad():
        leaf = z.detach().requires_grad_()
        y = fn(leaf)
    return y.detach(), lambda dy: torch.autograd.grad(y, leaf, dy)[0]


# ------------------------------------------------------------ an ensemble's members at once
def stack(tensors) -> torch.Tensor:
    """The members' copies of one weight stacked along a leading members axis."""
    return torch.stack([t.detach() for t in tensors])


def give(params, grads) -> None:
    """Member m's share of stacked gradients `grads` `(M, ...)` to `params[m].grad`."""
    if grads is None:
        return
    for param, grad in zip(params, grads.unbind(0)):
        add_gradient(param, grad)


def trains(params) -> bool:
    """Whether any member trains this weight (`add_gradient` skips those that do not)."""
    return any(p is not None and p.requires_grad for p in params)


def recurrence_output(run, sequences: bool, assign):
    """`(output, backward)` from a SimpleRNN or GRU kernel run by hand (`by_hand.run`'s
    `((states (T, B, H), last (B, H)), backward)`): every step's output, batch-major, or the
    last one. `backward(dy)` sends the kernel's gradients to `assign(grads)` (one per kernel
    argument) and returns the input's."""
    (states, last), recurrence_backward = run

    def backward(dy):
        grads = recurrence_backward(*((dy.transpose(0, 1), None) if sequences else (None, dy)))
        assign(grads)
        return grads[0]

    return (states.transpose(0, 1) if sequences else last), backward
