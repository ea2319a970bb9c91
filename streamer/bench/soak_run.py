"""The run of ``streamer bench soak``: the source through the live pipeline on the virtual
clock, checkpoints of the process's memory and threads, and the latency of every word."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from streamer.audio import SAMPLE_RATE, seconds_to_samples
from streamer.bench.common import require_psutil
from streamer.bench.soak_source import SoakSource, phase_seconds
from streamer.config import Config
from streamer.types import Committed, SpeechSpan

BASELINE_AFTER_S = 60.0  # the memory baseline: the first checkpoint after this much audio ...
BASELINE_FRACTION = 0.05  # ... or after this fraction of the run, whichever is later
CHECK_EVERY_S = 60.0  # a checkpoint (RSS, threads) every minute of decoded audio
SILENCE_MARGIN_S = 1.0  # a word whose midpoint is this far from any speech came from silence
LATENCY_DRIFT_TOLERANCE_S = 0.1  # "last no worse than first" allows this much noise


@dataclass(frozen=True)
class Checkpoint:
    """Process health when the decoder had reached ``audio_s``."""

    audio_s: float
    wall_s: float
    rss_bytes: int
    threads: int  # OS threads of the process (ONNX Runtime's pools included)
    capturing: bool  # the source was still being read (its capture thread alive)


@dataclass(frozen=True)
class Latency:
    mean_s: float | None
    p90_s: float | None
    n_words: int


def _latency(values: np.ndarray) -> Latency:
    if len(values) == 0:
        return Latency(None, None, 0)
    return Latency(float(np.mean(values)), float(np.percentile(values, 90)), len(values))


@dataclass(frozen=True)
class SoakResult:
    audio_s: float
    wall_s: float
    cpu_s: float
    word_end_s: np.ndarray  # (n_words,) end of each committed word, seconds
    latency_s: np.ndarray  # (n_words,) emitted_at_s minus word end
    words_in_silence: int
    dropped_s: float
    checkpoints: tuple[Checkpoint, ...]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]

    @property
    def words(self) -> int:
        return len(self.word_end_s)

    @property
    def phase_s(self) -> float:
        return phase_seconds(self.audio_s)

    def first(self) -> Latency:
        return _latency(self.latency_s[self.word_end_s < self.phase_s])

    def last(self) -> Latency:
        return _latency(self.latency_s[self.word_end_s >= self.audio_s - self.phase_s])

    def start(self) -> Checkpoint:
        """The memory baseline: the first checkpoint after warm-up."""
        after = max(BASELINE_AFTER_S, BASELINE_FRACTION * self.audio_s)
        later = [c for c in self.checkpoints if c.audio_s >= after]
        return later[0] if later else self.checkpoints[-1]

    def middle(self) -> Checkpoint:
        return min(self.checkpoints, key=lambda c: abs(c.audio_s - self.audio_s / 2))

    def end(self) -> Checkpoint:
        """The last checkpoint while the source was still read. On the virtual clock capture
        runs up to ``audio.ring_seconds`` ahead of the decoder and its thread ends when the
        source does: later checkpoints have one thread less, which is no leak."""
        capturing = [c for c in self.checkpoints if c.capturing]
        return capturing[-1] if capturing else self.checkpoints[-1]

    @property
    def rss_growth_mb(self) -> float:
        return (self.end().rss_bytes - self.start().rss_bytes) / 2**20

    @property
    def rss_late_growth_mb(self) -> float:
        """Growth over the second half (middle -> end): a leak keeps growing, while arenas
        that are still meeting new tensor shapes settle."""
        return (self.end().rss_bytes - self.middle().rss_bytes) / 2**20

    @property
    def rss_peak_growth_mb(self) -> float:
        after = [c.rss_bytes for c in self.checkpoints if c.audio_s >= self.start().audio_s]
        return (max(after) - self.start().rss_bytes) / 2**20

    @property
    def threads_constant(self) -> bool:
        return self.start().threads == self.middle().threads == self.end().threads

    @property
    def latency_holds(self) -> bool:
        first, last = self.first(), self.last()
        if first.mean_s is None or last.mean_s is None:
            return False
        return last.mean_s <= first.mean_s + LATENCY_DRIFT_TOLERANCE_S


def run_soak(
    engine,
    config: Config,
    source: SoakSource,
    progress: Callable[[Checkpoint], None] | None = None,
) -> SoakResult:
    """Play ``source`` through the live pipeline on the virtual clock; checkpoint every
    ``CHECK_EVERY_S`` of decoded audio. Keeps two floats per committed word, nothing more."""
    from streamer.live.pipeline import Finished, Pipeline

    process = require_psutil("soak").Process()
    pipeline = Pipeline(source, engine, config, virtual_clock=True)
    ends: list[float] = []
    latencies: list[float] = []
    midpoints: list[int] = []
    checkpoints: list[Checkpoint] = []
    next_check = 0
    load_before = os.getloadavg()
    started, cpu_started = time.monotonic(), time.process_time()
    with pipeline:
        while True:
            event = pipeline.next_event(0.05)
            if isinstance(event, Finished):
                break
            if isinstance(event, Committed):
                for word in event.words:
                    ends.append(word.end_sample / SAMPLE_RATE)
                    latencies.append(word.emitted_at_s - ends[-1])
                    midpoints.append((word.start_sample + word.end_sample) // 2)
            decoded = pipeline.stats().decoded_samples
            if decoded >= next_check:
                checkpoint = Checkpoint(
                    decoded / SAMPLE_RATE,
                    time.monotonic() - started,
                    process.memory_info().rss,
                    process.num_threads(),
                    not source.closed,
                )
                checkpoints.append(checkpoint)
                if progress:
                    progress(checkpoint)
                while next_check <= decoded:  # on the minute grid, however far decoding jumped
                    next_check += seconds_to_samples(CHECK_EVERY_S)
        dropped = pipeline.stats().dropped_samples
    return SoakResult(
        audio_s=source.total_samples / SAMPLE_RATE,
        wall_s=time.monotonic() - started,
        cpu_s=time.process_time() - cpu_started,
        word_end_s=np.array(ends),
        latency_s=np.array(latencies),
        words_in_silence=count_in_silence(midpoints, source.speech_spans),
        dropped_s=dropped / SAMPLE_RATE,
        checkpoints=tuple(checkpoints),
        load_before=load_before,
        load_after=os.getloadavg(),
    )


def count_in_silence(midpoints: Sequence[int], spans: Sequence[SpeechSpan]) -> int:
    """Words whose midpoint (sample) lies more than ``SILENCE_MARGIN_S`` from every span."""
    if not midpoints:
        return 0
    margin = seconds_to_samples(SILENCE_MARGIN_S)
    starts = np.array([s.start_sample - margin for s in spans], dtype=np.int64)
    ends = np.array([s.end_sample + margin for s in spans], dtype=np.int64)
    points = np.array(midpoints, dtype=np.int64)
    # the last span that starts at or before each midpoint (spans are sorted, disjoint)
    index = np.searchsorted(starts, points, side="right") - 1
    inside = (index >= 0) & (points <= ends[np.maximum(index, 0)])
    return int((~inside).sum())
