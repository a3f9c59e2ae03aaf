"""The members kernels (`rnnkit/kernels/members.py`) against their oracle: each member's rows
through the single-member Function (`SimpleRNNRecurrence`, `GRURecurrence`, `LSTMRecurrence`)
with that member's weights.

Outputs and every gradient must agree (float64 to 1e-12, float32 to float rounding) for 1, 2
and 5 members, 1 and odd rows a member, narrow (the loops make x W + b) and wide inputs, each
activation, a loss on all outputs or only one, with and without biases, on one thread and two,
compiled and in the per-member fallback. Also: gradcheck, the Functions run by hand
(`by_hand.run`), GRU's reset_after=False, and the errors.
"""

import itertools

import pytest
import torch
from kernel_cases import ACTIVATION_PAIRS, turn_off_loops

from rnnkit.kernels import by_hand, compiled
from rnnkit.kernels.gru import GRURecurrence
from rnnkit.kernels.lstm import LSTMRecurrence
from rnnkit.kernels.members import MembersGRU, MembersLSTM, MembersSimpleRNN
from rnnkit.kernels.simple_rnn import SimpleRNNRecurrence

T, H = 5, 6
# cell -> (members Function, single-member Function, gate blocks, the tensor arguments' kinds:
# x batch-major "x" or time-major "xt", stacked "w", "b", "u", per-row "h")
CELLS = {
    "simple_rnn": (MembersSimpleRNN, SimpleRNNRecurrence, 1, ("x", "w", "b", "h", "u")),
    "gru": (MembersGRU, GRURecurrence, 3, ("x", "w", "b", "b", "h", "u")),
    "lstm": (MembersLSTM, LSTMRecurrence, 4, ("xt", "w", "b", "h", "h", "u")),
}
# (rows a member, features): one row and narrow inputs, odd rows and wide, even and narrow
SIZES = [(1, 3), (3, 11), (4, 1)]


def tail(cell, act, sigma, after=True):
    """The arguments after the tensors: the mask (None) and the activations' names."""
    return {
        "simple_rnn": (None, act),
        "gru": (None, act, sigma, after),
        "lstm": (None, act, sigma),
    }[cell]


def make_tensors(cell, members, rows, features, dtype, bias=True, after=True, units=H, seed=0):
    """Random arguments for `cell`'s members Function, stacked by member, rows member-major."""
    gates, kinds = CELLS[cell][2], CELLS[cell][3]
    generator = torch.Generator().manual_seed(seed)
    batch = members * rows
    shapes = {
        "x": (batch, T, features),
        "xt": (T, batch, features),
        "w": (members, features, gates * units),
        "b": (members, gates * units),
        "h": (batch, units),
        "u": (members, units, gates * units),
    }
    tensors = []
    for i, kind in enumerate(kinds):
        recurrent_bias = cell == "gru" and i == 3
        if kind == "b" and (not bias or recurrent_bias and not after):
            tensors.append(None)
            continue
        scale = 0.5 if kind in ("w", "u") else 1.0
        tensors.append(torch.randn(shapes[kind], generator=generator, dtype=dtype) * scale)
    return tensors


def member_args(cell, tensors, m, rows):
    """Member m's share of the stacked arguments, for the single-member Function."""
    out = []
    for t, kind in zip(tensors, CELLS[cell][3], strict=True):
        if t is None:
            out.append(None)
        elif kind == "x" or kind == "h":
            out.append(t[m * rows : (m + 1) * rows])
        elif kind == "xt":
            out.append(t[:, m * rows : (m + 1) * rows].contiguous())  # as lstm_states passes it
        else:
            out.append(t[m])
    return out


def probes(outputs, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(o.shape, generator=generator, dtype=o.dtype) for o in outputs]


def loss_of(outputs, probe, use, rows=None):
    """The probed sum of the outputs `use` names ("all", "states", "last"); `rows`: member m's
    share of the probes."""
    chosen = {"all": (0, 1), "states": (0,), "last": (1,)}[use]
    total = 0
    for i in chosen:
        p = probe[i]
        if rows is not None:
            p = p[:, rows] if i == 0 else p[rows]
        total = total + (outputs[i] * p).sum()
    return total


def run_both(cell, members, rows, tensors, rest, use="all"):
    """(members Function's outputs and gradients, the oracle's), by autograd."""
    function, single = CELLS[cell][0], CELLS[cell][1]
    leaves = [None if t is None else t.clone().requires_grad_() for t in tensors]
    wanted = [t for t in leaves if t is not None]
    outputs = function.apply(*leaves, *rest)
    probe = probes(outputs)
    got = torch.autograd.grad(loss_of(outputs, probe, use), wanted, allow_unused=True)
    leaves = [None if t is None else t.clone().requires_grad_() for t in tensors]
    wanted = [t for t in leaves if t is not None]
    parts, loss = [], 0
    for m in range(members):
        out = single.apply(*member_args(cell, leaves, m, rows), *rest)
        loss = loss + loss_of(out, probe, use, slice(m * rows, (m + 1) * rows))
        parts.append(out)
    want_out = [torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 0)]
    want = torch.autograd.grad(loss, wanted, allow_unused=True)
    return (list(outputs), list(got)), (want_out, list(want))


def assert_matches(got, want, dtype):
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-6, atol=2e-6)
    for i, (g, w) in enumerate(zip(got[0] + got[1], want[0] + want[1], strict=True)):
        if w is None:
            assert g is None, f"item {i}: a gradient where the oracle has none"
            continue
        assert g is not None, f"item {i}: no gradient where the oracle has one"
        torch.testing.assert_close(g.detach(), w.detach(), **tol, msg=lambda m, i=i: f"{i}: {m}")


@pytest.fixture(params=["compiled", "python"])
def loops(request, monkeypatch):
    """The compiled loops, or the per-member fallback (as where they are not built)."""
    if request.param == "python":
        turn_off_loops(monkeypatch)
    elif compiled.LIBRARY is None:
        pytest.skip(compiled.BUILD)
    return request.param


@pytest.fixture
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(getattr(request, "param", 1))
    yield torch.get_num_threads()
    torch.set_num_threads(before)


DEFAULTS = {"simple_rnn": ("tanh", None), "gru": ("tanh", "sigmoid"), "lstm": ("tanh", "sigmoid")}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("rows,features", SIZES)
@pytest.mark.parametrize("members", [1, 2, 5])
@pytest.mark.parametrize("cell", list(CELLS))
def test_members_equal_each_member_alone(cell, members, rows, features, dtype, loops, threads):
    tensors = make_tensors(cell, members, rows, features, dtype)
    rest = tail(cell, *DEFAULTS[cell])
    got, want = run_both(cell, members, rows, tensors, rest)
    assert_matches(got, want, dtype)


VARIANTS = {
    "simple_rnn": [(a, None) for a in ("tanh", "relu", "sigmoid", "linear")],
    "gru": ACTIVATION_PAIRS,
    "lstm": ACTIVATION_PAIRS,
}


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("use", ["all", "states", "last"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize(
    "cell,acts", [(cell, acts) for cell, pairs in VARIANTS.items() for acts in pairs]
)
def test_activations_outputs_and_biases(cell, acts, bias, use, threads):
    if compiled.LIBRARY is None:
        pytest.skip(compiled.BUILD)
    members, rows = 3, 3
    # narrow on one thread, wide on two: both ways of making x W + b
    features = 2 if threads == 1 else 9
    tensors = make_tensors(cell, members, rows, features, torch.float64, bias=bias)
    got, want = run_both(cell, members, rows, tensors, tail(cell, *acts), use)
    assert_matches(got, want, torch.float64)


# (members, rows a member, units): a thread's rows crossing members; few rows of units that
# fill whole panels (one member splits the units between threads there, several must not)
THREAD_SHAPES = [(5, 3, 6), (2, 1, 32), (3, 2, 64), (1, 2, 32)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("threads", [2], indirect=True)
@pytest.mark.parametrize("members,rows,units", THREAD_SHAPES)
@pytest.mark.parametrize("cell", list(CELLS))
def test_two_threads(cell, members, rows, units, dtype, threads):
    if compiled.LIBRARY is None:
        pytest.skip(compiled.BUILD)
    tensors = make_tensors(cell, members, rows, 3, dtype, units=units)
    got, want = run_both(cell, members, rows, tensors, tail(cell, *DEFAULTS[cell]))
    assert_matches(got, want, dtype)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("features", [2, 10])
def test_gru_reset_before_runs_each_member(features, bias, loops):
    tensors = make_tensors("gru", 3, 2, features, torch.float64, bias=bias, after=False)
    got, want = run_both("gru", 3, 2, tensors, tail("gru", "tanh", "sigmoid", after=False))
    assert_matches(got, want, torch.float64)


@pytest.mark.parametrize("features", [2, 10])
@pytest.mark.parametrize("cell", list(CELLS))
def test_gradcheck(cell, features, loops):
    tensors = make_tensors(cell, 2, 2, features, torch.float64, units=3)
    leaves = [None if t is None else t.requires_grad_() for t in tensors]
    rest = tail(cell, *DEFAULTS[cell])
    function = CELLS[cell][0]
    assert torch.autograd.gradcheck(lambda *a: function.apply(*a, *rest), leaves)


@pytest.mark.parametrize("cell", list(CELLS))
def test_by_hand_equals_autograd_and_skips_unneeded_gradients(cell, loops):
    function = CELLS[cell][0]
    tensors = make_tensors(cell, 2, 3, 4, torch.float64)
    rest = tail(cell, *DEFAULTS[cell])
    leaves = [t.clone().requires_grad_() for t in tensors]
    outputs = function.apply(*leaves, *rest)
    probe = probes(outputs)
    want = torch.autograd.grad(loss_of(outputs, probe, "all"), leaves)
    needs = [True] * len(tensors) + [False] * len(rest)
    needs[1] = False  # no gradient for the kernel
    got_out, backward = by_hand.run(function, tuple(needs), *tensors, *rest)
    for g, w in zip(got_out, outputs, strict=True):
        torch.testing.assert_close(g, w.detach(), rtol=0, atol=0)
    grads = backward(*probe)
    assert len(grads) == len(needs) and grads[1] is None
    for i, (g, w) in enumerate(zip(grads, want)):
        if i != 1:
            torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
    assert all(g is None for g in backward(None, None))


def test_an_unused_output_gradient_may_be_none(loops):
    """LSTM's single-member Function takes zeros for an unused output; the members one also
    takes None (as by_hand passes it)."""
    tensors = make_tensors("lstm", 2, 2, 3, torch.float64)
    rest = tail("lstm", "tanh", "sigmoid")
    needs = (True,) * len(tensors) + (False,) * len(rest)
    outputs, backward = by_hand.run(MembersLSTM, needs, *tensors, *rest)
    with_none = backward(probes(outputs)[0], None)
    outputs, backward = by_hand.run(MembersLSTM, needs, *tensors, *rest)
    with_zeros = backward(probes(outputs)[0], torch.zeros_like(outputs[1]))
    for a, b in zip(with_none, with_zeros, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("cell", list(CELLS))
def test_bad_arguments_say_what_was_expected(cell):
    function, _, gates, kinds = CELLS[cell]
    rest = tail(cell, *DEFAULTS[cell])
    good = make_tensors(cell, 2, 3, 4, torch.float32)
    name = function.__name__

    def call(tensors, *, mask=None):
        return function.apply(*tensors, mask, *rest[1:])

    with pytest.raises(ValueError, match=f"{name}: mask must be None.*got a mask of shape"):
        call(good, mask=torch.ones(T, 6, 1, dtype=torch.bool))
    odd = make_tensors(cell, 2, 3, 4, torch.float32)
    for i, kind in enumerate(kinds):  # 7 rows for 2 members
        if kind in ("x", "h"):
            odd[i] = torch.cat([odd[i], odd[i][:1]])
        elif kind == "xt":
            odd[i] = torch.cat([odd[i], odd[i][:, :1]], 1)
    with pytest.raises(ValueError, match="x has 7 rows, not a multiple of the 2 members"):
        call(odd)
    u = kinds.index("u")
    three = list(good)
    three[u] = torch.cat([good[u], good[u][:1]])
    with pytest.raises(ValueError, match=rf"recurrent_kernel must be .* = \(2, {H}, {gates * H}\)"):
        call(three)
    flat = list(good)
    flat[1] = good[1][0]
    with pytest.raises(ValueError, match=r"kernel must be stacked by member.*unsqueeze\(0\)"):
        call(flat)
    b = kinds.index("b")
    biased = list(good)
    biased[b] = good[b][:1]
    with pytest.raises(
        ValueError, match=rf"must be \(members, {gates}\*units\) = \(2, {gates * H}\)"
    ):
        call(biased)
    h = kinds.index("h")
    short = list(good)
    short[h] = good[h][:5]
    with pytest.raises(ValueError, match=r"h0 must be \(rows, units\) = \(6, 6\); got \(5, 6\)"):
        call(short)


def test_reset_before_takes_no_recurrent_bias():
    tensors = make_tensors("gru", 2, 2, 3, torch.float32)
    with pytest.raises(ValueError, match="b_rec must be None with reset_after=False"):
        MembersGRU.apply(*tensors, *tail("gru", "tanh", "sigmoid", after=False))


def test_one_loop_call_a_direction_for_all_members(monkeypatch):
    """The compiled path runs each loop once for all members (not once a member)."""
    if compiled.LIBRARY is None:
        pytest.skip(compiled.BUILD)
    calls = []
    for name in ("gru_forward", "gru_backward"):
        wrapped = getattr(compiled, name)

        def spy(*args, _name=name, _wrapped=wrapped, **kwargs):
            calls.append(_name)
            return _wrapped(*args, **kwargs)

        monkeypatch.setattr(compiled, name, spy)
    tensors = [t.requires_grad_() for t in make_tensors("gru", 5, 2, 3, torch.float32)]
    states, last = MembersGRU.apply(*tensors, *tail("gru", "tanh", "sigmoid"))
    last.sum().backward()
    assert calls == ["gru_forward", "gru_backward"]


def test_sizes_cover_narrow_and_wide():
    widths = {features <= compiled.NARROW_INPUTS for _, features in SIZES}
    assert widths == {True, False}
    assert any(rows == 1 for rows, _ in SIZES) and any(rows % 2 for rows, _ in SIZES[1:])
    assert list(itertools.chain(*VARIANTS.values()))


def test_the_module_example_runs():
    import doctest

    from rnnkit.kernels import members

    assert doctest.testmod(members).failed == 0


@pytest.mark.parametrize("members", [1, 2])
@pytest.mark.parametrize("cell", list(CELLS))
def test_no_rows(cell, members):
    """An empty batch runs compiled (the loops once divided by the rows a member). (The
    single-member GRU and LSTM Functions do not take one: no oracle here.)"""
    if compiled.LIBRARY is None:
        pytest.skip(compiled.BUILD)
    tensors = make_tensors(cell, members, 0, 3, torch.float64)
    leaves = [t.clone().requires_grad_() for t in tensors]
    states, last = CELLS[cell][0].apply(*leaves, *tail(cell, *DEFAULTS[cell]))
    assert states.shape == (T, 0, H) and last.shape == (0, H)
    grads = torch.autograd.grad(states.sum() + last.sum(), leaves, allow_unused=True)
    for leaf, grad in zip(leaves, grads, strict=True):
        assert grad is None or (grad.shape == leaf.shape and not grad.abs().sum())


def test_a_build_of_the_older_loops_does_not_load(tmp_path):
    """A build without the members count would read it as nothing and give every member
    member 0's weights: `open_library` refuses it (the kernels then run in Python and
    `compiled.BUILD` says to rebuild)."""
    import shutil
    import subprocess

    compiler = shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        pytest.skip("no C++ compiler here")
    source = tmp_path / "old.cpp"
    source.write_text(
        'extern "C" long rnnkit_packed_size_f32(int k, int n) { return 0; }\n'
        'extern "C" long rnnkit_packed_size_f64(int k, int n) { return 0; }\n'
    )
    library = tmp_path / "old.so"
    subprocess.run([compiler, "-shared", "-fPIC", str(source), "-o", str(library)], check=True)
    with pytest.raises(OSError, match="older _loops.cpp .*version 1, not 2.*rebuild"):
        compiled.open_library(str(library))
