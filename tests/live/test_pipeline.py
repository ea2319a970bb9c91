"""The live pipeline on real threads, the real model and real audio (FileSource edge)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
from audio_fixtures import require_espeak, speech_samples, white_noise

from streamer.config import load_config
from streamer.live.filesource import FileSource
from streamer.live.pipeline import Finished, Pipeline
from streamer.types import Committed, Endpoint, Stats, Tentative

SENTENCES = [
    "Please call me tomorrow morning at nine.",
    "We are going to the market to buy some fresh bread.",
    "Open the window and let the fresh air in.",
]


def _wer(reference: str, hypothesis: str) -> float:
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    normalize = EnglishTextNormalizer()
    return jiwer.wer(normalize(reference), normalize(hypothesis))


def _run(path, engine, config=None, pace="fast", timeout_s=120.0):
    config = config or load_config("captions")
    pipeline = Pipeline(FileSource(path, pace=pace), engine, config, virtual_clock=pace == "fast")
    events = []
    with pipeline:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            event = pipeline.next_event(0.2)
            if isinstance(event, Finished):
                break
            if event is not None:
                events.append(event)
        else:
            pytest.fail("pipeline did not finish")
    assert pipeline.alive_threads() == []
    return events


@pytest.fixture(scope="module")
def speech_file(tmp_path_factory):
    """Three sentences with pauses of 1.5 s, as a 44.1 kHz stereo file."""
    require_espeak()
    gap = np.zeros(int(16000 * 1.5), np.float32)
    parts = []
    for sentence in SENTENCES:
        parts += [speech_samples(sentence), gap]
    audio = np.concatenate([gap, *parts])
    import soxr

    stereo = np.stack([soxr.resample(audio, 16000, 44100)] * 2, axis=1)
    path = tmp_path_factory.mktemp("pipeline") / "speech.wav"
    sf.write(path, stereo, 44100)
    return path


def test_streamed_text_matches_reference(engine, speech_file):
    """Streaming is close to the reference and no worse than offline plus a margin."""
    from streamer.audiofile import read_audio
    from streamer.engine.transcribe import transcribe_audio

    events = _run(speech_file, engine)
    words = [w for e in events if isinstance(e, Committed) for w in e.words]
    text = "".join(w.text for w in words)
    reference = " ".join(SENTENCES)
    offline = transcribe_audio(engine, read_audio(speech_file)).text
    assert _wer(reference, text) < 0.3, text
    assert _wer(reference, text) <= _wer(reference, offline) + 0.15, (text, offline)
    # append-only, monotonic and inside the audio
    ends = [w.end_sample for w in words]
    assert ends == sorted(ends)
    assert all(w.start_sample <= w.end_sample for w in words)
    duration = sf.info(speech_file).duration * 16000
    assert all(0 <= w.start_sample and w.end_sample <= duration + 1600 for w in words)
    assert sum(isinstance(e, Endpoint) for e in events) >= 3  # one per sentence
    stats = [e for e in events if isinstance(e, Stats)]
    assert stats and stats[-1].captured_samples >= duration - 16000 * 0.1


def test_commit_latency_on_virtual_clock(engine, speech_file):
    """Words are committed within a few seconds of being spoken (virtual clock)."""
    events = _run(speech_file, engine)
    latencies = [
        w.emitted_at_s - w.end_sample / 16000
        for e in events
        if isinstance(e, Committed)
        for w in e.words
    ]
    assert latencies and min(latencies) >= 0.0
    assert float(np.mean(latencies)) < 3.0


def test_the_virtual_clock_learns_of_an_endpoint_no_sooner_than_a_live_stream(engine, speech_file):
    """The gate ends a span a hangover after its last voiced frame; at fast pace the VAD
    runs ahead of inference, and acting on its endpoints early would measure a better
    stream than real time can have."""
    config = load_config("captions")
    events = _run(speech_file, engine, config)
    endpoints = [e for e in events if isinstance(e, Endpoint) and e.reason == "silence"]
    # the span ends 150 ms after the last voiced frame; the gate decides a hangover after it
    decided_after_s = (config.vad.hangover_ms - 150 - config.vad.frame_ms) / 1000
    assert len(endpoints) >= 3
    assert all(e.emitted_at_s - e.end_sample / 16000 >= decided_after_s for e in endpoints)


def _commits(events) -> list[tuple[str, int, int, float]]:
    return [
        (w.text, w.start_sample, w.end_sample, w.emitted_at_s)
        for e in events
        if isinstance(e, Committed)
        for w in e.words
    ]


def test_a_modelled_step_cost_makes_fast_runs_repeat_exactly(engine, speech_file):
    """Measured compute time differs between runs, and with it where steps end; a cost
    modelled from the work done gives the same schedule, the same words and the same
    emit times every time. A slower modelled CPU commits the same speech later."""
    config = load_config("captions", None, {"stream": {"pace": "fast", "virtual_cpu_speed": 1}})
    first, second = (
        _commits(_run(speech_file, engine, config)),
        _commits(_run(speech_file, engine, config)),
    )
    assert first and first == second
    slow = replace(config, stream=replace(config.stream, virtual_cpu_speed=0.2))
    slow_commits = _commits(_run(speech_file, engine, slow))

    def mean_latency(commits):
        return float(np.mean([emit - end / 16000 for _, _, end, emit in commits]))

    # five times the reference's step time: well over a second more per commit
    assert mean_latency(slow_commits) > mean_latency(first) + 0.5


def test_reading_at_a_pause_onset_makes_the_last_words_final_sooner(engine, speech_file):
    """The words before a pause become final when the pause is heard. Read at the pause's
    onset, they need no decode after it, so the last word of each sentence is final sooner
    (modelled clock: the same schedule on every run)."""

    def sentence_ends(onset_ms: int) -> list[tuple[str, int, int, float]]:
        overrides = {"stream": {"pace": "fast", "virtual_cpu_speed": 2.5}}
        overrides["vad"] = {"pause_onset_ms": onset_ms}
        commits = _commits(_run(speech_file, engine, load_config("captions", None, overrides)))
        text = "".join(word for word, *_ in commits)
        assert _wer(" ".join(SENTENCES), text) < 0.2, text  # nothing lost or said twice
        # a word followed by the file's 1.5 s gaps (or nothing) ends a sentence; a stop
        # committed on its own (held at the pause until the utterance ends) is no word
        commits = [c for c in commits if any(char.isalnum() for char in c[0])]
        return [
            word
            for word, following in zip(commits, [*commits[1:], None], strict=True)
            if following is None or following[1] - word[2] > 16000
        ]

    read_at_pause, read_at_onset = sentence_ends(0), sentence_ends(60)
    assert len(read_at_pause) == len(read_at_onset) == len(SENTENCES)

    # the speech ends where it ends, whatever the readings say of the word's end
    at_pause = np.array([emit for *_, emit in read_at_pause])
    at_onset = np.array([emit for *_, emit in read_at_onset])
    # an onset read that must wait for the step before it gains less, but none is later
    assert np.all(at_onset <= at_pause + 0.01), (read_at_pause, read_at_onset)
    assert at_onset.mean() < at_pause.mean() - 0.03, (read_at_pause, read_at_onset)


def test_a_rejected_reading_at_the_end_of_speech_is_read_again(engine, speech_file):
    """The readings that first hear the end of the first sentence, at the pause's onset and
    at the pause, are rejected (as a loop guard would): the pause makes nothing final, and
    the endpoint must read the words again rather than move on without them."""
    config = load_config("captions", None, {"stream": {"pace": "fast", "virtual_cpu_speed": 2.5}})
    pipeline = Pipeline(FileSource(speech_file, pace="fast"), engine, config, virtual_clock=True)
    read = pipeline.transcriber.read
    speech_end = int(16000 * 1.5) + len(speech_samples(SENTENCES[0]))
    gap_end = int(16000 * 4.0)  # well before the second sentence
    rejected = []

    def read_rejecting_the_first_three(audio):
        reading = read(audio)
        if len(rejected) < 3 and speech_end - 8000 <= reading.window_end <= gap_end:
            rejected.append(reading.window_end)
            return replace(reading, rejected="repetition", words=())
        return reading

    pipeline.transcriber.read = read_rejecting_the_first_three
    events = []
    with pipeline:
        while not isinstance(event := pipeline.next_event(60.0), Finished):
            assert event is not None, "the pipeline stalled"
            events.append(event)
    assert rejected
    first = [(word, end) for word, _, end, _ in _commits(events) if end <= gap_end]
    # every word once, the last one too (which words: the rejections change what is agreed)
    assert len(first) >= len(SENTENCES[0].split()) - 1, (rejected, first)
    assert max(end for _, end in first) >= speech_end - 16000, (rejected, first)


@pytest.mark.parametrize("kind", ["silence", "faint-noise"])
def test_no_words_from_silence_or_noise(engine, tmp_path, kind):
    audio = np.zeros(16000 * 20, np.float32) if kind == "silence" else white_noise(20.0, -50.0)
    path = tmp_path / f"{kind}.wav"
    sf.write(path, audio.astype(np.float32), 16000)
    events = _run(path, engine)
    assert not [w for e in events if isinstance(e, Committed) for w in e.words]


def test_tentative_never_contradicts_committed(engine, speech_file):
    """The committed stream only grows; tentative text is a separate, replaceable tail."""
    events = _run(speech_file, engine)
    committed = ""
    for event in events:
        if isinstance(event, Committed):
            new = "".join(w.text for w in event.words)
            assert new  # a Committed event always adds text
            committed += new
        elif isinstance(event, Tentative):
            assert isinstance(event.text, str)
    assert committed.strip()


def test_stop_joins_threads_and_commits_tail(engine, speech_file):
    """stop() at any moment joins both threads quickly and the tail is committed."""
    config = load_config("captions")
    pipeline = Pipeline(FileSource(speech_file, pace="realtime"), engine, config)
    pipeline.start()
    time.sleep(2.5)
    started = time.monotonic()
    pipeline.stop()
    assert time.monotonic() - started < 6.0
    assert pipeline.alive_threads() == []
    events = []
    while (event := pipeline.next_event(0.0)) is not None:
        events.append(event)
    assert any(isinstance(e, Finished) for e in events)


def test_worker_exception_reaches_the_caller(engine, speech_file):
    """An exception inside inference is re-raised by next_event in the caller's thread."""
    config = load_config("captions")
    pipeline = Pipeline(FileSource(speech_file, pace="fast"), engine, config, virtual_clock=True)

    def broken_read(*args, **kwargs):
        raise RuntimeError("inference failed on purpose")

    pipeline.transcriber.read = broken_read
    with pipeline, pytest.raises(RuntimeError, match="on purpose"):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pipeline.next_event(0.1)
    assert pipeline.alive_threads() == []


def test_full_output_queue_drops_stats_not_capture(engine, speech_file):
    """Nobody reads the events: capture still finishes the file, droppable events are
    counted, and no thread blocks forever."""
    config = replace(load_config("captions"))
    pipeline = Pipeline(
        FileSource(speech_file, pace="fast"),
        engine,
        config,
        virtual_clock=True,
        output_queue_size=3,
    )
    pipeline.start()
    deadline = time.monotonic() + 60
    capture = next(t for t in threading.enumerate() if t.name == "streamer-capture")
    while capture.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not capture.is_alive(), "capture blocked on a full event queue"
    pipeline.stop()
    assert pipeline.alive_threads() == []
