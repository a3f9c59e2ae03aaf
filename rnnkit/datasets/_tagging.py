"""Tagged sentences: the user's CoNLL-U or two-column files, and a synthetic POS set.

No real hand-tagged corpus ships in any package rnnkit can install offline, so the
built-in set, `tagging_sentences`, is generated from a small English grammar.

The CoNLL-U reader is our own 40 lines rather than the `conllu` package: rnnkit needs one
tag column of it, and its own reader can name the file and line of every mistake. The
tests check it against `conllu` where that is installed.
"""

from __future__ import annotations

import os
import random

from rnnkit.datasets._text import read_utf8

# The ten columns of a CoNLL-U token line (https://universaldependencies.org/format.html).
CONLLU_COLUMNS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")


def load_tagged(path, tag_column: str = "upos") -> list[tuple[list[str], list[str]]]:
    """Read tagged sentences from a CoNLL-U file or a two-column file; the format is detected.

    - CoNLL-U: ten tab-separated columns per token, `#` comment lines, a blank line after
      each sentence. Multiword-token lines (ID `1-2`) and empty nodes (ID `1.1`) are
      skipped, so the tokens are the syntactic words.
    - Two columns: `word TAG` per line, separated by a tab or spaces, a blank line between
      sentences. Chosen when the first line that is not a comment has fewer than three
      tab-separated fields.

    Args:
        path: the file, UTF-8.
        tag_column: which CoNLL-U column holds the tags: "upos" (universal part of speech),
            "xpos", "deprel", "lemma", "feats", "head", "deps" or "misc". Only "upos"
            applies to a two-column file, where it means the second column.

    Returns:
        A list of sentences, each `(tokens, tags)`: two lists of strings of the same length.

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "train.txt"
        >>> _ = path.write_text("The DET\\ndog NOUN\\nbarks VERB\\n\\nRun VERB\\n! PUNCT\\n")
        >>> load_tagged(path)
        [(['The', 'dog', 'barks'], ['DET', 'NOUN', 'VERB']), (['Run', '!'], ['VERB', 'PUNCT'])]
    """
    path = os.fspath(path)
    if tag_column not in CONLLU_COLUMNS[2:]:
        raise ValueError(
            f"load_tagged: unknown tag_column {tag_column!r}; a CoNLL-U file's tag columns are "
            f"{', '.join(map(repr, CONLLU_COLUMNS[2:]))}."
        )
    lines = read_utf8(path, "tagged file").split("\n")
    first = next((line for line in lines if line.strip() and not line.startswith("#")), None)
    if first is None:
        raise ValueError(
            f"'{path}' holds no tokens; expected CoNLL-U lines or 'word TAG' lines, with a "
            "blank line after each sentence."
        )
    if len(first.split("\t")) >= 3:
        return _read_conllu(lines, path, CONLLU_COLUMNS.index(tag_column))
    if tag_column != "upos":
        raise ValueError(
            f"'{path}' is a two-column file ('word TAG' per line), so it has no "
            f"{tag_column!r} column; leave out tag_column, or give a CoNLL-U file."
        )
    return _read_two_columns(lines, path)


def _sentences(lines: list[str], token_of) -> list:
    """`[(tokens, tags), ...]` from lines where a blank line ends a sentence; `token_of(number,
    line)` gives a non-blank line's `(token, tag)`, or None for a line that holds no token."""
    sentences, tokens, tags = [], [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            if tokens:
                sentences.append((tokens, tags))
                tokens, tags = [], []
            continue
        pair = token_of(number, line)
        if pair is not None:
            tokens.append(pair[0])
            tags.append(pair[1])
    if tokens:
        sentences.append((tokens, tags))
    return sentences


def _read_conllu(lines: list[str], path: str, column: int) -> list:
    def token_of(number, line):
        if line.startswith("#"):
            return None
        fields = line.split("\t")
        if len(fields) != 10:
            raise ValueError(
                f"Line {number} of '{path}' has {len(fields)} tab-separated columns; a CoNLL-U "
                f"token line has 10 ({' '.join(CONLLU_COLUMNS)}), '_' where a value is "
                f"missing. The line: {line[:80]!r}."
            )
        token_id = fields[0]
        if "-" in token_id or "." in token_id:  # a multiword token or an empty node
            return None
        if not token_id.isdigit():
            raise ValueError(
                f"Line {number} of '{path}' has the ID {token_id!r}; CoNLL-U IDs are 1, 2, 3, "
                "... (or 1-2 for a multiword token, 1.1 for an empty node)."
            )
        tag = fields[column]
        if tag in ("", "_"):
            raise ValueError(
                f"Line {number} of '{path}' has no {CONLLU_COLUMNS[column]!r} tag ('_') for "
                f"{fields[1]!r}. Tag every token, or choose another tag_column."
            )
        return fields[1], tag

    sentences = _sentences(lines, token_of)
    if not sentences:
        raise ValueError(f"'{path}' holds CoNLL-U comments but no token lines.")
    return sentences


def _read_two_columns(lines: list[str], path: str) -> list:
    def token_of(number, line):
        fields = line.strip().split("\t") if "\t" in line else line.split()
        if len(fields) != 2 or not all(f.strip() for f in fields):
            hint = (
                " It looks like CoNLL-U with spaces: separate its columns with tabs."
                if len(line.split()) == 10
                else " For CoNLL-2003 style files keep the first and last: awk '{print $1, $NF}'."
                if len(fields) > 2
                else ""
            )
            raise ValueError(
                f"Line {number} of '{path}' has {len(fields)} fields; a two-column file has "
                f"'word TAG' on each line and a blank line between sentences. The line: "
                f"{line[:80]!r}.{hint}"
            )
        return fields[0].strip(), fields[1].strip()

    return _sentences(lines, token_of)


# ---- The synthetic part-of-speech set -------------------------------------------------------

# Words that are nouns and verbs: base form, third person singular / noun plural, past.
# The noun plural and the verb's -s form are the same word ("books", "watches").
_NOUN_VERBS = [
    ("book", "books", "booked", True),
    ("watch", "watches", "watched", True),
    ("run", "runs", "ran", False),
    ("fly", "flies", "flew", False),
    ("play", "plays", "played", False),
    ("park", "parks", "parked", True),
    ("train", "trains", "trained", True),
    ("drink", "drinks", "drank", True),
    ("walk", "walks", "walked", False),
    ("ring", "rings", "rang", False),
    ("cook", "cooks", "cooked", True),
    ("plant", "plants", "planted", True),
    ("light", "lights", "lit", True),
    ("paint", "paints", "painted", True),
    ("water", "waters", "watered", True),
    ("work", "works", "worked", False),
    ("answer", "answers", "answered", True),
    ("fish", "fishes", "fished", False),
]  # the last field: transitive (takes an object)
_VERBS = [
    ("see", "sees", "saw", True),  # "saw" is also a noun
    ("like", "likes", "liked", True),
    ("find", "finds", "found", True),
    ("take", "takes", "took", True),
    ("open", "opens", "opened", True),
    ("carry", "carries", "carried", True),
    ("need", "needs", "needed", True),
    ("sleep", "sleeps", "slept", False),
    ("laugh", "laughs", "laughed", False),
    ("wait", "waits", "waited", False),
    ("arrive", "arrives", "arrived", False),
]
# "saw" is ambiguous only through "see", so "see" is drawn five times as often as the rest.
_ANY_VERB = _NOUN_VERBS + _VERBS + [_VERBS[0]] * 4
_NOUNS = (
    [
        ("dog", "dogs"),
        ("cat", "cats"),
        ("man", "men"),
        ("woman", "women"),
        ("child", "children"),
        ("teacher", "teachers"),
        ("city", "cities"),
        ("house", "houses"),
        ("letter", "letters"),
        ("river", "rivers"),
        ("table", "tables"),
        ("car", "cars"),
        ("bird", "birds"),
        ("saw", "saws"),
        ("can", "cans"),
        ("well", "wells"),
    ]
    + [(base, plural) for base, plural, _, _ in _NOUN_VERBS if base != "fish"]
    + [("fish", "fish")]
)
_ADJECTIVES = ["big", "old", "red", "quiet", "happy", "new", "light", "fast", "hard", "late"]
_ADVERBS = ["quickly", "often", "never", "today", "slowly", "fast", "hard", "late", "well"]
_ADVERBS_AFTER = ["up", "down", "back", "again"]  # "down" and "up" are also prepositions
_PREPOSITIONS = ["in", "on", "with", "near", "under", "from", "behind", "at", "for", "up", "down"]
_DETERMINERS = ["the", "a", "this", "that", "every", "some", "the", "the", "a"]
_PLURAL_DETERMINERS = ["the", "these", "those", "some", "all"]
_POSSESSIVES = ["my", "your", "his", "her", "our", "their"]  # UD tags these PRON
_SUBJECTS = [("I", False), ("you", False), ("we", False), ("they", False)]
_SUBJECTS += [("he", True), ("she", True), ("it", True)]  # True: third person singular
_OBJECTS = ["me", "you", "him", "her", "us", "them", "it"]
_NAMES = ["Anna", "John", "Maria", "Tom", "Paris", "London", "Berlin", "Sara"]
_NUMBERS = ["two", "three", "five", "ten", "12", "40"]
_MODALS = ["will", "can", "must", "should", "could", "would", "might"]


def tagging_sentences(count: int = 2000, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """A SYNTHETIC part-of-speech set: English-like sentences from a small grammar.

    Nothing real and hand-tagged ships with any package rnnkit can install offline, so this
    set is generated, and its tags are right by construction. The tags are the Universal
    POS tags DET, NOUN, VERB, ADJ, ADV, PRON, ADP, CCONJ, AUX, PUNCT, PROPN and NUM, as
    Universal Dependencies uses them ("my" and "that" as a pronoun are PRON, "is", "can"
    and "will" AUX). Sentences run from 3 to 20 tokens: statements, questions, commands,
    and two clauses joined by "and", "but" or "or".

    Many words take different tags in different places, so that a tagger must read the
    context: "book", "watch", "run", "fly", "play", "park", "train", "drink", "walk",
    "light" and others are NOUN or VERB ("Book a table." / "the book"), "books" and
    "watches" a plural NOUN or a VERB, "saw" a NOUN or the past of "see", "can" a NOUN
    or AUX, "that" and "this" DET or PRON, "fast", "hard" and "late" ADJ or ADV, "well"
    NOUN or ADV, "light" also ADJ, and "up" and "down" ADP or ADV.

    Args:
        count: how many sentences.
        seed: the same seed gives the same sentences.

    Returns:
        A list of `(tokens, tags)`.

    Example:
        >>> tokens, tags = tagging_sentences(count=1)[0]
        >>> len(tokens) == len(tags) and 3 <= len(tokens) <= 20
        True
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"tagging_sentences: count must be a positive integer, got {count!r}.")
    rng = random.Random(seed)
    sentences = []
    while len(sentences) < count:
        pairs = _sentence(rng)
        if 3 <= len(pairs) <= 20:
            word, tag = pairs[0]
            pairs[0] = (word[0].upper() + word[1:], tag)
            sentences.append(([w for w, _ in pairs], [t for _, t in pairs]))
    return sentences


def _sentence(rng: random.Random) -> list[tuple[str, str]]:
    kind = rng.random()
    if kind < 0.55:
        return _clause(rng) + [(".", "PUNCT")]
    if kind < 0.7:
        conjunction = rng.choice(["and", "but", "or"])
        comma = [(",", "PUNCT")] if rng.random() < 0.5 else []
        return _clause(rng) + comma + [(conjunction, "CCONJ")] + _clause(rng) + [(".", "PUNCT")]
    if kind < 0.82:  # a command: the verb comes first
        verb = rng.choice(_ANY_VERB)
        return [(verb[0], "VERB")] + _rest_of_verb_phrase(rng, verb) + [(rng.choice(".!"), "PUNCT")]
    if kind < 0.92:  # a question: AUX subject verb
        subject, singular = _subject(rng)
        if rng.random() < 0.5:
            aux = rng.choice(["does", "did"] if singular else ["do", "did"])
        else:
            aux = rng.choice(_MODALS)
        verb = rng.choice(_ANY_VERB)
        rest = _rest_of_verb_phrase(rng, verb)
        return [(aux, "AUX")] + subject + [(verb[0], "VERB")] + rest + [("?", "PUNCT")]
    # "that" and "this" standing alone, as pronouns
    pronoun = (rng.choice(["that", "this"]), "PRON")
    if rng.random() < 0.5:  # "Anna watched that."
        verb = rng.choice([v for v in _ANY_VERB if v[3]])
        return _subject(rng)[0] + [(verb[2], "VERB"), pronoun, (".", "PUNCT")]
    copula = rng.choice(["is", "was"])
    complement = [(rng.choice(_ADJECTIVES), "ADJ")] if rng.random() < 0.5 else _noun_phrase(rng)[0]
    return [pronoun, (copula, "AUX")] + complement + [(".", "PUNCT")]


def _clause(rng: random.Random) -> list[tuple[str, str]]:
    subject, singular = _subject(rng)
    form = rng.random()
    if form < 0.2:  # the copula: "the dog is old", "the dog is a fast runner"
        copula = rng.choice(["is", "was"] if singular else ["are", "were"])
        if subject[0][0] == "I":
            copula = rng.choice(["am", "was"])
        complement = (
            [(rng.choice(_ADJECTIVES), "ADJ")] if rng.random() < 0.6 else _noun_phrase(rng)[0]
        )
        return subject + [(copula, "AUX")] + complement + _adverbs(rng)
    verb = rng.choice(_ANY_VERB)
    if form < 0.45:
        head = [(rng.choice(_MODALS), "AUX"), (verb[0], "VERB")]
    elif form < 0.52:  # "have" as a verb: they have a saw
        return subject + [("has" if singular else "have", "VERB")] + _noun_phrase(rng)[0]
    elif form < 0.75:
        head = [(verb[1] if singular else verb[0], "VERB")]
    else:
        head = [(verb[2], "VERB")]
    return subject + head + _rest_of_verb_phrase(rng, verb)


def _rest_of_verb_phrase(rng: random.Random, verb) -> list[tuple[str, str]]:
    rest = []
    if verb[3]:
        rest += _noun_phrase(rng, pronoun=True)[0]
    elif rng.random() < 0.3:
        rest.append((rng.choice(_ADVERBS_AFTER), "ADV"))
    if rng.random() < 0.4:
        rest += _prepositional_phrase(rng)
    return rest + _adverbs(rng)


def _adverbs(rng: random.Random) -> list[tuple[str, str]]:
    return [(rng.choice(_ADVERBS), "ADV")] if rng.random() < 0.35 else []


def _prepositional_phrase(rng: random.Random) -> list[tuple[str, str]]:
    return [(rng.choice(_PREPOSITIONS), "ADP")] + _noun_phrase(rng)[0]


def _subject(rng: random.Random) -> tuple[list[tuple[str, str]], bool]:
    """A subject and whether it is third person singular."""
    choice = rng.random()
    if choice < 0.3:
        word, singular = rng.choice(_SUBJECTS)
        return [(word, "PRON")], singular
    if choice < 0.4:
        return [(rng.choice(_NAMES), "PROPN")], True
    return _noun_phrase(rng)


def _noun_phrase(rng: random.Random, pronoun: bool = False) -> tuple[list[tuple[str, str]], bool]:
    """A noun phrase and whether it is singular; `pronoun` allows an object pronoun."""
    choice = rng.random()
    if pronoun and choice < 0.15:
        return [(rng.choice(_OBJECTS), "PRON")], True
    if pronoun and choice < 0.2:
        return [(rng.choice(_NAMES), "PROPN")], True
    singular = rng.random() < 0.55
    noun, plural = rng.choice(_NOUNS)
    start = rng.random()
    if singular:
        if start < 0.2:
            words = [(rng.choice(_POSSESSIVES), "PRON")]
        else:
            words = [(rng.choice(_DETERMINERS), "DET")]
    elif start < 0.25:
        words = [(rng.choice(_NUMBERS), "NUM")]
    elif start < 0.4:
        words = [(rng.choice(_POSSESSIVES), "PRON")]
    elif start < 0.85:
        words = [(rng.choice(_PLURAL_DETERMINERS), "DET")]
    else:
        words = []
    if rng.random() < 0.35:
        words.append((rng.choice(_ADJECTIVES), "ADJ"))
    if words and words[0][0] == "a" and (words[-1][0] if len(words) > 1 else noun)[0] in "aeiou":
        words[0] = ("an", "DET")
    words.append((noun if singular else plural, "NOUN"))
    if rng.random() < 0.12:  # a prepositional phrase inside the noun phrase
        words += [(rng.choice(_PREPOSITIONS), "ADP")] + _noun_phrase(rng)[0]
    return words, singular
