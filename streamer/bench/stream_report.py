"""The report of ``streamer bench stream``: the table against the targets and the reference
streamer, the verdicts, the lines saying what the numbers depend on, and the ``--json`` report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from streamer.bench.common import cpu_name, load_line, print_table, usable_cores, write_json_report
from streamer.bench.stream_metrics import Row
from streamer.bench.stream_run import StreamRun

# targets, shown beside the figures
TARGET_COMMIT_MEAN_S = 1.0
TARGET_COMMIT_P90_S = 1.5
TARGET_FINAL_P50_S = 0.3
TARGET_WER_DELTA_POINTS = 0.5  # streaming WER at most this many points above the best offline
TARGET_CPU_PER_AUDIO_S = 0.35
TARGET_PEAK_RSS_MB = 250  # the process's lifetime peak (ru_maxrss), tiny.en int8 on the CPU
# a LocalAgreement streamer on the same tiny.en weights, as reported by its authors' setup
REFERENCE_STREAMER = ("LocalAgreement streamer, same weights", 2.2, 2.6)  # name, mean, p90

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
    "WER% fw",
    "WER% fw vad",
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
    "maxrss MB": f"<= {TARGET_PEAK_RSS_MB}",
    "repeats": "0",
}
LEGEND = (
    "commit = emitted_at_s of a committed word minus its end (pipeline clock); seen = the same "
    "measured when the benchmark received the commit (realtime pace only; a check on the stamp "
    "and on the event queue). EoS->final = emit time of the last committed word of a reference "
    "segment minus the segment's end. WER% after Whisper's English normalizer, corpus-level "
    "(other languages: its basic normalizer; CER, whitespace removed, for zh and ja; a row over "
    "several languages: the mean of their rates); "
    "offline = ours (streamer transcribe), fw / fw vad = faster-whisper on the same weights "
    "with its VAD filter off / on; delta = stream - the best of the three, in points; stream vs"
    " offline = streamed text scored against our offline transcript. repeats = phrases of 2-8 "
    "words said twice in a row in the stream but not offline (committed again at a window "
    "seam). CPU s/audio s = process CPU time (all threads) over the streaming run / audio "
    "duration. peak RSS = psutil samples every 0.1 s during the run; maxrss = ru_maxrss of the "
    "process so far (model load included: the figure the target is "
    "for; psutil's samples where ru_maxrss is missing)."
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
        percent(row.wer_fw),
        percent(row.wer_fw_vad),
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
        "maxrss MB": judge(_peak_mb(overall), TARGET_PEAK_RSS_MB),
    }
    if silence is not None:
        result["words"] = "yes" if silence.words == 0 else "NO"
    return result


def _peak_mb(row: Row) -> float | None:
    """The process's peak RSS so far: ru_maxrss, or psutil's highest sample without it."""
    return row.maxrss_mb if row.maxrss_mb is not None else row.peak_rss_mb


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
        load = load_line(self.load_before, self.load_after)
        other = (
            ""
            if self.other_cores_busy is None
            else f"; other processes kept {self.other_cores_busy:.2f} cores busy on average"
        )
        return [
            f"machine: {cpu_name()}, {usable_cores()} cores usable; model: {self.engine}",
            *([self.code] if self.code else []),
            f"mode {self.mode}, pace {self.pace}; load average (1/5/15 min) {load}{other}",
        ]


def print_report(
    context: RunContext, rows: Sequence[Row], overall: Row, silence: Row | None
) -> None:
    """Context lines, the table and the legend on stdout: Rich on a terminal, else plain."""
    print_table(context.lines(), lambda plain: render_table(rows, overall, silence, plain), LEGEND)


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
            "peak_rss_mb": TARGET_PEAK_RSS_MB,
        },
        "rows": [
            {
                **row.__dict__,
                "wer_best_offline": row.wer_best_offline,
                "wer_delta_points": row.wer_delta_points,
            }
            for row in rows
        ],
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
