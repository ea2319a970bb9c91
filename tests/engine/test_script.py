"""Scripts without spaces: telling them by text, cutting them into units, joining units."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamer.engine.script import (
    has_spaceless,
    is_spaceless,
    is_spaceless_language,
    join_words,
    split_words,
    unit_spans,
    units,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("我们用Python写代码", True),
        ("今日はいい天気ですね。", True),
        ("カタカナ", True),
        ("สวัสดีครับ", True),  # Thai
        ("ສະບາຍດີ", True),  # Lao
        ("ជំរាបសួរ", True),  # Khmer
        ("မင်္ဂလာပါ", True),  # Myanmar
        ("Hello, world.", False),
        ("Привет, мир", False),
        ("안녕하세요 세계", False),  # Korean is written with spaces
        ("Tokyo is the capital (東京)", False),
        ("", False),
        ("123 。", False),
    ],
)
def test_spaceless_scripts_are_told_by_their_letters(text, expected):
    assert is_spaceless(text) is expected


def test_languages_written_without_spaces():
    assert all(is_spaceless_language(code) for code in ("zh", "ja", "th", "yue", "km"))
    assert not any(is_spaceless_language(code) for code in ("en", "ko", "de", "auto"))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("我们用Python写代码。", ["我", "们", "用", "Python", "写", "代", "码。"]),
        ("我 用 Python 3.5 写", ["我", " 用", " Python", " 3.5", " 写"]),
        ("「やっぱり」と言った。", ["「や", "っ", "ぱ", "り」", "と", "言", "っ", "た。"]),
        (" 东京, Tokyo!", [" 东", "京,", " Tokyo!"]),
        ("สวัสดี", ["ส", "วั", "ส", "ดี"]),  # vowel marks stay with their consonant
        ("Hello, world.", ["Hello,", " world."]),
        ("。", ["。"]),
    ],
)
def test_units_are_characters_of_spaceless_scripts_and_words_of_others(text, expected):
    assert units(text) == expected


@given(st.text(alphabet=st.sampled_from("我们的是東京やっぱりカナ ab1.,。「」、!ั")))
def test_units_cover_the_text_in_order(text):
    spans = unit_spans(text)
    assert "".join(text[start:end] for start, end in spans) == text
    assert all(start < end for start, end in spans)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    # a unit holds at most one character of a spaceless script (and its marks)
    base = [sum(has_spaceless(c) and c != "\u0e31" for c in unit) for unit in units(text)]
    assert all(count <= 1 for count in base)


def test_joining_puts_no_space_next_to_a_spaceless_character():
    assert join_words(["我", "们", "用", "Python", "写", "代", "码"]) == "我们用Python写代码"
    assert join_words(["hello", "world"]) == "hello world"
    assert join_words(["Tokyo", "(東", "京)"]) == "Tokyo (東京)"
    assert join_words(split_words(" 我们 用 Python 写代码 ")) == "我们用Python写代码"


@given(st.lists(st.sampled_from(["hello", "world,", "it's", "3.5", "a-b"]), max_size=8))
def test_words_without_spaceless_letters_split_and_join_as_before(words):
    text = " ".join(words)
    assert split_words(text) == text.split()
    assert join_words(split_words(text)) == " ".join(text.split())


def test_the_tokenizer_cuts_mixed_text_into_units_never_inside_a_character(tokenizer):
    text = "我们用Python写代码。"
    tokens = tokenizer.encode(text)
    words, boundaries = tokenizer.split_to_units(tokens)
    assert words == ["我", "们", "用", "Python", "写", "代", "码。"]
    assert "".join(words) == text
    assert boundaries[0] == 0 and boundaries[-1] == len(tokens)
    assert all(a < b for a, b in zip(boundaries, boundaries[1:]))
    # a character spelled by several tokens spans all of them: its boundaries are whole
    # tokens, and those tokens decode to it
    index = words.index("写")
    start, end = boundaries[index], boundaries[index + 1]
    assert start == int(start) and end == int(end)
    assert tokenizer.decode(tokens[int(start) : int(end)]) == "写"


def test_english_units_are_the_words_as_before(tokenizer):
    tokens = tokenizer.encode(" And so, my fellow Americans: ask not.")
    words, groups = tokenizer.split_to_word_tokens(tokens)
    units_, boundaries = tokenizer.split_to_units(tokens)
    assert units_ == words
    assert boundaries == [0, *[sum(len(g) for g in groups[: i + 1]) for i in range(len(groups))]]


@pytest.fixture(scope="module")
def tokenizer(base_model_dir):
    from streamer.engine.tokenizer import Tokenizer

    return Tokenizer(base_model_dir)
