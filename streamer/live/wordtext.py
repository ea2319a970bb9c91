"""Word text as the live path compares it: readings of the same audio differ in case, punctuation
and spacing, so words are compared in a normalised form, and joined the way Whisper spells them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence

from streamer.types import Word

# A committed word ending with one of these closes a sentence: a safe place to cut the window.
SENTENCE_END = (".", "?", "!", "\u3002", "\uff1f", "\uff01", "\u2026")


def normalize(text: str) -> str:
    """The form words are compared in: lower case, no punctuation, no spaces."""
    return "".join(
        char
        for char in text.lower()
        if not unicodedata.category(char).startswith("P") and not char.isspace()
    )


def repeat_lengths(items: Sequence, index: int, shortest: int, longest: int) -> Iterator[int]:
    """Lengths (longest first, ``shortest``..``longest``) of the phrases starting at
    ``index`` that are said again right after themselves."""
    for n in range(min(longest, (len(items) - index) // 2), shortest - 1, -1):
        # the first word rules out most lengths without copying slices (a phrase may be
        # as long as half the reading)
        if items[index] != items[index + n]:
            continue
        if items[index : index + n] == items[index + n : index + 2 * n]:
            yield n


def words_text(words: Sequence[Word]) -> str:
    """Words joined the way Whisper spells them (each carries its leading space)."""
    return "".join(word.text for word in words).strip()


def common_prefix_length(sequences: Sequence[Sequence[Word]]) -> int:
    """Number of leading words on which every sequence agrees (by normalised text)."""
    if not sequences:
        return 0
    length = 0
    for column in zip(*sequences, strict=False):  # the shortest reading bounds agreement
        first = normalize(column[0].text)
        if any(normalize(word.text) != first for word in column[1:]):
            break
        length += 1
    return length
