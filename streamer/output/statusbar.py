"""The status bar: always one row, whatever the width; the least useful fields go first.

Like htop's header, the bar never wraps. ``fit_fields(state, width)`` is a pure function that
walks a ladder of fields and shorter/longer forms in priority order and keeps each step that
still fits; the fields are then drawn in their fixed left-to-right order. Priority, highest first:

1. VAD state (``● speech`` / ``○ silence``): is anything being heard at all;
2. lag: the decoder falling behind (red above ``LAG_WARNING_S``);
3. dropped audio and xruns *when nonzero*: an alarm wins over everything cosmetic below;
4. input level, short form (``-23 dB``);
5. commit latency, then RTF;
6. input level, long form (the 10-cell meter);
7. execution provider (``CPU`` / ``CUDA``), then the language the words are read in
   (``de``), once there are words;
8. input device and rate, shortened with an ellipsis to the room left (rate dropped first);
9. dropped audio and xruns when zero: nothing to report.

A longer form that does not fit is skipped (the short one stays); the first new field that does
not fit ends the walk, so a field is never shown while a more useful one is left out.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text

from streamer.audio import samples_to_seconds
from streamer.types import TranscriptState

LEVEL_FLOOR_DB = -60.0  # the meter's left end; quieter input shows an empty bar
METER_CELLS = 10
LAG_WARNING_S = 2.0  # lag above this is drawn as a warning: the decoder is falling behind
MAX_DEVICE_CHARS = 40  # a longer device name is cut even on a wide terminal
MIN_DEVICE_CHARS = 8  # below this a cut device name says nothing: leave it out
SEPARATOR = " \u2502 "
STATUS_STYLE = "reverse"
ALARM_STYLE = "bold yellow"

# left-to-right position of each field on the bar (independent of its priority)
ORDER = ("vad", "level", "lag", "commit", "rtf", "dropped", "xruns", "provider", "language")
ORDER += ("device",)

# a ladder step: (field, its text), or (field, a function of the room left -> text or None)
Step = tuple[str, "Text | Callable[[int], Text | None]"]


def level_meter(level_db: float) -> str:
    """``█████░░░░░  -30 dB``: filled cells from -60 to 0 dBFS."""
    clamped = min(0.0, max(LEVEL_FLOOR_DB, level_db))
    filled = round((clamped - LEVEL_FLOOR_DB) / -LEVEL_FLOOR_DB * METER_CELLS)
    return "\u2588" * filled + "\u2591" * (METER_CELLS - filled) + " " + level_short(level_db)


def level_short(level_db: float) -> str:
    """`` -23 dB``: the level alone, always 7 cells (-99 to 0 dBFS)."""
    return f"{max(-99.0, min(0.0, level_db)):4.0f} dB"


def ladder(state: TranscriptState) -> list[Step]:
    """The steps of ``fit_fields`` for one snapshot, highest priority first."""
    stats = state.stats
    lag_s = samples_to_seconds(stats.lag_samples)
    latency = stats.last_commit_latency_s
    dropped_s = samples_to_seconds(stats.dropped_samples)
    speech = stats.vad_state == "speech"
    dropped = _field(f"dropped {dropped_s:.1f} s", ALARM_STYLE if dropped_s else "")
    xruns = _field(f"xruns {stats.xruns}", ALARM_STYLE if stats.xruns else "")
    alarms: list[Step] = [("dropped", dropped)] if dropped_s else []
    alarms += [("xruns", xruns)] if stats.xruns else []
    quiet: list[Step] = [] if dropped_s else [("dropped", dropped)]
    quiet += [] if stats.xruns else [("xruns", xruns)]
    return [
        ("vad", _field("\u25cf speech" if speech else "\u25cb silence", "bold" if speech else "")),
        ("lag", _field(f"lag {lag_s:.1f} s", "bold red" if lag_s > LAG_WARNING_S else "")),
        *alarms,
        ("level", _field(level_short(stats.input_level_db).lstrip())),
        ("commit", _field("commit -" if latency is None else f"commit {latency:.2f} s")),
        ("rtf", _field(f"RTF {stats.real_time_factor:.2f}")),
        ("level", _field(level_meter(stats.input_level_db))),
        ("provider", _field(state.provider)),
        *([("language", _field(state.language))] if state.language else []),
        ("device", lambda room: device_field(state.device, state.device_rate, room)),
        *quiet,
    ]


def device_field(device: str, rate: int, room: int) -> Text | None:
    """``name @ rate Hz`` in at most ``room`` cells: the rate goes first, then the name is cut
    with an ellipsis; None when not even ``MIN_DEVICE_CHARS`` of the name would show."""
    name = Text(device or "default input")
    name.truncate(MAX_DEVICE_CHARS, overflow="ellipsis")
    suffix = f" @ {rate} Hz" if rate else ""
    if name.cell_len + len(suffix) <= room:
        return name.append(suffix)
    if name.cell_len <= room or room >= MIN_DEVICE_CHARS:
        name.truncate(room, overflow="ellipsis")
        return name
    return None


def fit_fields(state: TranscriptState, width: int) -> dict[str, Text]:
    """The status fields (name -> text) that fit on one row of ``width`` cells with their
    separators, in left-to-right order. A field is shown only if every field above it in
    priority is shown (in some form); the VAD state always is, cut to ``width`` if need be."""
    chosen: dict[str, Text] = {}
    steps = ladder(state)
    for name, step in steps:
        others = [text for key, text in chosen.items() if key != name]
        room = width - bar_width(others) - (len(SEPARATOR) if others else 0)
        text = step(room) if callable(step) else step
        if text is not None and text.cell_len <= room:
            chosen[name] = text  # a new field, or a longer form of one already in
        elif name not in chosen:
            break  # a field that does not fit: every less useful one is left out too
    if not chosen:  # narrower than the VAD state itself
        name, first = steps[0]
        if isinstance(first, Text):
            first.truncate(max(1, width), overflow="ellipsis")
            chosen[name] = first
    return {name: chosen[name] for name in ORDER if name in chosen}


def bar_width(fields: list[Text]) -> int:
    """Cells taken by ``fields`` joined with separators."""
    return sum(text.cell_len for text in fields) + len(SEPARATOR) * max(0, len(fields) - 1)


def status_bar(state: TranscriptState, width: int) -> Text:
    """The status bar: one row of exactly ``width`` cells, in reverse video."""
    row = Text(no_wrap=True, overflow="crop")
    for index, field in enumerate(fit_fields(state, width).values()):
        if index:
            row.append(SEPARATOR)
        row.append_text(field)
    row.truncate(width)
    row.pad_right(width - row.cell_len)
    row.stylize(STATUS_STYLE)
    return row


def _field(label: str, style: str = "") -> Text:
    # a span, not the Text's base style: a row takes the base style of its first field
    text = Text()
    text.append(label, style=style or None)
    return text
