"""`rnnkit.explain.memory`: the influence of each lag, held to float64 finite differences and to
the analytic `a^k` of a linear RNN; masks, token ids, and a model left as it was."""

import doctest
import importlib
import json

import numpy as np
import pytest
import torch

from rnnkit import Input, Model, Sequential
from rnnkit.explain.memory import memory
from rnnkit.layers import (
    GRU,
    LSTM,
    Dense,
    Dropout,
    Embedding,
    Masking,
    SimpleRNN,
    TimeDistributed,
)

F64 = "float64"
# The module, not the function rnnkit.explain.memory that shares its name
memory_module = importlib.import_module("rnnkit.explain.memory")


def _model(cell, steps=5, features=2, units=3, outputs=2, sequences=False):
    """A float64 model: cell -> Dense (per step with `sequences`), random weights."""
    inputs = Input((steps, features), dtype=F64)
    h = cell(units, return_sequences=sequences, dtype=F64)(inputs)
    dense = Dense(outputs, dtype=F64)
    return Model(inputs, TimeDistributed(dense, dtype=F64)(h) if sequences else dense(h))


def _finite_difference_norms(model, x, step, eps=1e-6):
    """`‖∂ŷ/∂x_s‖` `(B, T)` by central differences, `ŷ` the output (at `step` if per step)."""
    x = torch.as_tensor(x)

    def out(v):
        with torch.no_grad():
            y = model(v)
        return (y[:, step] if y.dim() == 3 else y).numpy()  # (B, K)

    squares = np.zeros(x.shape[:2])
    for s in range(x.shape[1]):
        for d in range(x.shape[2]):
            e = torch.zeros_like(x)
            e[:, s, d] = eps
            squares[:, s] += (((out(x + e) - out(x - e)) / (2 * eps)) ** 2).sum(1)
    return np.sqrt(squares)


@pytest.mark.parametrize("cell", [SimpleRNN, LSTM, GRU])
@pytest.mark.parametrize("one_unit_a_pass", [False, True])
def test_equals_float64_finite_differences(cell, one_unit_a_pass, monkeypatch):
    torch.manual_seed(0)
    model = _model(cell)
    x = np.random.default_rng(0).normal(size=(3, 5, 2))
    if one_unit_a_pass:  # each output unit its own forward and backward pass
        monkeypatch.setattr(memory_module, "ROWS", 3)
    result = memory(model, x)
    expected = _finite_difference_norms(model, x, step=-1)[:, ::-1].mean(0)  # by lag
    np.testing.assert_allclose(result.raw, expected, rtol=1e-6)
    np.testing.assert_allclose(result.influence, expected / expected.max(), rtol=1e-6)
    assert result.lags.tolist() == [0, 1, 2, 3, 4] and result.sequences == 3


def test_output_step_of_a_per_step_model():
    """`output=2`: ŷ at step 2; lag k is input step 2 - k, and lags past the start are 0."""
    torch.manual_seed(1)
    model = _model(GRU, sequences=True)
    x = np.random.default_rng(1).normal(size=(3, 5, 2))
    result = memory(model, x, output=2)
    norms = _finite_difference_norms(model, x, step=2).mean(0)  # (T,)
    np.testing.assert_allclose(result.raw, [norms[2], norms[1], norms[0], 0, 0], atol=1e-9)
    last = memory(model, x, output=-1)
    np.testing.assert_allclose(
        last.raw, _finite_difference_norms(model, x, step=4).mean(0)[::-1], rtol=1e-6
    )


@pytest.mark.parametrize("a", [0.5, 0.7, 0.9])
@pytest.mark.parametrize("threshold", [0.01, 0.05])
def test_linear_rnn_influence_is_a_to_the_k_and_horizon_is_analytic(a, threshold):
    """h_t = x_t + a h_{t-1}: ∂h_T/∂x_{T-k} = a^k I, so the horizon is ⌊log(thr) / log(a)⌋."""
    steps = 50
    rnn = SimpleRNN(3, activation=None, dtype=F64)
    inputs = Input((steps, 3), dtype=F64)
    model = Model(inputs, rnn(inputs))  # (a Sequential would take its input in float32)
    rnn.set_weights([np.eye(3), a * np.eye(3), np.zeros(3)])
    result = memory(model, np.random.default_rng(0).normal(size=(4, steps, 3)), threshold=threshold)
    np.testing.assert_allclose(result.influence, a ** np.arange(steps), rtol=1e-9)
    assert result.horizon == int(np.floor(np.log(threshold) / np.log(a)))
    assert result.steps == result.horizon + 1
    assert str(result) == (
        f"the output depends on the last {result.steps} steps "
        f"(influence ≥ {threshold * 100:g}% of its peak)"
    )


def test_masked_steps_have_no_influence_and_padding_side_does_not_matter():
    torch.manual_seed(2)
    inputs = Input((6, 2), dtype=F64)
    model = Model(inputs, Dense(1, dtype=F64)(LSTM(3, dtype=F64)(Masking(dtype=F64)(inputs))))
    rng = np.random.default_rng(2)
    lengths = [6, 4, 2]
    seqs = [rng.uniform(0.5, 1.5, size=(n, 2)) for n in lengths]
    post = np.zeros((3, 6, 2))
    pre = np.zeros((3, 6, 2))
    for i, s in enumerate(seqs):
        post[i, : len(s)] = s
        pre[i, 6 - len(s) :] = s
    alone = [memory(model, np.pad(s, ((0, 6 - len(s)), (0, 0)))[None]).raw for s in seqs]
    expected = [np.mean([r[k] for r, n in zip(alone, lengths) if k < n]) for k in range(6)]
    np.testing.assert_allclose(memory(model, post).raw, expected, rtol=1e-9)
    np.testing.assert_allclose(memory(model, pre).raw, expected, rtol=1e-9)
    # a step masked in every sequence leaves its lag without influence
    holes = pre.copy()
    holes[:, 2] = 0.0  # step 2, lag 3 from the last step
    assert memory(model, holes).raw[3] == 0.0 and memory(model, holes).raw[2] > 0


def test_token_ids_are_differentiated_at_the_embedding_output():
    """An Embedding model's memory is that of the same layers fed the embedded vectors."""
    torch.manual_seed(3)
    embedding, lstm, dense = Embedding(20, 4, mask_zero=True), LSTM(5), Dense(1, "sigmoid")
    model = Sequential([Input((None,), dtype="int64"), embedding, lstm, dense])
    ids = np.random.default_rng(3).integers(1, 20, size=(4, 7))
    vectors = Input((7, 4))
    on_vectors = Model(vectors, dense(lstm(vectors)))
    embedded = embedding.embeddings.detach().numpy()[ids]
    np.testing.assert_allclose(memory(model, ids).raw, memory(on_vectors, embedded).raw, rtol=1e-5)
    padded = np.concatenate([ids[:, :5], np.zeros((4, 2), dtype=int)], axis=1)  # post-padded
    np.testing.assert_allclose(
        memory(model, padded).raw[:5], memory(model, ids[:, :5]).raw, rtol=1e-5
    )
    assert memory(model, padded).raw[5:].tolist() == [0.0, 0.0]


def test_leaves_the_model_as_it_was():
    torch.manual_seed(4)
    gru = GRU(4, stateful=True)
    model = Sequential([Input((6, 2), batch_size=3), gru, Dense(2)])
    x = np.random.default_rng(4).normal(size=(3, 6, 2)).astype("float32")
    model.predict(x)  # carried states now
    carried = [s.clone() for s in gru.states]
    weights = [w.detach().clone() for w in model.weights]
    flags = [m.training for m in model.modules()]
    with torch.inference_mode():  # works under the caller's inference_mode (or no_grad) too
        first = memory(model, x)
    assert memory(model, x).raw.tolist() == first.raw.tolist()  # started from the same states
    assert all(torch.equal(s, c) for s, c in zip(gru.states, carried))
    assert all(torch.equal(w, v) and w.grad is None for w, v in zip(model.weights, weights))
    assert [m.training for m in model.modules()] == flags
    assert "use_fused" not in vars(gru) and "call" not in vars(gru.cell)


def test_no_dropout_noise():
    """Dropout is off, as in predict: the result is that of the model without it."""
    torch.manual_seed(5)
    noisy = Sequential(
        [Input((8, 2)), Dropout(0.5), GRU(4, dropout=0.5, recurrent_dropout=0.5), Dense(1)]
    )
    plain = Sequential([Input((8, 2)), GRU(4), Dense(1)])
    plain.set_weights(noisy.get_weights())
    x = np.random.default_rng(5).normal(size=(4, 8, 2)).astype("float32")
    np.testing.assert_allclose(memory(noisy, x).raw, memory(plain, x).raw, rtol=1e-5)


def test_views_of_the_result(tmp_path):
    torch.manual_seed(5)
    model = Sequential([Input((8, 2)), SimpleRNN(3), Dense(1)])
    result = memory(model, np.random.default_rng(5).normal(size=(4, 8, 2)))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["horizon"] == result.horizon and len(data["influence"]) == 8
    assert set(data) == {
        "lags", "influence", "raw", "horizon", "steps", "threshold", "output", "sequences"
    }  # fmt: skip
    for name in ("memory.png", "memory.svg"):
        figure = result.plot(tmp_path / name)
        assert (tmp_path / name).stat().st_size > 1000 and figure.axes[0].get_yscale() == "log"
    html = result._repr_html_()
    assert "data:image/png;base64," in html and "http" not in html and "<script" not in html
    assert "\n" not in str(result)
    with pytest.raises(ValueError, match=r"PNG or SVG.*memory\.jpg"):
        result.plot(tmp_path / "memory.jpg")


def test_no_dependence_on_the_input_is_horizon_minus_one():
    rnn = SimpleRNN(2)
    model = Sequential([Input((4, 1)), rnn])
    rnn.set_weights([np.zeros((1, 2)), np.zeros((2, 2)), np.ones(2)])
    result = memory(model, np.ones((2, 4, 1)))
    assert result.horizon == -1 and result.influence.tolist() == [0.0] * 4
    assert str(result).startswith("the output does not depend on the input")


def test_errors_say_what_came_and_the_fix():
    model = Sequential([Input((5, 2)), SimpleRNN(3), Dense(2)])
    x = np.zeros((4, 5, 2))
    with pytest.raises(ValueError, match=r"no recurrent layer.*dense.*Dense"):
        memory(Sequential([Input((5, 2)), Dense(2)]), x)
    with pytest.raises(
        ValueError, match=r"\(batch, timesteps, features\); got shape \(5, 2\).*x\[None\]"
    ):
        memory(model, x[0])
    with pytest.raises(ValueError, match=r"token ids; got shape \(7,\).*x\[None\]"):
        memory(Sequential([Input((7,)), Embedding(9, 2), GRU(2)]), np.ones(7, dtype=int))
    with pytest.raises(ValueError, match=r"threshold.*\(0, 1\]; got 2"):
        memory(model, x, threshold=2)
    with pytest.raises(ValueError, match=r"one output per sequence.*output=3.*output=-1"):
        memory(model, x, output=3)
    with pytest.raises(ValueError, match=r"output=9 is out of range.*5 steps"):
        memory(Sequential([Input((5, 2)), SimpleRNN(3, return_sequences=True)]), x, output=9)
    with pytest.raises(ValueError, match=r"units picks.*has 2.*got 5"):
        memory(model, x, units=5)
    with pytest.raises(ValueError, match=r"returns 2 tensors.*one output"):
        memory(SimpleRNN(3, return_state=True), x)
    with pytest.raises(TypeError, match="x is missing"):
        memory(model, None)


def test_docstring_example_runs():
    assert doctest.testmod(memory_module).failed == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("cell", [LSTM, GRU, SimpleRNN])
def test_on_a_gpu_equals_the_cpu(cell):
    """cuDNN's kernels run (their backward needs grad mode, which memory turns on)."""
    torch.manual_seed(6)
    model = Sequential([Input((12, 3)), cell(32), Dense(2)])
    x = np.random.default_rng(6).normal(size=(64, 12, 3)).astype("float32")
    on_cpu = memory(model, x)
    model.to("cuda")
    assert "cuDNN" in model.layers[0].kernel_path
    with torch.inference_mode():
        on_gpu = memory(model, x)
    np.testing.assert_allclose(on_gpu.raw, on_cpu.raw, rtol=1e-4, atol=1e-7)
