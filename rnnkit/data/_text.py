"""Text to integer sequences: a word (or character) `Tokenizer`, and `pad_sequences`.

`pad_sequences` follows `keras.utils.pad_sequences`; `Tokenizer`, `text_to_word_sequence`
and `tokenizer_from_json` follow the classic `keras.preprocessing.text` (Keras 2), so
tutorials written for either run with `keras` replaced by `rnnkit`. Index 0 is never a
word: it is what `pad_sequences` pads with, and what `Embedding(mask_zero=True)` masks.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Iterator

import numpy as np

DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'  # punctuation but "'", tab, newline
MATRIX_MODES = ("binary", "count", "tfidf", "freq")


# --------------------------------------------------------------------------- pad_sequences


def _check_side(name: str, value) -> str:
    if value not in ("pre", "post"):
        raise ValueError(f'pad_sequences: {name} must be "pre" or "post"; got {value!r}.')
    return value


def _as_array(sequence, index: int, maxlen: int, truncating: str, dtype) -> np.ndarray:
    """One sequence cut to its last (`"pre"`) or first (`"post"`) `maxlen` steps."""
    if isinstance(sequence, (str, bytes)):
        raise TypeError(
            f"pad_sequences: sequences[{index}] is the string {sequence!r}; pad_sequences "
            "pads sequences of tokens. Turn texts into token ids first "
            "(Tokenizer.texts_to_sequences), or pass list(text) for characters."
        )
    length = _length(sequence, index)
    kept = sequence[max(length - maxlen, 0) :] if truncating == "pre" else sequence[:maxlen]
    try:
        return np.asarray(kept, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as error:
        raise ValueError(
            f"pad_sequences: sequences[{index}] cannot be stored as {np.dtype(dtype)} "
            f"({error}). Pass a dtype its values fit, e.g. dtype=object for strings."
        ) from None


def pad_sequences(
    sequences,
    maxlen: int | None = None,
    dtype="int32",
    padding: str = "pre",
    truncating: str = "pre",
    value=0.0,
) -> np.ndarray:
    """Sequences of different lengths as one `(num_sequences, maxlen, ...)` array.

    Shorter sequences are filled with `value` before (`padding="pre"`) or after
    (`"post"`) their steps; longer ones lose their first (`truncating="pre"`) or last
    (`"post"`) steps. `maxlen=None` is the longest sequence's length. Steps may be
    arrays themselves (all of one shape): the result is then `(n, maxlen, *step_shape)`.

    Args:
        sequences: list (or array) of sequences, e.g. the token ids of each text.
        maxlen: steps kept per sequence, or None for the longest length.
        dtype: of the result; `object` (or a fixed-width string dtype such as "U10")
            to pad sequences of strings.
        padding, truncating: "pre" or "post", the end that is padded or cut.
        value: what padding steps hold (a string needs a string or object dtype).

    Returns:
        numpy array `(len(sequences), maxlen, ...)` of `dtype`.

    Example:
        >>> pad_sequences([[1], [2, 3], [4, 5, 6]], maxlen=2).tolist()
        [[0, 1], [2, 3], [5, 6]]
        >>> pad_sequences([[1], [2, 3]], padding="post", value=-1).tolist()
        [[1, -1], [2, 3]]
    """
    if isinstance(sequences, (str, bytes)) or not hasattr(sequences, "__len__"):
        raise TypeError(
            "pad_sequences: sequences must be a list (or array) of sequences; got "
            f"{type(sequences).__name__}. Pass list(sequences) for a generator."
        )
    if maxlen is not None:
        if isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)):
            raise TypeError(f"pad_sequences: maxlen must be None or an integer; got {maxlen!r}.")
        if maxlen < 0:
            raise ValueError(f"pad_sequences: maxlen must be at least 0; got {maxlen}.")
    padding, truncating = _check_side("padding", padding), _check_side("truncating", truncating)
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"pad_sequences: dtype {dtype!r} is not a numpy dtype.") from None
    if isinstance(value, (str, bytes)) and dtype.kind not in "OUS":
        raise ValueError(
            f"pad_sequences: value {value!r} is a string but dtype is {dtype}; pass "
            "dtype=object to pad sequences of strings."
        )
    if maxlen is None and len(sequences) == 0:
        raise ValueError(
            "pad_sequences: sequences is empty and maxlen is None, so there is no length "
            "to pad to. Pass maxlen=N, or check why no sequences came."
        )
    if maxlen is None:
        maxlen = max(_length(sequence, i) for i, sequence in enumerate(sequences))
    maxlen = int(maxlen)

    rows = [_as_array(s, i, maxlen, truncating, dtype) for i, s in enumerate(sequences)]
    step_shape = next((row.shape[1:] for row in rows if len(row)), ())
    for index, row in enumerate(rows):
        if len(row) and row.shape[1:] != step_shape:
            raise ValueError(
                f"pad_sequences: every step must have one shape; sequences[{index}] has steps "
                f"of shape {row.shape[1:]}, the first non-empty sequence {step_shape}."
            )
    if dtype.kind in "US" and dtype.itemsize == 0:
        # "str" alone: as wide as the longest string, where numpy would cut to 1 character.
        widest = max((np.asarray(value, dtype=dtype), *rows), key=lambda a: a.dtype.itemsize)
        dtype = widest.dtype
    try:
        padded = np.full((len(rows), maxlen, *step_shape), value, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(
            f"pad_sequences: value {value!r} cannot be stored as {dtype}; pass a value of "
            "that type, or a dtype that holds it."
        ) from None
    for index, row in enumerate(rows):
        if len(row):
            if padding == "pre":
                padded[index, maxlen - len(row) :] = row
            else:
                padded[index, : len(row)] = row
    return padded


def _length(sequence, index: int) -> int:
    try:
        return len(sequence)
    except TypeError:
        raise TypeError(
            f"pad_sequences: sequences must be a list of sequences; sequences[{index}] is "
            f"{sequence!r}. Wrap single values in a list: [[1, 2], [3]]."
        ) from None


# ------------------------------------------------------------------------------- Tokenizer


def text_to_word_sequence(
    text: str, filters: str = DEFAULT_FILTERS, lower: bool = True, split: str = " "
) -> list[str]:
    """The words of `text`: lowercased, each character of `filters` made a separator.

    Example:
        >>> text_to_word_sequence("Don't panic -- it's fine!")
        ["don't", 'panic', "it's", 'fine']
    """
    if not isinstance(text, str):
        raise TypeError(
            f"text_to_word_sequence takes a string; got {type(text).__name__} {text!r}."
        )
    if lower:
        text = text.lower()
    text = text.translate(str.maketrans({c: split for c in filters}))
    return [word for word in text.split(split) if word]


class Tokenizer:
    """Words (or characters) to integer ids by frequency, with Keras' Tokenizer semantics.

    `fit_on_texts` counts the tokens of a corpus; the most frequent gets id 1 (ties go to
    the token seen first), and 0 is never a token. With `oov_token`, that token is id 1
    and stands in for every token the tokenizer did not see, or cut by `num_words`.

    Args:
        num_words: keep only ids below `num_words` (the `num_words - 1` most frequent
            tokens) in what the tokenizer returns; `word_index` still holds all of them.
        filters: characters removed from texts (they separate words).
        lower: lowercase texts first.
        split: the word separator.
        char_level: every character is a token (`filters` and `split` are not used).
        oov_token: token for out-of-vocabulary words, or None to drop them.
        analyzer: a function text -> list of tokens, used instead of filters/lower/split.
        document_count: texts already counted (set when a tokenizer is loaded).

    Attributes:
        word_index: token -> id. index_word: id -> token.
        word_counts: token -> occurrences. word_docs: token -> texts it occurs in.
        index_docs: id -> texts it occurs in. document_count: texts (or sequences) fitted.

    Example:
        >>> tokenizer = Tokenizer(oov_token="<unk>")
        >>> tokenizer.fit_on_texts(["the cat sat", "the dog"])
        >>> tokenizer.word_index
        {'<unk>': 1, 'the': 2, 'cat': 3, 'sat': 4, 'dog': 5}
        >>> tokenizer.texts_to_sequences(["The bird sat."])
        [[2, 1, 4]]
    """

    def __init__(
        self,
        num_words: int | None = None,
        filters: str = DEFAULT_FILTERS,
        lower: bool = True,
        split: str = " ",
        char_level: bool = False,
        oov_token: str | None = None,
        analyzer: Callable[[str], list[str]] | None = None,
        document_count: int = 0,
    ):
        if num_words is not None and (
            isinstance(num_words, bool) or not isinstance(num_words, (int, np.integer))
        ):
            raise TypeError(f"Tokenizer: num_words must be None or an integer; got {num_words!r}.")
        if num_words is not None and num_words < 1:
            raise ValueError(
                f"Tokenizer: num_words must be at least 1; got {num_words}. "
                "Pass num_words=None to keep every word."
            )
        if not isinstance(filters, str):
            raise TypeError(
                f"Tokenizer: filters must be a string of characters; got {filters!r}. "
                'Pass filters="" to keep every character.'
            )
        if not isinstance(split, str) or not split:
            raise ValueError(
                f'Tokenizer: split must be a non-empty string, e.g. " "; got {split!r}.'
            )
        if oov_token is not None and not isinstance(oov_token, str):
            raise TypeError(f"Tokenizer: oov_token must be None or a string; got {oov_token!r}.")
        if analyzer is not None and not callable(analyzer):
            raise TypeError(
                f"Tokenizer: analyzer must be a function text -> list of tokens; got {analyzer!r}."
            )
        if isinstance(document_count, bool) or not isinstance(document_count, int):
            raise TypeError(
                f"Tokenizer: document_count must be an integer; got {document_count!r}."
            )
        if document_count < 0:
            raise ValueError(f"Tokenizer: document_count must be at least 0; got {document_count}.")
        self.num_words = None if num_words is None else int(num_words)
        self.filters, self.lower, self.split = filters, lower, split
        self.char_level, self.oov_token, self.analyzer = char_level, oov_token, analyzer
        self.document_count = document_count
        self.word_counts: dict[str, int] = {}  # in first-seen order: it breaks count ties
        self.word_docs: dict[str, int] = {}
        self.index_docs: dict[int, int] = {}
        self.word_index: dict[str, int] = {}
        self.index_word: dict[int, str] = {}

    # ---------------------------------------------------------------------------- fitting

    def _tokens(self, text, action: str, index: int) -> list[str]:
        """A text's tokens; a list is taken as already-split tokens (lowercased only)."""
        if isinstance(text, list):
            for token in text:
                if not isinstance(token, str):
                    raise TypeError(
                        f"Tokenizer.{action}: texts[{index}] is a list of tokens, and tokens "
                        f"must be strings; it holds {type(token).__name__} {token!r}."
                    )
            return [token.lower() for token in text] if self.lower else list(text)
        if not isinstance(text, str):
            raise TypeError(
                f"Tokenizer.{action}: texts[{index}] must be a string (or a list of token "
                f"strings); got {type(text).__name__} {text!r}. Drop or fill missing texts "
                "first, e.g. texts = [t if isinstance(t, str) else '' for t in texts]."
            )
        if self.char_level:
            return list(text.lower() if self.lower else text)
        if self.analyzer is not None:
            return list(self.analyzer(text))
        return text_to_word_sequence(text, self.filters, self.lower, self.split)

    def _texts(self, texts, action: str) -> Iterable:
        if isinstance(texts, (str, bytes)):
            raise TypeError(
                f"Tokenizer.{action} takes a list of texts; got one string {texts[:40]!r}. "
                f"Wrap it in a list: {action}([text])."
            )
        if not isinstance(texts, Iterable):
            raise TypeError(
                f"Tokenizer.{action} takes a list of texts; got {type(texts).__name__}."
            )
        return texts

    def fit_on_texts(self, texts) -> None:
        """Count the tokens of `texts` (a list of strings, or of token lists); rebuild ids.

        Fitting again adds to the counts: ids are then ranked over every text seen.
        """
        documents = [
            self._tokens(text, "fit_on_texts", i)
            for i, text in enumerate(self._texts(texts, "fit_on_texts"))
        ]
        for tokens in documents:
            self.document_count += 1
            for token in tokens:
                self.word_counts[token] = self.word_counts.get(token, 0) + 1
            for token in dict.fromkeys(tokens):  # each token once per text, in text order
                self.word_docs[token] = self.word_docs.get(token, 0) + 1
        # sorted() is stable, so tokens with equal counts stay in first-seen order.
        ranked = sorted(self.word_counts, key=lambda token: -self.word_counts[token])
        vocabulary = [] if self.oov_token is None else [self.oov_token]
        vocabulary += [token for token in ranked if token != self.oov_token]
        self.word_index = {token: i for i, token in enumerate(vocabulary, start=1)}
        self.index_word = {i: token for token, i in self.word_index.items()}
        for token, docs in self.word_docs.items():
            self.index_docs[self.word_index[token]] = docs

    def fit_on_sequences(self, sequences) -> None:
        """Count, for each id, the sequences it occurs in (what tfidf needs), given no texts."""
        sequences = self._sequences(sequences, "fit_on_sequences")
        self.document_count += len(sequences)
        for sequence in sequences:
            for i in dict.fromkeys(int(i) for i in sequence):
                self.index_docs[i] = self.index_docs.get(i, 0) + 1

    def _sequences(self, sequences, action: str) -> list:
        if isinstance(sequences, (str, bytes)) or not isinstance(sequences, Iterable):
            raise TypeError(
                f"Tokenizer.{action} takes a list of integer sequences; got "
                f"{type(sequences).__name__} {sequences!r:.60}."
            )
        sequences = list(sequences)
        for index, sequence in enumerate(sequences):
            if isinstance(sequence, (str, bytes)) or not isinstance(sequence, Iterable):
                raise TypeError(
                    f"Tokenizer.{action}: sequences[{index}] must be a sequence of integer ids; "
                    f"got {sequence!r:.60}."
                )
        return sequences

    def _check_fitted(self, action: str) -> None:
        if not self.word_index and not self.document_count:
            raise ValueError(
                f"Tokenizer.{action}: the tokenizer has no vocabulary yet. Call "
                "tokenizer.fit_on_texts(texts) first, or load one with tokenizer_from_json."
            )

    # --------------------------------------------------------------------------- encoding

    def texts_to_sequences(self, texts) -> list[list[int]]:
        """Each text as the list of its token ids (unknown tokens: `oov_token`'s id, or none)."""
        return list(self.texts_to_sequences_generator(texts))

    def texts_to_sequences_generator(self, texts) -> Iterator[list[int]]:
        """`texts_to_sequences`, one text at a time."""
        self._check_fitted("texts_to_sequences")
        return self._encode(self._texts(texts, "texts_to_sequences"))

    def _encode(self, texts) -> Iterator[list[int]]:
        oov = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        for index, text in enumerate(texts):
            ids = []
            for token in self._tokens(text, "texts_to_sequences", index):
                i = self.word_index.get(token)
                if i is None or (self.num_words is not None and i >= self.num_words):
                    i = oov
                if i is not None:
                    ids.append(i)
            yield ids

    def sequences_to_texts(self, sequences) -> list[str]:
        """Each id sequence as its tokens joined by spaces (characters too, as in Keras)."""
        return list(self.sequences_to_texts_generator(sequences))

    def sequences_to_texts_generator(self, sequences) -> Iterator[str]:
        """`sequences_to_texts`, one sequence at a time."""
        self._check_fitted("sequences_to_texts")
        return self._decode(self._sequences(sequences, "sequences_to_texts"))

    def _decode(self, sequences) -> Iterator[str]:
        oov = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        for sequence in sequences:
            tokens = []
            for i in sequence:
                # Ids the tokenizer does not know (0, the padding, among them), and ids cut
                # by num_words, read as the oov token, or are dropped.
                if i not in self.index_word or (self.num_words is not None and i >= self.num_words):
                    i = oov
                if i is not None:
                    tokens.append(self.index_word[i])
            yield " ".join(tokens)

    def texts_to_matrix(self, texts, mode: str = "binary") -> np.ndarray:
        """`(len(texts), num_words)` float64 rows, one column per id; see `sequences_to_matrix`."""
        self._check_mode(mode)
        return self.sequences_to_matrix(self.texts_to_sequences(texts), mode=mode)

    def _check_mode(self, mode: str) -> None:
        if mode not in MATRIX_MODES:
            raise ValueError(f"Tokenizer: mode must be one of {MATRIX_MODES}; got {mode!r}.")

    def sequences_to_matrix(self, sequences, mode: str = "binary") -> np.ndarray:
        """Bag-of-ids rows `(len(sequences), num_words)`, float64; ids >= num_words ignored.

        With `c` the times id `j` occurs in a sequence of length `n` (ignored ids counted),
        `N = document_count` and `d_j = index_docs[j]`, column `j` holds:
        binary `1`; count `c`; freq `c / n`; tfidf `(1 + ln c) * ln(1 + N / (1 + d_j))`.
        Columns of ids that do not occur are 0. Width: `num_words`, else `len(word_index) + 1`.
        """
        self._check_mode(mode)
        if self.num_words is not None:
            width = self.num_words
        elif self.word_index:
            width = len(self.word_index) + 1
        else:
            raise ValueError(
                "Tokenizer.sequences_to_matrix: the width is num_words, or the vocabulary "
                "size; this tokenizer has neither. Pass Tokenizer(num_words=N) or fit it first."
            )
        if mode == "tfidf" and not self.document_count:
            raise ValueError(
                "Tokenizer.sequences_to_matrix: tfidf needs document frequencies; fit the "
                "tokenizer first (fit_on_texts or fit_on_sequences)."
            )
        sequences = self._sequences(sequences, "sequences_to_matrix")
        matrix = np.zeros((len(sequences), width))
        docs = np.array([self.index_docs.get(j, 0) for j in range(width)], dtype=np.float64)
        idf = np.log(1 + self.document_count / (1 + docs))
        for row, sequence in enumerate(sequences):
            ids = np.asarray(sequence, dtype=np.int64).reshape(-1)
            if (ids < 0).any():
                raise ValueError(
                    f"Tokenizer.sequences_to_matrix: sequences[{row}] holds a negative id "
                    f"({ids.min()}); ids are >= 0."
                )
            counts = np.bincount(ids[ids < width], minlength=width).astype(np.float64)
            seen = counts > 0
            if mode == "binary":
                matrix[row] = seen
            elif mode == "count":
                matrix[row] = counts
            elif mode == "freq":
                matrix[row] = counts / max(len(ids), 1)
            else:  # tfidf, Wikipedia's weighting scheme 2 as Keras uses it
                matrix[row, seen] = (1 + np.log(counts[seen])) * idf[seen]
        return matrix

    # ---------------------------------------------------------------------------- saving

    def get_config(self) -> dict:
        """Settings and vocabulary, in Keras' layout (the tables as JSON strings).

        `analyzer` is code and is not saved: pass it again to `tokenizer_from_json`.
        """
        if self.analyzer is not None:
            warnings.warn(
                "Tokenizer.get_config: the analyzer function is not saved; pass it again "
                "when loading: tokenizer_from_json(text, analyzer=my_analyzer).",
                UserWarning,
                stacklevel=2,
            )
        return {
            "num_words": self.num_words,
            "filters": self.filters,
            "lower": self.lower,
            "split": self.split,
            "char_level": self.char_level,
            "oov_token": self.oov_token,
            "document_count": self.document_count,
            "word_counts": json.dumps(self.word_counts),
            "word_docs": json.dumps(self.word_docs),
            "index_docs": json.dumps(self.index_docs),
            "index_word": json.dumps(self.index_word),
            "word_index": json.dumps(self.word_index),
        }

    def to_json(self, **kwargs) -> str:
        """`{"class_name": "Tokenizer", "config": get_config()}` as JSON (kwargs: json.dumps)."""
        return json.dumps({"class_name": "Tokenizer", "config": self.get_config()}, **kwargs)

    @classmethod
    def from_config(cls, config: dict, analyzer=None) -> Tokenizer:
        """The tokenizer `get_config` described (Keras 2 configs load too)."""
        config = dict(config)
        try:
            tables = {key: json.loads(config.pop(key)) for key in _TABLES}
        except KeyError as error:
            raise ValueError(
                f"Tokenizer.from_config: the config has no {error.args[0]!r}; it must be "
                "what Tokenizer.get_config() returned."
            ) from None
        tokenizer = cls(**config, analyzer=analyzer)
        tokenizer.word_counts = tables["word_counts"]
        tokenizer.word_docs = tables["word_docs"]
        tokenizer.word_index = tables["word_index"]
        # JSON object keys are strings; ids are integers.
        tokenizer.index_docs = {int(i): n for i, n in tables["index_docs"].items()}
        tokenizer.index_word = {int(i): token for i, token in tables["index_word"].items()}
        return tokenizer

    def __repr__(self) -> str:
        return (
            f"Tokenizer({len(self.word_index)} tokens, {self.document_count} documents, "
            f"num_words={self.num_words}, oov_token={self.oov_token!r})"
        )


_TABLES = ("word_counts", "word_docs", "index_docs", "index_word", "word_index")


def tokenizer_from_json(json_string: str, analyzer=None) -> Tokenizer:
    """The tokenizer `Tokenizer.to_json()` saved (also one saved by Keras 2).

    Example:
        >>> tokenizer = Tokenizer()
        >>> tokenizer.fit_on_texts(["a b b"])
        >>> tokenizer_from_json(tokenizer.to_json()).word_index
        {'b': 1, 'a': 2}
    """
    if not isinstance(json_string, (str, bytes)):
        raise TypeError(
            "tokenizer_from_json takes the string Tokenizer.to_json() returned; got "
            f"{type(json_string).__name__}. For a dict, use Tokenizer.from_config(d['config'])."
        )
    try:
        saved = json.loads(json_string)
    except json.JSONDecodeError as error:
        raise ValueError(f"tokenizer_from_json: not JSON ({error}).") from None
    if not isinstance(saved, dict) or saved.get("class_name") != "Tokenizer":
        raise ValueError(
            'tokenizer_from_json: expected {"class_name": "Tokenizer", "config": ...}, what '
            f"Tokenizer.to_json() writes; got {json_string[:60]!r}."
        )
    return Tokenizer.from_config(saved["config"], analyzer=analyzer)
