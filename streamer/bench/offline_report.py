"""The figures of ``streamer bench offline``: WER and speed per set and engine, the machine they
were measured on, the table on stdout and the ``--json`` report."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from streamer.bench.common import (
    add_rows_with_total,
    cpu_name,
    print_table,
    usable_cores,
    write_json_report,
)

if TYPE_CHECKING:  # only as types: the runs are made in offline, which prints through here
    from streamer.bench.offline import FileRun

SPEED_PAIR = ("ours int8", "fw int8")  # the headline comparison: (ours, reference)


# --- scores --------------------------------------------------------------------------------------


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


# --- machine -------------------------------------------------------------------------------------


def describe_machine(threads: int) -> dict:
    """CPU model, cores, runtime versions and load: what the numbers depend on."""
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        physical = None
    return {
        "cpu": cpu_name(),
        "physical_cores": physical,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "threads_per_engine": threads,
        "onnxruntime": _version("onnxruntime"),
        "ctranslate2": _version("ctranslate2"),
        "faster_whisper": _version("faster_whisper"),
        "python": platform.python_version(),
        "load_avg_1m_start": load_average_1m(),
    }


def load_average_1m() -> float | None:
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
    return line + (f"; model {machine['model']}" if machine.get("model") else "")


# --- report --------------------------------------------------------------------------------------


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
    lines = []
    for row in rows:
        cells = [row.name, str(row.n_files), f"{row.audio_s:.1f}"]
        cells += [f"{100 * row.scores[e].wer:.2f}" for e in engines]
        cells += [f"{row.scores[e].rtf:.4f}" for e in engines]
        if compare:
            cells += [f"{row.speed_ratio():.2f}x", f"{row.wer_delta():+.2f}"]
        lines.append(cells)
    add_rows_with_total(table, lines)  # a rule above "overall"
    return table


LEGEND = (
    "fw = faster-whisper on the same weights (CTranslate2, cpu). WER% = word errors "
    "per 100 reference words after Whisper's English normalizer, summed over the set. "
    "RTF = compute s / audio s (lower is faster). speed = fw RTF / our RTF (>= 1.00x: "
    "ours is at least as fast). WER delta in points (negative: ours is better)."
)


def print_report(machine: dict, rows: Sequence[SetRow], engines: Sequence[str]) -> None:
    """Machine line, table and legend on stdout: Rich on a terminal, plain text otherwise."""
    print_table([machine_line(machine)], lambda plain: render_table(rows, engines, plain), LEGEND)


def write_json(
    path: Path,
    machine: dict,
    args: argparse.Namespace,
    rows: Sequence[SetRow],
    runs: Sequence[FileRun],
    extra: dict | None = None,
) -> None:
    """The settings, the rows and every file's text and times; ``extra``: more top-level keys
    (the multilingual rows)."""
    settings = ("manifest", "sets", "limit", "threads", "model_device", "model", "reference_model")
    report = {
        "machine": machine,
        "settings": {name: getattr(args, name, None) for name in settings},
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
                "language": r.item.language,
                "reference": r.item.reference,
                **{key: value for key, value in asdict(r).items() if key != "item"},
            }
            for r in runs
        ],
        **(extra or {}),
    }
    write_json_report(path, report)
