"""Scripts written without spaces between words (Chinese, Japanese, Thai, ...), told by text.

Whisper spells such text without spaces, so a "word" split at spaces is a whole sentence: the
live path would agree, dedupe seams, time and guard whole sentences. Text in these scripts is
cut into units of one character instead (``units``); everything else keeps its words.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

# Code point ranges of the scripts that do not separate words with spaces.
SPACELESS_RANGES = (
    (0x0E00, 0x0E7F),  # Thai
    (0x0E80, 0x0EFF),  # Lao
    (0x0F00, 0x0FFF),  # Tibetan
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x19E0, 0x19FF),  # Khmer symbols
    (0x2E80, 0x2FDF),  # CJK radicals, Kangxi radicals
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3021, 0x3029),  # Hangzhou numerals
    (0x3031, 0x3035),  # kana repeat marks
    (0x3040, 0x30FF),  # Hiragana, Katakana (ー included)
    (0x3100, 0x312F),  # Bopomofo
    (0x31A0, 0x31BF),  # Bopomofo extended
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA9E0, 0xA9FF),  # Myanmar extended-B
    (0xAA60, 0xAA7F),  # Myanmar extended-A
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # half-width Katakana
    (0x20000, 0x3134F),  # CJK extensions B-G
)

# Whisper's codes of the languages written in those scripts (the token budget of a decode is
# set before its text is known).
SPACELESS_LANGUAGES = frozenset({"zh", "yue", "ja", "th", "lo", "km", "my", "bo"})


def is_spaceless_char(char: str) -> bool:
    """Whether ``char`` belongs to a script written without spaces between words (False for
    an empty string)."""
    if len(char) != 1:
        return False
    code = ord(char)
    return any(low <= code <= high for low, high in SPACELESS_RANGES)


def is_spaceless(text: str) -> bool:
    """Whether ``text`` is written mostly without spaces: it has at least as many characters
    of a spaceless script as words of other letters ("我们用Python写代码" is; "Tokyo is the
    capital (東京)" is not)."""
    spaceless, words = 0, 0
    in_word = False  # inside a run of other letters
    for char in text:
        if is_spaceless_char(char):
            spaceless += not _is_mark(char)
            in_word = False
        elif char.isalpha():
            words += not in_word
            in_word = True
        else:
            in_word = False
    return spaceless > 0 and spaceless >= words


def has_spaceless(text: str) -> bool:
    """Whether any character of ``text`` is in a spaceless script."""
    return any(is_spaceless_char(char) for char in text)


def is_spaceless_language(language: str) -> bool:
    return language in SPACELESS_LANGUAGES


def _is_mark(char: str) -> bool:
    # combining marks (Thai vowels and tones) belong to the character before them
    return unicodedata.category(char).startswith("M")


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char).startswith("P")


def _opens(char: str) -> bool:
    # 「 ( “ belong to what follows them
    return unicodedata.category(char) in ("Ps", "Pi")


def unit_spans(text: str) -> list[tuple[int, int]]:
    """Where ``text`` is cut into units, as (start, end) character offsets covering it all.

    A character of a spaceless script is a unit of its own; a run of other letters and digits
    ("Python", "3.5") is one unit, as a word is. Spaces and opening punctuation go with the
    unit after them, other punctuation and combining marks with the unit before them, so the
    units joined without separators give back ``text``."""
    spans: list[list[int]] = []
    pending = 0  # where the characters waiting for the next unit begin
    joinable = False  # the last unit is a run of other letters that the next one extends
    for index, char in enumerate(text):
        if char.isspace() or _opens(char):
            joinable = False
            continue
        if spans and (_is_mark(char) or _is_punctuation(char)):
            spans[-1][1] = index + 1
            joinable = joinable and pending == index and not is_spaceless_char(char)
            pending = index + 1
            continue
        if _is_punctuation(char):  # before the first unit: it goes with the first one
            continue
        if joinable and pending == index and not is_spaceless_char(char):
            spans[-1][1] = index + 1
        else:
            spans.append([pending, index + 1])
            joinable = not is_spaceless_char(char)
        pending = index + 1
    if pending < len(text):  # spaces or punctuation after the last unit, or no unit at all
        if spans:
            spans[-1][1] = len(text)
        else:
            spans.append([0, len(text)])
    return [(start, end) for start, end in spans]


def units(text: str) -> list[str]:
    """``text`` cut into units (see ``unit_spans``): characters of spaceless scripts, words
    of others."""
    return [text[start:end] for start, end in unit_spans(text)]


def join_words(pieces: Iterable[str]) -> str:
    """Words or units joined as text: a space between two words, none next to a character of
    a spaceless script ("我们" "用" "Python" "写" -> "我们用Python写"; "hello" "world" ->
    "hello world")."""
    result = ""
    for piece in pieces:
        piece = piece.strip()
        if not piece:
            continue
        if result and not (is_spaceless_char(result[-1]) or is_spaceless_char(piece[0])):
            result += " "
        result += piece
    return result


def split_words(text: str) -> list[str]:
    """The comparable pieces of ``text``: its spaced words, each cut into units where it holds
    characters of a spaceless script (the inverse of ``join_words``)."""
    pieces: list[str] = []
    for word in text.split():
        if has_spaceless(word):
            pieces.extend(unit.strip() for unit in units(word))
        else:
            pieces.append(word)
    return pieces
