"""`rnnkit tag` and `rnnkit predict` on a tagger: scores, masking, prediction, bad input."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest
from click.testing import CliRunner

from rnnkit.cli import main
from rnnkit.datasets import tagging_sentences
from rnnkit.explain import memory
from rnnkit.saving import load_model
from rnnkit.tag import (
    TagSettings,
    build_model,
    encode,
    evaluate_tagger,
    split_sentences,
    tag_scores,
    tag_texts,
    tokenize,
    train_tagger,
)
from rnnkit.utils import set_random_seed

SMALL = TagSettings(units=8, embedding_dim=8, epochs=3, batch_size=16)
FAST = ["--units", 8, "--embedding-dim", 8, "--epochs", 2]


def _run(*args, expect_ok=True):
    result = CliRunner().invoke(main, list(map(str, args)))
    if expect_ok:
        assert result.exit_code == 0, result.output
    return result


def _write_two_columns(path, sentences):
    path.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(*s)) for s in sentences))
    return path


# ----------------------------------------------------------------------- the default run


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tag")
    result = _run("tag", "--out", out)
    return out, result.output


def test_default_run_learns_the_synthetic_tags_and_the_words_that_need_context(default_run):
    out, output = default_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["micro_f1"] > 0.95 and metrics["macro_f1"] > 0.95, metrics
    hard = metrics["ambiguous"]
    assert hard["test_tokens"] > 200
    # Context is what the tagger adds: a word's most frequent tag is right ~70% of the time.
    assert hard["accuracy"] > hard["baseline_accuracy"] + 0.2, hard
    assert metrics["accuracy"] > metrics["baseline"]["accuracy"]
    assert "SYNTHETIC" in output  # the user is told the data is not real
    assert "Total params" in output  # the summary
    for heading in ("precision", "recall", "F1", "macro average", "micro average", "VERB"):
        assert heading in output
    assert f"Token accuracy: {metrics['accuracy']:.4f}" in output
    steps = metrics["memory_horizon"]["steps"]
    assert f"The last token's tag depends on the last {steps} token" in output


def test_default_model_is_saved_with_its_vocabularies(default_run):
    out, _ = default_run
    model = load_model(out / "model.rnnkit", compile=False)
    meta = model.metadata
    assert meta["task"] == "tag" and meta["lowercase"] is True
    assert meta["words"][:2] == ["<pad>", "<unknown>"] and meta["tags"][0] == "<pad>"
    assert {"NOUN", "VERB", "AUX", "DET"} <= set(meta["tags"])
    assert model.layers[0].mask_zero


def test_predict_prints_each_token_with_its_tag(default_run, tmp_path):
    out, _ = default_run
    result = _run(
        "predict",
        out / "model.rnnkit",
        "--text",
        "the old man can fly",
        "--text",
        "They have a can.",
        "--text",
        "The zorblax can fly!",
        "--output",
        tmp_path / "tags.csv",
    )
    assert "the/DET old/ADJ man/NOUN can/AUX fly/VERB" in result.output
    assert "They/PRON have/VERB a/DET can/NOUN ./PUNCT" in result.output
    # An unknown word is tagged from its context, and named as unknown.
    assert "zorblax/NOUN can/AUX fly/VERB !/PUNCT" in result.output
    assert "not seen in training, tagged from context: zorblax" in result.output
    rows = (tmp_path / "tags.csv").read_text().splitlines()
    assert rows[0] == "text,token,tag" and rows[1] == "1,the,DET" and len(rows) == 1 + 5 + 5 + 5


def test_predict_without_text_says_what_to_give(default_run):
    out, _ = default_run
    result = _run("predict", out / "model.rnnkit", expect_ok=False)
    assert result.exit_code != 0
    assert 'is a tagging model: give the text with --text "..."' in result.output


# ------------------------------------------------------------------- the command, small


def test_cli_trains_on_a_two_column_file(tmp_path):
    path = _write_two_columns(tmp_path / "train.txt", tagging_sentences(120, seed=3))
    out = tmp_path / "out"
    result = _run("tag", "--train", path, *FAST, "--cell", "gru", "--unidirectional", "--out", out)
    assert f"Data: {path}" in result.output and "SYNTHETIC" not in result.output
    assert "precision" in result.output and "micro average" in result.output
    model = load_model(out / "model.rnnkit", compile=False)
    assert model.metadata["cell"] == "gru" and model.metadata["bidirectional"] is False
    assert type(model.layers[1]).__name__ == "GRU"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["sentences"] == {"train": 96, "validation": 12, "test": 12}


def test_cli_reads_the_chosen_conllu_column(tmp_path):
    lines = []
    for tokens, tags in tagging_sentences(40, seed=4):
        for i, (word, tag) in enumerate(zip(tokens, tags), start=1):
            lines.append(f"{i}\t{word}\t{word.lower()}\t{tag}\t{tag.lower()}\t_\t0\tdep\t_\t_")
        lines.append("")
    path = tmp_path / "train.conllu"
    path.write_text("# a comment\n" + "\n".join(lines))
    out = tmp_path / "out"
    _run("tag", "--train", path, "--tag-column", "xpos", *FAST, "--out", out)
    tags = load_model(out / "model.rnnkit", compile=False).metadata["tags"]
    assert "noun" in tags and "NOUN" not in tags


# ------------------------------------------------------------------------ scores, by hand


def test_tag_scores_by_hand():
    # truth A A B B C, predicted A B B B A.
    # A: tp 1, fp 1, fn 1 -> P 1/2, R 1/2, F1 1/2.  B: tp 2, fp 1, fn 0 -> P 2/3, R 1, F1 4/5.
    # C: tp 0, fp 0, fn 1 -> 0.  D: never seen, never predicted -> not listed.
    scores = tag_scores([1, 1, 2, 2, 3], [1, 2, 2, 2, 1], ["<pad>", "A", "B", "C", "D"])
    assert scores["per_tag"]["A"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert scores["per_tag"]["B"]["precision"] == pytest.approx(2 / 3)
    assert scores["per_tag"]["B"]["f1"] == pytest.approx(0.8)
    assert scores["per_tag"]["C"]["f1"] == 0 and "D" not in scores["per_tag"]
    assert scores["macro_f1"] == pytest.approx((0.5 + 0.8 + 0) / 3)
    assert scores["micro_f1"] == pytest.approx(3 / 5) == scores["accuracy"]


@pytest.fixture(scope="module")
def small_run():
    return train_tagger(tagging_sentences(300, seed=1), SMALL)


def test_per_tag_scores_match_a_confusion_count_from_predict(small_run):
    model = small_run.model
    meta = model.metadata
    held_out = tagging_sentences(40, seed=7)
    metrics = evaluate_tagger(model, held_out, tagging_sentences(300, seed=1))

    # Independently: ids by hand, one padded batch, argmax over the real tags (not id 0).
    word_id = {w: i for i, w in enumerate(meta["words"])}
    longest = max(len(tokens) for tokens, _ in held_out)
    x = np.zeros((len(held_out), longest), dtype=np.int64)
    for row, (tokens, _) in enumerate(held_out):
        x[row, : len(tokens)] = [word_id.get(w.lower(), 1) for w in tokens]
    probabilities = model.predict(x)  # (sentences, steps, tags)
    pairs = collections.Counter()  # (true tag, predicted tag) -> tokens
    for row, (_, tags) in enumerate(held_out):
        for step, tag in enumerate(tags):
            pairs[tag, meta["tags"][1 + int(np.argmax(probabilities[row, step, 1:]))]] += 1
    assert metrics["test_tokens"] == sum(pairs.values())
    listed = {t for pair in pairs for t in pair}
    assert set(metrics["per_tag"]) == listed
    f1s = []
    for tag in listed:
        tp = pairs[tag, tag]
        predicted = sum(n for (_, p), n in pairs.items() if p == tag)
        support = sum(n for (t, _), n in pairs.items() if t == tag)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
        f1s.append(f1)
        got = metrics["per_tag"][tag]
        assert got["support"] == support
        assert got["precision"] == pytest.approx(precision)
        assert got["recall"] == pytest.approx(recall)
        assert got["f1"] == pytest.approx(f1)
    correct = sum(pairs[t, t] for t in listed)
    assert metrics["accuracy"] == pytest.approx(correct / sum(pairs.values()))
    assert metrics["micro_f1"] == pytest.approx(metrics["accuracy"])
    assert metrics["macro_f1"] == pytest.approx(np.mean(f1s))


def test_memory_horizon_is_measured_on_the_test_sentences(small_run):
    """The memory horizon in the metrics is `rnnkit.explain.memory` of the tagger on the test
    sentences, at each one's last token (padding has no influence)."""
    sentences = tagging_sentences(300, seed=1)
    _, _, test = split_sentences(len(sentences), 0.1, 0.1, SMALL.seed)
    meta = small_run.model.metadata
    x, _ = encode([sentences[i] for i in test], meta["words"], meta["tags"], True, 100)
    steps = memory(small_run.model, x).steps
    assert small_run.metrics["memory_horizon"] == {
        "steps": steps,
        "threshold": 0.01,
        "timesteps": x.shape[1],
        "sequences": 30,
    }


def test_vocabulary_comes_from_the_training_sentences_only(small_run):
    sentences = tagging_sentences(300, seed=1)
    train, validation, test = split_sentences(300, 0.1, 0.1, seed=0)
    counts = collections.Counter(w.lower() for i in train for w in sentences[i][0])
    assert small_run.words[2:] == [w for w, n in counts.most_common() if n >= 2]
    unseen = sum(w.lower() not in small_run.words for i in test for w in sentences[i][0])
    assert small_run.metrics["unknown_tokens"] == unseen


# -------------------------------------------------------------------------------- masking


def _padded_batch():
    # Three sentences of 5, 2 and 3 words, padded after their ends to 5 steps.
    x = np.array([[2, 3, 4, 5, 6], [7, 2, 0, 0, 0], [3, 3, 8, 0, 0]])
    y = np.array([[1, 2, 3, 1, 2], [2, 3, 0, 0, 0], [1, 1, 3, 0, 0]])
    return x, y, x != 0


def _tiny_tagger(seed=0):
    set_random_seed(seed)
    model = build_model(TagSettings(units=4, embedding_dim=3), n_words=9, n_tags=4)
    # Weights from N(0, 1): probabilities far from uniform, so every position's loss differs.
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


def test_padding_adds_nothing_to_the_loss():
    model = _tiny_tagger()
    x, y, real = _padded_batch()
    p = model.predict(x)  # (3, 5, 4)
    nll = -np.log(np.take_along_axis(p, y[..., None], axis=-1)[..., 0])  # (3, 5)
    by_hand = nll[real].mean()  # over the 10 real tokens, not the 15 steps
    assert abs(nll.mean() - by_hand) > 1e-3  # so the check below can tell the two apart
    loss = model.evaluate(x, y, batch_size=3, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(by_hand, rel=1e-5)
    for fill in (1, 3):
        other = np.where(real, y, fill)  # other labels on the padded steps
        again = model.evaluate(x, other, batch_size=3, verbose=0, return_dict=True)["loss"]
        assert again == pytest.approx(loss, rel=1e-6)


def test_padding_labels_change_no_weight_in_training():
    x, y, real = _padded_batch()
    weights = []
    for fill in (0, 3):
        model = _tiny_tagger(seed=1)
        model.fit(x, np.where(real, y, fill), epochs=3, batch_size=3, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_accuracy_counts_real_tokens_only():
    model = _tiny_tagger()
    x, y, real = _padded_batch()
    guess = model.predict(x).argmax(-1)  # (3, 5)
    by_hand = (guess == y)[real].mean()
    for padding in (guess, (guess + 1) % 4):  # padded steps all "right", then all "wrong"
        labels = np.where(real, y, padding)
        logs = model.evaluate(x, labels, batch_size=3, verbose=0, return_dict=True)
        assert logs["accuracy"] == pytest.approx(by_hand)


# ------------------------------------------------------------------------------ predicting


def test_tag_texts_tokenizes_like_a_treebank_and_keeps_every_token_of_long_texts():
    assert tokenize("Don't run, Anna!") == ["Don't", "run", ",", "Anna", "!"]
    result = train_tagger(tagging_sentences(80, seed=2), TagSettings(units=4, epochs=1, max_len=4))
    long = "the old man can fly and the big dog runs fast ."
    [pairs] = tag_texts(result.model, [long])  # 12 tokens: pieces of 4, 4 and 4
    assert [token for token, _ in pairs] == long.split()
    # Each piece is tagged as if it were a text by itself.
    pieces = [" ".join(long.split()[i : i + 4]) for i in (0, 4, 8)]
    assert [pair for piece in tag_texts(result.model, pieces) for pair in piece] == pairs
    assert tag_texts(result.model, [["a", "qwzx"]])[0][1][0] == "qwzx"  # tokens, one unknown
    with pytest.raises(ValueError, match=r"Text 2 \(' '\) has no words to tag"):
        tag_texts(result.model, ["the dog", " "])


def test_tag_texts_refuses_a_model_of_another_task():
    model = _tiny_tagger()
    model.metadata = {"task": "forecast"}
    with pytest.raises(ValueError, match="was not saved by `rnnkit tag`"):
        tag_texts(model, ["the dog"])


# ----------------------------------------------------------------------------- bad input


def _fails(tmp_path, *args, match):
    out = tmp_path / "never"
    result = _run("tag", *args, *FAST, "--out", out, expect_ok=False)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert match in result.output, result.output
    assert not out.exists()  # nothing half-written
    return result


def test_empty_file(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n# only a comment\n")
    _fails(tmp_path, "--train", tmp_path / "empty.txt", match="holds no tokens")


def test_malformed_line(tmp_path):
    (tmp_path / "bad.txt").write_text("The DET\ndog NOUN extra\n")
    _fails(tmp_path, "--train", tmp_path / "bad.txt", match="Line 2 of")


def test_missing_file(tmp_path):
    _fails(tmp_path, "--train", tmp_path / "nowhere.txt", match="nowhere.txt")


def test_too_few_sentences_to_split(tmp_path):
    path = _write_two_columns(tmp_path / "few.txt", tagging_sentences(4))
    _fails(tmp_path, "--train", path, match="Too few sentences to split: 4 sentence(s)")
    result = _fails(tmp_path, "--train", path, match="Give at least 10 sentences")
    assert "0 for the test" in result.output


def test_a_single_tag(tmp_path):
    sentences = [(tokens, ["NOUN"] * len(tokens)) for tokens, _ in tagging_sentences(30)]
    path = _write_two_columns(tmp_path / "one.txt", sentences)
    _fails(tmp_path, "--train", path, match="Every token has the tag 'NOUN'")


def test_tag_column_of_a_two_column_file(tmp_path):
    path = _write_two_columns(tmp_path / "two.txt", tagging_sentences(30))
    _fails(tmp_path, "--train", path, "--tag-column", "xpos", match="has no 'xpos' column")


def test_settings_and_sentences_are_checked():
    with pytest.raises(ValueError, match="cell must be one of simple_rnn, lstm, gru; got 'rnn'"):
        TagSettings(cell="rnn").check()
    with pytest.raises(ValueError, match="must leave sentences to train on"):
        TagSettings(validation_split=0.5, test_split=0.5).check()
    with pytest.raises(ValueError, match="Sentence 2 has 2 tokens and 1 tags"):
        train_tagger([(["a"], ["X"]), (["a", "b"], ["X"])], SMALL)
