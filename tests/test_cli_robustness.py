"""The commands on bad input and failing disks: one line, exit status 1, nothing half-written.

Issue 15, item 11. Each test feeds one mistake (stacked series, a constant target, gaps that
leave no row, a full disk, an incomplete model file) to `rnnkit` and checks the message, the
exit status and what is left on disk.
"""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import rnnkit.saving
from rnnkit import Input, Sequential
from rnnkit.cli import main
from rnnkit.layers import GRU, Dense

FAST = ["--epochs", "1", "--units", "2", "--window", "3", "--ensemble", "1"]


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _error(result) -> str:
    """The command's one-line error, after checking it failed as a user error should."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not a traceback
    last = result.output.rstrip("\n").splitlines()[-1]
    assert last.startswith("Error: "), result.output
    return last


def _table(path, rows=60, **columns):
    t = np.arange(rows)
    frame = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=rows, freq="D")})
    frame["level"] = columns.pop("level", np.sin(t / 4) + t / 30)
    for name, values in columns.items():
        frame[name] = values
    frame.to_csv(path, index=False)
    return frame


def _forecast(csv, out, *extra):
    return _run("forecast", "--csv", csv, "--target", "level", *FAST, *extra, "--out", out)


def _leftovers(folder) -> list[str]:
    """Hidden staging folders or temporary files that a failed write left in `folder`."""
    return [name for name in os.listdir(folder) if name.startswith(".")]


@pytest.fixture(scope="module")
def forecast_model(tmp_path_factory):
    """A forecast model trained for one epoch, and the table it was trained on."""
    folder = tmp_path_factory.mktemp("model")
    frame = _table(folder / "s.csv")
    result = _forecast(folder / "s.csv", folder / "out")
    assert result.exit_code == 0, result.output
    return folder / "out" / "model.rnnkit", frame


# ------------------------------------------------------------------------ the table


def test_two_series_stacked_in_one_table_are_refused_naming_the_dates(tmp_path):
    one = _table(tmp_path / "a.csv", rows=30)
    stacked = pd.concat([one.assign(store="a"), one.assign(store="b")])
    stacked.to_csv(tmp_path / "s.csv", index=False)
    line = _error(_forecast(tmp_path / "s.csv", tmp_path / "out"))
    assert "more than one row for 30 date(s): 2020-01-01 (2 rows), 2020-01-02 (2 rows)" in line
    assert "and 27 more" in line and "several series" in line and "--id-col" in line
    assert "their sum or mean" in line
    assert not (tmp_path / "out").exists()


def test_predict_refuses_stacked_recent_rows(tmp_path, forecast_model):
    path, frame = forecast_model
    pd.concat([frame, frame.iloc[-5:]]).to_csv(tmp_path / "recent.csv", index=False)
    line = _error(_run("predict", path, "--csv", tmp_path / "recent.csv"))
    assert "more than one row for 5 date(s)" in line


def test_a_constant_target_is_refused_before_training(tmp_path):
    _table(tmp_path / "s.csv", level=np.full(60, 3.5), other=np.arange(60.0))
    result = _forecast(tmp_path / "s.csv", tmp_path / "out")
    line = _error(result)
    assert "'level' holds the same value, 3.5, in all 60 rows: there is nothing to forecast" in line
    assert "Epoch" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_target_flat_over_the_test_rows_scores_n_a_against_persistence(tmp_path):
    t = np.arange(60)
    level = np.where(t < 48, np.sin(t / 3), 0.0)  # still from row 48: the test rows are 51-59
    _table(tmp_path / "s.csv", level=level)
    result = _forecast(tmp_path / "s.csv", tmp_path / "out")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["persistence"]["rmse"] == 0 and metrics["skill_vs_persistence"] is None
    assert "n/a" in result.output and "Persistence is exact on the test rows" in result.output


def test_fill_drop_that_removes_every_row_names_the_columns(tmp_path):
    t = np.arange(60.0)
    _table(
        tmp_path / "s.csv",
        level=np.where(t % 2 == 0, np.nan, t),
        driver=np.where(t % 2 == 1, np.nan, t),
    )
    line = _error(_forecast(tmp_path / "s.csv", tmp_path / "out", "--fill", "drop"))
    assert "'drop' removed all 60 rows" in line
    assert "'level' (30 missing), 'driver' (30 missing)" in line
    assert "--fill ffill or --fill interpolate" in line


def test_a_message_quoting_pandas_over_several_lines_stays_on_one(tmp_path):
    frame = _table(tmp_path / "s.csv").astype({"date": str})
    frame.loc[5, "date"] = "yesterday"  # pandas' parser answers with a list of advice lines
    frame.to_csv(tmp_path / "s.csv", index=False)
    result = _forecast(tmp_path / "s.csv", tmp_path / "out", "--date-col", "date")
    assert "Column 'date'" in _error(result) and "Fix those rows" in _error(result)


# ------------------------------------------------------------------- writing --out


def _disk_full_at(monkeypatch, filename):
    """Make every write of `filename` fail as a full disk does, after the others succeed."""
    write = rnnkit.saving.atomic_write

    def full(path, data):
        if os.path.basename(path) == filename:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))
        write(path, data)

    monkeypatch.setattr(rnnkit.saving, "atomic_write", full)


def test_a_full_disk_leaves_no_half_run(tmp_path, monkeypatch):
    _table(tmp_path / "s.csv")
    _disk_full_at(monkeypatch, "forecast.png")  # the last file: the model is written by then
    line = _error(_forecast(tmp_path / "s.csv", tmp_path / "out"))
    assert line == (
        f"Error: Cannot write the outputs to '{tmp_path / 'out'}': No space left on device. "
        "Nothing was written, the folder is as it was; free some space, or choose a folder you "
        "can write to."
    )
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


def test_a_full_disk_leaves_the_previous_run_and_other_files_as_they_were(tmp_path, monkeypatch):
    _table(tmp_path / "s.csv")
    out = tmp_path / "out"
    assert _forecast(tmp_path / "s.csv", out).exit_code == 0
    (out / "notes.txt").write_text("mine")
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    _disk_full_at(monkeypatch, "metrics.json")
    assert "No space left on device" in _error(_forecast(tmp_path / "s.csv", out, "--seed", "1"))
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before
    assert _leftovers(tmp_path) == []


def test_a_new_run_replaces_its_own_files_and_keeps_the_others(tmp_path):
    _table(tmp_path / "s.csv")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "metrics.json").write_text("{}")  # an earlier run's
    assert _forecast(tmp_path / "s.csv", out).exit_code == 0
    assert sorted(os.listdir(out)) == ["forecast.png", "metrics.json", "model.rnnkit", "notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "metrics.json").read_text())["target"] == "level"


def test_an_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    model = Sequential([Input((3, 2)), GRU(2), Dense(1)])
    write = rnnkit.saving.atomic_write

    def interrupted(path, data):
        write(path, data[:10])  # partway through, as Ctrl-C would
        raise KeyboardInterrupt

    monkeypatch.setattr(rnnkit.saving, "atomic_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rnnkit.saving.write_outputs(tmp_path / "out", model, {"rmse": 1.0})
    assert os.listdir(tmp_path) == []


def test_out_below_a_file_is_one_line(tmp_path):
    _table(tmp_path / "s.csv")
    line = _error(_forecast(tmp_path / "s.csv", tmp_path / "s.csv" / "out"))
    assert f"Cannot write the outputs to '{tmp_path / 's.csv' / 'out'}'" in line


def test_predict_output_on_a_full_disk_names_the_file_and_writes_nothing(
    tmp_path, forecast_model, monkeypatch
):
    path, frame = forecast_model
    frame.to_csv(tmp_path / "recent.csv", index=False)
    _disk_full_at(monkeypatch, "p.csv")
    args = ["predict", path, "--csv", tmp_path / "recent.csv", "--output", tmp_path / "p.csv"]
    line = _error(_run(*args))
    assert f"Cannot write '{tmp_path / 'p.csv'}': No space left on device." in line
    assert sorted(os.listdir(tmp_path)) == ["recent.csv"]


def test_predict_output_creates_its_folder(tmp_path, forecast_model):
    path, frame = forecast_model
    frame.to_csv(tmp_path / "recent.csv", index=False)
    output = tmp_path / "new" / "p.csv"
    result = _run("predict", path, "--csv", tmp_path / "recent.csv", "--output", output)
    assert result.exit_code == 0, result.output
    assert pd.read_csv(output)["step"].tolist() == [1]


# ------------------------------------------------------------------- model files


def _model_with(tmp_path, metadata):
    model = Sequential([Input((3, 2)), GRU(2), Dense(1)])
    model.metadata = metadata
    model.save(tmp_path / "m.rnnkit")
    return tmp_path / "m.rnnkit"


@pytest.mark.parametrize(
    "task, command, fields",
    [
        ("forecast", ["predict", "--csv", "s.csv"], "'features', 'date_col', 'calendar'"),
        ("classify", ["predict", "--text", "hello"], "'labels', 'maxlen', 'tokenizer'"),
        ("tag", ["predict", "--text", "hello"], "'words', 'tags', 'lowercase', 'max_len'"),
        ("generate", ["generate", "--seed", "a"], "'vocabulary'"),
    ],
)
def test_a_model_whose_metadata_lacks_fields_is_named_incomplete(tmp_path, task, command, fields):
    path = _model_with(tmp_path, {"task": task, "target": "level"})
    _table(tmp_path / "s.csv")
    name, *options = command
    options = [tmp_path / o if o.endswith(".csv") else o for o in options]
    line = _error(_run(name, path, *options))
    assert f"'{path}' is incomplete: its metadata.json lacks {fields}" in line
    assert f"not written by `rnnkit {task}`" in line


def test_a_model_with_a_damaged_window_is_named(tmp_path, forecast_model):
    from rnnkit.saving import load_model

    path, frame = forecast_model
    model = load_model(path, compile=False)
    model.metadata = {**model.metadata, "window": "three"}
    model.save(tmp_path / "m.rnnkit")
    frame.to_csv(tmp_path / "recent.csv", index=False)
    line = _error(_run("predict", tmp_path / "m.rnnkit", "--csv", tmp_path / "recent.csv"))
    assert "is damaged: its metadata.json has window='three'" in line


def test_generate_without_a_default_seed_asks_for_one(tmp_path):
    path = _model_with(tmp_path, {"task": "generate", "vocabulary": list("ab")})
    line = _error(_run("generate", path))
    assert "has no default seed" in line and '--seed "..."' in line


@pytest.mark.parametrize("bad, found", [("soon", "'soon'"), ("", "nan")])
def test_predict_names_a_row_without_a_date(tmp_path, forecast_model, bad, found):
    path, frame = forecast_model
    frame = frame.astype({"date": str})
    frame.loc[58, "date"] = bad  # an empty cell used to give a NaT date and a NaN forecast
    frame.to_csv(tmp_path / "recent.csv", index=False)
    line = _error(_run("predict", path, "--csv", tmp_path / "recent.csv"))
    assert f"Column 'date' of '{tmp_path / 'recent.csv'}' holds {found} in row 58" in line
