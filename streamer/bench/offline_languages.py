"""The multilingual table of ``streamer bench offline``: per language, our int8 and
faster-whisper int8 on the same weights, each told the clip's language, scored by WER (CER where
the language has no spaces between words, see ``wer.scored_units``); their speed; and how often
each names the clip's language itself (language identification, asked separately).

Our language identification is used once the engine has one (``detect_language`` in
``streamer.engine.language``); until then its column reads "n/a".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from streamer.bench.common import add_rows_with_total, err, print_table
from streamer.bench.offline_report import SPEED_PAIR, machine_line

if TYPE_CHECKING:  # only as types: offline makes the runs and imports this module
    from streamer.bench.offline import EvalItem, FileRun

MULTILINGUAL_SETS = ("multilingual",)  # sets scored per language, in this table
TARGET_SPEED = 1.2  # ours int8 at least this many times faster than faster-whisper int8
DETECTORS = ("ours", "fw")  # language identification columns, one per engine of the pair

LanguageDetector = Callable[[np.ndarray], str]  # 16 kHz audio -> ISO 639-1 code


# --- language identification ---------------------------------------------------------------------


def language_detectors(engines: Sequence) -> dict[str, LanguageDetector | None]:
    """Per engine of the pair, a function naming a clip's language, or None where the engine
    has none (ours, until the engine has ``streamer.engine.language.detect_language``)."""
    named = {engine.name: engine for engine in engines}
    ours, fw = (named.get(name) for name in SPEED_PAIR)
    detectors: dict[str, LanguageDetector | None] = {"ours": None, "fw": None}
    if ours is not None:
        detectors["ours"] = our_language_detector(ours.engine)
    if fw is not None:
        detectors["fw"] = lambda audio: fw.model.detect_language(audio)[0]
    return detectors


def our_language_detector(engine) -> LanguageDetector | None:
    """Our engine's language identification where it has one: ``detect_language(engine,
    audio)`` answering a code, a (code, ...) tuple or a record with ``.language``."""
    try:
        from streamer.engine.language import detect_language
    except ImportError:
        return None

    def detect(audio: np.ndarray) -> str:
        found = detect_language(engine, audio)
        if isinstance(found, str):
            return found
        return getattr(found, "language", None) or found[0]

    return detect


def identify_languages(
    items: Sequence[EvalItem], detectors: dict[str, LanguageDetector | None]
) -> dict[str, dict[str, str | None]]:
    """Item id -> detector -> the language it named (None: it has no detector)."""
    from streamer.audiofile import read_audio

    found: dict[str, dict[str, str | None]] = {}
    for item in items:
        audio = read_audio(item.path)
        found[item.id] = {name: (d(audio) if d else None) for name, d in detectors.items()}
    if items:
        err(f"  language identification: {len(items)} clips")
    return found


# --- the rows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LanguageRow:
    """One language (or ``all``) of the multilingual table."""

    language: str  # ISO 639-1, or "all"
    metric: str  # "WER", "CER"; "mean" for all: the mean of the languages' rates
    n_files: int
    audio_s: float
    error_rate: dict[str, float]  # engine -> errors per reference word (character for CER)
    compute_s: dict[str, float]  # engine -> wall-clock seconds
    cpu_s: dict[str, float]  # engine -> CPU seconds of the process (all threads) meanwhile
    language_id: dict[str, float | None]  # detector -> share named right; None: n/a

    def rtf(self, engine: str) -> float | None:
        seconds = self.compute_s.get(engine)
        return None if seconds is None else seconds / max(self.audio_s, 1e-9)

    def speed_ratio(self) -> float | None:
        """faster-whisper int8 RTF over ours (> 1: ours is faster), when both ran."""
        ours, theirs = (self.rtf(name) for name in SPEED_PAIR)
        return theirs / ours if ours and theirs is not None else None

    def cpu_speed_ratio(self) -> float | None:
        """The same in CPU time: less moved than wall time by other processes' load."""
        ours, theirs = (self.cpu_s.get(name) for name in SPEED_PAIR)
        return theirs / ours if ours and theirs is not None else None

    def delta_points(self) -> float | None:
        """Our error rate minus faster-whisper's, in points (negative: ours is better)."""
        ours, theirs = (self.error_rate.get(name) for name in SPEED_PAIR)
        return None if ours is None or theirs is None else 100 * (ours - theirs)

    def as_json(self) -> dict:
        return {
            **asdict(self),
            "rtf": {name: self.rtf(name) for name in self.compute_s},
            "speed_ratio": self.speed_ratio(),
            "cpu_speed_ratio": self.cpu_speed_ratio(),
            "delta_points": self.delta_points(),
        }


def summarize_languages(
    runs: Sequence[FileRun],
    engines: Sequence[str],
    detected: dict[str, dict[str, str | None]],
) -> list[LanguageRow]:
    """One row per language in run order, then ``all``: error rates averaged over the
    languages (a rate over characters and one over words do not pool), time and language
    identification pooled over the clips."""
    from streamer.bench.wer import metric_name, word_errors

    languages = list(dict.fromkeys(run.item.language for run in runs))
    rows = []
    for language in languages:
        chosen = [run for run in runs if run.item.language == language]
        rates = {}
        for engine in engines:
            mine = [run for run in chosen if run.engine == engine]
            refs, texts = [r.item.reference for r in mine], [r.text for r in mine]
            rates[engine] = word_errors(refs, texts, language).wer
        rows.append(_row(language, metric_name(language), chosen, engines, rates, detected))
    if rows:
        rates = {e: sum(row.error_rate[e] for row in rows) / len(rows) for e in engines}
        rows.append(_row("all", "mean", runs, engines, rates, detected))
    return rows


def _row(language, metric, runs, engines, rates, detected) -> LanguageRow:
    files = [run for run in runs if run.engine == engines[0]]
    compute = {e: sum(r.compute_s for r in runs if r.engine == e) for e in engines}
    cpu = {e: sum(r.cpu_s for r in runs if r.engine == e) for e in engines}
    named = [detected.get(run.item.id, {}) for run in files]
    accuracy: dict[str, float | None] = {}
    for name in DETECTORS:
        said = [found.get(name) for found in named]
        if not said or any(code is None for code in said):
            accuracy[name] = None
        else:
            right = sum(code == run.item.language for code, run in zip(said, files))
            accuracy[name] = right / len(files)
    audio_s = sum(run.audio_s for run in files)
    return LanguageRow(language, metric, len(files), audio_s, rates, compute, cpu, accuracy)


# --- the table -----------------------------------------------------------------------------------


def _number(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def render_language_table(rows: Sequence[LanguageRow], plain: bool):
    from rich import box
    from rich.table import Table

    ours, theirs = SPEED_PAIR
    table = Table(
        box=box.MARKDOWN if plain else box.SIMPLE_HEAVY,
        title=None if plain else "multilingual: WER/CER per language, language given",
    )
    columns = ["language", "clips", "audio s", "metric", f"% {ours}", f"% {theirs}"]
    columns += ["delta pts", f"RTF {ours}", f"RTF {theirs}", "speed"]
    columns += [f"lang ID {name} %" for name in DETECTORS]
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    add_rows_with_total(table, [_cells(row) for row in rows])  # a rule above "all"
    return table


def _cells(row: LanguageRow) -> list[str]:
    ours, theirs = SPEED_PAIR
    percent = {name: 100 * rate for name, rate in row.error_rate.items()}
    speed = row.speed_ratio()
    cells = [row.language, str(row.n_files), f"{row.audio_s:.1f}", row.metric]
    cells += [_number(percent.get(ours), ".2f"), _number(percent.get(theirs), ".2f")]
    cells += [_number(row.delta_points(), "+.2f")]
    cells += [_number(row.rtf(ours), ".4f"), _number(row.rtf(theirs), ".4f")]
    cells += ["n/a" if speed is None else f"{speed:.2f}x"]
    shares = row.language_id.values()
    return cells + [_number(None if share is None else 100 * share, ".0f") for share in shares]


LANGUAGE_LEGEND = (
    "Each engine is told the clip's language; greedy; ours as `streamer transcribe` runs it "
    "(speech regions), faster-whisper with its VAD filter off (its default), both int8 on the "
    "same weights. % = errors per 100 reference units, corpus-level per language: words (WER) "
    "after Whisper's basic normalizer on both sides (numbers are not spelled out); characters "
    "(CER, whitespace removed) for zh and ja, Chinese mapped to Simplified first. all = the "
    "mean of the languages' rates. RTF = compute s / audio s; speed = fw RTF / our RTF. lang ID "
    "= clips whose language the engine named itself (first 30 s), asked separately; n/a: the "
    "engine has no language identification."
)


def speed_verdict(rows: Sequence[LanguageRow]) -> str:
    """The headline: how much faster ours is over every clip, against the target."""
    speed = rows[-1].speed_ratio() if rows else None
    if speed is None:
        return f"speed {SPEED_PAIR[0]} vs {SPEED_PAIR[1]}: n/a (no reference run)"
    verdict = "yes" if speed >= TARGET_SPEED else "NO"
    return (
        f"speed {SPEED_PAIR[0]} vs {SPEED_PAIR[1]} over all clips: {speed:.2f}x "
        f"(target >= {TARGET_SPEED:.2f}x: {verdict}); "
        f"in CPU time {_number(rows[-1].cpu_speed_ratio(), '.2f')}x"
    )


def print_language_report(machine: dict | None, rows: Sequence[LanguageRow]) -> None:
    """The machine line (unless the English table printed it), the speed verdict, the table
    and its legend on stdout."""
    header = [machine_line(machine)] if machine else [""]
    print_table(
        [*header, speed_verdict(rows)],
        lambda plain: render_language_table(rows, plain),
        LANGUAGE_LEGEND,
    )
