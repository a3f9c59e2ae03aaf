"""What the fused-kernel tests share: sizes, masks, and a fused/reference pair of a layer.

Each fused recurrence (tests/test_kernels*.py) is held to its layer's reference loop on the
same inputs, masks and weights.
"""

import numpy as np
import pytest
import torch

B, T, D, H = 3, 6, 4, 5

MASKS = {
    "none": None,
    "right_padded": [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0]],
    "left_padded": [[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1]],
    "holes_and_empty": [[1, 0, 1, 0, 1, 0], [0, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 1]],
}
# (activation, recurrent_activation): Keras' default first, then each derivative the kernels
# have. (A linear candidate with tanh gates grows without bound, so float32 rounding would too.)
ACTIVATION_PAIRS = [
    ("tanh", "sigmoid"),
    ("relu", "sigmoid"),
    ("linear", "sigmoid"),
    ("sigmoid", "tanh"),
]


def equal_pair(layer_class, dtype="float32", fused=None, **kwargs):
    """The same layer twice, the first on its fused path (or `fused(layer)` if given) and the
    second on the reference loop, with equal random weights."""
    first, reference = layer_class(H, dtype=dtype, **kwargs), layer_class(H, dtype=dtype, **kwargs)
    if fused is not None:
        first = fused(first)
    reference.use_fused = False
    give_equal_weights(first, reference, getattr(torch, dtype))
    return first, reference


def give_equal_weights(first, reference, dtype=torch.float32, scale=0.6, seed=0):
    """Build both layers on a `(B, T, D)` input and give them the same random weights."""
    x = torch.zeros(B, T, D, dtype=dtype)
    first(x)
    reference(x)
    rng = np.random.default_rng(seed)
    weights = [rng.normal(scale=scale, size=w.shape) for w in first.get_weights()]
    first.set_weights(weights)
    reference.set_weights(weights)


def mask_tensor(name, batch=B, steps=T):
    rows = MASKS[name]
    if rows is None:
        return None
    return torch.tensor([row[:steps] for row in rows[:batch]], dtype=torch.bool)


def outputs_and_grads(layer, x, states, mask, probe=None):
    """The layer's outputs on `x`, and the gradients of a random projection of them with
    respect to `x`, the initial `states` and every weight."""
    out = layer(x, initial_state=states or None, mask=mask)
    out = out if isinstance(out, list) else [out]
    if probe is None:
        rng = np.random.default_rng(1)
        probe = [torch.tensor(rng.normal(size=tuple(o.shape)), dtype=o.dtype) for o in out]
    loss = sum((o * p).sum() for o, p in zip(out, probe))
    return out, torch.autograd.grad(loss, [x, *states, *layer.weights]), probe


def random_inputs(states, dtype=torch.float32):
    """A random `x` `(B, T, D)` and `states` random start states `(B, H)`, asking for
    gradients."""
    rng = np.random.default_rng(2)
    x = torch.tensor(rng.normal(size=(B, T, D)), dtype=dtype, requires_grad=True)
    initial = [
        torch.tensor(rng.normal(size=(B, H)), dtype=dtype, requires_grad=True)
        for _ in range(states)
    ]
    return x, initial


def assert_same(fused, reference, mask_name, states=1, dtype=torch.float32):
    """Outputs and every gradient of the two layers agree within 1e-5."""
    x, initial = random_inputs(states, dtype)
    mask = mask_tensor(mask_name)
    got, got_grads, probe = outputs_and_grads(fused, x, initial, mask)
    want, want_grads, _ = outputs_and_grads(reference, x, initial, mask, probe)
    for g, w in zip(got + list(got_grads), want + list(want_grads), strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)


def wide_mask(name, batch):
    """`MASKS[name]`'s rows repeated down a batch of `batch` sequences (None for "none")."""
    rows = MASKS[name]
    if rows is None:
        return None
    return torch.tensor(rows * (batch // len(rows) + 1))[:batch].bool()


def assert_same_to_rounding(fused, reference, x, mask, grad):
    """The two layers' outputs (and, with `grad`, every gradient) agree to float32 rounding;
    without `grad` the fused path must make no autograd node. Both return sequences and
    states."""
    x.requires_grad_(grad)
    with torch.set_grad_enabled(grad):
        got, want = fused(x, mask=mask), reference(x, mask=mask)
    for g, w in zip(got, want, strict=True):
        assert (g.grad_fn is None) != grad
        torch.testing.assert_close(g, w, atol=2e-6, rtol=1e-5)
    if not grad:
        return
    probe = [torch.randn(o.shape) for o in got]
    grads = [
        torch.autograd.grad(sum((o * p).sum() for o, p in zip(outs, probe)), [x, *layer.weights])
        for layer, outs in ((fused, got), (reference, want))
    ]
    for g, w in zip(*grads, strict=True):  # sums over steps and rows, in other orders
        torch.testing.assert_close(g, w, atol=3e-5, rtol=1e-4)


def assert_masked_bidirectional_runs_fused(layer_class, path_prefix):
    """A masked Bidirectional(layer_class) runs the fused recurrence in both directions and
    equals (output and input gradient) the same pair on the reference loop."""
    from rnnkit.layers import Bidirectional

    fused = Bidirectional(layer_class(H, return_sequences=True))
    reference = Bidirectional(layer_class(H, return_sequences=True))
    x = torch.randn(B, T, D, requires_grad=True)
    fused(x)
    reference(x)
    reference.set_weights(fused.get_weights())
    for part in (reference.forward_layer, reference.backward_layer):
        part.use_fused = False
    mask = mask_tensor("holes_and_empty")
    for part in (fused.forward_layer, fused.backward_layer):
        assert part.choose_path(True, mask, batch=B)[1].startswith(path_prefix)
    got, want = fused(x, mask=mask), reference(x, mask=mask)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    probe = torch.randn(got.shape)
    grads = [torch.autograd.grad((o * probe).sum(), x)[0] for o in (got, want)]
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-5)


LOOPS_OFF = "the compiled loops are off for this test"


def turn_off_loops(monkeypatch) -> None:
    """Run the fused kernels' time loops in Python, as where the compiled loops are not built
    (`compiled.missing` then gives `LOOPS_OFF`)."""
    from rnnkit.kernels import compiled

    monkeypatch.setattr(compiled, "LIBRARY", None)
    monkeypatch.setattr(compiled, "BUILD", LOOPS_OFF)


def choose_loops(loops: str, request) -> None:
    """Run the fused kernels' time loops in Python ("python") or compiled ("compiled", skipped
    where the loops are not built)."""
    from rnnkit.kernels import compiled

    if loops == "python":
        request.getfixturevalue("python_loops")
    elif compiled.LIBRARY is None:
        pytest.skip(compiled.BUILD)
