"""The GPU paths, held to the CPU reference loop: cuDNN (in full float32) where it is exact,
the fused recurrence for masks and other activations, and training, predicting and saving a
model on a GPU.

The tests marked `cuda` skip on a machine without one (CI); the first ones check the wrapper
that keeps cuDNN in full float32, which runs on any device.
"""

import numpy as np
import pytest
import torch
from kernel_cases import (
    B,
    D,
    H,
    T,
    give_equal_weights,
    mask_tensor,
    outputs_and_grads,
    random_inputs,
)

from rnnkit import Sequential, layers, load_model
from rnnkit.kernels import torch_rnn

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


# ------------------------------------------------------------ the full-float32 wrapper
def lstm_run(x, h0, c0, *params):
    """torch.lstm as the layers call it, one direction with biases, batch first."""
    return torch.lstm(x, (h0, c0), list(params), True, 1, 0.0, True, False, True)


def lstm_inputs(dtype=torch.float64, device="cpu"):
    gen = torch.Generator().manual_seed(0)
    shapes = [(B, T, D), (1, B, H), (1, B, H), (4 * H, D), (4 * H, H), (4 * H,), (4 * H,)]
    return [torch.randn(s, generator=gen, dtype=dtype).to(device).requires_grad_() for s in shapes]


def test_the_wrapper_passes_torchs_own_gradients_through():
    """float64 gradcheck of `_FullFloat32` around torch.lstm, for every input at once."""
    inputs = lstm_inputs()
    assert torch.autograd.gradcheck(
        lambda *t: torch_rnn._FullFloat32.apply(lstm_run, *t), inputs, atol=1e-6
    )


def test_the_wrapper_leaves_out_what_needs_no_gradient():
    """Inputs that do not ask for a gradient get none; the others get plain autograd's."""
    inputs, plain = lstm_inputs(), lstm_inputs()
    for t in (inputs[1], plain[1]):  # h0
        t.requires_grad_(False)
    torch_rnn._FullFloat32.apply(lstm_run, *inputs)[0].sum().backward()
    lstm_run(*plain)[0].sum().backward()
    assert inputs[1].grad is None
    for got, want in zip(inputs, plain, strict=True):
        if want.requires_grad:
            torch.testing.assert_close(got.grad, want.grad)


def test_the_wrapper_turns_tf32_off_in_forward_and_backward_and_back_on_after(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    seen = []

    def run(x, h0, c0, *params):
        seen.append(torch.backends.cudnn.allow_tf32)
        out = lstm_run(x, h0, c0, *params)

        def note_backward(grad):
            seen.append(torch.backends.cudnn.allow_tf32)
            return grad

        out[0].register_hook(note_backward)  # runs inside the wrapper's backward
        return out

    out = torch_rnn._FullFloat32.apply(run, *lstm_inputs())
    assert torch.backends.cudnn.allow_tf32 is True
    out[0].sum().backward()
    assert seen == [False, False]
    assert torch.backends.cudnn.allow_tf32 is True


def test_off_the_gpu_the_ops_run_as_they_are():
    """On a CPU there is no TF32 to turn off: no wrapper node in the graph."""
    out = torch_rnn._full_float32(lstm_run, *lstm_inputs())
    assert "FullFloat32" not in type(out[0].grad_fn).__name__


# ------------------------------------------------------------------- layers on a GPU
CELLS = {
    "SimpleRNN": (layers.SimpleRNN, {}, 1),
    "SimpleRNN relu": (layers.SimpleRNN, {"activation": "relu"}, 1),
    "SimpleRNN sigmoid": (layers.SimpleRNN, {"activation": "sigmoid"}, 1),
    "GRU": (layers.GRU, {}, 1),
    "GRU reset_after=False": (layers.GRU, {"reset_after": False}, 1),
    "LSTM": (layers.LSTM, {}, 2),
    "LSTM relu": (layers.LSTM, {"activation": "relu"}, 2),
}
# What a GPU runs for an unmasked call, training, for the cells above.
GPU_PATHS = {
    "SimpleRNN": "torch's fused RNN (torch.rnn_tanh: cuDNN)",
    "SimpleRNN relu": "torch's fused RNN (torch.rnn_relu: cuDNN)",
    "SimpleRNN sigmoid": "fused SimpleRNN recurrence",
    "GRU": "torch's fused GRU",
    "GRU reset_after=False": "fused GRU recurrence",
    "LSTM": "torch's fused LSTM",
    "LSTM relu": "fused LSTM recurrence",
}


def gpu_and_reference(make, dtype=torch.float32):
    """The layer `make()` on the GPU on its fast path, and its twin on the CPU running the
    reference loop (`use_fused=False`, in both directions of a Bidirectional), with equal
    random weights."""
    gpu, reference = make(), make()
    give_equal_weights(gpu, reference, dtype)
    for layer in (
        reference,
        *(getattr(reference, f"{d}_layer", None) for d in ("forward", "backward")),
    ):
        if layer is not None:
            layer.use_fused = False
    return gpu.to("cuda"), reference


def assert_gpu_matches(gpu, reference, mask_name, states=0, dtype=torch.float32):
    """Outputs within 1e-5 and the gradients for `x`, the start states and every weight
    within 1e-4, between the GPU layer and the CPU reference.

    The gradients get the looser bound because cuDNN sums the weight gradients over batch and
    time in its own order, with its own exp; a TF32 product would be off by 1e-3 to 1e-2, and
    the float64 gradcheck below holds cuDNN's backward to the math exactly.
    """
    x, initial = random_inputs(states, dtype)
    mask = mask_tensor(mask_name)
    want, want_grads, probe = outputs_and_grads(reference, x, initial, mask)
    got, got_grads, _ = outputs_and_grads(
        gpu,
        x.detach().cuda().requires_grad_(),
        [s.detach().cuda().requires_grad_() for s in initial],
        None if mask is None else mask.cuda(),
        [p.cuda() for p in probe],
    )
    for g, w in zip(got, want, strict=True):
        assert g.device.type == "cuda"
        torch.testing.assert_close(g.cpu(), w, atol=1e-5, rtol=1e-5)
    for g, w in zip(got_grads, want_grads, strict=True):
        assert g.device.type == "cuda"
        torch.testing.assert_close(g.cpu(), w, atol=1e-4, rtol=1e-4)


@cuda
@pytest.mark.parametrize("mask_name", ["none", "right_padded", "holes_and_empty"])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("cell", list(CELLS))
def test_a_gpu_layer_gives_the_reference_loops_numbers(cell, go_backwards, mask_name, monkeypatch):
    # torch's default lets cuDNN round float32 products to TF32; rnnkit must not.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    layer_class, kwargs, states = CELLS[cell]

    def make():
        return layer_class(H, return_sequences=True, go_backwards=go_backwards, **kwargs)

    gpu, reference = gpu_and_reference(make)
    assert gpu.kernel_path.startswith(GPU_PATHS[cell])
    assert_gpu_matches(gpu, reference, mask_name, states)
    assert torch.backends.cudnn.allow_tf32 is True


@cuda
@pytest.mark.parametrize("mask_name", ["none", "left_padded"])
@pytest.mark.parametrize(
    "inner, merge_mode",
    [
        (layers.LSTM, "concat"),
        (layers.LSTM, "sum"),
        (layers.GRU, "concat"),
        (layers.SimpleRNN, "ave"),
    ],
)
def test_a_gpu_bidirectional_layer_gives_the_reference_loops_numbers(inner, merge_mode, mask_name):
    def make():
        return layers.Bidirectional(inner(H, return_sequences=True), merge_mode=merge_mode)

    gpu, reference = gpu_and_reference(make)
    if inner is layers.LSTM:
        assert gpu.kernel_path == "torch's bidirectional LSTM, both directions in one call"
    assert_gpu_matches(gpu, reference, mask_name)


@cuda
@pytest.mark.parametrize("cell", ["SimpleRNN", "GRU", "LSTM"])
def test_a_stateful_gpu_layer_carries_its_state_as_the_reference_does(cell):
    layer_class, kwargs, _ = CELLS[cell]
    gpu, reference = gpu_and_reference(lambda: layer_class(H, stateful=True, **kwargs))
    rng = np.random.default_rng(4)
    for _ in range(3):  # each call starts where the last one ended
        x = torch.tensor(rng.normal(size=(B, T, D)), dtype=torch.float32)
        with torch.no_grad():
            torch.testing.assert_close(gpu(x.cuda()).cpu(), reference(x), atol=1e-5, rtol=1e-5)


@cuda
@pytest.mark.parametrize("mask_name", ["none", "right_padded"])
@pytest.mark.parametrize("cell", ["SimpleRNN", "SimpleRNN relu", "GRU", "LSTM"])
def test_gpu_paths_pass_a_float64_gradcheck(cell, mask_name):
    """cuDNN's double kernels (unmasked) and the fused loop on the GPU (masked)."""
    layer_class, kwargs, states = CELLS[cell]
    layer = layer_class(3, return_sequences=True, dtype="float64", **kwargs)
    layer(torch.zeros(2, 4, 3, dtype=torch.float64))
    layer.to("cuda")
    mask = mask_tensor(mask_name, batch=2, steps=4)
    mask = None if mask is None else mask.cuda()
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, 3, generator=gen, dtype=torch.float64).cuda().requires_grad_()
    initial = [
        torch.randn(2, 3, generator=gen, dtype=torch.float64).cuda().requires_grad_()
        for _ in range(states)
    ]
    weights = list(layer.weights)

    def run(x, *rest):
        return layer(x, initial_state=list(rest[:states]), mask=mask)

    assert torch.autograd.gradcheck(run, [x, *initial, *weights], atol=1e-6)


# ------------------------------------------------------------------ models on a GPU
def sequence_data(n=48):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(n, 10, 3)).astype("float32")
    y = x[:, -3:, 0].sum(axis=1, keepdims=True)
    return x, y


def token_data(n=48):
    rng = np.random.default_rng(7)
    x = rng.integers(1, 30, size=(n, 12))
    x[: n // 3, 8:] = 0  # padding, masked by Embedding(mask_zero=True)
    y = (x[:, 0] > 15).astype("float32")[:, None]
    return x, y


MODELS = {
    "SimpleRNN regression": (
        lambda: [layers.Input((10, 3)), layers.SimpleRNN(16), layers.Dense(1)],
        "mse",
        sequence_data,
    ),
    "stacked GRU regression": (
        lambda: [
            layers.Input((10, 3)),
            layers.GRU(16, return_sequences=True),
            layers.GRU(8),
            layers.Dense(1),
        ],
        "mse",
        sequence_data,
    ),
    "masked LSTM sentiment": (
        lambda: [
            layers.Input((12,)),
            layers.Embedding(30, 8, mask_zero=True),
            layers.Bidirectional(layers.LSTM(8)),
            layers.Dense(1, activation="sigmoid"),
        ],
        "binary_crossentropy",
        token_data,
    ),
}


def equal_models(models, name):
    """Two models of `models[name]` with the same weights, and its loss and data."""
    stack, loss, data = models[name]
    torch.manual_seed(0)
    first, second = Sequential(stack()), Sequential(stack())
    second.set_weights(first.get_weights())
    return first, second, loss, data()


def twin_models(name):
    cpu, gpu, loss, data = equal_models(MODELS, name)
    gpu.to("cuda")
    for model in (cpu, gpu):
        model.compile(optimizer="adam", loss=loss)
    return cpu, gpu, data


@cuda
@pytest.mark.parametrize("name", list(MODELS))
def test_fit_on_a_gpu_follows_fit_on_the_cpu(name):
    cpu, gpu, (x, y) = twin_models(name)
    fit = dict(epochs=3, batch_size=16, shuffle=False, verbose=0)
    cpu_history = cpu.fit(x, y, **fit).history["loss"]
    gpu_history = gpu.fit(x, y, **fit).history["loss"]
    np.testing.assert_allclose(gpu_history, cpu_history, rtol=1e-4)
    for got, want in zip(gpu.get_weights(), cpu.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4)
    assert all(p.device.type == "cuda" for p in gpu.parameters())
    np.testing.assert_allclose(gpu.predict(x, verbose=0), cpu.predict(x, verbose=0), atol=1e-5)


@cuda
def test_a_model_trained_on_a_gpu_saves_and_loads(tmp_path):
    _, gpu, (x, y) = twin_models("stacked GRU regression")
    gpu.fit(x, y, epochs=1, batch_size=16, verbose=0)
    path = tmp_path / "gru.keras"
    gpu.save(path)
    loaded = load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), gpu.predict(x, verbose=0), atol=1e-5)


# ------------------------------------------------------ fit's step as a CUDA graph
def label_data(n=56):
    """Token ids in, one class id per step out (a tagger): Embedding + sparse CE, whose ids
    and labels fit checks before it records its step."""
    rng = np.random.default_rng(8)
    x = rng.integers(1, 20, size=(n, 9))
    x[::4, 6:] = 0
    y = (x % 5).astype("int64")
    return x, y


GRAPH_MODELS = {
    **MODELS,
    "masked tagger": (
        lambda: [
            layers.Input((9,)),
            layers.Embedding(20, 8, mask_zero=True),
            layers.GRU(12, return_sequences=True),
            layers.Dense(5, activation="softmax"),
        ],
        "sparse_categorical_crossentropy",
        label_data,
    ),
}


def graph_and_eager(name):
    graphed, eager, loss, data = equal_models(GRAPH_MODELS, name)
    metric = "mae" if loss == "mse" else "accuracy"
    for model, jit in ((graphed, "auto"), (eager, False)):
        model.to("cuda")
        model.compile(optimizer="adam", loss=loss, metrics=[metric], jit_compile=jit)
    return graphed, eager, data


@cuda
@pytest.mark.parametrize("name", list(GRAPH_MODELS))
def test_fit_replaying_a_cuda_graph_trains_as_the_eager_step_does(name):
    """56 samples in batches of 16: three full batches and a last one of 8 an epoch. The first
    three run eagerly (warm-up), the fourth full one is recorded, later ones replay it, and
    the last batch of each epoch runs eagerly in between. Same kernels, same numbers."""
    graphed, eager, (x, y) = graph_and_eager(name)
    x, y = x[:56], y[:56]
    fit = dict(epochs=4, batch_size=16, shuffle=False, verbose=0, validation_split=0.0)
    got = graphed.fit(x, y, **fit).history
    want = eager.fit(x, y, **fit).history
    assert graphed.step_path == "CUDA graph"
    assert eager.step_path == "eager (compile(jit_compile=False))"
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, err_msg=key)
    for a, b in zip(graphed.get_weights(), eager.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(graphed.predict(x), eager.predict(x), atol=1e-5)


@cuda
def test_a_graphed_fit_with_sample_weights_and_validation_follows_the_eager_one():
    graphed, eager, (x, y) = graph_and_eager("stacked GRU regression")
    weights = np.linspace(0.5, 2.0, len(x)).astype("float32")
    fit = dict(epochs=5, batch_size=8, shuffle=True, verbose=0, validation_split=0.25)
    torch.manual_seed(1)
    np.random.seed(1)
    got = graphed.fit(x, y, sample_weight=weights, **fit).history
    torch.manual_seed(1)
    np.random.seed(1)
    want = eager.fit(x, y, sample_weight=weights, **fit).history
    assert graphed.step_path == "CUDA graph"
    for key in ("loss", "val_loss", "mae", "val_mae"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, err_msg=key)


@cuda
def test_a_label_out_of_range_in_a_later_batch_fails_before_the_graph_is_recorded():
    """The graph cannot check each batch's labels (that waits for the GPU), so fit checks
    them all first: the same message as the eager step gives, and nothing trained."""
    graphed, _, (x, y) = graph_and_eager("masked tagger")
    y = y.copy()
    y[-1, 0] = 7  # 5 classes
    before = [w.copy() for w in graphed.get_weights()]
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        graphed.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for a, b in zip(graphed.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)


@cuda
def test_a_graphed_fit_with_dropout_trains():
    """Dropout draws new masks at every replay (torch records the generator's offsets)."""
    torch.manual_seed(0)
    model = Sequential(
        [
            layers.Input((10, 3)),
            layers.LSTM(16, dropout=0.2, recurrent_dropout=0.2),
            layers.Dense(1),
        ]
    ).to("cuda")
    model.compile(optimizer="adam", loss="mse")
    x, y = sequence_data(96)
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0).history["loss"]
    assert model.step_path == "CUDA graph"
    assert np.all(np.isfinite(history)) and history[-1] < history[0]


@cuda
def test_a_step_a_cuda_graph_cannot_record_runs_eagerly_instead():
    """A layer that reads a value on the host in its call (here a sum) cannot be recorded:
    fit goes on eagerly, with the numbers of the eager step, and says why."""
    from rnnkit.layers import Layer

    class ReadsTheSum(Layer):
        def call(self, inputs):
            self.last_sum = float(inputs.sum())  # waits for the GPU
            return inputs

        def compute_output_shape(self, input_shape):
            return input_shape

    def build(jit):
        torch.manual_seed(0)
        model = Sequential(
            [layers.Input((10, 3)), ReadsTheSum(), layers.SimpleRNN(8), layers.Dense(1)]
        ).to("cuda")
        model.compile(optimizer="adam", loss="mse", jit_compile=jit)
        return model

    x, y = sequence_data()
    fit = dict(epochs=3, batch_size=8, shuffle=False, verbose=0)
    tried, eager = build("auto"), build(False)
    got = tried.fit(x, y, **fit).history["loss"]
    want = eager.fit(x, y, **fit).history["loss"]
    assert tried.step_path.startswith("eager (recording a CUDA graph failed: ")
    np.testing.assert_allclose(got, want, rtol=1e-5)


@cuda
def test_fit_called_once_per_epoch_replays_the_graph_it_recorded():
    """A loop of fit(epochs=1) calls warms up and records once; the next calls replay the
    recording, with the eager step's numbers. Compiling again (a new optimizer) records anew."""
    from rnnkit.training import _graph

    graphed, eager, (x, y) = graph_and_eager("SimpleRNN regression")
    fit = dict(epochs=1, batch_size=8, shuffle=False, verbose=0)
    got, want, steps = [], [], []
    for _ in range(4):
        got += graphed.fit(x, y, **fit).history["loss"]
        want += eager.fit(x, y, **fit).history["loss"]
        steps.append(_graph._graphs[graphed])
    assert all(s is steps[0] for s in steps) and steps[0].graph is not None
    np.testing.assert_allclose(got, want, rtol=1e-5)
    graphed.compile(optimizer="adam", loss="mse")
    graphed.fit(x, y, **fit)
    assert _graph._graphs[graphed] is not steps[0]
