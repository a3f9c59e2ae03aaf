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
    assert_masked_bidirectional_runs_fused,
    assert_same,
    assert_same_to_rounding,
    choose_loops,
    equal_pair,
    mask_tensor,
    wide_mask,
)

from rnnkit.kernels import compiled
from rnnkit.kernels.gru import gru_states
from rnnkit.kernels.simple_rnn import TANH_BY_SIGMOID_FROM
from rnnkit.layers import GRU


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
    assert_masked_bidirectional_runs_fused(GRU, "fused GRU recurrence")


def test_the_torch_gru_path_equals_reference_with_gradients():
    """torch's GRU runs for inference here and for training on a GPU; check its gradients too."""
    fused, reference = _pair(return_sequences=True, return_state=True)
    fused.choose_path = lambda training, mask=None, batch=None: (fused._torch_recurrence, "torch")
    _assert_same(fused, reference, "none")


def test_paths_and_why_with_the_loops_compiled():
    """Where the compiled loops are built, every CPU call with reset_after runs the fused
    recurrence, predict included; reset_after=False runs its time loop in Python."""
    if compiled.LIBRARY is None:
        pytest.skip(compiled.BUILD)
    layer = GRU(4)
    assert layer.kernel_path == (
        f"fused GRU recurrence (hand-written backward; compiled time loop ({compiled.BUILD}))"
    )
    with torch.no_grad():
        for mask in (None, mask_tensor("right_padded")):
            assert layer.choose_path(False, mask, batch=64)[1] == layer.kernel_path
    assert GRU(4, reset_after=False).kernel_path == (
        "fused GRU recurrence (hand-written backward; measured faster than torch's GRU on CPU; "
        "reset_after=False: time loop in Python)"
    )


def test_paths_and_why(python_loops):
    layer = GRU(4)
    assert layer.kernel_path == (
        "fused GRU recurrence (hand-written backward; measured faster than torch's GRU on CPU; "
        "time loop in Python: the compiled loops are off for this test)"
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


# ------------------------------------------------------ the fused node itself (gru_states)
def _kernel_inputs(use_bias=True, reset_after=True, mask_name="none", dtype=torch.float64):
    """x, W, b, b', h0, U for `gru_states`, all requiring grad (b' None without reset_after),
    and a `(B, T)` mask."""
    gen = torch.Generator().manual_seed(3)

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, dtype=dtype) * scale).requires_grad_()

    x, kernel, h0 = rand(B, T, D), rand(D, 3 * H, scale=0.5), rand(B, H)
    recurrent = rand(H, 3 * H, scale=0.5)
    bias = rand(3 * H) if use_bias else None
    recurrent_bias = rand(3 * H) if use_bias and reset_after else None
    return x, kernel, bias, recurrent_bias, h0, recurrent, mask_tensor(mask_name)


def _states(x, kernel, bias, recurrent_bias, h0, recurrent, mask, reset_after, **names):
    return gru_states(
        x, h0, kernel, recurrent, bias, recurrent_bias, mask, **names, reset_after=reset_after
    )


@pytest.mark.parametrize("activations", [("tanh", "sigmoid"), ("sigmoid", "tanh")])
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("mask_name", ["none", "holes_and_empty"])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("outputs", ["states", "last", "both"])
def test_gru_kernel_gradcheck_float64(activations, reset_after, mask_name, use_bias, outputs):
    """The fused node's own gradients for x, W, b, b', h0 and U, from the sequence of states,
    the last state alone (the other output's gradient is None then), or both."""
    activation, recurrent_activation = activations
    *tensors, mask = _kernel_inputs(use_bias, reset_after, mask_name)
    present = [i for i, t in enumerate(tensors) if t is not None]

    def f(*given):
        args = [None] * len(tensors)
        for i, t in zip(present, given, strict=True):
            args[i] = t
        states, last = _states(
            *args,
            mask,
            reset_after,
            activation=activation,
            recurrent_activation=recurrent_activation,
        )
        return {"states": states, "last": last, "both": (states, last)}[outputs]

    assert torch.autograd.gradcheck(f, [tensors[i] for i in present])


def test_gru_kernel_relu_gradcheck_away_from_the_kink():
    *tensors, _ = _kernel_inputs()
    with torch.no_grad():
        for t in tensors:
            t.abs_()  # every candidate pre-activation positive: relu is smooth here

    def f(*args):
        return _states(*args, None, True, activation="relu")

    assert torch.autograd.gradcheck(f, tensors)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_kernel_last_state_is_the_last_of_the_states(reset_after):
    *tensors, mask = _kernel_inputs(reset_after=reset_after, mask_name="holes_and_empty")
    states, last = _states(*tensors, mask, reset_after)
    torch.testing.assert_close(last, states[:, -1], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("reset_after", "mask_name", "wanted"),
    [
        (r, m, w)
        for r in (True, False)
        for m in ("none", "right_padded")
        for w in [(0,), (1,), (2,), (3,), (4,), (5,), (0, 4), (1, 3), (2, 5)]
        if r or 3 not in w  # (x, W, b, b', h0, U): no b' without reset_after
    ],
)
def test_gru_kernel_gradients_for_only_some_inputs(reset_after, mask_name, wanted):
    """Inputs that need no gradient get none, and the others' gradients do not change."""
    *tensors, mask = _kernel_inputs(reset_after=reset_after, mask_name=mask_name)
    probe = torch.randn(B, T, H, dtype=torch.float64)

    def grads(tensors):
        states, last = _states(*tensors, mask, reset_after)
        loss = (states * probe).sum() + last.sum()
        return torch.autograd.grad(loss, [t for t in tensors if t is not None and t.requires_grad])

    want = dict(zip([i for i, t in enumerate(tensors) if t is not None], grads(tensors)))
    some = [
        None if t is None else t.detach().requires_grad_(i in wanted) for i, t in enumerate(tensors)
    ]
    got = grads(some)
    assert len(got) == len(wanted)
    for g, i in zip(got, wanted, strict=True):
        torch.testing.assert_close(g, want[i])


def test_gru_kernel_recurrent_bias_needs_reset_after():
    *tensors, _ = _kernel_inputs()
    with pytest.raises(ValueError, match="reset_after"):
        _states(*tensors, None, False)


@pytest.mark.parametrize("zero_output_for_mask", [False, True])
@pytest.mark.parametrize("mask_name", ["left_padded", "holes_and_empty"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_fused_gru_last_output_and_states_under_masks(
    zero_output_for_mask, mask_name, return_sequences
):
    """The last output is built from the last state apart (no all-steps gradient when the
    sequence is not returned), masked as the reference loop shows it."""
    fused, reference = _pair(
        return_sequences=return_sequences,
        return_state=True,
        zero_output_for_mask=zero_output_for_mask,
    )
    _assert_same(fused, reference, mask_name)


# ------------------------------------------ wide batches: tanh as 2 sigmoid(2z) - 1, on CPU
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("mask_name", ["none", "holes_and_empty"])
@pytest.mark.parametrize("grad", [True, False])
@pytest.mark.parametrize("loops", ["python", "compiled"])
def test_wide_tanh_candidate_equals_the_reference_loop(
    reset_after, mask_name, grad, loops, request
):
    """From batch x units = TANH_BY_SIGMOID_FROM, the Python loop's candidate tanh runs as
    2 sigmoid(2p) - 1 with doubled weights; the compiled loop (reset_after) splits the wide
    batch between threads. Outputs (training, and inference with no autograd node) and
    gradients still equal the reference loop's torch.tanh to float32 rounding."""
    choose_loops(loops, request)
    units = 64
    batch = TANH_BY_SIGMOID_FROM // units
    kwargs = dict(return_sequences=True, return_state=True, reset_after=reset_after)
    fused, reference = GRU(units, **kwargs), GRU(units, **kwargs)
    reference.use_fused = False
    x = torch.randn(batch, T, D)
    fused(x)
    reference(x)
    with torch.no_grad():
        fused.cell.bias.normal_()
    reference.set_weights(fused.get_weights())
    # the fused loop itself, not torch's GRU (which inference would otherwise use unmasked)
    fused.choose_path = lambda training, mask=None, batch=None: (fused._fused_recurrence, "fused")
    assert_same_to_rounding(fused, reference, x, wide_mask(mask_name, batch), grad)


@pytest.mark.parametrize(
    ("activations", "reset_after", "mask_name"),
    list(itertools.product(ACTIVATION_PAIRS, [True, False], MASKS)),
)
def test_fused_inference_runs_no_autograd_node_and_equals_the_reference_loop(
    activations, reset_after, mask_name
):
    activation, recurrent_activation = activations
    fused, reference = _pair(
        activation=activation,
        recurrent_activation=recurrent_activation,
        reset_after=reset_after,
        return_sequences=True,
        return_state=True,
    )
    fused.choose_path = lambda training, mask=None, batch=None: (fused._fused_recurrence, "fused")
    x, h0 = torch.randn(B, T, D), torch.randn(B, H)
    mask = mask_tensor(mask_name)
    with torch.no_grad():
        got = fused(x, initial_state=[h0], mask=mask)
        want = reference(x, initial_state=[h0], mask=mask)
    for g, w in zip(got, want, strict=True):
        assert g.grad_fn is None
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)
