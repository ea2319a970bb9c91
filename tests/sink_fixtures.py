"""Committed words and endpoints as the output tests feed them to sinks."""

from __future__ import annotations

from streamer.types import CommittedWord, Endpoint


def cw(
    text: str, start_s: float, end_s: float, emitted_at_s: float = 0.0, language: str = "en"
) -> CommittedWord:
    return CommittedWord(text, int(start_s * 16000), int(end_s * 16000), emitted_at_s, language)


def endpoint(end_s: float = 0.0) -> Endpoint:
    return Endpoint(int(end_s * 16000), "silence", end_s + 0.3)
