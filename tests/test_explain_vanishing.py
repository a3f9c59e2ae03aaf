"""The notes' experiment: the task, what counts as learned, and the report's arithmetic."""

import json

import numpy as np
import pytest

from rnnkit.explain import vanishing
from rnnkit.explain.vanishing import LEARNED, Vanishing, notes_arithmetic, task


def test_the_answer_is_the_input_k_steps_before_the_last(rng):
    x, y = task(7, 32, rng)
    assert x.shape == (32, 8, 1) and y.shape == (32, 1)
    np.testing.assert_array_equal(y, x[:, -1 - 7, :])
    assert x.min() >= -1 and x.max() <= 1
    # The error is a share of what always answering 0 leaves: the variance of U(-1, 1).
    big, _ = task(1, 200_000, rng)
    assert abs(big.var() - 1 / 3) < 0.005


def test_a_short_lag_is_learned_and_measured(rng):
    result = vanishing(ks=(2,), cells=("SimpleRNN",), epochs=8, samples=512)
    (error,) = result.errors["SimpleRNN"]
    (steps,) = result.horizons["SimpleRNN"]
    (decay,) = result.decays["SimpleRNN"]
    assert error <= LEARNED  # remembering 2 steps back is easy
    assert 0 < decay < 10
    assert steps == 3  # and the trained model reaches back to x_0, no further than it sees
    assert result.learned_up_to("SimpleRNN") == 2


def test_the_table_names_each_cell_and_the_notes_arithmetic():
    result = Vanishing(
        [5, 40],
        ["SimpleRNN", "GRU"],
        {"SimpleRNN": [0.0, 0.5], "GRU": [0.01, 0.05]},
        {"SimpleRNN": [6, 12], "GRU": [6, 41]},
        {"SimpleRNN": [0.5, 0.02], "GRU": [0.3, 3e-9]},
    )
    text = str(result)
    assert "SimpleRNN" in text and "k=40" in text
    assert "50% / (12)" in text and "5% / 41" in text  # horizons of unlearned lags in brackets
    assert result.learned_up_to("SimpleRNN") == 5 and result.learned_up_to("GRU") == 40
    # The notes' numbers: a weight of 2 or 0.5 multiplied over 50 steps.
    assert "2^50   = 1.13e+15" in text and "0.5^50 = 8.88e-16" in text
    assert notes_arithmetic()[1].endswith("(exploding)")
    assert "over the 41 steps of k=40" in text and "GRU: 3e-09" in text
    data = json.loads(json.dumps(result.to_dict()))
    assert data["learned_up_to"] == {"SimpleRNN": 5, "GRU": 40}
    assert data["notes"]["2^50"] == 2.0**50


def test_the_plot_writes_png_and_svg(tmp_path):
    result = Vanishing([5, 10], ["LSTM"], {"LSTM": [0.0, 0.2]}, {"LSTM": [6, 8]}, {"LSTM": [1, 1]})
    for name in ("v.png", "v.svg"):
        result.plot(tmp_path / name)
        assert (tmp_path / name).stat().st_size > 1000
    assert 'src="data:image/png;base64,' in result._repr_html_()


@pytest.mark.parametrize(
    "settings, error, message",
    [
        ({"cells": ("RNN",)}, ValueError, r"cells are SimpleRNN, LSTM, GRU; got 'RNN'"),
        ({"ks": (0, 5)}, ValueError, r"ks are the lags to try, positive integers"),
        ({"ks": ()}, ValueError, r"ks are the lags to try"),
        ({"lags": (5,)}, TypeError, r"unknown setting\(s\) lags; it takes ks, cells"),
    ],
)
def test_bad_settings_say_what_is_taken(settings, error, message):
    with pytest.raises(error, match=message):
        vanishing(**settings)
