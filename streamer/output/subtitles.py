"""Subtitle time stamps and cues: SRT and VTT rebuilt from a session JSONL.

Used by the meeting transcript at the end of a session and by the offline formats.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from streamer.engine.script import is_spaceless

CUE_LINE_CHARS = 42  # the usual subtitle line length (BBC, Netflix guidelines)
CUE_LINE_CHARS_SPACELESS = 16  # full-width characters (Netflix: 16 for Chinese, 13 Japanese)


# --- time formats ---------------------------------------------------------------------------


def _clock_parts(seconds: float) -> tuple[int, int, int, int]:
    """Seconds -> (hours, minutes, seconds, milliseconds), rounded to the millisecond.

    Integer arithmetic, so 59.9996 s becomes 00:01:00.000 and never 00:00:60.000.
    """
    total_ms = max(0, round(seconds * 1000))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, millis = divmod(rest, 1000)
    return hours, minutes, whole, millis


def format_srt_time(seconds: float) -> str:
    """SubRip time stamp, ``hh:mm:ss,mmm``."""
    hours, minutes, whole, millis = _clock_parts(seconds)
    return f"{hours:02d}:{minutes:02d}:{whole:02d},{millis:03d}"


def format_vtt_time(seconds: float) -> str:
    """WebVTT time stamp, ``hh:mm:ss.mmm``."""
    hours, minutes, whole, millis = _clock_parts(seconds)
    return f"{hours:02d}:{minutes:02d}:{whole:02d}.{millis:03d}"


def format_clock(seconds: float) -> str:
    """Whole-second clock ``hh:mm:ss`` (truncated, like a wall clock)."""
    hours, minutes, whole, _ = _clock_parts(int(max(0.0, seconds)))
    return f"{hours:02d}:{minutes:02d}:{whole:02d}"


# --- cues ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cue:
    """One subtitle cue: an utterance, in seconds from the start of the session."""

    start_s: float
    end_s: float
    text: str


def read_cues(jsonl_path: str | Path) -> Iterator[Cue]:
    """Stream the session JSONL as one cue per utterance (lines that do not parse are skipped)."""
    utterance, start_s, end_s, texts = None, 0.0, 0.0, []
    with open(jsonl_path, encoding="utf-8") as lines:
        for line in lines:
            try:
                record = json.loads(line)
                key = record.get("utterance")
                start, end, text = float(record["start_s"]), float(record["end_s"]), record["text"]
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            if texts and key != utterance:
                yield Cue(start_s, end_s, "".join(texts).strip())
                texts = []
            if not texts:
                utterance, start_s = key, start
            end_s = max(end_s, end) if texts else end
            texts.append(str(text))
    if texts:
        yield Cue(start_s, end_s, "".join(texts).strip())


def _cue_lines(text: str) -> str:
    # "-->" would end a VTT cue header early; blank lines would end the cue
    # Chinese and Japanese have no spaces to break at: lines break between characters
    width = CUE_LINE_CHARS_SPACELESS if is_spaceless(text) else CUE_LINE_CHARS
    return "\n".join(textwrap.wrap(text.replace("-->", "->"), width)) or "..."


def write_subtitles(jsonl_path: str | Path, srt_path: str | Path, vtt_path: str | Path) -> int:
    """Write SRT and VTT (one cue per utterance) from a session JSONL; returns the cue count.

    Reads the JSONL as a stream, so hours of transcript never sit in memory.
    """
    count = 0
    with open(srt_path, "w", encoding="utf-8") as srt, open(vtt_path, "w", encoding="utf-8") as vtt:
        vtt.write("WEBVTT\n\n")
        for count, cue in enumerate(read_cues(jsonl_path), start=1):
            end_s = max(cue.end_s, cue.start_s + 0.001)  # players drop zero-length cues
            text = _cue_lines(cue.text)
            srt.write(f"{count}\n{format_srt_time(cue.start_s)} --> {format_srt_time(end_s)}\n")
            srt.write(f"{text}\n\n")
            vtt.write(f"{format_vtt_time(cue.start_s)} --> {format_vtt_time(end_s)}\n{text}\n\n")
    return count
