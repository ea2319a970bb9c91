"""The figures of ``streamer bench stream``: commit and end-of-speech latency, WER against the
reference and against our offline transcript, seam repeats and cost, one ``Row`` per file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from streamer.audio import SAMPLE_RATE
from streamer.bench.stream_items import SpeechSegment, StreamItem
from streamer.bench.stream_run import StreamRun
from streamer.types import CommittedWord


def spoken(words: Sequence[CommittedWord]) -> list[CommittedWord]:
    """The words that say something: a stop committed on its own (held at a pause until the
    sentence is known to end) is punctuation, not a word that became final late."""
    return [w for w in words if any(char.isalnum() for char in w.text)]


def commit_latencies(words: Sequence[CommittedWord]) -> np.ndarray:
    """Seconds from the end of each spoken word to its commit, shape (n_words,)."""
    return np.array(
        [w.emitted_at_s - w.end_sample / SAMPLE_RATE for w in spoken(words)], dtype=float
    )


def seen_latencies(words: Sequence[CommittedWord], seen_s: Sequence[float]) -> np.ndarray:
    """Seconds from the end of each spoken word to the moment the benchmark received it."""
    said = [(w, s) for w, s in zip(words, seen_s) if any(char.isalnum() for char in w.text)]
    return np.array([s - w.end_sample / SAMPLE_RATE for w, s in said], dtype=float)


def final_latencies(
    words: Sequence[CommittedWord], segments: Sequence[SpeechSegment]
) -> tuple[list[float], int]:
    """End of speech to final, one value per reference segment that got words:
    emit time of the last committed word whose midpoint lies in the segment, minus the
    segment's end. Returns (latencies, segments without any word)."""
    words = spoken(words)
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
    wer_fw: float | None = None  # faster-whisper offline on the same weights, VAD off
    wer_fw_vad: float | None = None  # ... and with its VAD filter
    repeats: int | None = None  # seam repeats (see ``seam_repeats``)
    cpu_per_audio_s: float | None = None
    peak_rss_mb: float | None = None
    maxrss_mb: float | None = None
    dropped_s: float = 0.0

    @property
    def wer_best_offline(self) -> float | None:
        """The best offline figure of the same audio: ours, or faster-whisper's with its VAD
        off or on, whichever read it best."""
        figures = [w for w in (self.wer_offline, self.wer_fw, self.wer_fw_vad) if w is not None]
        return min(figures) if figures else None

    @property
    def wer_delta_points(self) -> float | None:
        """Streaming WER above the best offline figure, in points."""
        if self.wer_stream is None or self.wer_best_offline is None:
            return None
        return 100 * (self.wer_stream - self.wer_best_offline)


REPEAT_WORDS = (2, 8)  # phrase lengths checked for back-to-back repeats


def seam_repeats(streamed: str, offline: str, language: str = "en") -> int:
    """Phrases of 2-8 words (characters, where ``language`` is scored by characters) that the
    stream says twice in a row and the offline reading of the same audio does not: words
    restated at a window seam and committed again. (People do repeat themselves, "no, no";
    those are in the offline text too.)"""
    from streamer.bench.wer import scored_units

    offline_repeats = set(_repeated_phrases(scored_units(offline, language)))
    return sum(
        1
        for phrase in _repeated_phrases(scored_units(streamed, language))
        if phrase not in offline_repeats
    )


def _repeated_phrases(words: list[str]) -> list[tuple[str, ...]]:
    """Each place where a phrase is immediately said again (the longest phrase there)."""
    from streamer.live.wordtext import repeat_lengths

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
    reference_offline: dict[str, Sequence[str]] | None = None,
) -> Row:
    """One row over ``runs`` (one run: that file; several: pooled, corpus WER, or the mean of
    the languages' rates where they are in several, see ``wer.error_rate``);
    ``reference_offline``: faster-whisper's transcripts of the same files, by setting
    (``"fw"``: VAD off, ``"fw vad"``: on)."""
    from streamer.bench.wer import error_rate

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
    languages = [item.language for item in items]
    return Row(
        name=name,
        words=len(words),
        commit={kind: _stat(commit, kind) for kind in ("mean", "p50", "p90")},
        seen={kind: _stat(seen, kind) for kind in ("mean", "p90")},
        final={kind: _stat(finals, kind) for kind in ("p50", "p90")},
        final_missing=missing,
        wer_stream=error_rate(references, streamed, languages),
        wer_offline=error_rate(references, offline, languages),
        wer_vs_offline=error_rate(offline, streamed, languages),
        **{
            field_name: error_rate(references, texts, languages)
            for field_name, texts in (
                ("wer_fw", (reference_offline or {}).get("fw")),
                ("wer_fw_vad", (reference_offline or {}).get("fw vad")),
            )
            if texts is not None
        },
        repeats=sum(
            seam_repeats(text, read, language)
            for text, read, language in zip(streamed, offline, languages)
        ),
        **_cost(runs),
    )


def silence_row(runs: Sequence[StreamRun]) -> Row:
    return Row(
        name="silence and faint noise (fast)",
        words=sum(len(run.words) for run in runs),
        **_cost(runs),
    )


def _cost(runs: Sequence[StreamRun]) -> dict:
    """The audio played and what the process spent on it: the fields of a ``Row`` that every
    row has, the silence row included."""
    audio_s = sum(run.audio_s for run in runs)
    maxrss = [run.maxrss_bytes for run in runs if run.maxrss_bytes is not None]
    return {
        "audio_s": audio_s,
        "cpu_per_audio_s": sum(run.cpu_s for run in runs) / max(audio_s, 1e-9),
        "peak_rss_mb": max(run.peak_rss_bytes for run in runs) / 2**20,
        "maxrss_mb": max(maxrss) / 2**20 if maxrss else None,
        "dropped_s": sum(run.dropped_samples for run in runs) / SAMPLE_RATE,
    }
