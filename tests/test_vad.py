"""VadGate on made-up audio: spans cover the words, noise and silence give none, block sizes
never change a decision, and the maximum-length cut lands in a pause."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from audio_fixtures import (
    needs_espeak,
    require_espeak,
    rms_db,
    silence,
    speech_samples,
    tone,
    voiced_extent,
)
from audio_fixtures import white_noise as noise
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.audio import SAMPLE_RATE, ms_to_samples
from streamer.config import VadConfig
from streamer.errors import ConfigError
from streamer.types import (
    AudioBlock,
    PauseOnset,
    SpeechEnd,
    SpeechPause,
    SpeechSpan,
    SpeechStart,
)
from streamer.vad import END_TAIL_MS, VadGate, detect_speech_spans, spans_from_events

SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "Seven.",
)


def _events(gate: VadGate, blocks, with_pauses: bool = False) -> list:
    """Span events (SpeechStart/SpeechEnd); pauses inside spans only when asked for."""
    events = []
    for block in blocks:
        events += gate.process(block)
    events += gate.flush()
    return [e for e in events if with_pauses or not isinstance(e, SpeechPause | PauseOnset)]


def test_a_short_pause_inside_a_span_is_reported_once():
    """A 400 ms gap between two phrases is a pause (words so far are final), not an end."""
    require_espeak()
    config = VadConfig(pause_ms=180, hangover_ms=600)
    first, second = speech_samples("Good morning everyone"), speech_samples("thank you for coming")
    first = first[slice(*voiced_extent(first))]  # espeak pads its output with silence
    second = second[slice(*voiced_extent(second))]
    audio = np.concatenate([silence(1.0), first, silence(0.4), second, silence(1.5)])
    events = _events(VadGate(config), [audio], with_pauses=True)
    kinds = [type(e) for e in events]
    assert kinds.count(SpeechStart) == 1 and kinds.count(SpeechEnd) == 1
    pauses = [e for e in events if isinstance(e, SpeechPause)]
    assert pauses, kinds
    inner = [p for p in pauses if p.at_sample < events[-1].end_sample]
    assert inner, "the gap between the phrases must be reported as a pause"
    for pause in pauses:
        assert pause.at_sample - pause.voiced_end_sample >= ms_to_samples(config.pause_ms)
    assert kinds.index(SpeechStart) < kinds.index(SpeechPause) < kinds.index(SpeechEnd)


@needs_espeak
@pytest.mark.parametrize(
    ("pause_ms", "onset_ms"), [(180, 0), (180, 60), (180, 90), (0, 60)], ids=str
)
def test_a_pause_is_announced_by_its_onset(pause_ms, onset_ms):
    """Each pause comes after one onset of the same silence (same voiced end), heard
    ``pause_onset_ms`` into it (to the frame); without pauses there are no onsets."""
    config = VadConfig(pause_ms=pause_ms, pause_onset_ms=onset_ms, hangover_ms=600)
    first, second = speech_samples(SENTENCES[0]), speech_samples(SENTENCES[1])
    first, second = first[slice(*voiced_extent(first))], second[slice(*voiced_extent(second))]
    audio = np.concatenate([silence(1.0), first, silence(0.4), second, silence(1.5)])
    events = _events(VadGate(config), [audio], with_pauses=True)
    pauses = [i for i, e in enumerate(events) if isinstance(e, SpeechPause)]
    onsets = [e for e in events if isinstance(e, PauseOnset)]
    assert bool(pauses) == bool(pause_ms)
    if not (pause_ms and onset_ms):
        assert onsets == []
        return
    for i in pauses:
        onset = [e for e in events[:i] if isinstance(e, PauseOnset)][-1]
        pause = events[i]
        assert onset.voiced_end_sample == pause.voiced_end_sample
        silent = onset.at_sample - onset.voiced_end_sample
        assert ms_to_samples(onset_ms) <= silent < ms_to_samples(onset_ms + config.frame_ms)
        assert onset.at_sample < pause.at_sample
    # one onset per silence; one without its pause is a silence that was too short
    voiced_ends = [onset.voiced_end_sample for onset in onsets]
    assert len(set(voiced_ends)) == len(voiced_ends) >= len(pauses)


def test_digital_silence_gives_no_span_and_the_floor_level():
    gate = VadGate(VadConfig())
    assert _events(gate, [silence(5.0)]) == []
    assert gate.state == "silence"
    assert gate.level_db == -120.0


@pytest.mark.parametrize("level_db", [-60, -50, -40], ids=lambda d: f"{d}dBFS")
@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
def test_quiet_white_noise_gives_no_span_at_aggressiveness_3(level_db, seed):
    """Includes the stream start, where webrtcvad calls ~100 ms of any steady noise speech."""
    assert detect_speech_spans(noise(8.0, level_db, seed), VadConfig(aggressiveness=3)) == []


@needs_espeak
@pytest.mark.parametrize(
    "config", [VadConfig(), VadConfig(aggressiveness=3, frame_ms=10)], ids=["default", "aggr3-10ms"]
)
@pytest.mark.parametrize("text", SENTENCES, ids=["birch", "stella", "seven"])
def test_a_sentence_gives_one_span_covering_the_words_with_pre_roll(text, config):
    speech = speech_samples(text)
    lead = SAMPLE_RATE  # one second of silence before the words
    first_word, last_word = (lead + index for index in voiced_extent(speech))
    audio = np.concatenate([silence(1.0), speech, silence(1.5)])
    gate = VadGate(config)
    events = _events(gate, [audio])
    assert [type(event) for event in events] == [SpeechStart, SpeechEnd]
    start, end = events[0].start_sample, events[1].end_sample
    assert first_word - ms_to_samples(config.pre_roll_ms + 100) <= start
    assert start <= first_word - ms_to_samples(300), "pre-roll of at least 300 ms"
    assert last_word + ms_to_samples(END_TAIL_MS) <= end, "the tail keeps the final sounds"
    assert end <= last_word + ms_to_samples(config.hangover_ms + 100)
    assert events[1].reason == "silence"
    assert gate.state == "silence"


@needs_espeak
def test_speech_at_the_stream_start_clips_pre_roll_at_the_stream_start():
    speech = speech_samples(SENTENCES[0])
    audio = np.concatenate([speech, silence(1.0)])
    assert detect_speech_spans(audio)[0].start_sample == 0
    events = _events(VadGate(VadConfig(), start_sample=50_000), [AudioBlock(50_000, audio, 0.0)])
    assert events[0] == SpeechStart(50_000)


@needs_espeak
def test_a_pause_shorter_than_the_hangover_keeps_one_span_and_a_longer_one_splits():
    first, last = voiced_extent(speech_samples(SENTENCES[2]))
    speech = speech_samples(SENTENCES[2])[first:last]  # espeak pads its own silence
    short_gap = np.concatenate([silence(0.5), speech, silence(0.15), speech, silence(1.0)])
    long_gap = np.concatenate([silence(0.5), speech, silence(1.5), speech, silence(1.0)])
    assert len(detect_speech_spans(short_gap)) == 1
    spans = detect_speech_spans(long_gap)
    assert len(spans) == 2
    assert spans[0].end_sample <= spans[1].start_sample, "spans never overlap"


@needs_espeak
def test_the_stream_ending_mid_speech_closes_with_end_of_stream():
    speech = speech_samples(SENTENCES[1])
    audio = np.concatenate([silence(0.5), speech[: len(speech) // 2]])
    gate = VadGate(VadConfig())
    events = gate.process(audio)
    assert [type(event) for event in events] == [SpeechStart]
    assert gate.state == "speech"
    (end,) = gate.flush()
    assert end.reason == "end_of_stream"
    assert events[0].start_sample < end.end_sample <= len(audio)
    assert gate.flush() == []


@needs_espeak
def test_a_too_long_span_is_cut_at_a_quiet_frame_and_restarts_at_once():
    """Speech with no pause longer than the hangover, far beyond max_utterance_s."""
    config = VadConfig(max_utterance_s=4.0)
    pieces = [speech_samples(text) for text in SENTENCES[:2]] * 4
    audio = np.concatenate([silence(0.5), *(np.concatenate([p, silence(0.1)]) for p in pieces)])
    events = _events(VadGate(config), [audio])
    cuts = [e for e in events if isinstance(e, SpeechEnd) and e.reason == "max_length"]
    assert len(cuts) >= 3
    spans = spans_from_events(events)
    max_samples = int(config.max_utterance_s * SAMPLE_RATE)
    assert all(span.end_sample - span.start_sample <= max_samples for span in spans)
    frame = ms_to_samples(config.frame_ms)
    restarts = 0
    for cut in cuts:
        following = events[events.index(cut) + 1 :]
        if following:  # the speech goes on: the next span starts at the cut, never before
            assert isinstance(following[0], SpeechStart)
            assert following[0].start_sample >= cut.end_sample
            restarts += following[0].start_sample == cut.end_sample
        # The cut frame is among the quietest 10 % of the frames it was chosen from.
        region = audio[cut.end_sample - max_samples // 3 : cut.end_sample + max_samples // 3]
        levels = [rms_db(region[i : i + frame]) for i in range(0, len(region) - frame, frame)]
        at_cut = rms_db(audio[cut.end_sample - frame // 2 : cut.end_sample + frame // 2])
        assert at_cut <= np.percentile(levels, 10), (at_cut, np.percentile(levels, 10))
    assert restarts >= len(cuts) - 1, "the speech after a cut is not lost"


@needs_espeak
def test_a_cut_in_running_speech_restarts_the_span_in_the_same_frame():
    """Sentences back to back: every cut is followed at once by a new span at the cut."""
    config = VadConfig(max_utterance_s=4.0)
    audio = np.concatenate([speech_samples(text) for text in SENTENCES[:2]] * 3)
    gate, frame = VadGate(config), ms_to_samples(config.frame_ms)
    per_frame = [gate.process(audio[i : i + frame]) for i in range(0, len(audio), frame)]
    cuts = [
        events
        for events in per_frame
        if any(getattr(e, "reason", "") == "max_length" for e in events)
    ]
    assert len(cuts) >= 3
    for events in cuts:
        end, start = events
        assert end.reason == "max_length" and start == SpeechStart(end.end_sample)


def test_level_db_reports_the_last_frame_rms():
    gate = VadGate(VadConfig())
    gate.process(tone(0.5, 440, level_db=-20))
    assert gate.level_db == pytest.approx(-20, abs=0.3)
    gate.process(tone(0.5, 440, level_db=-45))
    assert gate.level_db == pytest.approx(-45, abs=0.3)


def test_int16_and_float_input_give_the_same_decisions():
    audio = np.concatenate([silence(0.5), tone(1.0, 300, -15), silence(1.0)])
    as_int16 = np.rint(audio * 32767).astype(np.int16)
    assert detect_speech_spans(audio) == detect_speech_spans(as_int16)
    assert len(detect_speech_spans(audio)) == 1


def test_a_gap_between_audio_blocks_is_rejected():
    gate = VadGate(VadConfig())
    gate.process(AudioBlock(0, silence(0.1), 0.0))
    with pytest.raises(ValueError, match="contiguous"):
        gate.process(AudioBlock(1601, silence(0.1), 0.1))


INVALID = {
    "aggressiveness": 4,
    "frame_ms": 25,
    "onset_frames": 0,
    "onset_window_frames": 2,  # fewer than the default 3 onset frames
    "pre_roll_ms": -10,
    "hangover_ms": 0,
    "max_utterance_s": 0.5,
    "pause_onset_ms": 150,  # no earlier than the default pause
}


@pytest.mark.parametrize(("name", "value"), INVALID.items(), ids=list(INVALID))
def test_invalid_config_is_rejected_naming_the_field(name, value):
    config = dataclasses.replace(VadConfig(), **{name: value})
    with pytest.raises(ConfigError, match=f"vad.{name}"):
        VadGate(config)


# --- decisions do not depend on block boundaries ----------------------------------------------


def _material(kind: str, seconds: float, seed: int) -> np.ndarray:
    if kind == "speech":
        return speech_samples(SENTENCES[seed % len(SENTENCES)])
    if kind == "tone":
        return tone(seconds, 150 + 100 * seed, -25)
    if kind == "noise":
        return noise(seconds, -35 - 5 * seed, seed)
    return silence(seconds)


SEGMENTS = st.lists(
    st.tuples(
        st.sampled_from(["speech", "silence", "tone", "noise"]),
        st.floats(0.05, 1.5),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=6,
)
CONFIGS = st.builds(
    VadConfig,
    aggressiveness=st.sampled_from([0, 1, 2, 3]),
    frame_ms=st.sampled_from([10, 20, 30]),
    hangover_ms=st.sampled_from([90, 300]),
    pause_ms=st.sampled_from([0, 150]),
    pause_onset_ms=st.sampled_from([0, 60]),
    max_utterance_s=st.sampled_from([2.0, 20.0]),
)


@needs_espeak
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segments=SEGMENTS, config=CONFIGS, offset=st.integers(0, 100_000), data=st.data())
def test_any_block_partition_gives_identical_events(segments, config, offset, data):
    audio = np.concatenate([_material(*segment) for segment in segments])
    reference = _events(VadGate(config, offset), [AudioBlock(offset, audio, 0.0)], True)
    # Either a few arbitrary cut points or a steady block size, as a sound card delivers.
    if data.draw(st.booleans(), label="steady blocks"):
        size = data.draw(st.integers(10, 3000), label="block size")
        cut_points = list(range(size, len(audio), size))
    else:
        points = st.lists(st.integers(0, len(audio)), max_size=40)
        cut_points = sorted(data.draw(points, label="cut points"))
    bounds = [0, *cut_points, len(audio)]
    blocks = [
        AudioBlock(offset + start, audio[start:end], 0.0)
        for start, end in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    assert _events(VadGate(config, offset), blocks, with_pauses=True) == reference
    # Well-formed: starts and ends alternate, in order, inside the audio.
    spans = spans_from_events(reference)
    assert len(spans) == sum(isinstance(event, SpeechStart) for event in reference)
    edges = [edge for span in spans for edge in (span.start_sample, span.end_sample)]
    assert edges == sorted(edges)
    assert all(offset <= edge <= offset + len(audio) for edge in edges)
    assert all(span.end_sample > span.start_sample for span in spans)


@needs_espeak
def test_detect_speech_spans_with_tiny_blocks_equals_one_block():
    audio = np.concatenate([silence(0.7), speech_samples(SENTENCES[0]), silence(0.7)])
    in_one = detect_speech_spans(audio)
    in_odd_blocks = detect_speech_spans(audio, block_samples=[1, 2, 479, 481, 7, 1000] * 20)
    assert in_one == in_odd_blocks
    assert in_one == [SpeechSpan(in_one[0].start_sample, in_one[0].end_sample)]


@needs_espeak
def test_a_max_length_cut_inside_a_pause_ends_the_span_without_restarting_it():
    """The limit falls in a pause: the span ends there and the next waits for a real onset."""
    config = VadConfig(max_utterance_s=2.0, hangover_ms=900)
    first, _ = voiced_extent(speech_samples(SENTENCES[1]))
    words = speech_samples(SENTENCES[1])[first : first + int(1.45 * SAMPLE_RATE)]
    floor = noise(0.5 + 1.45, -60, seed=4)  # a room-noise floor under the speech, not the pause
    # 0.5 s room noise, words until 1.95 s, a 0.7 s digital-silence pause (shorter than the
    # hangover) in which the 2 s limit falls, then words again from 2.65 s.
    audio = np.concatenate([floor[:8000], words + floor[8000:], silence(0.7), words, silence(1)])
    events = _events(VadGate(config), [audio])
    assert [type(event) for event in events] == [SpeechStart, SpeechEnd, SpeechStart, SpeechEnd]
    first_end, second_start = events[1], events[2]
    assert first_end.reason == "max_length"
    assert int(1.95 * SAMPLE_RATE) < first_end.end_sample < int(2.2 * SAMPLE_RATE)
    # Not restarted at the cut: the next span is an ordinary onset with its pre-roll.
    expected_start = int(2.65 * SAMPLE_RATE) - ms_to_samples(config.pre_roll_ms)
    assert abs(second_start.start_sample - expected_start) <= ms_to_samples(100)
