"""A capture console, its screen as text, and a meeting's worth of UI state."""

from __future__ import annotations

import io

from rich.console import Console

from streamer.config import UiConfig
from streamer.output.ui import (
    TranscriptModel,
    render,
)
from streamer.types import (
    Committed,
    CommittedWord,
    Endpoint,
    Stats,
    Tentative,
    TranscriptState,
)


def capture_console(width: int = 80, height: int = 24) -> Console:
    return Console(
        width=width,
        height=height,
        color_system=None,
        record=True,
        file=io.StringIO(),
        force_terminal=False,
    )


def screen_text(state: TranscriptState, width: int = 80, height: int = 24) -> list[str]:
    console = capture_console(width, height)
    console.print(render(state))
    return console.export_text().splitlines()


def committed(*texts: str, language: str = "en") -> Committed:
    return Committed(tuple(CommittedWord(text, 0, 1, 0.0, language) for text in texts))


BUSY_STATS = Stats(
    captured_samples=16000 * 5,
    decoded_samples=16000 * 4,
    real_time_factor=0.1234,
    dropped_samples=8000,
    xruns=2,
    vad_state="speech",
    input_level_db=-23.4,
    last_commit_latency_s=0.8712,
)


def meeting_state(n_lines: int = 30, history_lines: int = 200) -> TranscriptState:
    model = TranscriptModel(
        UiConfig(history_lines=history_lines),
        device="USB Audio Device: Microphone (hw:2,0)",
        device_rate=48000,
        provider="CUDA",
    )
    for index in range(n_lines):
        model.apply(committed(f" Line {index} says something fairly long."))
        model.apply(Endpoint(0, "silence", 0.0))
    model.apply(committed(" Now the", " current"))
    model.apply(Tentative(" words are tentative"))
    model.apply(BUSY_STATS)
    return model.state
