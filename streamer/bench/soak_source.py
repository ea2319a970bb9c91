"""The audio of ``streamer bench soak``: speech clips (espeak-ng sentences or the manifest's
files) and ``SoakSource``, which makes the run's speech and silence as the pipeline reads it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import numpy as np

from streamer.audio import SAMPLE_RATE, ms_to_samples, seconds_to_samples
from streamer.bench.common import manifest_records
from streamer.errors import ConfigError, DependencyError
from streamer.types import AudioBlock, SpeechSpan

SEED = 20240611
SILENCE_RANGE_S = (0.5, 20.0)  # pause between turns, uniform
CLIPS_PER_TURN = (1, 3)  # a turn is this many clips (inclusive) ...
TURN_GAP_S = 0.15  # ... joined by pauses shorter than any VAD hangover
WARM_UP_SPEECH_S = 25.0  # the opening turn: longer than vad.max_utterance_s (20 s at most)
PHASE_S = 600.0  # latency of the first and the last ten minutes (a third of shorter runs)
REPLAY_GAP_S = 6.0  # silence before the replayed last phase: longer than any prompt carry-over

ESPEAK_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call me tomorrow morning at nine, and bring the signed contract with you.",
    "We are going to the market to buy some fresh bread and a few apples.",
    "Open the window and let the fresh air in.",
    "The meeting has been moved to Thursday afternoon because the room was double booked.",
    "She sells sea shells by the sea shore.",
    "Our train leaves the central station at half past seven, so we should get up early.",
    "Could you check whether the printer on the second floor is working again?",
    "It rained all night, and the river rose almost to the top of the old stone bridge.",
    "Thank you very much for your help.",
    "The library will be closed on Monday for the public holiday.",
    "After dinner we walked along the beach and watched the sun go down over the water.",
    "Turn left at the next corner, then keep going straight until you reach the park.",
    "I think the new version of the software is much faster than the old one.",
    "Remember to water the plants while I am away next week.",
    "The children built a small wooden boat and sailed it across the pond.",
)


# --- speech --------------------------------------------------------------------------------------


class SpeechClips(Protocol):
    """Numbered speech clips, each read as float32 16 kHz blocks when it is needed."""

    name: str

    def __len__(self) -> int: ...

    def blocks(self, index: int) -> Iterator[np.ndarray]:
        """Clip ``index`` as float32 mono 16 kHz arrays, shape (n,) each."""
        ...


class EspeakClips:
    """Sentences spoken by espeak-ng once, kept in memory (a few MB)."""

    def __init__(self, sentences: Sequence[str] = ESPEAK_SENTENCES, voice: str = "en-us"):
        executable = shutil.which("espeak-ng")
        if executable is None:
            raise DependencyError("espeak-ng is not installed (apt-get install espeak-ng)")
        self.name = f"espeak-ng ({len(sentences)} sentences)"
        self.clips = [_espeak(executable, text, voice) for text in sentences]

    def __len__(self) -> int:
        return len(self.clips)

    def blocks(self, index: int) -> Iterator[np.ndarray]:
        yield self.clips[index]


def _espeak(executable: str, text: str, voice: str) -> np.ndarray:
    import soundfile
    import soxr

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"
        try:
            subprocess.run(
                [executable, "-v", voice, "-w", str(path), text],
                check=True,
                capture_output=True,
                timeout=60,
            )
        except (OSError, subprocess.SubprocessError) as error:
            raise DependencyError(f"espeak-ng failed: {error}") from error
        samples, rate = soundfile.read(path, dtype="float32")
    if rate != SAMPLE_RATE:
        samples = soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ")
    return np.clip(samples, -1, 1).astype(np.float32)


class ManifestClips:
    """The LibriSpeech and long-form files of an evaluation manifest, streamed from disk."""

    BLOCK_SAMPLES = 5 * SAMPLE_RATE

    def __init__(self, manifest: str | Path):
        path = Path(manifest)
        records = manifest_records(path)
        self.paths = [
            path.parent / record["path"]
            for record in records
            if record.get("set") in ("librispeech", "longform")
        ]
        if not self.paths:
            raise ConfigError(f"{path} has no librispeech or longform items")
        self.name = f"{path} ({len(self.paths)} files)"

    def __len__(self) -> int:
        return len(self.paths)

    def blocks(self, index: int) -> Iterator[np.ndarray]:
        from streamer.audiofile import stream_audio

        yield from stream_audio(self.paths[index], self.BLOCK_SAMPLES)


def speech_clips(manifest: str | None) -> SpeechClips | None:
    """The manifest's files if given, else espeak-ng sentences; None when neither exists."""
    if manifest:
        return ManifestClips(manifest)
    if shutil.which("espeak-ng") is None:
        return None
    return EspeakClips()


def phase_seconds(total_s: float) -> float:
    """Length of the first and the last phase, whose latencies are compared."""
    return min(PHASE_S, total_s / 3)


# --- the source ----------------------------------------------------------------------------------


class SoakSource:
    """An ``AudioSource`` that makes ``total_s`` of speech and silence as it is read.

    Blocks are stamped with the virtual clock (``end_sample / 16000``). ``speech_spans`` lists
    where speech was placed (written by the reading thread; read it after the run)."""

    def __init__(self, clips: SpeechClips, total_s: float, seed: int = SEED, block_ms: int = 30):
        if total_s <= 0:
            raise ConfigError(f"--minutes must be positive, got {total_s / 60:g}")
        self.clips = clips
        self.total_samples = seconds_to_samples(total_s)
        self.block_samples = ms_to_samples(block_ms)
        self.seed = seed
        # the last phase replays the first, after a silence, so their latencies compare
        self.replay_sample = self.total_samples - seconds_to_samples(phase_seconds(total_s))
        self.name = f"soak: {clips.name}, {total_s / 60:g} min"
        self.native_rate = SAMPLE_RATE
        self.channels = 1
        self.xruns = 0
        self.dropped_blocks = 0
        self.speech_spans: list[SpeechSpan] = []
        self._pieces: Iterator[tuple[bool, np.ndarray]] | None = None
        self._pending = np.zeros(0, dtype=np.float32)
        self._next_sample = 0  # first sample of the next block
        self._made = 0  # samples taken from the pieces so far
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> None:
        if self._pieces is None:
            self._pieces = self._generate()

    def stop(self) -> None:
        self._closed = True
        if self._pieces is not None:
            self._pieces.close()  # closes a clip file being streamed

    def read(self, timeout_s: float) -> AudioBlock | None:
        """The next block at once (virtual clock); None at the end."""
        if self._closed:
            return None
        if self._pieces is None:
            raise RuntimeError("SoakSource.read() before start()")
        wanted = min(self.block_samples, self.total_samples - self._next_sample)
        while len(self._pending) < wanted:
            is_speech, samples = next(self._pieces)
            samples = samples[: self.total_samples - self._made]
            if is_speech:
                self._mark_speech(self._made, self._made + len(samples))
            self._made += len(samples)
            self._pending = np.concatenate([self._pending, samples])
        if wanted <= 0:
            self.stop()
            return None
        samples, self._pending = self._pending[:wanted], self._pending[wanted:]
        block = AudioBlock(self._next_sample, samples, (self._next_sample + wanted) / SAMPLE_RATE)
        self._next_sample += wanted
        return block

    def _mark_speech(self, start: int, end: int) -> None:
        if self.speech_spans and self.speech_spans[-1].end_sample == start:
            self.speech_spans[-1] = replace(self.speech_spans[-1], end_sample=end)
        elif end > start:
            self.speech_spans.append(SpeechSpan(start, end))

    def _generate(self) -> Iterator[tuple[bool, np.ndarray]]:
        """(is_speech, samples) pieces without end: the seeded sequence until the replay point
        (cut short, then ``REPLAY_GAP_S`` of silence), then the same sequence again."""
        gap = seconds_to_samples(REPLAY_GAP_S)
        made = 0
        for is_speech, samples in self._sequence():
            samples = samples[: max(0, self.replay_sample - gap - made)]
            if not len(samples):
                break
            made += len(samples)
            yield is_speech, samples
        yield False, np.zeros(max(0, self.replay_sample - made), dtype=np.float32)
        yield from self._sequence()

    def _sequence(self) -> Iterator[tuple[bool, np.ndarray]]:
        """The warm-up turn, then silence, turn, silence, ... drawn from ``seed``."""
        rng = np.random.default_rng(self.seed)
        gap = np.zeros(seconds_to_samples(TURN_GAP_S), dtype=np.float32)
        made = 0
        while made < seconds_to_samples(WARM_UP_SPEECH_S):
            for block in self.clips.blocks(int(rng.integers(len(self.clips)))):
                made += len(block)
                yield True, block
            made += len(gap)
            yield True, gap
        while True:
            low, high = SILENCE_RANGE_S
            pause = seconds_to_samples(float(rng.uniform(low, high)))
            yield False, np.zeros(pause, dtype=np.float32)
            n_clips = int(rng.integers(CLIPS_PER_TURN[0], CLIPS_PER_TURN[1] + 1))
            for number in range(n_clips):
                if number:
                    yield True, gap
                yield from (
                    (True, b) for b in self.clips.blocks(int(rng.integers(len(self.clips))))
                )
