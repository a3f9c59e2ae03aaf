"""The compiled time loops (`rnnkit/kernels/_loops.cpp`) against the Python time loops.

Each fused kernel (`simple_rnn_states`, `gru_states`, `lstm_states`) runs its recurrence in
the compiled loops when it can, and otherwise in per-step Python loops that the other kernel
tests already hold to Keras and to each layer's reference cell loop. Here the Python loops are
the oracle: the same inputs go through both (the Python ones forced by taking the library
away), and the states and the gradients of every input must agree, in float32 and float64,
for each activation, for batch sizes that leave every remainder of the loops' row blocks,
unit counts that leave partial vectors and panels, with and without a mask that holds steps,
with a loss on every step (the backward loop adds to the gradient buffer) or on the last
state only (it writes it once), on one thread and on two, and for each vector-width variant
of the library this CPU runs.

Also checked: `_pack` against the same panels built with torch ops; `gradcheck` (finite
differences) through the compiled path; `missing`'s reasons; and which time loop each
layer's `kernel_path` names.
"""

import importlib.util
import itertools
import platform
import shutil
import subprocess

import pytest
import torch
import torch.nn.functional as F
from kernel_cases import LOOPS_OFF, turn_off_loops

import rnnkit
from rnnkit.kernels import compiled
from rnnkit.kernels.gru import gru_states
from rnnkit.kernels.lstm import lstm_states
from rnnkit.kernels.simple_rnn import simple_rnn_states

OPENMP_PROBE = "#include <omp.h>\nint main() { return omp_get_max_threads() > 0 ? 0 : 1; }\n"


def test_the_loops_are_built_where_a_compiler_is(tmp_path):
    """Where `c++ -fopenmp` works (what setup.py needs), the loops must have been built and
    loaded: an install that silently lost them would run every recurrence in Python."""
    compiler = shutil.which("c++") or shutil.which("g++")
    if platform.system() != "Linux" or compiler is None:
        pytest.skip("no C++ compiler on Linux here: the loops need not be built")
    probe = tmp_path / "probe.cpp"
    probe.write_text(OPENMP_PROBE)
    built = subprocess.run(
        [compiler, "-fopenmp", str(probe), "-o", str(tmp_path / "probe")], capture_output=True
    )
    if built.returncode != 0:
        pytest.skip(f"{compiler} cannot build OpenMP code here: the loops need not be built")
    assert compiled.LIBRARY is not None, (
        f"{compiler} builds OpenMP code but the compiled loops did not load: {compiled.BUILD}. "
        "Rebuild them with `pip install -e .` (setup.py compiles rnnkit/kernels/_loops.cpp)."
    )


needs_loops = pytest.mark.skipif(compiled.LIBRARY is None, reason=str(compiled.BUILD))

DTYPES = [torch.float32, torch.float64]
# (batch, units): every batch size (row-block remainders 8, 4, 2, 1 after the blocks of 8)
# and every unit count (one partial vector; a vector and a bit; over a panel) for each cell.
SIZES = [(1, 17), (3, 1), (9, 40), (17, 5), (17, 40)]
STEPS, FEATURES = 6, 3
# the compiled wrappers each cell's kernel calls, forward and backward
WRAPPERS = {
    "simple_rnn": ("simple_rnn_forward", "simple_rnn_backward"),
    "gru": ("gru_forward", "gru_backward"),
    "lstm": ("lstm_forward", "lstm_backward"),
}


@pytest.fixture
def threads(request):
    """Torch's (and so the compiled loops') thread count for the test: 1 unless the test
    parametrizes it (indirect); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(getattr(request, "param", 1))
    yield torch.get_num_threads()
    torch.set_num_threads(before)


def holding_mask(batch, steps, generator):
    """A `(batch, steps)` mask: rows in turn with random held steps in the middle (the first
    and last steps kept), fully masked, masked only at the start, and never masked."""
    rows = []
    for row in range(batch):
        kind = row % 4
        if kind == 0:
            keep = torch.rand(steps, generator=generator) < 0.5
            keep[0] = keep[-1] = True
            keep[steps // 2] = False  # at least one step held in the middle
        elif kind == 1:
            keep = torch.zeros(steps, dtype=torch.bool)
        elif kind == 2:
            keep = torch.arange(steps) >= 2
        else:
            keep = torch.ones(steps, dtype=torch.bool)
        rows.append(keep)
    return torch.stack(rows)


def _spy_on(patch, cell, calls):
    """Record in `calls` each of the cell's compiled wrappers that runs."""
    for name in WRAPPERS[cell]:
        wrapped = getattr(compiled, name)

        def spy(*args, _name=name, _wrapped=wrapped, **kwargs):
            calls.append(_name)
            return _wrapped(*args, **kwargs)

        patch.setattr(compiled, name, spy)


def _run(cell, function, inputs, loss_of, use_compiled):
    """`function(*leaves)`'s outputs and the gradients of `loss_of(outputs)` for every input,
    with the compiled loops or with the Python loops; also checks which of them ran."""
    calls = []
    with pytest.MonkeyPatch.context() as patch:
        _spy_on(patch, cell, calls)
        if not use_compiled:
            turn_off_loops(patch)
        leaves = [t.detach().clone().requires_grad_() for t in inputs]
        outputs = function(*leaves)
        grads = torch.autograd.grad(loss_of(outputs), leaves)
    expected_calls = list(WRAPPERS[cell]) if use_compiled else []
    assert calls == expected_calls, f"compiled={use_compiled} ran {calls}"
    return [o.detach() for o in outputs], list(grads)


def _assert_close(name, got, want, dtype, atol32):
    scale = max(1.0, want.abs().max().item()) if want.numel() else 1.0
    atol = (atol32 if dtype == torch.float32 else 1e-10) * scale
    assert got.shape == want.shape, f"{name}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
    err = (got - want).abs().max().item() if want.numel() else 0.0
    assert err <= atol, f"{name}: compiled differs from the Python loop by {err:.3g} > {atol:.3g}"


def _compare(cell, function, inputs, names, loss_of):
    outs_c, grads_c = _run(cell, function, inputs, loss_of, use_compiled=True)
    outs_p, grads_p = _run(cell, function, inputs, loss_of, use_compiled=False)
    dtype = inputs[0].dtype
    for i, (got, want) in enumerate(zip(outs_c, outs_p)):
        _assert_close(f"output {i}", got, want, dtype, atol32=1e-5)
    for name, got, want in zip(names, grads_c, grads_p):
        _assert_close(f"grad of {name}", got, want, dtype, atol32=1e-4)


def _weights(generator, dtype, batch, units, blocks, features=FEATURES):
    """x, h0, W, U, b for a cell with `blocks` gate blocks, scaled to keep states moderate."""

    def normal(*shape, scale=1.0):
        return (torch.randn(*shape, generator=generator, dtype=torch.float64) * scale).to(dtype)

    x = normal(batch, STEPS, features)
    h0 = normal(batch, units, scale=0.5)
    w = normal(features, blocks * units, scale=0.6 / features**0.5)
    u = normal(units, blocks * units, scale=0.9 / units**0.5)
    b = normal(blocks * units, scale=0.3)
    return x, h0, w, u, b


def _mask(masked, batch, generator):
    return holding_mask(batch, STEPS, generator) if masked else None


def _loss(mode, generator, like_states, like_last):
    """A loss on every state (`every`: the backward loop accumulates), on the last one only
    (`last`: written once), or on both outputs (`both`), with fixed random weights."""
    g_states = torch.randn(like_states.shape, generator=generator, dtype=torch.float64)
    g_last = torch.randn(like_last.shape, generator=generator, dtype=torch.float64)

    def loss_of(outputs):
        states, last = outputs
        total = 0
        if mode in ("every", "both"):
            total = total + (states * g_states.to(states.dtype)).sum()
        if mode in ("last", "both"):
            total = total + (last * g_last.to(last.dtype)).sum()
        return total

    return loss_of


case = pytest.mark.parametrize
common = [
    case("dtype", DTYPES, ids=["f32", "f64"]),
    case("batch,units", SIZES, ids=[f"B{b}H{h}" for b, h in SIZES]),
    case("masked", [False, True], ids=["nomask", "mask"]),
    case("mode", ["every", "last", "both"]),
]


def _common(test):
    for mark in reversed(common):
        test = mark(test)
    return needs_loops(test)


def check_simple_rnn(activations, mode, masked, batch, units, dtype, features=FEATURES, bias=True):
    (activation,) = activations
    generator = torch.Generator().manual_seed(batch * 100 + units)
    x, h0, w, u, b = _weights(generator, dtype, batch, units, 1, features)
    mask = _mask(masked, batch, generator)
    inputs, names = [x, h0, w, u, b], ["x", "h0", "W", "U", "b"]
    if not bias:
        inputs, names = inputs[:-1], names[:-1]

    def function(x, h0, w, u, b=None):
        return simple_rnn_states(x, h0, w, u, b, mask, activation)

    loss_of = _loss(mode, generator, torch.empty(batch, STEPS, units), h0)
    _compare("simple_rnn", function, inputs, names, loss_of)


def check_gru(activations, mode, masked, batch, units, dtype, features=FEATURES, bias=True):
    activation, recurrent = activations
    generator = torch.Generator().manual_seed(batch * 100 + units + 1)
    x, h0, w, u, b_in = _weights(generator, dtype, batch, units, 3, features)
    b_rec = (torch.randn(3 * units, generator=generator, dtype=torch.float64) * 0.3).to(dtype)
    mask = _mask(masked, batch, generator)
    inputs, names = [x, h0, w, u, b_in, b_rec], ["x", "h0", "W", "U", "b", "b_rec"]
    if not bias:
        inputs, names = inputs[:-2], names[:-2]

    def function(x, h0, w, u, b_in=None, b_rec=None):
        return gru_states(x, h0, w, u, b_in, b_rec, mask, activation, recurrent, reset_after=True)

    loss_of = _loss(mode, generator, torch.empty(batch, STEPS, units), h0)
    _compare("gru", function, inputs, names, loss_of)


def check_lstm(activations, mode, masked, batch, units, dtype, features=FEATURES, bias=True):
    activation, recurrent = activations
    generator = torch.Generator().manual_seed(batch * 100 + units + 2)
    x, h0, w, u, b = _weights(generator, dtype, batch, units, 4, features)
    c0 = (torch.randn(batch, units, generator=generator, dtype=torch.float64) * 0.5).to(dtype)
    mask = _mask(masked, batch, generator)
    # The LSTM kernel returns every h_t and c_T: `last` is a loss on h_T and c_T only.
    g_states = torch.randn(batch, STEPS, units, generator=generator, dtype=torch.float64)
    g_h, g_c = (torch.randn(batch, units, generator=generator, dtype=torch.float64) for _ in "hc")

    def function(x, h0, c0, w, u, b=None):
        return lstm_states(x, h0, c0, w, u, b, mask, activation, recurrent)

    def loss_of(outputs):
        states, c_last = outputs
        total = 0
        if mode in ("every", "both"):
            total = total + (states * g_states.to(dtype)).sum()
        if mode in ("last", "both"):
            total = total + (states[:, -1] * g_h.to(dtype)).sum() + (c_last * g_c.to(dtype)).sum()
        return total

    inputs, names = [x, h0, c0, w, u, b], ["x", "h0", "c0", "W", "U", "b"]
    if not bias:
        inputs, names = inputs[:-1], names[:-1]
    _compare("lstm", function, inputs, names, loss_of)


@_common
@case("activation", ["tanh", "sigmoid", "relu", "linear"])
def test_simple_rnn_matches_the_python_loop(activation, mode, masked, batch, units, dtype, threads):
    check_simple_rnn((activation,), mode, masked, batch, units, dtype)


# The loops make x W + b and gather dW, db themselves for up to NARROW_INPUTS features
# (FEATURES above is under it); past it, torch's GEMMs do. Both, with and without biases.
INPUT_WIDTHS = [
    1,
    compiled.NARROW_INPUTS,
    compiled.NARROW_INPUTS + 1,
    2 * compiled.NARROW_INPUTS + 3,
]
CELLS = {
    "simple_rnn": (check_simple_rnn, ("tanh",)),
    "gru": (check_gru, ("tanh", "sigmoid")),
    "lstm": (check_lstm, ("tanh", "sigmoid")),
}


@needs_loops
@case("cell", list(CELLS))
@case("features", INPUT_WIDTHS)
@case("bias", [True, False], ids=["bias", "nobias"])
@case("batch,units,dtype", [(9, 40, torch.float32), (3, 17, torch.float64)], ids=["f32", "f64"])
@case("masked", [False, True], ids=["nomask", "mask"])
@case("mode", ["every", "last"])
def test_input_widths_match_the_python_loop(
    cell, features, bias, batch, units, dtype, masked, mode, threads
):
    check, activations = CELLS[cell]
    check(activations, mode, masked, batch, units, dtype, features, bias)


@_common
@case("activations", [("tanh", "sigmoid"), ("relu", "sigmoid"), ("tanh", "tanh")], ids=str)
def test_gru_matches_the_python_loop(activations, mode, masked, batch, units, dtype, threads):
    check_gru(activations, mode, masked, batch, units, dtype)


@_common
@case("activations", [("tanh", "sigmoid"), ("relu", "sigmoid")], ids=str)
def test_lstm_matches_the_python_loop(activations, mode, masked, batch, units, dtype, threads):
    check_lstm(activations, mode, masked, batch, units, dtype)


# Two threads split the batch (17 rows: 9 and 8; 9 rows: 5 and 4), each thread with its own
# row-block remainder and its own share of the mask's row kinds. Below 4 rows a thread, the
# forward loops split the units instead, in whole panels (with AVX-512: 32 floats, 16 doubles),
# and wait for each other after every step: 64 units in two panels, 96 in three (2 + 1), 32
# doubles in two.
# A few cases only: on a busy 2-core machine torch's own ops each wait for a second thread.
THREADED = [
    (17, 40, torch.float32),
    (9, 17, torch.float64),
    (1, 64, torch.float32),
    (3, 96, torch.float32),
    (2, 32, torch.float64),
]
THREADED_IDS = ["B17H40-f32", "B9H17-f64", "B1H64-f32", "B3H96-f32", "B2H32-f64"]


@needs_loops
@case("threads", [2], indirect=True, ids=["2threads"])
@case("batch,units,dtype", THREADED, ids=THREADED_IDS)
@case("mode", ["every", "last"])
@case(
    "check,activations",
    [
        (check_simple_rnn, ("tanh",)),
        (check_gru, ("tanh", "sigmoid")),
        (check_lstm, ("tanh", "sigmoid")),
    ],
    ids=["simple_rnn", "gru", "lstm"],
)
def test_two_threads_match_the_python_loop(check, activations, mode, batch, units, dtype, threads):
    assert threads == 2
    check(activations, mode, True, batch, units, dtype)


@needs_loops
@case("variant", compiled._variants())
def test_each_variant_this_cpu_runs_matches_the_python_loop(variant, monkeypatch, threads):
    """The variant loaded is checked above; the others here, more briefly. Each is its own
    build, with its own vector width (64, 32 or 16 bytes), tile rows and partial vectors."""
    spec = importlib.util.find_spec(f"rnnkit.kernels.{variant}")
    if spec is None or spec.origin is None:
        pytest.skip(f"{variant} was not built")
    monkeypatch.setattr(compiled, "LIBRARY", compiled.open_library(spec.origin))
    monkeypatch.setattr(compiled, "BUILD", variant)
    for dtype in DTYPES:
        for shape in PACK_SHAPES:
            b = torch.randn(*shape, dtype=dtype)
            assert torch.equal(compiled._pack(b), _panels(b)), f"{variant} packs {shape}"
    for (batch, units), dtype, mode in itertools.product(
        [(17, 40), (3, 5)], DTYPES, ["every", "last"]
    ):
        check_simple_rnn(("tanh",), mode, True, batch, units, dtype)
        check_simple_rnn(("tanh",), mode, False, batch, units, dtype, compiled.NARROW_INPUTS + 1)
        check_gru(("tanh", "sigmoid"), mode, True, batch, units, dtype)
        check_lstm(("tanh", "sigmoid"), mode, True, batch, units, dtype)
    torch.set_num_threads(2)  # split by batch rows, then (1 or 3 rows) by units
    for batch, units, dtype in THREADED:
        check_simple_rnn(("tanh",), "every", True, batch, units, dtype)
        check_lstm(("tanh", "sigmoid"), "last", True, batch, units, dtype)


# ---- finite differences through the compiled path ---------------------------------------

GRADCHECK_MASK = torch.tensor([[1, 0, 1, 1], [0, 0, 0, 0], [0, 1, 1, 0]], dtype=torch.bool)
B3, T4, D2, H3 = 3, 4, 2, 3


def _gradcheck(cell, function, shapes):
    """Finite differences against the analytic gradients, float64, the compiled loops on."""
    generator = torch.Generator().manual_seed(7)
    inputs = [
        torch.randn(*shape, generator=generator, dtype=torch.float64).requires_grad_()
        for shape in shapes
    ]
    calls = []
    with pytest.MonkeyPatch.context() as patch:
        _spy_on(patch, cell, calls)
        assert torch.autograd.gradcheck(function, inputs)
    assert set(calls) == set(WRAPPERS[cell]), f"the compiled loops did not run: {calls}"


# cell -> (its kernel as the gradcheck calls it, gate blocks, states, bias vectors); the
# arguments: x, the states, W, U, then the biases
GRADCHECK_CELLS = {
    "simple_rnn": (
        lambda x, h0, w, u, b: simple_rnn_states(x, h0, w, u, b, GRADCHECK_MASK, "tanh"),
        1,
        1,
        1,
    ),
    "gru": (
        lambda x, h0, w, u, b_in, b_rec: gru_states(
            x, h0, w, u, b_in, b_rec, GRADCHECK_MASK, "tanh", "sigmoid"
        ),
        3,
        1,
        2,
    ),
    "lstm": (
        lambda x, h0, c0, w, u, b: lstm_states(
            x, h0, c0, w, u, b, GRADCHECK_MASK, "tanh", "sigmoid"
        ),
        4,
        2,
        1,
    ),
}


@needs_loops
@case("features", [D2, compiled.NARROW_INPUTS + 1], ids=["narrow", "wide"])
@case("cell", list(GRADCHECK_CELLS))
def test_gradcheck_through_the_compiled_loop(cell, features):
    function, gates, states, biases = GRADCHECK_CELLS[cell]
    width = gates * H3
    shapes = [(B3, T4, features), *[(B3, H3)] * states, (features, width), (H3, width)]
    _gradcheck(cell, function, shapes + [(width,)] * biases)


# ---- packing ------------------------------------------------------------------------------

PACK_SHAPES = [(1, 1), (5, 7), (3, 33), (16, 40), (128, 384)]


def _panels(b):
    """`b` `(K, N)` as the loops' panels, with torch ops: columns zero-padded to a multiple of
    the panel width (two of the build's vectors: 64 bytes each with AVX-512, 32 with AVX2),
    then panel by panel, each `(K, width)` row-major."""
    width = 2 * (compiled.LIBRARY.rnnkit_vector_bytes() // b.element_size())
    k, n = b.shape
    padded = F.pad(b.contiguous(), (0, -n % width))
    return padded.view(k, -1, width).transpose(0, 1).flatten()


@needs_loops
@case("dtype", DTYPES, ids=["f32", "f64"])
@case("shape", PACK_SHAPES, ids=[f"{k}x{n}" for k, n in PACK_SHAPES])
@case("layout", ["contiguous", "transposed", "column_slice"])
def test_pack_matches_torch(layout, shape, dtype):
    k, n = shape
    if layout == "contiguous":
        b = torch.randn(k, n, dtype=dtype)
    elif layout == "transposed":  # strides (1, k): the backward loops pack U^T so
        b = torch.randn(n, k, dtype=dtype).t()
    else:  # unit column stride, row stride wider than n
        b = torch.randn(k, n + 3, dtype=dtype)[:, 2 : n + 2]
    assert torch.equal(compiled._pack(b), _panels(b))


# ---- why the loops cannot run -------------------------------------------------------------


@needs_loops
def test_missing_names_the_dtype_it_cannot_run():
    reason = compiled.missing(torch.zeros(2, dtype=torch.float32), torch.zeros(2).half())
    assert reason is not None and "float16" in reason
    assert "bfloat16" in compiled.missing(torch.zeros(2, dtype=torch.bfloat16))


@needs_loops
def test_missing_is_none_for_float32_and_float64_on_cpu():
    assert compiled.missing(torch.zeros(2, dtype=torch.float32)) is None
    assert compiled.missing(torch.zeros(2, dtype=torch.float64), None) is None
    assert compiled.missing() is None


@needs_loops
def test_missing_refuses_mixed_dtypes():
    """The loops read every buffer as one dtype: float32 inputs with float64 weights would be
    read as garbage, so they keep the Python loop."""
    why = compiled.missing(torch.zeros(2), torch.zeros(2, dtype=torch.float64))
    assert why == (
        "the compiled loops run one dtype at a time, not ['torch.float32', 'torch.float64']"
    )


def test_missing_says_why_when_the_library_is_not_there(monkeypatch):
    turn_off_loops(monkeypatch)
    assert compiled.missing(torch.zeros(2)) == LOOPS_OFF
    assert compiled.missing() == LOOPS_OFF


# ---- which loop each layer names ----------------------------------------------------------


def _built(layer_class):
    layer = layer_class(4)
    layer(torch.randn(2, 3, 5))
    return layer


@needs_loops
@case("layer_class", ["SimpleRNN", "GRU", "LSTM"])
def test_layers_name_the_compiled_loop(layer_class):
    layer = _built(getattr(rnnkit.layers, layer_class))
    assert "compiled time loop" in layer.kernel_path
    assert str(compiled.BUILD) in layer.kernel_path


@case(
    "layer_class,words",
    [
        ("SimpleRNN", "time loop in Python"),
        ("GRU", "time loop in Python"),
        ("LSTM", "torch's fused LSTM"),  # without the loops, torch's kernel beats Python's
    ],
)
def test_layers_without_the_loops(layer_class, words, monkeypatch):
    layer = _built(getattr(rnnkit.layers, layer_class))
    turn_off_loops(monkeypatch)
    assert words in layer.kernel_path
    assert "compiled time loop" not in layer.kernel_path
