"""The UI as plain text on a fixed-size, colourless capture console (no escape-code goldens)."""

from __future__ import annotations

import dataclasses
import io

import pytest
from rich.console import Console
from rich.live import Live
from ui_fixtures import BUSY_STATS, capture_console, committed, meeting_state, screen_text

from streamer.config import UiConfig
from streamer.output.ui import LiveView, TranscriptModel, export_svg, fold, render
from streamer.types import Endpoint, Notice, Tentative, TranscriptState

# --- what is on screen ----------------------------------------------------------------------


def test_history_current_line_and_tentative_tail_appear_in_order():
    rows = screen_text(meeting_state())
    assert len(rows) == 24
    text = "\n".join(rows)
    assert "Line 29 says something fairly long." in text
    assert "Now the current words are tentative" in text
    assert text.index("Line 29") < text.index("Now the current") < text.index("speech")


def test_tentative_words_are_dim_and_committed_words_are_not():
    console = capture_console()
    segments = list(console.render(render(meeting_state()), console.options))
    styles = {seg.text.strip(): seg.style for seg in segments if seg.text.strip()}
    tentative = next(style for text, style in styles.items() if "tentative" in text)
    current = next(style for text, style in styles.items() if "Now the current" in text)
    assert tentative is not None and tentative.dim
    assert current is None or not current.dim


def test_notice_line_is_shown_only_when_set():
    state = meeting_state()
    assert not any(row.startswith("!") for row in screen_text(state))
    with_notice = fold(state, Notice("disk full: transcript not saved", "error"))
    rows = screen_text(with_notice)
    assert "! error: disk full: transcript not saved" in rows[-2]
    assert "Now the current" in rows[-3]


def test_history_is_bounded_after_endpoints_and_after_long_lines():
    model = TranscriptModel(UiConfig(history_lines=3))
    for index in range(10):
        model.apply(committed(f" utterance{index}"))
        model.apply(Endpoint(0, "silence", 0.0))
    assert model.state.committed_lines == ("utterance7", "utterance8", "utterance9")
    state = TranscriptState()
    for _ in range(100):
        state = fold(state, committed(" talking"), history_lines=3, max_line_chars=20)
    assert len(state.committed_lines) == 3


def test_a_partly_visible_history_line_shows_its_end():
    words = " ".join(f"a{index}" for index in range(1, 61))
    state = fold(fold(TranscriptState(), committed(" " + words)), Endpoint(0, "silence", 0.0))
    state = fold(state, committed(" newest"))
    rows = screen_text(state, width=20, height=6)
    assert "a60" in rows[-3] and "newest" in rows[-2]  # right above the one-row status bar
    assert "a1 " not in " ".join(rows)


def test_history_is_bounded_in_memory_and_on_screen():
    state = meeting_state(n_lines=1000, history_lines=50)
    assert len(state.committed_lines) == 50
    assert state.committed_lines[-1] == "Line 999 says something fairly long."
    rows = screen_text(state, height=10)
    assert len(rows) == 10
    assert "Line 999 says something fairly long." in rows
    assert "Line 990 says something fairly long." not in rows


@pytest.mark.parametrize("width", [20, 40], ids=["w20", "w40"])
def test_narrow_terminals_still_show_the_newest_text(width):
    rows = screen_text(meeting_state(), width=width)
    assert len(rows) == 24 and all(len(row) <= width for row in rows)
    joined = " ".join(" ".join(rows).split())
    assert "Now the current words are tentative" in joined
    assert "Line 29 says something fairly long." in joined
    assert "speech" in joined


@pytest.mark.parametrize("height", [1, 2, 3, 5], ids=["h1", "h2", "h3", "h5"])
def test_tiny_terminals_keep_the_newest_words(height):
    rows = screen_text(meeting_state(), width=30, height=height)
    assert len(rows) == height
    assert "tentative" in " ".join(rows)


def test_long_words_wrap_within_the_width():
    word = "x" * 95
    state = fold(TranscriptState(), committed(" see", f" {word}", " end"))
    rows = screen_text(state, width=40, height=10)
    assert all(len(row) <= 40 for row in rows)
    assert word in "".join(row.strip() for row in rows)
    assert any(row.strip().endswith("end") for row in rows)


def test_layout_follows_the_console_size_at_render_time():
    view = render(meeting_state())
    console = capture_console(80, 24)
    console.print(view)
    console.size = (40, 12)  # the terminal was resized; the same renderable is drawn again
    console.print(view)
    rows = console.export_text().splitlines()
    assert len(rows) == 24 + 12
    assert all(len(row) <= 40 for row in rows[24:])
    assert "tentative" in " ".join(rows[24:])


def test_explicit_width_and_height_override_the_console():
    console = capture_console(80, 24)
    console.print(render(meeting_state(), width=30, height=6))
    rows = console.export_text().splitlines()
    assert len(rows) == 6 and all(len(row) <= 30 for row in rows)


# --- events -> snapshots --------------------------------------------------------------------


def test_commits_append_and_endpoints_close_the_line():
    state = fold(TranscriptState(), committed(" Hello", " there"))
    assert state.current_line == "Hello there"
    state = fold(state, committed(" friend."))
    assert state.current_line == "Hello there friend."
    state = fold(fold(state, Tentative(" and")), Endpoint(16000, "silence", 1.0))
    assert state.committed_lines == ("Hello there friend.",) and state.current_line == ""
    assert state.tentative == ""
    assert fold(state, Endpoint(1, "silence", 1.0)) == state  # empty utterance: no blank line


def test_committed_words_leave_the_stale_tentative_tail():
    state = fold(TranscriptState(), Tentative(" The quick brown"))
    state = fold(state, committed(" the", " quick,"))
    assert (state.current_line, state.tentative) == ("the quick,", "brown")
    state = fold(fold(state, Tentative(" fox")), committed(" jumps"))
    assert state.tentative == ""  # a tail that does not start with the commit is stale


def test_committed_characters_leave_the_tentative_tail_without_spaces():
    state = fold(TranscriptState(), Tentative("我们用Python写代码"))
    state = fold(state, committed("我", "们", "用"))
    assert (state.current_line, state.tentative) == ("我们用", "Python写代码")


def test_tentative_can_be_hidden_and_notices_carry_their_level():
    state = fold(TranscriptState(), Tentative(" maybe"), show_tentative=False)
    assert state.tentative == ""
    assert fold(state, Notice("device lost")).notice == "warning: device lost"
    assert fold(state, Notice("resumed", "info")).notice == "resumed"
    assert fold(fold(state, Notice("x")), Notice("", "info")).notice == ""


def test_an_endless_utterance_is_broken_into_lines():
    state = TranscriptState()
    for _ in range(100):
        state = fold(state, committed(" talking"), max_line_chars=50)
    assert all(len(line) <= 50 for line in (*state.committed_lines, state.current_line))
    assert " ".join((*state.committed_lines, state.current_line)).split() == ["talking"] * 100


def test_the_input_description_can_change_after_a_reconnect():
    model = TranscriptModel(device="Built-in", device_rate=44100, provider="CUDA")
    model.apply_all([committed(" kept"), BUSY_STATS])
    model.describe_input("USB Mic", 48000)
    state = model.state
    assert (state.device, state.device_rate, state.provider) == ("USB Mic", 48000, "CUDA")
    assert state.current_line == "kept" and state.stats == BUSY_STATS
    assert "USB Mic @ 48000 Hz" in screen_text(state, width=200)[-1]


def test_snapshots_are_immutable_and_unknown_events_are_rejected():
    model = TranscriptModel()
    before = model.state
    after = model.apply(committed(" hi"))
    assert before.current_line == "" and after.current_line == "hi" and model.state is after
    with pytest.raises(dataclasses.FrozenInstanceError):
        after.current_line = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        model.apply("not an event")  # type: ignore[arg-type]


# --- the live shell -------------------------------------------------------------------------


def terminal_console() -> Console:
    return Console(width=60, height=12, color_system=None, file=io.StringIO(), force_terminal=True)


def test_live_view_pulls_snapshots_and_start_stop_are_idempotent():
    pulls = []
    state = meeting_state(n_lines=3)

    def snapshot():
        pulls.append(1)
        return state

    console = terminal_console()
    view = LiveView(snapshot, UiConfig(refresh_per_second=50), console)
    view.start()
    view.start()
    assert view.is_running
    view.refresh()
    view.stop()
    view.stop()
    assert not view.is_running and len(pulls) >= 2
    # the alternate screen is gone; the committed transcript stays on the normal screen
    after_exit = console.file.getvalue().rsplit("\x1b[?1049l", 1)[1]
    assert "Line 2 says something fairly long." in after_exit
    assert "Now the current" in after_exit and "tentative" not in after_exit


def test_live_view_cleans_up_when_the_body_raises():
    console = terminal_console()
    with pytest.raises(RuntimeError, match="boom"):
        with LiveView(lambda: TranscriptState(), console=console):
            raise RuntimeError("boom")
    assert not console.is_alt_screen
    with Live(console=console):  # a second live display would raise if the first leaked
        pass


def test_live_view_without_alternate_screen_leaves_room_for_the_cursor():
    console = terminal_console()
    view = LiveView(lambda: meeting_state(n_lines=3), console=console, screen=False)
    assert view.frame().height == 11
    assert LiveView(TranscriptState, console=console).frame().height is None


def test_export_svg_writes_the_screen(tmp_path):
    path = export_svg(meeting_state(n_lines=3), tmp_path / "screen.svg", width=90, height=20)
    svg = path.read_text()
    assert svg.startswith("<svg") and "tentative" in svg and "CUDA" in svg
