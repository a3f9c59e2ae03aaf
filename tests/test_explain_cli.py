"""`rnnkit explain`: a saved model's report from its own input, the notes' worked examples and
the vanishing experiment, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import rnnkit.explain
from rnnkit import Sequential
from rnnkit.cli import main
from rnnkit.explain import memory
from rnnkit.explain.trace import recurrent_layers
from rnnkit.forecast import table_windows
from rnnkit.layers import Dense
from rnnkit.saving import load_model

REPORT_FILES = {
    "trace.png",
    "states.png",
    "memory.png",
    "gradient_flow.png",
    "report.html",
    "explain.json",
}


def _run(*args, expect_ok=True):
    result = CliRunner().invoke(main, list(map(str, args)))
    if expect_ok:
        assert result.exit_code == 0, result.output
    return result


def _error(*args) -> str:
    """The one line a failing command prints (exit status 1, no traceback)."""
    result = _run(*args, expect_ok=False)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def _series(path, rows=90):
    rng = np.random.default_rng(0)
    t = np.arange(rows)
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2020-01-01", periods=rows, freq="D"),
            "level": 10 + 5 * np.sin(t / 6) + rng.normal(0, 0.3, rows),
            "driver": np.cos(t / 6) + rng.normal(0, 0.1, rows),
        }
    )
    frame.to_csv(path, index=False)
    return frame


@pytest.fixture(scope="module")
def forecaster(tmp_path_factory):
    """A forecast model of two ensemble members (two GRUs) trained for two epochs, its CSV."""
    folder = tmp_path_factory.mktemp("explain")
    _series(folder / "s.csv")
    args = ["--epochs", 2, "--units", 4, "--window", 5, "--ensemble", 2]
    _run("forecast", "--csv", folder / "s.csv", "--target", "level", *args, "--out", folder)
    return folder / "model.rnnkit", folder / "s.csv"


@pytest.fixture(scope="module")
def text_models(tmp_path_factory):
    """Tiny classify, tag and generate models, saved."""
    from rnnkit.classify import ClassifySettings, train_classifier
    from rnnkit.datasets import tagging_sentences
    from rnnkit.generate import GenerateSettings, split_text, train_generate
    from rnnkit.tag import TagSettings, train_tagger

    folder = tmp_path_factory.mktemp("text-models")
    texts = [f"the {w} film" for w in ("good", "bad") * 15]
    labels = ["pos", "neg"] * 15
    classify = ClassifySettings(units=4, embedding_dim=4, epochs=1, cell="gru")
    tag = TagSettings(units=4, embedding_dim=4, epochs=1)
    generate = GenerateSettings(units=8, embedding_dim=4, seq_length=10, epochs=1)
    models = {
        "classify": train_classifier(texts, labels, classify).model,
        "tag": train_tagger(tagging_sentences(60), tag).model,
        "generate": train_generate(split_text("abcab " * 60, generate), generate).model,
    }
    paths = {}
    for task, model in models.items():
        paths[task] = folder / f"{task}.rnnkit"
        model.save(paths[task])
    return paths


# --------------------------------------------------------------------------- a model


def test_forecast_model_prints_the_horizon_and_a_trace_and_writes_the_report(forecaster, tmp_path):
    model_path, csv = forecaster
    result = _run("explain", model_path, "--csv", csv, "--out", tmp_path / "out")
    assert {p.name for p in (tmp_path / "out").iterdir()} == REPORT_FILES
    model = load_model(model_path, compile=False)
    x, y = table_windows(model, pd.read_csv(csv))
    steps = memory(model, x).steps  # the oracle: the library call on the same windows
    assert f"The model's output depends on the last {steps} step" in result.output
    assert "Trace of sample 85" in result.output  # the last of 90 - 5 + 1 windows
    first, second = (layer.name for layer in recurrent_layers(model))
    printed = result.output.split("Trace of sample")[1].split("gradient flow")[0]
    assert f"GRU '{first}'" in printed and second not in printed  # the first layer only
    assert "gradient flow (loss" in result.output
    numbers = json.loads((tmp_path / "out" / "explain.json").read_text())
    assert numbers["memory"]["steps"] == steps
    assert numbers["summary"]["memory_horizon"]["steps"] == steps
    assert numbers["summary"]["sequences"] == len(x) == 86 and len(y) == 85
    assert [layer["name"] for layer in numbers["gradient_flow"]["layers"]] == [first, second]


def test_a_model_of_the_default_forecast_reads_its_own_data_without_csv(tmp_path):
    """`rnnkit forecast` trains on Seattle's weather by default; explain reads it the same way."""
    args = ["--epochs", 1, "--units", 4, "--ensemble", 1, "--out", tmp_path / "weather"]
    _run("forecast", *args)
    result = _run("explain", tmp_path / "weather" / "model.rnnkit", "--out", tmp_path / "o")
    assert "Seattle weather" in result.output
    assert "depends on the last" in result.output
    assert (tmp_path / "o" / "report.html").exists()


def test_forecast_rows_of_one_window_have_no_targets(forecaster, tmp_path):
    model_path, csv = forecaster
    pd.read_csv(csv).iloc[-5:].to_csv(tmp_path / "recent.csv", index=False)
    result = _run("explain", model_path, "--csv", tmp_path / "recent.csv", "--out", tmp_path / "o")
    assert "no targets; give at least 6 rows" in result.output
    assert "gradient_flow.png" not in {p.name for p in (tmp_path / "o").iterdir()}
    numbers = json.loads((tmp_path / "o" / "explain.json").read_text())
    assert numbers["gradient_flow"] is None and "no targets" in numbers["gradient_flow_note"]


@pytest.mark.parametrize("task", ["classify", "tag", "generate"])
def test_text_models(text_models, task, tmp_path):
    text = "abcab abca" if task == "generate" else "The good film"
    result = _run("explain", text_models[task], "--text", text, "--out", tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == REPORT_FILES
    assert "depends on the last" in result.output and "Trace of sample 0" in result.output
    numbers = json.loads((tmp_path / "explain.json").read_text())
    # Padding is cut: "The good film" is 3 words (tag: tokens); the language model reads
    # every character but the last, which is only a target.
    assert numbers["summary"]["timesteps"] == (9 if task == "generate" else 3)
    assert numbers["gradient_flow"]["layers"]


def test_a_text_shorter_than_the_classifiers_length_is_padded_to_it(tmp_path):
    """`rnnkit classify` builds its model for a fixed length (maxlen): a shorter text is padded
    to it, not cut, and the padding is masked."""
    texts = [f"the {w} film was {w} indeed" for w in ("good", "bad") * 10]
    _write_lines(tmp_path / "t.csv", texts)
    _run(
        "classify",
        "--csv",
        tmp_path / "t.csv",
        "--text",
        "text",
        "--label",
        "label",
        "--epochs",
        1,
        "--units",
        4,
        "--out",
        tmp_path / "c",
    )
    result = _run(
        "explain", tmp_path / "c" / "model.rnnkit", "--text", "good", "--out", tmp_path / "o"
    )
    numbers = json.loads((tmp_path / "o" / "explain.json").read_text())
    steps = numbers["trace"]["layers"][0]["directions"][0]["steps"]
    assert len(steps) == numbers["summary"]["timesteps"] > 1
    assert [s["skipped"] for s in steps][:2] == [False, True]  # "good", then padding
    assert "depends on the last" in result.output


def _write_lines(path, texts):
    pd.DataFrame({"text": texts, "label": ["pos", "neg"] * (len(texts) // 2)}).to_csv(
        path, index=False
    )


def test_several_texts_are_averaged_and_the_first_traced(text_models, tmp_path):
    args = ["--text", "bad film", "--text", "the good film", "--out", tmp_path]
    result = _run("explain", text_models["classify"], *args)
    assert "2 text(s)" in result.output and "averaged over all 2" in result.output
    numbers = json.loads((tmp_path / "explain.json").read_text())
    assert numbers["summary"]["timesteps"] == 3 and numbers["memory"]["sequences"] == 2
    steps = numbers["trace"]["layers"][0]["directions"][0]["steps"]
    assert [s["skipped"] for s in steps] == [False, False, True]  # "bad film" + padding


# ------------------------------------------------------------------------- the notes


@pytest.fixture
def quick_vanishing(monkeypatch):
    """The experiment on two short lags, one cell and two seeds, in this process (starting
    worker processes would take longer than the training), so the test takes a second."""
    full = rnnkit.explain.vanishing

    def quick(progress=None, **settings):
        return full(
            progress, ks=(2, 3), cells=("SimpleRNN",), seeds=2, epochs=2, samples=64, workers=1
        )

    monkeypatch.setattr(rnnkit.explain, "vanishing", quick)


def test_no_arguments_shows_the_notes_worked_examples_then_the_experiment(
    quick_vanishing, tmp_path
):
    output = _run("explain", "--out", tmp_path).output
    # seed 003: yesterday 0.5 and today 1.0 through the ReLU unit, as the notes write it
    assert "h_1 = max(0, 0.5 × 1.8 + 0 × (−0.5) + 0.0) = 0.9" in output
    assert "h_2 = max(0, 1 × 1.8 + 0.9 × (−0.5) + 0.0) = 1.35" in output
    assert "tomorrow = h_2 × w3 + b2 = 1.35 × 1.1 + 0.0 = 1.485" in output
    assert "(the model's Dense layer: 1.485)" in output
    # seed 004: one tanh step of 4 units, each unit's sum written out
    x, h, W, U, b = _tanh_step_numbers()
    expected = np.tanh(x @ W + h @ U + b)
    for unit in range(4):
        line = next(l for l in output.splitlines() if l.strip().startswith(f"h_1[{unit}] = tanh("))
        assert float(line.rsplit("=", 1)[1].replace("−", "-")) == pytest.approx(
            expected[unit], abs=1e-4
        )
    # seed 002: the experiment's table and the notes' arithmetic
    assert "SimpleRNN k=2: error" in output and "2^50" in output and "0.5^50" in output
    written = {p.name for p in tmp_path.iterdir()}
    assert written == {
        "notes-003-unrolled.png",
        "notes-004-step.png",
        "vanishing.png",
        "vanishing.txt",
        "vanishing.json",
    }
    assert json.loads((tmp_path / "vanishing.json").read_text())["ks"] == [2, 3]


def _tanh_step_numbers():
    from rnnkit.demo import tanh_step

    layer, x, h_prev = tanh_step()
    W, U, b = (w.astype(np.float64) for w in layer.get_weights())
    return x[0, 0].astype(np.float64), h_prev[0].astype(np.float64), W, U, b


def test_vanishing_alone(quick_vanishing, tmp_path):
    output = _run("explain", "--vanishing", "--out", tmp_path).output
    assert "Seed 003" not in output and "Remember the input k steps back" in output
    assert {p.name for p in tmp_path.iterdir()} == {
        "vanishing.png",
        "vanishing.txt",
        "vanishing.json",
    }
    assert (tmp_path / "vanishing.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------- errors


def test_a_file_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.rnnkit").write_text("h_t = tanh(x_t W + h_{t-1} U + b)")
    assert "notes.rnnkit" in _error("explain", tmp_path / "notes.rnnkit", "--text", "hi")
    assert "No such file" in _error("explain", tmp_path / "missing.rnnkit", "--text", "hi")


def test_a_model_without_a_recurrent_layer(tmp_path):
    model = Sequential([Dense(1, input_shape=(3,))])
    model.save(tmp_path / "dense.rnnkit")
    line = _error("explain", tmp_path / "dense.rnnkit", "--csv", tmp_path / "x.csv")
    assert "has no recurrent layer" in line and "dense (Dense)" in line


def test_a_recurrent_model_no_command_wrote(tmp_path):
    from rnnkit.layers import GRU

    Sequential([GRU(2, input_shape=(4, 1))]).save(tmp_path / "own.rnnkit")
    line = _error("explain", tmp_path / "own.rnnkit", "--csv", tmp_path / "x.csv")
    assert "no task rnnkit explain knows" in line and "rnnkit.explain.report" in line


def test_csv_for_a_text_model_and_text_for_a_forecast_model(forecaster, text_models):
    model_path, csv = forecaster
    assert "reads text, not a table" in _error("explain", text_models["tag"], "--csv", csv)
    assert "not text" in _error("explain", model_path, "--text", "hello")
    assert "--csv FILE" in _error("explain", model_path)
    assert '--text "..."' in _error("explain", text_models["classify"])


def test_missing_columns(forecaster, tmp_path):
    model_path, csv = forecaster
    pd.read_csv(csv).drop(columns="driver").to_csv(tmp_path / "s.csv", index=False)
    assert "driver" in _error("explain", model_path, "--csv", tmp_path / "s.csv")


def test_too_few_rows(forecaster, tmp_path):
    model_path, csv = forecaster
    pd.read_csv(csv).iloc[:3].to_csv(tmp_path / "s.csv", index=False)
    assert "at least 5 rows" in _error("explain", model_path, "--csv", tmp_path / "s.csv")


def test_text_problems(text_models):
    assert "no words" in _error("explain", text_models["tag"], "--text", "  ")
    line = _error("explain", text_models["generate"], "--text", "abz")
    assert "'z'" in line and "It knows" in line
    assert "one --text" in _error("explain", text_models["generate"], "--text", "ab", "--text", "c")


def test_options_that_do_not_go_together(forecaster, tmp_path):
    model_path, csv = forecaster
    assert "run it alone" in _error("explain", model_path, "--vanishing")
    assert "name it first" in _error("explain", "--csv", csv)


def test_out_inside_a_file(forecaster, tmp_path):
    model_path, csv = forecaster
    (tmp_path / "taken").write_text("mine")
    line = _error("explain", model_path, "--csv", csv, "--out", tmp_path / "taken" / "out")
    assert "taken" in line
    assert (tmp_path / "taken").read_text() == "mine"
