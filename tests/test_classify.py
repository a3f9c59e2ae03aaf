"""`rnnkit classify` and `rnnkit predict --text`: a many-to-one text model end to end."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from rnnkit.classify import ClassifySettings, classify_texts, stratified_split, train_classifier
from rnnkit.cli import main
from rnnkit.data import pad_sequences, tokenizer_from_json
from rnnkit.explain import memory
from rnnkit.saving import load_model

GOOD = ["great", "amazing", "lovely", "excellent", "wonderful", "superb"]
BAD = ["awful", "terrible", "boring", "dreadful", "horrible", "poor"]
FILLER = ["the", "film", "was", "plot", "acting", "really", "quite", "this", "product", "is"]


def _reviews(count=240, seed=0):
    """Short texts whose label is carried by one sentiment word among filler words."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(count):
        positive = i % 2 == 0
        words = list(rng.choice(FILLER, size=rng.integers(3, 8)))
        words.insert(int(rng.integers(0, len(words) + 1)), rng.choice(GOOD if positive else BAD))
        texts.append(" ".join(words))
        labels.append("pos" if positive else "neg")
    return texts, labels


def _run(*args, expect_ok=True):
    result = CliRunner().invoke(main, list(map(str, args)))
    if expect_ok:
        assert result.exit_code == 0, result.output
    return result


FAST = ["--epochs", 30, "--units", 8, "--embedding-dim", 8, "--learning-rate", 0.02]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("classify")
    texts, labels = _reviews()
    pd.DataFrame({"review": texts, "sentiment": labels}).to_csv(folder / "r.csv", index=False)
    result = _run(
        "classify",
        "--csv",
        folder / "r.csv",
        "--text",
        "review",
        "--label",
        "sentiment",
        *FAST,
        "--out",
        folder / "out",
    )
    return folder, result.output


def test_cli_trains_reports_and_saves(trained):
    folder, output = trained
    metrics = json.loads((folder / "out" / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.9 > metrics["majority_accuracy"]
    assert "Confusion matrix" in output and "Total params" in output
    assert f"Accuracy {metrics['accuracy']:.1%}" in output


def test_reported_scores_match_the_saved_models_predictions(trained):
    folder, _ = trained
    metrics = json.loads((folder / "out" / "metrics.json").read_text())
    texts, labels = _reviews()
    ids = np.array([["neg", "pos"].index(label) for label in labels])
    _, _, test = stratified_split(ids, 0.1, 0.2, seed=0)
    model = load_model(folder / "out" / "model.rnnkit", compile=False)
    table = classify_texts(model, [texts[i] for i in test])
    predicted = table["label"].to_numpy()
    truth = np.array(labels)[test]
    assert metrics["accuracy"] == pytest.approx(np.mean(predicted == truth))
    rows = metrics["confusion"]["rows_true_columns_predicted"]
    for i, true in enumerate(["neg", "pos"]):
        for j, guess in enumerate(["neg", "pos"]):
            assert rows[i][j] == np.sum((truth == true) & (predicted == guess))
    hits = np.sum((truth == "pos") & (predicted == "pos"))
    assert metrics["per_label"]["pos"]["precision"] == pytest.approx(
        hits / np.sum(predicted == "pos")
    )
    assert metrics["per_label"]["pos"]["recall"] == pytest.approx(hits / np.sum(truth == "pos"))


def test_memory_horizon_is_measured_on_the_test_texts(trained):
    """metrics.json's memory horizon is `rnnkit.explain.memory` of the saved model on the
    test texts, padded as the model reads them (padding has no influence)."""
    folder, output = trained
    record = json.loads((folder / "out" / "metrics.json").read_text())["memory_horizon"]
    texts, labels = _reviews()
    ids = np.array([["neg", "pos"].index(label) for label in labels])
    _, _, test = stratified_split(ids, 0.1, 0.2, seed=0)
    model = load_model(folder / "out" / "model.rnnkit", compile=False)
    tokenizer = tokenizer_from_json(json.dumps(model.metadata["tokenizer"]))
    sequences = tokenizer.texts_to_sequences([texts[i] for i in test])
    x = pad_sequences(sequences, maxlen=model.metadata["maxlen"], padding="post")
    steps = memory(model, x).steps
    assert record == {
        "steps": steps,
        "threshold": 0.01,
        "timesteps": model.metadata["maxlen"],
        "sequences": len(test),
    }
    assert f"The model's label depends on the last {steps} word" in output


def test_predict_prints_label_and_probability(trained):
    folder, _ = trained
    result = _run(
        "predict",
        folder / "out" / "model.rnnkit",
        "--text",
        "the film was amazing",
        "--text",
        "this product is awful",
    )
    lines = [line for line in result.output.splitlines() if "film" in line or "awful" in line]
    assert "pos" in lines[0] and "neg" in lines[1]
    model = load_model(folder / "out" / "model.rnnkit", compile=False)
    table = classify_texts(model, ["the film was amazing", "zzz qqq"])
    assert 0.5 <= table["probability"].iloc[0] <= 1
    assert table["known_words"].tolist() == [4, 0]


def test_binary_labels_use_a_sigmoid_and_many_labels_a_softmax():
    texts, labels = _reviews(60)
    settings = ClassifySettings(epochs=1, units=4, embedding_dim=4)
    binary = train_classifier(texts, labels, settings).model
    assert binary.layers[-1].units == 1 and binary.loss.name == "binary_crossentropy"
    three = [label if i % 3 else "meh" for i, label in enumerate(labels)]
    multi = train_classifier(texts, three, settings).model
    assert multi.layers[-1].units == 3
    assert multi.loss.name == "sparse_categorical_crossentropy"


def test_tokenizer_learns_from_the_training_texts_only():
    texts, labels = _reviews(60)
    texts[0] = texts[0] + " zebra"  # in one text only
    settings = ClassifySettings(epochs=1, units=4, embedding_dim=4)
    ids = np.array([["neg", "pos"].index(label) for label in labels])
    train, _, test = stratified_split(ids, 0.1, 0.2, seed=0)
    result = train_classifier(texts, labels, settings)
    words = json.loads(result.model.metadata["tokenizer"]["config"]["word_index"])
    assert ("zebra" in words) == (0 in train)


def test_stratified_split_keeps_each_labels_share():
    labels = np.array([0] * 80 + [1] * 20)
    train, validation, test = stratified_split(labels, 0.1, 0.2, seed=1)
    assert sorted(np.concatenate([train, validation, test]).tolist()) == list(range(100))
    assert (labels[test] == 1).sum() == 4 and (labels[test] == 0).sum() == 16
    assert (labels[validation] == 1).sum() == 2


@pytest.mark.skipif(importlib.util.find_spec("music21") is None, reason="music21 not installed")
def test_default_real_corpus_beats_the_majority_class(tmp_path):
    result = _run("classify", "--epochs", 3, "--out", tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["majority_accuracy"] == pytest.approx(1 / 6, abs=0.01)
    assert metrics["accuracy"] > 0.85
    assert "public-domain books" in result.output


# ----------------------------------------------------------------------------- bad input


def _fails(tmp_path, *args, match):
    out = tmp_path / "never"
    result = _run(*args, "--out", out, expect_ok=False)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert match in result.output, result.output
    assert not out.exists()


def test_bad_input(tmp_path):
    texts, labels = _reviews(30)
    pd.DataFrame({"review": texts, "sentiment": labels}).to_csv(tmp_path / "r.csv", index=False)
    _fails(
        tmp_path,
        "classify",
        "--csv",
        tmp_path / "r.csv",
        "--text",
        "body",
        "--label",
        "sentiment",
        match="'body'",
    )
    _fails(tmp_path, "classify", "--csv", tmp_path / "r.csv", match="--csv needs --text")
    _fails(tmp_path, "classify", "--text", "review", match="give the file too")
    pd.DataFrame({"review": texts, "sentiment": "pos"}).to_csv(tmp_path / "one.csv", index=False)
    _fails(
        tmp_path,
        "classify",
        "--csv",
        tmp_path / "one.csv",
        "--text",
        "review",
        "--label",
        "sentiment",
        match="label",
    )
    rare = labels[:-1] + ["odd"]
    pd.DataFrame({"review": texts, "sentiment": rare}).to_csv(tmp_path / "rare.csv", index=False)
    _fails(
        tmp_path,
        "classify",
        "--csv",
        tmp_path / "rare.csv",
        "--text",
        "review",
        "--label",
        "sentiment",
        match="'odd' have fewer than 3 texts",
    )


def test_library_errors():
    settings = ClassifySettings(epochs=1)
    with pytest.raises(ValueError, match="Text 1 is empty"):
        train_classifier(["good film", "  ", "bad"], ["a", "b", "a"], settings)
    with pytest.raises(ValueError, match="3 texts but 2 labels"):
        train_classifier(["a", "b", "c"], ["x", "y"], settings)
    with pytest.raises(ValueError, match="cell must be one of"):
        ClassifySettings(cell="rnn").check()


def test_predict_errors(trained):
    folder, _ = trained
    result = _run("predict", folder / "out" / "model.rnnkit", expect_ok=False)
    assert result.exit_code != 0 and '--text "..."' in result.output
    result = _run("predict", folder / "out" / "model.rnnkit", "--text", " ", expect_ok=False)
    assert result.exit_code != 0 and "Text 0 is empty" in result.output
