"""`rnnkit generate`: a character-level language model, its perplexity, sampling and errors."""

from __future__ import annotations

import doctest
import json
import math
import re
from collections import Counter

import numpy as np
import pytest
from click.testing import CliRunner

from rnnkit.cli import main
from rnnkit.datasets import python_docs
from rnnkit.generate import GenerateSettings, build_model, read_text, sample
from rnnkit.saving import load_model

SEQ = 20
FAST = ["--units", 16, "--epochs", 1, "--seq-length", SEQ, "--batch-size", 16, "--length", 30]


def _run(*args, expect_ok=True):
    result = CliRunner().invoke(main, list(map(str, args)))
    if expect_ok:
        assert result.exit_code == 0, result.output
    return result


def _log_softmax(logits):
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny model trained by the command on 6,000 characters of the Python docs."""
    folder = tmp_path_factory.mktemp("generate")
    text = python_docs()[:6000]
    (folder / "docs.txt").write_text(text, encoding="utf-8")
    out = folder / "out"
    result = _run("generate", "--text", folder / "docs.txt", *FAST, "--out", out)
    model = load_model(out / "model.rnnkit", compile=False)
    return text, model, out / "model.rnnkit", result.output


# ---------------------------------------------------------------------------- training


def test_training_writes_the_model_and_reports_each_epoch(trained):
    text, model, path, output = trained
    meta = model.metadata
    assert meta["task"] == "generate" and meta["seq_length"] == SEQ
    assert meta["vocabulary"] == sorted(set(text))
    assert len(meta["val_perplexity"]) == 1
    assert "Total params" in output  # the summary
    assert "Epoch 1: validation perplexity" in output
    assert "Unigram perplexity of the validation text" in output
    assert "Sample (the seed in bold):" in output and "Wrote " in output
    scores = json.loads((path.parent / "metrics.json").read_text())
    assert scores["val_perplexity"] == meta["val_perplexity"]


def test_reported_perplexities_equal_cross_entropy_computed_by_hand(trained):
    text, model, _, output = trained
    held_out = int(len(text) * 0.1)  # the last 10% is validation
    train, validation = text[:-held_out], text[-held_out:]
    index = {c: i for i, c in enumerate(sorted(set(text)))}
    ids = np.array([index[c] for c in validation])
    n = (len(ids) - 1) // SEQ  # non-overlapping windows; y is x one character on
    x = np.stack([ids[i * SEQ : (i + 1) * SEQ] for i in range(n)])
    y = np.stack([ids[i * SEQ + 1 : (i + 1) * SEQ + 1] for i in range(n)])

    log_p = _log_softmax(model.predict(x))  # (n, SEQ, vocabulary)
    cross_entropy = -np.take_along_axis(log_p, y[..., None], axis=-1).mean()
    printed = float(re.search(r"Epoch 1: validation perplexity ([\d.]+)", output).group(1))
    assert printed == pytest.approx(math.exp(cross_entropy), abs=6e-4)
    assert model.metadata["val_perplexity"][0] == pytest.approx(math.exp(cross_entropy), 1e-5)

    counts = Counter(train)  # add-one smoothing over the whole vocabulary
    total = len(train) + len(index)
    targets = [validation[i * SEQ + 1 + t] for i in range(n) for t in range(SEQ)]
    unigram = math.exp(-np.mean([math.log((counts[c] + 1) / total) for c in targets]))
    printed = float(re.search(r"Unigram perplexity of the validation text: ([\d.]+)", output)[1])
    assert printed == pytest.approx(unigram, abs=6e-4)


def test_default_text_beats_the_unigram_perplexity_in_one_short_epoch(tmp_path):
    """The issue's bar, on a real text: Lady Susan, or the Python docs without music21.

    About 10 s on one thread: the default model (256 LSTM units) for one epoch.
    """
    out = tmp_path / "out"
    result = _run("generate", "--epochs", 1, "--length", 20, "--out", out)
    model = load_model(out / "model.rnnkit", compile=False)
    meta = model.metadata
    assert meta["val_perplexity"][0] < 0.6 * meta["unigram_perplexity"], meta
    assert "below the unigram perplexity" in result.output
    assert "Lady Susan" in meta["text"] or "Python Language Reference" in meta["text"]


def test_default_text_falls_back_to_the_python_docs_and_says_so(monkeypatch):
    import rnnkit.datasets

    def missing():
        raise ModuleNotFoundError("music21 is not installed")

    monkeypatch.setattr(rnnkit.datasets, "lady_susan", missing)
    text, source, note = read_text(None)
    assert text == python_docs()
    assert "Python Language Reference" in source and "Lady Susan" in note


# ---------------------------------------------------------------------------- sampling


def test_sample_repeats_with_the_same_rng_seed(trained):
    _, model, _, _ = trained
    first = sample(model, "The ", length=60, temperature=1.0, rng_seed=3)
    assert len(first) == 60 and set(first) <= set(model.metadata["vocabulary"])
    assert sample(model, "The ", length=60, temperature=1.0, rng_seed=3) == first
    assert sample(model, "The ", length=60, temperature=1.0, rng_seed=4) != first


def _greedy_by_predict(model, seed, length):
    """The most likely next character each time, from `model.predict` on the whole text so far."""
    vocabulary = model.metadata["vocabulary"]
    ids = [vocabulary.index(c) for c in seed]
    for _ in range(length):
        logits = model.predict(np.array([ids]))[0, -1]
        ids.append(int(np.argmax(logits)))
    return "".join(vocabulary[i] for i in ids[len(seed) :])


def test_low_temperature_gives_the_most_likely_characters(trained):
    _, model, _, _ = trained
    got = sample(model, "The with ", length=25, temperature=1e-4, rng_seed=0)
    assert got == _greedy_by_predict(model, "The with ", 25)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stepping_the_cell_equals_the_fused_layer(cell):
    """Wide enough that `predict` runs torch's fused kernel, while `sample` steps the cell."""
    vocabulary = list("abcdefgh ")
    model = build_model(GenerateSettings(cell=cell, units=256), len(vocabulary))
    rng = np.random.default_rng(0)  # weights that set the logits well apart: no near-ties
    model.set_weights(
        [rng.normal(0, 1 / math.sqrt(w.shape[0]), w.shape) for w in model.get_weights()]
    )
    model.metadata = {"task": "generate", "vocabulary": vocabulary}
    got = sample(model, "a bad cab", length=12, temperature=1e-4)
    assert got == _greedy_by_predict(model, "a bad cab", 12)


def test_sample_errors(trained):
    _, model, _, _ = trained
    with pytest.raises(ValueError, match=r"never saw: 'é', '☃'\. It knows only the \d+ char"):
        sample(model, "é☃The", length=5)
    with pytest.raises(ValueError, match="temperature must be > 0; got 0"):
        sample(model, "The", length=5, temperature=0)
    with pytest.raises(ValueError, match="temperature must be > 0; got -1"):
        sample(model, "The", length=5, temperature=-1)
    with pytest.raises(ValueError, match="length must be a positive integer"):
        sample(model, "The", length=0)
    with pytest.raises(ValueError, match="non-empty string"):
        sample(model, "", length=5)
    plain = build_model(GenerateSettings(units=4), 3)
    with pytest.raises(ValueError, match="was not saved by `rnnkit generate`"):
        sample(plain, "a", length=5)


def test_docstring_examples_run():
    import rnnkit.generate

    assert doctest.testmod(rnnkit.generate).failed == 0


def test_command_samples_from_a_saved_model(trained):
    _, _, path, _ = trained
    args = ["generate", path, "--seed", "The ", "--length", 40, "--temperature", 0.5]
    first = _run(*args, "--random-seed", 1).output
    assert first == _run(*args, "--random-seed", 1).output
    assert "Sample (the seed in bold):" in first and "The " in first


# ---------------------------------------------------------------------------- bad input


def _fails(tmp_path, *args, match):
    out = tmp_path / "never"
    result = _run(*args, "--out", out, expect_ok=False)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert match in result.output, result.output
    assert not out.exists()  # nothing written
    return result


def test_empty_binary_missing_and_short_texts(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n\n")
    _fails(tmp_path, "generate", "--text", tmp_path / "empty.txt", *FAST, match="holds no text")
    (tmp_path / "bin.txt").write_bytes(b"\x00\xff\xfe data \x00" * 50)
    _fails(tmp_path, "generate", "--text", tmp_path / "bin.txt", *FAST, match="is a binary file")
    _fails(tmp_path, "generate", "--text", tmp_path / "none.txt", *FAST, match="No such text file")
    (tmp_path / "short.txt").write_text("To be, or not to be: that is the question.")
    _fails(
        tmp_path,
        "generate",
        "--text",
        tmp_path / "short.txt",
        *FAST,
        match="too short: the training and the validation part",
    )
    (tmp_path / "same.txt").write_text("a" * 1000)
    _fails(tmp_path, "generate", "--text", tmp_path / "same.txt", *FAST, match="one character")


def test_unknown_seed_characters_fail_before_training(tmp_path):
    (tmp_path / "t.txt").write_text(python_docs()[:3000], encoding="utf-8")
    _fails(
        tmp_path,
        "generate",
        "--text",
        tmp_path / "t.txt",
        *FAST,
        "--seed",
        "To be ☃",
        match="never saw: '☃'",
    )


def test_unknown_seed_characters_when_sampling(trained, tmp_path):
    _, _, path, _ = trained
    result = _run("generate", path, "--seed", "To be ☃", expect_ok=False)
    assert result.exit_code != 0 and "never saw: '☃'" in result.output
    assert "Remove or replace them in the seed" in result.output


def test_a_model_that_is_not_a_generate_model(tmp_path):
    from rnnkit import Sequential
    from rnnkit.layers import Dense

    plain = tmp_path / "plain.rnnkit"
    Sequential([Dense(1, input_shape=(2,))]).save(plain)
    result = _run("generate", plain, "--seed", "a", expect_ok=False)
    assert result.exit_code != 0
    assert "was not saved by `rnnkit generate`" in result.output
    assert "rnnkit generate --text FILE" in result.output


def test_model_with_training_options(trained, tmp_path):
    _, _, path, _ = trained
    (tmp_path / "t.txt").write_text("some text " * 100)
    result = _run("generate", path, "--text", tmp_path / "t.txt", expect_ok=False)
    assert result.exit_code != 0 and "either MODEL" in result.output
    result = _run("generate", path, "--epochs", 3, "--units", 8, expect_ok=False)
    assert result.exit_code != 0
    assert "--units, --epochs are for training only" in result.output


def test_bad_temperature_and_length_are_refused(trained):
    _, _, path, _ = trained
    for option, value in (("--temperature", 0), ("--length", 0)):
        result = _run("generate", path, option, value, expect_ok=False)
        assert result.exit_code != 0 and option in result.output


def test_predict_points_a_language_model_to_generate(tmp_path):
    from click.testing import CliRunner

    from rnnkit import Sequential
    from rnnkit.cli import main
    from rnnkit.layers import Dense

    model = Sequential([Dense(1, input_shape=(2,))])
    model.metadata = {"task": "generate"}
    model.save(tmp_path / "m.rnnkit")
    result = CliRunner().invoke(main, ["predict", str(tmp_path / "m.rnnkit"), "--text", "To be"])
    assert result.exit_code != 0
    assert "rnnkit generate" in result.output and "--seed" in result.output
