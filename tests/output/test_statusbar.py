"""The status bar: its fields, one row at any width, the level meter and the language."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from ui_fixtures import BUSY_STATS, capture_console, committed, meeting_state, screen_text

from streamer.output.statusbar import ORDER, bar_width, fit_fields, ladder, level_meter, status_bar
from streamer.output.ui import fold
from streamer.types import Endpoint, Stats, TranscriptState


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


def test_the_status_bar_names_the_language_of_the_newest_words():
    state = fold(meeting_state(n_lines=1), committed(" Guten", " Tag", language="de"))
    assert state.language == "de"
    assert status_lines(state, 200)[0].split("\u2502")[-2].strip() == "de"  # before the device
    fresh = status_lines(fold(TranscriptState(), Endpoint(0, "silence", 0.0)), 200)[0]
    assert "CPU \u2502 default input" in fresh  # no words yet: no language
