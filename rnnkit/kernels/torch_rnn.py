"""torch's own fused RNN, LSTM and GRU (oneDNN on CPU, cuDNN on GPU), fed Keras-layout weights.

These kernels compute exactly the cells in `rnnkit.layers._simple_rnn`, `_lstm` and `_gru`
when the activations are ones they have (tanh or relu for SimpleRNN; tanh, and sigmoid for
the gates) and no step is masked. The weights are converted on the fly, inside autograd, so
the gradients land on the layer's own Keras-layout parameters:

- torch wants `W` as `(gates*units, input_dim)`: the kernel's transpose;
- torch adds two biases; Keras' SimpleRNN and LSTM have one (the other is zero);
- torch's GRU gates are `r, z, n`, Keras' `z, r, h`: the first two blocks swap.

On a GPU, cuDNN would do the float32 products in TF32 (10-bit mantissas) wherever
`torch.backends.cudnn.allow_tf32` is on, torch's default: measured on an H100, that moves an
LSTM's outputs by 4e-4 and its weight gradients by 1e-2. rnnkit turns it off for these calls,
forward and backward (`_full_float32`), so the GPU gives the reference loop's numbers.
"""

from __future__ import annotations

import contextlib
import warnings

import torch


@contextlib.contextmanager
def _no_tf32():
    """cuDNN in full float32 for the duration (the flag is read when a kernel starts), and
    without torch's warning about weights outside one flat buffer."""
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        with warnings.catch_warnings():
            # Our converted weights are not one flat buffer, so torch copies them into one
            # per call and says so: the same copy as building that buffer ourselves.
            warnings.filterwarnings("ignore", "RNN module weights are not part of single")
            yield
    finally:
        torch.backends.cudnn.allow_tf32 = before


class _FullFloat32(torch.autograd.Function):
    """`run(*tensors)` on a GPU with TF32 off in its forward and in its backward pass, which
    autograd runs later, when the flag may be on again. The inner graph is kept from forward
    to backward, as torch keeps cuDNN's own workspace."""

    @staticmethod
    def forward(ctx, run, *tensors):
        inputs = [t.detach().requires_grad_(t.requires_grad) for t in tensors]
        with torch.enable_grad(), _no_tf32():
            outputs = run(*inputs)
        ctx.inputs, ctx.outputs = inputs, outputs
        return tuple(out.detach() for out in outputs)

    @staticmethod
    def backward(ctx, *grads):
        pairs = [(out, g) for out, g in zip(ctx.outputs, grads) if out.requires_grad]
        wanted = [t for t in ctx.inputs if t.requires_grad]
        with _no_tf32():
            # The inner graph goes when autograd lets go of this node; retained until then,
            # so that a retained outer graph can run backward again (gradcheck does).
            found = torch.autograd.grad(
                [out for out, _ in pairs],
                wanted,
                [g for _, g in pairs],
                retain_graph=True,
                allow_unused=True,
            )
        found = iter(found)
        return (None, *(next(found) if t.requires_grad else None for t in ctx.inputs))


def _full_float32(run, *tensors) -> tuple[torch.Tensor, ...]:
    """`run(*tensors)` (a call of one of torch's RNN ops) with cuDNN in full float32."""
    if tensors[0].device.type != "cuda":
        return run(*tensors)
    if not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors)):
        with _no_tf32():
            return run(*tensors)
    return _FullFloat32.apply(run, *tensors)


def _cached(param: torch.Tensor, convert) -> torch.Tensor:
    """`convert(param)`, contiguous; in inference, kept on the parameter until the weight
    changes.

    torch's kernels are several times faster on contiguous weights (and cuDNN's backward
    fails on a transposed view), and converting costs more than running one short sequence.
    A weight's version counter moves on every in-place change (optimizer steps,
    `set_weights`), which invalidates the copy.
    """
    if torch.is_grad_enabled():
        return convert(param).contiguous()  # training: part of the autograd graph
    key = (param._version, param.data_ptr())
    hit = getattr(param, "_rnnkit_torch_layout", None)
    if hit is None or hit[0] != key:
        hit = (key, convert(param).contiguous())
        param._rnnkit_torch_layout = hit
    return hit[1]


def _swap_first_two_gates(t: torch.Tensor, units: int) -> torch.Tensor:
    """Keras GRU blocks z, r, h -> torch r, z, n along the last axis."""
    return torch.cat([t[..., units : 2 * units], t[..., :units], t[..., 2 * units :]], dim=-1)


def _params(kernel, recurrent_kernel, bias) -> list[torch.Tensor]:
    """One direction's SimpleRNN or LSTM weights in torch's order and layout: W^T, U^T
    (, b, 0)."""
    params = [_cached(kernel, torch.t), _cached(recurrent_kernel, torch.t)]
    if bias is not None:
        params += [bias, torch.zeros_like(bias)]
    return params


def rnn_sequence(x, h0, kernel, recurrent_kernel, bias, activation):
    """Run a SimpleRNN (`activation` "tanh" or "relu") over `x` `(B, T, D)`; returns outputs
    `(B, T, H)` and `h_T`."""
    op = {"tanh": torch.rnn_tanh, "relu": torch.rnn_relu}[activation]
    params = _params(kernel, recurrent_kernel, bias)
    has_bias = bias is not None

    def run(x, h0, *params):
        return op(x, h0, list(params), has_bias, 1, 0.0, torch.is_grad_enabled(), False, True)

    outputs, h = _full_float32(run, x, h0.unsqueeze(0), *params)
    return outputs, h[0]


def lstm_sequence(x, h0, c0, kernel, recurrent_kernel, bias):
    """Run an LSTM over `x` `(B, T, D)`; returns outputs `(B, T, H)`, `h_T`, `c_T`."""
    outputs, h, c = _lstm(x, [h0], [c0], [(kernel, recurrent_kernel, bias)])
    return outputs, h[0], c[0]


def bidirectional_lstm_sequence(x, forward_states, backward_states, forward, backward):
    """Both directions of an LSTM over `x` `(B, T, D)` in one call of torch's kernel.

    `forward`/`backward` are each `(kernel, recurrent_kernel, bias)`; the backward direction
    reads the sequence from its end, as a `go_backwards=True` layer does. Returns the outputs
    `(B, T, 2H)`, forward's then backward's features, both in time order (as Keras'
    Bidirectional concatenates them), and each direction's final `(h, c)`.
    """
    h0 = [forward_states[0], backward_states[0]]
    c0 = [forward_states[1], backward_states[1]]
    outputs, h, c = _lstm(x, h0, c0, [forward, backward])
    return outputs, (h[0], c[0]), (h[1], c[1])


def _lstm(x, h0, c0, directions):
    """torch.lstm over one or two directions' `(kernel, recurrent_kernel, bias)`, with their
    start states `h0`, `c0` (lists of `(B, H)`); returns outputs, `h`, `c` `(dirs, B, H)`."""
    params = [p for weights in directions for p in _params(*weights)]
    has_bias, both = directions[0][2] is not None, len(directions) == 2

    def run(x, h0, c0, *params):
        train = torch.is_grad_enabled()
        return torch.lstm(x, (h0, c0), list(params), has_bias, 1, 0.0, train, both, True)

    return _full_float32(run, x, torch.stack(h0), torch.stack(c0), *params)


def gru_sequence(x, h0, kernel, recurrent_kernel, bias):
    """Run a GRU (`reset_after=True`) over `x` `(B, T, D)`; returns outputs `(B, T, H)`, `h_T`."""
    units = recurrent_kernel.shape[0]
    params = [
        _cached(kernel, lambda w: _swap_first_two_gates(w, units).t()),
        _cached(recurrent_kernel, lambda w: _swap_first_two_gates(w, units).t()),
    ]
    if bias is not None:
        params += [_swap_first_two_gates(bias[0], units), _swap_first_two_gates(bias[1], units)]
    has_bias = bias is not None

    def run(x, h0, *params):
        train = torch.is_grad_enabled()
        return torch.gru(x, h0, list(params), has_bias, 1, 0.0, train, False, True)

    outputs, h = _full_float32(run, x, h0.unsqueeze(0), *params)
    return outputs, h[0]
