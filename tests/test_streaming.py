"""StreamingTranscriber without threads: window management on the real model and real speech."""

from __future__ import annotations

import numpy as np
from audio_fixtures import require_espeak, speech_samples

from streamer.audio import SAMPLE_RATE
from streamer.config import load_config
from streamer.streaming import SEEK_OVERLAP_S, UNCOVERED_S, StreamingTranscriber
from streamer.types import Hypothesis, Word


def _transcriber(engine) -> StreamingTranscriber:
    config = load_config("captions")
    return StreamingTranscriber(engine, config.decode, config.stream)


def _commit(transcriber: StreamingTranscriber, words: list[Word], window_end: int) -> None:
    reading = Hypothesis(tuple(words), (), transcriber.window_start, window_end, -0.2, 0.01, 1.2)
    for _ in range(transcriber.policy.n):
        transcriber.policy.update(reading)


def test_a_reading_that_stops_early_moves_the_window_to_the_committed_end(engine):
    transcriber = _transcriber(engine)
    words = [Word(" one", 0, SAMPLE_RATE // 2), Word(" two", SAMPLE_RATE // 2, SAMPLE_RATE)]
    window_end = int((1.0 + UNCOVERED_S + 0.5) * SAMPLE_RATE)
    _commit(transcriber, words, window_end)
    transcriber._skip_uncovered(words, window_end)
    assert transcriber.window_start == int((1.0 - SEEK_OVERLAP_S) * SAMPLE_RATE)


def test_a_reading_that_covers_its_window_keeps_the_window(engine):
    transcriber = _transcriber(engine)
    words = [Word(" one", 0, SAMPLE_RATE // 2), Word(" two", SAMPLE_RATE // 2, SAMPLE_RATE)]
    window_end = int((1.0 + UNCOVERED_S - 0.2) * SAMPLE_RATE)
    _commit(transcriber, words, window_end)
    transcriber._skip_uncovered(words, window_end)
    assert transcriber.window_start == 0


def test_streaming_steps_over_real_speech_commit_each_word_once(engine):
    """Steps of 0.45 s over two sentences: the words come out in order, none twice."""
    require_espeak()
    pause = np.zeros(SAMPLE_RATE // 2, np.float32)
    reference = "please call me tomorrow morning at nine we are going to the market to buy bread"
    audio = np.concatenate(
        [
            speech_samples("Please call me tomorrow morning at nine."),
            pause,
            speech_samples("We are going to the market to buy bread."),
            pause,
        ]
    )
    transcriber = _transcriber(engine)
    committed = []
    step = int(0.45 * SAMPLE_RATE)
    for end in range(step * 2, len(audio) + step, step):
        window = audio[transcriber.window_start : min(end, len(audio))]
        committed += transcriber.step(window).committed
    committed += transcriber.endpoint(len(audio), len(audio) / SAMPLE_RATE).committed
    words = [w.text.strip(" .,").lower() for w in committed]
    assert _word_errors(reference.split(), words) <= 2, words
    starts = [w.start_sample for w in committed]
    assert starts == sorted(starts)


def _word_errors(reference: list[str], hypothesis: list[str]) -> int:
    import jiwer

    out = jiwer.process_words(" ".join(reference), " ".join(hypothesis))
    return out.substitutions + out.deletions + out.insertions
