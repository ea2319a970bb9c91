"""Tokenizer special ids and incremental detokenization (property-tested)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.engine.tokenizer import REPLACEMENT_CHAR, IncrementalDetokenizer, Tokenizer


@pytest.fixture(scope="module")
def tokenizer(model_dir) -> Tokenizer:
    return Tokenizer(model_dir)


def test_special_ids_come_from_the_model_directory(tokenizer):
    special = tokenizer.special
    assert (special.eot, special.sot, special.no_timestamps) == (50256, 50257, 50362)
    assert special.timestamp_begin == special.no_timestamps + 1
    assert special.no_speech == 50361 and special.sot_prev == 50360


TEXTS = st.text(alphabet=st.sampled_from(list("abc xyzé日本語♪ ,.!ü🎉")), min_size=1, max_size=40)


@settings(max_examples=80, deadline=None)
@given(text=TEXTS, data=st.data())
def test_incremental_detokenizer_any_split(tokenizer, text, data):
    """Any split of a token sequence gives the same final text and never emits U+FFFD."""
    tokens = tokenizer.encode(text)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(tokens)), max_size=6)))
    detok = IncrementalDetokenizer(tokenizer)
    pieces, start = [], 0
    for cut in [*cuts, len(tokens)]:
        pieces.append(detok.push(tokens[start:cut]))
        start = cut
    pieces.append(detok.flush())
    assert all(REPLACEMENT_CHAR not in piece for piece in pieces)
    assert "".join(pieces) == tokenizer.decode(tokens)


def test_words_keep_multibyte_characters_whole(tokenizer):
    tokens = tokenizer.encode(" hello 日本語 world")
    words, groups = tokenizer.split_to_word_tokens(tokens)
    assert words == [" hello", " 日本語", " world"]
    assert sum(len(g) for g in groups) == len(tokens)
