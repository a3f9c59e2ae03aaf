"""Every fused path equals the reference loop: forward, gradients, and a float64 gradcheck."""

import itertools

import numpy as np
import pytest
import torch
from kernel_cases import (
    MASKS,
    B,
    D,
    H,
    T,
    assert_same_to_rounding,
    choose_loops,
    equal_pair,
    give_equal_weights,
    wide_mask,
)

from rnnkit.kernels.simple_rnn import ACTIVATIONS, TANH_BY_SIGMOID_FROM, simple_rnn_states
from rnnkit.layers import SimpleRNN


def _pair(dtype="float32", **kwargs):
    """The same layer twice, one fused and one on the reference loop, with equal weights."""
    return equal_pair(SimpleRNN, dtype, **kwargs)


def _run(layer, x, mask, h0, training=False):
    kwargs = {"training": training}
    if mask is not None:
        kwargs["mask"] = mask
    if h0 is not None:
        kwargs["initial_state"] = [h0]
    out = layer(x, **kwargs)
    return out if isinstance(out, list) else [out]


GRID = list(
    itertools.product(
        ["tanh", "relu", "sigmoid", "linear"],
        MASKS,
        [False, True],  # go_backwards
        [False, True],  # return_sequences
    )
)


@pytest.mark.parametrize(("activation", "mask_name", "go_backwards", "return_sequences"), GRID)
def test_fused_simple_rnn_equals_reference(activation, mask_name, go_backwards, return_sequences):
    kwargs = dict(
        activation=activation,
        go_backwards=go_backwards,
        return_sequences=return_sequences,
        return_state=True,
    )
    fused, reference = _pair(**kwargs)
    assert fused.kernel_path.startswith("fused")
    assert reference.kernel_path.startswith("reference loop")
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.normal(size=(B, T, D)), dtype=torch.float32, requires_grad=True)
    h0 = torch.tensor(rng.normal(size=(B, H)), dtype=torch.float32)
    mask = None if MASKS[mask_name] is None else torch.tensor(MASKS[mask_name], dtype=torch.bool)
    got, want = _run(fused, x, mask, h0), _run(reference, x, mask, h0)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)
    # Gradients with respect to the input and every weight agree too.
    probe = [torch.tensor(rng.normal(size=tuple(t.shape)), dtype=torch.float32) for t in got]
    grads = []
    for layer, outs in ((fused, got), (reference, want)):
        loss = sum((o * p).sum() for o, p in zip(outs, probe))
        grads.append(torch.autograd.grad(loss, [x, *layer.weights]))
    for g, w in zip(*grads, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("zero_output_for_mask", [False, True])
@pytest.mark.parametrize("mask_name", ["left_padded", "holes_and_empty"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_fused_zero_output_for_mask(zero_output_for_mask, mask_name, return_sequences):
    fused, reference = _pair(
        return_sequences=return_sequences,
        return_state=True,
        zero_output_for_mask=zero_output_for_mask,
    )
    x = torch.randn(B, T, D)
    mask = torch.tensor(MASKS[mask_name], dtype=torch.bool)
    h0 = torch.randn(B, H)
    torch.testing.assert_close(_run(fused, x, mask, h0), _run(reference, x, mask, h0))


@pytest.mark.parametrize("mask_name", ["none", "holes_and_empty"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_fused_without_bias_equals_reference(mask_name, return_sequences):
    fused, reference = _pair(use_bias=False, return_sequences=return_sequences)
    assert len(fused.weights) == 2
    x = torch.randn(B, T, D, requires_grad=True)
    mask = None if MASKS[mask_name] is None else torch.tensor(MASKS[mask_name], dtype=torch.bool)
    got, want = fused(x, mask=mask), reference(x, mask=mask)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    probe = torch.randn(got.shape)
    grads = [
        torch.autograd.grad((out * probe).sum(), [x, *layer.weights])
        for layer, out in ((fused, got), (reference, want))
    ]
    for g, w in zip(*grads, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)


def test_fused_stateful_equals_reference():
    fused, reference = _pair(stateful=True)
    for _ in range(3):
        x = torch.randn(B, T, D)
        torch.testing.assert_close(fused(x), reference(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused.states[0], reference.states[0], atol=1e-5, rtol=1e-5)


def test_fused_input_dropout_equals_reference():
    fused, reference = _pair(dropout=0.4, seed=7)
    x = torch.randn(B, T, D)
    torch.testing.assert_close(fused(x, training=True), reference(x, training=True))


def test_recurrent_dropout_says_why_it_runs_the_reference_loop():
    layer = SimpleRNN(H, recurrent_dropout=0.3)
    assert layer.kernel_path == (
        "reference loop (recurrent_dropout needs the state masked inside the loop)"
    )
    layer(torch.randn(B, T, D))  # inference needs no state mask, so it can use the fused path
    assert layer.choose_path(training=False)[1].startswith("fused")


def test_unsupported_activation_says_why():
    layer = SimpleRNN(H, activation="softplus")
    assert "activation 'softplus' has no fused derivative" in layer.kernel_path


def test_the_chosen_path_is_logged_once(caplog):
    layer = SimpleRNN(H)
    with caplog.at_level("DEBUG", logger="rnnkit"):
        layer(torch.randn(B, T, D))
        layer(torch.randn(B, T, D))
    lines = [r.getMessage() for r in caplog.records if "runs the" in r.getMessage()]
    assert lines == [f"SimpleRNN 'simple_rnn' runs the {layer.kernel_path}"]
    assert layer.kernel_path.startswith("fused SimpleRNN recurrence (hand-written backward; ")


@pytest.mark.parametrize(
    ("activation", "mask_name"), [(a, m) for a in ("tanh", "sigmoid", "linear") for m in MASKS]
)
def test_fused_simple_rnn_gradcheck_float64(activation, mask_name):
    layer = SimpleRNN(H, activation=activation, return_sequences=True, dtype="float64")
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, H, dtype=torch.float64, requires_grad=True)
    layer(x)
    assert layer.kernel_path.startswith("fused")
    mask = (
        None
        if MASKS[mask_name] is None
        else torch.tensor([row[:4] for row in MASKS[mask_name][:2]], dtype=torch.bool)
    )
    weights = layer.weights

    def f(x, h0, *_):
        return layer(x, initial_state=[h0], mask=mask)

    assert torch.autograd.gradcheck(f, (x, h0, *weights))


def test_relu_gradcheck_away_from_the_kink():
    layer = SimpleRNN(H, activation="relu", return_sequences=True, dtype="float64")
    x = (torch.rand(2, 4, 3, dtype=torch.float64) + 0.5).requires_grad_()
    layer(x)
    with torch.no_grad():
        for w in layer.weights:
            w.abs_()  # all pre-activations positive: relu is differentiable everywhere here
    assert torch.autograd.gradcheck(lambda t: layer(t), (x,))


def _kernel_inputs(use_bias=True, mask_name="none", dtype=torch.float64):
    """x, W, b, h0, U for `simple_rnn_states`, all requiring grad, and a `(B, T)` mask."""
    gen = torch.Generator().manual_seed(3)

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, dtype=dtype) * scale).requires_grad_()

    x, kernel, h0 = rand(B, T, D), rand(D, H, scale=0.5), rand(B, H)
    recurrent, bias = rand(H, H, scale=0.5), rand(H) if use_bias else None
    mask = None if MASKS[mask_name] is None else torch.tensor(MASKS[mask_name], dtype=torch.bool)
    return x, kernel, bias, h0, recurrent, mask


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "linear"])
@pytest.mark.parametrize("mask_name", ["none", "holes_and_empty"])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("outputs", ["states", "last", "both"])
def test_simple_rnn_kernel_gradcheck_float64(activation, mask_name, use_bias, outputs):
    """The fused node's own gradients for x, W, b, h0 and U, from the sequence of states, the
    last state alone (the other output's gradient is None then), or both."""
    x, kernel, bias, h0, recurrent, mask = _kernel_inputs(use_bias, mask_name)

    def f(x, kernel, h0, recurrent, *bias):
        states, last = simple_rnn_states(
            x, h0, kernel, recurrent, bias[0] if bias else None, mask, activation
        )
        return {"states": states, "last": last, "both": (states, last)}[outputs]

    inputs = (x, kernel, h0, recurrent, *([bias] if use_bias else []))
    assert torch.autograd.gradcheck(f, inputs)


def test_simple_rnn_kernel_relu_gradcheck_away_from_the_kink():
    x, kernel, bias, h0, recurrent, _ = _kernel_inputs()
    with torch.no_grad():
        for t in (x, kernel, bias, h0, recurrent):
            t.abs_()  # all pre-activations positive: relu is differentiable everywhere here

    def f(*args):
        return simple_rnn_states(*args, activation="relu")

    assert torch.autograd.gradcheck(f, (x, h0, kernel, recurrent, bias))


def test_simple_rnn_kernel_last_state_is_the_last_of_the_states():
    x, kernel, bias, h0, recurrent, mask = _kernel_inputs(mask_name="holes_and_empty")
    states, last = simple_rnn_states(x, h0, kernel, recurrent, bias, mask)
    torch.testing.assert_close(last, states[:, -1], rtol=0, atol=0)


@pytest.mark.parametrize("mask_name", ["none", "right_padded"])
@pytest.mark.parametrize("wanted", [(0,), (1,), (2,), (3,), (4,), (0, 4), (1, 2), (3, 4)])
def test_simple_rnn_kernel_gradients_for_only_some_inputs(mask_name, wanted):
    """Inputs that need no gradient get none, and the others' gradients do not change."""
    full = _kernel_inputs(mask_name=mask_name)
    *tensors, mask = full
    probe = torch.randn(B, T, H, dtype=torch.float64)

    def grads(tensors):
        x, kernel, bias, h0, recurrent = tensors
        states, last = simple_rnn_states(x, h0, kernel, recurrent, bias, mask)
        loss = (states * probe).sum() + last.sum()
        wanted_tensors = [t for t in tensors if t.requires_grad]
        return torch.autograd.grad(loss, wanted_tensors)

    want = grads(tensors)
    some = [t.detach().requires_grad_(i in wanted) for i, t in enumerate(tensors)]
    got = grads(some)
    assert len(got) == len(wanted)
    for g, i in zip(got, wanted, strict=True):
        torch.testing.assert_close(g, want[i])


def _gated_pair(cls, **kwargs):
    from rnnkit import layers

    layer_class = getattr(layers, cls)
    fused, reference = layer_class(H, **kwargs), layer_class(H, **kwargs)
    reference.use_fused = False
    fused.loop_below_work = 0  # these tiny test sizes would otherwise keep the loop on CPU
    dtype = getattr(torch, kwargs.get("dtype", "float32"))
    give_equal_weights(fused, reference, dtype, scale=0.5, seed=2)
    return fused, reference


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("use_bias", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_torch_fused_lstm_gru_equal_reference(
    cls, go_backwards, use_bias, return_sequences, python_loops
):
    fused, reference = _gated_pair(
        cls,
        go_backwards=go_backwards,
        use_bias=use_bias,
        return_sequences=return_sequences,
        return_state=True,
    )
    # GRU training on CPU runs rnnkit's own kernel (tests/test_kernels_gru.py has the rest).
    assert fused.kernel_path.startswith("torch's fused" if cls == "LSTM" else "fused GRU")
    x = torch.randn(B, T, D, requires_grad=True)
    states = [torch.randn(B, H) for _ in fused.state_sizes]
    got = fused(x, initial_state=states)
    want = reference(x, initial_state=states)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)
    probe = [torch.randn(t.shape) for t in got]
    grads = [
        torch.autograd.grad(sum((o * p).sum() for o, p in zip(outs, probe)), [x, *layer.weights])
        for layer, outs in ((fused, got), (reference, want))
    ]
    for g, w in zip(*grads, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_torch_fused_path_gradcheck_float64(cls, python_loops):
    fused, _ = _gated_pair(cls, return_sequences=True, dtype="float64")
    x = torch.randn(2, 4, D, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, *_: fused(t), (x, *fused.weights))


@pytest.mark.parametrize("cls", ["LSTM"])
def test_tiny_batches_on_cpu_leave_torchs_kernel_and_say_why(cls, python_loops):
    from rnnkit import layers

    layer = getattr(layers, cls)(4)
    assert layer.choose_path(True, None, batch=16)[1] == (
        "fused LSTM recurrence (hand-written backward; tiny on CPU: batch x units = 64 < 256, "
        "where this loop beats starting torch's kernel; time loop in Python: the compiled "
        "loops are off for this test)"
    )
    assert layer.choose_path(True, None, batch=64)[1].startswith("torch's fused")


@pytest.mark.parametrize("cls", ["LSTM"])
def test_a_masked_batch_says_why_it_leaves_torchs_kernel(cls, python_loops):
    fused, reference = _gated_pair(cls, return_sequences=True)
    mask = torch.tensor(MASKS["right_padded"], dtype=torch.bool)
    assert fused.choose_path(True, mask)[1] == (
        "fused LSTM recurrence (hand-written backward; masked steps: torch's kernel has no "
        "per-step mask; time loop in Python: the compiled loops are off for this test)"
    )
    full = torch.ones(B, T, dtype=torch.bool)  # nothing masked: the fused kernel still runs
    assert fused.choose_path(True, full)[1].startswith("torch's fused")
    x = torch.randn(B, T, D)
    torch.testing.assert_close(fused(x, mask=mask), reference(x, mask=mask))


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_inference_weight_cache_follows_weight_changes(cls, python_loops):
    fused, reference = _gated_pair(cls)
    x = torch.randn(B, T, D)
    with torch.no_grad():
        before = fused(x)
        torch.testing.assert_close(before, reference(x), atol=1e-5, rtol=1e-5)
        new = [w * 0.5 for w in fused.get_weights()]
        fused.set_weights(new)
        reference.set_weights(new)
        torch.testing.assert_close(fused(x), reference(x), atol=1e-5, rtol=1e-5)
        for w in fused.weights:  # an optimizer-style in-place update
            w.add_(0.1)
        for w in reference.weights:
            w.add_(0.1)
        torch.testing.assert_close(fused(x), reference(x), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(before, fused(x).detach())


# ------------------------------------------ wide batches: tanh as 2 sigmoid(2z) - 1, on CPU
@pytest.mark.parametrize("mask_name", ["none", "holes_and_empty"])
@pytest.mark.parametrize("grad", [True, False])
@pytest.mark.parametrize("loops", ["python", "compiled"])
def test_wide_tanh_equals_the_reference_loop(mask_name, grad, loops, request):
    """From batch x units = TANH_BY_SIGMOID_FROM, the Python loop's tanh runs as
    2 sigmoid(2z) - 1 with doubled weights; the compiled loop's own tanh splits the wide batch
    between threads. Outputs (training, and inference with no autograd node) and gradients
    still equal the reference loop's torch.tanh to float32 rounding."""
    choose_loops(loops, request)
    units = 64
    batch = TANH_BY_SIGMOID_FROM // units
    fused = SimpleRNN(units, return_sequences=True, return_state=True)
    reference = SimpleRNN(units, return_sequences=True, return_state=True)
    reference.use_fused = False
    x = torch.randn(batch, T, D)
    fused(x)
    reference(x)
    reference.set_weights(fused.get_weights())
    assert_same_to_rounding(fused, reference, x, wide_mask(mask_name, batch), grad)


@pytest.mark.parametrize(("activation", "mask_name"), list(itertools.product(ACTIVATIONS, MASKS)))
def test_inference_runs_no_autograd_node_and_equals_the_reference_loop(activation, mask_name):
    fused, reference = _pair(activation=activation, return_sequences=True, return_state=True)
    x, h0 = torch.randn(B, T, D), torch.randn(B, H)
    mask = None if MASKS[mask_name] is None else torch.tensor(MASKS[mask_name], dtype=torch.bool)
    with torch.no_grad():
        got, want = _run(fused, x, mask, h0), _run(reference, x, mask, h0)
    for g, w in zip(got, want, strict=True):
        assert g.grad_fn is None
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", ["SimpleRNN", "GRU", "LSTM"])
def test_an_expanded_input_runs_as_its_copy(cell):
    """RepeatVector hands the next layer an expanded view (stride 0 over time); at batch 1
    the fast loops once refused it as a non-contiguous buffer."""
    from rnnkit import layers as rnnkit_layers

    layer = getattr(rnnkit_layers, cell)(4, return_sequences=True)
    x = torch.randn(1, 3)
    expanded = x.unsqueeze(1).expand(-1, 5, -1)  # (1, 5, 3), not contiguous
    with torch.no_grad():
        np.testing.assert_array_equal(layer(expanded).numpy(), layer(expanded.contiguous()).numpy())
