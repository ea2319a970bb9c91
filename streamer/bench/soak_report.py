"""The report of ``streamer bench soak``: one table of measures against their targets, and the
``--json`` report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from streamer.bench.common import load_line, print_table, write_json_report
from streamer.bench.soak_run import LATENCY_DRIFT_TOLERANCE_S, SILENCE_MARGIN_S, SoakResult

RSS_GROWTH_TARGET_MB = 10.0


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
    load = load_line(result.load_before, result.load_after)
    print_table([*header, f"load average (1/5/15 min) {load}"], lambda plain: _table(result, plain))


def _table(result: SoakResult, plain: bool):
    from rich import box
    from rich.table import Table

    table = Table(
        box=box.MARKDOWN if plain else box.SIMPLE_HEAVY,
        title=None if plain else "soak: memory, threads and latency drift",
    )
    for name in ("measure", "value", "target", "meets"):
        table.add_column(name, justify="left" if name == "measure" else "right")
    for row in report_rows(result):
        table.add_row(*row)
    return table


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
