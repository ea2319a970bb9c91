"""Speech regions for offline transcription: silence skipped, windows placed at pauses.

Property tests on generated speech and silence check the regions themselves (ordered, apart by
at least the gap, covering every VAD span, the same for any cut of the stream into blocks);
the transcription tests check that a session of several voices with long pauses loses no
utterance, which a window opened in silence did on the 10-voice session.
"""

from __future__ import annotations

import numpy as np
import pytest
from audio_fixtures import needs_espeak, silence, speech_samples
from audio_fixtures import white_noise as noise
from conftest import require_eval
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.audio import SAMPLE_RATE, ms_to_samples
from streamer.audiofile import read_audio
from streamer.bench.wer import normalize, word_errors
from streamer.config import OfflineConfig, VadConfig
from streamer.engine.regions import speech_regions
from streamer.engine.transcribe import transcribe_audio
from streamer.errors import ConfigError
from streamer.vad import detect_speech_spans

SENTENCES = (
    "Good morning everyone, and thank you all for coming to the meeting today.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "We also need a small plastic snake and a big toy frog for the kids.",
)
VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb-x-rp+m3", "en-us+f5")


def _blocks(audio: np.ndarray, sizes: list[int]):
    """``audio`` cut into blocks of ``sizes`` (cycled), the way a file is read from disk."""
    start, index = 0, 0
    while start < len(audio):
        size = sizes[index % len(sizes)]
        yield audio[start : start + size]
        start, index = start + size, index + 1


def _session(parts: list[tuple[int, int]], floor_db: float = -60.0) -> np.ndarray:
    """Sentences (by index) each followed by a pause (ms), over a faint noise floor."""
    pieces = [silence(0.5)]
    for sentence, pause_ms in parts:
        pieces += [speech_samples(SENTENCES[sentence]), silence(pause_ms / 1000)]
    audio = np.concatenate(pieces).astype(np.float32)
    return audio + noise(len(audio) / SAMPLE_RATE + 0.01, floor_db, seed=3)[: len(audio)]


@needs_espeak
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(
        st.tuples(st.integers(0, len(SENTENCES) - 1), st.integers(100, 4000)),
        min_size=1,
        max_size=4,
    ),
    sizes=st.lists(st.integers(1, 3 * SAMPLE_RATE), min_size=1, max_size=4),
    gap_ms=st.sampled_from([0, 300, 1000, 2500]),
    pad_ms=st.sampled_from([0, 200, 400]),
)
def test_regions_are_ordered_apart_and_cover_every_span(parts, sizes, gap_ms, pad_ms):
    audio = _session(parts)
    offline = OfflineConfig(gap_ms=gap_ms, pad_ms=pad_ms)
    whole = list(speech_regions([audio], VadConfig(), offline))
    cut = list(speech_regions(_blocks(audio, sizes), VadConfig(), offline))
    # the same regions however the stream was cut into blocks
    assert [(r.start_sample, r.end_sample) for r in cut] == [
        (r.start_sample, r.end_sample) for r in whole
    ]
    assert whole, "speech went unseen"
    for region in cut:
        assert 0 <= region.start_sample < region.end_sample <= len(audio)
        assert region.samples.dtype == np.float32
        np.testing.assert_array_equal(
            region.samples, audio[region.start_sample : region.end_sample]
        )
    for before, after in zip(whole, whole[1:]):
        assert after.start_sample - before.end_sample >= ms_to_samples(gap_ms)
    for span in detect_speech_spans(audio, VadConfig()):
        assert any(
            r.start_sample <= span.start_sample and span.end_sample <= r.end_sample for r in whole
        ), f"span {span} lies outside every region"


def test_digital_silence_has_no_regions_and_faint_noise_no_words(engine):
    assert list(speech_regions([silence(5.0)], VadConfig(), OfflineConfig())) == []
    audio = np.concatenate([silence(3.0), noise(20.0, -60.0, seed=1)]).astype(np.float32)
    assert transcribe_audio(engine, audio).text == ""


def test_a_bad_gap_is_a_one_line_error():
    from streamer.config import load_config

    with pytest.raises(ConfigError, match=r"offline.gap_ms = -1 is out of range"):
        load_config("captions", None, {"offline": {"gap_ms": -1}})


def _recall(reference: str, hypothesis: str) -> float:
    """Share of the reference's words that the hypothesis has (as a multiset)."""
    said = normalize(hypothesis).split()
    found = 0
    for word in normalize(reference).split():
        if word in said:
            said.remove(word)
            found += 1
    return found / max(len(normalize(reference).split()), 1)


@needs_espeak
def test_voices_taking_turns_with_long_pauses_lose_no_utterance(engine):
    """Five voices, pauses of 0.3-7 s over a noise floor: every utterance is read, with its
    own words, at its own time."""
    turns = [(0, 300), (1, 7000), (2, 2500), (0, 5000), (1, 600)]
    pieces, spans = [silence(1.0)], []
    for (sentence, pause_ms), voice in zip(turns, VOICES):
        start = sum(len(p) for p in pieces)
        speech = speech_samples(SENTENCES[sentence], voice)
        pieces += [speech, silence(pause_ms / 1000)]
        spans.append(
            (SENTENCES[sentence], start / SAMPLE_RATE, (start + len(speech)) / SAMPLE_RATE)
        )
    audio = np.concatenate(pieces).astype(np.float32)
    audio = audio + noise(len(audio) / SAMPLE_RATE + 0.01, -55.0, seed=2)[: len(audio)]
    transcript = transcribe_audio(engine, audio)
    for text, start_s, end_s in spans:
        heard = " ".join(
            s.text for s in transcript.segments if s.end_s > start_s and s.start_s < end_s
        )
        assert _recall(text, heard) >= 0.6, f"{text!r} at {start_s:.1f} s read as {heard!r}"
    reference = " ".join(text for text, _, _ in spans)
    assert word_errors([reference], [transcript.text]).wer < 0.2


@pytest.mark.eval
def test_the_turn_lost_in_the_ten_voice_session_is_read(engine):
    """``sessions/turns_a``: read window by window, a window opened after 'he said' read the
    silence and the next turn as nothing and sought past 72-83 s (33 of its 40 words lost)."""
    eval_dir = require_eval()
    audio = read_audio(eval_dir / "sessions" / "turns_a.wav")[: 100 * SAMPLE_RATE]
    transcript = transcribe_audio(engine, audio)
    heard = " ".join(s.text for s in transcript.segments if 71.0 < s.end_s and s.start_s < 84.0)
    lost = (
        "THIS QUESTION AND ANSWER MIGHT WELL GO INTO THE PRIMER OF INFORMATION FOR THOSE WHO COME "
        "TO SAN FRANCISCO FROM THE EAST FOR WHAT IS CALLED A LOBSTER IN SAN FRANCISCO IS NOT A "
        "LOBSTER AT ALL BUT A CRAYFISH"
    )
    assert _recall(lost, heard) >= 0.8, heard


@needs_espeak
@pytest.mark.parametrize("padding_s, frames", [(8.0, "short"), (0.0, "full")])
def test_a_short_region_is_encoded_with_its_padding(engine, monkeypatch, padding_s, frames):
    """``offline.encoder_padding_s``: a region under 30 s is encoded with that much silence
    after it (whole seconds), not padded to 30 s; 0 pads to 30 s. The words are read either
    way."""
    audio = np.concatenate([silence(0.5), speech_samples(SENTENCES[1]), silence(0.5)])
    encoder_type, widths = type(engine.encoder), []
    original = encoder_type.__call__

    def recording(self, features):
        widths.append(features.shape[-1])
        return original(self, features)

    monkeypatch.setattr(encoder_type, "__call__", recording)
    offline = OfflineConfig(encoder_padding_s=padding_s)
    transcript = transcribe_audio(engine, audio, offline=offline)
    speech_frames = len(audio) // 160
    if frames == "short":
        assert widths and all(speech_frames < w <= speech_frames + 900 for w in widths)
        assert all(w % 100 == 0 for w in widths)
    else:
        assert widths and all(w == 3000 for w in widths)
    assert word_errors([SENTENCES[1]], [transcript.text]).wer < 0.4  # espeak: 4-5 of 15 wrong
