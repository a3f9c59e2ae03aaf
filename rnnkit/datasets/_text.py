"""Text: real public-domain corpora read from installed packages, and the user's own files.

Everything here reads local files; nothing is downloaded and no corpus text is copied into
rnnkit. The real corpora are the language-identification texts that `music21` installs
(`pip install rnnkit[corpora]`), read as plain files without importing music21, and the
Python documentation that ships with the standard library.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import random
import re

# The six European training texts of music21's language detector; all public domain.
LANGUAGES = {
    "en": "Jane Austen, Lady Susan",
    "de": "Goethe, Faust I",
    "fr": "Voltaire, Oeuvres XXXIII (Candide and other tales)",
    "it": "Dante, Divina Commedia",
    "la": "Hymni Ecclesiae (1865)",
    "nl": "Ribbius, Een acht en twintigtal voorwerpen uit de natuurlijke geschiedenis",
}
# Sentences shorter than this are mostly headings and speaker names ("MEPHISTOPHELES:");
# longer than this are cut at commas, since the verse texts run on for whole stanzas.
MIN_CHARS, MAX_CHARS = 20, 200
# A sentence ends at . ! ? or ; optionally followed by a closing quote or bracket.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?;])|(?<=[.!?;][\"'”’»)\]]))\s+")
_CLAUSE_END = re.compile(r"(?<=[,:])\s+")


def load_text_csv(path, text_col: str, label_col: str) -> tuple[list[str], list[str]]:
    """Read (text, label) pairs from a CSV file with a header line, for classification.

    Args:
        path: the file: UTF-8 (a byte-order mark is fine), comma-separated, texts that hold
            commas or line breaks in double quotes.
        text_col: the column of texts. Every row needs one.
        label_col: the column of labels, read as strings; at least two distinct ones.

    Returns:
        `(texts, labels)`, two lists of strings in file order.

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "reviews.csv"
        >>> _ = path.write_text('review,stars\\n"Great, loved it",good\\nDull,bad\\n')
        >>> load_text_csv(path, text_col="review", label_col="stars")
        (['Great, loved it', 'Dull'], ['good', 'bad'])
    """
    path = os.fspath(path)
    if text_col == label_col:
        raise ValueError(
            f"The text column and the label column are both {text_col!r}; name two different "
            f"columns of '{path}'."
        )
    reader = csv.reader(io.StringIO(read_utf8(path, "CSV file")), strict=True)
    rows, end = [], 0  # rows: (line where the row starts, fields)
    try:
        for fields in reader:
            start, end = end + 1, reader.line_num
            if fields:  # else a blank line
                rows.append((start, fields))
    except csv.Error as err:
        raise ValueError(
            f"'{path}' is not a readable CSV file: {err} (line {reader.line_num}). Quote texts "
            'that hold commas, quotes or line breaks: "like, this".'
        ) from None
    if not rows:
        raise ValueError(
            f"'{path}' is empty; expected a header line naming the columns, then one row per text."
        )
    header, rows = rows[0][1], rows[1:]
    if not rows:
        raise ValueError(f"'{path}' has a header line but no data rows.")
    missing = [c for c in (text_col, label_col) if c not in header]
    if missing:
        raise ValueError(
            f"'{path}' has no column {', '.join(map(repr, missing))}; its columns are: "
            f"{', '.join(map(repr, header))}."
        )
    for line, fields in rows:
        if len(fields) != len(header):
            raise ValueError(
                f"Line {line} of '{path}' has {len(fields)} fields but the header has "
                f"{len(header)}. Put texts that hold commas in double quotes, or fix the row."
            )
    texts = [fields[header.index(text_col)] for _, fields in rows]
    labels = [fields[header.index(label_col)].strip() for _, fields in rows]
    for column, values, what, fix in (
        (text_col, texts, "no text", "Drop those rows, or fill them in"),
        (label_col, labels, "no label", "Label them, or drop them"),
    ):
        empty = [line for (line, _), value in zip(rows, values) if not value.strip()]
        if empty:
            more = f" (and {len(empty) - 1} more: lines {_lines(empty[1:])})" if empty[1:] else ""
            raise ValueError(
                f"Column {column!r} of '{path}' has {what} on line {empty[0]}{more}. {fix}: "
                f"e.g. frame.dropna(subset=[{column!r}]) in pandas."
            )
    distinct = sorted(set(labels))
    if len(distinct) < 2:
        raise ValueError(
            f"Column {label_col!r} of '{path}' holds one label only, {distinct[0]!r}, in all "
            f"{len(labels)} rows; a classifier needs at least two. Check --label names the "
            "label column."
        )
    return texts, labels


def load_text_file(path) -> str:
    """Read a whole UTF-8 text file, for character-level language models.

    Line endings become "\\n"; a leading byte-order mark is dropped.

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "poem.txt"
        >>> _ = path.write_bytes(b"To be, or not to be\\r\\n")
        >>> load_text_file(path)
        'To be, or not to be\\n'
    """
    text = read_utf8(path, "text file")
    if not text.strip():
        raise ValueError(
            f"'{os.fspath(path)}' holds no text (it is empty or only blank space); a language "
            "model needs some to learn from."
        )
    return text


def read_utf8(path, what: str) -> str:
    """The contents of `path` as text, or a clear error for a missing, binary or non-UTF-8 file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"No such {what}: '{path}'. Check the path.")
    with open(path, "rb") as f:
        data = f.read()
    if b"\x00" in data:
        raise ValueError(
            f"'{path}' is a binary file (it holds NUL bytes), not text; expected a UTF-8 "
            f"{what}. If it is UTF-16, re-save it as UTF-8."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ValueError(
            f"'{path}' is not UTF-8 text: byte {err.start} (line {line}) is "
            f"{data[err.start : err.start + 1]!r}. Re-save it as UTF-8, e.g. "
            f"iconv -f latin1 -t utf-8 '{path}'."
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def language_sentences(
    per_language: int | None = 700, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Sentences of six public-domain books and the language of each, for classification.

    The books are the training texts of music21's language detector (see `LANGUAGES`):
    English, German, French, Italian, Latin and Dutch. Project Gutenberg lines are dropped,
    blank-line paragraphs joined, and each paragraph split after . ! ? ; ; pieces longer
    than 200 characters are cut at commas, and pieces shorter than 20 characters, of fewer
    than three words, or without lower-case letters (headings) are dropped. music21 10.5.1
    gives 1,313 en, 2,725 de, 2,276 fr, 6,059 it, 1,085 la and 766 nl sentences.

    Needs music21's files (`pip install rnnkit[corpora]`), not music21 itself: they are
    read straight from where it is installed.

    Args:
        per_language: keep this many sentences of each language, drawn at random (with
            `seed`), so the classes are balanced; the default 700 fits the smallest (nl).
            None keeps all of them.
        seed: the shuffle, and the draw.

    Returns:
        `(sentences, labels)`, shuffled; the labels are "en", "de", "fr", "it", "la", "nl".

    Example:
        >>> sentences, labels = language_sentences(per_language=2)
        >>> len(sentences), sorted(set(labels))
        (12, ['de', 'en', 'fr', 'it', 'la', 'nl'])
    """
    if per_language is not None and (
        isinstance(per_language, bool) or not isinstance(per_language, int) or per_language < 1
    ):
        raise ValueError(
            f"language_sentences: per_language must be a positive integer or None (all), "
            f"got {per_language!r}."
        )
    rng = random.Random(seed)
    pairs = []
    for language in LANGUAGES:
        sentences = split_sentences(_music21_text(language))
        if per_language is not None:
            if per_language > len(sentences):
                raise ValueError(
                    f"language_sentences: there are {len(sentences)} {language!r} sentences, "
                    f"fewer than per_language={per_language}. Ask for at most that many, or "
                    "per_language=None for all of every language."
                )
            sentences = rng.sample(sentences, per_language)
        pairs += [(sentence, language) for sentence in sentences]
    rng.shuffle(pairs)
    return [s for s, _ in pairs], [label for _, label in pairs]


def lady_susan() -> str:
    """Jane Austen's *Lady Susan* (1871), public domain: 127 KB of English prose.

    Read from music21's copy (`pip install rnnkit[corpora]`) without its Project Gutenberg
    lines; a text for character-level language models. `python_docs()` needs no install.

    Example:
        >>> lady_susan()[:10]
        'LADY SUSAN'
    """
    return _music21_text("en")


def python_docs() -> str:
    """The Python Language Reference as plain text (~465,000 characters), from the stdlib.

    The topics of `pydoc_data.topics` (the text `help("with")` shows), joined in name
    order with blank lines between them. PSF licence. Always installed with CPython, so a
    text for language models that needs no extra package.

    Example:
        >>> text = python_docs()
        >>> len(text) > 100_000, 'The "with" statement' in text
        (True, True)
    """
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise ModuleNotFoundError(
            "python_docs: this Python was installed without the pydoc_data module (some Linux "
            "distributions split it out; on Debian: apt install python3-doc). Use "
            "lady_susan() or load_text_file(path) instead."
        ) from None
    return "\n\n".join(topics[name].strip() for name in sorted(topics))


def split_sentences(text: str) -> list[str]:
    """Sentences of 20 to 200 characters of `text`, the way `language_sentences` cuts them."""
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text):
        for sentence in _SENTENCE_END.split(" ".join(paragraph.split())):
            if len(sentence) <= MAX_CHARS:
                sentences.append(sentence)
                continue
            piece = ""  # verse runs on for whole stanzas: cut it at commas
            for clause in _CLAUSE_END.split(sentence):
                if piece and len(piece) + 1 + len(clause) > MAX_CHARS:
                    sentences.append(piece)
                    piece = clause
                else:
                    piece = f"{piece} {clause}" if piece else clause
            sentences.append(piece)
    return [
        s
        for s in sentences
        if MIN_CHARS <= len(s) <= MAX_CHARS and len(s.split()) >= 3 and any(c.islower() for c in s)
    ]


def _music21_text(language: str) -> str:
    """music21's training text for `language`, without the Project Gutenberg lines."""
    spec = importlib.util.find_spec("music21")  # finds the folder; does not import music21
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "The real text corpora are files installed with music21, which is not installed. "
            "Install it: pip install music21 (or pip install rnnkit[corpora]); "
            "python_docs() is a text that needs nothing."
        )
    path = os.path.join(
        spec.submodule_search_locations[0], "languageExcerpts", "trainingData", f"{language}.txt"
    )
    if not os.path.isfile(path):
        raise ModuleNotFoundError(
            f"music21 is installed but has no '{path}'; this music21 is too old or too new for "
            "rnnkit. Install the tested one: pip install music21==10.5.1."
        )
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f if "gutenberg" not in line.lower()]
    return "".join(lines).strip() + "\n"


def _lines(numbers: list[int], most: int = 5) -> str:
    shown = ", ".join(map(str, numbers[:most]))
    return shown + (", ..." if len(numbers) > most else "")
