"""``streamer bench stream``: latency, accuracy and cost of live transcription on real speech.

Every long-form file of the evaluation manifest is played through the same pipeline that
``streamer live --input FILE`` builds (``FileSource`` at ``--pace``, the preset of ``--mode``, the
same ``Engine``), one file after another. Measured per file and overall:

- commit latency: ``emitted_at_s`` of a committed word minus the end of the word
  (``end_sample / 16000``), both on the pipeline clock (wall clock at ``--pace realtime``,
  the virtual clock at ``--pace fast``). At realtime pace the time the benchmark *received*
  each commit is recorded as well ("seen"): a check on the stamp, which must not be taken
  before the step that made the commit has run (it was, before 92b9d4b), and on the queue
  between the inference thread and the consumer.
- end of speech to final: for each reference segment (``segments`` in the manifest, start_s
  and end_s), the committed words whose midpoint lies in the segment; the emit time of the
  last of them minus the segment's end. A file without segments is one segment that ends at
  its last committed word.
- WER of the streamed text against the reference, and of our own offline transcript
  (``transcribe_file``, same engine and precision) against the reference; the difference in
  points; and the streamed text against the offline transcript.
- CPU seconds per audio second: process CPU time (every thread) over the streaming run only.
- peak RSS: sampled with psutil every ``RSS_EVERY_S`` during the run, and the process's
  ``ru_maxrss`` (everything since the process started: the model load included).

``--chapters`` plays the LibriSpeech chapters of the manifest instead, each joined into one
file the way its long-form chapter was made (utterances in order, ``CHAPTER_GAP_S`` of silence
between); chapters that already are a long-form file are left out: a second set, to check that
a change tuned on the long-form files holds elsewhere.

A last row plays ``SILENCE_S`` of digital silence and ``SILENCE_S`` of white noise at
``NOISE_DB`` dBFS at fast pace: no word may be committed from either.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamer.audio import SAMPLE_RATE
from streamer.bench.offline import manifest_records, write_json_report
from streamer.config import Config, load_config
from streamer.errors import ConfigError, DependencyError, StreamerError
from streamer.types import Committed, CommittedWord

# targets, shown beside the figures
TARGET_COMMIT_MEAN_S = 1.0
TARGET_COMMIT_P90_S = 1.5
TARGET_FINAL_P50_S = 0.3
TARGET_WER_DELTA_POINTS = 0.5  # streaming WER at most this many points above offline
TARGET_CPU_PER_AUDIO_S = 0.35
# a LocalAgreement streamer on the same tiny.en weights, as reported by its authors' setup
REFERENCE_STREAMER = ("LocalAgreement streamer, same weights", 2.2, 2.6)  # name, mean, p90

RSS_EVERY_S = 0.1  # psutil RSS sampling period during a run
SILENCE_S = 120.0
NOISE_DB = -50.0
NOISE_SEED = 0
TIMEOUT_FACTOR = 3.0  # a run may take this many times its audio (+ TIMEOUT_EXTRA_S)
TIMEOUT_EXTRA_S = 120.0


# --- what is played ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeechSegment:
    """One reference segment of a long-form file, in seconds from the file start."""

    start_s: float
    end_s: float


@dataclass(frozen=True)
class StreamItem:
    """A long-form file of the manifest with its reference and segment times."""

    id: str
    path: Path
    reference: str
    duration_s: float
    segments: tuple[SpeechSegment, ...]  # empty: the whole file is one segment


def read_stream_items(manifest: str | Path, limit: int | None = None) -> list[StreamItem]:
    """The ``longform`` items of ``manifest`` in file order (the first ``limit``)."""
    path = Path(manifest)
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    items = []
    for record in manifest_records(path):
        if record.get("set") != "longform":
            continue
        segments = tuple(
            SpeechSegment(float(s["start_s"]), float(s["end_s"]))
            for s in record.get("segments") or ()
        )
        items.append(
            StreamItem(
                id=record["id"],
                path=path.parent / record["path"],
                reference=record["text"],
                duration_s=float(record["duration_s"]),
                segments=segments,
            )
        )
    if not items:
        raise ConfigError(f"{path} has no items of set 'longform'")
    return items[:limit]


CHAPTER_GAP_S = 0.5


def chapter_items(manifest: str | Path, folder: Path, limit: int | None = None) -> list[StreamItem]:
    """Each LibriSpeech chapter of ``manifest`` as one long-form item, written under ``folder``
    (the first ``limit``); chapters with an utterance in a long-form file are left out."""
    path = Path(manifest)
    records = manifest_records(path)
    in_longform = {
        segment.get("id")
        for record in records
        if record.get("set") == "longform"
        for segment in record.get("segments") or ()
    }
    chapters: dict[str, list[dict]] = {}
    for record in records:
        if record.get("set") == "librispeech" and record.get("chapter"):
            key = f"{record.get('subset', '')}_{record['speaker']}-{record['chapter']}"
            chapters.setdefault(key, []).append(record)
    items = []
    for key, utterances in chapters.items():
        if any(u.get("utterance") in in_longform for u in utterances):
            continue
        utterances.sort(key=lambda u: u.get("utterance", u["id"]))
        items.append(_join_chapter(key, utterances, path.parent, folder))
    if not items:
        raise ConfigError(f"{path} has no LibriSpeech chapters outside its long-form files")
    return items[:limit]


def _join_chapter(key: str, utterances: list[dict], root: Path, folder: Path) -> StreamItem:
    import soundfile

    gap = np.zeros(int(CHAPTER_GAP_S * SAMPLE_RATE), dtype=np.float32)
    pieces, segments, start = [], [], 0
    for utterance in utterances:
        samples, rate = soundfile.read(root / utterance["path"], dtype="float32")
        if rate != SAMPLE_RATE or samples.ndim != 1:
            raise ConfigError(f"{utterance['path']}: expected 16 kHz mono like the manifest says")
        end = start + len(samples)
        segments.append(SpeechSegment(start / SAMPLE_RATE, end / SAMPLE_RATE))
        pieces += [samples, gap]
        start = end + len(gap)
    audio = np.concatenate(pieces[:-1])
    path = folder / f"{key}.wav"
    soundfile.write(path, audio, SAMPLE_RATE, subtype="FLOAT")
    reference = " ".join(u["text"] for u in utterances)
    return StreamItem(key, path, reference, len(audio) / SAMPLE_RATE, tuple(segments))


# --- one run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamRun:
    """What one file produced on the live pipeline."""

    name: str
    audio_s: float
    words: tuple[CommittedWord, ...]
    seen_s: tuple[float, ...]  # per word: pipeline-clock time the benchmark received it
    cpu_s: float
    wall_s: float
    peak_rss_bytes: int  # max of the psutil samples during the run
    maxrss_bytes: int | None  # ru_maxrss right after the run (process lifetime peak)
    dropped_samples: int
    realtime: bool

    @property
    def text(self) -> str:
        return "".join(word.text for word in self.words).strip()


def _psutil():
    try:
        import psutil
    except ImportError as error:
        raise DependencyError(
            "bench stream needs psutil: pip install -e '.[dev]' (or: pip install psutil)"
        ) from error
    return psutil


def maxrss_bytes() -> int | None:
    """The process's peak resident set size so far (None where ``resource`` is missing)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def run_file(path: Path, engine, config: Config, name: str | None = None) -> StreamRun:
    """Play ``path`` through the live pipeline at ``config.stream.pace``; collect commits."""
    from streamer.audiofile import audio_info
    from streamer.live.capture import build_source
    from streamer.live.pipeline import Finished, Pipeline

    process = _psutil().Process()
    audio_s = audio_info(path).duration_s
    realtime = config.stream.pace == "realtime"
    source = build_source(config, str(path))
    pipeline = Pipeline(source, engine, config, virtual_clock=not realtime)
    words: list[CommittedWord] = []
    seen: list[float] = []
    peak_rss = process.memory_info().rss
    next_sample = 0.0
    deadline = time.monotonic() + TIMEOUT_FACTOR * audio_s + TIMEOUT_EXTRA_S
    cpu_started = time.process_time()
    # the pipeline clock starts when the source does (FileSource.start, in Pipeline.start)
    started = time.monotonic()
    with pipeline:
        while True:
            event = pipeline.next_event(0.05)
            now = time.monotonic()
            if now >= next_sample:
                peak_rss = max(peak_rss, process.memory_info().rss)
                next_sample = now + RSS_EVERY_S
            if isinstance(event, Finished):
                break
            if isinstance(event, Committed):
                words += event.words
                seen += [now - started] * len(event.words)
            if now > deadline:
                raise StreamerError(f"bench stream: {path} did not finish in time")
        dropped = pipeline.stats().dropped_samples
    wall_s = time.monotonic() - started
    cpu_s = time.process_time() - cpu_started
    return StreamRun(
        name=name or path.stem,
        audio_s=audio_s,
        words=tuple(words),
        seen_s=tuple(seen),
        cpu_s=cpu_s,
        wall_s=wall_s,
        peak_rss_bytes=max(peak_rss, process.memory_info().rss),
        maxrss_bytes=maxrss_bytes(),
        dropped_samples=dropped,
        realtime=realtime,
    )


def offline_text(engine, path: Path, config: Config) -> str:
    """Our own whole-file transcript with the mode's decode options."""
    from streamer.engine.transcribe import transcribe_file

    return transcribe_file(engine, path, config.decode).transcript.text


# --- metrics -------------------------------------------------------------------------------------


def commit_latencies(words: Sequence[CommittedWord]) -> np.ndarray:
    """Seconds from the end of each word to its commit, shape (n_words,)."""
    return np.array([w.emitted_at_s - w.end_sample / SAMPLE_RATE for w in words], dtype=float)


def seen_latencies(words: Sequence[CommittedWord], seen_s: Sequence[float]) -> np.ndarray:
    """Seconds from the end of each word to the moment the benchmark received it."""
    return np.array([s - w.end_sample / SAMPLE_RATE for w, s in zip(words, seen_s)], dtype=float)


def final_latencies(
    words: Sequence[CommittedWord], segments: Sequence[SpeechSegment]
) -> tuple[list[float], int]:
    """End of speech to final, one value per reference segment that got words:
    emit time of the last committed word whose midpoint lies in the segment, minus the
    segment's end. Returns (latencies, segments without any word)."""
    if not segments:
        if not words:
            return [], 1
        segments = (SpeechSegment(0.0, max(w.end_sample for w in words) / SAMPLE_RATE),)
    midpoints = np.array([(w.start_sample + w.end_sample) / 2 / SAMPLE_RATE for w in words])
    emitted = np.array([w.emitted_at_s for w in words])
    latencies, missing = [], 0
    for segment in segments:
        inside = (midpoints >= segment.start_s) & (midpoints <= segment.end_s)
        if not inside.any():
            missing += 1
            continue
        latencies.append(float(emitted[inside].max() - segment.end_s))
    return latencies, missing


def _stat(values, kind: str) -> float | None:
    if len(values) == 0:
        return None
    if kind == "mean":
        return float(np.mean(values))
    return float(np.percentile(values, {"p50": 50, "p90": 90}[kind]))


@dataclass(frozen=True)
class Row:
    """One line of the table; None where a figure does not apply."""

    name: str
    audio_s: float
    words: int
    commit: dict[str, float | None] = field(default_factory=dict)  # mean, p50, p90
    seen: dict[str, float | None] = field(default_factory=dict)  # mean, p90 (realtime only)
    final: dict[str, float | None] = field(default_factory=dict)  # p50, p90
    final_missing: int = 0
    wer_stream: float | None = None  # fractions
    wer_offline: float | None = None
    wer_vs_offline: float | None = None
    repeats: int | None = None  # seam repeats (see ``seam_repeats``)
    cpu_per_audio_s: float | None = None
    peak_rss_mb: float | None = None
    maxrss_mb: float | None = None
    dropped_s: float = 0.0

    @property
    def wer_delta_points(self) -> float | None:
        if self.wer_stream is None or self.wer_offline is None:
            return None
        return 100 * (self.wer_stream - self.wer_offline)


REPEAT_WORDS = (2, 8)  # phrase lengths checked for back-to-back repeats


def seam_repeats(streamed: str, offline: str) -> int:
    """Phrases of 2-8 words that the stream says twice in a row and the offline reading of
    the same audio does not: words restated at a window seam and committed again. (People
    do repeat themselves, "no, no"; those are in the offline text too.)"""
    from streamer.bench.wer import normalize

    offline_words = normalize(offline).split()
    offline_repeats = set(_repeated_phrases(offline_words))
    return sum(
        1
        for phrase in _repeated_phrases(normalize(streamed).split())
        if phrase not in offline_repeats
    )


def _repeated_phrases(words: list[str]) -> list[tuple[str, ...]]:
    """Each place where a phrase is immediately said again (the longest phrase there)."""
    from streamer.live.commit import repeat_lengths

    found, index = [], 0
    while index < len(words):
        n = next(repeat_lengths(words, index, *REPEAT_WORDS), 0)
        if n:
            found.append(tuple(words[index : index + n]))
            index += 2 * n - 1  # past the repeat
        index += 1
    return found


def summarize(
    runs: Sequence[StreamRun],
    items: Sequence[StreamItem],
    offline: Sequence[str],
    name: str,
) -> Row:
    """One row over ``runs`` (one run: that file; several: pooled, corpus WER)."""
    from streamer.bench.wer import word_errors

    words = [w for run in runs for w in run.words]
    commit = commit_latencies(words)
    seen = np.concatenate(
        [seen_latencies(run.words, run.seen_s) for run in runs if run.realtime] or [np.zeros(0)]
    )
    finals, missing = [], 0
    for run, item in zip(runs, items):
        values, lost = final_latencies(run.words, item.segments)
        finals += values
        missing += lost
    references = [item.reference for item in items]
    streamed = [run.text for run in runs]
    audio_s = sum(run.audio_s for run in runs)
    maxrss = [run.maxrss_bytes for run in runs if run.maxrss_bytes is not None]
    return Row(
        name=name,
        audio_s=audio_s,
        words=len(words),
        commit={kind: _stat(commit, kind) for kind in ("mean", "p50", "p90")},
        seen={kind: _stat(seen, kind) for kind in ("mean", "p90")},
        final={kind: _stat(finals, kind) for kind in ("p50", "p90")},
        final_missing=missing,
        wer_stream=word_errors(references, streamed).wer,
        wer_offline=word_errors(references, offline).wer,
        wer_vs_offline=word_errors(offline, streamed).wer,
        repeats=sum(seam_repeats(text, reference) for text, reference in zip(streamed, offline)),
        cpu_per_audio_s=sum(run.cpu_s for run in runs) / max(audio_s, 1e-9),
        peak_rss_mb=max(run.peak_rss_bytes for run in runs) / 2**20,
        maxrss_mb=max(maxrss) / 2**20 if maxrss else None,
        dropped_s=sum(run.dropped_samples for run in runs) / SAMPLE_RATE,
    )


def silence_row(runs: Sequence[StreamRun]) -> Row:
    audio_s = sum(run.audio_s for run in runs)
    maxrss = [run.maxrss_bytes for run in runs if run.maxrss_bytes is not None]
    return Row(
        name="silence and faint noise (fast)",
        audio_s=audio_s,
        words=sum(len(run.words) for run in runs),
        cpu_per_audio_s=sum(run.cpu_s for run in runs) / max(audio_s, 1e-9),
        peak_rss_mb=max(run.peak_rss_bytes for run in runs) / 2**20,
        maxrss_mb=max(maxrss) / 2**20 if maxrss else None,
        dropped_s=sum(run.dropped_samples for run in runs) / SAMPLE_RATE,
    )


def silence_files(folder: Path) -> list[Path]:
    """``SILENCE_S`` of digital silence and of white noise at ``NOISE_DB`` dBFS, as wavs."""
    import soundfile

    n_samples = int(SILENCE_S * SAMPLE_RATE)
    noise = np.random.default_rng(NOISE_SEED).standard_normal(n_samples) * 10 ** (NOISE_DB / 20)
    paths = []
    for label, samples in (("silence", np.zeros(n_samples)), ("noise-50dBFS", noise)):
        path = folder / f"{label}.wav"
        soundfile.write(path, samples.astype(np.float32), SAMPLE_RATE, subtype="FLOAT")
        paths.append(path)
    return paths


# --- report --------------------------------------------------------------------------------------

COLUMNS = (
    "file",
    "audio s",
    "words",
    "commit mean s",
    "commit p50 s",
    "commit p90 s",
    "seen mean s",
    "seen p90 s",
    "EoS->final p50 s",
    "EoS->final p90 s",
    "WER% stream",
    "WER% offline",
    "delta pts",
    "WER% stream vs offline",
    "repeats",
    "CPU s/audio s",
    "peak RSS MB",
    "maxrss MB",
)
TARGET_CELLS = {
    "file": "target",
    "words": "0 in silence",
    "commit mean s": f"<= {TARGET_COMMIT_MEAN_S:.1f}",
    "commit p90 s": f"<= {TARGET_COMMIT_P90_S:.1f}",
    "EoS->final p50 s": f"<= {TARGET_FINAL_P50_S:.1f}",
    "delta pts": f"<= +{TARGET_WER_DELTA_POINTS:.2f}",
    "CPU s/audio s": f"<= {TARGET_CPU_PER_AUDIO_S:.2f}",
    "repeats": "0",
}
LEGEND = (
    "commit = emitted_at_s of a committed word minus its end (pipeline clock); seen = the same "
    "measured when the benchmark received the commit (realtime pace only; a check on the stamp "
    "and on the event queue). EoS->final = emit time of the last committed word of "
    "a reference segment minus the segment's end. WER% after Whisper's English normalizer, "
    "corpus-level; delta = stream - offline in points; stream vs offline = streamed text scored "
    "against our offline transcript. repeats = phrases of 2-8 words said twice in a row in the "
    "stream but not offline (committed again at a window seam). CPU s/audio s = process CPU "
    "time (all threads) over the streaming run / audio duration. peak RSS = psutil samples "
    "every 0.1 s during the run; maxrss = ru_maxrss of the process so far."
)


def _cell(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _cells(row: Row) -> list[str]:
    def percent(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f}"

    delta = row.wer_delta_points
    return [
        row.name,
        f"{row.audio_s:.1f}",
        str(row.words),
        _cell(row.commit.get("mean")),
        _cell(row.commit.get("p50")),
        _cell(row.commit.get("p90")),
        _cell(row.seen.get("mean")),
        _cell(row.seen.get("p90")),
        _cell(row.final.get("p50")),
        _cell(row.final.get("p90")),
        percent(row.wer_stream),
        percent(row.wer_offline),
        "-" if delta is None else f"{delta:+.2f}",
        percent(row.wer_vs_offline),
        "-" if row.repeats is None else str(row.repeats),
        _cell(row.cpu_per_audio_s, 3),
        _cell(row.peak_rss_mb, 0),
        _cell(row.maxrss_mb, 0),
    ]


def verdicts(overall: Row, silence: Row | None) -> dict[str, str]:
    """'yes' / 'NO' per targeted column, judged on the overall row (and the silence row)."""

    def judge(value: float | None, limit: float) -> str:
        return "-" if value is None else ("yes" if value <= limit + 1e-9 else "NO")

    result = {
        "file": "meets target (overall)",
        "commit mean s": judge(overall.commit.get("mean"), TARGET_COMMIT_MEAN_S),
        "commit p90 s": judge(overall.commit.get("p90"), TARGET_COMMIT_P90_S),
        "EoS->final p50 s": judge(overall.final.get("p50"), TARGET_FINAL_P50_S),
        "delta pts": judge(overall.wer_delta_points, TARGET_WER_DELTA_POINTS),
        "CPU s/audio s": judge(overall.cpu_per_audio_s, TARGET_CPU_PER_AUDIO_S),
        "repeats": judge(overall.repeats, 0),
    }
    if silence is not None:
        result["words"] = "yes" if silence.words == 0 else "NO"
    return result


def render_table(rows: Sequence[Row], overall: Row, silence: Row | None, plain: bool):
    """Files, overall, silence; then the targets, the reference streamer and the verdicts."""
    from rich import box
    from rich.table import Table

    table = Table(
        box=box.MARKDOWN if plain else box.SIMPLE_HEAVY,
        title=None if plain else "streaming benchmark: latency (s), WER and cost against targets",
    )
    for index, name in enumerate(COLUMNS):
        table.add_column(name, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*_cells(row))
    table.add_row(*_cells(overall), end_section=silence is None)
    if silence is not None:
        table.add_row(*_cells(silence), end_section=True)
    name, mean_s, p90_s = REFERENCE_STREAMER
    reference = {"file": name, "commit mean s": f"{mean_s:.1f}", "commit p90 s": f"{p90_s:.1f}"}
    for cells in (TARGET_CELLS, reference, verdicts(overall, silence)):
        table.add_row(*[cells.get(column, "") for column in COLUMNS])
    return table


@dataclass(frozen=True)
class RunContext:
    """What the numbers depend on: machine, settings and the load around the run."""

    engine: str
    code: str
    mode: str
    pace: str
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    other_cores_busy: float | None  # average cores used by other processes during streaming

    def lines(self) -> list[str]:
        cpu = platform.processor() or platform.machine()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        usable = (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        )
        load = " / ".join(
            f"{label} {a:.2f} {b:.2f} {c:.2f}"
            for label, (a, b, c) in (("before", self.load_before), ("after", self.load_after))
        )
        other = (
            ""
            if self.other_cores_busy is None
            else f"; other processes kept {self.other_cores_busy:.2f} cores busy on average"
        )
        return [
            f"machine: {cpu}, {usable} cores usable; model: {self.engine}",
            *([self.code] if self.code else []),
            f"mode {self.mode}, pace {self.pace}; load average (1/5/15 min) {load}{other}",
        ]


def print_report(context: RunContext, table) -> None:
    """Context lines, the table and the legend on stdout: Rich on a terminal, else plain."""
    from rich.console import Console

    if sys.stdout.isatty():
        console = Console()
        for line in context.lines():
            console.print(line)
        console.print(table)
        console.print(LEGEND, style="dim")
        return
    console = Console(width=1000, no_color=True)  # wide enough that no cell wraps
    with console.capture() as capture:
        console.print(table)
    lines = [line.rstrip() for line in capture.get().splitlines() if line.strip()]
    print("\n".join([*context.lines(), *lines, *textwrap.wrap(LEGEND, 100)]), flush=True)


# --- the command ---------------------------------------------------------------------------------


def code_state() -> str:
    """The commit the package was loaded from and the tracked files changed since (the
    numbers belong to that code), or "" outside a git checkout."""
    import subprocess

    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        # porcelain lines are "XY path": the status columns may start with a space
        changed = [line[3:] for line in git("status", "--porcelain", "-uno").splitlines()]
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"code: {commit}" + (f" + local changes in {', '.join(changed)}" if changed else "")


def _busy_cpu_s() -> float:
    times = _psutil().cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def stream(args: argparse.Namespace) -> int:
    """``streamer bench stream``: play the long-form files (or chapters), print the table."""
    with tempfile.TemporaryDirectory() as folder:
        if getattr(args, "chapters", False):
            items = chapter_items(args.manifest, Path(folder), getattr(args, "limit", None))
        else:
            items = read_stream_items(args.manifest, getattr(args, "limit", None))
        return _stream(args, items)


def _stream(args: argparse.Namespace, items: list[StreamItem]) -> int:
    from streamer.engine.transcribe import Engine

    mode = getattr(args, "mode", "captions")
    pace = getattr(args, "pace", "realtime")
    code = code_state()  # before the run: what was loaded, even if files change meanwhile
    config_file = getattr(args, "config", None)
    stream_overrides: dict = {"pace": pace}
    if getattr(args, "virtual_cpu", None) is not None:
        stream_overrides["virtual_cpu_speed"] = args.virtual_cpu
    config = load_config(mode, config_file, {"stream": stream_overrides})
    engine = Engine(config.model, log=_err)
    engine.warm_up()
    speed = config.stream.virtual_cpu_speed
    if speed > 0:  # what the figures mean: this schedule, not this machine's
        pace = f"fast, step cost modelled at {speed:g}x the reference CPU"
    _err(f"{len(items)} files, {sum(i.duration_s for i in items):.0f} s of audio, pace {pace}")

    load_before = os.getloadavg()
    busy_before, cpu_before, wall_before = _busy_cpu_s(), time.process_time(), time.monotonic()
    runs = []
    for item in items:
        runs.append(run_file(item.path, engine, config, item.id))
        run = runs[-1]
        _err(f"  {item.id}: {len(run.words)} words, {run.wall_s:.0f} s wall, {run.cpu_s:.0f} s CPU")
    other_busy = (_busy_cpu_s() - busy_before) - (time.process_time() - cpu_before)
    other_cores = max(0.0, other_busy) / max(time.monotonic() - wall_before, 1e-9)
    load_after = os.getloadavg()

    fast = load_config(mode, config_file, {"stream": {"pace": "fast"}})
    with tempfile.TemporaryDirectory() as folder:
        quiet = [run_file(path, engine, fast) for path in silence_files(Path(folder))]
    _err(f"  silence and noise: {sum(len(r.words) for r in quiet)} words")
    offline = [offline_text(engine, item.path, config) for item in items]

    rows = [
        summarize([run], [item], [text], item.id) for run, item, text in zip(runs, items, offline)
    ]
    overall = summarize(runs, items, offline, "overall")
    silence = silence_row(quiet)
    context = RunContext(engine.describe(), code, mode, pace, load_before, load_after, other_cores)
    print_report(context, render_table(rows, overall, silence, plain=not sys.stdout.isatty()))
    json_path = getattr(args, "json", None)
    if json_path:
        write_json(Path(json_path), context, [*rows, overall, silence], runs, offline)
        _err(f"numbers written to {json_path}")
    return 0


def write_json(
    path: Path,
    context: RunContext,
    rows: Sequence[Row],
    runs: Sequence[StreamRun],
    offline: Sequence[str],
) -> None:
    report = {
        "context": context.__dict__,
        "targets": {
            "commit_mean_s": TARGET_COMMIT_MEAN_S,
            "commit_p90_s": TARGET_COMMIT_P90_S,
            "final_p50_s": TARGET_FINAL_P50_S,
            "wer_delta_points": TARGET_WER_DELTA_POINTS,
            "cpu_per_audio_s": TARGET_CPU_PER_AUDIO_S,
        },
        "rows": [{**row.__dict__, "wer_delta_points": row.wer_delta_points} for row in rows],
        "files": [
            {
                "name": run.name,
                "text": run.text,
                "offline_text": text,
                "wall_s": run.wall_s,
                "cpu_s": run.cpu_s,
                "words": [
                    [w.text, w.start_sample, w.end_sample, w.emitted_at_s, seen]
                    for w, seen in zip(run.words, run.seen_s)
                ],
            }
            for run, text in zip(runs, offline)
        ],
    }
    write_json_report(path, report)


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
