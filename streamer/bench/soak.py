"""``streamer bench soak``: an hour of speech and silence through the live pipeline, on the
virtual clock, watching memory, threads and latency drift.

The audio is made on the fly and never held whole: speech turns (one to three clips from the
manifest's LibriSpeech and long-form files with ``--manifest``, otherwise sentences spoken by
espeak-ng) alternate with silences of ``SILENCE_RANGE_S`` drawn by a seeded generator.
``SoakSource`` hands them to the pipeline block by block, as a microphone would, stamped with the
virtual clock. The run opens with ``WARM_UP_SPEECH_S`` of clips joined by pauses shorter than
the VAD hangover, so that the longest window (cut at ``vad.max_utterance_s``) and its buffers are
most likely allocated before the memory baseline is taken.

Reported: RSS after warm-up, in the middle and at the end, and the growth (target below
``RSS_GROWTH_TARGET_MB``); OS threads at the same three points (constant); commit latency in the
first and the last ``PHASE_S`` of audio (the last no worse; the last phase replays the audio of
the first, so the two differ only in what the process carries); words committed, words committed
inside a silence, dropped audio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from streamer.audio import SAMPLE_RATE, ms_to_samples, seconds_to_samples
from streamer.bench.offline import write_json_report
from streamer.config import Config, load_config
from streamer.errors import ConfigError, DependencyError
from streamer.types import AudioBlock, Committed, SpeechSpan

SEED = 20240611
SILENCE_RANGE_S = (0.5, 20.0)  # pause between turns, uniform
CLIPS_PER_TURN = (1, 3)  # a turn is this many clips (inclusive) ...
TURN_GAP_S = 0.15  # ... joined by pauses shorter than any VAD hangover
WARM_UP_SPEECH_S = 25.0  # the opening turn: longer than vad.max_utterance_s (20 s at most)
BASELINE_AFTER_S = 60.0  # the memory baseline: the first checkpoint after this much audio ...
BASELINE_FRACTION = 0.05  # ... or after this fraction of the run, whichever is later
CHECK_EVERY_S = 60.0  # a checkpoint (RSS, threads) every minute of decoded audio
PHASE_S = 600.0  # latency of the first and the last ten minutes (a third of shorter runs)
REPLAY_GAP_S = 6.0  # silence before the replayed last phase: longer than any prompt carry-over
SILENCE_MARGIN_S = 1.0  # a word whose midpoint is this far from any speech came from silence
RSS_GROWTH_TARGET_MB = 10.0
LATENCY_DRIFT_TOLERANCE_S = 0.1  # "last no worse than first" allows this much noise
PROGRESS_EVERY_S = 300.0  # a line on stderr every five minutes of audio

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
        try:
            records = [
                json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line
            ]
        except (OSError, ValueError) as error:
            raise ConfigError(f"cannot read manifest {path}: {error}") from error
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


# --- the run -------------------------------------------------------------------------------------


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


def _psutil():
    try:
        import psutil
    except ImportError as error:
        raise DependencyError(
            "bench soak needs psutil: pip install -e '.[dev]' (or: pip install psutil)"
        ) from error
    return psutil


def run_soak(
    engine,
    config: Config,
    source: SoakSource,
    progress: Callable[[Checkpoint], None] | None = None,
) -> SoakResult:
    """Play ``source`` through the live pipeline on the virtual clock; checkpoint every
    ``CHECK_EVERY_S`` of decoded audio. Keeps two floats per committed word, nothing more."""
    from streamer.live.pipeline import Finished, Pipeline

    process = _psutil().Process()
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


# --- report --------------------------------------------------------------------------------------


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def report_rows(result: SoakResult) -> list[tuple[str, str, str, str]]:
    """(measure, value, target, meets) rows of the soak table."""
    start, middle, end = result.start(), result.middle(), result.end()
    first, last = result.first(), result.last()
    phase = f"{result.phase_s / 60:.1f} min"

    def verdict(ok: bool) -> str:
        return "yes" if ok else "NO"

    return [
        ("audio (virtual clock)", f"{result.audio_s / 60:.1f} min", "", ""),
        ("wall time", f"{result.wall_s:.0f} s", "", ""),
        ("CPU s / audio s", f"{result.cpu_s / result.audio_s:.3f}", "", ""),
        (
            f"RSS start (at {start.audio_s / 60:.1f} min, after warm-up)",
            _mb(start.rss_bytes),
            "",
            "",
        ),
        (f"RSS middle (at {middle.audio_s / 60:.1f} min)", _mb(middle.rss_bytes), "", ""),
        (f"RSS end (at {end.audio_s / 60:.1f} min, capture running)", _mb(end.rss_bytes), "", ""),
        (
            f"RSS at the last checkpoint ({result.checkpoints[-1].audio_s / 60:.1f} min)",
            _mb(result.checkpoints[-1].rss_bytes),
            "",
            "",
        ),
        (
            "RSS growth start -> end, MB",
            f"{result.rss_growth_mb:+.1f}",
            f"< {RSS_GROWTH_TARGET_MB:g}",
            verdict(result.rss_growth_mb < RSS_GROWTH_TARGET_MB),
        ),
        ("RSS growth middle -> end, MB", f"{result.rss_late_growth_mb:+.1f}", "", ""),
        ("RSS highest after start - start, MB", f"{result.rss_peak_growth_mb:+.1f}", "", ""),
        (
            "threads start / middle / end",
            f"{start.threads} / {middle.threads} / {end.threads}",
            "constant",
            verdict(result.threads_constant),
        ),
        (
            f"commit latency first {phase}: mean / p90 s",
            f"{_seconds(first.mean_s)} / {_seconds(first.p90_s)} ({first.n_words} words)",
            "",
            "",
        ),
        (
            f"commit latency last {phase}: mean / p90 s",
            f"{_seconds(last.mean_s)} / {_seconds(last.p90_s)} ({last.n_words} words)",
            f"mean <= first + {LATENCY_DRIFT_TOLERANCE_S:g}",
            verdict(result.latency_holds),
        ),
        ("words committed", str(result.words), "", ""),
        (
            f"words committed > {SILENCE_MARGIN_S:g} s from any speech",
            str(result.words_in_silence),
            "0",
            verdict(result.words_in_silence == 0),
        ),
        ("dropped audio s", f"{result.dropped_s:.2f}", "0", verdict(result.dropped_s == 0)),
    ]


def print_report(result: SoakResult, header: Sequence[str]) -> None:
    """Header lines and one table on stdout: Rich on a terminal, plain text otherwise."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    plain = not sys.stdout.isatty()
    table = Table(
        box=box.MARKDOWN if plain else box.SIMPLE_HEAVY,
        title=None if plain else "soak: memory, threads and latency drift",
    )
    for name in ("measure", "value", "target", "meets"):
        table.add_column(name, justify="left" if name == "measure" else "right")
    for row in report_rows(result):
        table.add_row(*row)
    load = " / ".join(
        f"{label} {a:.2f} {b:.2f} {c:.2f}"
        for label, (a, b, c) in (("before", result.load_before), ("after", result.load_after))
    )
    lines = [*header, f"load average (1/5/15 min) {load}"]
    if not plain:
        console = Console()
        for line in lines:
            console.print(line)
        console.print(table)
        return
    console = Console(width=1000, no_color=True)
    with console.capture() as capture:
        console.print(table)
    table_lines = [line.rstrip() for line in capture.get().splitlines() if line.strip()]
    print("\n".join([*lines, *table_lines]), flush=True)


def write_json(path: Path, result: SoakResult, header: Sequence[str]) -> None:
    first, last = result.first(), result.last()
    report = {
        "header": list(header),
        "audio_s": result.audio_s,
        "wall_s": result.wall_s,
        "cpu_s": result.cpu_s,
        "words": result.words,
        "words_in_silence": result.words_in_silence,
        "dropped_s": result.dropped_s,
        "rss_start_bytes": result.start().rss_bytes,
        "rss_middle_bytes": result.middle().rss_bytes,
        "rss_end_bytes": result.end().rss_bytes,
        "rss_growth_mb": result.rss_growth_mb,
        "rss_late_growth_mb": result.rss_late_growth_mb,
        "threads": [result.start().threads, result.middle().threads, result.end().threads],
        "latency_phase_s": result.phase_s,
        "latency_first": asdict(first),
        "latency_last": asdict(last),
        "load_before": result.load_before,
        "load_after": result.load_after,
        "checkpoints": [asdict(c) for c in result.checkpoints],
    }
    write_json_report(path, report)


# --- the command ---------------------------------------------------------------------------------


def speech_clips(manifest: str | None) -> SpeechClips | None:
    """The manifest's files if given, else espeak-ng sentences; None when neither exists."""
    if manifest:
        return ManifestClips(manifest)
    if shutil.which("espeak-ng") is None:
        return None
    return EspeakClips()


def soak(args: argparse.Namespace) -> int:
    """``streamer bench soak``: run, print the table, optionally write JSON."""
    from streamer.bench.stream import code_state
    from streamer.engine.transcribe import Engine

    minutes = float(getattr(args, "minutes", 60.0))
    clips = speech_clips(getattr(args, "manifest", None))
    if clips is None:
        _err(
            "bench soak skipped: no speech to play; espeak-ng is not installed "
            "(apt-get install espeak-ng) and no --manifest was given"
        )
        return 0
    mode = getattr(args, "mode", "captions")
    config = load_config(mode, None, {"stream": {"pace": "fast"}})
    engine = Engine(config.model, log=_err)
    engine.warm_up()
    source = SoakSource(clips, minutes * 60, block_ms=config.audio.block_ms)
    code = code_state()
    header = [
        f"soak: {minutes:g} min of speech ({clips.name}) and silence, seed {SEED}",
        f"model: {engine.describe()}; mode {mode}, virtual clock",
        *([code] if code else []),
    ]
    _err(header[0])
    result = run_soak(engine, config, source, _progress_printer())
    print_report(result, header)
    json_path = getattr(args, "json", None)
    if json_path:
        write_json(Path(json_path), result, header)
        _err(f"numbers written to {json_path}")
    return 0


def _progress_printer() -> Callable[[Checkpoint], None]:
    """A line on stderr every ``PROGRESS_EVERY_S`` of audio."""
    state = {"next": 0.0}

    def report(checkpoint: Checkpoint) -> None:
        if checkpoint.audio_s >= state["next"]:
            _err(
                f"  {checkpoint.audio_s / 60:5.1f} min audio, {checkpoint.wall_s:6.0f} s wall, "
                f"RSS {checkpoint.rss_bytes / 2**20:.1f} MB, {checkpoint.threads} threads"
            )
            state["next"] = checkpoint.audio_s + PROGRESS_EVERY_S

    return report


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
