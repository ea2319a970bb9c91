"""Terminal UI: a pure render of a ``TranscriptState`` snapshot, and the ``Live`` shell around it.

Three parts, each replaceable on its own:

- ``fold`` / ``TranscriptModel``: pipeline events -> a new immutable ``TranscriptState``;
- ``render``: snapshot -> Rich renderable; the layout is computed when Rich draws it, from the
  size of the terminal at that moment, so a resize is correct on the next refresh; the status
  bar (``statusbar``) is one row at any width;
- ``LiveView``: pulls a snapshot at ``UiConfig.refresh_per_second`` (Rich ``Live``).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.text import Text

from streamer.config import UiConfig
from streamer.engine.script import join_words, split_words
from streamer.live.wordtext import normalize
from streamer.output.statusbar import status_bar
from streamer.types import (
    Committed,
    Endpoint,
    Notice,
    PipelineEvent,
    Stats,
    Tentative,
    TranscriptState,
)

TENTATIVE_STYLE = "dim"


# --- events -> snapshots --------------------------------------------------------------------


def fold(
    state: TranscriptState,
    event: PipelineEvent,
    *,
    history_lines: int = 200,
    show_tentative: bool = True,
    max_line_chars: int = 1000,
) -> TranscriptState:
    """The snapshot after ``event``; history keeps at most ``history_lines`` lines."""
    if isinstance(event, Committed):
        text = "".join(word.text for word in event.words)
        line = state.current_line + text if state.current_line else text.lstrip()
        tentative = _without_prefix(state.tentative, text)
        history, line = _break_long_line(state.committed_lines, line, max_line_chars)
        return replace(
            state,
            committed_lines=history[-history_lines:],
            current_line=line,
            tentative=tentative,
            language=event.words[-1].language if event.words else state.language,
        )
    if isinstance(event, Tentative):
        return replace(state, tentative=event.text.strip() if show_tentative else "")
    if isinstance(event, Endpoint):
        history = state.committed_lines + ((state.current_line,) if state.current_line else ())
        return replace(
            state, committed_lines=history[-history_lines:], current_line="", tentative=""
        )
    if isinstance(event, Stats):
        return replace(state, stats=event)
    if isinstance(event, Notice):
        text = (
            event.text
            if event.level == "info" or not event.text
            else f"{event.level}: {event.text}"
        )
        return replace(state, notice=text)
    raise TypeError(f"not a pipeline event: {event!r}")


def _without_prefix(tentative: str, committed: str) -> str:
    """The tentative tail minus the words that were just committed.

    The pipeline sends a new ``Tentative`` after each ``Committed``; until it arrives, the old
    tail must not show the committed words a second time. A tail that does not start with them
    is stale, so it is dropped.
    """
    committed_words = [normalize(word) for word in split_words(committed)]
    tentative_words = split_words(tentative)
    head = [normalize(word) for word in tentative_words[: len(committed_words)]]
    if head != committed_words:
        return ""
    return join_words(tentative_words[len(committed_words) :])


def _break_long_line(
    history: tuple[str, ...], line: str, max_chars: int
) -> tuple[tuple[str, ...], str]:
    """Move full lines to history when an utterance runs on without an endpoint."""
    while len(line) > max_chars:
        cut = line.rfind(" ", 0, max_chars + 1)
        cut = cut if cut > 0 else max_chars
        history += (line[:cut],)
        line = line[cut:].lstrip()
    return history, line


class TranscriptModel:
    """Folds pipeline events into snapshots; ``state`` is always a complete immutable snapshot.

    One thread calls ``apply``; any thread may read ``state`` (a single reference swap).
    """

    def __init__(
        self,
        config: UiConfig | None = None,
        *,
        device: str = "",
        device_rate: int = 0,
        provider: str = "CPU",
    ) -> None:
        self.config = config or UiConfig()
        self._state = TranscriptState(device=device, device_rate=device_rate, provider=provider)

    @property
    def state(self) -> TranscriptState:
        return self._state

    def apply(self, event: PipelineEvent) -> TranscriptState:
        self._state = fold(
            self._state,
            event,
            history_lines=self.config.history_lines,
            show_tentative=self.config.show_tentative,
        )
        return self._state

    def describe_input(self, device: str, device_rate: int, provider: str | None = None) -> None:
        """Name the input shown in the status bar (at start, or after the device reconnects)."""
        provider = self._state.provider if provider is None else provider
        self._state = replace(
            self._state, device=device, device_rate=device_rate, provider=provider
        )

    def apply_all(self, events: Iterable[PipelineEvent]) -> TranscriptState:
        for event in events:
            self.apply(event)
        return self._state


# --- snapshot -> screen ---------------------------------------------------------------------


def render(
    state: TranscriptState, width: int | None = None, height: int | None = None
) -> TranscriptView:
    """The renderable for one snapshot; unset sizes are taken from the console when drawn."""
    return TranscriptView(state, width, height)


@dataclass(frozen=True)
class TranscriptView:
    """History (oldest rows cut first), current line with dim tentative tail, notice, status."""

    state: TranscriptState
    width: int | None = None
    height: int | None = None

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(1, min(self.width or options.max_width, options.max_width))
        height = max(1, self.height or options.height or console.height)
        for row in layout_rows(self.state, console, width, height):
            row.no_wrap = True
            row.overflow = "crop"
            row.end = "\n"
            yield row


def layout_rows(state: TranscriptState, console: Console, width: int, height: int) -> list[Text]:
    """Exactly ``height`` rows of at most ``width`` cells; the newest text always survives."""
    status = [status_bar(state, width)] if height >= 3 else []  # one row: never wraps
    notice = notice_rows(state.notice, width) if height >= 4 else []
    room = max(1, height - len(status) - len(notice))
    current = _wrap(current_text(state), console, width)[-room:]
    history: list[Text] = []
    for line in reversed(state.committed_lines):
        free = room - len(current) - len(history)
        if free <= 0:
            break
        history = _wrap(Text(line), console, width)[-free:] + history
    padding = [Text("")] * (room - len(current) - len(history))
    return (padding + history + current + notice + status)[-height:]


def current_text(state: TranscriptState) -> Text:
    """Committed words of the utterance in progress, then the tentative tail, dimmed."""
    text = Text(state.current_line)
    if state.tentative:
        text.append((" " if state.current_line else "") + state.tentative, style=TENTATIVE_STYLE)
    return text


def _wrap(text: Text, console: Console, width: int) -> list[Text]:
    if not text.plain:
        return []
    return list(text.wrap(console, width, overflow="fold"))  # fold: long words break


def notice_rows(notice: str, width: int) -> list[Text]:
    if not notice:
        return []
    row = Text("! " + " ".join(notice.split()), style="bold yellow")
    row.truncate(width, overflow="ellipsis")
    return [row]


# --- the live screen ------------------------------------------------------------------------


class LiveView:
    """Redraws the latest snapshot at ``refresh_per_second`` until stopped.

    ``screen=True`` draws on the terminal's alternate screen: every refresh overwrites the
    previous frame in place (no erase-then-draw flicker) and a resize is a full redraw. The
    alternate screen vanishes on exit, so the committed transcript is printed to the normal
    screen then, and nothing said is lost from the scrollback.
    """

    def __init__(
        self,
        snapshot: Callable[[], TranscriptState],
        config: UiConfig | None = None,
        console: Console | None = None,
        *,
        screen: bool = True,
    ) -> None:
        self.snapshot = snapshot
        self.config = config or UiConfig()
        self.console = console or Console()
        self.screen = screen
        self._live: Live | None = None

    @property
    def is_running(self) -> bool:
        return self._live is not None

    def start(self) -> None:
        if self._live is not None:
            return
        live = Live(
            get_renderable=self.frame,
            console=self.console,
            screen=self.screen,
            auto_refresh=True,
            refresh_per_second=self.config.refresh_per_second,
            transient=False,
        )
        live.start(refresh=True)
        self._live = live

    def refresh(self) -> None:
        if self._live is not None:
            self._live.refresh()

    def stop(self) -> None:
        if self._live is None:
            return
        live, self._live = self._live, None
        try:
            live.stop()
        finally:
            if self.screen:
                self._print_transcript(self.snapshot())

    def __enter__(self) -> LiveView:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def frame(self) -> TranscriptView:
        """The renderable drawn at each refresh, built from the newest snapshot."""
        # without the alternate screen, Live cuts the last row of a full-height frame
        height = None if self.screen else max(1, self.console.height - 1)
        return render(self.snapshot(), height=height)

    def _print_transcript(self, state: TranscriptState) -> None:
        for line in (*state.committed_lines, state.current_line):
            if line:
                self.console.print(Text(line))


def export_svg(
    state: TranscriptState, path: str | Path, width: int = 100, height: int = 30
) -> Path:
    """Draw one snapshot into an SVG file (the README screenshot)."""
    console = Console(
        record=True,
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
    )
    console.print(render(state))
    path = Path(path)
    console.save_svg(str(path), title="streamer")
    return path
