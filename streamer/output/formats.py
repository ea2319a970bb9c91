"""Offline transcripts written as txt, srt, vtt or jsonl."""

from __future__ import annotations

import json

from streamer.output.subtitles import format_srt_time, format_vtt_time
from streamer.types import Transcript

FORMATS = ("txt", "srt", "vtt", "jsonl")


def to_txt(transcript: Transcript) -> str:
    lines = [segment.text.strip() for segment in transcript.segments if segment.text.strip()]
    return "\n".join(lines) + ("\n" if lines else "")


def _cues(transcript: Transcript):
    return [s for s in transcript.segments if s.text.strip()]


def to_srt(transcript: Transcript) -> str:
    blocks = [
        f"{i}\n{format_srt_time(s.start_s)} --> {format_srt_time(s.end_s)}\n{s.text.strip()}\n"
        for i, s in enumerate(_cues(transcript), start=1)
    ]
    return "\n".join(blocks)


def to_vtt(transcript: Transcript) -> str:
    blocks = [
        f"{format_vtt_time(s.start_s)} --> {format_vtt_time(s.end_s)}\n{s.text.strip()}\n"
        for s in _cues(transcript)
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_jsonl(transcript: Transcript) -> str:
    lines = [
        json.dumps(
            {
                "start_s": s.start_s,
                "end_s": s.end_s,
                "text": s.text.strip(),
                "avg_logprob": round(s.avg_logprob, 4),
                "no_speech_prob": round(s.no_speech_prob, 4),
                "temperature": s.temperature,
                "language": s.language,
            },
            ensure_ascii=False,
        )
        for s in transcript.segments
    ]
    return "\n".join(lines) + ("\n" if lines else "")


def render(transcript: Transcript, fmt: str) -> str:
    return {"txt": to_txt, "srt": to_srt, "vtt": to_vtt, "jsonl": to_jsonl}[fmt](transcript)
