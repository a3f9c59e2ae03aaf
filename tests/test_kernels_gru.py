"""The fused GRU recurrence (rnnkit/kernels/gru.py) equals the reference loop: forward,
gradients, and a float64 gradcheck, for every activation, mask, direction and reset_after."""

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
    assert_same,
    equal_pair,
    mask_tensor,
)

from rnnkit.layers import GRU, Bidirectional


def _pair(dtype="float32", **kwargs):
    """The same GRU twice, one fused and one on the reference loop, with equal weights."""
    return equal_pair(GRU, dtype, **kwargs)


def _assert_same(fused, reference, mask_name, dtype=torch.float32):
    assert_same(fused, reference, mask_name, states=1, dtype=dtype)


GRID = list(
    itertools.product(
        ACTIVATION_PAIRS,
        [True, False],  # reset_after
        MASKS,
        [False, True],  # go_backwards
        [False, True],  # return_sequences
    )
)


@pytest.mark.parametrize(
    ("activations", "reset_after", "mask_name", "go_backwards", "return_sequences"), GRID
)
def test_fused_gru_equals_reference(
    activations, reset_after, mask_name, go_backwards, return_sequences
):
    activation, recurrent_activation = activations
    fused, reference = _pair(
        activation=activation,
        recurrent_activation=recurrent_activation,
        reset_after=reset_after,
        go_backwards=go_backwards,
        return_sequences=return_sequences,
        return_state=True,
    )
    assert fused.kernel_path.startswith("fused GRU recurrence")
    assert reference.kernel_path.startswith("reference loop")
    _assert_same(fused, reference, mask_name)


@pytest.mark.parametrize(
    ("reset_after", "mask_name"), list(itertools.product([True, False], MASKS))
)
def test_fused_gru_without_bias_equals_reference(reset_after, mask_name):
    fused, reference = _pair(use_bias=False, reset_after=reset_after, return_sequences=True)
    _assert_same(fused, reference, mask_name)


@pytest.mark.parametrize(
    ("activations", "reset_after", "mask_name", "use_bias"),
    [
        (a, r, m, b)
        for a in [p for p in ACTIVATION_PAIRS if p[0] != "relu"]  # relu: see below
        for r in (True, False)
        for m in MASKS
        for b in (True, False)
    ],
)
def test_fused_gru_gradcheck_float64(activations, reset_after, mask_name, use_bias):
    activation, recurrent_activation = activations
    layer = GRU(
        H,
        activation=activation,
        recurrent_activation=recurrent_activation,
        reset_after=reset_after,
        use_bias=use_bias,
        return_sequences=True,
        dtype="float64",
    )
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, H, dtype=torch.float64, requires_grad=True)
    layer(x)
    if use_bias:
        with torch.no_grad():
            layer.cell.bias.normal_()  # zeros would leave the bias gradients' terms untested
    assert layer.kernel_path.startswith("fused GRU recurrence")
    mask = mask_tensor(mask_name, batch=2, steps=4)

    def f(x, h0, *_):
        return layer(x, initial_state=[h0], mask=mask)

    assert torch.autograd.gradcheck(f, (x, h0, *layer.weights))


def test_relu_candidate_gradcheck_away_from_the_kink():
    layer = GRU(H, activation="relu", return_sequences=True, dtype="float64")
    x = (torch.rand(2, 4, 3, dtype=torch.float64) + 0.5).requires_grad_()
    layer(x)
    with torch.no_grad():
        for w in layer.weights:
            w.abs_()  # every candidate pre-activation positive: relu is smooth here
    assert torch.autograd.gradcheck(lambda t, *_: layer(t), (x, *layer.weights))


@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_fused_gru_zero_output_formask_tensor(zero_output_for_mask):
    fused, reference = _pair(return_sequences=True, zero_output_for_mask=zero_output_for_mask)
    x, h0 = torch.randn(B, T, D), torch.randn(B, H)
    mask = mask_tensor("left_padded")
    torch.testing.assert_close(
        fused(x, initial_state=[h0], mask=mask), reference(x, initial_state=[h0], mask=mask)
    )


def test_fused_gru_stateful_equals_reference():
    fused, reference = _pair(stateful=True)
    for _ in range(3):
        x = torch.randn(B, T, D)
        torch.testing.assert_close(fused(x), reference(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused.states[0], reference.states[0], atol=1e-5, rtol=1e-5)


def test_fused_gru_input_dropout_equals_reference():
    fused, reference = _pair(dropout=0.4, seed=7)
    x = torch.randn(B, T, D)
    torch.testing.assert_close(fused(x, training=True), reference(x, training=True))


def test_masked_bidirectional_gru_runs_the_fused_kernel_both_ways():
    fused = Bidirectional(GRU(H, return_sequences=True))
    reference = Bidirectional(GRU(H, return_sequences=True))
    x = torch.randn(B, T, D, requires_grad=True)
    fused(x)
    reference(x)
    reference.set_weights(fused.get_weights())
    for part in (reference.forward_layer, reference.backward_layer):
        part.use_fused = False
    assert fused.backward_layer.kernel_path.startswith("fused GRU recurrence")
    mask = mask_tensor("holes_and_empty")
    got, want = fused(x, mask=mask), reference(x, mask=mask)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    probe = torch.randn(got.shape)
    grads = [torch.autograd.grad((o * probe).sum(), x)[0] for o in (got, want)]
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-5)


def test_the_torch_gru_path_equals_reference_with_gradients():
    """torch's GRU runs for inference here and for training on a GPU; check its gradients too."""
    fused, reference = _pair(return_sequences=True, return_state=True)
    fused.choose_path = lambda training, mask=None, batch=None: (fused._torch_recurrence, "torch")
    _assert_same(fused, reference, "none")


def test_paths_and_why():
    layer = GRU(4)
    assert layer.kernel_path == (
        "fused GRU recurrence (hand-written backward; measured faster than torch's GRU on CPU)"
    )
    with torch.no_grad():  # no backward pass: torch's own C++ loop
        assert layer.choose_path(False, None, batch=64)[1].startswith("torch's fused GRU")
        # ... unless torch's kernel cannot run it: a mask, reset_after=False, a tiny batch
        assert layer.choose_path(False, mask_tensor("right_padded"), batch=3)[1].startswith(
            "fused GRU"
        )
        assert layer.choose_path(False, None, batch=16)[1].startswith("fused GRU")
        assert GRU(4, reset_after=False).choose_path(False)[1].startswith("fused GRU")
    assert GRU(4, recurrent_dropout=0.3).kernel_path == (
        "reference loop (recurrent_dropout needs the state masked inside the loop)"
    )
    assert GRU(4, activation="softplus").kernel_path == (
        "reference loop (activation 'softplus' has no fused derivative; fused: tanh, sigmoid, "
        "relu, linear)"
    )
    assert (
        "recurrent_activation 'hard_sigmoid'"
        in GRU(4, recurrent_activation="hard_sigmoid").kernel_path
    )
