"""Text and tagging datasets: the loaders on small files written here, with every error they
raise; the real corpora read from music21's files; the synthetic part-of-speech set.

The CoNLL-U reader is checked against the `conllu` package where that is installed.
"""

from __future__ import annotations

import collections
import importlib.util
import subprocess
import sys

import pytest

from rnnkit.datasets import (
    lady_susan,
    language_sentences,
    load_tagged,
    load_text_csv,
    load_text_file,
    python_docs,
    tagging_sentences,
)
from rnnkit.datasets._text import LANGUAGES, split_sentences

needs_music21 = pytest.mark.skipif(
    importlib.util.find_spec("music21") is None,
    reason="music21 is not installed (pip install rnnkit[corpora]); its books are the corpus",
)


def _write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# ---- load_text_csv ----------------------------------------------------------------------------


def test_csv_reads_quoted_commas_line_breaks_and_a_byte_order_mark(tmp_path):
    content = '\ufeffid,text,label\n1,"Great, loved it",pos\n\n2,"Two\nlines",neg\n3,Fine, pos\n'
    path = _write(tmp_path, "r.csv", content)
    texts, labels = load_text_csv(path, "text", "label")
    assert texts == ["Great, loved it", "Two\nlines", "Fine"]
    assert labels == ["pos", "neg", "pos"]  # labels are stripped, texts are not


@pytest.mark.parametrize(
    "content, args, match",
    [
        (None, ("text", "label"), r"No such CSV file: '.*missing\.csv'"),
        ("", ("text", "label"), r"'.*' is empty; expected a header line"),
        ("text,label\n", ("text", "label"), r"has a header line but no data rows"),
        ("text,label\nhi,a\n", ("text", "text"), r"both 'text'; name two different columns"),
        (
            "review,stars\nhi,a\n",
            ("text", "stars"),
            r"has no column 'text'; its columns are: 'review', 'stars'",
        ),
        (
            "text,label\nhi,a\nhello, world,b\n",
            ("text", "label"),
            r"Line 3 of '.*' has 3 fields but the header has 2\. Put texts that hold commas",
        ),
        (
            'text,label\n"unclosed,a\n',
            ("text", "label"),
            r"not a readable CSV file: .*\(line \d\)\. Quote texts",
        ),
        (
            b"text,label\ncaf\xe9,a\n",
            ("text", "label"),
            r"is not UTF-8 text: byte 14 \(line 2\) is b'\\xe9'\. Re-save it as UTF-8",
        ),
        (
            "text,label\nok,a\n ,b\n,a\nfine,b\n,b\n",
            ("text", "label"),
            r"Column 'text' of '.*' has no text on line 3 \(and 2 more: lines 4, 6\)\. Drop "
            r"those rows",
        ),
        (
            "text,label\nok,a\nfine,\n",
            ("text", "label"),
            r"Column 'label' of '.*' has no label on line 3\. Label them, or drop them",
        ),
        (
            "text,label\nok,pos\nfine,pos\n",
            ("text", "label"),
            r"Column 'label' of '.*' holds one label only, 'pos', in all 2 rows; a classifier "
            r"needs at least two",
        ),
    ],
)
def test_csv_errors(tmp_path, content, args, match):
    path = tmp_path / "missing.csv" if content is None else _write(tmp_path, "t.csv", content)
    with pytest.raises(ValueError, match=match):
        load_text_csv(path, *args)


def test_csv_error_for_nul_bytes(tmp_path):
    path = _write(tmp_path, "t.csv", b"text,label\nhi\x00,a\n")
    with pytest.raises(ValueError, match=r"is a binary file \(it holds NUL bytes\).*UTF-8 CSV"):
        load_text_csv(path, "text", "label")


# ---- load_text_file ---------------------------------------------------------------------------


def test_text_file_normalises_line_endings_and_drops_a_byte_order_mark(tmp_path):
    path = _write(tmp_path, "t.txt", "\ufeffÆsop's fables\r\nline two\rthree\n".encode())
    assert load_text_file(path) == "Æsop's fables\nline two\nthree\n"


@pytest.mark.parametrize(
    "content, match",
    [
        (None, r"No such text file: '.*nothere\.txt'"),
        (b"", r"holds no text \(it is empty or only blank space\)"),
        (b" \n\t\n", r"holds no text"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", r"is a binary file \(it holds NUL bytes\), not text"),
        (b"one\ntwo caf\xe9\n", r"is not UTF-8 text: byte 11 \(line 2\) is b'\\xe9'\. Re-save"),
    ],
)
def test_text_file_errors(tmp_path, content, match):
    path = tmp_path / "nothere.txt" if content is None else _write(tmp_path, "t.txt", content)
    with pytest.raises(ValueError, match=match):
        load_text_file(path)


# ---- load_tagged ------------------------------------------------------------------------------

CONLLU = """\
# newdoc id = test
# sent_id = 1
# text = Don't go there.
1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tDo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_
2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_
4\tthere\tthere\tADV\tRB\t_\t3\tadvmod\t_\tSpaceAfter=No
5\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

# sent_id = 2
1\tSue\tSue\tPROPN\tNNP\t_\t2\tnsubj\t_\t_
2\tlikes\tlike\tVERB\tVBZ\t_\t0\troot\t_\t_
3\tcoffee\tcoffee\tNOUN\tNN\t_\t2\tobj\t_\t_
4\tand\tand\tCCONJ\tCC\t_\t6\tcc\t_\t_
5\tBill\tBill\tPROPN\tNNP\t_\t6\tnsubj\t_\t_
5.1\tlikes\tlike\tVERB\tVBZ\t_\t_\t_\t2:conj\t_
6\ttea\ttea\tNOUN\tNN\t_\t2\tconj\t_\t_
"""


def test_conllu_skips_comments_multiword_tokens_and_empty_nodes(tmp_path):
    path = _write(tmp_path, "t.conllu", CONLLU)
    assert load_tagged(path) == [
        (["Do", "n't", "go", "there", "."], ["AUX", "PART", "VERB", "ADV", "PUNCT"]),
        (
            ["Sue", "likes", "coffee", "and", "Bill", "tea"],
            ["PROPN", "VERB", "NOUN", "CCONJ", "PROPN", "NOUN"],
        ),
    ]
    assert load_tagged(path, tag_column="xpos")[0][1] == ["VBP", "RB", "VB", "RB", "."]
    assert load_tagged(path, tag_column="deprel")[1][1][-1] == "conj"


def test_conllu_matches_the_conllu_package(tmp_path):
    conllu = pytest.importorskip("conllu", reason="conllu, the oracle, is not installed")
    path = _write(tmp_path, "t.conllu", CONLLU)
    for column in ("upos", "xpos", "lemma", "deprel"):
        expected = [
            (
                [t["form"] for t in sentence if isinstance(t["id"], int)],
                [t[column] for t in sentence if isinstance(t["id"], int)],
            )
            for sentence in conllu.parse(CONLLU)
        ]
        assert load_tagged(path, tag_column=column) == expected


def test_two_column_file_with_tabs_or_spaces_and_a_hash_token(tmp_path):
    content = "The DET\ndog\tNOUN\n#   SYM\n\n\n  Run VERB\n! PUNCT"  # no final newline
    path = _write(tmp_path, "t.txt", content)
    assert load_tagged(path) == [
        (["The", "dog", "#"], ["DET", "NOUN", "SYM"]),
        (["Run", "!"], ["VERB", "PUNCT"]),
    ]


@pytest.mark.parametrize(
    "content, kwargs, match",
    [
        (None, {}, r"No such tagged file: '.*nothere\.txt'"),
        ("", {}, r"'.*' holds no tokens; expected CoNLL-U lines or 'word TAG' lines"),
        ("\n\n# only = comments\n", {}, r"holds no tokens"),
        (b"The DET\n\xff NOUN\n", {}, r"is not UTF-8 text: byte 8 \(line 2\)"),
        ("The DET\n", {"tag_column": "pos"}, r"unknown tag_column 'pos'; .* 'upos', 'xpos'"),
        (
            "The DET\n",
            {"tag_column": "xpos"},
            r"is a two-column file \('word TAG' per line\), so it has no 'xpos' column",
        ),
        (
            "The DET\ndog\n",
            {},
            r"Line 2 of '.*' has 1 fields; a two-column file has 'word TAG' on each line",
        ),
        (
            "The DET B-NP O\n",
            {},
            r"Line 1 .* has 4 fields.*CoNLL-2003 style files keep the first and last",
        ),
        (
            "The DET\n" + "1 dog dog NOUN NN _ 0 root _ _\n",
            {},
            r"Line 2 .* has 10 fields.*CoNLL-U with spaces: separate its columns with tabs",
        ),
        (
            CONLLU.replace("3\tgo\tgo\tVERB", "3\tgo\tVERB"),
            {},
            r"Line 7 of '.*' has 9 tab-separated columns; a CoNLL-U token line has 10",
        ),
        (
            CONLLU.replace("3\tgo", "three\tgo"),
            {},
            r"Line 7 of '.*' has the ID 'three'; CoNLL-U IDs are 1, 2, 3",
        ),
        (
            CONLLU,
            {"tag_column": "deps"},
            r"Line 5 of '.*' has no 'deps' tag \('_'\) for 'Do'\. Tag every token, or choose",
        ),
    ],
)
def test_tagged_file_errors(tmp_path, content, kwargs, match):
    path = tmp_path / "nothere.txt" if content is None else _write(tmp_path, "t.txt", content)
    with pytest.raises(ValueError, match=match):
        load_tagged(path, **kwargs)


# ---- Real corpora -----------------------------------------------------------------------------


@needs_music21
def test_language_sentences_balanced_deterministic_and_without_boilerplate():
    sentences, labels = language_sentences()
    assert collections.Counter(labels) == {lang: 700 for lang in LANGUAGES}
    assert (sentences, labels) == language_sentences()
    assert sentences != language_sentences(seed=1)[0]
    assert all(20 <= len(s) <= 200 and "gutenberg" not in s.lower() for s in sentences)
    assert len(set(sentences)) > 0.98 * len(sentences)


@needs_music21
def test_language_sentences_all_and_their_counts():
    sentences, labels = language_sentences(per_language=None)
    counts = collections.Counter(labels)
    assert set(counts) == {"en", "de", "fr", "it", "la", "nl"}
    assert min(counts.values()) > 700 and len(sentences) > 10_000
    by_language = collections.defaultdict(list)
    for sentence, label in zip(sentences, labels):
        by_language[label].append(sentence)
    assert any("Lady Susan" in s for s in by_language["en"])
    assert any("Candide" in s for s in by_language["fr"])
    assert any("Mephistopheles" in s or "MEPHISTOPHELES" in s for s in by_language["de"])


@needs_music21
def test_language_sentences_error_for_too_many_per_language():
    with pytest.raises(ValueError, match=r"there are \d+ '\w\w' sentences, fewer than per_lang"):
        language_sentences(per_language=100_000)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_language_sentences_error_for_a_bad_per_language(bad):
    with pytest.raises(ValueError, match=r"per_language must be a positive integer or None"):
        language_sentences(per_language=bad)


@needs_music21
def test_lady_susan_is_the_novel_without_gutenberg_lines():
    text = lady_susan()
    assert text.startswith("LADY SUSAN\n\nby\n\nJane Austen")
    assert text.endswith("than herself.\n")
    assert "gutenberg" not in text.lower()
    assert 120_000 < len(text) < 135_000
    assert text == lady_susan()


def test_reads_music21_files_without_importing_music21():
    code = (
        "import sys, importlib.util\n"
        "from rnnkit.datasets import lady_susan\n"
        "if importlib.util.find_spec('music21'): lady_susan()\n"
        "assert 'music21' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_clear_error_when_music21_is_missing(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "music21" else real(name)
    )
    with pytest.raises(ModuleNotFoundError, match=r"pip install music21 \(or pip install rnnkit"):
        lady_susan()
    with pytest.raises(ModuleNotFoundError, match=r"music21, which is not installed"):
        language_sentences()


def test_split_sentences_cuts_long_verse_at_commas_and_drops_headings():
    verse = ", ".join(["und so weiter im Text"] * 20) + "."
    text = f"FAUST:\n\nShort.\n\nOne sentence is here.  „Another one?“ Yes, it is!\n\n{verse}"
    sentences = split_sentences(text)
    assert sentences[0] == "One sentence is here."
    assert all(20 <= len(s) <= 200 for s in sentences)
    assert " ".join(sentences[1:]) == "„Another one?“ Yes, it is! " + verse


def test_python_docs_is_the_language_reference():
    text = python_docs()
    assert len(text) > 100_000
    assert 'The "with" statement' in text and text == python_docs()


# ---- tagging_sentences ------------------------------------------------------------------------

UPOS = {"DET", "NOUN", "VERB", "ADJ", "ADV", "PRON", "ADP", "CCONJ", "AUX", "PUNCT", "PROPN", "NUM"}
AMBIGUOUS = ["book", "run", "watch", "saw", "can", "fly", "that", "this", "fast", "light", "well"]


def test_tagging_sentences_deterministic_tags_and_lengths():
    sentences = tagging_sentences()
    assert len(sentences) == 2000 and sentences == tagging_sentences()
    assert sentences != tagging_sentences(seed=1)
    assert len(tagging_sentences(count=7, seed=3)) == 7
    assert {tag for _, tags in sentences for tag in tags} == UPOS
    lengths = [len(tokens) for tokens, _ in sentences]
    assert all(len(tokens) == len(tags) for tokens, tags in sentences)
    assert min(lengths) == 3 and max(lengths) == 20
    assert len(set(lengths)) == 18
    assert all(tokens[0][0].isupper() or tokens[0].isdigit() for tokens, _ in sentences)


def test_tagging_sentences_ambiguous_words_need_context():
    seen = collections.defaultdict(collections.Counter)
    for tokens, tags in tagging_sentences():
        for token, tag in zip(tokens, tags):
            seen[token.lower()][tag] += 1
    for word in AMBIGUOUS:
        assert len(seen[word]) >= 2 and min(seen[word].values()) >= 10, (word, seen[word])
    assert set(seen["can"]) == {"AUX", "NOUN"} and set(seen["that"]) == {"DET", "PRON"}
    # Tagging every word with its most frequent tag is wrong on a quarter of ambiguous tokens.
    ambiguous = [c for c in seen.values() if len(c) > 1]
    right = sum(max(c.values()) for c in ambiguous) / sum(sum(c.values()) for c in ambiguous)
    assert right < 0.75


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_tagging_sentences_error_for_a_bad_count(bad):
    with pytest.raises(ValueError, match=r"count must be a positive integer, got"):
        tagging_sentences(count=bad)
