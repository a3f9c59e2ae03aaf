"""pad_sequences against keras.utils.pad_sequences; Tokenizer by hand and against Keras.

Keras 3.15.1 still ships `keras.utils.pad_sequences`, and the classic Keras 2 Tokenizer in
`keras.src.legacy.preprocessing.text` (what `tf_keras.preprocessing.text` exports). Both
run live here. The hand-derived cases spell out the documented rules, so the expected
values do not come from either implementation.
"""

from __future__ import annotations

import doctest
import itertools
import json
import math

import numpy as np
import pytest

import rnnkit.data._text
from rnnkit.data import Tokenizer, pad_sequences, text_to_word_sequence, tokenizer_from_json


@pytest.fixture(scope="module")
def keras_pad():
    from keras.utils import pad_sequences as keras_pad_sequences

    return keras_pad_sequences


@pytest.fixture(scope="module")
def keras_text():
    from keras.src.legacy.preprocessing import text

    return text


def test_docstring_examples_run():
    assert doctest.testmod(rnnkit.data._text).failed == 0


# --------------------------------------------------------------------------- pad_sequences

CORPORA = {
    "ints": ([[1], [2, 3], [], [4, 5, 6, 7]], [("int32", 0.0), ("int32", -1), ("float32", 0.5)]),
    "floats": ([[1.5, 2.75], [3.25], [-4.0, 5.5, 6.0]], [("int32", 0.0), ("float32", -2.5)]),
    "all_empty": ([[], []], [("int32", 0.0)]),
    "arrays": ([np.array([1, 2, 3]), np.array([4]), (5, 6)], [("int32", 9), ("int64", 0.0)]),
    "matrix": (np.arange(12).reshape(3, 4), [("int32", 0.0), ("float32", 0.5)]),
    "vector_steps": ([[[1, 2], [3, 4]], [], [[5, 6]], [[7, 8], [9, 10], [11, 12]]], [("int32", 0)]),
    "strings": ([["a", "bb"], [], ["ccc", "d", "ee"]], [(object, "<pad>"), ("U3", "-")]),
}
GRID = [
    pytest.param(corpus, dtype, value, maxlen, padding, truncating, id=f"{name}-{dtype}-{value}-"
                 f"maxlen={maxlen}-pad={padding}-trunc={truncating}")
    for name, (corpus, options) in CORPORA.items()
    for dtype, value in options
    for maxlen in (None, 1, 2, 10)
    for padding, truncating in itertools.product(("pre", "post"), repeat=2)
]  # fmt: skip


@pytest.mark.parametrize(("sequences", "dtype", "value", "maxlen", "padding", "truncating"), GRID)
def test_pad_sequences_matches_keras(
    keras_pad, sequences, dtype, value, maxlen, padding, truncating
):
    arguments = dict(
        maxlen=maxlen, dtype=dtype, padding=padding, truncating=truncating, value=value
    )
    ours, theirs = pad_sequences(sequences, **arguments), keras_pad(sequences, **arguments)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    assert ours.tolist() == theirs.tolist()


def test_pad_sequences_maxlen_zero_with_post_truncating_matches_keras(keras_pad):
    ours = pad_sequences([[1], [2, 3]], maxlen=0, truncating="post")
    theirs = keras_pad([[1], [2, 3]], maxlen=0, truncating="post")
    assert ours.shape == theirs.shape == (2, 0)


def test_pad_sequences_defaults_pad_and_cut_at_the_front():
    # Keras' docstring example: pre-padding and pre-truncating by default, int32.
    padded = pad_sequences([[1], [2, 3], [4, 5, 6]], maxlen=2)
    assert padded.dtype == np.int32
    assert padded.tolist() == [[0, 1], [2, 3], [5, 6]]


# Deliberate differences, where Keras fails or loses data.


def test_pad_sequences_maxlen_zero_gives_empty_rows_for_pre_truncating_too(keras_pad):
    # Keras slices s[-0:] (the whole sequence) and fails to broadcast it into 0 columns.
    with pytest.raises(ValueError):
        keras_pad([[1], [2, 3]], maxlen=0)
    assert pad_sequences([[1], [2, 3]], maxlen=0).shape == (2, 0)


def test_pad_sequences_str_dtype_is_as_wide_as_the_longest_string(keras_pad):
    sequences = [["a", "bb"], ["ccc"]]
    # numpy's bare "str" is 1 character wide, so Keras cuts every string to its first letter.
    assert keras_pad(sequences, dtype="str", value="-").tolist() == [["a", "b"], ["-", "c"]]
    padded = pad_sequences(sequences, dtype="str", value="-")
    assert padded.tolist() == [["a", "bb"], ["-", "ccc"]] and padded.dtype == np.dtype("U3")


@pytest.mark.parametrize("dtype", ["object", np.object_])
def test_pad_sequences_takes_object_dtype_by_name_with_a_string_value(keras_pad, dtype):
    # Keras checks `dtype is not object`, so only the builtin passes with a string value.
    with pytest.raises(ValueError, match="not compatible"):
        keras_pad([["a"]], dtype=dtype, value="<pad>", maxlen=2)
    assert pad_sequences([["a"]], dtype=dtype, value="<pad>", maxlen=2).tolist() == [["<pad>", "a"]]


def test_pad_sequences_of_no_sequences():
    assert pad_sequences([], maxlen=3).shape == (0, 3)
    # Keras fails inside np.max([]); rnnkit says what to pass.
    with pytest.raises(ValueError, match="sequences is empty and maxlen is None.*maxlen=N"):
        pad_sequences([])


@pytest.mark.parametrize(
    ("sequences", "arguments", "error", "match"),
    [
        ([[1]], {"padding": "mid"}, ValueError, 'padding must be "pre" or "post"; got \'mid\''),
        ([[]], {"truncating": "end"}, ValueError, 'truncating must be "pre" or "post"'),
        ([[1]], {"maxlen": -1}, ValueError, "maxlen must be at least 0; got -1"),
        ([[1]], {"maxlen": 2.0}, TypeError, "maxlen must be None or an integer; got 2.0"),
        ([[1]], {"dtype": "nope"}, TypeError, "dtype 'nope' is not a numpy dtype"),
        ([["a"]], {"value": "-"}, ValueError, "value '-' is a string but dtype is int32.*object"),
        ([[1]], {"value": None, "maxlen": 2}, ValueError, "value None cannot be stored as int32"),
        ([[1]], {"value": 300, "dtype": "int8", "maxlen": 2}, ValueError, "cannot be stored"),
        ([["a", "b"]], {}, ValueError, r"sequences\[0\] cannot be stored as int32.*dtype=object"),
        ([[1, 2], 3], {}, TypeError, r"sequences\[1\] is 3. Wrap single values in a list"),
        ([[1], 3], {"maxlen": 2}, TypeError, r"sequences\[1\] is 3"),
        (["abc", "de"], {}, TypeError, r"sequences\[0\] is the string 'abc'.*texts_to_sequences"),
        ("abc", {}, TypeError, "must be a list \\(or array\\) of sequences; got str"),
        ((s for s in [[1]]), {}, TypeError, "got generator. Pass list\\(sequences\\)"),
        ([[[1, 2]], [[3, 4, 5]]], {}, ValueError, r"sequences\[1\] has steps of shape \(3,\)"),
    ],
)
def test_pad_sequences_errors(sequences, arguments, error, match):
    with pytest.raises(error, match=match):
        pad_sequences(sequences, **arguments)


# --------------------------------------------------------------------- text_to_word_sequence


def test_text_to_word_sequence_lowercases_and_splits_on_filters():
    # Documented: filters are all punctuation except "'", plus tab and newline.
    assert text_to_word_sequence("Hello,world!\tIt's  A\nTEST.") == [
        "hello",
        "world",
        "it's",
        "a",
        "test",
    ]
    assert text_to_word_sequence("A-b;C", filters="-", lower=False, split=";") == ["A", "b", "C"]


def test_text_to_word_sequence_matches_keras(keras_text):
    text = "The (quick) brown-fox; jumps\tover 'the' lazy dog's back...  Twice!"
    for arguments in [{}, {"lower": False}, {"filters": "()", "split": "o"}]:
        assert text_to_word_sequence(text, **arguments) == keras_text.text_to_word_sequence(
            text, **arguments
        )


def test_text_to_word_sequence_takes_a_string():
    with pytest.raises(TypeError, match="takes a string; got list"):
        text_to_word_sequence(["a b"])


# ------------------------------------------------------------------ Tokenizer, by hand

CORPUS = ["The cat sat on the mat.", "The dog sat!", "A cat and a dog"]
# Counts: the 3; cat 2, sat 2, dog 2, a 2; on 1, mat 1, and 1. Documented rule: ids by
# descending count from 1 (0 is reserved), ties in the order the words were first seen.
WORD_INDEX = {"the": 1, "cat": 2, "sat": 3, "dog": 4, "a": 5, "on": 6, "mat": 7, "and": 8}


def fitted(**arguments) -> Tokenizer:
    tokenizer = Tokenizer(**arguments)
    tokenizer.fit_on_texts(CORPUS)
    return tokenizer


def test_word_index_ranks_by_count_then_first_seen():
    tokenizer = fitted()
    assert tokenizer.word_index == WORD_INDEX
    assert tokenizer.index_word == {i: w for w, i in WORD_INDEX.items()}
    assert tokenizer.word_counts == {
        "the": 3, "cat": 2, "sat": 2, "on": 1, "mat": 1, "dog": 2, "a": 2, "and": 1
    }  # fmt: skip
    # word_docs: texts a word occurs in ("a" twice, but only in the third text).
    assert tokenizer.word_docs == {
        "the": 2, "cat": 2, "sat": 2, "on": 1, "mat": 1, "dog": 2, "a": 1, "and": 1
    }  # fmt: skip
    assert tokenizer.index_docs == {1: 2, 2: 2, 3: 2, 6: 1, 7: 1, 4: 2, 5: 1, 8: 1}
    assert tokenizer.document_count == 3


def test_texts_to_sequences_drops_unknown_words_without_oov_token():
    tokenizer = fitted()
    assert tokenizer.texts_to_sequences(["the cat and the bird", ""]) == [[1, 2, 8, 1], []]
    assert list(tokenizer.texts_to_sequences_generator(["Dog!"])) == [[4]]


def test_oov_token_is_id_1_and_replaces_unknown_words():
    tokenizer = fitted(oov_token="<unk>")
    assert tokenizer.word_index == {"<unk>": 1, **{w: i + 1 for w, i in WORD_INDEX.items()}}
    assert tokenizer.texts_to_sequences(["the cat and the bird"]) == [[2, 3, 9, 2, 1]]


def test_num_words_keeps_ids_below_it_in_outputs_only():
    # Documented: "Only the most common num_words-1 words will be kept."
    tokenizer = fitted(num_words=4)
    assert tokenizer.word_index == WORD_INDEX  # as in Keras, the index keeps every word
    assert tokenizer.texts_to_sequences(["The dog sat on the mat"]) == [[1, 3, 1]]
    with_oov = fitted(num_words=4, oov_token="<unk>")  # ids < 4: <unk>, the, cat
    assert with_oov.texts_to_sequences(["The dog sat on the mat"]) == [[2, 1, 1, 1, 2, 1]]


def test_sequences_to_texts_reads_ids_back():
    tokenizer = fitted()
    sequences = tokenizer.texts_to_sequences(CORPUS)
    assert tokenizer.sequences_to_texts(sequences) == [
        "the cat sat on the mat",
        "the dog sat",
        "a cat and a dog",
    ]
    # 0 (padding) and ids the tokenizer does not know are dropped ...
    assert tokenizer.sequences_to_texts([[1, 2, 3, 0, 99]]) == ["the cat sat"]
    assert list(tokenizer.sequences_to_texts_generator(np.array([[0, 0, 4]]))) == ["dog"]
    # ... or read as the oov token, as are ids cut by num_words.
    with_oov = fitted(num_words=4, oov_token="<unk>")
    assert with_oov.sequences_to_texts([[0, 4, 2]]) == ["<unk> <unk> the"]


def test_lower_false_keeps_case():
    tokenizer = Tokenizer(lower=False)
    tokenizer.fit_on_texts(["The cat", "the Cat the"])
    # the 2; then The, cat, Cat once each, in first-seen order.
    assert tokenizer.word_index == {"the": 1, "The": 2, "cat": 3, "Cat": 4}


def test_custom_filters_and_split():
    tokenizer = Tokenizer(filters="", split=",")
    tokenizer.fit_on_texts(["a,b,,c!", "B, c"])
    # Nothing filtered; empty pieces dropped; the space stays part of " c".
    assert tokenizer.word_index == {"b": 1, "a": 2, "c!": 3, " c": 4}


def test_char_level_counts_every_character_and_ignores_filters():
    # Keras: with char_level the text itself is the token sequence (lowercased), so
    # punctuation and spaces are tokens; sequences_to_texts joins with spaces.
    tokenizer = Tokenizer(char_level=True)
    tokenizer.fit_on_texts(["Abba!", "b a"])
    assert tokenizer.word_index == {"a": 1, "b": 2, "!": 3, " ": 4}
    assert tokenizer.texts_to_sequences(["Bad!"]) == [[2, 1, 3]]
    assert tokenizer.sequences_to_texts([[2, 1]]) == ["b a"]


def test_lists_of_tokens_are_taken_as_split_and_only_lowercased():
    tokenizer = Tokenizer()
    tokenizer.fit_on_texts([["Hello", "world!"], ["hello"]])
    assert tokenizer.word_index == {"hello": 1, "world!": 2}
    assert tokenizer.texts_to_sequences([["HELLO", "there"]]) == [[1]]


def test_analyzer_replaces_lower_filters_and_split():
    tokenizer = Tokenizer(analyzer=lambda text: text.split("-"))
    tokenizer.fit_on_texts(["A-b-A"])
    assert tokenizer.word_index == {"A": 1, "b": 2}


def test_fitting_again_adds_to_the_counts():
    tokenizer = Tokenizer()
    tokenizer.fit_on_texts(["b"])
    tokenizer.fit_on_texts(iter(["a a"]))  # any iterable of texts
    assert tokenizer.word_index == {"a": 1, "b": 2} and tokenizer.document_count == 2


def test_texts_to_matrix_modes():
    # Keras' definitions, with c the count of id j in a text of n ids, N texts fitted and
    # d_j the texts id j occurs in: binary 1, count c, freq c/n,
    # tfidf (1 + ln c) * ln(1 + N / (1 + d_j))  ("weighting scheme 2" on Wikipedia).
    tokenizer = fitted()
    texts = ["the cat the", "dog"]  # ids [1, 2, 1] and [4]; d_1 = d_2 = d_4 = 2, N = 3
    expected = {"binary": {(0, 1): 1, (0, 2): 1, (1, 4): 1}}
    expected["count"] = {(0, 1): 2, (0, 2): 1, (1, 4): 1}
    expected["freq"] = {(0, 1): 2 / 3, (0, 2): 1 / 3, (1, 4): 1.0}
    idf = math.log(1 + 3 / (1 + 2))
    expected["tfidf"] = {(0, 1): (1 + math.log(2)) * idf, (0, 2): idf, (1, 4): idf}
    for mode, cells in expected.items():
        matrix = tokenizer.texts_to_matrix(texts, mode=mode)
        want = np.zeros((2, len(WORD_INDEX) + 1))  # width: vocabulary + the reserved 0
        for cell, value in cells.items():
            want[cell] = value
        assert matrix.dtype == np.float64
        np.testing.assert_allclose(matrix, want, rtol=1e-12, err_msg=mode)


def test_sequences_to_matrix_ignores_ids_past_num_words_but_freq_counts_them():
    tokenizer = Tokenizer(num_words=3)
    tokenizer.fit_on_texts(CORPUS)
    matrix = tokenizer.sequences_to_matrix([[1, 1, 5, 2], []], mode="freq")
    np.testing.assert_allclose(matrix, [[0, 2 / 4, 1 / 4], [0, 0, 0]])


def test_fit_on_sequences_gives_tfidf_its_document_frequencies():
    tokenizer = Tokenizer(num_words=4)
    tokenizer.fit_on_sequences([[1, 2, 2], np.array([2, 3])])
    assert tokenizer.document_count == 2 and tokenizer.index_docs == {1: 1, 2: 2, 3: 1}
    matrix = tokenizer.sequences_to_matrix([[2]], mode="tfidf")
    np.testing.assert_allclose(matrix, [[0, 0, math.log(1 + 2 / 3), 0]])


# ----------------------------------------------------------------------------- saving


@pytest.mark.parametrize(
    "arguments",
    [{}, {"oov_token": "<unk>", "num_words": 5}, {"char_level": True}, {"lower": False}],
)
def test_json_round_trip_gives_identical_outputs(arguments):
    tokenizer = fitted(**arguments)
    loaded = tokenizer_from_json(tokenizer.to_json())
    for name in ("word_index", "index_word", "word_counts", "word_docs", "index_docs"):
        assert getattr(loaded, name) == getattr(tokenizer, name), name
    assert loaded.get_config() == tokenizer.get_config()
    texts = [*CORPUS, "an unknown word, the cat"]
    assert loaded.texts_to_sequences(texts) == tokenizer.texts_to_sequences(texts)
    sequences = tokenizer.texts_to_sequences(texts)
    assert loaded.sequences_to_texts(sequences) == tokenizer.sequences_to_texts(sequences)
    for mode in ("binary", "count", "tfidf", "freq"):
        np.testing.assert_array_equal(
            loaded.texts_to_matrix(texts, mode), tokenizer.texts_to_matrix(texts, mode)
        )
    # Inside a model's JSON metadata, as a plain config dict.
    metadata = json.loads(json.dumps({"tokenizer": tokenizer.get_config()}))
    assert Tokenizer.from_config(metadata["tokenizer"]).word_index == tokenizer.word_index


def test_analyzer_is_not_saved_and_is_passed_again_on_load():
    def analyzer(text):
        return text.split("-")

    tokenizer = Tokenizer(analyzer=analyzer)
    tokenizer.fit_on_texts(["A-b-A"])
    with pytest.warns(UserWarning, match="analyzer function is not saved.*analyzer=my_analyzer"):
        saved = tokenizer.to_json()
    loaded = tokenizer_from_json(saved, analyzer=analyzer)
    assert loaded.texts_to_sequences(["b-A"]) == [[2, 1]]


# ------------------------------------------------------------------- Tokenizer vs Keras

ORACLE_CORPUS = [
    "It was the best of times, it was the worst of times,",
    "it was the age of wisdom, it was the age of foolishness,",
    "It was the epoch of belief; it was the epoch of incredulity.",
    "",
    "We had everything before us, we had nothing before us!",
    "Tab\tseparated\nand new-lined: it's here.",
]
QUERIES = ["It was the age of reason, the season of Light.", "", "tab times TIMES"]
SETTINGS = [
    {},
    {"num_words": 6},
    {"oov_token": "<OOV>"},
    {"oov_token": "<OOV>", "num_words": 6},
    {"lower": False},
    {"char_level": True},
    {"char_level": True, "num_words": 8, "oov_token": "?"},
    {"filters": ",.", "split": "e"},
]


def _same_tokenizers(ours, theirs, texts):
    for name in ("word_index", "index_word", "word_counts", "word_docs", "index_docs"):
        assert getattr(ours, name) == dict(getattr(theirs, name)), name
    assert ours.document_count == theirs.document_count
    assert ours.texts_to_sequences(texts) == theirs.texts_to_sequences(texts)
    sequences = [*theirs.texts_to_sequences(texts), [0, 1, 2, 3, 40]]
    assert ours.sequences_to_texts(sequences) == theirs.sequences_to_texts(sequences)
    for mode in ("binary", "count", "tfidf", "freq"):
        np.testing.assert_array_equal(
            ours.texts_to_matrix(texts, mode), theirs.texts_to_matrix(texts, mode), mode
        )


@pytest.mark.parametrize("arguments", SETTINGS, ids=lambda a: ",".join(map(str, a.items())))
def test_tokenizer_matches_keras(keras_text, arguments):
    ours, theirs = Tokenizer(**arguments), keras_text.Tokenizer(**arguments)
    for tokenizer in (ours, theirs):
        tokenizer.fit_on_texts(ORACLE_CORPUS[:3])
        tokenizer.fit_on_texts(ORACLE_CORPUS[3:])
    _same_tokenizers(ours, theirs, [*QUERIES, *ORACLE_CORPUS])


def test_fit_on_sequences_matches_keras(keras_text):
    ours, theirs = Tokenizer(num_words=6), keras_text.Tokenizer(num_words=6)
    for tokenizer in (ours, theirs):
        tokenizer.fit_on_sequences([[1, 2, 2, 5], [2, 3], [0, 0, 4]])
    assert ours.index_docs == dict(theirs.index_docs)
    sequences = [[1, 2, 2, 9], [4], []]
    for mode in ("binary", "count", "tfidf", "freq"):
        np.testing.assert_array_equal(
            ours.sequences_to_matrix(sequences, mode), theirs.sequences_to_matrix(sequences, mode)
        )


@pytest.mark.parametrize("arguments", SETTINGS[:4], ids=str)
def test_json_is_exchangeable_with_keras(keras_text, arguments):
    ours, theirs = Tokenizer(**arguments), keras_text.Tokenizer(**arguments)
    ours.fit_on_texts(ORACLE_CORPUS)
    theirs.fit_on_texts(ORACLE_CORPUS)
    _same_tokenizers(tokenizer_from_json(theirs.to_json()), theirs, QUERIES)
    _same_tokenizers(ours, keras_text.tokenizer_from_json(ours.to_json()), QUERIES)


def test_oov_token_that_occurs_in_the_texts_stays_id_1(keras_text):
    # Deliberate difference: Keras gives the oov token a second, later id, and id 1 then
    # reads as nothing. rnnkit keeps it at 1 and ranks the other words after it.
    texts = ["unk a a unk unk"]
    theirs = keras_text.Tokenizer(oov_token="unk")
    theirs.fit_on_texts(texts)
    assert theirs.word_index == {"unk": 2, "a": 3}
    ours = Tokenizer(oov_token="unk")
    ours.fit_on_texts(texts)
    assert ours.word_index == {"unk": 1, "a": 2}
    assert ours.texts_to_sequences(["a b"]) == [[2, 1]]


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("arguments", "error", "match"),
    [
        ({"num_words": 0}, ValueError, "num_words must be at least 1; got 0.*num_words=None"),
        ({"num_words": 2.5}, TypeError, "num_words must be None or an integer; got 2.5"),
        ({"filters": None}, TypeError, 'filters must be a string.*filters=""'),
        ({"split": ""}, ValueError, "split must be a non-empty string"),
        ({"oov_token": 1}, TypeError, "oov_token must be None or a string; got 1"),
        ({"analyzer": "words"}, TypeError, "analyzer must be a function"),
        ({"document_count": -1}, ValueError, "document_count must be at least 0"),
        ({"document_count": 1.0}, TypeError, "document_count must be an integer"),
    ],
)
def test_tokenizer_argument_errors(arguments, error, match):
    with pytest.raises(error, match=match):
        Tokenizer(**arguments)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda t: t.fit_on_texts("one text"), TypeError, r"one string.*fit_on_texts\(\[text\]\)"),
        (lambda t: t.fit_on_texts(3), TypeError, "takes a list of texts; got int"),
        (lambda t: t.fit_on_texts(["ok", float("nan")]), TypeError, r"texts\[1\] .*got float nan"),
        (lambda t: t.fit_on_texts([b"bytes"]), TypeError, r"texts\[0\] must be a string"),
        (lambda t: t.fit_on_texts([["a", 1]]), TypeError, "tokens must be strings; .* int 1"),
        (lambda t: t.texts_to_sequences(["a"]), ValueError, r"no vocabulary yet.*fit_on_texts"),
        (lambda t: t.texts_to_sequences_generator(["a"]), ValueError, "no vocabulary yet"),
        (lambda t: t.sequences_to_texts([[1]]), ValueError, "no vocabulary yet"),
        (lambda t: t.texts_to_matrix(["a"]), ValueError, "no vocabulary yet"),
        (lambda t: t.sequences_to_matrix([[1]]), ValueError, "has neither.*num_words=N"),
        (lambda t: t.fit_on_sequences("12"), TypeError, "list of integer sequences; got str"),
        (lambda t: t.fit_on_sequences([1, 2]), TypeError, r"sequences\[0\] must be a sequence"),
    ],
)
def test_unfitted_tokenizer_and_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call(Tokenizer())


def test_fitting_failure_leaves_the_tokenizer_unchanged():
    tokenizer = fitted()
    with pytest.raises(TypeError):
        tokenizer.fit_on_texts(["new words", None])
    assert tokenizer.word_index == WORD_INDEX and tokenizer.document_count == 3


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda t: t.texts_to_matrix(["a"], mode="tf-idf"), ValueError, "mode must be one of"),
        (lambda t: t.sequences_to_matrix([[1]], mode="bin"), ValueError, "got 'bin'"),
        (lambda t: t.sequences_to_matrix([[1, -2]]), ValueError, "negative id \\(-2\\)"),
        (lambda t: t.texts_to_sequences("the cat"), TypeError, "one string"),
        (lambda t: t.sequences_to_texts([5]), TypeError, r"sequences\[0\] must be a sequence"),
    ],
)
def test_fitted_tokenizer_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(fitted())


def test_tfidf_needs_document_frequencies():
    with pytest.raises(ValueError, match="tfidf needs document frequencies"):
        Tokenizer(num_words=3).sequences_to_matrix([[1]], mode="tfidf")


@pytest.mark.parametrize(
    ("saved", "error", "match"),
    [
        ({"class_name": "Tokenizer"}, TypeError, r"For a dict, use Tokenizer.from_config"),
        ("{not json", ValueError, "not JSON"),
        ('{"class_name": "Scaler", "config": {}}', ValueError, '"class_name": "Tokenizer"'),
        ('{"class_name": "Tokenizer", "config": {}}', ValueError, "no 'word_counts'"),
    ],
)
def test_tokenizer_from_json_errors(saved, error, match):
    with pytest.raises(error, match=match):
        tokenizer_from_json(saved)


# ------------------------------------------------------------------------ import paths


def test_keras_import_paths_work_with_rnnkit():
    from rnnkit.preprocessing.sequence import pad_sequences as from_sequence
    from rnnkit.preprocessing.text import Tokenizer as FromText
    from rnnkit.preprocessing.text import tokenizer_from_json as from_json
    from rnnkit.utils import pad_sequences as from_utils

    assert from_sequence is from_utils is pad_sequences
    assert FromText is Tokenizer and from_json is tokenizer_from_json
