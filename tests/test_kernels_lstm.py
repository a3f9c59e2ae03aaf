"""The fused LSTM recurrence (rnnkit/kernels/lstm.py) equals the reference loop: forward,
gradients, and a float64 gradcheck, for every activation, mask, direction and initial state."""

import itertools

import pytest
import torch
from kernel_cases import (
    ACTIVATION_PAIRS,
    MASKS,
    B,
    D,
    H,
    T,
    assert_masked_bidirectional_runs_fused,
    assert_same,
    equal_pair,
    mask_tensor,
)

from rnnkit.kernels import compiled
from rnnkit.layers import LSTM


def _fused(layer):
    """Send `layer` to the fused LSTM recurrence even where torch's kernel could run (no mask),
    as it does for masked batches, tiny batches and non-default activations."""
    layer.choose_path = lambda training, mask=None, batch=None: (layer._fused_recurrence, "fused")
    return layer


def _pair(dtype="float32", **kwargs):
    """The same LSTM twice, one fused and one on the reference loop, with equal weights."""
    return equal_pair(LSTM, dtype, fused=_fused, **kwargs)


def _assert_same(fused, reference, mask_name, dtype=torch.float32):
    assert_same(fused, reference, mask_name, states=2, dtype=dtype)


GRID = list(
    itertools.product(
        ACTIVATION_PAIRS,
        MASKS,
        [False, True],  # go_backwards
        [False, True],  # return_sequences
    )
)


@pytest.mark.parametrize(("activations", "mask_name", "go_backwards", "return_sequences"), GRID)
def test_fused_lstm_equals_reference(activations, mask_name, go_backwards, return_sequences):
    activation, recurrent_activation = activations
    fused, reference = _pair(
        activation=activation,
        recurrent_activation=recurrent_activation,
        go_backwards=go_backwards,
        return_sequences=return_sequences,
        return_state=True,  # the final c too, so its gradient flows through the kernel
    )
    assert reference.kernel_path.startswith("reference loop")
    _assert_same(fused, reference, mask_name)


@pytest.mark.parametrize("mask_name", MASKS)
def test_fused_lstm_without_bias_equals_reference(mask_name):
    fused, reference = _pair(use_bias=False, return_sequences=True, return_state=True)
    _assert_same(fused, reference, mask_name)


def test_fused_lstm_without_initial_state_equals_reference():
    fused, reference = _pair(return_sequences=True)
    x = torch.randn(B, T, D, requires_grad=True)
    mask = mask_tensor("holes_and_empty")
    got, want = fused(x, mask=mask), reference(x, mask=mask)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    probe = torch.randn(got.shape)
    grads = [torch.autograd.grad((o * probe).sum(), x)[0] for o in (got, want)]
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("activations", "mask_name", "use_bias"),
    [
        (a, m, b)
        for a in [p for p in ACTIVATION_PAIRS if p[0] != "relu"]  # relu: see below
        for m in MASKS
        for b in (True, False)
    ],
)
def test_fused_lstm_gradcheck_float64(activations, mask_name, use_bias):
    activation, recurrent_activation = activations
    layer = LSTM(
        H,
        activation=activation,
        recurrent_activation=recurrent_activation,
        use_bias=use_bias,
        return_sequences=True,
        return_state=True,
        dtype="float64",
    )
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    h0, c0 = (torch.randn(2, H, dtype=torch.float64, requires_grad=True) for _ in range(2))
    layer(x)
    if use_bias:
        with torch.no_grad():
            layer.cell.bias.normal_()  # zeros would leave the bias gradients' terms untested
    mask = mask_tensor(mask_name, batch=2, steps=4)
    # A masked batch, a tiny batch or a non-default activation: the fused recurrence.
    assert layer.choose_path(True, mask, batch=2)[1].startswith("fused LSTM recurrence")

    def f(x, h0, c0, *_):
        return layer(x, initial_state=[h0, c0], mask=mask)

    assert torch.autograd.gradcheck(f, (x, h0, c0, *layer.weights))


def test_relu_gradcheck_away_from_the_kink():
    layer = LSTM(H, activation="relu", return_sequences=True, dtype="float64")
    x = (torch.rand(2, 4, 3, dtype=torch.float64) + 0.5).requires_grad_()
    layer(x)
    with torch.no_grad():
        for w in layer.weights:
            w.abs_()  # every candidate and cell state positive: relu is smooth here
    assert layer.kernel_path.startswith("fused LSTM recurrence")
    assert torch.autograd.gradcheck(lambda t, *_: layer(t), (x, *layer.weights))


@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_fused_lstm_zero_output_formask_tensor(zero_output_for_mask):
    fused, reference = _pair(return_sequences=True, zero_output_for_mask=zero_output_for_mask)
    x, states = torch.randn(B, T, D), [torch.randn(B, H), torch.randn(B, H)]
    mask = mask_tensor("left_padded")
    torch.testing.assert_close(
        fused(x, initial_state=states, mask=mask), reference(x, initial_state=states, mask=mask)
    )


def test_fused_lstm_stateful_equals_reference():
    fused, reference = _pair(stateful=True)
    for _ in range(3):
        x = torch.randn(B, T, D)
        mask = mask_tensor("right_padded")
        torch.testing.assert_close(
            fused(x, mask=mask), reference(x, mask=mask), atol=1e-5, rtol=1e-5
        )
    for got, want in zip(fused.states, reference.states, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_fused_lstm_input_dropout_equals_reference():
    fused, reference = _pair(dropout=0.4, seed=7)
    x = torch.randn(B, T, D)
    torch.testing.assert_close(fused(x, training=True), reference(x, training=True))


def test_masked_bidirectional_lstm_runs_the_fused_kernel_both_ways():
    assert_masked_bidirectional_runs_fused(LSTM, "fused LSTM recurrence")


def test_paths_and_why_with_the_loops_compiled():
    """Where the compiled loops are built, every CPU call runs the fused recurrence: measured
    faster than torch's kernel, training and predicting."""
    if compiled.LIBRARY is None:
        pytest.skip(compiled.BUILD)
    loop = f"compiled time loop ({compiled.BUILD})"
    layer = LSTM(64)
    assert layer.kernel_path == f"fused LSTM recurrence (hand-written backward; {loop})"
    for mask in (None, mask_tensor("right_padded")):
        assert layer.choose_path(True, mask, batch=3)[1] == layer.kernel_path
        with torch.no_grad():
            assert layer.choose_path(False, mask, batch=1)[1] == layer.kernel_path
    assert LSTM(4, recurrent_dropout=0.3).kernel_path.startswith("reference loop")


def test_paths_and_why(python_loops):
    loop = "time loop in Python: the compiled loops are off for this test"
    layer = LSTM(64)
    # Unmasked, on CPU: torch's kernel, measured faster than the fused recurrence there.
    assert layer.kernel_path == "torch's fused LSTM (oneDNN on CPU, cuDNN on GPU)"
    assert layer.choose_path(True, mask_tensor("right_padded"), batch=3)[1] == (
        "fused LSTM recurrence (hand-written backward; masked steps: torch's kernel has no "
        f"per-step mask; {loop})"
    )
    assert layer.choose_path(True, torch.ones(B, T, dtype=torch.bool), batch=64)[1].startswith(
        "torch's fused LSTM"
    )  # nothing masked
    assert LSTM(4).choose_path(True, None, batch=16)[1] == (
        "fused LSTM recurrence (hand-written backward; tiny on CPU: batch x units = 64 < 256, "
        f"where this loop beats starting torch's kernel; {loop})"
    )
    assert LSTM(4, activation="relu").kernel_path == (
        "fused LSTM recurrence (hand-written backward; activation='relu', "
        f"recurrent_activation='sigmoid': torch's kernel has tanh and sigmoid; {loop})"
    )
    with torch.no_grad():  # inference: torch's C++ loop, unless a mask needs the fused one
        assert layer.choose_path(False, None, batch=64)[1].startswith("torch's fused LSTM")
        assert layer.choose_path(False, mask_tensor("left_padded"), batch=3)[1].startswith(
            "fused LSTM"
        )
    assert LSTM(4, recurrent_dropout=0.3).kernel_path == (
        "reference loop (recurrent_dropout needs the state masked inside the loop)"
    )
    assert LSTM(4, activation="softplus").kernel_path == (
        "reference loop (activation 'softplus' has no fused derivative; fused: tanh, sigmoid, "
        "relu, linear)"
    )
    assert (
        "recurrent_activation 'hard_sigmoid'"
        in LSTM(4, recurrent_activation="hard_sigmoid").kernel_path
    )


def test_weights_are_kept_as_torchs_kernel_reads_them(python_loops):
    """Where torch's LSTM runs on CPU (no compiled loops), W and U live transposed in memory,
    so it takes `kernel.t()` without a copy, while every user-facing view stays in Keras'
    layout: shapes, values, get_weights arrays."""
    layer = LSTM(H)
    layer(torch.zeros(B, T, D))
    for weight in (layer.cell.kernel, layer.cell.recurrent_kernel):
        assert weight.shape[1] == 4 * H
        assert weight.t().is_contiguous()
    kernel, recurrent, _ = layer.get_weights()
    assert kernel.shape == (D, 4 * H) and kernel.flags.c_contiguous
    assert recurrent.shape == (H, 4 * H) and recurrent.flags.c_contiguous
    torch.testing.assert_close(torch.from_numpy(kernel), layer.cell.kernel.detach())
    # A training step on torch's kernel leaves gradients in the weight's own layout, and the
    # gradients equal the reference loop's.
    assert "torch" in layer.choose_path(True, None, batch=64)[1]
    reference = LSTM(H)
    reference.use_fused = False
    reference(torch.zeros(B, T, D))
    reference.set_weights(layer.get_weights())
    x = torch.randn(64, T, D)
    for model in (layer, reference):
        model(x, training=True).square().sum().backward()
    assert layer.cell.kernel.grad.stride() == layer.cell.kernel.stride()
    for got, want in zip(layer.weights, reference.weights, strict=True):
        torch.testing.assert_close(got.grad, want.grad, atol=1e-4, rtol=1e-4)
