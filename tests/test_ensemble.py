"""`rnnkit.Ensemble`: members trained together end as each would have trained alone.

The oracle is each member's own `fit` on the same batches (the same shuffle seed before it),
with the same callbacks: the weights, histories and stopping epochs must match, whether the
members ran stacked (one kernel call for all of them) or each its own step in turn.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import Ensemble, Sequential, layers
from rnnkit.callbacks import Callback, EarlyStopping, ReduceLROnPlateau
from rnnkit.training import _ensemble
from rnnkit.utils import set_random_seed

SEEDS = (0, 1, 2)


def _build(cell="GRU", dtype="float64", extra=()):
    def build():
        make = getattr(layers, cell)
        model = Sequential(
            [
                layers.Input((6, 3), dtype=dtype),
                make(5, return_sequences=True, dtype=dtype),
                make(4, dtype=dtype),
                *extra,
                layers.Dense(3, activation="relu", dtype=dtype),
                layers.Dense(1, dtype=dtype),
            ]
        )
        model.compile(optimizer="adam", loss="mse", metrics=["mae"])
        return model

    return build


def _data(dtype=np.float64):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((48, 6, 3)), rng.standard_normal((48, 1))
    vx, vy = rng.standard_normal((16, 6, 3)), rng.standard_normal((16, 1))
    return [a.astype(dtype) for a in (x, y, vx, vy)]


def _watch(i):
    return [
        ReduceLROnPlateau(patience=1, factor=0.5),
        EarlyStopping(patience=2, restore_best_weights=True),
    ]


FIT = {"batch_size": 16, "epochs": 25, "verbose": 0}


def _alone(build, x, y, vx, vy):
    members, histories = [], []
    for seed in SEEDS:
        set_random_seed(seed)
        model = build()
        torch.manual_seed(11)  # the batches' order, as the ensemble draws it
        histories.append(model.fit(x, y, validation_data=(vx, vy), callbacks=_watch(0), **FIT))
        members.append(model)
    return members, histories


def _together(build, x, y, vx, vy):
    ensemble = Ensemble.from_seeds(build, SEEDS)
    torch.manual_seed(11)
    histories = ensemble.fit(x, y, validation_data=(vx, vy), member_callbacks=_watch, **FIT)
    return ensemble, histories


def _assert_same(ensemble, histories, alone, alone_histories, atol):
    for member, history, model, own in zip(ensemble, histories, alone, alone_histories):
        assert history.epoch == own.epoch  # stopped at the same epoch
        np.testing.assert_allclose(history.history["val_loss"], own.history["val_loss"], atol=atol)
        for a, b in zip(member.get_weights(), model.get_weights()):
            np.testing.assert_allclose(a, b, rtol=0, atol=atol)


@pytest.mark.parametrize("cell", ["SimpleRNN", "GRU", "LSTM"])
@pytest.mark.parametrize("stacked", [True, False])
def test_members_trained_together_end_as_trained_alone(cell, stacked, monkeypatch):
    x, y, vx, vy = _data()
    if not stacked:
        monkeypatch.setattr(_ensemble, "stack_blocker", lambda *args: "forced by the test")
    ensemble, histories = _together(_build(cell), x, y, vx, vy)
    if stacked:
        assert ensemble.step_path == "stacked (3 members in each kernel call)"
    else:
        assert ensemble.step_path == "each member's own step in turn (forced by the test)"
    alone, alone_histories = _alone(_build(cell), x, y, vx, vy)
    _assert_same(ensemble, histories, alone, alone_histories, atol=1e-10)
    assert len({len(h.epoch) for h in histories}) > 1, "the test wants members to stop apart"


def test_float32_members_stay_with_their_lone_training():
    x, y, vx, vy = _data(np.float32)
    build = _build("GRU", dtype="float32")
    ensemble, histories = _together(build, x, y, vx, vy)
    assert ensemble.step_path.startswith("stacked")
    alone, alone_histories = _alone(build, x, y, vx, vy)
    _assert_same(ensemble, histories, alone, alone_histories, atol=1e-5)


def test_a_layer_without_a_stacked_kernel_runs_each_members_step():
    x, y, vx, vy = _data()
    build = _build("GRU", extra=[layers.Dropout(0.2, dtype="float64")])
    ensemble = Ensemble.from_seeds(build, SEEDS)
    ensemble.fit(x, y, **{**FIT, "epochs": 1})
    assert ensemble.step_path == (
        "each member's own step in turn (Dropout draws each member's own masks)"
    )
    for member in ensemble:
        assert member.step_path.startswith("direct")


def test_ensemble_callbacks_hear_the_members_mean_and_can_stop_them_all():
    x, y, vx, vy = _data()
    heard = []

    class Listen(Callback):
        def on_epoch_end(self, epoch, logs=None):
            heard.append(dict(logs))
            if epoch == 2:
                self.model.stop_training = True

    ensemble = Ensemble.from_seeds(_build(), SEEDS)
    histories = ensemble.fit(x, y, validation_data=(vx, vy), callbacks=[Listen()], **FIT)
    assert [h.epoch for h in histories] == [[0, 1, 2]] * 3
    assert heard[0]["members"] == 3 and set(heard[0]) >= {"loss", "mae", "val_loss"}
    mean = np.mean([h.history["val_loss"][1] for h in histories])
    assert heard[1]["val_loss"] == pytest.approx(mean, rel=1e-12)


def test_predict_is_the_members_mean():
    x, y, _, _ = _data()
    ensemble = Ensemble.from_seeds(_build(), SEEDS)
    ensemble.fit(x, y, **{**FIT, "epochs": 2})
    expected = np.mean([member.predict(x) for member in ensemble], axis=0)
    np.testing.assert_allclose(ensemble.predict(x), expected, rtol=1e-12)


def test_mistakes_say_what_to_do():
    build = _build()
    with pytest.raises(ValueError, match="at least one member"):
        Ensemble([])
    with pytest.raises(TypeError, match="member 1 must be an rnnkit model"):
        Ensemble([build(), "model"])
    model = build()
    with pytest.raises(ValueError, match="the same model appears twice"):
        Ensemble([model, model])
    x, y, _, _ = _data()
    ensemble = Ensemble([build(), build()])
    with pytest.raises(TypeError, match="member_callbacks must be a function of the member"):
        ensemble.fit(x, y, member_callbacks=[EarlyStopping()])

    def batches():
        yield x, y

    with pytest.raises(ValueError, match="trains on in-memory arrays"):
        ensemble.fit(batches())
    uncompiled = Sequential([layers.Input((6, 3)), layers.GRU(2), layers.Dense(1)])
    with pytest.raises(ValueError, match="must be compiled before Ensemble.fit"):
        Ensemble([build(), uncompiled]).fit(x, y)


def test_saved_as_one_model_it_loads_and_predicts_the_members_mean(tmp_path):
    import rnnkit

    x, y, _, _ = _data()
    ensemble = Ensemble.from_seeds(_build(), SEEDS)
    ensemble.fit(x, y, **{**FIT, "epochs": 2})
    ensemble.save(tmp_path / "ensemble.rnnkit")
    loaded = rnnkit.load_model(tmp_path / "ensemble.rnnkit")
    np.testing.assert_allclose(loaded.predict(x), ensemble.predict(x), rtol=1e-12)
    with pytest.raises(ValueError, match="have no known inputs yet"):
        Ensemble([Sequential([layers.GRU(2)]), Sequential([layers.GRU(2)])]).as_model()


class _StopAt(Callback):
    """Stops its member after batch `batch` of epoch `epoch` (as TerminateOnNaN would)."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            self.model.stop_training = True


@pytest.mark.parametrize("stacked", [True, False])
def test_a_member_stopped_mid_epoch_leaves_the_others_their_whole_epoch(stacked, monkeypatch):
    x, y, vx, vy = _data()
    if not stacked:
        monkeypatch.setattr(_ensemble, "stack_blocker", lambda *args: "forced by the test")

    def own(i):
        return [_StopAt(1, 0)] if i == 0 else []

    kw = {**FIT, "epochs": 3, "shuffle": False, "validation_data": (vx, vy)}
    ensemble = Ensemble.from_seeds(_build(), SEEDS)
    histories = ensemble.fit(x, y, member_callbacks=own, **kw)
    for i, seed in enumerate(SEEDS):
        set_random_seed(seed)
        alone = _build()()
        history = alone.fit(x, y, callbacks=own(i), **kw)
        assert histories[i].epoch == history.epoch
        np.testing.assert_allclose(histories[i].history["loss"], history.history["loss"])
        for a, b in zip(ensemble.members[i].get_weights(), alone.get_weights()):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)


def test_a_layer_frozen_in_one_member_mid_fit_trains_on_in_the_others():
    x, y, _, _ = _data()

    class Freeze(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.model.layers[0].trainable = False

    def own(i):
        return [Freeze()] if i == 0 else []

    kw = {**FIT, "epochs": 3, "shuffle": False}
    ensemble = Ensemble.from_seeds(_build(), SEEDS)
    ensemble.fit(x, y, member_callbacks=own, **kw)
    assert ensemble.step_path.startswith("stacked")
    for i, seed in enumerate(SEEDS):
        set_random_seed(seed)
        alone = _build()()
        alone.fit(x, y, callbacks=own(i), **kw)
        for a, b in zip(ensemble.members[i].get_weights(), alone.get_weights()):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)


def test_members_logs_with_different_keys_average_each_over_those_that_have_it():
    x, y, _, _ = _data()
    heard = []

    class Listen(Callback):
        def on_epoch_end(self, epoch, logs=None):
            heard.append(dict(logs))

    def own(i):
        return [ReduceLROnPlateau(monitor="loss")] if i == 0 else []

    ensemble = Ensemble.from_seeds(_build(), SEEDS)
    histories = ensemble.fit(x, y, member_callbacks=own, callbacks=[Listen()], **FIT)
    assert heard[0]["learning_rate"] == pytest.approx(histories[0].history["learning_rate"][0])
    assert heard[0]["members"] == 3


@pytest.mark.parametrize("make", [EarlyStopping, ReduceLROnPlateau])
def test_a_callback_that_watches_one_model_belongs_to_the_members(make):
    x, y, _, _ = _data()
    ensemble = Ensemble.from_seeds(_build(), SEEDS)
    name = make.__name__
    with pytest.raises(TypeError, match=rf"member_callbacks=lambda i: \[{name}\(\.\.\.\)\]"):
        ensemble.fit(x, y, callbacks=[make()], **FIT)


def test_sample_weights_train_the_members_as_each_alone():
    x, y, vx, vy = _data()
    weights = np.random.default_rng(3).random(len(x))
    kw = {**FIT, "epochs": 3, "shuffle": False, "sample_weight": weights}
    ensemble = Ensemble.from_seeds(_build(), SEEDS)
    ensemble.fit(x, y, **kw)
    assert ensemble.step_path.startswith("stacked")
    for member, seed in zip(ensemble, SEEDS):
        set_random_seed(seed)
        alone = _build()()
        alone.fit(x, y, **kw)
        for a, b in zip(member.get_weights(), alone.get_weights()):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
