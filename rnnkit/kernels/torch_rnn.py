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


def lstm_sequence(x, h0, c0, kernel, recurrent_kernel, bias):
    """Run an LSTM over `x` `(B, T, D)`; returns outputs `(B, T, H)`, `h_T`, `c_T`."""
    params = [_cached(kernel, torch.t), _cached(recurrent_kernel, torch.t)]
    if bias is not None:
        params += [bias, torch.zeros_like(bias)]
    outputs, h, c = torch.lstm(
        x,
        (h0.unsqueeze(0), c0.unsqueeze(0)),
        params,
        bias is not None,
        1,
        0.0,
        torch.is_grad_enabled(),
        False,
        True,
    )
    return outputs, h[0], c[0]


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
