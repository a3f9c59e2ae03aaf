"""Windows, splits and scalers against Keras' timeseries_dataset_from_array and by hand.

Keras builds its windows with tf.data, and TensorFlow is not installed for the tests; the
batches Keras 3.15.1 yields for 86 argument sets are recorded in
tests/data/keras_timeseries_cases.json by tests/oracle/make_timeseries_cases.py, and
compared here. Where TensorFlow is installed, one test reruns Keras live.
"""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pandas as pd
import pytest

from rnnkit.data import (
    MinMaxScaler,
    StandardScaler,
    chronological_split,
    fill_missing,
    make_windows,
    scaler_from_config,
    timeseries_dataset_from_array,
)

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "data", "keras_timeseries_cases.json")) as f:
    RECORDED = json.load(f)


def _arrays(case):
    rows, features = case["rows"], case["features"]
    data = np.arange(rows * max(features, 1), dtype="float32")
    data = data.reshape(rows, features) if features else data
    targets = {
        "none": None,
        "same": np.arange(rows) * 10,
        "offset": np.arange(rows)[case["sequence_length"] :] * 10,
        "short": np.arange(5) * 10,
    }[case["targets"]]
    return data, targets


def _rnnkit_batches(case):
    data, targets = _arrays(case)
    arguments = {k: v for k, v in case.items() if k not in ("rows", "features", "targets")}
    out = []
    for item in timeseries_dataset_from_array(data, targets, **arguments):
        if targets is None:
            out.append({"x": np.asarray(item).tolist()})
        else:
            out.append({"x": np.asarray(item[0]).tolist(), "y": np.asarray(item[1]).tolist()})
    return out


def _label(record):
    return ",".join(f"{k}={v}" for k, v in record["case"].items())


@pytest.mark.parametrize("record", [r for r in RECORDED["cases"] if "error" not in r], ids=_label)
def test_windows_match_keras(record):
    assert _rnnkit_batches(record["case"]) == record["batches"]


def test_where_keras_runs_out_of_targets_rnnkit_stops_at_the_last_target():
    # Keras gathers targets[start_index:] at positions up to len(targets) and fails inside
    # tf.data; rnnkit makes the windows that have a target.
    (record,) = [r for r in RECORDED["cases"] if "error" in r]
    case = record["case"]
    data, targets = _arrays(case)
    batches = timeseries_dataset_from_array(
        data, targets, 3, sequence_stride=2, batch_size=3, start_index=3
    )
    x, y = batches.arrays()
    np.testing.assert_array_equal(batches.starts, [3, 5, 7, 9, 11, 13, 15])
    np.testing.assert_array_equal(y, targets[batches.starts])
    np.testing.assert_array_equal(x[:, 0, 0], data[batches.starts, 0])


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="no TensorFlow")
def test_recorded_cases_are_what_keras_yields_now(tmp_path):  # pragma: no cover - needs TensorFlow
    import subprocess
    import sys

    script = os.path.join(HERE, "oracle", "make_timeseries_cases.py")
    fresh = tmp_path / "cases.json"
    subprocess.run([sys.executable, script, str(fresh)], check=True)
    assert json.loads(fresh.read_text())["cases"] == RECORDED["cases"]


def test_shuffle_draws_keras_start_order_then_a_new_order_each_pass():
    data = np.arange(50)
    batches = timeseries_dataset_from_array(data, None, 5, batch_size=None, shuffle=True, seed=3)
    first = [int(w[0]) for w in batches]
    expected = np.arange(46)
    np.random.RandomState(3).shuffle(expected)  # the start order Keras draws from the seed
    assert first == expected.tolist()
    second = [int(w[0]) for w in batches]
    assert sorted(second) == list(range(46)) and second != first
    again = timeseries_dataset_from_array(data, None, 5, batch_size=None, shuffle=True, seed=3)
    assert [int(w[0]) for w in again] == first


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"sequence_length": 0}, "sequence_length must be at least 1"),
        ({"sequence_length": 3, "sampling_rate": 0}, "sampling_rate must be at least 1"),
        ({"sequence_length": 3, "sequence_stride": 10}, "sequence_stride must be .* lower"),
        ({"sequence_length": 3, "start_index": 12}, "start_index must be"),
        ({"sequence_length": 3, "start_index": 5, "end_index": 5}, "lower than end_index"),
        ({"sequence_length": 11}, "a window spans 11 rows"),
        ({"sequence_length": 2.5}, "must be an integer"),
    ],
)
def test_bad_window_arguments(arguments, match):
    with pytest.raises((ValueError, TypeError), match=match):
        timeseries_dataset_from_array(np.arange(10), None, **arguments)


def test_fit_takes_window_batches_and_reiterates_them_every_epoch():
    from rnnkit import Sequential
    from rnnkit.layers import Dense, SimpleRNN

    series = np.sin(np.arange(200) / 5).astype("float32")[:, None]
    batches = timeseries_dataset_from_array(series[:-4], series[4:], 4, batch_size=32)
    model = Sequential([SimpleRNN(4, input_shape=(4, 1)), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(batches, epochs=3, verbose=0)
    assert len(history.history["loss"]) == 3


# ------------------------------------------------------------------------- make_windows


def test_make_windows_equals_keras_windows_with_offset_targets():
    series = np.random.default_rng(0).normal(size=(40, 3))
    x, y, first = make_windows(series, window=5, horizon=1, targets=series[:, 1])
    kx, ky = timeseries_dataset_from_array(series, series[5:, 1], 5, batch_size=None).arrays()
    np.testing.assert_array_equal(x, kx)
    np.testing.assert_array_equal(y[:, 0], ky)
    np.testing.assert_array_equal(first, np.arange(5, 40))


def test_make_windows_multi_step_targets_follow_each_window():
    series = np.arange(20.0)
    x, y, first = make_windows(series, window=4, horizon=3, stride=2)
    assert x.shape == (7, 4, 1) and y.shape == (7, 3, 1)
    for row, start in enumerate(first):
        np.testing.assert_array_equal(x[row, :, 0], series[start - 4 : start])
        np.testing.assert_array_equal(y[row, :, 0], series[start : start + 3])


def test_target_rows_keep_every_target_inside_the_split():
    rows = 100
    split = chronological_split(rows, 0.2, 0.2)
    series = np.arange(float(rows))
    parts = [make_windows(series, 7, 3, series, target_rows=s) for s in split]
    for (_, y, first), part in zip(parts, split):
        assert y.min() >= part.start and y.max() < part.stop
        assert first.min() >= max(part.start, 7)
    test_x, _, _ = parts[2]
    assert test_x.min() < split.test.start  # inputs may reach back into earlier rows


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"window": 0}, "window must be a positive integer"),
        ({"window": 3, "horizon": 0}, "horizon must be a positive integer"),
        ({"window": 9, "horizon": 2}, "needs at least 11 rows"),
        ({"window": 3, "targets": np.zeros(4)}, "targets has 4 rows but data has 10"),
        ({"window": 3, "target_rows": slice(0, 10, 2)}, "must be contiguous"),
    ],
)
def test_make_windows_errors(arguments, match):
    with pytest.raises(ValueError, match=match):
        make_windows(np.arange(10.0), **arguments)


# --------------------------------------------------------------------------------- splits


def test_chronological_split_is_ordered_and_complete():
    split = chronological_split(1461, 0.15, 0.15)
    assert split.train.start == 0 and split.test.stop == 1461
    assert split.train.stop == split.validation.start and split.validation.stop == split.test.start
    assert split.test.stop - split.test.start == 219


@pytest.mark.parametrize(
    ("arguments", "match"),
    [((2,), "at least 3 rows"), ((10, 0.5, 0.5), "must leave rows"), ((10, -0.1), "in \\[0, 1\\)")],
)
def test_chronological_split_errors(arguments, match):
    with pytest.raises(ValueError, match=match):
        chronological_split(*arguments)


# -------------------------------------------------------------------------------- scalers


def test_standard_scaler_learns_from_the_rows_it_is_given_only():
    rng = np.random.default_rng(1)
    values = rng.normal(5, 2, size=(50, 3))
    scaler = StandardScaler().fit(values[:30])
    np.testing.assert_allclose(scaler.shift, values[:30].mean(axis=0))
    np.testing.assert_allclose(scaler.scale, values[:30].std(axis=0))
    scaled = scaler.transform(values)
    np.testing.assert_allclose(scaled[:30].mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(scaler.inverse_transform(scaled), values, rtol=1e-5)
    np.testing.assert_allclose(
        scaler.inverse_transform(scaled[:, 1], columns=[1]), values[:, 1], rtol=1e-5
    )


def test_minmax_scaler_maps_training_rows_to_unit_interval_and_round_trips_config():
    values = np.array([[1.0, 10.0], [3.0, 10.0], [2.0, 10.0]])
    scaler = MinMaxScaler(["a", "b"]).fit(values)
    np.testing.assert_allclose(scaler.transform(values), [[0, 0], [1, 0], [0.5, 0]])
    again = scaler_from_config(json.loads(json.dumps(scaler.get_config())))
    assert isinstance(again, MinMaxScaler) and again.columns == ["a", "b"]
    np.testing.assert_allclose(again.transform(values), scaler.transform(values))


def test_scaler_errors_name_the_column_and_the_fix():
    values = np.array([[1.0, np.nan], [2.0, 3.0]])
    with pytest.raises(ValueError, match="'wind' has 1 missing or infinite .*fill_missing"):
        StandardScaler(["temp", "wind"]).fit(values)
    with pytest.raises(ValueError, match="call fit"):
        StandardScaler().transform(values)
    scaler = StandardScaler().fit(np.ones((3, 2)))
    with pytest.raises(ValueError, match="fitted on 2 column.*got 3"):
        scaler.transform(np.ones((3, 3)))
    with pytest.raises(ValueError, match="Not a scaler config"):
        scaler_from_config({"kind": "log"})


# -------------------------------------------------------------------------- missing values


def test_fill_missing_methods():
    frame = pd.DataFrame({"t": [np.nan, 1.0, np.nan, 3.0, np.nan], "w": [1.0, 2, 3, 4, 5]})
    assert fill_missing(frame, "ffill")["t"].tolist() == [1.0, 1.0, 1.0, 3.0, 3.0]
    assert fill_missing(frame, "interpolate")["t"].tolist() == [1.0, 1.0, 2.0, 3.0, 3.0]
    assert fill_missing(frame, "drop")["w"].tolist() == [2.0, 4.0]
    assert frame["t"].isna().sum() == 3  # the caller's frame is left alone
    with pytest.raises(ValueError, match="'t': 3 missing, the first in row 0.*--fill ffill"):
        fill_missing(frame)


def test_fill_missing_rejects_an_empty_column_and_unknown_method():
    frame = pd.DataFrame({"t": [np.nan, np.nan], "w": [1.0, 2.0]})
    with pytest.raises(ValueError, match="'t' hold no values at all"):
        fill_missing(frame, "ffill")
    with pytest.raises(ValueError, match="method must be one of"):
        fill_missing(frame, "mean")
