"""The UI as plain text on a fixed-size, colourless capture console (no escape-code goldens)."""

from __future__ import annotations

import dataclasses
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console
from rich.live import Live

from streamer.config import UiConfig
from streamer.output.statusbar import (
    ORDER,
    bar_width,
    fit_fields,
    ladder,
    level_meter,
    status_bar,
)
from streamer.output.ui import (
    LiveView,
    TranscriptModel,
    export_svg,
    fold,
    render,
)
from streamer.types import (
    Committed,
    CommittedWord,
    Endpoint,
    Notice,
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


def test_status_bar_fields_are_present_and_formatted():
    status = screen_text(meeting_state(), width=200)[-1]
    for expected in (
        "\u25cf speech",
        "\u2588" * 6 + "\u2591" * 4 + "  -23 dB",
        "lag 1.0 s",
        "commit 0.87 s",
        "RTF 0.12",
        "dropped 0.5 s",
        "xruns 2",
        "CUDA",
        "USB Audio Device: Microphone (hw:2,0) @ 48000 Hz",
    ):
        assert expected in status, expected


def test_status_bar_when_idle():
    state = TranscriptState(device="", provider="CPU")
    status = screen_text(state, width=200)[-1]
    for expected in ("\u25cb silence", "commit -", "lag 0.0 s", "xruns 0", "CPU", "default input"):
        assert expected in status, expected
    assert "Hz" not in status  # no rate known yet


# --- the status bar: one row at any width -------------------------------------------------

LONG_DEVICE = "alsa_input.usb-Blue_Microphones_Yeti_Stereo_Microphone_REV8-00.analog-stereo"


def status_lines(state: TranscriptState, width: int) -> list[str]:
    """The status bar alone, printed on a capture console ``width`` columns wide."""
    console = capture_console(width, 24)
    console.print(status_bar(state, width))
    return console.export_text().splitlines()


def with_stats(stats: Stats, device: str = LONG_DEVICE, rate: int = 48000) -> TranscriptState:
    return TranscriptState(stats=stats, device=device, device_rate=rate, provider="CUDA")


def priority(state: TranscriptState) -> list[str]:
    """Field names, most useful first."""
    return list(dict.fromkeys(name for name, _ in ladder(state)))


@pytest.mark.parametrize("width", [80, 100, 120, 200])
def test_status_bar_is_one_row_on_a_full_screen_too(width):
    state = dataclasses.replace(meeting_state(), device="USB Audio Device: Microphone " * 4)
    rows = screen_text(state, width=width)
    assert len(rows) == 24 and all(len(row) <= width for row in rows)
    assert [row for row in rows if "lag " in row] == [rows[-1]]
    assert not any(word in rows[-2] for word in ("RTF", "xruns", "dropped", "CUDA", "Hz"))
    assert "tentative" in rows[-2]  # the newest words sit right above the bar


@pytest.mark.parametrize("width", [80, 100, 120, 200])
def test_status_bar_with_alarms_and_a_long_device_name_is_one_row(width):
    stats = dataclasses.replace(
        BUSY_STATS, captured_samples=16000 * 100, decoded_samples=16000 * 12, xruns=12345
    )
    lines = status_lines(with_stats(stats), width)
    assert len(lines) == 1, lines
    assert len(lines[0]) == width  # padded to the full width, never beyond it
    for expected in ("\u25cf speech", "lag 88.0 s", "dropped 0.5 s", "xruns 12345"):
        assert expected in lines[0], (expected, lines[0])


def test_the_most_useful_fields_survive_at_80_columns():
    line = status_lines(with_stats(BUSY_STATS), 80)[0]
    assert line.rstrip() == (
        "\u25cf speech \u2502 -23 dB \u2502 lag 1.0 s \u2502 commit 0.87 s \u2502 "
        "dropped 0.5 s \u2502 xruns 2"
    )
    quiet = dataclasses.replace(BUSY_STATS, dropped_samples=0, xruns=0)
    line = status_lines(with_stats(quiet), 80)[0]
    assert line.rstrip() == (
        f"\u25cf speech \u2502 {level_meter(-23.4)} \u2502 lag 1.0 s \u2502 commit 0.87 s \u2502 "
        "RTF 0.12 \u2502 CUDA"
    )
    assert "dropped" not in line and "xruns" not in line  # zeros go before anything else


def test_the_device_name_is_shortened_before_it_is_dropped():
    quiet = dataclasses.replace(BUSY_STATS, dropped_samples=0, xruns=0)
    lines = {width: status_lines(with_stats(quiet), width)[0].rstrip() for width in (100, 120)}
    assert lines[100].endswith("CUDA \u2502 alsa_input.usb-Blue_M\u2026")  # the rate goes first
    assert lines[120].endswith("CUDA \u2502 alsa_input.usb-Blue_Microphones_Yeti_St\u2026")
    assert len(lines[100]) == 100  # the name takes the room left
    assert len(lines[120]) < 120  # a name is cut at MAX_DEVICE_CHARS even where there is room
    wide = status_lines(with_stats(quiet, "Built-in", 44100), 120)[0]
    assert "Built-in @ 44100 Hz" in wide


stats_strategy = st.builds(
    Stats,
    captured_samples=st.integers(0, 16000 * 3600 * 100),
    decoded_samples=st.integers(0, 16000 * 3600),
    real_time_factor=st.floats(0, 1000, allow_nan=False),
    dropped_samples=st.integers(0, 16000 * 3600 * 100),
    xruns=st.integers(0, 10**9),
    vad_state=st.sampled_from(["speech", "silence"]),
    input_level_db=st.floats(-200, 20, allow_nan=False),
    last_commit_latency_s=st.none() | st.floats(0, 10**4, allow_nan=False),
)
device_names = st.text(st.characters(categories=["L", "N", "P", "Zs"]), max_size=120)


@settings(max_examples=200, deadline=None)
@given(
    width=st.integers(80, 300),
    stats=stats_strategy,
    device=device_names,
    rate=st.sampled_from([0, 8000, 16000, 44100, 48000, 192000]),
    provider=st.sampled_from(["CPU", "CUDA", "TensorrtExecutionProvider"]),
    language=st.sampled_from(["", "en", "de", "haw"]),
)
def test_status_bar_is_always_one_row_within_the_width(
    width, stats, device, rate, provider, language
):
    state = TranscriptState(
        stats=stats, device=device, device_rate=rate, provider=provider, language=language
    )
    bar = status_bar(state, width)
    assert bar.cell_len == width
    lines = status_lines(state, width)
    assert len(lines) == 1 and cell_len(lines[0]) <= width, lines
    fields = fit_fields(state, width)
    assert bar_width(list(fields.values())) <= width
    # a field is shown only if every more useful one is: the shown ones are a prefix by priority
    ranked = priority(state)
    assert ranked[: len(fields)] == [name for name in ranked if name in fields]
    assert list(fields) == [name for name in ORDER if name in fields]  # drawn in a fixed order


@pytest.mark.parametrize(
    ("level_db", "meter"),
    [
        (-120.0, "\u2591" * 10 + "  -99 dB"),
        (-60.0, "\u2591" * 10 + "  -60 dB"),
        (-30.0, "\u2588" * 5 + "\u2591" * 5 + "  -30 dB"),
        (0.0, "\u2588" * 10 + "    0 dB"),
        (3.0, "\u2588" * 10 + "    0 dB"),
    ],
    ids=["no-signal", "floor", "middle", "full-scale", "clipped"],
)
def test_level_meter(level_db, meter):
    assert level_meter(level_db) == meter


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


def test_the_status_bar_names_the_language_of_the_newest_words():
    state = fold(meeting_state(n_lines=1), committed(" Guten", " Tag", language="de"))
    assert state.language == "de"
    assert status_lines(state, 200)[0].split("\u2502")[-2].strip() == "de"  # before the device
    fresh = status_lines(fold(TranscriptState(), Endpoint(0, "silence", 0.0)), 200)[0]
    assert "CPU \u2502 default input" in fresh  # no words yet: no language
