"""fit's CUDA-graph step (rnnkit/training/_graph.py): what decides whether it runs and which
recording a fit reuses. These parts run without a GPU; the recording and replaying themselves
are held to the eager step in tests/test_cuda.py."""

import gc

import numpy as np
import pytest
import torch

from rnnkit import Sequential, layers
from rnnkit.training import _graph
from rnnkit.training._fit import _Step


def compiled_model(first_layer=None, **compile_args):
    stack = [layers.Input((6,)), layers.Embedding(10, 4)] if first_layer == "embedding" else []
    if first_layer is None:
        stack = [layers.Input((5, 3))]
    model = Sequential([*stack, layers.GRU(4), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse", **compile_args)
    model.optimizer.build(model.trainable_weights)
    return model


def graph_for(model, batch_size=8, x=None, y=None, weights=None):
    """The GraphStep a fit of `model` on batches of `batch_size` from `x` (default
    `(32, 5, 3)` zeros), `y` and `weights` would use."""
    x = torch.zeros(32, 5, 3) if x is None else x
    y = torch.zeros(len(x), 1) if y is None else y
    batches = (batch_size, x, y, weights)
    return _graph.GraphStep.for_model(_Step(model), model, model.optimizer.params, batches)


def test_a_later_fit_reuses_the_recording_until_the_model_is_compiled_again():
    model = compiled_model()
    first = graph_for(model)
    assert graph_for(model) is first  # the same weights, optimizer and loss
    model.compile(optimizer="adam", loss="mse")  # a new optimizer: a new recording
    model.optimizer.build(model.trainable_weights)
    assert graph_for(model) is not first


def test_other_batches_record_anew():
    """A recording replays batches of one shape: another batch size, sequence length or
    sample weights get their own (all-eager fits otherwise)."""
    model = compiled_model()
    first = graph_for(model)
    assert graph_for(model, x=torch.zeros(64, 5, 3)) is first  # more rows, the same batches
    assert graph_for(model, batch_size=16) is not first
    second = graph_for(model, batch_size=16)
    assert graph_for(model, batch_size=16, x=torch.zeros(32, 7, 3)) is not second
    third = graph_for(model, batch_size=16, x=torch.zeros(32, 7, 3))
    weights = torch.ones(32)
    assert graph_for(model, batch_size=16, x=torch.zeros(32, 7, 3), weights=weights) is not third


def test_the_recording_dies_with_its_model():
    """The cache keys models weakly; a recording must not keep its model alive (through the
    fit step, the model or the autograd graph of its outputs)."""
    model = compiled_model()
    graph_for(model)
    assert len(_graph._graphs) >= 1
    before = len(_graph._graphs)
    del model
    gc.collect()
    assert len(_graph._graphs) == before - 1


def test_the_blocker_names_why_a_step_runs_eagerly():
    x, y = torch.zeros(4, 5, 3), torch.zeros(4, 1)
    assert _graph.blocker(compiled_model(), x, y) == "not on a CUDA GPU"
    off = compiled_model(jit_compile=False)
    assert _graph.blocker(off, x, y) == "compile(jit_compile=False)"


@pytest.mark.parametrize("first", ["embedding", None])
def test_an_embedding_on_the_models_input_can_be_checked_whole(first):
    model = compiled_model(first)
    found = _graph._embeddings_on_input(model)
    assert found == ([model.layers[0]] if first == "embedding" else [])


def test_an_embedding_on_a_second_input_keeps_the_eager_step():
    """Two inputs, each through its own Embedding: fit cannot tell which array feeds which
    without running the model, so it keeps the per-batch checks of the eager step."""
    from rnnkit import Input, Model

    words, tags = Input((6,)), Input((6,))
    merged = layers.Concatenate()([layers.Embedding(10, 4)(words), layers.Embedding(5, 2)(tags)])
    model = Model([words, tags], layers.Dense(1)(layers.GRU(4)(merged)))
    assert _graph._embeddings_on_input(model) is None


def test_the_whole_data_check_catches_an_id_in_a_late_batch():
    """Before recording, every id is checked at once, with the Embedding's own message."""
    model = compiled_model("embedding")
    x = np.ones((64, 6), "int64")
    x[-1, -1] = 10  # input_dim=10
    y = np.zeros((64, 1), "float32")
    from rnnkit.training._fit import check_targets

    with pytest.raises(ValueError, match="input_dim=10, so ids must lie in"):
        _graph.GraphStep.check_data(
            model, torch.as_tensor(x), torch.as_tensor(y), (64, 1), check_targets
        )
