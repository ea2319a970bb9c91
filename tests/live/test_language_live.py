"""Live transcription in the language spoken: detected per utterance on the base model, or
given; the words committed carry it, and nothing is committed before it is settled."""

from __future__ import annotations

import time

import pytest
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st
from language_fixtures import runs, speech, switching_audio

from streamer.audio import SAMPLE_RATE
from streamer.config import DecodeOptions, StreamConfig, load_config
from streamer.engine.decoding import DecodingResult
from streamer.live.filesource import FileSource
from streamer.live.pipeline import Finished, Pipeline
from streamer.live.reading import LANGUAGE_LOCK_S, Reading
from streamer.live.stepcost import StepWork
from streamer.live.streaming import StreamingTranscriber
from streamer.types import Committed, CommittedWord, Word


def live_words(engine, audio, tmp_path, **decode) -> list[CommittedWord]:
    """The words committed playing ``audio`` through the live pipeline on the modelled
    clock (runs repeat exactly)."""
    path = tmp_path / "input.wav"
    soundfile.write(path, audio, SAMPLE_RATE)
    overrides = {"stream": {"pace": "fast", "virtual_cpu_speed": 1.0}, "decode": decode}
    config = load_config("captions", overrides=overrides)
    pipeline = Pipeline(FileSource(path, pace="fast"), engine, config, virtual_clock=True)
    words: list[CommittedWord] = []
    with pipeline:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            event = pipeline.next_event(0.2)
            if isinstance(event, Finished):
                break
            if isinstance(event, Committed):
                words += event.words
        else:
            pytest.fail("pipeline did not finish")
    return words


def test_each_utterance_is_read_in_its_own_language(base_engine, tmp_path):
    """German, a pause, English, a pause, German: each utterance detects its language once
    enough of it is in, and commits nothing before."""
    words = live_words(base_engine, switching_audio(["de", "en", "de"]), tmp_path)
    languages = [w.language for w in words]
    assert runs(languages) == ["de", "en", "de"], [(w.text, w.language) for w in words]
    text = {code: "".join(w.text for w in words if w.language == code) for code in ("de", "en")}
    assert "Heute" in text["de"] and "park" in text["en"], text
    first = words[0]  # the language settles on a reading with LANGUAGE_LOCK_S of speech
    assert first.emitted_at_s >= LANGUAGE_LOCK_S


def test_a_given_language_commits_as_soon_as_english_does(base_engine, tmp_path):
    """With ``language = "de"`` nothing waits for a detection: the first words commit as
    early as they do on the English-only model's path, and all are German."""
    words = live_words(base_engine, speech("de"), tmp_path, language="de")
    assert words and {w.language for w in words} == {"de"}
    assert words[0].emitted_at_s < LANGUAGE_LOCK_S
    assert "Heute" in "".join(w.text for w in words)


def test_translate_live_gives_english_words(base_engine, tmp_path):
    words = live_words(base_engine, speech("de"), tmp_path, task="translate")
    text = "".join(w.text for w in words).lower()
    assert words and {w.language for w in words} == {"de"}
    assert "today" in text and "heute" not in text, text


def test_an_utterance_shorter_than_the_detection_still_commits(base_engine, tmp_path):
    """A short utterance ends before its language settles: what it read is committed at
    the end, in the language detected on all of it."""
    audio = speech("es")[: int(2.0 * SAMPLE_RATE)]
    words = live_words(base_engine, audio, tmp_path)
    assert words, "a short utterance lost its words"
    assert len({w.language for w in words}) == 1


def test_english_only_words_are_english(engine, tmp_path):
    words = live_words(engine, speech("en"), tmp_path)
    assert words and {w.language for w in words} == {"en"}
    assert words[0].emitted_at_s < LANGUAGE_LOCK_S  # no wait for a detection


def _reading(end_s: float, language: str, rejected: bool) -> Reading:
    """A reading of the window [0, end_s) in ``language``: the same word every half second
    (readings agree), none if it was rejected."""
    end = int(end_s * SAMPLE_RATE)
    half = SAMPLE_RATE // 2
    words = tuple(Word(f" w{i}", i * half, (i + 1) * half - 160) for i in range(end // half))
    result = DecodingResult((), "", -0.1, -0.1, 0.01, 1.0, 0.0, language=language)
    shown = () if rejected else words
    return Reading(0, end, result, "no speech" if rejected else "", False, shown, NO_WORK, 0.0)


NO_WORK = StepWork(0, 0, 0, 0, 0)


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["de", "en", "fr"]), st.booleans()), min_size=1, max_size=10
    )
)
def test_no_word_is_committed_before_its_language_settles(base_engine, steps):
    """Readings 0.45 s apart from 0.8 s, each in some detected language, some rejected: no
    word commits before a reading with LANGUAGE_LOCK_S of speech settles the language, every
    word after carries it, and the end of the utterance loses none of the newest reading."""
    transcriber = StreamingTranscriber(base_engine, DecodeOptions(), StreamConfig())
    settled_by = None  # the reading that settles the language
    committed: list[CommittedWord] = []
    for k, (language, rejected) in enumerate(steps):
        end_s = 0.8 + 0.45 * k
        step = transcriber.apply(_reading(end_s, language, rejected))
        if settled_by is None and end_s >= LANGUAGE_LOCK_S and not rejected:
            settled_by = language
        assert transcriber.language == settled_by
        assert settled_by is not None or not step.committed
        committed += step.committed
    last_language, last_rejected = steps[-1]
    committed += transcriber.endpoint(int(end_s * SAMPLE_RATE), end_s).committed
    assert {w.language for w in committed} <= {settled_by or last_language}
    if not last_rejected:  # the newest reading's words are all final
        assert [w.text for w in committed] == [w.text for w in _reading(end_s, "", False).words]
    assert transcriber.language is None  # the next utterance detects again
