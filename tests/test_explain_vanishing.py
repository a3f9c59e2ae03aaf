"""The notes' experiment: the task, the statistics over seeds, the workers, and the report."""

import doctest
import importlib
import json
import multiprocessing

import numpy as np
import pytest

from rnnkit.explain import vanishing
from rnnkit.explain.vanishing import LEARNED, QUICK, Settings, Vanishing, notes_arithmetic, task

TINY = {"cells": ("SimpleRNN",), "epochs": 2, "samples": 64, "units": 4}


def test_the_answer_is_the_marked_input_k_steps_before_the_last(rng):
    x, y = task(7, 32, rng)
    assert x.shape == (32, 8, 2) and y.shape == (32, 1)
    np.testing.assert_array_equal(y, x[:, -1 - 7, :1])
    assert x[..., 0].min() >= -1 and x[..., 0].max() <= 1
    # The marker says which input to keep: 1 at the first step, 0 at the distractors after it.
    np.testing.assert_array_equal(x[:, 0, 1], 1)
    np.testing.assert_array_equal(x[:, 1:, 1], 0)
    # The error is a share of what always answering 0 leaves: the variance of U(-1, 1).
    big, _ = task(1, 200_000, rng)
    assert abs(big[..., 0].var() - 1 / 3) < 0.005


def test_a_short_lag_is_learned_and_measured_for_every_seed():
    result = vanishing(
        ks=(2,), cells=("SimpleRNN",), seeds=2, epochs=8, samples=512, batch_size=64, workers=1
    )
    assert len(result.errors["SimpleRNN"][0]) == 2  # one figure per seed
    assert all(e <= LEARNED for e in result.errors["SimpleRNN"][0])  # 2 steps back is easy
    assert all(0 < d < 10 for d in result.decays["SimpleRNN"][0])
    assert result.horizons["SimpleRNN"][0] == [3, 3]  # it reaches back to x_0, no further
    assert result.learned("SimpleRNN") == [1.0] and result.learned_up_to("SimpleRNN") == 2


def _made_up():
    """Five seeds: SimpleRNN learns k=5 in all, k=40 in two (not most); GRU in three of five."""
    return Vanishing(
        [5, 40],
        ["SimpleRNN", "GRU"],
        {
            "SimpleRNN": [[0.0, 0.01, 0.0, 0.02, 0.0], [0.05, 0.5, 1.0, 0.02, 0.9]],
            "GRU": [[0.0, 0.0, 0.0, 0.0, 0.3], [0.01, 1.2, 0.0, 0.03, 1.0]],
        },
        {
            "SimpleRNN": [[6, 6, 6, 6, 6], [41, 12, 5, 41, 7]],
            "GRU": [[6, 6, 6, 6, 3], [41, 30, 41, 41, 20]],
        },
        {"SimpleRNN": [[0.5] * 5, [0.02, 0.01, 0.03, 0.02, 0.02]], "GRU": [[0.3] * 5, [3e-9] * 5]},
    )


def test_the_statistics_are_shares_of_seeds_and_medians():
    result = _made_up()
    assert result.learned("SimpleRNN") == [1.0, 0.4] and result.learned("GRU") == [0.8, 0.6]
    assert result.median("SimpleRNN") == [0.0, 0.5]
    assert result.median("GRU", "horizons") == [6.0, 41.0]
    # A cell has learned a k when more than half its seeds have: two of five is not enough.
    assert result.learned_up_to("SimpleRNN") == 5 and result.learned_up_to("GRU") == 40
    # How far back it remembers there: the median horizon of the seeds that learned it
    assert result.horizon("SimpleRNN") == 6 and result.horizon("GRU") == 41
    # Ties go against learning: one of two seeds is not most.
    tie = Vanishing([5], ["LSTM"], {"LSTM": [[0.0, 1.0]]}, {"LSTM": [[6, 2]]}, {"LSTM": [[1, 1]]})
    assert tie.learned("LSTM") == [0.5] and tie.learned_up_to("LSTM") == 0 == tie.horizon("LSTM")


def test_the_table_shows_the_share_the_medians_each_seed_and_the_notes_arithmetic():
    text = str(_made_up())
    assert "5 seeds each" in text and "k=40" in text
    # share of seeds, median error / median horizon; bracketed where most seeds did not learn
    assert "2/5  50% / (12)" in text and "3/5  3% / 41" in text and "5/5  0% / 6" in text
    assert text.splitlines()[3].endswith("k=5 (6 steps)")  # learned up to, and its horizon
    assert text.splitlines()[4].endswith("k=40 (41 steps)")
    # every seed's error is printed, failures included
    assert "5 50 100 2 90" in text and "1 120 0 3 100" in text
    # The notes' numbers: a weight of 2 or 0.5 multiplied over 50 steps.
    assert "2^50   = 1.13e+15" in text and "0.5^50 = 8.88e-16" in text
    assert notes_arithmetic()[1].endswith("(exploding)")
    assert "over the 41 steps of k=40" in text and "GRU: 3e-09" in text
    assert repr(_made_up()) == "<Vanishing learned up to SimpleRNN: k=5, GRU: k=40>"


def test_the_numbers_go_to_json_per_seed():
    data = json.loads(json.dumps(_made_up().to_dict()))
    assert data["learned_up_to"] == {"SimpleRNN": 5, "GRU": 40}
    assert data["horizon"] == {"SimpleRNN": 6, "GRU": 41}
    assert data["learned"]["SimpleRNN"] == [1.0, 0.4]
    assert data["errors"]["GRU"][1] == [0.01, 1.2, 0.0, 0.03, 1.0]
    assert data["horizons"]["SimpleRNN"][1] == [41, 12, 5, 41, 7]
    assert data["notes"]["2^50"] == 2.0**50
    assert data["settings"]["seeds"] == Settings().seeds


def test_the_plot_writes_png_and_svg(tmp_path):
    result = _made_up()
    for name in ("v.png", "v.svg"):
        result.plot(tmp_path / name)
        assert (tmp_path / name).stat().st_size > 1000
    assert 'src="data:image/png;base64,' in result._repr_html_()


def test_workers_give_the_same_figures_and_do_not_outlive_the_call():
    lines = []
    parallel = vanishing(ks=(1, 2), seeds=2, workers=2, progress=lines.append, **TINY)
    assert multiprocessing.active_children() == []
    serial = vanishing(ks=(1, 2), seeds=2, workers=1, **TINY)
    assert parallel.errors == serial.errors and parallel.horizons == serial.horizons
    assert len(lines) == 4 and all(line.startswith("SimpleRNN k=") for line in lines)


def test_a_timeout_stops_the_workers_and_says_how_to_give_more_time():
    # Starting a worker alone takes longer than this: the call must stop them and say so.
    with pytest.raises(TimeoutError, match=r"not all trained in timeout=0.2 s.*timeout=0.4"):
        vanishing(ks=(50,), seeds=4, workers=2, timeout=0.2, **TINY)
    assert multiprocessing.active_children() == []


def test_an_error_while_the_workers_run_stops_them_at_once():
    def fails(line):
        raise RuntimeError("progress failed")

    with pytest.raises(RuntimeError, match="progress failed"):
        vanishing(ks=(1, 2), seeds=2, workers=2, progress=fails, **TINY)
    assert multiprocessing.active_children() == []


def test_each_cell_gets_its_own_learning_rate_or_one_for_all():
    assert Settings().learning_rate == {"SimpleRNN": 0.003, "LSTM": 0.003, "GRU": 0.01}
    one = vanishing(ks=(1,), learning_rate=0.05, workers=1, **TINY)
    assert one.settings.learning_rate == 0.05 and one.to_dict()["settings"]["learning_rate"] == 0.05


def test_the_docstring_example_runs():
    # `rnnkit.explain.vanishing` is the function; the module is imported by its name
    assert doctest.testmod(importlib.import_module("rnnkit.explain.vanishing")).failed == 0


def test_the_quick_run_is_a_subset_of_the_full_one():
    assert set(QUICK) <= {f for f in Settings.__dataclass_fields__}
    assert set(QUICK["ks"]) <= set(Settings().ks) and QUICK["seeds"] < Settings().seeds


@pytest.mark.parametrize(
    "settings, error, message",
    [
        ({"cells": ("RNN",)}, ValueError, r"cells are SimpleRNN, LSTM, GRU; got 'RNN'"),
        ({"ks": (0, 5)}, ValueError, r"ks are the lags to try, positive integers"),
        ({"ks": ()}, ValueError, r"ks are the lags to try"),
        ({"seeds": 0}, ValueError, r"seeds is a count, a positive integer such as seeds=2"),
        ({"workers": 1.5}, ValueError, r"workers is a count.*got 1.5"),
        ({"timeout": 0}, ValueError, r"timeout is in seconds, above 0; got 0"),
        (
            {"cells": ("LSTM",), "learning_rate": {"GRU": 0.01}},
            ValueError,
            r"learning_rate is a number or one per cell; it has none for LSTM",
        ),
        ({"lags": (5,)}, TypeError, r"unknown setting\(s\) lags; it takes ks, cells, seeds"),
    ],
)
def test_bad_settings_say_what_is_taken(settings, error, message):
    with pytest.raises(error, match=message):
        vanishing(**settings)
