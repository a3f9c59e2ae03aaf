"""Move recurrent weights between rnnkit (Keras layout) and `torch.nn.RNN/LSTM/GRU`.

The two layouts differ in three ways:

- torch stores `W` transposed: `weight_ih_l0` is `(gates*units, input_dim)`,
  Keras' kernel is `(input_dim, gates*units)`;
- torch has two biases, `bias_ih` and `bias_hh`; Keras one (SimpleRNN, LSTM,
  GRU with `reset_after=False`) or a `(2, 3*units)` pair (GRU, `reset_after=True`);
- GRU gate order: torch `r, z, n`, Keras `z, r, h` (LSTM's `i, f, g, o` agree).

A GRU with `reset_after=False` applies the reset gate before the recurrent
product, which `torch.nn.GRU` cannot express.

Example:
    >>> import torch
    >>> from rnnkit.layers import LSTM
    >>> theirs = torch.nn.LSTM(3, 8, batch_first=True)
    >>> ours = LSTM(8, return_sequences=True)
    >>> from_torch(ours, theirs)
    >>> x = torch.randn(2, 5, 3)
    >>> torch.allclose(ours(x), theirs(x)[0], atol=1e-6)
    True
"""

from __future__ import annotations

import numpy as np
import torch

from rnnkit.layers import GRU, LSTM, Bidirectional, SimpleRNN
from rnnkit.layers._base import shape_str


def _gru_reorder(blocks: np.ndarray, axis: int) -> np.ndarray:
    """Swap the first two gate blocks: Keras z, r, h <-> torch r, z, n (its own inverse)."""
    a, b, c = np.split(blocks, 3, axis=axis)
    return np.concatenate([b, a, c], axis=axis)


def _kind(layer) -> str:
    for cls, name in ((LSTM, "LSTM"), (GRU, "GRU"), (SimpleRNN, "RNN")):
        if isinstance(layer, cls):
            return name
    raise TypeError(
        f"Weights convert for SimpleRNN, LSTM, GRU (or Bidirectional of one); got {layer!r}."
    )


def _check_gru(layer) -> None:
    if isinstance(layer, GRU) and not layer.cell.reset_after:
        raise ValueError(
            f"GRU '{layer.name}' has reset_after=False: its reset gate multiplies h before the "
            "recurrent product, a form torch.nn.GRU cannot express. Use GRU(..., "
            "reset_after=True) (Keras' default) to exchange weights with torch."
        )


def keras_to_torch_weights(layer) -> dict[str, np.ndarray]:
    """`{"weight_ih", "weight_hh", "bias_ih", "bias_hh"}` for a built SimpleRNN/LSTM/GRU."""
    kind = _kind(layer)
    _check_gru(layer)
    if not layer.built:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}' is not built; call it on data "
            "once (or build it) before converting its weights."
        )
    weights = layer.get_weights()
    kernel, recurrent = weights[0], weights[1]
    bias = weights[2] if len(weights) == 3 else None
    width = kernel.shape[1]
    if bias is None:
        bias_ih = bias_hh = np.zeros(width, dtype=kernel.dtype)
    elif kind == "GRU":
        bias_ih, bias_hh = bias[0], bias[1]
    else:  # one Keras bias: torch adds both, so put it all in one of them
        bias_ih, bias_hh = bias, np.zeros_like(bias)
    out = {"weight_ih": kernel.T, "weight_hh": recurrent.T, "bias_ih": bias_ih, "bias_hh": bias_hh}
    if kind == "GRU":
        out = {k: _gru_reorder(v, axis=0) for k, v in out.items()}
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def torch_to_keras_weights(layer, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """Keras-layout weights (as `get_weights()` lists them) from torch's four tensors."""
    kind = _kind(layer)
    _check_gru(layer)
    as_np = [
        None if t is None else np.asarray(torch.as_tensor(t).detach().cpu())
        for t in (weight_ih, weight_hh, bias_ih, bias_hh)
    ]
    w_ih, w_hh, b_ih, b_hh = as_np
    if kind == "GRU":
        w_ih, w_hh = _gru_reorder(w_ih, 0), _gru_reorder(w_hh, 0)
        b_ih = None if b_ih is None else _gru_reorder(b_ih, 0)
        b_hh = None if b_hh is None else _gru_reorder(b_hh, 0)
    weights = [w_ih.T, w_hh.T]
    if layer.cell.use_bias:
        zeros = np.zeros(w_ih.shape[0], dtype=w_ih.dtype)
        b_ih = zeros if b_ih is None else b_ih
        b_hh = zeros if b_hh is None else b_hh
        weights.append(np.stack([b_ih, b_hh]) if kind == "GRU" else b_ih + b_hh)
    elif b_ih is not None and (np.any(b_ih) or np.any(b_hh)):
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}' has use_bias=False but the torch module has "
            "non-zero biases; create the layer with use_bias=True."
        )
    return weights


def _torch_class(layer):
    kind = _kind(layer)
    return {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}[kind]


def _check_module(layer, module, bidirectional: bool):
    expected = _torch_class(layer)
    if not isinstance(module, expected):
        raise TypeError(
            f"{type(layer).__name__} '{layer.name}' takes weights from "
            f"torch.nn.{expected.__name__}; got {type(module).__name__}."
        )
    if module.num_layers != 1:
        raise ValueError(
            f"torch module has num_layers={module.num_layers}; convert one layer at a time "
            "(rnnkit stacks layers with return_sequences=True)."
        )
    if module.bidirectional != bidirectional:
        raise ValueError(
            f"torch module has bidirectional={module.bidirectional}; use "
            f"{'Bidirectional(layer)' if module.bidirectional else 'the layer itself'} in rnnkit."
        )
    if getattr(module, "proj_size", 0):
        raise ValueError("torch LSTM with proj_size > 0 has no Keras counterpart.")
    if isinstance(module, torch.nn.RNN):
        activation = getattr(layer.cell.activation, "__name__", "")
        if activation != module.nonlinearity:
            raise ValueError(
                f"SimpleRNN '{layer.name}' uses activation {activation!r} but the torch.nn.RNN "
                f"uses {module.nonlinearity!r}; they must agree."
            )


def _tensors(module, suffix):
    get = lambda name: getattr(module, name + suffix, None)  # noqa: E731
    return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")


def from_torch(layer, module) -> None:
    """Copy a `torch.nn.RNN/LSTM/GRU`'s weights into an rnnkit layer (building it if needed).

    `layer` is a SimpleRNN, LSTM or GRU for a one-layer module, or a
    `Bidirectional` of one for a `bidirectional=True` module.
    """
    bidirectional = isinstance(layer, Bidirectional)
    pairs = (
        [(layer.forward_layer, "_l0"), (layer.backward_layer, "_l0_reverse")]
        if bidirectional
        else [(layer, "_l0")]
    )
    _check_module(pairs[0][0], module, bidirectional)
    if not module.batch_first:
        raise ValueError(
            "rnnkit layers take (batch, timesteps, features): create the torch "
            "module with batch_first=True."
        )
    for target, suffix in pairs:
        weights = torch_to_keras_weights(target, *_tensors(module, suffix))
        if not target.built:
            target._maybe_build((None, None, weights[0].shape[0]))
        _set(target, weights)
    layer.built = True


def _set(layer, weights):
    want = [tuple(w.shape) for w in layer.weights]
    got = [tuple(w.shape) for w in weights]
    if want != got:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}' has weights "
            f"{', '.join(shape_str(s) for s in want)}; the torch module gives "
            f"{', '.join(shape_str(s) for s in got)}. Match units and input size."
        )
    layer.set_weights(weights)


def to_torch(layer) -> torch.nn.Module:
    """A `torch.nn.RNN/LSTM/GRU` (batch_first) computing what the rnnkit layer computes."""
    bidirectional = isinstance(layer, Bidirectional)
    first = layer.forward_layer if bidirectional else layer
    cls = _torch_class(first)  # first, so that a non-recurrent layer gets a TypeError
    if first.go_backwards and not bidirectional:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}' has go_backwards=True; torch "
            "modules read forwards only (flip the input yourself)."
        )
    kwargs = {"batch_first": True, "bidirectional": bidirectional, "bias": first.cell.use_bias}
    if cls is torch.nn.RNN:
        kwargs["nonlinearity"] = getattr(first.cell.activation, "__name__", "")
        if kwargs["nonlinearity"] not in ("tanh", "relu"):
            raise ValueError(
                f"torch.nn.RNN supports tanh and relu; SimpleRNN '{first.name}' "
                f"uses {kwargs['nonlinearity']!r}."
            )
    converted = [keras_to_torch_weights(first)]
    if bidirectional:
        converted.append(keras_to_torch_weights(layer.backward_layer))
    input_dim = converted[0]["weight_ih"].shape[1]
    module = cls(input_dim, first.cell.units, **kwargs).to(first.cell.kernel.dtype)
    with torch.no_grad():
        for weights, suffix in zip(converted, ("_l0", "_l0_reverse")):
            for name, value in weights.items():
                param = getattr(module, name + suffix, None)
                if param is not None:
                    param.copy_(torch.from_numpy(value))
    return module
