"""torch's own fused LSTM and GRU (oneDNN on CPU, cuDNN on GPU), fed Keras-layout weights.

These kernels compute exactly the cells in `rnnkit.layers._lstm` / `_gru` when
the activations are Keras' defaults (tanh, and sigmoid for the gates) and no
step is masked. The weights are converted on the fly, inside autograd, so the
gradients land on the layer's own Keras-layout parameters:

- torch wants `W` as `(gates*units, input_dim)`: the kernel's transpose;
- torch adds two biases; Keras' LSTM has one (the other is zero);
- torch's GRU gates are `r, z, n`, Keras' `z, r, h`: the first two blocks swap.
"""

from __future__ import annotations

import torch


def _cached(param: torch.Tensor, convert) -> torch.Tensor:
    """`convert(param)`; in inference, kept on the parameter until the weight changes.

    torch's kernel is several times faster on contiguous weights, and converting costs more
    than running one short sequence. A weight's version counter moves on every in-place
    change (optimizer steps, `set_weights`), which invalidates the copy.
    """
    if torch.is_grad_enabled():
        return convert(param)  # training: the conversion is part of the autograd graph
    key = (param._version, param.data_ptr())
    hit = getattr(param, "_rnnkit_torch_layout", None)
    if hit is None or hit[0] != key:
        hit = (key, convert(param).contiguous())
        param._rnnkit_torch_layout = hit
    return hit[1]


def _swap_first_two_gates(t: torch.Tensor, units: int) -> torch.Tensor:
    """Keras GRU blocks z, r, h -> torch r, z, n along the last axis."""
    return torch.cat([t[..., units : 2 * units], t[..., :units], t[..., 2 * units :]], dim=-1)


def _lstm_params(kernel, recurrent_kernel, bias) -> list[torch.Tensor]:
    """One direction's weights in torch's order and layout: W^T, U^T (, b, 0)."""
    params = [_cached(kernel, torch.t), _cached(recurrent_kernel, torch.t)]
    if bias is not None:
        params += [bias, torch.zeros_like(bias)]
    return params


def lstm_sequence(x, h0, c0, kernel, recurrent_kernel, bias):
    """Run an LSTM over `x` `(B, T, D)`; returns outputs `(B, T, H)`, `h_T`, `c_T`."""
    outputs, h, c = torch.lstm(
        x,
        (h0.unsqueeze(0), c0.unsqueeze(0)),
        _lstm_params(kernel, recurrent_kernel, bias),
        bias is not None,
        1,
        0.0,
        torch.is_grad_enabled(),
        False,
        True,
    )
    return outputs, h[0], c[0]


def bidirectional_lstm_sequence(x, forward_states, backward_states, forward, backward):
    """Both directions of an LSTM over `x` `(B, T, D)` in one call of torch's kernel.

    `forward`/`backward` are each `(kernel, recurrent_kernel, bias)`; the backward direction
    reads the sequence from its end, as a `go_backwards=True` layer does. Returns the outputs
    `(B, T, 2H)`, forward's then backward's features, both in time order (as Keras'
    Bidirectional concatenates them), and each direction's final `(h, c)`.
    """
    h0 = torch.stack([forward_states[0], backward_states[0]])
    c0 = torch.stack([forward_states[1], backward_states[1]])
    outputs, h, c = torch.lstm(
        x,
        (h0, c0),
        _lstm_params(*forward) + _lstm_params(*backward),
        forward[2] is not None,
        1,
        0.0,
        torch.is_grad_enabled(),
        True,
        True,
    )
    return outputs, (h[0], c[0]), (h[1], c[1])


def gru_sequence(x, h0, kernel, recurrent_kernel, bias):
    """Run a GRU (`reset_after=True`) over `x` `(B, T, D)`; returns outputs `(B, T, H)`, `h_T`."""
    units = recurrent_kernel.shape[0]
    params = [
        _cached(kernel, lambda w: _swap_first_two_gates(w, units).t()),
        _cached(recurrent_kernel, lambda w: _swap_first_two_gates(w, units).t()),
    ]
    if bias is not None:
        params += [_swap_first_two_gates(bias[0], units), _swap_first_two_gates(bias[1], units)]
    outputs, h = torch.gru(
        x, h0.unsqueeze(0), params, bias is not None, 1, 0.0, torch.is_grad_enabled(), False, True
    )
    return outputs, h[0]
