"""`keras.preprocessing.text`: the classic `Tokenizer` (implemented in `rnnkit.data`)."""

from rnnkit.data import Tokenizer, text_to_word_sequence, tokenizer_from_json

__all__ = ["Tokenizer", "text_to_word_sequence", "tokenizer_from_json"]
