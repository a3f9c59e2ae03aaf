"""A kernel's autograd Function run by hand: its forward now, its backward when called.

`fit`'s direct step (`rnnkit.training._direct`) trains a model without recording an
autograd graph: each layer runs its forward pass and keeps what its backward pass needs.
For the fused recurrences the forward and backward passes are the Functions' own
(`SimpleRNNRecurrence`, `GRURecurrence`, `LSTMRecurrence`), called here with a `Context`
that stands in for autograd's `ctx`, so both steps compute with exactly the same code.

    >>> import torch
    >>> class Square(torch.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x * x
    ...     @staticmethod
    ...     def backward(ctx, grad):
    ...         (x,) = ctx.saved_tensors
    ...         return 2 * x * grad
    >>> y, backward = run(Square, (True,), torch.tensor([3.0]))
    >>> y, backward(torch.tensor([1.0]))
    (tensor([9.]), tensor([6.]))
"""

from __future__ import annotations

from functools import partial

import torch


class Context:
    """What a Function's `forward` and `backward` use of autograd's `ctx`: the saved
    tensors, `needs_input_grad`, and attributes set on it."""

    by_hand = True  # no autograd: an output may be a view of a saved buffer (no copy)

    def __init__(self, needs_input_grad: tuple):
        self.needs_input_grad = needs_input_grad
        self.saved_tensors = ()

    def save_for_backward(self, *tensors) -> None:
        self.saved_tensors = tensors

    def set_materialize_grads(self, value: bool) -> None:
        """The backward passes run here take None for an output with no gradient."""

    def mark_non_differentiable(self, *tensors) -> None:
        """Nothing to mark: no graph is recorded."""


def run(function: type[torch.autograd.Function], needs_input_grad: tuple, *args):
    """`(outputs, backward)`: `function.forward` on `args` now, with no graph recorded, and
    its `backward` to call with the outputs' gradients (None for an unused output). It
    returns one gradient per argument, None where `needs_input_grad` is False."""
    ctx = Context(needs_input_grad)
    if torch.is_grad_enabled():
        with torch.no_grad():
            outputs = function.forward(ctx, *args)
    else:  # fit's direct step runs under no_grad already
        outputs = function.forward(ctx, *args)
    return outputs, partial(function.backward, ctx)
