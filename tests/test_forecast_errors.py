"""Every mistake a user can make with the many-series forecast options: one line naming the
option, what came and the fix, exit status 1, nothing written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from rnnkit.cli import main
from rnnkit.forecast import ForecastSettings, load_panel


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(0)
    frames = [
        pd.DataFrame(
            {
                "unique_id": name,
                "ds": pd.date_range("2021-01-01", periods=40, freq="D"),
                "y": 10 + rng.normal(size=40).cumsum() + 20 * i,
                "promo": rng.integers(0, 2, 40),
                "temp": rng.normal(size=40),
            }
        )
        for i, name in enumerate("ab")
    ]
    path = tmp_path / "t.csv"
    pd.concat(frames).to_csv(path, index=False)
    return path


FAST = ["--epochs", "1", "--units", "2", "--ensemble", "1", "--window", "4", "--horizon", "2"]
CASES = [
    (["--levels", "80,x"], "--levels takes percentages such as --levels 80 95; got 'x'"),
    (["--levels", "120"], "levels are percentages between 0 and 100"),
    (["--test-size", "1"], "test_size (1 rows) is shorter than the horizon (2)"),
    (["--val-size", "1"], "val_size (1 rows) is shorter than the horizon (2)"),
    (["--val-size", "0", "--levels", "80"], "calibrated on the validation windows"),
    (["--deseason"], "needs normalize='log-window' and a season"),
    (["--strategy", "recursive"], "'temp' are past covariates"),
    (["--future-cols", "y"], "is also given as a future column"),
    (["--static-cols", "temp"], "The static column 'temp' changes within 2 series"),
    (["--features", "ds,y"], "--features includes 'ds'"),
    (["--backtest", "2", "--test-size", "0"], "A backtest scores forecasts"),
]


@pytest.mark.parametrize("extra, message", CASES, ids=[c[1][:30] for c in CASES])
def test_each_mistake_is_one_line_and_writes_nothing(table, tmp_path, extra, message):
    out = tmp_path / "out"
    args = ["forecast", "--csv", str(table), *FAST, *extra, "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error: ") and message in result.output, result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_several_targets_and_an_id_column_are_refused_together():
    frame = pd.DataFrame({"id": ["a", "a"], "u": [1.0, 2.0], "v": [3.0, 4.0]})
    with pytest.raises(ValueError, match=r"Give several --target columns \(u, v\) or an --id-col"):
        load_panel(frame, ["u", "v"], id_col="id")


def test_static_columns_need_an_id_column():
    frame = pd.DataFrame({"y": [1.0, 2.0, 3.0], "kind": ["x", "x", "x"]})
    with pytest.raises(ValueError, match="--static-cols \\(kind\\) describe each series"):
        load_panel(frame, "y", static=["kind"])


def test_recursive_needs_the_target_among_the_inputs():
    from rnnkit.forecast import prepare

    frame = pd.DataFrame({"y": np.arange(30.0), "x": np.arange(30.0) ** 0.5})
    panel = load_panel(frame, "y", features=["x"])
    settings = ForecastSettings(target="y", date_col=None, strategy="recursive", window=3)
    with pytest.raises(ValueError, match="the target must be one of the inputs"):
        prepare(panel, settings)
